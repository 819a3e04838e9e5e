//! The two places where Key Protect's Go JSON handling decides what a body means, reproduced so
//! the gateway reads a body exactly as the KMS behind it will.
//!
//! - **Object keys** match struct fields case-insensitively (Go's `encoding/json` uses Unicode
//!   simple case folding, so `"Extractable"` and `"EXTRACTABLE"` are the same field). A gateway that matched keys exactly could be bypassed: `{"Extractable": true}` would
//!   look like a root key to it and create a standard key in the KMS.
//! - **base64** fields are decoded with `encoding/base64`'s `StdEncoding` (padded, `\r` and `\n`
//!   skipped, non-zero trailing bits accepted), whose errors name the offset of the offending
//!   byte: "illegal base64 data at input byte N".
//! - **Duplicate keys** (two keys of one object that select the same field, in any spelling):
//!   Go decodes the later value *into* the earlier one (an array's elements into the earlier
//!   array's elements, golang/go#21092). The gateway refuses them rather than imitate that:
//!   [`duplicate_field`] names the field, [`parse_value`] refuses them anywhere in a document.
//!
//! Where serde_json is stricter than Go, the gateway refuses what Go would accept; none of these
//! is something a real client sends: invalid UTF-8 and lone UTF-16 surrogate escapes (`"\ud800"`)
//! in a decoded string (Go substitutes U+FFFD), and `-0` where an integer is wanted (serde reads
//! it as a float; Go as 0). Trailing data after the JSON value is refused, as `json.Unmarshal`
//! does (a `json.Decoder` would ignore it).

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
    // The common case, checked in one pass: whole quanta of alphabet bytes with at most two
    // `=` at the end and no line breaks, which Go decodes without an error. Anything else
    // takes the port, which finds the offset.
    let src = s.as_bytes();
    let body = src
        .strip_suffix(b"==")
        .or_else(|| src.strip_suffix(b"="))
        .unwrap_or(src);
    if src.len().is_multiple_of(4) && body.iter().all(|&b| ALPHABET[usize::from(b)]) {
        return None;
    }
    quantum_by_quantum(src)
}

/// [`base64_error`] the way `encoding/base64` finds it: one quantum at a time.
fn quantum_by_quantum(src: &[u8]) -> Option<usize> {
    let mut si = 0;
    while si < src.len() {
        match decode_quantum(src, si) {
            Ok(next) => si = next,
            Err(offset) => return Some(offset),
        }
    }
    None
}

/// True when `s`, a string [`base64_error`] accepts, decodes to at least one byte: it is more
/// than line breaks (`""` and `"\r\n"` decode to nothing).
pub fn base64_has_data(s: &str) -> bool {
    s.bytes().any(|b| b != b'\r' && b != b'\n')
}

/// The message Go gives for a base64 error at `offset`.
pub fn base64_message(offset: usize) -> String {
    format!("illegal base64 data at input byte {offset}")
}

fn is_alphabet(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

/// [`is_alphabet`] as a table, for the one-pass check.
static ALPHABET: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || c == b'+' || c == b'/';
        b += 1;
    }
    table
};

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

/// A body that does not decode, described for a `BAD_BODY_ERR` detail: Go's wording for a
/// truncated body; for a syntax error (trailing data included) "invalid JSON: " and serde's
/// position, which is more useful than Go's; a wrong type or a duplicate field as serde or
/// [`duplicate_field`] put it, with its position.
pub fn decode_message(error: &serde_json::Error) -> String {
    match error.classify() {
        serde_json::error::Category::Eof => "unexpected end of JSON input".to_owned(),
        serde_json::error::Category::Data => error.to_string(),
        _ => format!("invalid JSON: {error}"),
    }
}

/// The refusal detail for a field that appears twice in one object: `duplicate field "name"`.
pub fn duplicate_field(name: &str) -> String {
    format!("duplicate field {name:?}")
}

/// Parses a JSON document into a [`serde_json::Value`], refusing any object (at any depth) in
/// which two keys select the same Go struct field ([`duplicate_field`], with serde's position).
/// Keys are compared as Go folds them when they fold to ASCII (every field name the gateway
/// knows is ASCII); other non-ASCII keys are compared exactly, which is enough where every
/// unknown key is refused anyway (instance-policy documents).
pub fn parse_value(body: &[u8]) -> Result<serde_json::Value, serde_json::Error> {
    serde_json::from_slice::<UniqueValue>(body).map(|v| v.0)
}

/// `key` as Go's `encoding/json` folds it for matching when the result is ASCII: ASCII letters
/// upper-cased, `ſ` → `S`, `K` (Kelvin) → `K`. Other characters are kept.
fn fold_key(key: &str) -> String {
    key.chars()
        .map(|c| match c {
            '\u{017F}' => 'S',
            '\u{212A}' => 'K',
            c => c.to_ascii_uppercase(),
        })
        .collect()
}

