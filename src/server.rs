//! Client listeners: HTTP/1.1 and h2c (or TLS with ALPN), a connection limit, a header-read
//! timeout, and graceful drain.

pub mod proxy_protocol;
mod respond;
pub mod tls;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::body::Body;
use crate::conn::{ConnInfo, ListenerKind};
use crate::context::RequestContext;
use crate::metrics::ListenerMetrics;
use respond::Respond;

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
    serve_with_proxy_protocol(listener, kind, service, options, None, None, shutdown).await;
}

/// [`serve`], and with `proxy_protocol` every connection must first send a PROXY header from a
/// trusted proxy (see [`proxy_protocol`]); its source address becomes the peer. With `metrics`,
/// open connections, requests in flight and connection-limit waits are counted.
pub async fn serve_with_proxy_protocol<S>(
    listener: TcpListener,
    kind: ListenerKind,
    service: S,
    options: ServeOptions,
    proxy_protocol: Option<proxy_protocol::ProxyProtocol>,
    metrics: Option<ListenerMetrics>,
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
    let http = Arc::new(Http::new(options.header_read_timeout));
    let graceful = GracefulShutdown::new();

    loop {
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
        // The permit is taken after accepting: the listeners share the limit, and one waiting
        // in accept() must not hold a permit another listener's client needs.
        let permit = match options.connections.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if let Some(metrics) = &metrics {
                    metrics.connection_limit_wait();
                }
                tokio::select! {
                    permit = options.connections.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                    _ = stopped(&mut shutdown) => break,
                }
            }
        };
        let open = metrics.as_ref().map(ListenerMetrics::connection);
        let _ = stream.set_nodelay(true);
        let info = ConnInfo {
            peer,
            local,
            listener: kind,
            tls: options.tls.is_some(),
        };
        let conn = Conn {
            info,
            service: service.clone(),
            http: http.clone(),
            proxy_protocol: proxy_protocol.clone(),
            watcher: graceful.watcher(),
            metrics: metrics.clone(),
        };
        // Until hyper has the connection (and drains it gracefully), shutdown just closes it.
        let stop = shutdown.clone();
        // Plain and TLS connections are separate tasks: each task is as large as its future,
        // and a plain connection's future need not hold room for a TLS session.
        match &options.tls {
            None => tokio::spawn(async move {
                let _permit = permit;
                let _open = open;
                conn.serve_plain(stream, stop).await;
            }),
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    let _open = open;
                    conn.serve_tls(stream, acceptor, stop).await;
                })
            }
        };
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

/// How a listener's connections speak HTTP. The protocol is chosen per connection, before
/// hyper reads anything: from its first bytes (the HTTP/2 preface or not) on a plain
/// connection, from ALPN on TLS. hyper-util's `auto` builder would decide as well, but it
/// consumes the first 24 bytes itself and hands them back to HTTP/1 as a separate first read,
/// which makes hyper grow the connection's 8 KiB read buffer to 16 KiB.
struct Http {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
    /// For a connection whose first bytes do not decide (a partial HTTP/2 preface, or TLS
    /// without ALPN): it reads the preface itself.
    auto: auto::Builder<TokioExecutor>,
    header_read_timeout: Duration,
}

impl Http {
    fn new(header_read_timeout: Duration) -> Http {
        // half_close: while a request is in flight, hyper does not read the connection to
        // notice an early EOF. That read would allocate a second 8 KiB read buffer per
        // request in flight, because the first one is still referenced by the request's
        // headers. A client that goes away is noticed when its response is written.
        let mut http1 = http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            .half_close(true);
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2.timer(TokioTimer::new());
        let mut auto = auto::Builder::new(TokioExecutor::new());
        auto.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            .half_close(true);
        auto.http2().timer(TokioTimer::new());
        Http {
            http1,
            http2,
            auto,
            header_read_timeout,
        }
    }
}

/// The protocol of a connection, as far as its first bytes tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
    /// Not decided yet: let hyper-util's `auto` builder read on.
    Undecided,
}

/// What an HTTP/2 connection with prior knowledge (h2c) starts with.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The protocol of a connection whose first bytes are `first` (at most the preface's length).
fn protocol_of(first: &[u8]) -> Protocol {
    if first == H2_PREFACE {
        Protocol::Http2
    } else if H2_PREFACE.starts_with(first) {
        Protocol::Undecided
    } else {
        Protocol::Http1
    }
}

