//! [`ConfigError`]: what is wrong with a configuration, naming the key (and line).

use std::fmt;
use std::path::{Path, PathBuf};

/// A configuration that cannot be used. `Display` names the key, the file and, where it can be
/// found, the line.
#[derive(Debug)]
pub struct ConfigError {
    messages: Vec<String>,
}

impl ConfigError {
    pub(crate) fn io(path: &Path, error: std::io::Error) -> Self {
        ConfigError {
            messages: vec![format!("cannot read {}: {error}", path.display())],
        }
    }

    /// A value that parsed but is not usable.
    pub fn invalid(key: &str, why: impl fmt::Display) -> Self {
        ConfigError {
            messages: vec![format!("invalid value for key `{key}`: {why}")],
        }
    }

    pub(crate) fn figment(error: figment::Error, source: Option<&(PathBuf, String)>) -> Self {
        let messages = error
            .into_iter()
            .map(|e| {
                let key = e.path.join(".");
                let mut message = match &e.kind {
                    figment::error::Kind::UnknownField(field, _) => {
                        let key = if key.is_empty() {
                            field.clone()
                        } else {
                            key.clone()
                        };
                        format!("unknown key `{key}`")
                    }
                    kind if key.is_empty() => kind.to_string(),
                    kind => format!("invalid value for key `{key}`: {kind}"),
                };
                let from_env = e
                    .metadata
                    .as_ref()
                    .is_some_and(|m| m.name.contains("environment"));
                if from_env {
                    message.push_str(" (from a KMSGATE_ environment variable)");
                } else if let Some((path, text)) = source {
                    match line_of(text, &e.path) {
                        Some(line) => message.push_str(&format!(" at {}:{line}", path.display())),
                        None => message.push_str(&format!(" in {}", path.display())),
                    }
                }
                message
            })
            .collect();
        ConfigError { messages }
    }

    /// Each problem, one per line.
    pub fn messages(&self) -> &[String] {
        &self.messages
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.messages.join("\n"))
    }
}

impl std::error::Error for ConfigError {}

/// The 1-based line of the TOML text that sets `path` (`["upstream", "url"]`), by tracking
/// `[table]` headers and `key =` lines. Good enough to point a person at the right place.
pub(crate) fn line_of(text: &str, path: &[String]) -> Option<usize> {
    let (key, table) = path.split_last()?;
    let mut current: Vec<String> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(header) = line.strip_prefix('[') {
            let header = header
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("");
            current = header
                .split('.')
                .map(|s| s.trim().trim_matches('"').to_owned())
                .collect();
            continue;
        }
        let Some((lhs, _)) = line.split_once('=') else {
            continue;
        };
        let mut full: Vec<String> = current.clone();
        full.extend(
            lhs.split('.')
                .map(|s| s.trim().trim_matches('"').to_owned()),
        );
        let (last, prefix) = full.split_last()?;
        if last == key && prefix == table {
            return Some(i + 1);
        }
    }
    // An unknown table: point at its header.
    let wanted: Vec<String> = path.to_vec();
    text.lines()
        .position(|l| {
            let l = l.trim();
            l.starts_with('[') && {
                let h: Vec<String> = l
                    .trim_matches(|c| c == '[' || c == ']')
                    .split('.')
                    .map(|s| s.trim().to_owned())
                    .collect();
                h == wanted
            }
        })
        .map(|i| i + 1)
}
