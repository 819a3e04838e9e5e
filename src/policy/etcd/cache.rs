//! The local cache of the last snapshot loaded from etcd (`policies.etcd.cache_file`): what a
//! gateway starts from when etcd is unreachable at start-up and `on_unavailable = "cache"`.
//!
//! One JSON file: `{"revision": N, "documents": {"<key suffix>": <GET document>, …}}`, the
//! documents as etcd held them (so the same parser reads them back). It is written atomically
//! (temporary file, `fsync`, `rename`), so a crash leaves the old cache or the new one.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::policy::model::PolicyRecords;
use crate::policy::parse::parse_records;
use crate::policy::render::render_document;

#[derive(Serialize, Deserialize)]
struct Cache {
    revision: i64,
    documents: BTreeMap<String, Value>,
}

/// Writes `documents` (by key suffix) at `revision` to `path`, atomically.
pub fn write(
    path: &Path,
    revision: i64,
    documents: &BTreeMap<String, PolicyRecords>,
) -> io::Result<()> {
    let out = Cache {
        revision,
        documents: documents
            .iter()
            .filter_map(|(key, records)| {
                let value = serde_json::from_slice(&render_document(records, None)).ok()?;
                Some((key.clone(), value))
            })
            .collect(),
    };
    let bytes = serde_json::to_vec(&out).map_err(io::Error::other)?;
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let temp = path.with_file_name(format!(".{}.tmp", file_name.to_string_lossy()));
    let mut file = File::create(&temp)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    fs::rename(&temp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Reads the cache at `path`: its revision and documents. A document the parser refuses is
/// skipped (and logged); an unreadable or malformed file is an error.
pub fn read(path: &Path) -> io::Result<(i64, BTreeMap<String, PolicyRecords>)> {
    let bytes = fs::read(path)?;
    let cache: Cache = serde_json::from_slice(&bytes)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let mut documents = BTreeMap::new();
    for (key, raw) in cache.documents {
        let bytes = serde_json::to_vec(&raw).map_err(io::Error::other)?;
        match parse_records(&bytes) {
            Ok(records) => {
                documents.insert(key, records);
            }
            Err(rejection) => tracing::warn!(
                file = %path.display(),
                key = %key,
                reason = %rejection.wire_message(),
                "policy cache: document skipped"
            ),
        }
    }
    Ok((cache.revision, documents))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::model::{AllowedIp, Policy};

    #[test]
    fn round_trip() {
        let dir = std::env::temp_dir().join(format!("kmsgate-etcd-cache-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cache.json");
        let mut records = PolicyRecords::default();
        records.update(
            [Policy::AllowedIp(AllowedIp {
                enabled: true,
                allowed_ip: vec!["10.0.0.0/8".parse().unwrap()],
            })],
            "alice",
            "2026-11-29T12:00:00Z",
        );
        let documents = BTreeMap::from([("default".to_owned(), records.clone())]);
        write(&path, 42, &documents).unwrap();
        let (revision, back) = read(&path).unwrap();
        assert_eq!(revision, 42);
        assert_eq!(back, documents);
        fs::write(&path, b"{\"revision\": 1").unwrap();
        assert!(read(&path).is_err());
    }
}
