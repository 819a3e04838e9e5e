//! Migrating a `policies.dir` into etcd (`kmsgate policies import-dir`): every
//! `<instance id>.json` (and `default.json`) of a directory becomes the key
//! `<prefix><instance id>` (`<prefix>default`).
//!
//! Every file is read and parsed first (the same parser and naming rules as the file source,
//! [`read_dir`]); one invalid file stops the import before anything is written. Then each
//! document is written: by default only where the key does not exist yet (a transaction
//! conditioned on its absence), so re-running an import never overwrites a policy changed
//! through the API since; with `overwrite`, unconditionally. A dry run reads which keys exist
//! and writes nothing.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use etcd_client::{Client, Compare, CompareOp, GetOptions, Txn, TxnOp};

use super::client::{EtcdError, bounded, connect_options};
use super::{DEFAULT_KEY, EtcdConfig};
use crate::policy::render::render_document_pretty;
use crate::policy::source::{SourceError, read_dir};
use crate::settings::ConfigError;

/// How to import.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ImportOptions {
    /// Write over keys that exist already.
    pub overwrite: bool,
    /// Write nothing; report what an import would do.
    pub dry_run: bool,
}

/// What happened to one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Written to its key.
    Written,
    /// Its key existed already and was left alone (no `overwrite`).
    Kept,
}

/// One policy file and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The file it came from.
    pub file: PathBuf,
    /// The etcd key.
    pub key: String,
    /// Written or kept (in a dry run: what a real import would do).
    pub outcome: Outcome,
}

/// What an import did (or, in a dry run, would do).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// Every policy file of the directory, by key.
    pub documents: Vec<Imported>,
    /// `.json` files whose name is no instance id (not imported).
    pub skipped: Vec<PathBuf>,
    /// etcd's revision after the import (in a dry run: when the keys were read).
    pub revision: i64,
    /// Nothing was written.
    pub dry_run: bool,
}

impl ImportReport {
    /// How many documents had `outcome`.
    pub fn count(&self, outcome: Outcome) -> usize {
        self.documents
            .iter()
            .filter(|d| d.outcome == outcome)
            .count()
    }
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (written, kept) = if self.dry_run {
            ("would import", "would keep")
        } else {
            ("imported", "kept")
        };
        for d in &self.documents {
            match d.outcome {
                Outcome::Written => writeln!(f, "{written} {} from {}", d.key, d.file.display())?,
                Outcome::Kept => writeln!(
                    f,
                    "{kept} {} (exists in etcd; --overwrite replaces it with {})",
                    d.key,
                    d.file.display()
                )?,
            }
        }
        for file in &self.skipped {
            writeln!(f, "skipped {}: the name is no instance id", file.display())?;
        }
        write!(
            f,
            "{} {written}, {} {kept}, {} skipped; etcd revision {}",
            self.count(Outcome::Written),
            self.count(Outcome::Kept),
            self.skipped.len(),
            self.revision
        )?;
        if self.dry_run {
            write!(f, " (dry run: nothing written)")?;
        }
        Ok(())
    }
}

/// Why an import failed.
#[derive(Debug)]
pub enum ImportError {
    /// The etcd settings are invalid; nothing was read or written.
    Config(ConfigError),
    /// The directory or a file in it could not be read or parsed (the error names it);
    /// nothing was written.
    Source(SourceError),
    /// etcd failed; the documents before `written` keys were written (re-running is safe).
    Etcd {
        /// What failed.
        error: EtcdError,
        /// Keys written before the failure.
        written: usize,
        /// Keys to write in all.
        total: usize,
    },
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImportError::Config(e) => write!(f, "{e}"),
            ImportError::Source(e) => write!(f, "{e}; nothing was written"),
            ImportError::Etcd {
                error, written: 0, ..
            } => write!(f, "etcd: {error}; nothing was written"),
            ImportError::Etcd {
                error,
                written,
                total,
            } => write!(
                f,
                "etcd: {error} (after writing {written} of {total} keys; running the import \
                 again is safe: existing keys are kept)"
            ),
        }
    }
}

impl std::error::Error for ImportError {}

/// Imports the policy files of `dir` into etcd as `config` describes (see the module docs).
pub async fn import_dir(
    config: &EtcdConfig,
    dir: &Path,
    options: ImportOptions,
) -> Result<ImportReport, ImportError> {
    config.validate().map_err(ImportError::Config)?;
    let files = read_dir(dir).map_err(ImportError::Source)?;
    let mut documents: Vec<(String, PathBuf, Vec<u8>)> = files
        .instances
        .into_iter()
        .map(|(id, (file, records))| (config.key(&id), file, render_document_pretty(&records)))
        .collect();
    if let Some((file, records)) = files.default {
        let value = render_document_pretty(&records);
        documents.push((config.key(DEFAULT_KEY), file, value));
    }
    documents.sort();
    let total = documents.len();
    let etcd_error = |error, written| ImportError::Etcd {
        error,
        written,
        total,
    };
    let connect = connect_options(config).map_err(ImportError::Config)?;
    let mut client = bounded(
        config.connect_timeout + config.request_timeout,
        "connect",
        Client::connect(&config.endpoints, Some(connect)),
    )
    .await
    .map_err(|e| etcd_error(e, 0))?;
    let mut report = ImportReport {
        skipped: files.skipped,
        dry_run: options.dry_run,
        ..ImportReport::default()
    };
    if options.dry_run {
        let existing = bounded(
            config.request_timeout,
            "read",
            client.get(
                config.prefix.as_str(),
                Some(GetOptions::new().with_prefix().with_keys_only()),
            ),
        )
        .await
        .map_err(|e| etcd_error(e, 0))?;
        report.revision = existing.header().map_or(0, |h| h.revision());
        let existing: HashSet<&[u8]> = existing.kvs().iter().map(|kv| kv.key()).collect();
        for (key, file, _) in documents {
            let outcome = if options.overwrite || !existing.contains(key.as_bytes()) {
                Outcome::Written
            } else {
                Outcome::Kept
            };
            report.documents.push(Imported { file, key, outcome });
        }
        return Ok(report);
    }
    for (key, file, value) in documents {
        let mut txn = Txn::new();
        if !options.overwrite {
            txn = txn.when([Compare::version(key.as_str(), CompareOp::Equal, 0)]);
        }
        let txn = txn.and_then([TxnOp::put(key.as_str(), value, None)]);
        let written = report.count(Outcome::Written);
        let response = bounded(config.request_timeout, "write", client.txn(txn))
            .await
            .map_err(|e| etcd_error(e, written))?;
        report.revision = response.header().map_or(report.revision, |h| h.revision());
        let outcome = if response.succeeded() {
            Outcome::Written
        } else {
            Outcome::Kept
        };
        report.documents.push(Imported { file, key, outcome });
    }
    if report.documents.is_empty() {
        // Nothing to write: the revision is still worth reporting (and proves etcd answered).
        let status = bounded(config.request_timeout, "read", client.status())
            .await
            .map_err(|e| etcd_error(e, 0))?;
        report.revision = status.header().map_or(0, |h| h.revision());
    }
    Ok(report)
}
