//! The canonical form of a request: the one reading that both the gateway and the Go KMS behind
//! it (`net/http` routing, `url.ParseQuery`, `google/uuid`) give the same bytes.
//!
//! The gateway decides on a request and forwards it; the KMS executes its own reading of what
//! was forwarded. Wherever the two readings could differ, this module either makes the request
//! canonical *before* the decision (and the canonical form is what goes upstream) or says why
//! the request is ambiguous, and it is refused. `docs/canonical.md` has the table.
//!
//! Every function has a fast path for input that is canonical already (the common case: real
//! clients never percent-encode a route), which costs one scan and allocates nothing.

use std::borrow::Cow;
use std::fmt;

use http::HeaderName;

use crate::reason::{Reason, Rejection, Target};

/// The header that names the Key Protect instance (read by [`instance_id`]'s callers).
pub const BLUEMIX_INSTANCE: HeaderName = HeaderName::from_static("bluemix-instance");

/// Why a request cannot be made canonical: it reads differently in different places.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ambiguity {
    /// A `%` not followed by two hex digits (Go's `url.Parse` fails on it).
    BadEscape,
    /// `%2F` in a path segment: one segment to Go's `ServeMux`, two to a router on the decoded
    /// path.
    EncodedSlash,
    /// A `;` in the query: Go ≥ 1.17 drops such a pair, other readers split on it.
    QuerySemicolon,
    /// A query parameter the gateway decides on appears more than once.
    DuplicateParam(&'static str),
    /// A header the gateway decides on appears more than once.
    DuplicateHeader(&'static str),
    /// A header value that names several things (`a, b`) or is not visible ASCII.
    BadHeaderValue(&'static str),
    /// The Host header (or request-target authority) is not a valid host.
    BadHost,
    /// An HTTP/1.1 request without a `Host` header (RFC 9112 §3.2: 400).
    MissingHost,
    /// A method-override header (`X-HTTP-Method-Override` and kin): some Go frameworks execute
    /// the method it names instead of the request's.
    MethodOverride,
}

impl Ambiguity {
    /// The refusal: 400 `INVALID_QUERY_PARAM_ERR` for the query (a catalogue code fits), 400
    /// `AMBIGUOUS_REQUEST_ERR` for the rest; the detail names the ambiguity.
    pub fn rejection(self) -> Rejection {
        match self {
            Ambiguity::QuerySemicolon => {
                Rejection::new(Reason::InvalidQueryParam).detail(self.to_string())
            }
            Ambiguity::DuplicateParam(name) => Rejection::new(Reason::InvalidQueryParam)
                .detail(self.to_string())
                .target(Target::query_param(name)),
            _ => Rejection::new(Reason::AmbiguousRequest).detail(self.to_string()),
        }
    }
}

impl fmt::Display for Ambiguity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ambiguity::BadEscape => f.write_str("a percent-escape is not two hex digits"),
            Ambiguity::EncodedSlash => f.write_str("an encoded '/' in a path segment"),
            Ambiguity::QuerySemicolon => f.write_str("a ';' in the query"),
            Ambiguity::DuplicateParam(name) => write!(f, "query parameter '{name}' is repeated"),
            Ambiguity::DuplicateHeader(name) => write!(f, "header '{name}' is repeated"),
            Ambiguity::BadHeaderValue(name) => write!(f, "header '{name}' is not a single value"),
            Ambiguity::BadHost => f.write_str("the host is not a valid host name or address"),
            Ambiguity::MissingHost => f.write_str("an HTTP/1.1 request without a Host header"),
            Ambiguity::MethodOverride => f.write_str("a method-override header"),
        }
    }
}

/// The query parameters the gateway decides on (`?action=` selects a key action, `?policy=`
/// an instance policy type): each may appear at most once.
pub const DECIDING_PARAMS: [&str; 2] = ["action", "policy"];

