//! A set of IP ranges, compiled once, checked in O(log n).
//!
//! Every range lives in one 128-bit space in which the IPv4 address `a.b.c.d` *is*
//! `::ffff:a.b.c.d`, so IPv4-mapped IPv6 addresses and ranges are matched as IPv4 on both
//! sides. The CIDRs are turned into sorted, merged, disjoint `[start, end]` ranges; a lookup
//! is one binary search.

use std::net::{IpAddr, Ipv6Addr};

use ipnet::IpNet;

/// `::ffff:0:0/96`, the IPv4 part of the space.
const MAPPED_START: u128 = 0xffff_0000_0000;
const MAPPED_END: u128 = 0xffff_ffff_ffff;

/// A compiled set of IPv4 and IPv6 ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IpSet {
    /// Sorted, disjoint, non-adjacent, inclusive ranges.
    ranges: Box<[(u128, u128)]>,
    has_ipv4: bool,
    has_ipv6: bool,
}

/// An address in the unified space.
#[inline]
fn key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(ip) => ip.to_ipv6_mapped().to_bits(),
        IpAddr::V6(ip) => ip.to_bits(),
    }
}

fn bounds(net: &IpNet) -> (u128, u128) {
    match net {
        IpNet::V4(net) => (
            net.network().to_ipv6_mapped().to_bits(),
            net.broadcast().to_ipv6_mapped().to_bits(),
        ),
        IpNet::V6(net) => (net.network().to_bits(), net.broadcast().to_bits()),
    }
}

impl IpSet {
    /// Compiles `nets` (any order, overlaps allowed).
    pub fn new<'a>(nets: impl IntoIterator<Item = &'a IpNet>) -> IpSet {
        let mut ranges: Vec<(u128, u128)> = nets.into_iter().map(bounds).collect();
        ranges.sort_unstable();
        let mut merged: Vec<(u128, u128)> = Vec::with_capacity(ranges.len());
        for (start, end) in ranges {
            match merged.last_mut() {
                // Overlapping or adjacent: extend the previous range.
                Some(last) if last.1.checked_add(1).is_none_or(|next| start <= next) => {
                    last.1 = last.1.max(end);
                }
                _ => merged.push((start, end)),
            }
        }
        let has_ipv4 = merged
            .iter()
            .any(|&(s, e)| s <= MAPPED_END && e >= MAPPED_START);
        let has_ipv6 = merged
            .iter()
            .any(|&(s, e)| s < MAPPED_START || e > MAPPED_END);
        IpSet {
            ranges: merged.into_boxed_slice(),
            has_ipv4,
            has_ipv6,
        }
    }

    /// Whether `ip` (IPv4-mapped IPv6 taken as IPv4) is in the set.
    #[inline]
    pub fn contains(&self, ip: IpAddr) -> bool {
        let x = key(ip);
        // The number of ranges that start at or before x; the last of those is the candidate.
        let after = self.ranges.partition_point(|&(start, _)| start <= x);
        after > 0 && self.ranges[after - 1].1 >= x
    }

    /// True when the set holds no range at all.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// True when some IPv4 address is in the set.
    pub fn has_ipv4(&self) -> bool {
        self.has_ipv4
    }

    /// True when some (non-IPv4-mapped) IPv6 address is in the set.
    pub fn has_ipv6(&self) -> bool {
        self.has_ipv6
    }

    /// The number of disjoint ranges after merging.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }
}

impl<'a> FromIterator<&'a IpNet> for IpSet {
    fn from_iter<I: IntoIterator<Item = &'a IpNet>>(iter: I) -> Self {
        IpSet::new(iter)
    }
}

