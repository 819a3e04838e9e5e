//! Policy files: `policies.dir` holds one `<instance id>.json` per instance — exactly the body
//! Key Protect returns for `GET /api/v2/instance/policies`, read with the same parser as PUT
//! bodies — and an optional `default.json`.
//!
//! Names starting with `.` are skipped (Kubernetes ConfigMap mounts keep `..data` and
//! timestamped directories there; the gateway's own temporary files are `.<name>.tmp`), as
//! are subdirectories and files not ending in `.json`. Symbolic links are followed, so a
//! ConfigMap's `..data` swap is seen as a change of every file.
//!
//! A file wins over the inline `[policies.instances]` entry of the same instance, and
//! `default.json` over the inline `default`.
//!
//! [`persist`] writes one instance's file atomically: a temporary file in the same
//! directory, `fsync`, `rename` over the old file, `fsync` of the directory. A crash at any
//! point leaves the old file or the new one, never a partial one.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::{self, File};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::config::PoliciesConfig;
use super::model::PolicyRecords;
use super::parse::parse_records;
use super::render::render_document_pretty;
use super::store::{PolicyStore, Snapshot, options};
use crate::canonical;
use crate::settings::ConfigError;

impl PolicyStore {
    /// A store compiled from `[policies]` and the files in `policies.dir`.
    pub fn from_config(config: &PoliciesConfig) -> Result<PolicyStore, ConfigError> {
        Ok(PolicyStore::new(load(config)?))
    }
}

/// The file name of the default document.
pub const DEFAULT_FILE: &str = "default.json";

const EXTENSION: &str = ".json";

/// The longest instance id the gateway turns into a file name.
const MAX_ID: usize = 128;

/// Why a policy snapshot could not be built.
#[derive(Debug)]
pub enum SourceError {
    /// The inline part of `[policies]` is invalid.
    Config(ConfigError),
    /// The directory (or a file in it) could not be read.
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        error: io::Error,
    },
    /// A policy file is not a valid policy document.
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it (the parser's message).
        reason: String,
    },
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceError::Config(e) => write!(f, "{e}"),
            SourceError::Io { path, error } => write!(f, "{}: {error}", path.display()),
            SourceError::Invalid { path, reason } => write!(f, "{}: {reason}", path.display()),
        }
    }
}

impl std::error::Error for SourceError {}

impl From<SourceError> for ConfigError {
    /// A start-up failure: inline errors as they are, file errors under `policies.dir`.
    fn from(e: SourceError) -> Self {
        match e {
            SourceError::Config(e) => e,
            other => ConfigError::invalid("policies.dir", other),
        }
    }
}

impl From<ConfigError> for SourceError {
    fn from(e: ConfigError) -> Self {
        SourceError::Config(e)
    }
}

/// Whether `id` can name an instance file: letters, digits, `-`, `_`, `.`, not starting with
/// `.`, at most 128 bytes, and not `default`.
pub fn is_file_safe(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID
        && !id.starts_with('.')
        && id != "default"
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// One policy file: its instance id (`None`: `default.json`), path and metadata (symlinks
/// followed).
type Entry = (Option<String>, PathBuf, fs::Metadata);

/// The policy files of `dir`, sorted by instance id, and the `.json` files skipped because
/// their name is no instance id.
fn entries(dir: &Path) -> Result<(Vec<Entry>, Vec<PathBuf>), SourceError> {
    let io_error = |error| SourceError::Io {
        path: dir.to_owned(),
        error,
    };
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error)? {
        let entry = entry.map_err(io_error)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') {
            continue;
        }
        let Some(stem) = name.strip_suffix(EXTENSION) else {
            continue;
        };
        let path = entry.path();
        // Follows symlinks: a ConfigMap entry is a link into `..data`.
        let Ok(meta) = fs::metadata(&path) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        if name == DEFAULT_FILE {
            found.push((None, path, meta));
        } else if is_file_safe(stem) {
            found.push((Some(stem.to_owned()), path, meta));
        } else {
            tracing::warn!(file = %path.display(), "policy file name is not an instance id; skipped");
            skipped.push(path);
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    skipped.sort();
    Ok((found, skipped))
}

/// A cheap fingerprint of `dir`'s policy files: names, sizes, modification times and inodes
/// (symlinks followed). It changes when a file is added, removed, rewritten or swapped.
pub fn fingerprint(dir: &Path) -> Result<u64, SourceError> {
    let mut hasher = DefaultHasher::new();
    for (id, _, meta) in entries(dir)?.0 {
        id.hash(&mut hasher);
        meta.len().hash(&mut hasher);
        meta.modified().ok().hash(&mut hasher);
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            (meta.dev(), meta.ino(), meta.ctime(), meta.ctime_nsec()).hash(&mut hasher);
        }
    }
    Ok(hasher.finish())
}

