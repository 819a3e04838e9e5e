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

    /// An environment variable outside the `KMSGATE_` overrides (such as `RUST_LOG`) that is
    /// not usable.
    pub fn env(variable: &str, why: impl fmt::Display) -> Self {
        ConfigError {
            messages: vec![format!(
                "invalid value in the environment variable `{variable}`: {why}"
            )],
        }
    }

    pub(crate) fn figment(error: figment::Error, source: Option<&(PathBuf, String)>) -> Self {
        let messages = error
            .into_iter()
            .map(|e| {
                let key = e.path.join(".");
                let mut message = match &e.kind {
                    figment::error::Kind::UnknownField(field, expected) => {
                        let key = if key.is_empty() {
                            field.clone()
                        } else {
                            key.clone()
                        };
                        match did_you_mean(field, expected) {
                            Some(near) => format!("unknown key `{key}` (did you mean `{near}`?)"),
                            None => format!("unknown key `{key}`"),
                        }
                    }
                    kind if key.is_empty() => kind.to_string(),
                    kind => format!("invalid value for key `{key}`: {kind}"),
                };
                let from_env = e
                    .metadata
                    .as_ref()
                    .is_some_and(|m| m.name.contains("environment"));
                if from_env {
                    message.push_str(&format!(
                        " (from the environment variable {})",
                        env_variable(&e.path)
                    ));
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

/// The `KMSGATE_` variable that sets `path` (`["listen", "max_connections"]` →
/// `KMSGATE_LISTEN__MAX_CONNECTIONS`), spelled as it is in the environment if it is there
/// (figment reads the names case-insensitively).
fn env_variable(path: &[String]) -> String {
    let canonical = format!("KMSGATE_{}", path.join("__").to_ascii_uppercase());
    std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .find(|name| name.eq_ignore_ascii_case(&canonical))
        .unwrap_or(canonical)
}

/// The expected key closest to a misspelled `field`, if one is close enough to be a typo:
/// at most one edit in four characters (and at least one), or a difference of case, `-` or `_`.
pub(crate) fn did_you_mean<'a>(field: &str, expected: &[&'a str]) -> Option<&'a str> {
    let fold = |s: &str| s.to_ascii_lowercase().replace('-', "_");
    let field_folded = fold(field);
    let (best, distance) = expected
        .iter()
        .map(|&candidate| (candidate, edit_distance(&field_folded, &fold(candidate))))
        .min_by_key(|&(_, distance)| distance)?;
    let allowed = (field.chars().count() / 4).max(1);
    (distance <= allowed).then_some(best)
}

/// Levenshtein distance (insertions, deletions, substitutions), with a transposition of two
/// neighbours counting as one edit.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for (i, row) in d.chunks_mut(width).enumerate() {
        row[0] = i;
    }
    for (j, cell) in d.iter_mut().take(width).enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_gets_a_suggestion_and_a_stranger_none() {
        let keys = ["grace_period", "drain_timeout"];
        assert_eq!(did_you_mean("drain_timout", &keys), Some("drain_timeout"));
        assert_eq!(did_you_mean("drain-timeout", &keys), Some("drain_timeout"));
        assert_eq!(did_you_mean("grace_peroid", &keys), Some("grace_period"));
        assert_eq!(did_you_mean("timeout", &keys), None);
        assert_eq!(did_you_mean("x", &["y"]), Some("y"));
        assert_eq!(did_you_mean("ab", &["cd"]), None);
        assert_eq!(did_you_mean("anything", &[]), None);
    }
}
