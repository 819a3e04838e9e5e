//! Verification keys: PEM public keys, HMAC secrets and JWKS documents, and which keys a
//! token's `alg` and `kid` select.

use std::path::Path;

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

use super::config::{AuthConfig, HmacKeyConfig};
use super::signature::Material;
use crate::settings::ConfigError;

/// One verification key, its material parsed once. `Debug` never shows key material.
#[derive(Clone)]
pub struct Key {
    kid: Option<Box<str>>,
    /// The one algorithm the key is for (a JWK's `alg`), or any of its family when `None`.
    alg: Option<Algorithm>,
    material: Material,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("family", &self.material.family())
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl Key {
    /// A key from parsed material and an optional `kid`.
    pub fn new(kid: Option<&str>, material: Material) -> Key {
        Key {
            kid: kid.map(Into::into),
            alg: None,
            material,
        }
    }

    /// The key id, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// True when a token signed with `alg` may be checked with this key.
    pub fn accepts(&self, alg: Algorithm) -> bool {
        self.material.family() == alg.family() && self.alg.is_none_or(|a| a == alg)
    }

    /// True when `signature` is a valid `alg` signature of `message` under this key.
    pub fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        self.material.verify(alg, message, signature)
    }
}

/// What the key sets offer a token with this `alg` and `kid`.
#[derive(Debug)]
pub enum Selection<'k> {
    /// These keys may verify it, in this order. `fallback` is set when the token's `kid` is
    /// unknown and these are the keys without a `kid`: if none verifies, the key is unknown.
    Candidates {
        /// The keys to try.
        keys: Vec<&'k Key>,
        /// Chosen because the token's `kid` matched no key.
        fallback: bool,
    },
    /// The key named by `kid` exists but is for another algorithm.
    WrongAlgorithm,
    /// No key fits: unknown `kid`, or no key of the algorithm's family.
    NoKey,
}

/// Picks the keys of `sets` that may verify a token with this `alg` and `kid`.
///
/// A `kid` that a key has selects that key alone. A `kid` no key has falls back to the keys
/// without a `kid` (a lone PEM key, say); a token without `kid` may be verified by any key of
/// its algorithm.
pub fn select<'k>(sets: &[&'k [Key]], alg: Algorithm, kid: Option<&str>) -> Selection<'k> {
    let all = || sets.iter().flat_map(|set| set.iter());
    if let Some(kid) = kid
        && let Some(key) = all().find(|k| k.kid() == Some(kid))
    {
        return if key.accepts(alg) {
            Selection::Candidates {
                keys: vec![key],
                fallback: false,
            }
        } else {
            Selection::WrongAlgorithm
        };
    }
    let candidates: Vec<&Key> = all()
        .filter(|k| k.accepts(alg) && (kid.is_none() || k.kid.is_none()))
        .collect();
    if candidates.is_empty() {
        Selection::NoKey
    } else {
        Selection::Candidates {
            keys: candidates,
            fallback: kid.is_some(),
        }
    }
}

/// Loads every key configured in files and secrets (not the JWKS URL).
pub fn load_static(config: &AuthConfig) -> Result<Vec<Key>, ConfigError> {
    let mut keys = Vec::new();
    for (i, pem) in config.pem_keys.iter().enumerate() {
        let key = format!("auth.pem_keys[{i}].file");
        let bytes = read(&pem.file, &key)?;
        let material = decode_pem(&bytes)
            .as_ref()
            .and_then(Material::new)
            .ok_or_else(|| {
                ConfigError::invalid(
                    &key,
                    format!(
                        "{}: not an RSA, EC or Ed25519 public key in PEM form",
                        pem.file.display()
                    ),
                )
            })?;
        keys.push(Key::new(pem.kid.as_deref(), material));
    }
    for (i, hmac) in config.hmac_keys.iter().enumerate() {
        let secret = hmac_secret(hmac, i)?;
        let material = DecodingKey::from_secret(&secret)
            .ok()
            .as_ref()
            .and_then(Material::new)
            .ok_or_else(|| {
                ConfigError::invalid(&format!("auth.hmac_keys[{i}]"), "the secret is empty")
            })?;
        keys.push(Key::new(hmac.kid.as_deref(), material));
    }
    for (i, path) in config.jwks_files.iter().enumerate() {
        let key = format!("auth.jwks_files[{i}]");
        let bytes = read(path, &key)?;
        let set: JwkSet = serde_json::from_slice(&bytes).map_err(|e| {
            ConfigError::invalid(&key, format!("{}: not a JWKS: {e}", path.display()))
        })?;
        let (found, skipped) = from_jwk_set(&set);
        if found.is_empty() {
            return Err(ConfigError::invalid(
                &key,
                format!("{}: no usable signature key", path.display()),
            ));
        }
        if skipped > 0 {
            tracing::warn!(file = %path.display(), skipped, "auth: JWKS keys skipped (not signature keys, or unsupported)");
        }
        keys.extend(found);
    }
    Ok(keys)
}

/// The secret bytes of an HMAC key, from its one source.
pub fn hmac_secret(hmac: &HmacKeyConfig, index: usize) -> Result<Vec<u8>, ConfigError> {
    hmac.validate(index)?;
    let key = format!("auth.hmac_keys[{index}]");
    let secret = match (&hmac.secret, &hmac.secret_env, &hmac.secret_file) {
        (Some(secret), None, None) => secret.expose().as_bytes().to_vec(),
        (None, Some(var), None) => std::env::var(var)
            .map_err(|_| {
                ConfigError::invalid(
                    &format!("{key}.secret_env"),
                    format!("the environment variable {var} is not set (or not UTF-8)"),
                )
            })?
            .into_bytes(),
        (None, None, Some(path)) => {
            let mut bytes = read(path, &format!("{key}.secret_file"))?;
            while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                bytes.pop();
            }
            bytes
        }
        _ => {
            return Err(ConfigError::invalid(
                &key,
                "set exactly one of secret_env, secret_file or (development) secret",
            ));
        }
    };
    if secret.is_empty() {
        return Err(ConfigError::invalid(&key, "the secret is empty"));
    }
    Ok(secret)
}

