//! Header hygiene at the upstream boundary: hop-by-hop headers never cross (RFC 9110 §7.6.1),
//! `Host` becomes the upstream's, and `X-Forwarded-For` / `X-Forwarded-Proto` are *set* to what
//! the gateway decided (never appended to what the client sent).

use std::net::IpAddr;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::bytes_pool;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// The headers that never cross a proxy (RFC 9110 §7.6.1), besides those `Connection` names.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    header::TRANSFER_ENCODING,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
];

/// Removes the hop-by-hop headers (RFC 9110 §7.6.1), including those `Connection` names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // The common case has none: one pass over the names, instead of a hashed lookup for each
    // of the nine (`Connection` itself is in the list, so the names it lists are found too).
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// The request headers as they go upstream: hop-by-hop headers removed, `Host` set to the
/// upstream's (`host`, see [`upstream_host`]), `X-Forwarded-For` set to `client`,
/// `X-Forwarded-Proto` to the client's scheme.
pub fn forwarded_request_headers(
    headers: &mut HeaderMap,
    host: &HeaderValue,
    client: Option<IpAddr>,
    tls: bool,
) {
    strip_hop_by_hop(headers);
    headers.insert(header::HOST, host.clone());
    if let Some(ip) = client {
        // Overwrite, never append: what the client sent is not trusted here.
        let text =
            bytes_pool::build(|out| crate::text::push_ip(out, crate::conn::canonical_ip(ip)));
        if let Ok(value) = HeaderValue::from_maybe_shared(text) {
            headers.insert(X_FORWARDED_FOR, value);
        }
    }
    let proto = if tls { "https" } else { "http" };
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
}

/// The `Host` header of every request to `uri`'s authority, as hyper-util's client writes it
/// when a request has none (`host`, or `host:port` for a port that is not the scheme's
/// default). Built once, so no request formats it.
pub fn upstream_host(uri: &http::Uri) -> Option<HeaderValue> {
    let host = uri.host()?;
    let secure = matches!(uri.scheme_str(), Some("https" | "wss"));
    match uri.port_u16() {
        Some(443) if secure => HeaderValue::from_str(host).ok(),
        Some(80) if !secure => HeaderValue::from_str(host).ok(),
        Some(port) => HeaderValue::from_maybe_shared(Bytes::from(format!("{host}:{port}"))).ok(),
        None => HeaderValue::from_str(host).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_go_including_connection_named_ones() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret-hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("bluemix-instance", HeaderValue::from_static("i"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("bluemix-instance"));
    }

    #[test]
    fn the_upstream_host_is_what_the_client_would_write() {
        let host = |u: &str| upstream_host(&u.parse().unwrap()).unwrap();
        assert_eq!(host("http://kms.example"), "kms.example");
        assert_eq!(host("http://kms.example:80/base"), "kms.example");
        assert_eq!(host("http://127.0.0.1:8081"), "127.0.0.1:8081");
        assert_eq!(host("https://kms.example:443"), "kms.example");
        assert_eq!(host("https://kms.example:80"), "kms.example:80");
        assert_eq!(host("http://[::1]:9"), "[::1]:9");
    }
}
