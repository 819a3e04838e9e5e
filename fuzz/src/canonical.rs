//! Target `canonical`: the canonical forms of a request, `kmsgate::canonical::{path, query,
//! instance_id, host}`.
//!
//! Input: any bytes (read as UTF-8, lossily); each function gets the whole input.
//!
//! Invariants: no panic; each canonical form is a fixed point (canonicalising it again changes
//! nothing); a canonical path starts with `/`, has no empty or dot segments and routes without
//! panicking; a canonical instance id is 36 bytes of lowercase hex and hyphens in the
//! `8-4-4-4-12` pattern, and is returned borrowed exactly when the input was already canonical.

use std::borrow::Cow;

use http::Method;
use kmsgate::Route;
use kmsgate::canonical;

/// Runs the target on one input.
pub fn fuzz(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let text = &text[..];

    match canonical::path(text) {
        Ok(Some(p)) => {
            assert_eq!(canonical::path(&p), Ok(None), "{p:?} from {text:?}");
            assert!(p.starts_with('/'), "{p:?} from {text:?}");
            let inner = p.strip_suffix('/').unwrap_or(&p);
            if !inner.is_empty() {
                for segment in inner[1..].split('/') {
                    assert!(
                        !matches!(segment, "" | "." | ".."),
                        "segment {segment:?} in {p:?} from {text:?}"
                    );
                }
            }
            let _ = Route::classify(&Method::POST, &p, None);
        }
        Ok(None) | Err(_) => {}
    }

    match canonical::query(text) {
        Ok(Some(q)) => assert_eq!(canonical::query(&q), Ok(None), "{q:?} from {text:?}"),
        Ok(None) | Err(_) => {}
    }

    if let Some(id) = canonical::instance_id(text) {
        assert_eq!(id.len(), 36, "{id:?} from {text:?}");
        for (i, b) in id.bytes().enumerate() {
            if matches!(i, 8 | 13 | 18 | 23) {
                assert_eq!(b, b'-', "{id:?}");
            } else {
                assert!(matches!(b, b'0'..=b'9' | b'a'..=b'f'), "{id:?}");
            }
        }
        assert_eq!(
            matches!(id, Cow::Borrowed(_)),
            id == text,
            "{id:?} from {text:?}"
        );
        assert_eq!(
            canonical::instance_id(&id).as_deref(),
            Some(&*id),
            "{id:?} is not canonical"
        );
    }

    let _ = canonical::host(text);
}
