//! `[auth]`: the bearer-token layer's configuration, and the checks serde cannot make.

use std::path::PathBuf;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde::{Deserialize, Serialize};

use crate::settings::{ConfigError, Secret};

/// `[auth]`: bearer-token validation.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Whether the bearer layer runs at all.
    pub enabled: bool,
    /// `verify` (check the signature and claims) or `decode-only` (read the subject only).
    pub mode: Mode,
    /// The algorithms a token may use. Never taken from the token; `none` is not an algorithm.
    pub algorithms: Vec<Algorithm>,
    /// Accepted `iss` values; empty means `iss` is not checked.
    pub issuers: Vec<String>,
    /// Accepted `aud` values (a token's `aud` may be a string or an array); empty means `aud`
    /// is not checked.
    pub audiences: Vec<String>,
    /// Clock-skew allowance for `exp` and `nbf`.
    #[serde(with = "crate::settings::duration")]
    pub leeway: Duration,
    /// The claim that tells a service from a user (IBM IAM: `sub_type`).
    pub service_claim: String,
    /// Values of `service_claim` that mean "service" (a string claim, or any element of an
    /// array claim).
    pub service_values: Vec<String>,
    /// The service-to-service rules on the identity above (registration writes by services
    /// only, no key deletion by a service): `enforce`, `shadow` or `off`.
    pub service_rules: ServiceRules,
    /// The verified-token cache.
    pub cache: CacheConfig,
    /// PEM public keys (RSA, EC P-256/P-384, Ed25519).
    pub pem_keys: Vec<PemKeyConfig>,
    /// HMAC secrets.
    pub hmac_keys: Vec<HmacKeyConfig>,
    /// JWKS documents read from files at start-up.
    pub jwks_files: Vec<PathBuf>,
    /// A JWKS fetched from a URL and kept fresh.
    pub jwks: Option<JwksUrlConfig>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            enabled: false,
            mode: Mode::Verify,
            algorithms: vec![Algorithm::RS256],
            issuers: Vec::new(),
            audiences: Vec::new(),
            leeway: Duration::from_secs(60),
            service_claim: "sub_type".to_owned(),
            service_values: vec!["ServiceId".to_owned()],
            service_rules: ServiceRules::Enforce,
            cache: CacheConfig::default(),
            pem_keys: Vec::new(),
            hmac_keys: Vec::new(),
            jwks_files: Vec::new(),
            jwks: None,
        }
    }
}

/// How tokens are checked.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Verify the signature with a configured key, then `exp`, `nbf`, `iss`, `aud`.
    #[default]
    Verify,
    /// Read the subject without verifying anything (the KMS verifies tokens itself).
    DecodeOnly,
}

/// `auth.service_rules`: what the gateway does with Key Protect's service-to-service rules
/// (403 `SERVICE_ONLY_ERR` for a registration write by a user, 403 `RESOURCE_OWNER_ERR` for a
/// key deletion by a service).
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceRules {
    /// Refuse (Key Protect refuses these requests itself; the gateway answers first).
    #[default]
    Enforce,
    /// Decide, but only count (`kmsgate_shadow_rejections_total`) and log; forward.
    Shadow,
    /// Do not decide: forward, and leave the rules to the KMS.
    Off,
}

/// `[auth.cache]`: verified tokens, found by a keyed hash and matched by their exact bytes.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Whether verified tokens are remembered until their `exp`.
    pub enabled: bool,
    /// At most this many tokens are remembered.
    pub max_entries: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: true,
            max_entries: 10_000,
        }
    }
}

/// `[[auth.pem_keys]]`: a public key in a PEM file.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PemKeyConfig {
    /// The key id tokens name in their `kid` header; absent: the key is tried for tokens of its
    /// algorithm family whose `kid` no other key has.
    #[serde(default)]
    pub kid: Option<String>,
    /// The PEM file (`BEGIN PUBLIC KEY`, or `BEGIN RSA PUBLIC KEY`).
    pub file: PathBuf,
}

/// `[[auth.hmac_keys]]`: a shared secret, from exactly one of `secret_env`, `secret_file` or
/// (development only) `secret`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HmacKeyConfig {
    /// The key id tokens name in their `kid` header.
    pub kid: Option<String>,
    /// The secret written in the configuration: only for a development key (`dev = true`).
    pub secret: Option<Secret>,
    /// The environment variable that holds the secret.
    pub secret_env: Option<String>,
    /// The file that holds the secret (trailing newline ignored).
    pub secret_file: Option<PathBuf>,
    /// Marks a development key: `kmsgate token` signs with it. Requires `secret`.
    pub dev: bool,
}

/// `[auth.jwks]`: a JWKS URL (IBM IAM: `https://iam.cloud.ibm.com/identity/keys`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JwksUrlConfig {
    /// The `http://` or `https://` URL of the key set.
    pub url: String,
    /// Time between scheduled refreshes.
    #[serde(with = "crate::settings::duration", default = "default_refresh")]
    pub refresh_interval: Duration,
    /// Unknown-`kid` refetches start at most this often (a scheduled refresh counts too).
    #[serde(with = "crate::settings::duration", default = "default_refetch")]
    pub refetch_min_interval: Duration,
    /// Fetched keys are used for at most this long after the last successful fetch; when
    /// refreshes keep failing past it, tokens signed with them are refused.
    #[serde(with = "crate::settings::duration", default = "default_staleness")]
    pub max_staleness: Duration,
    /// Time allowed for one fetch (connect, headers and body).
    #[serde(with = "crate::settings::duration", default = "default_timeout")]
    pub timeout: Duration,
    /// PEM CA bundle for an `https://` URL; the system roots when absent.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

