//! TLS configuration: the listeners' server certificate (the clients' roots are
//! [`crate::http_client`]'s).

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;

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
    if certs.is_empty() {
        return Err(ConfigError::invalid(
            "listen.tls.cert_file",
            format!(
                "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                config.cert_file.display()
            ),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&config.key_file).map_err(|e| {
        ConfigError::invalid(
            "listen.tls.key_file",
            format!("{}: {e}", config.key_file.display()),
        )
    })?;
    let mut server = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| match e {
            tokio_rustls::rustls::Error::InconsistentKeys(_) => ConfigError::invalid(
                "listen.tls.key_file",
                format!(
                    "{} is not the private key of the certificate in {}",
                    config.key_file.display(),
                    config.cert_file.display()
                ),
            ),
            e => ConfigError::invalid("listen.tls", e),
        })?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}
