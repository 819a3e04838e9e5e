//! TLS configuration: the listeners' server certificate and the upstream client's roots.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::config::{ConfigError, TlsConfig};

/// The acceptor for the client listeners (ALPN: h2, http/1.1).
pub fn acceptor(config: &TlsConfig) -> Result<TlsAcceptor, ConfigError> {
    let certs = CertificateDer::pem_file_iter(&config.cert_file)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            ConfigError::invalid(
                "listen.tls.cert_file",
                format!("{}: {e}", config.cert_file.display()),
            )
        })?;
    let key = PrivateKeyDer::from_pem_file(&config.key_file).map_err(|e| {
        ConfigError::invalid(
            "listen.tls.key_file",
            format!("{}: {e}", config.key_file.display()),
        )
    })?;
    let mut server = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ConfigError::invalid("listen.tls", e))?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
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
