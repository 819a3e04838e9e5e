//! Key Protect instance policies: the model (parsed from Key Protect's own JSON), the compiled
//! per-instance form the layers use, and the store that holds the current snapshot.

pub mod model;
pub mod parse;

use std::sync::Arc;

pub use model::InstancePolicies;

/// The policies that apply to one request's instance, compiled for the layers.
///
/// The instance layer puts an `Arc<ActivePolicy>` into the request extensions (one snapshot
/// load per request); every later layer reads it from there.
#[derive(Debug, Default)]
pub struct ActivePolicy {
    /// The instance id (`bluemix-instance`), if the request named one.
    pub instance: Option<Arc<str>>,
    /// The policies as Key Protect states them.
    pub model: InstancePolicies,
}
