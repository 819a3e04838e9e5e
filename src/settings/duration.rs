//! Serde support for durations written as `"2s"`, `"500ms"`, `"1h 30m"` (humantime).

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Serializes a duration as a humantime string.
pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&humantime::format_duration(*value))
}

/// Deserializes a humantime string such as `"2s"`.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "{text:?} is not a duration like \"2s\" or \"500ms\": {e}"
        ))
    })
}

/// The same for `Option<Duration>`.
pub mod option {
    use super::*;

    /// Serializes an optional duration.
    pub fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => super::serialize(d, serializer),
            None => serializer.serialize_none(),
        }
    }

    /// Deserializes an optional duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        super::deserialize(deserializer).map(Some)
    }
}
