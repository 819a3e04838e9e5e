//! `[policies.etcd]`: where the shared instance policies live, how to reach etcd, and what the
//! gateway does when it cannot.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::settings::{ConfigError, Secret};

/// `[policies.etcd]`: instance policies kept in etcd, one key per instance under `prefix`
/// (`<prefix><instance id>`, and `<prefix>default`), each holding the document Key Protect
/// returns for `GET /api/v2/instance/policies`. Replaces `policies.dir`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EtcdConfig {
    /// The etcd members, e.g. `["http://10.0.0.1:2379", "https://etcd-0.etcd:2379"]`.
    pub endpoints: Vec<String>,
    /// The key prefix; each instance's document is `<prefix><instance id>`.
    pub prefix: String,
    /// How long a connection attempt may take.
    #[serde(with = "crate::settings::duration")]
    pub connect_timeout: Duration,
    /// How long one etcd request (a read, a write, a watch progress check) may take.
    #[serde(with = "crate::settings::duration")]
    pub request_timeout: Duration,
    /// How often the watch asks etcd for a progress report (so a silent loss is noticed).
    #[serde(with = "crate::settings::duration")]
    pub heartbeat: Duration,
    /// The longest wait between reconnection attempts (the backoff doubles up to this).
    #[serde(with = "crate::settings::duration")]
    pub backoff_max: Duration,
    /// etcd user name (with `password`): etcd's own authentication.
    pub user: Option<String>,
    /// etcd password.
    pub password: Option<Secret>,
    /// PEM CA bundle that signs the etcd servers' certificates (turns TLS on).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate, for etcd's client-certificate authentication (with `key_file`).
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// What to do when etcd cannot be reached at start-up.
    pub on_unavailable: OnUnavailable,
    /// A local copy of the last snapshot loaded from etcd, rewritten after every change;
    /// `on_unavailable = "cache"` starts from it.
    pub cache_file: Option<PathBuf>,
}

impl Default for EtcdConfig {
    fn default() -> Self {
        EtcdConfig {
            endpoints: Vec::new(),
            prefix: "/kmsgate/policies/".to_owned(),
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(3),
            heartbeat: Duration::from_secs(2),
            backoff_max: Duration::from_secs(5),
            user: None,
            password: None,
            ca_file: None,
            cert_file: None,
            key_file: None,
            on_unavailable: OnUnavailable::Refuse,
            cache_file: None,
        }
    }
}

/// `policies.etcd.on_unavailable`: etcd cannot be reached when the gateway starts.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OnUnavailable {
    /// `/readyz` stays 503 until the prefix has been loaded from etcd once.
    #[default]
    Refuse,
    /// Start (and report ready) from `cache_file`, the last snapshot this gateway loaded;
    /// without a readable cache, as `refuse`.
    Cache,
}

impl EtcdConfig {
    /// Checks what serde cannot; errors name the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.endpoints.is_empty() {
            return Err(ConfigError::invalid(
                "policies.etcd.endpoints",
                "name at least one etcd member, e.g. [\"http://127.0.0.1:2379\"]",
            ));
        }
        for endpoint in &self.endpoints {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return Err(ConfigError::invalid(
                    "policies.etcd.endpoints",
                    format!("{endpoint:?}: write http://HOST:PORT or https://HOST:PORT"),
                ));
            }
        }
        if self.prefix.is_empty() {
            return Err(ConfigError::invalid(
                "policies.etcd.prefix",
                "an empty prefix would read the whole etcd keyspace",
            ));
        }
        if self.user.is_some() != self.password.is_some() {
            return Err(ConfigError::invalid(
                "policies.etcd.user",
                "set user and password together",
            ));
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err(ConfigError::invalid(
                "policies.etcd.cert_file",
                "set cert_file and key_file together",
            ));
        }
        for (key, value) in [
            ("policies.etcd.request_timeout", self.request_timeout),
            ("policies.etcd.connect_timeout", self.connect_timeout),
            ("policies.etcd.heartbeat", self.heartbeat),
            ("policies.etcd.backoff_max", self.backoff_max),
        ] {
            if value.is_zero() {
                return Err(ConfigError::invalid(key, "must be more than 0s"));
            }
        }
        if self.on_unavailable == OnUnavailable::Cache && self.cache_file.is_none() {
            return Err(ConfigError::invalid(
                "policies.etcd.on_unavailable",
                "\"cache\" starts from policies.etcd.cache_file: set it too",
            ));
        }
        Ok(())
    }

    /// The key of `instance`'s document (`default` for the default document).
    pub fn key(&self, instance: &str) -> String {
        format!("{}{instance}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_key() {
        let mut config = EtcdConfig::default();
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("policies.etcd.endpoints")
        );
        config.endpoints = vec!["127.0.0.1:2379".into()];
        assert!(config.validate().is_err());
        config.endpoints = vec!["http://127.0.0.1:2379".into()];
        config.validate().unwrap();
        config.on_unavailable = OnUnavailable::Cache;
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("cache_file")
        );
        config.cache_file = Some("/tmp/x".into());
        config.user = Some("u".into());
        assert!(config.validate().is_err());
        config.password = Some(Secret::new("p"));
        config.validate().unwrap();
        assert_eq!(config.key("default"), "/kmsgate/policies/default");
    }
}
