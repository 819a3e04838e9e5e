//! [`ActivePolicy`]: one instance's policies, compiled once for every request that names it.

use std::sync::Arc;

use super::config::Shadow;
use super::model::{InstancePolicies, NetworkAccess, PolicyMeta, PolicyRecords, PolicyType};
use crate::ipset::IpSet;

/// The policies that apply to one request's instance, compiled for the layers.
///
/// The instance layer puts an `Arc<ActivePolicy>` into the request extensions (one snapshot
/// load per request); every later layer reads it from there.
#[derive(Debug, Default)]
pub struct ActivePolicy {
    /// The instance id this policy was configured for; `None` when the default policy (or no
    /// policy at all) applies. The request's own id is in its `bluemix-instance` header.
    pub instance: Option<Arc<str>>,
    /// The policies as Key Protect states them.
    pub model: InstancePolicies,
    /// allowedIP, compiled: `Some` only when the policy is enabled.
    pub allowed_ip: Option<IpSet>,
    /// allowedNetwork is enabled with `private-only`.
    pub private_only: bool,
    /// The policy types evaluated but not enforced (shadow mode).
    pub shadow: Shadow,
    /// Who set each policy and when (by [`PolicyType::index`]), for the policy API.
    pub meta: [Option<PolicyMeta>; PolicyType::ALL.len()],
}

impl ActivePolicy {
    /// Compiles `model` once, for every request that names `instance`.
    pub fn compile(instance: Option<Arc<str>>, model: InstancePolicies) -> ActivePolicy {
        let allowed_ip = model
            .allowed_ip
            .as_ref()
            .filter(|p| p.enabled)
            .map(|p| IpSet::new(&p.allowed_ip));
        let private_only = model
            .allowed_network
            .as_ref()
            .is_some_and(|p| p.enabled && p.allowed_network == NetworkAccess::PrivateOnly);
        ActivePolicy {
            instance,
            model,
            allowed_ip,
            private_only,
            shadow: Shadow::NONE,
            meta: Default::default(),
        }
    }

    /// Compiles `records` (policies and their metadata) with the shadowed types `shadow`.
    pub fn compile_records(
        instance: Option<Arc<str>>,
        records: PolicyRecords,
        shadow: Shadow,
    ) -> ActivePolicy {
        let PolicyRecords { policies, meta } = records;
        ActivePolicy {
            shadow,
            meta,
            ..ActivePolicy::compile(instance, policies)
        }
    }

    /// Whether `ty` is only evaluated and counted, not enforced.
    #[inline]
    pub fn shadowed(&self, ty: PolicyType) -> bool {
        self.shadow.contains(ty)
    }

    /// The policies and their metadata, as a GET document shows them.
    pub fn records(&self) -> PolicyRecords {
        PolicyRecords {
            policies: self.model.clone(),
            meta: self.meta.clone(),
        }
    }
}