/// The unified-space form of an address, for display in tests and logs.
pub fn unified(ip: IpAddr) -> Ipv6Addr {
    Ipv6Addr::from_bits(key(ip))
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::*;

    fn set(nets: &[&str]) -> IpSet {
        let nets: Vec<IpNet> = nets.iter().map(|n| n.parse().unwrap()).collect();
        IpSet::new(&nets)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn matches_inside_and_not_outside() {
        let s = set(&["10.0.0.0/8", "192.168.1.0/24", "2001:db8::/32"]);
        assert!(s.contains(ip("10.255.255.255")));
        assert!(s.contains(ip("10.0.0.0")));
        assert!(!s.contains(ip("11.0.0.0")));
        assert!(!s.contains(ip("9.255.255.255")));
        assert!(s.contains(ip("192.168.1.7")));
        assert!(!s.contains(ip("192.168.2.7")));
        assert!(s.contains(ip("2001:db8::1")));
        assert!(!s.contains(ip("2001:db9::1")));
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn ipv4_mapped_addresses_and_ranges_are_ipv4() {
        let s = set(&["127.0.0.0/8"]);
        assert!(s.contains(ip("::ffff:127.0.0.1")));
        assert!(!s.has_ipv6());
        let s = set(&["::ffff:10.0.0.0/104"]);
        assert!(s.contains(ip("10.1.2.3")));
        assert!(s.has_ipv4());
        assert!(!s.has_ipv6());
    }

    #[test]
    fn overlapping_adjacent_and_full_ranges_merge() {
        let s = set(&["10.0.0.0/9", "10.128.0.0/9", "10.1.0.0/16", "0.0.0.0/0"]);
        assert_eq!(s.len(), 1);
        assert!(s.contains(ip("255.255.255.255")));
        let s = set(&["::/0", "::1/128"]);
        assert!(s.contains(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
        // ::/0 covers ::ffff:0:0/96, that is every IPv4 address.
        assert!(s.contains(ip("1.2.3.4")));
        assert!(s.has_ipv4() && s.has_ipv6());
        let s = set(&["2001:db8::/32"]);
        assert!(!s.contains(ip("1.2.3.4")));
        assert!(!s.has_ipv4());
        assert!(set(&[]).is_empty());
        assert!(!set(&[]).contains(ip("1.2.3.4")));
    }

    /// A linear scan, by ipnet's own `contains`, in the same unified space.
    fn naive(nets: &[IpNet], ip: IpAddr) -> bool {
        let ip = IpAddr::V6(unified(ip));
        nets.iter().any(|net| match net {
            IpNet::V4(n) => {
                let mapped =
                    ipnet::Ipv6Net::new(n.network().to_ipv6_mapped(), n.prefix_len() + 96).unwrap();
                IpNet::V6(mapped).contains(&ip)
            }
            IpNet::V6(_) => net.contains(&ip),
        })
    }

    fn arb_net() -> impl Strategy<Value = IpNet> {
        prop_oneof![
            // Small space so that ranges overlap and addresses hit them often.
            (0u32..64, 0u8..=32).prop_map(|(hi, len)| IpNet::V4(
                ipnet::Ipv4Net::new(Ipv4Addr::from_bits(hi << 26 | 0x0a0a_0a0a), len)
                    .unwrap()
                    .trunc()
            )),
            (any::<u32>(), 0u8..=32).prop_map(|(a, len)| IpNet::V4(
                ipnet::Ipv4Net::new(Ipv4Addr::from_bits(a), len)
                    .unwrap()
                    .trunc()
            )),
            (0u128..64, 0u8..=128).prop_map(|(hi, len)| IpNet::V6(
                ipnet::Ipv6Net::new(Ipv6Addr::from_bits(hi << 122 | 0x2001_0db8), len)
                    .unwrap()
                    .trunc()
            )),
            (any::<u32>(), 96u8..=128).prop_map(|(a, len)| IpNet::V6(
                ipnet::Ipv6Net::new(Ipv4Addr::from_bits(a).to_ipv6_mapped(), len)
                    .unwrap()
                    .trunc()
            )),
        ]
    }

    fn arb_ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            (0u32..64, any::<u32>())
                .prop_map(|(hi, lo)| IpAddr::V4(Ipv4Addr::from_bits(hi << 26 | (lo >> 6)))),
            any::<u32>().prop_map(|a| IpAddr::V4(Ipv4Addr::from_bits(a))),
            any::<u32>().prop_map(|a| IpAddr::V6(Ipv4Addr::from_bits(a).to_ipv6_mapped())),
            (0u128..64, any::<u128>())
                .prop_map(|(hi, lo)| IpAddr::V6(Ipv6Addr::from_bits(hi << 122 | (lo >> 6)))),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn agrees_with_a_linear_scan(
            nets in proptest::collection::vec(arb_net(), 0..40),
            ips in proptest::collection::vec(arb_ip(), 1..40),
        ) {
            let compiled = IpSet::new(&nets);
            for ip in ips {
                prop_assert_eq!(compiled.contains(ip), naive(&nets, ip), "ip {} nets {:?}", ip, nets);
            }
            // Every network's own first and last address is inside.
            for net in &nets {
                prop_assert!(compiled.contains(net.network()));
                prop_assert!(compiled.contains(net.broadcast()));
            }
        }
    }
}