/// A [`serde_json::Value`] whose objects have no duplicate keys (see [`parse_value`]).
struct UniqueValue(serde_json::Value);

impl<'de> serde::Deserialize<'de> for UniqueValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueVisitor)
    }
}

struct UniqueVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueVisitor {
    type Value = UniqueValue;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<UniqueValue, E> {
        Ok(UniqueValue(v.into()))
    }
    fn visit_i64<E>(self, v: i64) -> Result<UniqueValue, E> {
        Ok(UniqueValue(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<UniqueValue, E> {
        Ok(UniqueValue(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<UniqueValue, E> {
        Ok(UniqueValue(v.into()))
    }
    fn visit_str<E>(self, v: &str) -> Result<UniqueValue, E> {
        Ok(UniqueValue(v.into()))
    }
    fn visit_string<E>(self, v: String) -> Result<UniqueValue, E> {
        Ok(UniqueValue(v.into()))
    }
    fn visit_unit<E>(self) -> Result<UniqueValue, E> {
        Ok(UniqueValue(serde_json::Value::Null))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<UniqueValue, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(UniqueValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(UniqueValue(serde_json::Value::Array(items)))
    }
    fn visit_map<M: serde::de::MapAccess<'de>>(self, mut map: M) -> Result<UniqueValue, M::Error> {
        let mut object = serde_json::Map::new();
        let mut folded = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !folded.insert(fold_key(&key)) {
                return Err(serde::de::Error::custom(duplicate_field(&key)));
            }
            let UniqueValue(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(UniqueValue(serde_json::Value::Object(object)))
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
    fn the_one_pass_check_agrees_with_the_port_everywhere() {
        // Every string of up to 7 bytes over a small alphabet with the troublemakers.
        let symbols = b"A+=\n!";
        let mut input = Vec::new();
        for len in 0..=7u32 {
            for mut n in 0..symbols.len().pow(len) {
                input.clear();
                for _ in 0..len {
                    input.push(symbols[n % symbols.len()]);
                    n /= symbols.len();
                }
                let text = std::str::from_utf8(&input).unwrap();
                assert_eq!(
                    base64_error(text),
                    quantum_by_quantum(&input),
                    "input {text:?}"
                );
            }
        }
    }

    #[test]
    fn newlines_are_skipped_and_trailing_bits_accepted() {
        assert_eq!(base64_error("YW\r\nJj"), None);
        assert_eq!(base64_error("YR=="), None);
        assert_eq!(base64_error("YW Jj"), Some(2));
    }

    #[test]
    fn only_line_breaks_decode_to_nothing() {
        assert!(!base64_has_data(""));
        assert!(!base64_has_data("\r\n\n"));
        assert!(base64_has_data("YW\nJj"));
    }

    #[test]
    fn parse_value_refuses_duplicate_keys_as_go_folds_them() {
        let duplicate = |body: &str| {
            let error = parse_value(body.as_bytes()).unwrap_err();
            assert_eq!(error.classify(), serde_json::error::Category::Data);
            decode_message(&error)
        };
        assert_eq!(
            duplicate(r#"{"a":1,"a":2}"#),
            "duplicate field \"a\" at line 1 column 10"
        );
        assert!(duplicate(r#"{"a":1,"A":2}"#).starts_with("duplicate field \"A\""));
        assert!(duplicate(r#"{"a":1,"\u0041":2}"#).starts_with("duplicate field \"A\""));
        assert!(duplicate("{\"ks\":1,\"\u{212A}\u{17F}\":2}").starts_with("duplicate field"));
        assert!(
            duplicate(r#"{"x":[{"y":{"z":null,"Z":null}}]}"#).starts_with("duplicate field \"Z\"")
        );
        // Distinct keys, and equal keys in different objects, are fine.
        let value =
            parse_value(br#"{"a":{"a":1},"b":[{"a":1},{"a":2}],"k":-1.5,"t":true}"#).unwrap();
        assert_eq!(value["b"][1]["a"], 2);
        assert_eq!(value["k"], -1.5);
        assert_eq!(parse_value(b"null").unwrap(), serde_json::Value::Null);
        // Non-ASCII keys that do not fold to ASCII are compared exactly.
        assert!(parse_value("{\"é\":1,\"É\":2}".as_bytes()).is_ok());
    }

    #[test]
    fn decode_messages_by_kind() {
        let message = |body: &str| {
            decode_message(&serde_json::from_str::<serde_json::Value>(body).unwrap_err())
        };
        assert_eq!(message(r#"{"a":"#), "unexpected end of JSON input");
        assert!(message("{} x").starts_with("invalid JSON: trailing characters at line 1"));
        assert!(message("{x}").starts_with("invalid JSON: key must be a string"));
        let error = serde_json::from_str::<i64>("1.0").unwrap_err();
        assert_eq!(
            decode_message(&error),
            "invalid type: floating point `1.0`, expected i64 at line 1 column 3"
        );
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
