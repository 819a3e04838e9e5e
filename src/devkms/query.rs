//! Query strings as Key Protect's Go server reads them (`net/url` `ParseQuery`): pairs split on
//! `&`, each key and value percent-decoded with `+` as a space, the first value of a repeated
//! key winning (`Values.Get`).
//!
//! Where Go would silently drop a pair it cannot decode (a bad `%` escape, a `;`, bytes that are
//! not UTF-8), the dev KMS refuses the request with `INVALID_QUERY_PARAM_ERR` naming the
//! parameter instead: a request the dev KMS reads one way must not be read another way by a
//! different KMS.

/// The decoded `(key, value)` pairs of a query string, in order.
#[derive(Debug, Default)]
pub(crate) struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Decodes `raw` (the URI's query, without `?`); on failure, the raw name of the first pair
    /// that does not decode.
    pub(crate) fn decode(raw: Option<&str>) -> Result<Query, String> {
        let mut pairs = Vec::new();
        for pair in raw.unwrap_or_default().split('&') {
            if pair.is_empty() {
                continue;
            }
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = || unescape(key).unwrap_or_else(|| key.to_owned());
            if key.contains(';') || value.contains(';') {
                return Err(name());
            }
            match (unescape(key), unescape(value)) {
                (Some(key), Some(value)) => pairs.push((key, value)),
                _ => return Err(name()),
            }
        }
        Ok(Query { pairs })
    }

    /// The first value of `name`, decoded.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The first value of `name`, or `None` when it is absent or empty: an empty value (what
    /// the Python SDK sends for an empty list, `state=`) filters nothing.
    pub(crate) fn non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|value| !value.is_empty())
    }
}

/// Go's `url.QueryUnescape`: `%XX` (either case) is the byte `0xXX`, `+` is a space; a `%` not
/// followed by two hex digits, or bytes that are not UTF-8, are `None`.
pub(crate) fn unescape(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Go's `strconv.ParseBool`.
pub(crate) fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_as_go_does() {
        let q = Query::decode(Some("state=1%2C5&search=a+b%20c&state=2&extractable=&x")).unwrap();
        assert_eq!(q.get("state"), Some("1,5"), "the first value wins");
        assert_eq!(q.get("search"), Some("a b c"));
        assert_eq!(q.get("extractable"), Some(""));
        assert_eq!(q.non_empty("extractable"), None);
        assert_eq!(q.get("x"), Some(""));
        assert_eq!(q.get("missing"), None);
        let q = Query::decode(Some("%73tate=%35&&")).unwrap();
        assert_eq!(q.get("state"), Some("5"), "keys are decoded too");
        assert!(Query::decode(None).unwrap().get("state").is_none());
    }

    #[test]
    fn refuses_what_go_would_drop() {
        assert_eq!(
            Query::decode(Some("limit=1&state=%zz")).unwrap_err(),
            "state"
        );
        assert_eq!(Query::decode(Some("state=1%2")).unwrap_err(), "state");
        assert_eq!(Query::decode(Some("state=1;limit=2")).unwrap_err(), "state");
        assert_eq!(Query::decode(Some("search=%ff")).unwrap_err(), "search");
    }

    #[test]
    fn booleans_as_go_parses_them() {
        assert_eq!(parse_bool("True"), Some(true));
        assert_eq!(parse_bool("0"), Some(false));
        assert_eq!(parse_bool("yes"), None);
    }
}
