//! `kmsgate dev-kms`: the embedded dev KMS served on its own, as a plain HTTP server with the
//! gateway's server (the dev KMS itself knows no listener).

use std::future::Future;

use crate::devkms::DevKms;
use crate::server;

/// Serves the dev KMS as a plain HTTP server on `addr` until `shutdown` completes.
pub async fn serve(
    addr: std::net::SocketAddr,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let listener = server::bind(addr, "dev-kms").await?;
    serve_on(listener, shutdown).await;
    Ok(())
}

/// Serves the dev KMS on a bound listener until `shutdown` completes (for tests on port 0).
pub async fn serve_on(listener: tokio::net::TcpListener, shutdown: impl Future<Output = ()>) {
    let addr = listener
        .local_addr()
        .map_or_else(|_| "?".to_owned(), |a| a.to_string());
    tracing::info!(%addr, "dev KMS listening (in-memory; nothing is persisted)");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let options = server::ServeOptions {
        connections: std::sync::Arc::new(tokio::sync::Semaphore::new(10_000)),
        header_read_timeout: std::time::Duration::from_secs(10),
        drain_timeout: std::time::Duration::from_secs(5),
        tls: None,
    };
    let task = tokio::spawn(server::serve(
        listener,
        crate::conn::ListenerKind::Public,
        DevKms::new(),
        options,
        stop_rx,
    ));
    shutdown.await;
    let _ = stop_tx.send(true);
    let _ = task.await;
}