fn read(path: &Path, key: &str) -> Result<Vec<u8>, ConfigError> {
    crate::settings::read_file(path)
        .map_err(|e| ConfigError::invalid(key, format!("{}: {e}", path.display())))
}

/// An RSA, EC or Ed25519 public key from PEM text.
fn decode_pem(bytes: &[u8]) -> Option<DecodingKey> {
    DecodingKey::from_rsa_pem(bytes)
        .or_else(|_| DecodingKey::from_ec_pem(bytes))
        .or_else(|_| DecodingKey::from_ed_pem(bytes))
        .ok()
}

/// The signature keys of a JWKS, each parsed once, and how many entries were skipped
/// (encryption keys, unsupported key types or algorithms, keys that do not parse).
pub fn from_jwk_set(set: &JwkSet) -> (Vec<Key>, usize) {
    let mut keys = Vec::with_capacity(set.keys.len());
    let mut skipped = 0;
    for jwk in &set.keys {
        let is_enc = matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption));
        let alg = match jwk.common.key_algorithm {
            None => Ok(None),
            Some(a) => signature_algorithm(a).map(Some).ok_or(()),
        };
        let usable = !is_enc && !matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_));
        let material = DecodingKey::from_jwk(jwk)
            .ok()
            .as_ref()
            .and_then(Material::new);
        match (usable, alg, material) {
            (true, Ok(alg), Some(material))
                if alg.is_none_or(|a| a.family() == material.family()) =>
            {
                let mut key = Key::new(jwk.common.key_id.as_deref(), material);
                key.alg = alg;
                keys.push(key);
            }
            _ => skipped += 1,
        }
    }
    (keys, skipped)
}

fn signature_algorithm(alg: KeyAlgorithm) -> Option<Algorithm> {
    Some(match alg {
        KeyAlgorithm::HS256 => Algorithm::HS256,
        KeyAlgorithm::HS384 => Algorithm::HS384,
        KeyAlgorithm::HS512 => Algorithm::HS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hmac(kid: Option<&str>) -> Key {
        let secret = DecodingKey::from_secret(b"s").unwrap();
        Key::new(kid, Material::new(&secret).unwrap())
    }

    #[test]
    fn kid_selects_one_key_and_unknown_kid_falls_back_to_kidless_keys() {
        let a = [hmac(Some("a")), hmac(None)];
        let b = [hmac(Some("b"))];
        let sets: [&[Key]; 2] = [&a, &b];
        match select(&sets, Algorithm::HS256, Some("b")) {
            Selection::Candidates { keys, fallback } => {
                assert_eq!(keys.len(), 1);
                assert!(!fallback);
            }
            other => panic!("{other:?}"),
        }
        match select(&sets, Algorithm::HS256, Some("zzz")) {
            Selection::Candidates { keys, fallback } => {
                assert_eq!(keys[0].kid(), None);
                assert!(fallback);
            }
            other => panic!("{other:?}"),
        }
        match select(&sets, Algorithm::HS256, None) {
            Selection::Candidates { keys, .. } => assert_eq!(keys.len(), 3),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            select(&sets, Algorithm::RS256, Some("a")),
            Selection::WrongAlgorithm
        ));
        assert!(matches!(
            select(&sets, Algorithm::RS256, None),
            Selection::NoKey
        ));
        let only_kid = [hmac(Some("a"))];
        assert!(matches!(
            select(&[&only_kid], Algorithm::HS256, Some("zzz")),
            Selection::NoKey
        ));
    }

    #[test]
    fn jwks_entries_that_do_not_parse_are_skipped() {
        let set: JwkSet = serde_json::from_value(serde_json::json!({"keys": [
            {"kty": "RSA", "kid": "empty-n", "n": "", "e": "AQAB"},
            {"kty": "EC", "kid": "off-curve", "crv": "P-256", "x": "AQ", "y": "Ag"},
            {"kty": "OKP", "kid": "short", "crv": "Ed25519", "x": "AAAA"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "OKP", "kid": "ok", "crv": "Ed25519",
             "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
        ]}))
        .unwrap();
        let (keys, skipped) = from_jwk_set(&set);
        assert_eq!(skipped, 4);
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid(), Some("ok"));
        assert!(keys[0].accepts(Algorithm::EdDSA));
        assert!(!format!("{:?}", keys[0]).contains("11qYAY"));
    }

    #[test]
    fn inline_secret_needs_dev_and_dev_needs_inline_secret() {
        let mut k = HmacKeyConfig {
            secret: Some(crate::config::Secret::new("x")),
            ..Default::default()
        };
        assert!(hmac_secret(&k, 0).is_err());
        k.dev = true;
        assert_eq!(hmac_secret(&k, 0).unwrap(), b"x");
        let k = HmacKeyConfig {
            secret_env: Some("KMSGATE_TEST_HMAC_SECRET_UNSET".into()),
            dev: true,
            ..Default::default()
        };
        assert!(hmac_secret(&k, 0).is_err());
        assert!(hmac_secret(&HmacKeyConfig::default(), 0).is_err());
        // Cargo sets CARGO_PKG_NAME for the tests it runs.
        let from_env = HmacKeyConfig {
            secret_env: Some("CARGO_PKG_NAME".into()),
            ..Default::default()
        };
        assert_eq!(hmac_secret(&from_env, 0).unwrap(), b"kmsgate");
    }
}
