//! Key Protect instance policies: the model (parsed from Key Protect's own JSON), the compiled
//! per-instance form the layers use, and the store that holds the current snapshot.

pub mod ipset;
pub mod model;
pub mod parse;
pub mod store;

use std::sync::Arc;

pub use ipset::IpSet;
pub use model::InstancePolicies;
pub use store::{PolicyStore, Snapshot};

use model::NetworkAccess;

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
        }
    }
}
