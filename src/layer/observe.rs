//! The outermost layer: correlation id, route classification, metrics and the access log.
//!
//! - **Correlation id**: the client's `correlation-id` is reused when it is a sane header
//!   value (≤ 128 visible ASCII bytes); otherwise one is generated. It goes upstream, into the
//!   access log, and back to the client on every response, refusals included.
//! - **Route**: the route layer below classifies the request once (after making it canonical)
//!   and records the [`Route`] in the [`RequestLog`]; a request refused before that counts as
//!   `other`.
//! - **Metrics**: `kmsgate_requests_total{route,outcome}`, the latency histogram, and
//!   `kmsgate_rejections_total{code,status}` for refusals (read from the [`Rejected`] marker,
//!   so the count happens in one place).
//! - **Access log**: one line per request (target `kmsgate::access`, written in batches by
//!   [`AccessLog`]): method, route, status, reason code, upstream status, latency, correlation
//!   id, the trace id of a valid W3C `traceparent` (the header itself is forwarded unchanged),
//!   peer and client addresses, subject, and what `kmsgate explain --replay` needs to rebuild
//!   the request: listener, path (with the query), host, `bluemix-instance`. Never the Authorization header, bodies or key
//!   material.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{HeaderName, HeaderValue, Method, Request, Response};
use pin_project_lite::pin_project;
use tokio::time::Instant;

use crate::access_log::{AccessLog, Entry};
use crate::body::Body;
use crate::canonical::BLUEMIX_INSTANCE;
use crate::context::{self, Arrival, RequestContext};
use crate::metrics::{Metrics, Outcome};
use crate::reason::Rejected;
use crate::upstream::FromUpstream;

/// The correlation header Key Protect clients send (the Go client always does).
pub const CORRELATION_ID: HeaderName = HeaderName::from_static("correlation-id");

/// What inner layers learn about a request, for its access-log line: the request's
/// [`RequestContext`], shared through the request extensions as `Arc<RequestLog>`.
pub type RequestLog = RequestContext;

/// Adds [`Observe`] to a stack.
///
/// # Example
///
/// Outermost, with the gateway's metrics and no access log.
///
/// ```
/// # use kmsgate::body::Body;
/// # let kms = tower::service_fn(|_req: http::Request<Body>| async {
/// #     Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
/// # });
/// use kmsgate::layer::observe::ObserveLayer;
/// use kmsgate::metrics::Metrics;
///
/// let service = tower::ServiceBuilder::new()
///     .layer(ObserveLayer::new(Metrics::new(), None))
///     .service(kms);
/// ```
#[derive(Clone, Debug)]
pub struct ObserveLayer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    metrics: Metrics,
    access_log: Option<AccessLog>,
}

impl ObserveLayer {
    /// Counts into `metrics`; writes access-log lines to `access_log`, if any.
    pub fn new(metrics: Metrics, access_log: Option<AccessLog>) -> Self {
        ObserveLayer {
            shared: Arc::new(Shared {
                metrics,
                access_log,
            }),
        }
    }
}

impl<S> tower_layer::Layer<S> for ObserveLayer {
    type Service = Observe<S>;
    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// See the [module docs](self).
#[derive(Clone, Debug)]
pub struct Observe<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> tower_service::Service<Request<Body>> for Observe<S>
where
    S: tower_service::Service<Request<Body>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ObserveFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let start = Instant::now();
        let correlation_id = match req.headers().get(CORRELATION_ID) {
            Some(value) if is_sane_id(value) => value.clone(),
            _ => {
                let id = generate_id();
                req.headers_mut().insert(CORRELATION_ID, id.clone());
                id
            }
        };
        let trace_id = match self.shared.access_log {
            Some(_) => req.headers().get(TRACEPARENT).and_then(trace_id),
            None => None,
        };
        // The server made the request's context (with its connection); a stack used without the
        // server gets one here.
        let log = match req.extensions().get::<Arc<RequestLog>>() {
            Some(log) => log.clone(),
            None => {
                let log = Arc::new(RequestLog::default());
                req.extensions_mut().insert(log.clone());
                log
            }
        };
        let conn = context::conn(req.extensions());
        let peer = conn.map(|c| c.peer);
        let listener = conn.map(|c| c.listener.as_str());
        if self.shared.access_log.is_some() {
            log.set_arrival(Arrival {
                target: req.uri().path_and_query().cloned(),
                // The host the route layer goes by: the request-target's authority wins
                // (absolute form, h2 `:authority`), else `Host`.
                host: req
                    .uri()
                    .authority()
                    .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
                    .or_else(|| req.headers().get(http::header::HOST).cloned()),
                instance: req.headers().get(BLUEMIX_INSTANCE).cloned(),
            });
        }
        let method = req.method().clone();
        ObserveFuture {
            inner: self.inner.call(req),
            start,
            correlation_id: Some(correlation_id),
            trace_id,
            method,
            peer,
            listener,
            log,
            shared: self.shared.clone(),
        }
    }
}

