//! The admin listener: `GET /metrics` (Prometheus text), `/healthz` (alive), `/readyz`
//! (200 once every start-up gate has opened, 503 before that and while draining) and, with a
//! shared policy store, `/policy/revision` (JSON: the etcd revision the policies reflect);
//! with `listen.admin_explain`, `POST /explain` (a request as JSON → its explanation, see
//! `docs/explain.md`; the engine is handed in, this module knows nothing of it).

use std::convert::Infallible;
use std::future::Future;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::metrics::Metrics;
pub use crate::readiness::{Readiness, ReadyGate};
use crate::shutdown::stopped;

/// Renders the `GET /policy/revision` document (given by the shared policy store).
pub type PolicyStatus = std::sync::Arc<dyn Fn() -> String + Send + Sync>;

/// Answers `POST /explain`: the request body in, the status and JSON body out.
pub type Explain = std::sync::Arc<
    dyn Fn(Bytes) -> std::pin::Pin<Box<dyn Future<Output = (StatusCode, Bytes)> + Send>>
        + Send
        + Sync,
>;

/// The largest `POST /explain` body read.
pub const EXPLAIN_LIMIT: usize = 1 << 20;

/// Serves the admin endpoints on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    readiness: Readiness,
    policy_status: Option<PolicyStatus>,
    explain: Option<Explain>,
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
        let policy_status = policy_status.clone();
        let explain = explain.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let explain = explain
                    .clone()
                    .filter(|_| req.method() == Method::POST && req.uri().path() == "/explain");
                let answer = match explain {
                    Some(explain) => Err((req, explain)),
                    None => Ok(respond(&req, &metrics, &readiness, policy_status.as_ref())),
                };
                async move {
                    Ok::<_, Infallible>(match answer {
                        Ok(response) => response,
                        Err((req, explain)) => explain_response(req, explain).await,
                    })
                }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// `POST /explain`: the body (at most [`EXPLAIN_LIMIT`] bytes) to the engine.
async fn explain_response(req: Request<Incoming>, explain: Explain) -> Response<Full<Bytes>> {
    let body = Limited::new(req.into_body(), EXPLAIN_LIMIT).collect().await;
    let (status, body) = match body {
        Ok(body) => explain(body.to_bytes()).await,
        Err(_) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            Bytes::from_static(b"{\"error\":\"the request is not readable or larger than 1 MiB\"}"),
        ),
    };
    let mut res = Response::new(Full::new(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    res
}

fn respond(
    req: &Request<Incoming>,
    metrics: &Metrics,
    readiness: &Readiness,
    policy_status: Option<&PolicyStatus>,
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
        "/policy/revision" if policy_status.is_some() => {
            let body = policy_status.map(|status| status()).unwrap_or_default();
            let mut res = Response::new(Full::new(Bytes::from(body)));
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            res
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /metrics, /healthz or /readyz\n",
        ),
    }
}
