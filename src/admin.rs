//! The admin listener: `GET /metrics` (Prometheus text), `/healthz` (alive) and `/readyz`
//! (200 once every start-up gate has opened, 503 before that and while draining).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::server::stopped;

/// Whether the gateway should receive traffic. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    inner: Arc<ReadinessInner>,
}

#[derive(Debug, Default)]
struct ReadinessInner {
    pending: AtomicUsize,
    started: AtomicBool,
    draining: AtomicBool,
}

/// A start-up condition that holds readiness back until [`ReadyGate::open`]. A gate dropped
/// without opening stays closed, so a task that dies before its first success keeps the
/// gateway unready.
#[derive(Debug)]
pub struct ReadyGate {
    readiness: Readiness,
    open: bool,
}

impl ReadyGate {
    /// The condition holds: readiness no longer waits for it. Opening twice is harmless.
    pub fn open(&mut self) {
        if !std::mem::replace(&mut self.open, true) {
            self.readiness.inner.pending.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Readiness {
    /// A new, not-yet-started readiness.
    pub fn new() -> Self {
        Readiness::default()
    }

    /// Adds a start-up condition (e.g. "the JWKS was fetched once").
    pub fn gate(&self) -> ReadyGate {
        self.inner.pending.fetch_add(1, Ordering::AcqRel);
        ReadyGate {
            readiness: self.clone(),
            open: false,
        }
    }

    /// The listeners are up.
    pub fn set_started(&self) {
        self.inner.started.store(true, Ordering::Release);
    }

    /// Shutdown has begun: report unready so load balancers stop sending traffic.
    pub fn set_draining(&self) {
        self.inner.draining.store(true, Ordering::Release);
    }

    /// True when the gateway should receive traffic.
    pub fn is_ready(&self) -> bool {
        self.inner.started.load(Ordering::Acquire)
            && !self.inner.draining.load(Ordering::Acquire)
            && self.inner.pending.load(Ordering::Acquire) == 0
    }
}

/// Serves the admin endpoints on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    readiness: Readiness,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped(&mut shutdown) => return,
        };
        let metrics = metrics.clone();
        let readiness = readiness.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let response = respond(&req, &metrics, &readiness);
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn respond(
    req: &Request<Incoming>,
    metrics: &Metrics,
    readiness: &Readiness,
) -> Response<Full<Bytes>> {
    let text = |status: StatusCode, body: &'static str| {
        let mut res = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
        *res.status_mut() = status;
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        res
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    match req.uri().path() {
        "/metrics" => {
            let mut res = Response::new(Full::new(Bytes::from(metrics.render())));
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            res
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if readiness.is_ready() => text(StatusCode::OK, "ready\n"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /metrics, /healthz or /readyz\n",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_waits_for_gates_and_drops_when_draining() {
        let r = Readiness::new();
        assert!(!r.is_ready());
        let mut gate = r.gate();
        r.set_started();
        assert!(!r.is_ready());
        gate.open();
        gate.open();
        assert!(r.is_ready());
        r.set_draining();
        assert!(!r.is_ready());
    }
}
