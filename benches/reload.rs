//! The cost of policy reloads and of the per-request snapshot lookup.
//!
//! Plain `Instant` loops (no criterion), printing:
//! - `fingerprint`: one poll of a directory of 10,000 instance files (what every
//!   `policies.poll_interval` costs when nothing changed);
//! - `reload`: reading, parsing and compiling 10,000 instance files into a snapshot and
//!   swapping it in (`PolicySource::try_reload`, what a change or SIGHUP costs);
//! - `lookup` / `find`: what the instance layer pays per request with 10,000 instances (one
//!   snapshot load, one hash lookup, one `Arc` clone), for a listed and an unlisted instance;
//! - `lookup under reload`: the same while another thread swaps snapshots continuously.
//!
//! Run: `cargo bench --bench reload --profile dev --config 'profile.dev.package.kmsgate.opt-level=3'
//! --config 'profile.dev.package.arc-swap.opt-level=3' --config 'profile.dev.package.serde_json.opt-level=3'
//! --config 'profile.dev.package.ipnet.opt-level=3'` (or plain `cargo bench --bench reload`).

mod timing;

use timing::ns_per_op;

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use kmsgate::metrics::Metrics;
use kmsgate::policy::reload::PolicySource;
use kmsgate::policy::{PoliciesConfig, PolicyStore, source};

const INSTANCES: usize = 10_000;

fn document(i: usize) -> String {
    format!(
        r#"{{"metadata": {{"collectionType": "application/vnd.ibm.kms.policy+json", "collectionTotal": 2}},
 "resources": [
  {{"createdBy": "IBMid-1", "creationDate": "2026-01-01T00:00:00Z", "updatedBy": "IBMid-1",
    "lastUpdated": "2026-01-01T00:00:00Z", "policy_type": "allowedIP",
    "policy_data": {{"enabled": true, "attributes": {{"allowed_ip": ["10.{a}.{b}.0/24", "192.0.2.0/24", "2001:db8::/32"]}}}}}},
  {{"policy_type": "keyCreateImportAccess",
    "policy_data": {{"enabled": true, "attributes": {{"create_standard_key": false}}}}}}
 ]}}"#,
        a = (i / 256) % 256,
        b = i % 256
    )
}

fn ms(start: Instant, runs: u32) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0 / f64::from(runs)
}

fn main() {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("kmsgate-bench-reload-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");
    let ids: Vec<String> = (0..INSTANCES).map(|i| format!("instance-{i:05}")).collect();
    for (i, id) in ids.iter().enumerate() {
        std::fs::write(dir.join(format!("{id}.json")), document(i)).expect("write");
    }
    let config = PoliciesConfig {
        dir: Some(dir.clone()),
        ..Default::default()
    };

    let runs = 5;
    let start = Instant::now();
    for _ in 0..runs {
        black_box(source::fingerprint(&dir).expect("fingerprint"));
    }
    let fingerprint_ms = ms(start, runs);

    let store = PolicyStore::from_config(&config).expect("load");
    assert_eq!(store.snapshot().len(), INSTANCES);
    let policies = Arc::new(PolicySource::new(config, store.clone(), &Metrics::new()));
    let start = Instant::now();
    for _ in 0..runs {
        black_box(policies.try_reload().expect("reload"));
    }
    let reload_ms = ms(start, runs);
    println!("{INSTANCES} instance files:");
    println!("  fingerprint (poll, no change) {fingerprint_ms:>9.2} ms");
    println!("  reload (read+parse+compile+swap) {reload_ms:>6.2} ms");

    let lookup_ns = ns_per_op(2_000_000, |i| {
        black_box(store.lookup(Some(black_box(ids[i % INSTANCES].as_str()))));
    });
    let miss_ns = ns_per_op(2_000_000, |_| {
        black_box(store.find(Some(black_box("not-listed"))));
    });
    println!("  lookup (listed instance)         {lookup_ns:>6.1} ns/request");
    println!("  find (unlisted instance)         {miss_ns:>6.1} ns/request");

    // Lookups while another thread reloads without pause.
    let stop = Arc::new(AtomicBool::new(false));
    let reloader = {
        let policies = policies.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let _ = policies.try_reload();
                n += 1;
            }
            n
        })
    };
    let busy_ns = ns_per_op(2_000_000, |i| {
        black_box(store.lookup(Some(black_box(ids[i % INSTANCES].as_str()))));
    });
    stop.store(true, Ordering::Relaxed);
    let reloads = reloader.join().unwrap_or(0);
    println!(
        "  lookup under reload              {busy_ns:>6.1} ns/request ({reloads} reloads meanwhile)"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
