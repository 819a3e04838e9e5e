//! Client listeners: HTTP/1.1 and h2c (or TLS with ALPN), a connection limit, a header-read
//! timeout, and graceful drain.

pub mod proxy_protocol;
pub mod tls;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::body::Body;
use crate::conn::{ConnInfo, ListenerKind};

/// What every client listener shares.
#[derive(Clone)]
pub struct ServeOptions {
    /// Bounds open client connections across listeners.
    pub connections: Arc<Semaphore>,
    /// Request headers must arrive within this time.
    pub header_read_timeout: Duration,
    /// In-flight requests get this long to finish once shutdown starts.
    pub drain_timeout: Duration,
    /// TLS, if configured.
    pub tls: Option<TlsAcceptor>,
}

/// Accepts connections on `listener` and serves each with `service` until `shutdown` turns
/// true; then stops accepting and lets open connections finish their in-flight requests, for
/// at most `drain_timeout`.
pub async fn serve<S>(
    listener: TcpListener,
    kind: ListenerKind,
    service: S,
    options: ServeOptions,
    shutdown: watch::Receiver<bool>,
) where
    S: tower_service::Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    serve_with_proxy_protocol(listener, kind, service, options, None, shutdown).await;
}

/// [`serve`], and with `proxy_protocol` every connection must first send a PROXY header from a
/// trusted proxy (see [`proxy_protocol`]); its source address becomes the peer.
pub async fn serve_with_proxy_protocol<S>(
    listener: TcpListener,
    kind: ListenerKind,
    service: S,
    options: ServeOptions,
    proxy_protocol: Option<proxy_protocol::ProxyProtocol>,
    mut shutdown: watch::Receiver<bool>,
) where
    S: tower_service::Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let local = match listener.local_addr() {
        Ok(addr) => addr,
        Err(e) => {
            tracing::error!(error = %e, "listener has no local address");
            return;
        }
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();

    loop {
        let permit = tokio::select! {
            permit = options.connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = stopped(&mut shutdown) => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, listener = kind.as_str(), "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped(&mut shutdown) => break,
        };
        let _ = stream.set_nodelay(true);
        let info = ConnInfo {
            peer,
            local,
            listener: kind,
            tls: options.tls.is_some(),
        };
        let service = service.clone();
        let builder = builder.clone();
        let tls = options.tls.clone();
        let proxy_protocol = proxy_protocol.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let (mut stream, mut info) = (stream, info);
            if let Some(proxy_protocol) = proxy_protocol {
                match proxy_protocol.accept(&mut stream, info.peer).await {
                    Ok(source) => info.peer = source,
                    Err(e) => {
                        tracing::debug!(peer = %info.peer, error = %e, "connection closed");
                        return;
                    }
                }
            }
            serve_connection(stream, info, tls, service, &builder, watcher).await;
        });
    }
    drop(listener);
    tracing::info!(listener = kind.as_str(), %local, "stopped accepting; draining connections");
    if tokio::time::timeout(options.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            listener = kind.as_str(),
            "drain timeout reached; closing remaining connections"
        );
    }
}

async fn serve_connection<S>(
    stream: TcpStream,
    info: ConnInfo,
    tls: Option<TlsAcceptor>,
    service: S,
    builder: &auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
) where
    S: tower_service::Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let mut req = req.map(Body::incoming);
        req.extensions_mut().insert(info);
        service.clone().oneshot(req)
    });
    let result = match tls {
        Some(acceptor) => match acceptor.accept(stream).await {
            Ok(stream) => {
                let conn = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .into_owned();
                watcher.watch(conn).await
            }
            Err(e) => {
                tracing::debug!(peer = %info.peer, error = %e, "TLS handshake failed");
                return;
            }
        },
        None => {
            let conn = builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
            watcher.watch(conn).await
        }
    };
    if let Err(e) = result {
        tracing::debug!(peer = %info.peer, error = %e, "connection ended with an error");
    }
}

/// Completes once `shutdown` turns true (or its sender is gone).
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Binds a TCP listener, naming the address on failure.
pub async fn bind(addr: SocketAddr, what: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(e.kind(), format!("cannot listen on {addr} ({what}): {e}"))
    })
}
