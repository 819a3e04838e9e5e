//! The per-instance policy store: one compiled [`Snapshot`] behind an `ArcSwap`.
//!
//! A request costs one `load` of the snapshot and one hash lookup; the instance layer clones
//! the matching `Arc<ActivePolicy>` into the request. Reloading (issue 7) builds a whole new
//! snapshot and [`PolicyStore::replace`]s it atomically: requests in flight keep the snapshot
//! they started with.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};

use super::model::InstancePolicies;
use super::{ActivePolicy, parse};
use crate::config::ConfigError;

/// `[policies]`: instance policies in Key Protect's own JSON shape (as `GET
/// /api/v2/instance/policies` returns them), one document per instance.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoliciesConfig {
    /// The document for instances not listed in `instances`; none → no policies.
    pub default: Option<String>,
    /// `"<instance id>" = '''<Key Protect policy JSON>'''`.
    pub instances: std::collections::BTreeMap<String, String>,
}

/// Every instance's compiled policies at one point in time.
#[derive(Debug, Default)]
pub struct Snapshot {
    instances: HashMap<Box<str>, Arc<ActivePolicy>>,
    fallback: Arc<ActivePolicy>,
}

impl Snapshot {
    /// Compiles a snapshot from parsed policies: `instances` by id, and the `default` for any
    /// other instance (none → no policies apply).
    pub fn new(
        instances: impl IntoIterator<Item = (String, InstancePolicies)>,
        default: Option<InstancePolicies>,
    ) -> Snapshot {
        let instances = instances
            .into_iter()
            .map(|(id, model)| {
                let policy = ActivePolicy::compile(Some(Arc::from(id.as_str())), model);
                (id.into_boxed_str(), Arc::new(policy))
            })
            .collect();
        let fallback = Arc::new(ActivePolicy::compile(None, default.unwrap_or_default()));
        Snapshot {
            instances,
            fallback,
        }
    }

    /// Parses and compiles `[policies]`; a bad document is an error naming its instance.
    pub fn from_config(config: &PoliciesConfig) -> Result<Snapshot, ConfigError> {
        let parse_one = |key: String, text: &str| {
            parse::parse_document(text.as_bytes())
                .map_err(|rejection| ConfigError::invalid(&key, rejection.wire_message()))
        };
        let default = config
            .default
            .as_deref()
            .map(|text| parse_one("policies.default".to_owned(), text))
            .transpose()?;
        let instances = config
            .instances
            .iter()
            .map(|(id, text)| {
                Ok((
                    id.clone(),
                    parse_one(format!("policies.instances.{id:?}"), text)?,
                ))
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        Ok(Snapshot::new(instances, default))
    }

    /// The policies for the instance named `instance` (the default when it is not listed).
    #[inline]
    pub fn get(&self, instance: Option<&str>) -> &Arc<ActivePolicy> {
        instance
            .and_then(|id| self.instances.get(id))
            .unwrap_or(&self.fallback)
    }

    /// The number of instances with their own policies.
    pub fn len(&self) -> usize {
        self.instances.len()
    }

    /// True when no instance has its own policies.
    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
    }
}

/// The current policy snapshot, shared by the instance layer and whatever reloads it. Cheap to
/// clone (every clone sees the same snapshot).
#[derive(Clone, Debug, Default)]
pub struct PolicyStore {
    current: Arc<ArcSwap<Snapshot>>,
}

impl PolicyStore {
    /// A store holding `snapshot`.
    pub fn new(snapshot: Snapshot) -> PolicyStore {
        PolicyStore {
            current: Arc::new(ArcSwap::from_pointee(snapshot)),
        }
    }

    /// A store compiled from `[policies]`.
    pub fn from_config(config: &PoliciesConfig) -> Result<PolicyStore, ConfigError> {
        Snapshot::from_config(config).map(PolicyStore::new)
    }

    /// The policies for `instance`: one snapshot load, one lookup, one `Arc` clone.
    #[inline]
    pub fn lookup(&self, instance: Option<&str>) -> Arc<ActivePolicy> {
        self.current.load().get(instance).clone()
    }

    /// Swaps in a new snapshot atomically; requests already running keep the old one.
    pub fn replace(&self, snapshot: Snapshot) {
        self.current.store(Arc::new(snapshot));
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::model::{AllowedIp, AllowedNetwork, NetworkAccess};

    fn allowed(nets: &[&str]) -> InstancePolicies {
        InstancePolicies {
            allowed_ip: Some(AllowedIp {
                enabled: true,
                allowed_ip: nets.iter().map(|n| n.parse().unwrap()).collect(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn listed_instances_get_their_own_policy_others_the_default() {
        let private = InstancePolicies {
            allowed_network: Some(AllowedNetwork {
                enabled: true,
                allowed_network: NetworkAccess::PrivateOnly,
            }),
            ..Default::default()
        };
        let store = PolicyStore::new(Snapshot::new(
            [("a".to_owned(), allowed(&["10.0.0.0/8"]))],
            Some(private),
        ));
        let a = store.lookup(Some("a"));
        assert_eq!(a.instance.as_deref(), Some("a"));
        assert!(
            a.allowed_ip
                .as_ref()
                .unwrap()
                .contains("10.1.1.1".parse().unwrap())
        );
        assert!(!a.private_only);
        let other = store.lookup(Some("b"));
        assert!(other.instance.is_none());
        assert!(other.private_only);
        assert!(other.allowed_ip.is_none());
        assert!(store.lookup(None).private_only);
    }

    #[test]
    fn disabled_policies_compile_to_nothing_and_replace_is_atomic() {
        let mut model = allowed(&["10.0.0.0/8"]);
        if let Some(p) = model.allowed_ip.as_mut() {
            p.enabled = false;
        }
        let store = PolicyStore::new(Snapshot::new([("a".to_owned(), model)], None));
        let before = store.lookup(Some("a"));
        assert!(before.allowed_ip.is_none());
        store.replace(Snapshot::new(
            [("a".to_owned(), allowed(&["::1/128"]))],
            None,
        ));
        assert!(store.lookup(Some("a")).allowed_ip.is_some());
        // The request that loaded before the swap keeps its policy.
        assert!(before.allowed_ip.is_none());
        assert!(
            PolicyStore::default()
                .lookup(Some("a"))
                .allowed_ip
                .is_none()
        );
    }
}