/// Reads and parses one policy file.
pub fn read_file(path: &Path) -> Result<PolicyRecords, SourceError> {
    let bytes = crate::settings::read_file(path).map_err(|error| SourceError::Io {
        path: path.to_owned(),
        error,
    })?;
    parse_records(&bytes).map_err(|rejection| SourceError::Invalid {
        path: path.to_owned(),
        reason: rejection.wire_message().into_owned(),
    })
}

/// Builds the whole snapshot `config` describes: the inline documents, overlaid by the files
/// in `policies.dir`. Any invalid file fails the whole build (the caller keeps what it had).
pub fn load(config: &PoliciesConfig) -> Result<Snapshot, SourceError> {
    let (inline, mut default) = Snapshot::inline_records(config)?;
    let mut instances: HashMap<String, PolicyRecords> = inline
        .into_iter()
        .map(|(id, records)| (canonical::instance_key(&id).into_owned(), records))
        .collect();
    if let Some(dir) = &config.dir {
        let files = read_dir(dir)?;
        if let Some((_, records)) = files.default {
            default = Some(records);
        }
        for (key, (_, records)) in files.instances {
            instances.insert(key, records);
        }
    }
    Ok(Snapshot::build(instances, default, options(config)?))
}

/// The policy documents of a directory, read and parsed as the file source reads them.
#[derive(Debug, Default)]
pub struct DirDocuments {
    /// `default.json`, if there is one.
    pub default: Option<(PathBuf, PolicyRecords)>,
    /// By canonical instance id: the file and its document.
    pub instances: BTreeMap<String, (PathBuf, PolicyRecords)>,
    /// `.json` files whose name is no instance id (skipped, and logged).
    pub skipped: Vec<PathBuf>,
}

/// Reads and parses every policy file of `dir` (see the module docs for which files count).
/// Instance ids are canonical UUIDs whatever a file's name spells; of two files naming one
/// instance, the canonically named one wins, and two other spellings are an error. Any
/// invalid file fails the whole read, naming the file.
pub fn read_dir(dir: &Path) -> Result<DirDocuments, SourceError> {
    let (found, skipped) = entries(dir)?;
    let mut documents = DirDocuments {
        skipped,
        ..DirDocuments::default()
    };
    for (id, path, _) in found {
        let records = read_file(&path)?;
        let Some(id) = id else {
            documents.default = Some((path, records));
            continue;
        };
        let key = canonical::instance_key(&id).into_owned();
        let is_canonical = key == id;
        if let Some((other, _)) = documents.instances.get(&key) {
            let other_is_canonical = other.file_stem().is_some_and(|s| s == key.as_str());
            if other_is_canonical {
                continue;
            }
            if !is_canonical {
                return Err(SourceError::Invalid {
                    path,
                    reason: format!(
                        "names instance {key}, as {} does; rename one to {key}.json",
                        other.display()
                    ),
                });
            }
        }
        documents.instances.insert(key, (path, records));
    }
    Ok(documents)
}

/// The path of `instance`'s file in `dir`, if the id can name a file.
pub fn instance_path(dir: &Path, instance: &str) -> Option<PathBuf> {
    is_file_safe(instance).then(|| dir.join(format!("{instance}{EXTENSION}")))
}

/// Writes `records` as `instance`'s document to a temporary file in `dir` and syncs it. The
/// first half of [`persist`]; a crash after it leaves the old file in place.
pub fn write_temp(dir: &Path, instance: &str, records: &PolicyRecords) -> io::Result<PathBuf> {
    if !is_file_safe(instance) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the instance id cannot name a file",
        ));
    }
    let temp = dir.join(format!(".{instance}{EXTENSION}.tmp"));
    let mut file = File::create(&temp)?;
    file.write_all(&render_document_pretty(records))?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    Ok(temp)
}

