//! Bearer-token validation: JWT verification, key sources, the verified-token cache.

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// `[auth]`: bearer-token validation.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Whether the bearer layer runs at all.
    pub enabled: bool,
}

impl AuthConfig {
    /// Checks the auth section.
    pub fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }
}
