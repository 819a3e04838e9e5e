//! The two places where Key Protect's Go JSON handling decides what a body means, reproduced so
//! the gateway reads a body exactly as the KMS behind it will.
//!
//! - **Object keys** match struct fields case-insensitively (Go's `encoding/json` uses Unicode
//!   simple case folding, so `"Extractable"` and `"EXTRACTABLE"` are the same field). A gateway that matched keys exactly could be bypassed: `{"Extractable": true}` would
//!   look like a root key to it and create a standard key in the KMS.
//! - **base64** fields are decoded with `encoding/base64`'s `StdEncoding` (padded, `\r` and `\n`
//!   skipped, non-zero trailing bits accepted), whose errors name the offset of the offending
//!   byte: "illegal base64 data at input byte N".

/// True when the JSON object key `key` selects the struct field `name` (ASCII) in Go's
/// `encoding/json`: equal under Unicode simple case folding. The only non-ASCII characters that
/// fold to ASCII letters are `ſ` (U+017F, folds with `s`) and `K` (U+212A KELVIN SIGN, folds
/// with `k`).
pub fn key_eq(key: &str, name: &str) -> bool {
    if key.is_ascii() {
        return key.eq_ignore_ascii_case(name);
    }
    let mut chars = key.chars();
    for expected in name.bytes() {
        let folded = match chars.next() {
            Some('\u{017F}') => b's',
            Some('\u{212A}') => b'k',
            Some(c) if c.is_ascii() => c as u8,
            _ => return false,
        };
        if !folded.eq_ignore_ascii_case(&expected) {
            return false;
        }
    }
    chars.next().is_none()
}

/// Where Go's `base64.StdEncoding.DecodeString(s)` fails: the `N` of its "illegal base64 data at
/// input byte N", or `None` when `s` decodes. A port of `encoding/base64`'s `decodeQuantum`
/// (the fast paths only ever fall back to it, so the offsets are the same).
pub fn base64_error(s: &str) -> Option<usize> {
    let src = s.as_bytes();
    let mut si = 0;
    while si < src.len() {
        match decode_quantum(src, si) {
            Ok(next) => si = next,
            Err(offset) => return Some(offset),
        }
    }
    None
}

/// The message Go gives for a base64 error at `offset`.
pub fn base64_message(offset: usize) -> String {
    format!("illegal base64 data at input byte {offset}")
}

fn is_alphabet(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

fn skip_newlines(src: &[u8], mut si: usize) -> usize {
    while si < src.len() && (src[si] == b'\n' || src[si] == b'\r') {
        si += 1;
    }
    si
}

/// One 4-character quantum starting at `si`: the index after it, or the error offset.
fn decode_quantum(src: &[u8], mut si: usize) -> Result<usize, usize> {
    let mut j = 0;
    while j < 4 {
        if si == src.len() {
            // End of input: fine between quanta, an error inside one (StdEncoding pads).
            return if j == 0 { Ok(si) } else { Err(si - j) };
        }
        let b = src[si];
        si += 1;
        if is_alphabet(b) {
            j += 1;
            continue;
        }
        if b == b'\n' || b == b'\r' {
            continue;
        }
        if b != b'=' || j < 2 {
            return Err(si - 1);
        }
        // Padding: "==" after two characters, "=" after three, then nothing but newlines.
        if j == 2 {
            si = skip_newlines(src, si);
            if si == src.len() {
                return Err(src.len());
            }
            if src[si] != b'=' {
                return Err(si - 1);
            }
            si += 1;
        }
        si = skip_newlines(src, si);
        return if si < src.len() { Err(si) } else { Ok(si) };
    }
    Ok(si)
}

/// Go's `DisallowUnknownFields` error: `json: unknown field "extra_field"`.
pub fn unknown_field(key: &str) -> String {
    format!("json: unknown field {key:?}")
}

/// Go's type error for a value of JSON kind `kind` where `path` wants a `want`, e.g.
/// `json: cannot unmarshal number into Go struct field resources.policy_type of type string`.
pub fn type_error(kind: &str, path: &str, want: &str) -> String {
    if path.is_empty() {
        format!("json: cannot unmarshal {kind} into Go value of type {want}")
    } else {
        format!("json: cannot unmarshal {kind} into Go struct field {path} of type {want}")
    }
}

/// A body that is not JSON, described for a `BAD_BODY_ERR` detail (Go's wording for a
/// truncated body; serde's position for a syntax error, which is more useful than Go's).
pub fn syntax_message(error: &serde_json::Error) -> String {
    if error.is_eof() {
        "unexpected end of JSON input".to_owned()
    } else {
        format!("invalid JSON: {error}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_offsets_match_go() {
        // encoding/base64's own TestDecodeCorrupt table (-1 = decodes).
        let table: &[(&str, isize)] = &[
            ("", -1),
            ("\n", -1),
            ("AAA=\n", -1),
            ("AAAA\n", -1),
            ("!!!!", 0),
            ("====", 0),
            ("x===", 1),
            ("=AAA", 0),
            ("A=AA", 1),
            ("AA=A", 2),
            ("AA==A", 4),
            ("AAA=AAAA", 4),
            ("AAAAA", 4),
            ("AAAAAA", 4),
            ("A=", 1),
            ("A==", 1),
            ("AA=", 3),
            ("AA==", -1),
            ("AAA=", -1),
            ("AAAA", -1),
            ("AAAAAA=", 7),
            ("YWJjZA=====", 8),
            ("A!\n", 1),
            ("A=\n", 1),
        ];
        for (input, want) in table {
            let got = base64_error(input).map_or(-1, |o| o as isize);
            assert_eq!(got, *want, "input {input:?}");
        }
    }

    #[test]
    fn newlines_are_skipped_and_trailing_bits_accepted() {
        assert_eq!(base64_error("YW\r\nJj"), None);
        assert_eq!(base64_error("YR=="), None);
        assert_eq!(base64_error("YW Jj"), Some(2));
    }

    #[test]
    fn keys_fold_like_go() {
        assert!(key_eq("extractable", "extractable"));
        assert!(key_eq("Extractable", "extractable"));
        assert!(key_eq("PAYLOAD", "payload"));
        assert!(key_eq("create_root_\u{212A}ey", "create_root_key"));
        assert!(key_eq("re\u{017F}ources", "resources"));
        assert!(!key_eq("payloads", "payload"));
        assert!(!key_eq("payloa", "payload"));
        assert!(!key_eq("pay_load", "payload"));
        assert!(!key_eq("päyload", "payload"));
    }
}
