//! The JWKS URL: fetched with the gateway's own HTTP client before readiness, refreshed on an
//! interval, refetched (rate-limited) when a token names an unknown `kid`, and kept when a
//! refresh fails, up to `max_staleness`.
//!
//! The refresher is one task ([`Jwks::run`]). Requests that meet an unknown `kid` call
//! [`Jwks::request_refetch`]: at most one refetch starts per `refetch_min_interval` (a
//! scheduled refresh counts), and requests arriving while a fetch is in flight wait for it
//! instead of starting another. Between refetches an unknown `kid` is refused at once, which
//! is the negative cache.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Limited};
use jsonwebtoken::jwk::JwkSet;
use tokio::sync::{Notify, oneshot, watch};
use tokio::time::Instant;

use super::cache::TokenCache;
use super::config::JwksUrlConfig;
use super::keys::{self, Key};
use super::metrics::AuthMetrics;
use crate::body::Body;
use crate::readiness::ReadyGate;
use crate::settings::ConfigError;

/// The largest JWKS document accepted.
pub const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// At most this many requests wait for one refetch; more are refused at once.
const MAX_WAITERS: usize = 4096;

/// The longest pause between retries after failed fetches (unless the refresh interval is
/// shorter).
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The keys of the last good fetch.
#[derive(Debug, Default)]
pub struct Fetched {
    /// The signature keys.
    pub keys: Vec<Key>,
    at: Option<Instant>,
    digest: Option<[u8; 32]>,
}

#[derive(Debug, Default)]
struct Refetch {
    in_flight: bool,
    last_started: Option<Instant>,
    waiters: Vec<oneshot::Sender<()>>,
}

/// The JWKS URL source. Shared between the refresher task and the request path.
pub struct Jwks {
    url: Uri,
    config: JwksUrlConfig,
    client: crate::http_client::HttpsClient,
    fetched: ArcSwap<Fetched>,
    refetch: Mutex<Refetch>,
    wake: Notify,
    cache: Option<Arc<TokenCache>>,
    metrics: OnceLock<AuthMetrics>,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwks")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Why a fetch failed (for the log; never contains key material).
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("request failed: {0}")]
    Request(String),
    #[error("answered {0}")]
    Status(StatusCode),
    #[error("body: {0}")]
    Body(String),
    #[error("not a JWKS: {0}")]
    Json(serde_json::Error),
    #[error("no usable signature key ({0} skipped)")]
    NoKeys(usize),
}

impl Jwks {
    /// A source for `config`; nothing is fetched until [`Jwks::run`]. Verified tokens in `cache`
    /// are forgotten whenever the fetched key set changes.
    pub fn new(
        config: &JwksUrlConfig,
        cache: Option<Arc<TokenCache>>,
    ) -> Result<Jwks, ConfigError> {
        let url: Uri = config
            .url
            .parse()
            .map_err(|e| ConfigError::invalid("auth.jwks.url", format!("{:?}: {e}", config.url)))?;
        let client = crate::http_client::https_client(&crate::http_client::ClientSettings {
            connect_timeout: config.timeout,
            ca_file: config.ca_file.as_deref(),
            ca_file_key: "auth.jwks.ca_file",
            pool_idle_timeout: Duration::from_secs(30),
            pool_max_idle: 1,
        })?;
        Ok(Jwks {
            url,
            config: config.clone(),
            client,
            fetched: ArcSwap::from_pointee(Fetched::default()),
            refetch: Mutex::new(Refetch::default()),
            wake: Notify::new(),
            cache,
            metrics: OnceLock::new(),
        })
    }

    /// Counts fetches into `metrics` from now on (the first call wins).
    pub fn set_metrics(&self, metrics: AuthMetrics) {
        let _ = self.metrics.set(metrics);
    }

    /// The keys of the last good fetch (check [`Jwks::is_fresh`] before using them).
    pub fn current(&self) -> arc_swap::Guard<Arc<Fetched>> {
        self.fetched.load()
    }

    /// True when `fetched` may still be used.
    pub fn is_fresh(&self, fetched: &Fetched) -> bool {
        fetched
            .at
            .is_some_and(|at| at.elapsed() <= self.config.max_staleness)
    }

    /// Seconds since the last good fetch (`+Inf` before the first).
    pub fn age_seconds(&self) -> f64 {
        self.fetched
            .load()
            .at
            .map_or(f64::INFINITY, |at| at.elapsed().as_secs_f64())
    }

    /// How long a request waits for a refetch it asked for.
    pub fn wait_limit(&self) -> Duration {
        self.config.timeout + Duration::from_millis(500)
    }

