//! Migrating a `policies.dir` into etcd: every `<instance id>.json` (and `default.json`) of a
//! directory becomes the key `<prefix><instance id>` (`<prefix>default`).
//!
//! Every file is read and parsed first (the same parser and skipping rules as the file
//! source); one invalid file stops the import before anything is written. Then each document
//! is written: by default only where the key does not exist yet (a transaction conditioned on
//! its absence), so re-running an import never overwrites a policy changed through the API
//! since; with `overwrite`, unconditionally.

use std::path::Path;

use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp};

use super::{DEFAULT_KEY, EtcdConfig, connect_options};
use crate::canonical;
use crate::policy::render::render_document_pretty;
use crate::policy::source::{is_file_safe, read_file};

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// Keys written.
    pub written: Vec<String>,
    /// Keys that existed already and were left alone (without `overwrite`).
    pub kept: Vec<String>,
}

/// Imports the policy files of `dir` into etcd as `config` describes (see the module docs).
pub async fn import_dir(
    config: &EtcdConfig,
    dir: &Path,
    overwrite: bool,
) -> Result<ImportReport, String> {
    config.validate().map_err(|e| e.to_string())?;
    let mut documents = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(".json") else {
            continue;
        };
        if name.starts_with('.') || !entry.path().is_file() {
            continue;
        }
        let suffix = if stem == DEFAULT_KEY {
            DEFAULT_KEY.to_owned()
        } else if is_file_safe(stem) {
            canonical::instance_key(stem).into_owned()
        } else {
            tracing::warn!(file = name, "not an instance id; skipped");
            continue;
        };
        let records = read_file(&entry.path()).map_err(|e| e.to_string())?;
        documents.push((config.key(&suffix), render_document_pretty(&records)));
    }
    documents.sort();
    let options = connect_options(config).map_err(|e| e.to_string())?;
    let mut client = Client::connect(&config.endpoints, Some(options))
        .await
        .map_err(|e| format!("etcd: {e}"))?;
    let mut report = ImportReport::default();
    for (key, value) in documents {
        let mut txn = Txn::new();
        if !overwrite {
            txn = txn.when([Compare::version(key.as_str(), CompareOp::Equal, 0)]);
        }
        let txn = txn.and_then([TxnOp::put(key.as_str(), value, None)]);
        let response = tokio::time::timeout(config.request_timeout, client.txn(txn))
            .await
            .map_err(|_| format!("etcd did not answer in time writing {key}"))?
            .map_err(|e| format!("etcd: writing {key}: {e}"))?;
        if response.succeeded() {
            report.written.push(key);
        } else {
            report.kept.push(key);
        }
    }
    Ok(report)
}
