//! The gateway's own HTTP/HTTPS client: pooled HTTP/1.1 over rustls, used for the upstream
//! KMS and for fetching a JWKS URL.
//!
//! A leaf below both users, so that token verification does not reach into the upstream.

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use crate::body::Body;
use crate::settings::ConfigError;

/// The gateway's own pooled HTTP/HTTPS client (for the upstream and the JWKS fetcher).
pub type HttpsClient = Client<NoConnInfo<HttpsConnector<HttpConnector>>, Body>;

/// How to build an [`HttpsClient`].
#[derive(Clone, Copy, Debug)]
pub struct ClientSettings<'a> {
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// PEM CA bundle; the system roots when absent.
    pub ca_file: Option<&'a std::path::Path>,
    /// The config key of `ca_file`, for error messages.
    pub ca_file_key: &'static str,
    /// Idle pooled connections are closed after this time.
    pub pool_idle_timeout: Duration,
    /// At most this many idle connections per host.
    pub pool_max_idle: usize,
}

/// Builds a pooled HTTP/1.1 client for `http://` and `https://` URLs (rustls, TCP_NODELAY).
pub fn https_client(settings: &ClientSettings<'_>) -> Result<HttpsClient, ConfigError> {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(settings.connect_timeout));
    http.set_nodelay(true);
    http.enforce_http(false);
    let tls = client_config(settings.ca_file, settings.ca_file_key)?;
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(settings.pool_idle_timeout)
        .pool_max_idle_per_host(settings.pool_max_idle)
        .build(NoConnInfo(connector)))
}

/// A connector whose connections report no extra information to the client.
///
/// hyper-util's `HttpConnector` describes each connection with an `HttpInfo` (local and remote
/// address), which the pooled client copies into the extensions of *every* response: three
/// heap allocations per request (the extensions map, its table and the value) that nothing in
/// the gateway reads. This wrapper keeps what the client needs from a connection (proxied or
/// not, HTTP/2 negotiated by ALPN or not) and drops the rest.
#[derive(Clone, Debug)]
pub struct NoConnInfo<C>(pub C);

impl<C> tower_service::Service<Uri> for NoConnInfo<C>
where
    C: tower_service::Service<Uri>,
    C::Future: Unpin,
{
    type Response = Quiet<C::Response>;
    type Error = C::Error;
    type Future = Connecting<C::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), C::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        Connecting(self.0.call(uri))
    }
}

/// The future of [`NoConnInfo`]: the inner connector's, its connection wrapped in [`Quiet`].
#[derive(Debug)]
pub struct Connecting<F>(F);

impl<F: Future<Output = Result<T, E>> + Unpin, T, E> Future for Connecting<F> {
    type Output = Result<Quiet<T>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map_ok(Quiet)
    }
}

/// A connection that reports nothing beyond what the client needs (see [`NoConnInfo`]); reads
/// and writes go straight to the inner connection.
#[derive(Debug)]
pub struct Quiet<T>(T);

impl<T: Connection> Connection for Quiet<T> {
    fn connected(&self) -> Connected {
        let inner = self.0.connected();
        let connected = Connected::new().proxy(inner.is_proxied());
        if inner.is_negotiated_h2() {
            connected.negotiated_h2()
        } else {
            connected
        }
    }
}

impl<T: Read + Unpin> Read for Quiet<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for Quiet<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// The client configuration for an `https://` upstream: the CA bundle from `ca_file`, or the
/// system roots. `key` names the setting in error messages.
pub fn client_config(ca_file: Option<&Path>, key: &str) -> Result<ClientConfig, ConfigError> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
                .map_err(|e| ConfigError::invalid(key, format!("{}: {e}", path.display())))?;
            if certs.is_empty() {
                // Every HTTPS connection would fail verification: say so now, not per request.
                return Err(ConfigError::invalid(
                    key,
                    format!(
                        "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                        path.display()
                    ),
                ));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| ConfigError::invalid(key, format!("{}: {e}", path.display())))?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for cert in native.certs {
                let _ = roots.add(cert);
            }
        }
    }
    Ok(ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The error and its sources, for a log line.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use hyper_util::client::legacy::connect::HttpInfo;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn responses_carry_no_connection_info() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.ends_with(b"\r\n\r\n") {
                let n = stream.read(&mut buf).await.unwrap();
                assert!(n > 0, "the client closed before its request head ended");
                head.extend_from_slice(&buf[..n]);
            }
            stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await
                .unwrap();
        });
        let client = https_client(&ClientSettings {
            connect_timeout: Duration::from_secs(5),
            ca_file: None,
            ca_file_key: "upstream.ca_file",
            pool_idle_timeout: Duration::from_secs(5),
            pool_max_idle: 1,
        })
        .unwrap();
        let request = http::Request::get(format!("http://{addr}/"))
            .body(Body::empty())
            .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.extensions().get::<HttpInfo>().is_none());
        assert!(response.extensions().is_empty());
    }
}
