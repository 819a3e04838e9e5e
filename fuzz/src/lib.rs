//! The fuzz targets of kmsgate, as plain functions of the input bytes.
//!
//! Each function is one target: it must not panic on any input, and it asserts the invariants
//! the code under test promises (a panic is a finding). The AFL++ binaries in `src/bin/` call
//! these functions from `afl::fuzz!`; the corpus replay test (`tests/corpus.rs`) calls them on
//! every committed seed, so `cargo test` in this crate exercises them without a fuzzing engine.
//!
//! Several targets read a first line as a small header (a route, a query, a method and target)
//! and the rest as the body, so the seeds stay readable and AFL++ mutates both parts.

#![forbid(unsafe_code)]

pub mod body;
pub mod canonical;
pub mod policy;
pub mod proxy_protocol;
pub mod route;
pub mod token;

use kmsgate::Rejection;

/// The target names, as `src/bin/<name>.rs` and `corpus/<name>/` spell them.
pub const TARGETS: &[&str] = &[
    "body",
    "policy",
    "token",
    "route",
    "canonical",
    "proxy_protocol",
];

/// Runs the target called `name` on `data`; false for an unknown name.
pub fn run(name: &str, data: &[u8]) -> bool {
    match name {
        "body" => body::fuzz(data),
        "policy" => policy::fuzz(data),
        "token" => token::fuzz(data),
        "route" => route::fuzz(data),
        "canonical" => canonical::fuzz(data),
        "proxy_protocol" => proxy_protocol::fuzz(data),
        _ => return false,
    }
    true
}

/// Splits `data` at its first `\n`: the header line (without a trailing `\r`) and the rest.
/// Without a newline, the whole input is the header and the rest is empty.
pub fn split_line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == b'\n') {
        Some(i) => {
            let line = &data[..i];
            (line.strip_suffix(b"\r").unwrap_or(line), &data[i + 1..])
        }
        None => (data, &[]),
    }
}

/// A refusal renders as Key Protect's error envelope: JSON with the collection metadata, one
/// resource with an `errorMsg`, and (except for 401) one reason with the refusal's code and
/// status.
pub fn assert_envelope(rejection: &Rejection) {
    let bytes = rejection.body();
    let v: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => panic!("a refusal's envelope is not JSON ({e}): {bytes:?}"),
    };
    assert_eq!(
        v["metadata"]["collectionType"], "application/vnd.ibm.kms.error+json",
        "{v}"
    );
    assert_eq!(v["metadata"]["collectionTotal"], 1, "{v}");
    let resource = &v["resources"][0];
    assert!(resource["errorMsg"].is_string(), "{v}");
    let reason = rejection.reason();
    let status = reason.status().as_u16();
    if status == 401 {
        assert!(resource.get("reasons").is_none(), "{v}");
    } else {
        let r = &resource["reasons"][0];
        assert_eq!(r["code"], reason.code(), "{v}");
        assert_eq!(r["status"], status, "{v}");
        assert!(r["message"].is_string(), "{v}");
    }
}

/// True when the body is empty or JSON whitespace only.
pub fn is_blank(body: &[u8]) -> bool {
    body.iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

/// True when `bytes` is one complete JSON text (serde_json's reading).
pub fn is_json(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
}
