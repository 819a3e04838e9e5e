//! `[upstream.dev_kms]`: the waiting rules of the embedded dev KMS (`upstream.url =
//! "embedded"`). Key Protect's own values are the defaults; tests and demos shorten them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::settings::duration;

/// `[upstream.dev_kms]`: how long the embedded dev KMS makes callers wait.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct DevKmsConfig {
    /// A root key may be rotated once per this interval; an earlier rotation is 409
    /// `KEY_ROTATION_NOT_PERMITTED`. Key Protect: one hour.
    #[serde(with = "duration")]
    pub rotation_interval: Duration,
    /// A deleted key may be purged this long after its deletion; an earlier purge is 409
    /// `REQ_TOO_EARLY_ERR`. Key Protect: four hours.
    #[serde(with = "duration")]
    pub purge_wait: Duration,
    /// A key may be enabled or restored this long after its last action (disable, enable,
    /// rotate, delete, restore); earlier is 409 `REQ_TOO_EARLY_ERR`. Key Protect: 30 seconds.
    #[serde(with = "duration")]
    pub action_wait: Duration,
}

impl Default for DevKmsConfig {
    fn default() -> Self {
        DevKmsConfig {
            rotation_interval: Duration::from_secs(3600),
            purge_wait: Duration::from_secs(4 * 3600),
            action_wait: Duration::from_secs(30),
        }
    }
}
