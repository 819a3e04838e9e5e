//! The token decision: cache lookup, parse, algorithm and key selection, signature and claim
//! checks. Pure: no I/O, no runtime; the fetched JWKS keys and the clock are arguments.

use std::sync::Arc;

use http::HeaderValue;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::de::IgnoredAny;

use super::Identity;
use super::cache::{self, TokenCache};
use super::config::{AuthConfig, Mode};
use super::keys::{self, Key, Selection};
use super::metrics::{Admission, AuthMetrics};
use super::outcome::Failure;
use super::token::{self, ServiceRule};

/// Checks bearer tokens against the configured algorithms, keys and claims.
pub struct Verifier {
    mode: Mode,
    validations: Vec<(Algorithm, Validation)>,
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
        let validations = config
            .algorithms
            .iter()
            .map(|alg| (*alg, validation(config, *alg)))
            .collect();
        Verifier {
            mode: config.mode,
            validations,
            static_keys,
            service: ServiceRule {
                claim: config.service_claim.as_str().into(),
                values: config
                    .service_values
                    .iter()
                    .map(|v| v.as_str().into())
                    .collect(),
            },
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
        let cached = self.cache.as_deref().map(|c| (c, cache::hash(token)));
        if let Some((cache, key)) = &cached {
            let hit = cache.get(key, now);
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
        let validation = self
            .validations
            .iter()
            .find(|(a, _)| *a == alg)
            .map(|(_, v)| v)
            .ok_or(Failure::AlgorithmNotAllowed)?;
        let sets: [&[Key]; 2] = [&self.static_keys, fetched];
        match keys::select(&sets, alg, unverified.kid.as_deref()) {
            Selection::Candidates { keys, fallback } => {
                match verify_with(token, &keys, validation) {
                    Err(Failure::BadSignature) if fallback => return Err(Failure::UnknownKey),
                    other => other?,
                }
            }
            Selection::WrongAlgorithm => return Err(Failure::AlgorithmKeyMismatch),
            Selection::NoKey => return Err(Failure::UnknownKey),
        }
        let identity = Identity::new(&unverified.subject, unverified.is_service);
        if let (Some((cache, key)), Some(exp)) = (cached, unverified.exp) {
            cache.insert(key, identity.clone(), exp, now);
        }
        Ok((identity, Admission::Verified))
    }

    /// The verified-token cache, if enabled.
    pub fn cache(&self) -> Option<&Arc<TokenCache>> {
        self.cache.as_ref()
    }
}

/// The claim checks for tokens signed with `alg`.
fn validation(config: &AuthConfig, alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.leeway = config.leeway.as_secs();
    v.validate_exp = true;
    v.validate_nbf = true;
    let mut required = vec!["exp"];
    if !config.issuers.is_empty() {
        v.set_issuer(&config.issuers);
        required.push("iss");
    }
    if config.audiences.is_empty() {
        v.validate_aud = false;
    } else {
        v.set_audience(&config.audiences);
        required.push("aud");
    }
    v.set_required_spec_claims(&required);
    v
}

/// Tries each key in turn; the first that verifies the signature decides on the claims.
fn verify_with(token: &str, keys: &[&Key], validation: &Validation) -> Result<(), Failure> {
    for key in keys {
        match jsonwebtoken::decode::<IgnoredAny>(token, key.decoding(), validation) {
            Ok(_) => return Ok(()),
            Err(e) => match classify(e.kind()) {
                Some(failure) => return Err(failure),
                None => continue,
            },
        }
    }
    Err(Failure::BadSignature)
}

/// The failure a jsonwebtoken error means, or `None` when this key simply did not verify the
/// signature (so the next key may).
fn classify(kind: &ErrorKind) -> Option<Failure> {
    Some(match kind {
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => return None,
        ErrorKind::ExpiredSignature => Failure::Expired,
        ErrorKind::ImmatureSignature => Failure::NotYetValid,
        ErrorKind::InvalidIssuer => Failure::WrongIssuer,
        ErrorKind::InvalidAudience => Failure::WrongAudience,
        ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
            "exp" => Failure::MissingExp,
            "iss" => Failure::WrongIssuer,
            "aud" => Failure::WrongAudience,
            _ => Failure::InvalidToken,
        },
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::InvalidAlgorithmName => Failure::AlgorithmNotAllowed,
        _ => Failure::InvalidToken,
    })
}

#[cfg(test)]
mod tests;
