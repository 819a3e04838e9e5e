//! The token decision: cache lookup, parse, algorithm and key selection, signature and claim
//! checks. Pure: no I/O, no runtime; the fetched JWKS keys and the clock are arguments.
//!
//! The token is parsed once ([`token::parse`]); the signature over `header.payload` is checked
//! with key material parsed when the key was loaded ([`super::signature`]), and the claims with
//! [`ClaimRules`].

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderValue;
use jsonwebtoken::Algorithm;

use super::cache::TokenCache;
use super::claims::ClaimRules;
use super::config::{AuthConfig, Mode};
use super::identity::Identity;
use super::keys::{self, Key, Selection};
use super::metrics::{Admission, AuthMetrics};
use super::outcome::Failure;
use super::token::{self, ServiceRule};

/// Checks bearer tokens against the configured algorithms, keys and claims.
pub struct Verifier {
    mode: Mode,
    algorithms: Vec<Algorithm>,
    claims: ClaimRules,
    static_keys: Vec<Key>,
    service: ServiceRule,
    cache: Option<Arc<TokenCache>>,
    metrics: AuthMetrics,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("mode", &self.mode)
            .field("keys", &self.static_keys.len())
            .field("cache", &self.cache.is_some())
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier for `config` with these file/secret keys and an optional cache.
    pub fn new(
        config: &AuthConfig,
        static_keys: Vec<Key>,
        cache: Option<Arc<TokenCache>>,
        metrics: AuthMetrics,
    ) -> Self {
        Verifier {
            mode: config.mode,
            algorithms: config.algorithms.clone(),
            claims: ClaimRules::new(config),
            static_keys,
            service: service_rule(config),
            cache,
            metrics,
        }
    }

    /// Decides on the `Authorization` header value. `fetched` are the current JWKS URL keys;
    /// `now` is the Unix time in seconds.
    pub fn check(
        &self,
        authorization: Option<&HeaderValue>,
        fetched: &[Key],
        now: u64,
    ) -> Result<(Identity, Admission), Failure> {
        let token = token::bearer(authorization)?;
        if self.mode == Mode::DecodeOnly {
            let unverified = token::parse(token, &self.service)?;
            let identity = Identity::new(&unverified.subject, unverified.is_service);
            return Ok((identity, Admission::Decoded));
        }
        let cached = self.cache.as_deref().map(|c| (c, c.key(token)));
        if let Some((cache, key)) = cached {
            let hit = cache.get(key, token, now);
            self.metrics.cache(hit.is_some());
            if let Some(identity) = hit {
                return Ok((identity, Admission::Verified));
            }
        }
        let unverified = token::parse(token, &self.service)?;
        let alg: Algorithm = unverified
            .alg
            .as_deref()
            .and_then(|a| a.parse().ok())
            .ok_or(Failure::AlgorithmNotAllowed)?;
        if !self.algorithms.contains(&alg) {
            return Err(Failure::AlgorithmNotAllowed);
        }
        let sets: [&[Key]; 2] = [&self.static_keys, fetched];
        match keys::select(&sets, alg, unverified.kid.as_deref()) {
            Selection::Candidates { keys, fallback } => {
                match verify_signature(token, &unverified.header, alg, &keys) {
                    Err(Failure::BadSignature) if fallback => return Err(Failure::UnknownKey),
                    other => other?,
                }
            }
            Selection::WrongAlgorithm => return Err(Failure::AlgorithmKeyMismatch),
            Selection::NoKey => return Err(Failure::UnknownKey),
        }
        self.claims.check(&unverified.claims, now)?;
        let identity = Identity::new(&unverified.subject, unverified.is_service);
        if let (Some((cache, key)), Some(exp)) = (cached, unverified.exp) {
            cache.insert(key, token, identity.clone(), exp, now);
        }
        Ok((identity, Admission::Verified))
    }

    /// The verified-token cache, if enabled.
    pub fn cache(&self) -> Option<&Arc<TokenCache>> {
        self.cache.as_ref()
    }
}

/// Which claim, with which values, marks a service caller (`auth.service_claim`,
/// `auth.service_values`).
pub fn service_rule(config: &AuthConfig) -> ServiceRule {
    ServiceRule {
        claim: config.service_claim.as_str().into(),
        values: config
            .service_values
            .iter()
            .map(|v| v.as_str().into())
            .collect(),
    }
}

/// Checks the signature of `token` (signed with `alg`, header JSON `header`) with each key in
/// turn; `BadSignature` when none verifies it. A header jsonwebtoken refused, or a signature
/// that is not canonical unpadded base64url, is `InvalidToken` (before any key is tried).
fn verify_signature(
    token: &str,
    header: &[u8],
    alg: Algorithm,
    keys: &[&Key],
) -> Result<(), Failure> {
    if !token::header_accepted(header) {
        return Err(Failure::InvalidToken);
    }
    let (signed, signature) = token.rsplit_once('.').ok_or(Failure::NotJwt)?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| Failure::InvalidToken)?;
    if keys
        .iter()
        .any(|key| key.verify(alg, signed.as_bytes(), &signature))
    {
        Ok(())
    } else {
        Err(Failure::BadSignature)
    }
}

#[cfg(test)]
mod tests;
