//! The vocabulary every section of the configuration is written in: [`ConfigError`] (what is
//! wrong, naming the key and line), [`Secret`] (a value that never appears in output) and
//! [`duration`] (humantime strings such as `"2s"`).
//!
//! A leaf: the modules that own a section (`auth`, `policy`) use it without reaching up to
//! [`crate::config`], which holds every section.

pub mod duration;
mod error;
mod secret;

pub use error::ConfigError;
pub use secret::Secret;

/// Reads a file the configuration names (a policy document, a token key). Every such read
/// goes through here, so a test can count them: each is read once per start and once per
/// reload.
pub fn read_file(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    #[cfg(test)]
    reads::count(path);
    std::fs::read(path)
}

/// The files [`read_file`] read on this thread (tests only).
#[cfg(test)]
pub(crate) mod reads {
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    thread_local! {
        static READS: RefCell<BTreeMap<PathBuf, usize>> = const { RefCell::new(BTreeMap::new()) };
    }

    pub(super) fn count(path: &Path) {
        READS.with(|r| *r.borrow_mut().entry(path.to_path_buf()).or_default() += 1);
    }

    /// The reads since the last call, by file.
    pub(crate) fn take() -> BTreeMap<PathBuf, usize> {
        READS.with(|r| std::mem::take(&mut *r.borrow_mut()))
    }
}
