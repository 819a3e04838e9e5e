//! Bearer-token validation: JWT verification, key sources, the verified-token cache.
//!
//! Every Key Protect request carries `Authorization: Bearer <IAM access token>`. [`Auth`]
//! decides on it: a missing or malformed token, or one without a string `sub`, is a
//! [`Failure`] that maps to 400 `BEARER_SUB_EXTRACTION_ERR`; a well-formed token that fails
//! verification (signature, algorithm, key, `exp`, `nbf`, `iss`, `aud`) maps to 401
//! `UNAUTHORIZED_ERR`. An admitted token yields an [`Identity`] for the layers after the
//! bearer layer ([`crate::layer::bearer`]).
//!
//! - [`config`] — `[auth]`.
//! - [`token`] — reading the header and the JWT without verifying it.
//! - [`keys`] — PEM, HMAC and JWKS keys, and which keys a token selects.
//! - [`signature`] — key material parsed once at load time, and the signature check.
//! - [`claims`] — the registered claims (`exp`, `nbf`, `iss`, `aud`) and their checks.
//! - [`verify`] — the decision itself (pure).
//! - [`cache`] — verified tokens by their exact bytes (found by a keyed hash), until their `exp`.
//! - [`jwks`] — the JWKS URL and its refresher task.
//! - [`metrics`], [`outcome`] — the closed sets of results, notes and metric labels.
//! - [`devtoken`] — `kmsgate token`, tokens signed with a development key.

pub mod cache;
pub mod claims;
pub mod config;
pub mod devtoken;
pub mod identity;
pub mod jwks;
pub mod keys;
pub mod metrics;
pub mod outcome;
pub mod signature;
pub mod token;
pub mod verify;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, header};

pub use config::{
    AuthConfig, CacheConfig, HmacKeyConfig, JwksUrlConfig, Mode, PemKeyConfig, ServiceRules,
};
pub use identity::Identity;
pub use metrics::Admission;
pub use outcome::Failure;

use crate::settings::ConfigError;
use cache::TokenCache;
use jwks::Jwks;
use keys::Key;
use metrics::AuthMetrics;
use verify::Verifier;

/// The bearer-token decision maker: verifier, key sources, cache and metrics.
#[derive(Debug)]
pub struct Auth {
    verifier: Verifier,
    jwks: Option<Arc<Jwks>>,
    metrics: AuthMetrics,
}

impl Auth {
    /// Loads the keys of `config` and registers the auth metrics in `registry`. A JWKS URL is
    /// not fetched here: run [`Auth::jwks`]'s refresher ([`Jwks::run`]).
    pub fn new(config: &AuthConfig, registry: &prometheus::Registry) -> Result<Auth, ConfigError> {
        config.validate()?;
        let verify = config.mode == Mode::Verify;
        let static_keys = if verify {
            keys::load_static(config)?
        } else {
            Vec::new()
        };
        let cache = (verify && config.cache.enabled)
            .then(|| Arc::new(TokenCache::new(config.cache.max_entries)));
        let jwks = match &config.jwks {
            Some(jwks) if verify => Some(Arc::new(Jwks::new(jwks, cache.clone())?)),
            _ => None,
        };
        let age = jwks
            .clone()
            .map(|j| Box::new(move || j.age_seconds()) as Box<dyn Fn() -> f64 + Send + Sync>);
        let metrics = AuthMetrics::register(registry, age);
        if let Some(jwks) = &jwks {
            jwks.set_metrics(metrics.clone());
        }
        for key in config.hmac_keys.iter().filter(|k| k.dev) {
            tracing::warn!(
                kid = key.kid.as_deref(),
                "auth: a development HMAC key is enabled; anyone with the configuration can mint tokens"
            );
        }
        if config.mode == Mode::DecodeOnly {
            tracing::warn!("auth: decode-only mode; token signatures and claims are NOT verified");
        }
        Ok(Auth {
            verifier: Verifier::new(config, static_keys, cache, metrics.clone()),
            jwks,
            metrics,
        })
    }

    /// Decides on a request's `Authorization` header.
    pub fn check(&self, headers: &HeaderMap) -> Result<(Identity, Admission), Failure> {
        let fetched = self.jwks.as_ref().map(|j| (j, j.current()));
        let keys: &[Key] = match &fetched {
            Some((jwks, fetched)) if jwks.is_fresh(fetched) => &fetched.keys,
            _ => &[],
        };
        // Two Authorization lines read as two different callers (Go takes the first, others
        // the last or both): refused as a malformed header.
        let mut lines = headers.get_all(header::AUTHORIZATION).iter();
        let authorization = lines.next();
        if lines.next().is_some() {
            return Err(Failure::NotBearer);
        }
        self.verifier.check(authorization, keys, unix_now())
    }

    /// Counts a final decision.
    pub fn record(&self, result: Result<Admission, Failure>) {
        self.metrics.decision(result);
    }

    /// The JWKS URL source, if one is configured (in verify mode).
    pub fn jwks(&self) -> Option<&Arc<Jwks>> {
        self.jwks.as_ref()
    }

    /// The verifier.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }
}

/// The Unix time in seconds.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
