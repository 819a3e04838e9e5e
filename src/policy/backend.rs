//! A shared policy store that replaces `policies.dir` (etcd, issue 15): it builds the snapshot
//! in place of the files and takes the policy API's writes.
//!
//! The trait is the seam between the file-based [`PolicySource`](super::reload::PolicySource),
//! which keeps the reload lock, the metrics and the snapshot swap, and a backend that lives
//! above it (`policy::etcd`): the source calls [`PolicyBackend::build`] instead of reading
//! `policies.dir`, and the policy API layer calls [`PolicyBackend::write`] instead of
//! persisting a file. Neither needs to know which backend it is.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use super::config::PoliciesConfig;
use super::model::Policy;
use super::source::SourceError;
use super::store::Snapshot;

/// A boxed, sendable future: a policy write is rare, so one allocation per write is fine.
pub type WriteFuture = Pin<Box<dyn Future<Output = Result<(), WriteError>> + Send>>;

/// Why a policy write through the shared store did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The instance id cannot name a policy document.
    #[error("the instance id cannot name a policy document")]
    BadInstance,
    /// The store could not be reached (or did not answer in time); nothing was written.
    #[error("the policy store is unavailable: {0}")]
    Unavailable(String),
    /// Concurrent writers kept winning the race for the document; nothing was written.
    #[error("the policy document kept changing under the write ({0} attempts)")]
    Contended(u32),
}

/// A policy store shared by several gateway replicas.
pub trait PolicyBackend: Send + Sync + fmt::Debug {
    /// A short name for logs and the admin listener (`etcd`).
    fn name(&self) -> &'static str;

    /// The whole snapshot `config` describes, with the backend's documents in place of
    /// `policies.dir`: the inline documents, overlaid by the backend's.
    fn build(&self, config: &PoliciesConfig) -> Result<Snapshot, SourceError>;

    /// Applies a `PUT /api/v2/instance/policies` for `instance` by `subject`: the stored
    /// document updated with `policies` and written back so that no concurrent update is
    /// lost. Completes once the store has committed it (and, where the backend can, once this
    /// replica enforces it).
    fn write(&self, instance: &str, policies: Vec<Policy>, subject: &str) -> WriteFuture;
}
