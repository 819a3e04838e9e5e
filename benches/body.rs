//! The added cost of the body layer: a 200-byte wrap and a create-key request through
//! `BodyShape` around a no-op inner service, against the same request sent to the no-op service
//! directly. Plain `Instant` loops, ns/op printed. Run: `cargo bench --bench body`.

mod timing;

use timing::ns_per_op;

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{Request, Response};
use kmsgate::layer::body::{BodyShapeLayer, check};
use kmsgate::{Body, Route};
use tower_layer::Layer;
use tower_service::Service;

/// The innermost service: answers at once, like a proxy would after forwarding.
#[derive(Clone)]
struct Noop;

impl Service<Request<Body>> for Noop {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Ready<Result<Response<Body>, Infallible>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, req: Request<Body>) -> Self::Future {
        black_box(&req);
        ready(Ok(Response::new(Body::empty())))
    }
}

/// Calls `svc` with a fresh request and drives the future to completion (bodies here are in
/// memory, so it completes on the first poll).
fn once<S>(svc: &mut S, route: Route, path: &'static str, body: &Bytes) -> u16
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
{
    let mut req = Request::post(path).body(Body::full(body.clone())).unwrap();
    req.extensions_mut().insert(route);
    let mut cx = Context::from_waker(Waker::noop());
    let _ = svc.poll_ready(&mut cx);
    let mut future = pin!(svc.call(req));
    loop {
        if let Poll::Ready(res) = future.as_mut().poll(&mut cx) {
            return res.map(|r| r.status().as_u16()).unwrap_or(0);
        }
    }
}

fn main() {
    let iterations: usize = 200_000;
    let wrap = Bytes::from(format!(
        r#"{{"plaintext":"{}","aad":["tenant-a","db-17","orders-2026-europe-wst"]}}"#,
        "2eLAD3LyD3H2bq8dIDAy0A/lN9DSE/Ne3bwu40CdErs+".repeat(3)
    ));
    let create = Bytes::from_static(
        br#"{"metadata":{"collectionType":"application/vnd.ibm.kms.key+json","collectionTotal":1},"resources":[{"type":"application/vnd.ibm.kms.key+json","name":"Root-key-1","description":"example-key","extractable":false}]}"#,
    );
    let cases = [
        (
            "wrap",
            Route::KeyWrap,
            "/api/v2/keys/0f4a6b5e-1d2c-4b3a-9e8f-7a6b5c4d3e2f/actions/wrap",
            &wrap,
        ),
        ("create key", Route::KeyCreate, "/api/v2/keys", &create),
    ];
    let mut layered = BodyShapeLayer::new(1024 * 1024).layer(Noop);
    let mut bare = Noop;
    println!("body layer, {iterations} iterations per figure");
    for (name, route, path, body) in cases {
        assert_eq!(
            once(&mut layered, route, path, body),
            200,
            "{name} must pass"
        );
        assert!(check(route, None, body).is_ok());
        let with = ns_per_op(iterations, |_| {
            black_box(once(&mut layered, route, path, body));
        });
        let without = ns_per_op(iterations, |_| {
            black_box(once(&mut bare, route, path, body));
        });
        let check_only = ns_per_op(iterations, |_| {
            let _ = black_box(check(route, None, black_box(body)));
        });
        println!(
            "{name:>10} ({:>3} bytes): with layer {with:>7.1} ns/op, without {without:>6.1} ns/op, added {:>7.1} ns/op (of which check() {check_only:.1} ns)",
            body.len(),
            with - without
        );
    }
}
