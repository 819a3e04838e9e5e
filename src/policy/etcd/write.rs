//! Policy writes through etcd ([`PolicyBackend::write`]): read the instance's document, update
//! it as Key Protect would, and write it in a transaction conditioned on the key's mod revision
//! (or its absence); on a conflict, read again and retry. The client is answered once this
//! replica's watch has applied the committed revision. Also [`PolicyBackend::build`]: the
//! snapshot from the inline documents overlaid by etcd's.

use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

use etcd_client::{Compare, CompareOp, Txn, TxnOp};
use tokio::time::timeout;

use super::client::{EtcdError, retried};
use super::{DEFAULT_KEY, EtcdSource};
use crate::canonical;
use crate::policy::backend::{PolicyBackend, WriteError, WriteFuture};
use crate::policy::config::PoliciesConfig;
use crate::policy::model::{Policy, PolicyRecords};
use crate::policy::parse::parse_records;
use crate::policy::render::render_document_pretty;
use crate::policy::source::{SourceError, is_file_safe};
use crate::policy::store::{Snapshot, options};

/// How many times a write re-reads and retries after losing the race for its document.
const MAX_WRITE_ATTEMPTS: u32 = 16;

impl EtcdSource {
    /// Reads, updates and conditionally writes `instance`'s document (see the module docs).
    async fn write_document(
        self,
        instance: String,
        policies: Vec<Policy>,
        subject: String,
    ) -> Result<(), WriteError> {
        if !is_file_safe(&instance) {
            return Err(WriteError::BadInstance);
        }
        let config = &self.inner.config;
        let metrics = &self.inner.metrics;
        let unavailable = |e: EtcdError| {
            metrics.writes_unavailable.inc();
            tracing::error!(instance = %instance, error = %e, "policy update not written: etcd unavailable");
            WriteError::Unavailable(e.to_string())
        };
        let client = self.client().await.map_err(unavailable)?;
        let key = config.key(&instance);
        for _ in 0..MAX_WRITE_ATTEMPTS {
            let current = retried(config.request_timeout, "read", || {
                let (mut client, key) = (client.clone(), key.clone());
                async move { client.get(key, None).await }
            })
            .await
            .map_err(unavailable)?;
            let stored = current.kvs().first();
            // The base: the stored document; for a new (or corrupt) one, the policies this
            // replica enforces for the instance (its default, or the kept previous ones).
            let mut records = stored
                .and_then(|kv| parse_records(kv.value()).ok())
                .unwrap_or_else(|| self.inner.store.snapshot().get(Some(&instance)).records());
            let condition = match stored {
                Some(kv) => {
                    Compare::mod_revision(key.as_str(), CompareOp::Equal, kv.mod_revision())
                }
                None => Compare::version(key.as_str(), CompareOp::Equal, 0),
            };
            let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
            records.update(policies.iter().cloned(), &subject, &now);
            let txn = Txn::new().when([condition]).and_then([TxnOp::put(
                key.as_str(),
                render_document_pretty(&records),
                None,
            )]);
            // Tried again too while it fails at once: the channel may reach a member that is
            // back on one call and one still reconnecting on the next. Safe: a try that did
            // commit makes the next one's condition fail, which reads again (a conflict).
            let committed = retried(config.request_timeout, "write", || {
                let (mut client, txn) = (client.clone(), txn.clone());
                async move { client.txn(txn).await }
            })
            .await
            .map_err(unavailable)?;
            if committed.succeeded() {
                metrics.writes_ok.inc();
                let revision = committed.header().map_or(0, |h| h.revision());
                self.await_revision(revision).await;
                tracing::info!(instance = %instance, revision, "policy update committed to etcd");
                return Ok(());
            }
            metrics.writes_conflict.inc();
        }
        metrics.writes_unavailable.inc();
        Err(WriteError::Contended(MAX_WRITE_ATTEMPTS))
    }

    /// Waits (up to `request_timeout`) until this replica's snapshot reflects `revision`.
    async fn await_revision(&self, revision: i64) {
        let mut seen = self.inner.revision.subscribe();
        let waited = timeout(
            self.inner.config.request_timeout,
            seen.wait_for(|current| *current >= revision),
        )
        .await;
        if !matches!(waited, Ok(Ok(_))) {
            tracing::warn!(
                revision,
                "committed policy update not yet seen by this replica's watch"
            );
        }
    }
}

impl PolicyBackend for EtcdSource {
    fn name(&self) -> &'static str {
        "etcd"
    }

    fn build(&self, config: &PoliciesConfig) -> Result<Snapshot, SourceError> {
        if config.etcd.as_ref() != Some(&self.inner.config) {
            tracing::warn!(
                "[policies.etcd] changed: etcd settings need a restart; the running ones stay"
            );
        }
        let (inline, mut default) = Snapshot::inline_records(config)?;
        let mut instances: HashMap<String, PolicyRecords> = inline
            .into_iter()
            .map(|(id, records)| (canonical::instance_key(&id).into_owned(), records))
            .collect();
        let mut canonically_named = HashSet::new();
        let docs = self.docs();
        for (suffix, records) in &docs.by_key {
            if suffix == DEFAULT_KEY {
                default = Some(records.clone());
                continue;
            }
            let id = canonical::instance_key(suffix).into_owned();
            if id == *suffix {
                canonically_named.insert(id.clone());
            } else if canonically_named.contains(&id) {
                continue;
            }
            instances.insert(id, records.clone());
        }
        drop(docs);
        Ok(Snapshot::build(instances, default, options(config)?))
    }

    fn write(&self, instance: &str, policies: Vec<Policy>, subject: &str) -> WriteFuture {
        Box::pin(
            self.clone()
                .write_document(instance.to_owned(), policies, subject.to_owned()),
        )
    }
}