    /// Asks for a refetch because a token named an unknown key. `None`: refused by the rate
    /// limit (the caller refuses the token now); otherwise the receiver completes when the
    /// fetch in flight (started now or earlier) has finished.
    pub fn request_refetch(&self) -> Option<oneshot::Receiver<()>> {
        let mut state = self.refetch.lock().unwrap_or_else(PoisonError::into_inner);
        if !state.in_flight {
            let recent = state
                .last_started
                .is_some_and(|t| t.elapsed() < self.config.refetch_min_interval);
            if recent {
                return None;
            }
            state.in_flight = true;
            state.last_started = Some(Instant::now());
            self.wake.notify_one();
        }
        if state.waiters.len() >= MAX_WAITERS {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        state.waiters.push(tx);
        Some(rx)
    }

    fn begin_fetch(&self) {
        let mut state = self.refetch.lock().unwrap_or_else(PoisonError::into_inner);
        state.in_flight = true;
        state.last_started = Some(Instant::now());
    }

    fn end_fetch(&self) {
        let waiters = {
            let mut state = self.refetch.lock().unwrap_or_else(PoisonError::into_inner);
            state.in_flight = false;
            std::mem::take(&mut state.waiters)
        };
        for waiter in waiters {
            let _ = waiter.send(());
        }
    }

    /// Installs a key set as if fetched now (the refresher does this; tests too).
    pub fn install(&self, keys: Vec<Key>, digest: Option<[u8; 32]>) {
        let changed = self.fetched.load().digest != digest || digest.is_none();
        let count = keys.len();
        self.fetched.store(Arc::new(Fetched {
            keys,
            at: Some(Instant::now()),
            digest,
        }));
        if changed && let Some(cache) = &self.cache {
            cache.clear();
        }
        self.count(Some(count));
    }

    fn count(&self, keys: Option<usize>) {
        if let Some(m) = self.metrics.get() {
            m.refresh(keys);
        }
    }

    /// The refresher: fetches at once, opens `gate` after the first success, then refreshes
    /// every `refresh_interval` (with backoff after failures, capped at one minute) and on
    /// unknown-`kid` requests, until `stop` turns true.
    pub async fn run(self: Arc<Self>, mut gate: ReadyGate, mut stop: watch::Receiver<bool>) {
        let mut failures: u32 = 0;
        loop {
            self.begin_fetch();
            match self.fetch().await {
                Ok((keys, skipped, digest)) => {
                    if failures > 0 || !self.is_fresh(&self.current()) {
                        tracing::info!(url = %self.url, keys = keys.len(), "auth: JWKS fetched");
                    }
                    if skipped > 0 {
                        tracing::debug!(url = %self.url, skipped, "auth: JWKS entries skipped");
                    }
                    self.install(keys, Some(digest));
                    gate.open();
                    failures = 0;
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    self.count(None);
                    let current = self.current();
                    if self.is_fresh(&current) {
                        tracing::warn!(url = %self.url, %error, "auth: JWKS refresh failed; keeping the last good keys");
                    } else if current.at.is_some() {
                        // Tokens admitted with the stale keys are not admitted from the cache
                        // either.
                        if let Some(cache) = &self.cache {
                            cache.clear();
                        }
                        tracing::error!(url = %self.url, %error, "auth: JWKS refresh failed and the last good keys are older than auth.jwks.max_staleness; tokens they signed are refused");
                    } else {
                        tracing::error!(url = %self.url, %error, "auth: JWKS fetch failed; not ready until it succeeds");
                    }
                }
            }
            self.end_fetch();
            let delay = if failures == 0 {
                self.config.refresh_interval
            } else {
                let backoff = Duration::from_millis(125u64 << failures.min(9));
                backoff.min(MAX_BACKOFF).min(self.config.refresh_interval)
            };
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.wake.notified() => {}
                _ = crate::shutdown::stopped(&mut stop) => return,
            }
        }
    }

    /// One fetch: GET, 200, at most [`MAX_JWKS_BYTES`], a JWKS with at least one usable key.
    async fn fetch(&self) -> Result<(Vec<Key>, usize, [u8; 32]), FetchError> {
        let limit = self.config.timeout;
        let body = tokio::time::timeout(limit, self.get())
            .await
            .map_err(|_| FetchError::Timeout(limit))??;
        let set: JwkSet = serde_json::from_slice(&body).map_err(FetchError::Json)?;
        let (keys, skipped) = keys::from_jwk_set(&set);
        if keys.is_empty() {
            return Err(FetchError::NoKeys(skipped));
        }
        let digest = sha256(&body);
        Ok((keys, skipped, digest))
    }

    async fn get(&self) -> Result<Bytes, FetchError> {
        let request = Request::get(self.url.clone())
            .header(header::ACCEPT, "application/json")
            .header(
                header::USER_AGENT,
                concat!("kmsgate/", env!("CARGO_PKG_VERSION")),
            )
            .body(Body::empty())
            .map_err(|e| FetchError::Request(e.to_string()))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| FetchError::Request(crate::http_client::error_chain(&e)))?;
        if response.status() != StatusCode::OK {
            return Err(FetchError::Status(response.status()));
        }
        let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
            .collect()
            .await
            .map_err(|e| FetchError::Body(e.to_string()))?;
        Ok(body.to_bytes())
    }
}

/// The SHA-256 of a fetched key set: a changed set clears the token cache.
fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}
