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
