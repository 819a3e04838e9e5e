//! Cost per request of the bearer layer: `cargo bench --bench bearer`.
//!
//! Each case drives `Bearer<inner>` with a trivial inner service and a fresh request (headers,
//! route and access-log extensions, as the observe layer leaves them), polling the future once
//! with a no-op waker. The "disabled" case is the same loop through a pass-through layer; the
//! layer's own cost is a case minus that baseline. Plain `Instant` loops, best of 5 rounds.
//!
//! The machine is shared, so besides wall time per request the bench reports this thread's CPU
//! time per request (from `/proc/thread-self/stat`, 10 ms ticks; rounds last ~0.5 s), which a
//! busy neighbour does not inflate. The `layer` and `req/s/core` columns use CPU time when it
//! is available.

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::{Request, Response};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use kmsgate::body::Body;
use kmsgate::config::Config;
use kmsgate::layer::bearer::BearerLayer;
use kmsgate::layer::observe::RequestLog;
use kmsgate::route::Route;
use tower_layer::Layer;
use tower_service::Service;

const ROUNDS: usize = 5;

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/auth/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn layer(extra: &str) -> BearerLayer {
    let toml = format!(
        r#"
[auth]
enabled = true
algorithms = ["RS256", "ES256"]
issuers = ["https://iam.test/identity"]
audiences = ["kms"]
{extra}

[[auth.pem_keys]]
kid = "rsa"
file = "{}"

[[auth.pem_keys]]
kid = "ec"
file = "{}"
"#,
        fixture("test-rsa-public.pem"),
        fixture("test-ec-public.pem")
    );
    let config = Config::from_toml(&[&toml]).unwrap();
    BearerLayer::from_config(&config.auth, &prometheus::Registry::new()).unwrap()
}

fn token(alg: Algorithm, kid: &str, pem: &str) -> String {
    let pem = std::fs::read(fixture(pem)).unwrap();
    let key = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem).unwrap(),
        _ => EncodingKey::from_rsa_pem(&pem).unwrap(),
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // About the size of an IBM IAM access token's claims.
    let claims = serde_json::json!({
        "iam_id": "iam-ServiceId-12345678-1234-1234-1234-123456789012",
        "id": "iam-ServiceId-12345678-1234-1234-1234-123456789012",
        "realmid": "iam",
        "identifier": "ServiceId-12345678-1234-1234-1234-123456789012",
        "sub": "ServiceId-12345678-1234-1234-1234-123456789012",
        "sub_type": "ServiceId",
        "account": {"valid": true, "bss": "0123456789abcdef0123456789abcdef", "frozen": true},
        "iat": now, "exp": now + 3600,
        "iss": "https://iam.test/identity",
        "grant_type": "urn:ibm:params:oauth:grant-type:apikey",
        "scope": "ibm openid",
        "client_id": "default",
        "acr": 1, "amr": ["pwd"],
        "aud": "kms"
    });
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

fn request(authorization: &str) -> Request<Body> {
    let mut req = Request::post("/api/v2/keys/abc/actions/wrap")
        .header("bluemix-instance", "instance-1")
        .body(Body::empty())
        .unwrap();
    if !authorization.is_empty() {
        req.headers_mut()
            .insert("authorization", authorization.parse().unwrap());
    }
    req.extensions_mut().insert(Route::KeyWrap);
    req.extensions_mut().insert(Arc::new(RequestLog::default()));
    req
}

/// This thread's user + system CPU time, if `/proc` tells (Linux; 100 ticks per second).
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// Nanoseconds per request (wall, CPU), best of [`ROUNDS`] each.
fn measure(
    layer: &BearerLayer,
    authorization: &str,
    iterations: u32,
    expect: u16,
) -> (f64, Option<f64>) {
    let inner = tower::service_fn(|_req: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::empty()))
    });
    let mut service = layer.layer(inner);
    let mut cx = Context::from_waker(Waker::noop());
    let mut best = f64::INFINITY;
    let mut best_cpu: Option<f64> = None;
    for _ in 0..ROUNDS {
        let cpu_start = thread_cpu();
        let start = Instant::now();
        for _ in 0..iterations {
            let future = service.call(request(authorization));
            let mut future = std::pin::pin!(future);
            match future.as_mut().poll(&mut cx) {
                Poll::Ready(Ok(res)) => {
                    assert_eq!(res.status(), expect);
                    black_box(res);
                }
                _ => panic!("the layer did not answer at once"),
            }
        }
        let ns = start.elapsed().as_nanos() as f64 / f64::from(iterations);
        best = best.min(ns);
        if let (Some(a), Some(b)) = (cpu_start, thread_cpu()) {
            let cpu = (b - a).as_nanos() as f64 / f64::from(iterations);
            best_cpu = Some(best_cpu.map_or(cpu, |c: f64| c.min(cpu)));
        }
    }
    (best, best_cpu)
}

fn main() {
    let cache_on = layer("");
    let cache_off = layer("[auth.cache]\nenabled = false\n");
    let rs256 = format!(
        "Bearer {}",
        token(Algorithm::RS256, "rsa", "test-rsa-private.pem")
    );
    let es256 = format!(
        "Bearer {}",
        token(Algorithm::ES256, "ec", "test-ec-private.pem")
    );

    let (base_wall, base_cpu) = measure(&BearerLayer::disabled(), &rs256, 500_000, 200);
    let baseline = base_cpu.unwrap_or(base_wall);
    println!(
        "bearer layer, ns per request (best of {ROUNDS}); layer = case - pass-through baseline"
    );
    println!(
        "{:<32} {:>9} {:>9} {:>9} {:>11}",
        "case", "wall ns", "cpu ns", "layer ns", "req/s/core"
    );
    let row = |name: &str, (wall, cpu): (f64, Option<f64>)| {
        let per_op = cpu.unwrap_or(wall);
        println!(
            "{name:<32} {wall:>9.0} {:>9} {:>9.0} {:>11.0}",
            cpu.map_or("-".to_owned(), |c| format!("{c:.0}")),
            per_op - baseline,
            1e9 / per_op
        );
    };
    row("disabled (pass-through)", (base_wall, base_cpu));
    let cases: [(&str, &BearerLayer, &str, u32, u16); 5] = [
        ("RS256 cache on (hit)", &cache_on, &rs256, 300_000, 200),
        ("RS256 cache off (verify)", &cache_off, &rs256, 20_000, 200),
        ("ES256 cache on (hit)", &cache_on, &es256, 300_000, 200),
        ("ES256 cache off (verify)", &cache_off, &es256, 8_000, 200),
        ("no Authorization -> 400", &cache_on, "", 300_000, 400),
    ];
    for (name, layer, authorization, iterations, expect) in cases {
        row(name, measure(layer, authorization, iterations, expect));
    }
}
