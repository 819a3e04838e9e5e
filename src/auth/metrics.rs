//! The bearer layer's metric families, registered once at start-up with every handle resolved.
//!
//! - `kmsgate_token_verifications_total{result}`: one per token decision (`ok`, `decoded` in
//!   decode-only mode, or a [`Failure`] label); cache hits count as `ok`.
//! - `kmsgate_token_cache_hits_total`, `kmsgate_token_cache_misses_total`.
//! - `kmsgate_jwks_refresh_total{result}`: `ok` or `error`, per JWKS URL fetch.
//! - `kmsgate_jwks_keys`: signature keys in the last good fetched set.
//! - `kmsgate_jwks_age_seconds`: seconds since the last good fetch, computed at scrape time
//!   (`+Inf` before the first).

use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use super::outcome::Failure;
use crate::metrics::{defined, register, registered};

/// The handles the bearer layer and the JWKS refresher count into. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AuthMetrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    ok: IntCounter,
    decoded: IntCounter,
    failures: Vec<IntCounter>,
    cache_hits: IntCounter,
    cache_misses: IntCounter,
    refresh_ok: IntCounter,
    refresh_error: IntCounter,
    jwks_keys: IntGauge,
}

impl AuthMetrics {
    /// Registers the families in `registry`; `age` reports the JWKS age in seconds at scrape
    /// time (only registered when a JWKS URL is configured).
    pub fn register(
        registry: &Registry,
        age: Option<Box<dyn Fn() -> f64 + Send + Sync>>,
    ) -> AuthMetrics {
        let verifications = registered(
            registry,
            IntCounterVec::new(
                Opts::new(
                    "kmsgate_token_verifications_total",
                    "Bearer-token decisions by result",
                ),
                &["result"],
            ),
        );
        let counter = |name: &str, help: &str| registered(registry, IntCounter::new(name, help));
        let cache_hits = counter(
            "kmsgate_token_cache_hits_total",
            "Tokens admitted from the verified-token cache",
        );
        let cache_misses = counter(
            "kmsgate_token_cache_misses_total",
            "Tokens not in the verified-token cache",
        );
        let refresh = registered(
            registry,
            IntCounterVec::new(
                Opts::new("kmsgate_jwks_refresh_total", "JWKS URL fetches by result"),
                &["result"],
            ),
        );
        let jwks_keys = registered(
            registry,
            IntGauge::new(
                "kmsgate_jwks_keys",
                "Signature keys in the last good JWKS fetched from the URL",
            ),
        );
        if let Some(age) = age {
            let gauge = defined(Gauge::new(
                "kmsgate_jwks_age_seconds",
                "Seconds since the last good JWKS fetch (+Inf before the first)",
            ));
            register(registry, AgeCollector { gauge, age });
        }
        AuthMetrics {
            inner: Arc::new(Inner {
                ok: verifications.with_label_values(&["ok"]),
                decoded: verifications.with_label_values(&["decoded"]),
                failures: Failure::ALL
                    .iter()
                    .map(|f| verifications.with_label_values(&[f.label()]))
                    .collect(),
                cache_hits,
                cache_misses,
                refresh_ok: refresh.with_label_values(&["ok"]),
                refresh_error: refresh.with_label_values(&["error"]),
                jwks_keys,
            }),
        }
    }

    /// Counts a token decision.
    pub fn decision(&self, result: Result<Admission, Failure>) {
        match result {
            Ok(Admission::Verified) => self.inner.ok.inc(),
            Ok(Admission::Decoded) => self.inner.decoded.inc(),
            Err(f) => self.inner.failures[f as usize].inc(),
        }
    }

    /// Counts a cache lookup.
    pub fn cache(&self, hit: bool) {
        if hit {
            self.inner.cache_hits.inc();
        } else {
            self.inner.cache_misses.inc();
        }
    }

    /// Counts a JWKS fetch; on success, records the number of keys.
    pub fn refresh(&self, keys: Option<usize>) {
        match keys {
            Some(n) => {
                self.inner.refresh_ok.inc();
                self.inner
                    .jwks_keys
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
            None => self.inner.refresh_error.inc(),
        }
    }
}

/// How an admitted token was checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Verified (now or earlier, from the cache).
    Verified,
    /// Read without verification (decode-only mode).
    Decoded,
}

/// A gauge whose value is computed when `/metrics` is scraped.
struct AgeCollector {
    gauge: Gauge,
    age: Box<dyn Fn() -> f64 + Send + Sync>,
}

impl Collector for AgeCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.gauge.set((self.age)());
        self.gauge.collect()
    }
}