pin_project! {
    /// The response future of [`Observe`].
    pub struct ObserveFuture<F> {
        #[pin]
        inner: F,
        start: Instant,
        correlation_id: Option<HeaderValue>,
        trace_id: Option<TraceId>,
        method: Method,
        peer: Option<SocketAddr>,
        listener: Option<&'static str>,
        log: Arc<RequestLog>,
        shared: Arc<Shared>,
    }
}

impl<F, E> Future for ObserveFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = match this.inner.poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(response)) => response,
        };
        let elapsed = this.start.elapsed();
        let seconds = elapsed.as_secs_f64();
        let rejected = response.extensions().get::<Rejected>().map(|r| r.0);
        let from_upstream =
            this.log.from_upstream() || response.extensions().get::<FromUpstream>().is_some();
        let outcome = match rejected {
            Some(reason) => {
                this.shared.metrics.rejection(reason);
                if reason.is_client_fault() {
                    Outcome::Rejected
                } else {
                    Outcome::Failed
                }
            }
            None => Outcome::Forwarded,
        };
        let route = this.log.route();
        this.shared.metrics.request(route, outcome, seconds);
        let shadow = this.log.shadow();
        if let Some(reason) = shadow {
            this.shared.metrics.shadow_rejection(reason);
        }
        let correlation_id = this.correlation_id.take().unwrap_or_else(generate_id);
        if let Some(access_log) = &this.shared.access_log {
            let arrival = this.log.arrival();
            let status = response.status().as_u16();
            access_log.record(&Entry {
                method: this.method.as_str(),
                route: route.as_str(),
                status,
                reason: rejected.map(|r| r.code()),
                upstream_status: from_upstream.then_some(status),
                latency: elapsed,
                correlation_id: correlation_id.to_str().unwrap_or(""),
                trace_id: this.trace_id.as_ref().map(TraceId::as_str),
                peer: this.peer.map(|p| p.ip()),
                client: this.log.client(),
                subject: this.log.subject(),
                note: this.log.note(),
                shadow: shadow.map(|r| r.code()),
                target: arrival
                    .and_then(|a| a.target.as_ref())
                    .map(PathAndQuery::as_str),
                host: arrival
                    .and_then(|a| a.host.as_ref())
                    .and_then(|h| h.to_str().ok()),
                instance: arrival
                    .and_then(|a| a.instance.as_ref())
                    .and_then(|h| h.to_str().ok()),
                listener: *this.listener,
            });
        }
        response
            .headers_mut()
            .insert(CORRELATION_ID, correlation_id);
        Poll::Ready(Ok(response))
    }
}

/// The W3C Trace Context header.
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// A trace id: 32 lowercase hex digits, copied out of a `traceparent` header.
#[derive(Clone, Copy, Debug)]
pub struct TraceId([u8; 32]);