/// The canonical form of a URL path, or `None` when `path` is canonical already.
///
/// Percent-escapes are decoded (Go routes on the decoded path) and re-encoded only where a
/// path needs it; `.` and `..` segments are resolved and empty segments collapsed (Go's
/// `ServeMux` cleans a path the same way before it routes). A trailing `/` is kept. A bad
/// escape or an encoded `/` is an [`Ambiguity`], except in a registration's resource CRN
/// (`/api/v2/keys/{id}/registrations/{urlEncodedResourceCRN}`), where it stays encoded.
pub fn path(path: &str) -> Result<Option<String>, Ambiguity> {
    // `*` is the asterisk-form target of `OPTIONS *`, not a path.
    if path == "*" || !needs_cleaning(path.as_bytes()) {
        return Ok(None);
    }
    let trailing_slash = path.len() > 1 && path.ends_with('/');
    let mut segments: Vec<Vec<u8>> = Vec::new();
    // Set once a registration's resource CRN kept an encoded `/`.
    let mut crn_slash = false;
    for raw in path.split('/') {
        let segment = decode(raw.as_bytes(), false)?;
        if segment.contains(&b'/') {
            // Inside the CRN too: a dot or empty piece between its decoded `/`s is one Go
            // would resolve (`crn%2F..%2F..` climbs out of the registrations).
            if !is_registration_crn(&segments) || segment.split(|b| *b == b'/').any(is_dot_or_empty)
            {
                return Err(Ambiguity::EncodedSlash);
            }
            crn_slash = true;
        } else if crn_slash && is_dot_or_empty(&segment) {
            // Go would resolve this against the decoded `/`s, the gateway against the CRN.
            return Err(Ambiguity::EncodedSlash);
        }
        match &segment[..] {
            b"" | b"." => {}
            b".." => {
                segments.pop();
            }
            _ => segments.push(segment.into_owned()),
        }
    }
    let mut out = String::with_capacity(path.len());
    for segment in &segments {
        out.push('/');
        encode_into(&mut out, segment, is_path_char);
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    Ok((out != path).then_some(out))
}

/// True when `segments` are `api v2 keys {id} registrations`: the next one is a registration's
/// resource CRN, whose `a/<account>` part real clients send as `%2F`. It is kept encoded: read
/// as one segment or as several, the request stays under the key's registrations, where the
/// gateway decides by method alone (every write there is a registration write), and nothing
/// after it may be a dot or empty segment (which Go would resolve against the decoded `/`s).
fn is_registration_crn(segments: &[Vec<u8>]) -> bool {
    matches!(segments, [api, v2, keys, _, registrations]
        if api == b"api" && v2 == b"v2" && keys == b"keys" && registrations == b"registrations")
}

/// True when a path has an escape, an empty segment or a dot segment.
///
/// Looks only at the `%`s (one `memchr`) and at the byte after each `/`: a segment is empty or
/// a dot segment only if a `/` is followed by `/` or `.`.
fn needs_cleaning(path: &[u8]) -> bool {
    if path.first() != Some(&b'/') {
        return !path.is_empty();
    }
    if path.contains(&b'%') {
        return true;
    }
    let mut rest = path;
    while let Some(slash) = rest.iter().position(|&b| b == b'/') {
        let after = &rest[slash + 1..];
        match after.first() {
            // `//`: an empty segment (the trailing `/` of a path is kept, not cleaned).
            Some(b'/') => return true,
            Some(b'.') => {
                let end = after.iter().position(|&b| b == b'/').unwrap_or(after.len());
                if is_dot_or_empty(&after[..end]) {
                    return true;
                }
            }
            _ => {}
        }
        rest = after;
    }
    false
}

fn is_dot_or_empty(segment: &[u8]) -> bool {
    matches!(segment, b"" | b"." | b"..")
}

/// The canonical form of a query string, or `None` when it is canonical already.
///
/// Read as Go's `url.ParseQuery` reads it: pairs split on `&`, `+` is a space, escapes decoded;
/// the canonical form re-encodes each key and value so that every reader decodes the same
/// text. A `;` or a bad escape (pairs Go silently drops) and a repeated
/// [`DECIDING_PARAMS`] name (Go takes the first, other readers the last) are ambiguous.
pub fn query(query: &str) -> Result<Option<String>, Ambiguity> {
    let mut seen = [false; DECIDING_PARAMS.len()];
    let simple = !query.bytes().any(|b| matches!(b, b'%' | b'+' | b';'));
    if simple {
        for pair in query.split('&') {
            let key = pair.split_once('=').map_or(pair, |(k, _)| k);
            note_param(&mut seen, key.as_bytes())?;
        }
        return Ok(None);
    }
    let mut out = String::with_capacity(query.len());
    for pair in query.split('&') {
        if pair.contains(';') {
            return Err(Ambiguity::QuerySemicolon);
        }
        if pair.is_empty() {
            continue;
        }
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode(key.as_bytes(), true)?;
        let value = decode(value.as_bytes(), true)?;
        note_param(&mut seen, &key)?;
        if !out.is_empty() {
            out.push('&');
        }
        encode_into(&mut out, &key, is_query_char);
        out.push('=');
        encode_into(&mut out, &value, is_query_char);
    }
    Ok((out != query).then_some(out))
}

fn note_param(seen: &mut [bool; DECIDING_PARAMS.len()], key: &[u8]) -> Result<(), Ambiguity> {
    for (i, name) in DECIDING_PARAMS.iter().enumerate() {
        if key == name.as_bytes() {
            if seen[i] {
                return Err(Ambiguity::DuplicateParam(name));
            }
            seen[i] = true;
        }
    }
    Ok(())
}

/// Decodes `%XX` escapes (and, in a query, `+` as a space), borrowing when there are none.
fn decode(raw: &[u8], plus_is_space: bool) -> Result<Cow<'_, [u8]>, Ambiguity> {
    if !raw
        .iter()
        .any(|&b| b == b'%' || (plus_is_space && b == b'+'))
    {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'%' => {
                let hi = raw.get(i + 1).and_then(|&b| hex(b));
                let lo = raw.get(i + 2).and_then(|&b| hex(b));
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(Ambiguity::BadEscape);
                };
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(Cow::Owned(out))
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Unreserved characters (RFC 3986), which no reader decodes differently.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Characters a path segment may carry unescaped.
fn is_path_char(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
        )
}

/// Characters a query key or value may carry unescaped (no `&`, `=`, `+`, `;`).
fn is_query_char(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'!' | b'$' | b'\'' | b'(' | b')' | b'*' | b',' | b':' | b'@' | b'/' | b'?'
        )
}

