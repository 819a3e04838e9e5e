//! Talking to etcd: the client options `[policies.etcd]` asks for, a deadline on every call,
//! and the one error type for it.

use std::fmt;
use std::time::Duration;

use etcd_client::{Certificate, ConnectOptions, Identity, TlsOptions};
use tokio::time::{Instant, sleep, timeout};

use super::config::EtcdConfig;
use crate::settings::ConfigError;

/// A failure talking to etcd.
#[derive(Debug)]
pub enum EtcdError {
    /// etcd did not answer within `request_timeout`.
    Timeout(&'static str),
    /// The client or etcd reported an error.
    Client(etcd_client::Error),
    /// The watch ended or was cancelled by etcd.
    Watch(String),
}

impl fmt::Display for EtcdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EtcdError::Timeout(what) => write!(f, "etcd did not answer in time ({what})"),
            EtcdError::Client(e) => write!(f, "{e}"),
            EtcdError::Watch(why) => write!(f, "watch ended: {why}"),
        }
    }
}

impl std::error::Error for EtcdError {}

impl From<etcd_client::Error> for EtcdError {
    fn from(e: etcd_client::Error) -> Self {
        EtcdError::Client(e)
    }
}

fn read_pem(key: &str, path: &std::path::Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| ConfigError::invalid(key, format!("{}: {e}", path.display())))
}

/// The client options `config` asks for: timeouts, keep-alive, auth, TLS (PEM files read now,
/// so a missing file is a start-up error naming its key).
pub(super) fn connect_options(config: &EtcdConfig) -> Result<ConnectOptions, ConfigError> {
    let mut options = ConnectOptions::new()
        .with_connect_timeout(config.connect_timeout)
        .with_keep_alive(config.heartbeat, config.request_timeout)
        .with_keep_alive_while_idle(true);
    if let (Some(user), Some(password)) = (&config.user, &config.password) {
        options = options.with_user(user.clone(), password.expose().to_owned());
    }
    if config.ca_file.is_some() || config.cert_file.is_some() {
        let mut tls = TlsOptions::new();
        if let Some(ca) = &config.ca_file {
            tls = tls.ca_certificate(Certificate::from_pem(read_pem(
                "policies.etcd.ca_file",
                ca,
            )?));
        }
        if let (Some(cert), Some(key)) = (&config.cert_file, &config.key_file) {
            tls = tls.identity(Identity::from_pem(
                read_pem("policies.etcd.cert_file", cert)?,
                read_pem("policies.etcd.key_file", key)?,
            ));
        }
        options = options.with_tls(tls);
    }
    Ok(options)
}

/// Runs `future` within `limit`, naming `what` if it does not finish.
pub(super) async fn bounded<T>(
    limit: Duration,
    what: &'static str,
    future: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, EtcdError> {
    match timeout(limit, future).await {
        Ok(result) => result.map_err(EtcdError::from),
        Err(_) => Err(EtcdError::Timeout(what)),
    }
}

/// The pause between two tries of [`retried`].
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// Runs `call` within `limit`, trying again while it fails fast: a client whose channel is
/// still reconnecting to members that came back (after the whole cluster restarted) fails at
/// once, and a moment later succeeds. Only for calls that are safe to repeat (a read, a
/// conditional write); a call that used up the time is not tried again.
pub(super) async fn retried<T, F>(
    limit: Duration,
    what: &'static str,
    mut call: impl FnMut() -> F,
) -> Result<T, EtcdError>
where
    F: Future<Output = Result<T, etcd_client::Error>>,
{
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match bounded(left, what, call()).await {
            Err(EtcdError::Client(e))
                if deadline.saturating_duration_since(Instant::now()) > RETRY_PAUSE =>
            {
                tracing::debug!(error = %e, "etcd {what} failed at once; trying again");
                sleep(RETRY_PAUSE).await;
            }
            result => return result,
        }
    }
}
