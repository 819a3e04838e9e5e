//! `[policies]`: where instance policies come from (inline documents, a directory of files),
//! how unknown instances are treated, shadow mode and the policy API mode.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::etcd::config::EtcdConfig;
use super::model::PolicyType;
use crate::settings::ConfigError;

/// The policy types the gateway enforces, and so the ones `policies.shadow` may name.
pub const ENFORCED: [PolicyType; 3] = [
    PolicyType::AllowedIp,
    PolicyType::AllowedNetwork,
    PolicyType::KeyCreateImportAccess,
];

/// `[policies]`: instance policies in Key Protect's own JSON shape (as `GET
/// /api/v2/instance/policies` returns them), one document per instance.
///
/// Sources, per instance, highest first: the file `<dir>/<instance>.json`, then the inline
/// `instances` entry. For instances with neither: `<dir>/default.json`, then the inline
/// `default`, then (with `unknown_instance = "reject"`) a 401 refusal, else no policies.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoliciesConfig {
    /// A directory of `<instance id>.json` files (and an optional `default.json`), reloaded on
    /// SIGHUP and on change.
    pub dir: Option<PathBuf>,
    /// What an instance without policies of its own gets.
    pub unknown_instance: UnknownInstance,
    /// How often `dir` is checked for changes; `0s` turns polling off (SIGHUP still reloads).
    #[serde(with = "crate::settings::duration")]
    pub poll_interval: Duration,
    /// Policy types evaluated and counted but not enforced (`allowedIP`, `allowedNetwork`,
    /// `keyCreateImportAccess`).
    pub shadow: Vec<String>,
    /// Every enforced policy type in shadow mode.
    pub shadow_all: bool,
    /// Who answers `GET`/`PUT /api/v2/instance/policies`.
    pub api: PolicyApiMode,
    /// The document for instances without their own; none → no policies.
    pub default: Option<String>,
    /// `"<instance id>" = '''<Key Protect policy JSON>'''`.
    pub instances: BTreeMap<String, String>,
    /// `[policies.etcd]`: the documents live in etcd instead of `dir` (see `docs/fleet.md`).
    pub etcd: Option<EtcdConfig>,
}

impl Default for PoliciesConfig {
    fn default() -> Self {
        PoliciesConfig {
            dir: None,
            unknown_instance: UnknownInstance::Default,
            poll_interval: Duration::from_secs(2),
            shadow: Vec::new(),
            shadow_all: false,
            api: PolicyApiMode::Passthrough,
            default: None,
            instances: BTreeMap::new(),
            etcd: None,
        }
    }
}

/// `policies.unknown_instance`.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum UnknownInstance {
    /// The default document applies (or no policies).
    #[default]
    Default,
    /// 401 `UNAUTHORIZED_ERR` for an instance without policies of its own.
    Reject,
}

/// `policies.api`.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PolicyApiMode {
    /// Forwarded to the backend (PUT bodies are shape-checked).
    #[default]
    Passthrough,
    /// PUT forwarded; on 2xx the gateway applies and persists the new policy.
    Mirror,
    /// The gateway answers GET and PUT itself from its store, and persists.
    Own,
}

/// A set of policy types (a bit per type): the shadowed ones.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Shadow(u8);

impl Shadow {
    /// No policy shadowed.
    pub const NONE: Shadow = Shadow(0);

    const fn bit(ty: PolicyType) -> u8 {
        1 << (ty as u8)
    }

    /// Whether `ty` is evaluated without being enforced.
    #[inline]
    pub const fn contains(self, ty: PolicyType) -> bool {
        self.0 & Shadow::bit(ty) != 0
    }

    /// The set with `ty` added.
    pub const fn with(self, ty: PolicyType) -> Shadow {
        Shadow(self.0 | Shadow::bit(ty))
    }
}

impl PoliciesConfig {
    /// The shadowed policy types, or an error naming the entry that is not an enforced type.
    pub fn shadow_set(&self) -> Result<Shadow, ConfigError> {
        if self.shadow_all {
            return Ok(ENFORCED.into_iter().fold(Shadow::NONE, Shadow::with));
        }
        self.shadow.iter().try_fold(Shadow::NONE, |set, name| {
            PolicyType::from_name(name)
                .filter(|ty| ENFORCED.contains(ty))
                .map(|ty| set.with(ty))
                .ok_or_else(|| {
                    ConfigError::invalid(
                        "policies.shadow",
                        format!(
                            "{name:?} is not a policy the gateway enforces: use \"allowedIP\", \"allowedNetwork\" or \"keyCreateImportAccess\""
                        ),
                    )
                })
        })
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.shadow_set()?;
        if let Some(etcd) = &self.etcd {
            etcd.validate()?;
            if self.dir.is_some() {
                return Err(ConfigError::invalid(
                    "policies.etcd",
                    "policies come from etcd or from policies.dir, not both: import the directory with `kmsgate policies import-dir`",
                ));
            }
        }
        if self.api != PolicyApiMode::Passthrough && self.dir.is_none() && self.etcd.is_none() {
            return Err(ConfigError::invalid(
                "policies.api",
                "\"mirror\" and \"own\" persist policies to files or etcd: set policies.dir or [policies.etcd] too",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shadow_names_enforced_types_only() {
        let mut config = PoliciesConfig {
            shadow: vec!["allowedIP".into()],
            ..Default::default()
        };
        let set = config.shadow_set().unwrap();
        assert!(set.contains(PolicyType::AllowedIp));
        assert!(!set.contains(PolicyType::AllowedNetwork));
        config.shadow = vec!["rotation".into()];
        assert!(config.shadow_set().is_err());
        config.shadow_all = true;
        let all = config.shadow_set().unwrap();
        assert!(ENFORCED.iter().all(|t| all.contains(*t)));
        assert!(!all.contains(PolicyType::Rotation));
    }

    #[test]
    fn api_modes_that_persist_need_a_directory() {
        let config = PoliciesConfig {
            api: PolicyApiMode::Own,
            ..Default::default()
        };
        assert!(config.validate().is_err());
    }
}
