//! `kmsgate token`: a token signed with the configuration's development key, so trying the
//! gateway needs no IAM. Refused unless the configuration marks an HMAC key `dev = true` (which
//! requires its secret to be written in the configuration).

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value};

use super::config::AuthConfig;
use super::keys::hmac_secret;

/// Why no development token can be made.
#[derive(Debug, thiserror::Error)]
pub enum DevTokenError {
    /// No `[[auth.hmac_keys]]` entry has `dev = true`.
    #[error(
        "the configuration has no development key: add an [[auth.hmac_keys]] entry with \
         dev = true and a secret (development only)"
    )]
    NoDevKey,
    /// `auth.algorithms` allows no HMAC algorithm, so the gateway would refuse the token.
    #[error("auth.algorithms allows no HMAC algorithm (HS256, HS384 or HS512)")]
    NoHmacAlgorithm,
    /// The key or the claims cannot be used.
    #[error("{0}")]
    Invalid(String),
}

/// A token for `subject`, valid for `ttl`, signed with the first development key. With
/// `service`, the service claim carries the first service value. `iss` and `aud` are the
/// first configured issuer and audience, when any.
pub fn mint(
    config: &AuthConfig,
    subject: &str,
    ttl: Duration,
    service: bool,
) -> Result<String, DevTokenError> {
    let (index, key) = config
        .hmac_keys
        .iter()
        .enumerate()
        .find(|(_, k)| k.dev)
        .ok_or(DevTokenError::NoDevKey)?;
    let alg = config
        .algorithms
        .iter()
        .copied()
        .find(|a| matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))
        .ok_or(DevTokenError::NoHmacAlgorithm)?;
    let secret = hmac_secret(key, index).map_err(|e| DevTokenError::Invalid(e.to_string()))?;
    let encoding =
        EncodingKey::from_secret(&secret).map_err(|e| DevTokenError::Invalid(e.to_string()))?;
    let now = super::unix_now();
    let mut claims = Map::new();
    claims.insert("sub".into(), Value::from(subject));
    claims.insert("iat".into(), Value::from(now));
    claims.insert("exp".into(), Value::from(now.saturating_add(ttl.as_secs())));
    if let Some(iss) = config.issuers.first() {
        claims.insert("iss".into(), Value::from(iss.as_str()));
    }
    if let Some(aud) = config.audiences.first() {
        claims.insert("aud".into(), Value::from(aud.as_str()));
    }
    if service {
        let value = config
            .service_values
            .first()
            .map_or("ServiceId", String::as_str);
        claims.insert(config.service_claim.clone(), Value::from(value));
    }
    let mut header = Header::new(alg);
    header.kid = key.kid.clone();
    jsonwebtoken::encode(&header, &claims, &encoding)
        .map_err(|e| DevTokenError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::config::HmacKeyConfig;
    use crate::config::Secret;

    fn dev_config() -> AuthConfig {
        AuthConfig {
            enabled: true,
            algorithms: vec![Algorithm::HS256],
            hmac_keys: vec![HmacKeyConfig {
                kid: Some("dev".into()),
                secret: Some(Secret::new("quickstart-secret")),
                dev: true,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn mints_only_with_a_dev_key_and_an_hmac_algorithm() {
        let config = dev_config();
        let token = mint(&config, "alice", Duration::from_secs(60), true).unwrap();
        assert_eq!(token.split('.').count(), 3);

        let mut no_dev = config.clone();
        no_dev.hmac_keys[0].dev = false;
        assert!(matches!(
            mint(&no_dev, "a", Duration::from_secs(60), false),
            Err(DevTokenError::NoDevKey)
        ));
        let mut no_hs = config;
        no_hs.algorithms = vec![Algorithm::RS256];
        assert!(matches!(
            mint(&no_hs, "a", Duration::from_secs(60), false),
            Err(DevTokenError::NoHmacAlgorithm)
        ));
    }
}
