//! The per-request cost of allowedIP with 10, 1,000 and 10,000 ranges.
//!
//! Plain `Instant` loops (no criterion), printing ns/op for:
//! - `check`: the allowedIP decision on an already-loaded policy (one binary search);
//! - `lookup+check`: what a request pays in the instance and allowed_ip layers together
//!   (snapshot load, instance lookup, `Arc` clone, check);
//! - `linear`: a naive scan over the list (pre-converted to integer bounds), for comparison.
//!
//! Run: `cargo bench --bench allowed_ip`. On a shared machine, without building every
//! dependency in release mode, the figures in docs/network.md were taken with
//! `cargo bench --bench allowed_ip --profile dev --config 'profile.dev.package.kmsgate.opt-level=3'
//! --config 'profile.dev.package.arc-swap.opt-level=3' --config 'profile.dev.package.ipnet.opt-level=3'`
//! (the hot path is kmsgate code plus generics instantiated in it, arc-swap and ipnet).

mod timing;

use timing::ns_per_op;

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net};
use kmsgate::layer::allowed_ip::check;
use kmsgate::policy::model::{AllowedIp, InstancePolicies};
use kmsgate::policy::{ActivePolicy, PolicyStore, Snapshot};
use kmsgate::route::Route;

/// A small deterministic generator (xorshift), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn ranges(n: usize, rng: &mut Rng) -> Vec<IpNet> {
    (0..n)
        .map(|_| {
            let addr = Ipv4Addr::from_bits(rng.next() as u32);
            let len = 16 + (rng.next() % 17) as u8;
            IpNet::V4(
                Ipv4Net::new(addr, len)
                    .map(|n| n.trunc())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

/// 1,024 client addresses, half inside some range, half random (mostly outside).
fn clients(nets: &[IpNet], rng: &mut Rng) -> Vec<IpAddr> {
    (0..1024)
        .map(|i| {
            if i % 2 == 0 {
                let net = nets[(rng.next() as usize) % nets.len()];
                net.network()
            } else {
                IpAddr::V4(Ipv4Addr::from_bits(rng.next() as u32))
            }
        })
        .collect()
}

fn main() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let route = Route::classify(&http::Method::GET, "/api/v2/keys", None);
    println!(
        "{:>8} {:>8} {:>14} {:>18} {:>14}",
        "ranges", "merged", "check ns/op", "lookup+check ns/op", "linear ns/op"
    );
    for n in [10usize, 1_000, 10_000] {
        let nets = ranges(n, &mut rng);
        let model = InstancePolicies {
            allowed_ip: Some(AllowedIp {
                enabled: true,
                allowed_ip: nets.clone(),
            }),
            ..Default::default()
        };
        let policy = ActivePolicy::compile(None, model.clone());
        let merged = policy.allowed_ip.as_ref().map_or(0, |s| s.len());
        let store = PolicyStore::new(Snapshot::new(
            (0..100)
                .map(|i| (format!("instance-{i}"), InstancePolicies::default()))
                .chain([("inst".to_owned(), model)]),
            None,
        ));
        let ips = clients(&nets, &mut rng);
        let allowed = ips
            .iter()
            .filter(|ip| check(&policy, Some(route), **ip).is_ok())
            .count();
        assert!(
            allowed >= ips.len() / 2,
            "the generated inside half must pass"
        );

        let check_ns = ns_per_op(5_000_000, |i| {
            black_box(check(&policy, Some(route), black_box(ips[i & 1023])).is_ok());
        });
        let full_ns = ns_per_op(2_000_000, |i| {
            let policy = store.lookup(Some(black_box("inst")));
            black_box(check(&policy, Some(route), black_box(ips[i & 1023])).is_ok());
        });
        let bounds: Vec<(u32, u32)> = nets
            .iter()
            .filter_map(|net| match net {
                IpNet::V4(net) => Some((net.network().to_bits(), net.broadcast().to_bits())),
                IpNet::V6(_) => None,
            })
            .collect();
        let linear_ns = ns_per_op(20_000_000 / n, |i| {
            let IpAddr::V4(ip) = black_box(ips[i & 1023]) else {
                return;
            };
            let x = ip.to_bits();
            black_box(bounds.iter().any(|&(lo, hi)| lo <= x && x <= hi));
        });
        println!("{n:>8} {merged:>8} {check_ns:>14.1} {full_ns:>18.1} {linear_ns:>14.1}");
    }
}
