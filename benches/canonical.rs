//! The cost of making a request canonical in the common case (a request that is canonical
//! already, as every real client's is): the route layer's work — method check, host check,
//! path and query scan, then classification — against classification alone (what the observe
//! layer did before the route layer existed), and the instance header's canonicalisation.
//! Also the slow path (a percent-encoded route), for scale. Plain `Instant` loops, ns/op
//! printed. Run: `cargo bench --bench canonical`.

mod timing;

use timing::ns_per_op;

use std::hint::black_box;

use http::Request;
use kmsgate::Route;
use kmsgate::layer::{instance, route};

fn request(uri: &str) -> Request<()> {
    Request::post(uri)
        .header("host", "us-south.kms.cloud.ibm.com")
        .header("bluemix-instance", "a8b9e8f4-7d0f-4c4f-9b3e-000000000001")
        .header("authorization", "Bearer x")
        .body(())
        .unwrap_or_default()
}

fn main() {
    let iterations: usize = 500_000;
    let wrap = "/api/v2/keys/0f4a6b5e-1d2c-4b3a-9e8f-7a6b5c4d3e2f/actions/wrap";
    let encoded = "/api/v2/keys/0f4a6b5e-1d2c-4b3a-9e8f-7a6b5c4d3e2f/actions/%77rap";
    // A canonical request is not changed by canonicalisation, so one request serves every
    // iteration (no clone in the measured loop).
    let mut req = request(wrap);
    let classify = ns_per_op(iterations, |_| {
        let req = black_box(&req);
        black_box(Route::classify(
            req.method(),
            req.uri().path(),
            req.uri().query(),
        ));
    });
    let route_layer = ns_per_op(iterations, |_| {
        let _ = black_box(route::canonicalize(black_box(&mut req)));
    });
    let instance = ns_per_op(iterations, |_| {
        let _ = black_box(instance::canonicalize(black_box(&mut req)));
    });
    let slow_template = request(encoded);
    let clone_only = ns_per_op(iterations / 10, |_| {
        black_box(black_box(&slow_template).clone());
    });
    let slow = ns_per_op(iterations / 10, |_| {
        let mut req = black_box(slow_template.clone());
        let _ = black_box(route::canonicalize(&mut req));
    });
    println!("classify (what observe did before):         {classify:8.1} ns/op");
    println!("canonical path, query, host (added):        {route_layer:8.1} ns/op");
    println!("canonical instance header (added):          {instance:8.1} ns/op");
    println!(
        "slow path, a percent-encoded route:         {:8.1} ns/op",
        slow - clone_only
    );
}