fn encode_into(out: &mut String, bytes: &[u8], keep: fn(u8) -> bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if keep(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}

/// A Key Protect instance id in its canonical form (lowercase, hyphenated `8-4-4-4-12`), if
/// `id` is a UUID in any spelling Go's `github.com/google/uuid.Parse` accepts: hyphenated,
/// braced (`{…}` — and, as `uuid.Parse` never looks at the first and last of 38 bytes, any
/// other wrapper: `(…)`, `x…y`), `urn:uuid:…` (any case), or 32 hex digits; hex digits in
/// either case. `None` for anything else. An id that is canonical already is borrowed.
pub fn instance_id(id: &str) -> Option<Cow<'_, str>> {
    let bytes = id.as_bytes();
    if is_canonical_uuid(bytes) {
        return Some(Cow::Borrowed(id));
    }
    let hex_digits: [u8; 32] = match bytes.len() {
        36 => hyphenated(bytes)?,
        38 => hyphenated(&bytes[1..37])?,
        45 if bytes[..9].eq_ignore_ascii_case(b"urn:uuid:") => hyphenated(&bytes[9..])?,
        32 => {
            let mut out = [0u8; 32];
            for (o, &b) in out.iter_mut().zip(bytes) {
                hex(b)?;
                *o = b.to_ascii_lowercase();
            }
            out
        }
        _ => return None,
    };
    let mut out = String::with_capacity(36);
    for (i, &b) in hex_digits.iter().enumerate() {
        if matches!(i, 8 | 12 | 16 | 20) {
            out.push('-');
        }
        out.push(char::from(b));
    }
    Some(Cow::Owned(out))
}