/// Persists `records` as `instance`'s file in `dir`, atomically (see the module docs).
pub fn persist(dir: &Path, instance: &str, records: &PolicyRecords) -> io::Result<PathBuf> {
    let temp = write_temp(dir, instance, records)?;
    let path = dir.join(format!("{instance}{EXTENSION}"));
    fs::rename(&temp, &path)?;
    File::open(dir)?.sync_all()?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::model::{AllowedIp, Policy};
    use crate::policy::render::render_document;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("kmsgate-source-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn allowed(net: &str) -> PolicyRecords {
        let mut records = PolicyRecords::default();
        records.update(
            [Policy::AllowedIp(AllowedIp {
                enabled: true,
                allowed_ip: vec![net.parse().unwrap()],
            })],
            "test",
            "2026-11-29T12:00:00Z",
        );
        records
    }

    fn config(dir: &Path) -> PoliciesConfig {
        PoliciesConfig {
            dir: Some(dir.to_owned()),
            ..Default::default()
        }
    }

    #[test]
    fn files_override_inline_and_hidden_or_foreign_files_are_skipped() {
        let dir = temp_dir("load");
        persist(&dir, "inst-a", &allowed("10.0.0.0/8")).unwrap();
        persist(&dir, "default", &allowed("1.2.3.0/24")).unwrap_err();
        fs::write(
            dir.join(DEFAULT_FILE),
            render_document(&allowed("192.0.2.0/24"), None),
        )
        .unwrap();
        fs::write(dir.join(".hidden.json"), "not json").unwrap();
        fs::write(dir.join("notes.txt"), "not json").unwrap();
        let mut config = config(&dir);
        config.instances.insert(
            "inst-a".into(),
            String::from_utf8(render_document(&allowed("172.16.0.0/12"), None)).unwrap(),
        );
        let snapshot = load(&config).unwrap();
        assert_eq!(snapshot.len(), 1);
        let a = snapshot.get(Some("inst-a"));
        assert!(
            a.allowed_ip
                .as_ref()
                .unwrap()
                .contains("10.1.2.3".parse().unwrap())
        );
        let other = snapshot.get(Some("other"));
        assert!(
            other
                .allowed_ip
                .as_ref()
                .unwrap()
                .contains("192.0.2.9".parse().unwrap())
        );
        assert_eq!(a.meta[0].as_ref().unwrap().created_by, "test");
    }

    #[test]
    fn a_corrupt_file_fails_the_load_naming_the_file() {
        let dir = temp_dir("corrupt");
        fs::write(dir.join("inst-b.json"), "{\"metadata\": ").unwrap();
        let e = load(&config(&dir)).unwrap_err().to_string();
        assert!(e.contains("inst-b.json"), "{e}");
    }

    #[test]
    fn a_crash_before_rename_leaves_the_old_file() {
        let dir = temp_dir("crash");
        persist(&dir, "inst-c", &allowed("10.0.0.0/8")).unwrap();
        let before = fingerprint(&dir).unwrap();
        // The new version reaches its temporary file, then the process "dies".
        let temp = write_temp(&dir, "inst-c", &allowed("192.0.2.0/24")).unwrap();
        assert!(temp.exists());
        assert_eq!(fingerprint(&dir).unwrap(), before);
        let snapshot = load(&config(&dir)).unwrap();
        let c = snapshot.get(Some("inst-c"));
        assert!(
            c.allowed_ip
                .as_ref()
                .unwrap()
                .contains("10.0.0.1".parse().unwrap())
        );
        // A torn temporary file is ignored too, and the next persist replaces it.
        fs::write(&temp, "{\"meta").unwrap();
        assert!(load(&config(&dir)).is_ok());
        persist(&dir, "inst-c", &allowed("192.0.2.0/24")).unwrap();
        assert!(!temp.exists());
        let c = load(&config(&dir)).unwrap();
        let c = c.get(Some("inst-c"));
        assert!(
            c.allowed_ip
                .as_ref()
                .unwrap()
                .contains("192.0.2.1".parse().unwrap())
        );
        assert_ne!(fingerprint(&dir).unwrap(), before);
    }

    #[test]
    fn instance_ids_that_cannot_name_a_file_are_refused() {
        for bad in [
            "",
            "../etc/passwd",
            "a/b",
            ".hidden",
            "default",
            &"x".repeat(129),
        ] {
            assert!(!is_file_safe(bad), "{bad}");
        }
        assert!(is_file_safe("a1b2c3d4-0000-4000-8000-000000000001"));
    }
}