/// One accepted connection and what serving it takes.
struct Conn<S> {
    info: ConnInfo,
    service: S,
    http: Arc<Http>,
    proxy_protocol: Option<proxy_protocol::ProxyProtocol>,
    watcher: Watcher,
    metrics: Option<ListenerMetrics>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S> Conn<S>
where
    S: tower_service::Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    /// Reads the PROXY header, if this listener requires one; false closes the connection.
    async fn proxy_header(&mut self, stream: &mut TcpStream) -> bool {
        let Some(proxy_protocol) = &self.proxy_protocol else {
            return true;
        };
        match proxy_protocol.accept(stream, self.info.peer).await {
            Ok(source) => {
                self.info.peer = source;
                true
            }
            Err(e) => {
                tracing::debug!(peer = %self.info.peer, error = %e, "connection closed");
                false
            }
        }
    }

    async fn serve_plain(mut self, mut stream: TcpStream, mut shutdown: watch::Receiver<bool>) {
        let protocol = tokio::select! {
            protocol = self.start_plain(&mut stream) => protocol,
            _ = stopped(&mut shutdown) => None,
        };
        if let Some(protocol) = protocol {
            self.serve(TokioIo::new(stream), protocol).await;
        }
    }

    /// The PROXY header, then a peek at the first bytes (they stay in the socket for hyper to
    /// read): the protocol, or None to close. A client that sends nothing at all is held to
    /// the header-read timeout as well.
    async fn start_plain(&mut self, stream: &mut TcpStream) -> Option<Protocol> {
        if !self.proxy_header(stream).await {
            return None;
        }
        let mut first = [0u8; H2_PREFACE.len()];
        match tokio::time::timeout(self.http.header_read_timeout, stream.peek(&mut first)).await {
            Ok(Ok(0)) => None,
            Ok(Ok(n)) => Some(protocol_of(&first[..n])),
            Ok(Err(e)) => {
                tracing::debug!(peer = %self.info.peer, error = %e, "connection closed");
                None
            }
            Err(_) => {
                tracing::debug!(peer = %self.info.peer, "no request within the header-read timeout");
                None
            }
        }
    }

    async fn serve_tls(
        mut self,
        stream: TcpStream,
        acceptor: TlsAcceptor,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let started = tokio::select! {
            started = self.start_tls(stream, acceptor) => started,
            _ = stopped(&mut shutdown) => None,
        };
        if let Some((stream, protocol)) = started {
            self.serve(TokioIo::new(stream), protocol).await;
        }
    }

    /// The PROXY header, then the TLS handshake (within the header-read timeout, like a plain
    /// connection's first bytes): the stream and its protocol (by ALPN), or None to close.
    async fn start_tls(
        &mut self,
        mut stream: TcpStream,
        acceptor: TlsAcceptor,
    ) -> Option<(TlsStream<TcpStream>, Protocol)> {
        if !self.proxy_header(&mut stream).await {
            return None;
        }
        let handshake = acceptor.accept(stream);
        let stream = match tokio::time::timeout(self.http.header_read_timeout, handshake).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::debug!(peer = %self.info.peer, error = %e, "TLS handshake failed");
                return None;
            }
            Err(_) => {
                tracing::debug!(peer = %self.info.peer, "no TLS handshake within the header-read timeout");
                return None;
            }
        };
        let protocol = match stream.get_ref().1.alpn_protocol() {
            Some(b"h2") => Protocol::Http2,
            Some(b"http/1.1") => Protocol::Http1,
            _ => Protocol::Undecided,
        };
        Some((stream, protocol))
    }

    async fn serve<I>(self, io: I, protocol: Protocol)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let Conn {
            info,
            service,
            http,
            watcher,
            metrics,
            ..
        } = self;
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let mut req = req.map(Body::incoming);
            // The request's one extension entry: its context, holding the connection.
            req.extensions_mut()
                .insert(Arc::new(RequestContext::for_conn(info)));
            // In flight from the request's head to the response's head.
            let in_flight = metrics.as_ref().map(ListenerMetrics::request);
            Respond::call(service.clone(), req, in_flight)
        });
        // HTTP/1.1 inline; the other two boxed, so that they do not size every connection's
        // task (HTTP/2 connections are few and long-lived).
        let result: Result<(), BoxError> = match protocol {
            Protocol::Http1 => watcher
                .watch(http.http1.serve_connection(io, service))
                .await
                .map_err(Into::into),
            Protocol::Http2 => Box::pin(watcher.watch(http.http2.serve_connection(io, service)))
                .await
                .map_err(Into::into),
            Protocol::Undecided => {
                Box::pin(watcher.watch(http.auto.serve_connection(io, service).into_owned())).await
            }
        };
        if let Err(e) = result {
            tracing::debug!(peer = %info.peer, error = %e, "connection ended with an error");
        }
    }
}

pub use crate::shutdown::stopped;

/// Binds a TCP listener, naming the address on failure.
pub async fn bind(addr: SocketAddr, what: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(e.kind(), format!("cannot listen on {addr} ({what}): {e}"))
    })
}