fn default_refresh() -> Duration {
    Duration::from_secs(600)
}
fn default_refetch() -> Duration {
    Duration::from_secs(30)
}
fn default_staleness() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

impl AuthConfig {
    /// Checks what the auth section says, without reading a file: the key files are read (and
    /// their errors reported) once, by [`super::Auth::new`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.enabled {
            return Ok(());
        }
        if self.mode == Mode::DecodeOnly {
            return Ok(());
        }
        if self.algorithms.is_empty() {
            return Err(ConfigError::invalid(
                "auth.algorithms",
                "lists no algorithm, so every token would be refused",
            ));
        }
        if self.pem_keys.is_empty()
            && self.hmac_keys.is_empty()
            && self.jwks_files.is_empty()
            && self.jwks.is_none()
        {
            return Err(ConfigError::invalid(
                "auth",
                "mode \"verify\" needs a key: pem_keys, hmac_keys, jwks_files or jwks",
            ));
        }
        if self.cache.enabled && self.cache.max_entries == 0 {
            return Err(ConfigError::invalid(
                "auth.cache.max_entries",
                "must be at least 1 (or set auth.cache.enabled = false)",
            ));
        }
        if let Some(jwks) = &self.jwks {
            jwks.validate()?;
        }
        for (i, hmac) in self.hmac_keys.iter().enumerate() {
            hmac.validate(i)?;
        }
        // The key files are read (and their errors reported) once, by `Auth::new`.
        Ok(())
    }
}

impl HmacKeyConfig {
    /// Checks where the secret comes from (exactly one source; a secret written in the
    /// configuration only for a development key), without reading it.
    pub fn validate(&self, index: usize) -> Result<(), ConfigError> {
        let key = format!("auth.hmac_keys[{index}]");
        match (&self.secret, &self.secret_env, &self.secret_file) {
            (Some(_), None, None) if !self.dev => {
                return Err(ConfigError::invalid(
                    &key,
                    "a secret written in the configuration is for development only: set \
                     dev = true, or use secret_env or secret_file",
                ));
            }
            (Some(_), None, None) | (None, Some(_), None) | (None, None, Some(_)) => {}
            _ => {
                return Err(ConfigError::invalid(
                    &key,
                    "set exactly one of secret_env, secret_file or (development) secret",
                ));
            }
        }
        if self.dev && self.secret.is_none() {
            return Err(ConfigError::invalid(
                &format!("{key}.dev"),
                "only a key whose secret is in the configuration can be a development key",
            ));
        }
        Ok(())
    }
}

impl JwksUrlConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let ok = (self.url.starts_with("http://") || self.url.starts_with("https://"))
            && self
                .url
                .parse::<http::Uri>()
                .is_ok_and(|u| u.authority().is_some());
        if !ok {
            return Err(ConfigError::invalid(
                "auth.jwks.url",
                format!("{:?} is not an http:// or https:// URL", self.url),
            ));
        }
        for (key, value) in [
            ("auth.jwks.refresh_interval", self.refresh_interval),
            ("auth.jwks.timeout", self.timeout),
            ("auth.jwks.max_staleness", self.max_staleness),
        ] {
            if value.is_zero() {
                return Err(ConfigError::invalid(key, "must be longer than 0s"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::Config;

    #[test]
    fn the_example_and_the_quickstart_parse() {
        let example = Config::from_toml(&[include_str!("../../config/kmsgate.example.toml")])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!example.auth.enabled);
        let quickstart = Config::from_toml(&[include_str!("../../config/kmsgate.toml")])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(quickstart.auth.enabled);
        crate::auth::devtoken::mint(&quickstart.auth, "alice", Duration::from_secs(60), false)
            .unwrap();
    }

    #[test]
    fn verify_mode_needs_a_key_and_none_is_not_an_algorithm() {
        let err = Config::from_toml(&["[auth]\nenabled = true\n"]).unwrap_err();
        assert!(err.to_string().contains("needs a key"), "{err}");
        let err =
            Config::from_toml(&["[auth]\nenabled = true\nalgorithms = [\"none\"]\n"]).unwrap_err();
        assert!(err.to_string().contains("auth.algorithms"), "{err}");
        let err =
            Config::from_toml(&["[auth]\nenabled = true\n[[auth.hmac_keys]]\nsecret = \"s\"\n"])
                .unwrap_err();
        assert!(err.to_string().contains("development only"), "{err}");
        let err = Config::from_toml(&["[auth]\nenabled = true\n[auth.jwks]\nurl = \"ftp://x\"\n"])
            .unwrap_err();
        assert!(err.to_string().contains("auth.jwks.url"), "{err}");
    }
}
