//! The gateway's own HTTP/HTTPS client: pooled HTTP/1.1 over rustls, used for the upstream
//! KMS and for fetching a JWKS URL.
//!
//! A leaf below both users, so that token verification does not reach into the upstream.

use std::path::Path;
use std::time::Duration;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use crate::body::Body;
use crate::settings::ConfigError;

/// The gateway's own pooled HTTP/HTTPS client (for the upstream and the JWKS fetcher).
pub type HttpsClient = Client<HttpsConnector<HttpConnector>, Body>;

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
        .build(connector))
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
