//! Key Protect instance policies: the model (parsed from Key Protect's own JSON), the compiled
//! per-instance form the layers use, and the store that holds the current snapshot.

pub mod active;
pub mod backend;
pub mod config;
pub mod etcd;
pub mod model;
pub mod parse;
pub mod reload;
pub mod render;
pub mod source;
pub mod store;

pub use crate::ipset::{self, IpSet};
pub use active::ActivePolicy;
pub use config::{PoliciesConfig, PolicyApiMode, Shadow, UnknownInstance};
pub use model::InstancePolicies;
pub use store::{PolicyStore, Snapshot, SnapshotOptions};