/// Lowercase hex digits with hyphens at 8, 13, 18 and 23: the form ids are stored and
/// forwarded in.
pub fn is_canonical_uuid(bytes: &[u8]) -> bool {
    // One table lookup per byte: what each position of the canonical form allows.
    const fn class(b: u8) -> u8 {
        match b {
            b'0'..=b'9' | b'a'..=b'f' => HEX_DIGIT,
            b'-' => HYPHEN,
            _ => 0,
        }
    }
    const HEX_DIGIT: u8 = 1;
    const HYPHEN: u8 = 2;
    const CLASS: [u8; 256] = {
        let mut table = [0u8; 256];
        let mut i = 0;
        while i < 256 {
            table[i] = class(i as u8);
            i += 1;
        }
        table
    };
    bytes.len() == 36
        && bytes.iter().enumerate().fold(true, |ok, (i, &b)| {
            let want = if matches!(i, 8 | 13 | 18 | 23) {
                HYPHEN
            } else {
                HEX_DIGIT
            };
            ok & (CLASS[usize::from(b)] == want)
        })
}

/// The key an instance's policies are stored under: the canonical UUID when `id` is one in
/// any spelling ([`instance_id`]), else `id` itself.
pub fn instance_key(id: &str) -> Cow<'_, str> {
    instance_id(id).unwrap_or(Cow::Borrowed(id))
}

/// The 32 lowercase hex digits of a 36-byte hyphenated UUID.
fn hyphenated(bytes: &[u8]) -> Option<[u8; 32]> {
    if bytes.len() != 36 || [8, 13, 18, 23].iter().any(|&i| bytes[i] != b'-') {
        return None;
    }
    let mut out = [0u8; 32];
    let digits = bytes
        .iter()
        .enumerate()
        .filter(|(i, _)| !matches!(i, 8 | 13 | 18 | 23));
    for (o, (_, &b)) in out.iter_mut().zip(digits) {
        hex(b)?;
        *o = b.to_ascii_lowercase();
    }
    Some(out)
}

/// Checks that `host` (a Host header or request-target authority) is a host as Go's
/// `httpguts.ValidHostHeader` and a DNS name or IP literal allow: `name[:port]` or
/// `[v6]:port`, no user info, no characters outside a host name. A bracketed text that is
/// not an IPv6 address is refused: one reader strips the brackets, another does not.
pub fn host(host: &str) -> Result<(), Ambiguity> {
    // The common cases, `name` and `name:port`: one pass up to the first byte that is not a
    // name byte.
    let bytes = host.as_bytes();
    let name_end = bytes
        .iter()
        .position(|&b| !is_name_byte(b))
        .unwrap_or(bytes.len());
    if name_end == bytes.len() {
        return Ok(());
    }
    if bytes[name_end] == b':' {
        return port_digits(&host[name_end + 1..]);
    }
    let Some(rest) = host.strip_prefix('[') else {
        return Err(Ambiguity::BadHost);
    };
    let (inside, after) = rest.split_once(']').ok_or(Ambiguity::BadHost)?;
    inside
        .parse::<std::net::Ipv6Addr>()
        .map_err(|_| Ambiguity::BadHost)?;
    port(after)
}

/// A byte of a host name (letters, digits, `-`, `.`, `_`).
fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')
}

/// `""` or `:` and a port.
fn port(after: &str) -> Result<(), Ambiguity> {
    match after.strip_prefix(':') {
        None if after.is_empty() => Ok(()),
        Some(digits) => port_digits(digits),
        None => Err(Ambiguity::BadHost),
    }
}

/// At most five digits (Go accepts an empty port and drops it).
fn port_digits(digits: &str) -> Result<(), Ambiguity> {
    if digits.len() <= 5 && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(Ambiguity::BadHost)
    }
}

#[cfg(test)]
mod tests;
