//! The per-instance policy store: one compiled [`Snapshot`] behind an `ArcSwap`.
//!
//! A request costs one `load` of the snapshot and one hash lookup; the instance layer clones
//! the matching `Arc<ActivePolicy>` into the request. Reloading (issue 7) builds a whole new
//! snapshot and [`PolicyStore::replace`]s it atomically: requests in flight keep the snapshot
//! they started with.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::active::ActivePolicy;
use super::config::{Shadow, UnknownInstance};
use super::model::{InstancePolicies, PolicyRecords};
use super::parse;
use crate::canonical;
use crate::settings::ConfigError;

pub use super::config::PoliciesConfig;

/// What applies to every instance of a snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotOptions {
    /// The policy types evaluated but not enforced.
    pub shadow: Shadow,
    /// Instances without policies of their own are refused (`policies.unknown_instance`).
    pub reject_unknown: bool,
}

/// The parsed inline documents of `[policies]`: per instance, and the default.
pub type Inline = (Vec<(String, PolicyRecords)>, Option<PolicyRecords>);

/// Every instance's compiled policies at one point in time.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    instances: HashMap<Box<str>, Arc<ActivePolicy>>,
    fallback: Arc<ActivePolicy>,
    options: SnapshotOptions,
}

impl Snapshot {
    /// Compiles a snapshot from parsed policies: `instances` by id, and the `default` for any
    /// other instance (none → no policies apply).
    pub fn new(
        instances: impl IntoIterator<Item = (String, InstancePolicies)>,
        default: Option<InstancePolicies>,
    ) -> Snapshot {
        let records = |policies| PolicyRecords {
            policies,
            ..Default::default()
        };
        Snapshot::build(
            instances.into_iter().map(|(id, p)| (id, records(p))),
            default.map(records),
            SnapshotOptions::default(),
        )
    }

    /// Compiles a snapshot from policies with their metadata, under `options`.
    pub fn build(
        instances: impl IntoIterator<Item = (String, PolicyRecords)>,
        default: Option<PolicyRecords>,
        options: SnapshotOptions,
    ) -> Snapshot {
        let instances = instances
            .into_iter()
            .map(|(id, records)| {
                let id = canonical::instance_key(&id).into_owned();
                let policy = ActivePolicy::compile_records(
                    Some(Arc::from(id.as_str())),
                    records,
                    options.shadow,
                );
                (id.into_boxed_str(), Arc::new(policy))
            })
            .collect();
        let fallback = Arc::new(ActivePolicy::compile_records(
            None,
            default.unwrap_or_default(),
            options.shadow,
        ));
        Snapshot {
            instances,
            fallback,
            options,
        }
    }

    /// Parses the inline documents of `[policies]` (`default`, `instances`); a bad document is
    /// an error naming its key.
    pub fn inline_records(config: &PoliciesConfig) -> Result<Inline, ConfigError> {
        let parse_one = |key: String, text: &str| {
            parse::parse_records(text.as_bytes())
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
        Ok((instances, default))
    }

    /// Parses and compiles the inline part of `[policies]` (not `policies.dir`).
    pub fn from_config(config: &PoliciesConfig) -> Result<Snapshot, ConfigError> {
        let (instances, default) = Snapshot::inline_records(config)?;
        Ok(Snapshot::build(instances, default, options(config)?))
    }

    /// The policies for the instance named `instance` (the default when it is not listed).
    #[inline]
    pub fn get(&self, instance: Option<&str>) -> &Arc<ActivePolicy> {
        self.own_policies(instance).unwrap_or(&self.fallback)
    }

    /// The instance's own policies, looked up by its canonical id (any UUID spelling finds them;
    /// a canonical id is recognised on its bytes, without allocating).
    #[inline]
    fn own_policies(&self, instance: Option<&str>) -> Option<&Arc<ActivePolicy>> {
        self.instances.get(&*canonical::instance_key(instance?))
    }

    /// Like [`get`](Snapshot::get), but `None` for an instance without policies of its own when
    /// unknown instances are refused.
    #[inline]
    pub fn find(&self, instance: Option<&str>) -> Option<&Arc<ActivePolicy>> {
        match self.own_policies(instance) {
            Some(policy) => Some(policy),
            None if self.options.reject_unknown => None,
            None => Some(&self.fallback),
        }
    }

    /// The instance's own policies, if it has any (not the default).
    pub fn own(&self, instance: &str) -> Option<&Arc<ActivePolicy>> {
        self.own_policies(Some(instance))
    }

    /// This snapshot with `instance`'s policies replaced by `records`.
    pub fn with_instance(&self, instance: &str, records: PolicyRecords) -> Snapshot {
        let instance = &*canonical::instance_key(instance);
        let mut next = self.clone();
        let policy =
            ActivePolicy::compile_records(Some(Arc::from(instance)), records, self.options.shadow);
        next.instances.insert(instance.into(), Arc::new(policy));
        next
    }

    /// The options this snapshot was built with.
    pub fn options(&self) -> SnapshotOptions {
        self.options
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

/// The snapshot options `[policies]` asks for.
pub fn options(config: &PoliciesConfig) -> Result<SnapshotOptions, ConfigError> {
    Ok(SnapshotOptions {
        shadow: config.shadow_set()?,
        reject_unknown: config.unknown_instance == UnknownInstance::Reject,
    })
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

    /// The policies for `instance`: one snapshot load, one lookup, one `Arc` clone.
    #[inline]
    pub fn lookup(&self, instance: Option<&str>) -> Arc<ActivePolicy> {
        self.current.load().get(instance).clone()
    }

    /// The policies for `instance`, or `None` when it has none of its own and unknown
    /// instances are refused. One snapshot load, one lookup, one `Arc` clone.
    #[inline]
    pub fn find(&self, instance: Option<&str>) -> Option<Arc<ActivePolicy>> {
        self.current.load().find(instance).cloned()
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
