//! The error-envelope inspector: an upstream error body is watched as it streams to the client,
//! and the reason codes of its Key Protect envelope are counted
//! (`kmsgate_upstream_reasons_total`). The bytes are passed on untouched.

use bytes::Bytes;

use crate::body::BodyTap;
use crate::metrics::Metrics;

/// Error bodies up to this size are inspected for reason codes.
pub const INSPECT_LIMIT: usize = 64 * 1024;

/// Watches an upstream error body as it streams to the client (up to [`INSPECT_LIMIT`] bytes)
/// and counts the reason codes of its Key Protect envelope when it ends. The bytes themselves
/// are passed on untouched.
#[derive(Debug)]
pub struct ErrorInspector {
    buffer: Vec<u8>,
    overflowed: bool,
    finished: bool,
    metrics: Metrics,
}

impl ErrorInspector {
    /// A new inspector that counts into `metrics`.
    pub fn new(metrics: Metrics) -> Self {
        ErrorInspector {
            buffer: Vec::new(),
            overflowed: false,
            finished: false,
            metrics,
        }
    }
}

impl BodyTap for ErrorInspector {
    /// Sees a data frame.
    fn observe(&mut self, data: &Bytes) {
        if self.overflowed {
            return;
        }
        if self.buffer.len() + data.len() > INSPECT_LIMIT {
            self.overflowed = true;
            self.buffer = Vec::new();
            return;
        }
        self.buffer.extend_from_slice(data);
    }

    /// The body ended: count the codes found (once).
    fn finish(&mut self) {
        if std::mem::replace(&mut self.finished, true) || self.overflowed {
            return;
        }
        for code in envelope_codes(&self.buffer) {
            self.metrics.upstream_reason(&code);
        }
        self.buffer = Vec::new();
    }
}

/// The reason codes in a Key Protect error envelope (empty for anything else).
pub fn envelope_codes(body: &[u8]) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        #[serde(default)]
        resources: Vec<Resource>,
    }
    #[derive(serde::Deserialize)]
    struct Resource {
        #[serde(default)]
        reasons: Vec<ReasonCode>,
    }
    #[derive(serde::Deserialize)]
    struct ReasonCode {
        #[serde(default)]
        code: String,
    }
    match serde_json::from_slice::<Envelope>(body) {
        Ok(envelope) => envelope
            .resources
            .into_iter()
            .flat_map(|r| r.reasons)
            .map(|r| r.code)
            .filter(|c| !c.is_empty())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_codes_are_read_leniently() {
        let body = br#"{"metadata":{},"resources":[{"errorMsg":"x","reasons":[{"code":"KEY_DELETED_ERR"},{"code":" WEIRD"}]}]}"#;
        assert_eq!(
            envelope_codes(body),
            vec!["KEY_DELETED_ERR".to_owned(), " WEIRD".to_owned()]
        );
        assert!(envelope_codes(b"not json").is_empty());
    }
}