impl TraceId {
    /// The 32 hex digits.
    pub fn as_str(&self) -> &str {
        // Only lowercase hex digits are ever stored (see `trace_id`).
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

/// The trace id of a valid `traceparent` (`version-traceid-parentid-flags`, W3C Trace Context
/// level 1): lowercase hex fields of 2, 32, 16 and 2 digits, version not `ff`, trace and parent
/// ids not all zeros; a future version may add fields after the flags. Anything else: None.
fn trace_id(value: &HeaderValue) -> Option<TraceId> {
    let b = value.as_bytes();
    let hex = |s: &[u8]| s.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
    let zeros = |s: &[u8]| s.iter().all(|&c| c == b'0');
    let (version, trace, parent, flags) =
        (b.get(0..2)?, b.get(3..35)?, b.get(36..52)?, b.get(53..55)?);
    let shape = b[2] == b'-' && b[35] == b'-' && b[52] == b'-';
    let rest_ok = match version {
        b"00" => b.len() == 55,
        _ => b.len() == 55 || b[55] == b'-',
    };
    let valid = shape
        && rest_ok
        && hex(version)
        && version != b"ff"
        && hex(trace)
        && !zeros(trace)
        && hex(parent)
        && !zeros(parent)
        && hex(flags);
    let mut id = [0u8; 32];
    id.copy_from_slice(trace);
    valid.then_some(TraceId(id))
}

fn is_sane_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty() && bytes.len() <= 128 && bytes.iter().all(|b| b.is_ascii_graphic())
}

/// A new UUID-shaped (version 4 layout) correlation id: a per-process random seed mixed with a
/// counter, so ids are unique without a random draw per request.
pub fn generate_id() -> HeaderValue {
    static SEED: OnceLock<[u64; 2]> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = SEED.get_or_init(|| {
        let mut bytes = [0u8; 16];
        if aws_lc_rs::rand::fill(&mut bytes).is_err() {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            bytes = (nanos ^ u128::from(std::process::id())).to_le_bytes();
        }
        let (a, b) = bytes.split_at(8);
        [
            u64::from_le_bytes(a.try_into().unwrap_or_default()),
            u64::from_le_bytes(b.try_into().unwrap_or_default()),
        ]
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let hi = splitmix(seed[0] ^ n);
    let lo = splitmix(seed[1].wrapping_add(n));
    let value: u128 = (u128::from(hi) << 64) | u128::from(lo);
    // Version 4, variant 10xx.
    let value = (value & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = [b'-'; 36];
    // Two hex digits per byte; a dash before bytes 4, 6, 8 and 10 (8-4-4-4-12).
    let mut at = 0;
    for (i, byte) in value.to_be_bytes().into_iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            at += 1;
        }
        id[at] = HEX[usize::from(byte >> 4)];
        id[at + 1] = HEX[usize::from(byte & 0xf)];
        at += 2;
    }
    // One allocation that owns exactly these 36 bytes, shared by the request's and the
    // response's copy (a response header may stay in an HTTP/2 connection's header table, so
    // it must not pin anything else).
    HeaderValue::from_maybe_shared(Bytes::from_owner(id))
        .unwrap_or_else(|_| HeaderValue::from_static("00000000-0000-4000-8000-000000000000"))
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_uuid_shaped_and_unique() {
        let a = generate_id();
        let b = generate_id();
        assert_ne!(a, b);
        let s = a.to_str().unwrap();
        assert_eq!(s.len(), 36);
        assert_eq!(&s[14..15], "4");
        for (i, c) in s.chars().enumerate() {
            if matches!(i, 8 | 13 | 18 | 23) {
                assert_eq!(c, '-', "{s}");
            } else {
                assert!(c.is_ascii_hexdigit() && !c.is_ascii_uppercase(), "{s}");
            }
        }
        assert!("89ab".contains(&s[19..20]), "variant 10xx: {s}");
    }

    #[test]
    fn only_sane_client_ids_are_reused() {
        assert!(is_sane_id(&HeaderValue::from_static("abc-123")));
        assert!(!is_sane_id(&HeaderValue::from_static("")));
        assert!(!is_sane_id(&HeaderValue::from_static("has space")));
        assert!(!is_sane_id(
            &HeaderValue::try_from("x".repeat(200)).unwrap()
        ));
    }

    #[test]
    fn a_valid_traceparent_gives_its_trace_id() {
        let id =
            |v: &str| trace_id(&HeaderValue::from_str(v).unwrap()).map(|t| t.as_str().to_owned());
        let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert_eq!(
            id(&format!("00-{trace}-00f067aa0ba902b7-01")).as_deref(),
            Some(trace)
        );
        // A future version may carry more fields.
        assert_eq!(
            id(&format!("01-{trace}-00f067aa0ba902b7-01-more")).as_deref(),
            Some(trace)
        );
        for bad in [
            format!("00-{trace}-00f067aa0ba902b7-01-more"),
            format!("ff-{trace}-00f067aa0ba902b7-01"),
            format!("00-{}-00f067aa0ba902b7-01", trace.to_uppercase()),
            format!("00-{}-00f067aa0ba902b7-01", "0".repeat(32)),
            format!("00-{trace}-0000000000000000-01"),
            format!("00-{trace}-00f067aa0ba902b7-0"),
            format!("00_{trace}-00f067aa0ba902b7-01"),
            "00-abc".to_owned(),
            String::new(),
        ] {
            assert_eq!(id(&bad), None, "{bad}");
        }
    }
}
