//! The client address: the TCP peer, or — when the peer is a trusted proxy — the first
//! untrusted hop of `X-Forwarded-For` (or RFC 7239 `Forwarded`), walked right to left.
//!
//! - From an untrusted peer the forwarded headers are ignored: the client is the peer.
//! - From a trusted peer, entries are read from the right; trusted hops are skipped and the
//!   first untrusted address is the client. A malformed entry (or `unknown`, an obfuscated
//!   identifier, a `Forwarded` element without `for=`) stops the walk at the last good address.
//!   When every hop is trusted, the leftmost one is the client.
//! - IPv4-mapped IPv6 (`::ffff:a.b.c.d`) is taken as IPv4, for matching and for what goes on.
//!
//! The layer inserts [`ClientAddr`] into the request (the proxy overwrites `X-Forwarded-For`
//! with it, never appending to the client's), records it in the access log, and removes an
//! incoming `Forwarded` header so a spoofed one cannot reach the KMS. The direct peer stays in
//! [`ConnInfo::peer`].

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::{HeaderMap, HeaderName, Request};

use crate::body::Body;
use crate::config::{ClientIpConfig, ForwardedHeader};
use crate::context;
use crate::ipset::IpSet;
use crate::layer::guard::{Check, Guard, GuardLayer};
use crate::reason::Rejection;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// How the client address is derived; built once from `[client_ip]`.
#[derive(Debug, Default)]
pub struct ClientIpRules {
    trusted: IpSet,
    header: ForwardedHeader,
}

impl ClientIpRules {
    /// Compiles `[client_ip]`.
    pub fn new(config: &ClientIpConfig) -> ClientIpRules {
        ClientIpRules {
            trusted: IpSet::new(&config.trusted_proxies),
            header: config.header,
        }
    }

    /// Whether `ip` is a trusted proxy.
    #[inline]
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.contains(ip)
    }

    /// The client address of a request from `peer` with these headers (canonical form).
    #[inline]
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        self.walk(peer, headers, |_| {})
    }

    /// Like [`client`](ClientIpRules::client), and tells `visit` every step of the walk, in
    /// order (the peer first): what `kmsgate explain` shows as the hops walked.
    pub fn walk(&self, peer: IpAddr, headers: &HeaderMap, mut visit: impl FnMut(Hop)) -> IpAddr {
        let peer = peer.to_canonical();
        let trusted = self.is_trusted(peer);
        visit(Hop::Peer { ip: peer, trusted });
        if !trusted {
            return peer;
        }
        let (name, parse): (HeaderName, fn(&str) -> Option<IpAddr>) = match self.header {
            ForwardedHeader::XForwardedFor => (X_FORWARDED_FOR, parse_xff_entry),
            ForwardedHeader::Forwarded => (FORWARDED, parse_forwarded_element),
        };
        let mut client = peer;
        // Header lines in reverse, entries in each line in reverse: right to left overall.
        for value in headers.get_all(name).iter().rev() {
            let Ok(value) = value.to_str() else {
                visit(Hop::Malformed);
                return client;
            };
            for entry in value.rsplit(',') {
                match parse(entry) {
                    Some(ip) => {
                        client = ip.to_canonical();
                        let trusted = self.is_trusted(client);
                        visit(Hop::Forwarded {
                            ip: client,
                            trusted,
                        });
                        if !trusted {
                            return client;
                        }
                    }
                    None => {
                        visit(Hop::Malformed);
                        return client;
                    }
                }
            }
        }
        client
    }
}

/// One step of the client-address walk ([`ClientIpRules::walk`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hop {
    /// The TCP peer (canonical form), and whether it is a trusted proxy.
    Peer {
        /// The address.
        ip: IpAddr,
        /// Whether it is in `client_ip.trusted_proxies`.
        trusted: bool,
    },
    /// An address of the forwarded header, read right to left.
    Forwarded {
        /// The address.
        ip: IpAddr,
        /// Whether it is in `client_ip.trusted_proxies` (the walk goes on past it).
        trusted: bool,
    },
    /// A malformed entry (or `unknown`, an obfuscated identifier): the walk stops.
    Malformed,
}

/// One `X-Forwarded-For` entry: `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]:80`.
fn parse_xff_entry(entry: &str) -> Option<IpAddr> {
    parse_node(entry.trim())
}

/// An address as a forwarded header writes it, with an optional port.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        // `[v6]` or `[v6]:port`.
        let (ip, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        return ip.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6);
    }
    node.parse::<SocketAddr>().ok().map(|s| s.ip())
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit())
}

/// One RFC 7239 element: `for=192.0.2.60;proto=http;by=203.0.113.43`, or
/// `for="[2001:db8:cafe::17]:4711"`. Only an address in `for=` is good.
fn parse_forwarded_element(element: &str) -> Option<IpAddr> {
    let mut found = None;
    for pair in element.split(';') {
        let (name, value) = pair.trim().split_once('=')?;
        if name.trim().eq_ignore_ascii_case("for") {
            if found.is_some() {
                return None;
            }
            let value = value.trim();
            let value = match value.strip_prefix('"') {
                Some(quoted) => quoted.strip_suffix('"')?,
                None => value,
            };
            found = Some(parse_node(value)?);
        }
    }
    found
}

/// The client-address step of [`ClientIpLayer`] (it never refuses): the rules, swappable by a
/// config reload.
#[derive(Clone, Debug)]
pub struct ClientIpCheck {
    rules: Arc<ArcSwap<ClientIpRules>>,
}

/// Adds [`ClientIp`] to a stack.
///
/// # Example
///
/// In front of a service, with the trusted proxies of `[client_ip]`: later layers read the
/// client address it finds.
///
/// ```
/// # use kmsgate::body::Body;
/// # let kms = tower::service_fn(|_req: http::Request<Body>| async {
/// #     Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
/// # });
/// use std::sync::Arc;
///
/// use kmsgate::config::ClientIpConfig;
/// use kmsgate::layer::client_ip::{ClientIpLayer, ClientIpRules};
///
/// let rules = Arc::new(ClientIpRules::new(&ClientIpConfig::default()));
/// let service = tower::ServiceBuilder::new()
///     .layer(ClientIpLayer::new(rules))
///     .service(kms);
/// ```
pub type ClientIpLayer = GuardLayer<ClientIpCheck>;

/// See the [module docs](self).
pub type ClientIp<S> = Guard<ClientIpCheck, S>;

impl ClientIpLayer {
    /// Derives client addresses by `rules`.
    pub fn new(rules: Arc<ClientIpRules>) -> ClientIpLayer {
        ClientIpLayer::live(Arc::new(ArcSwap::new(rules)))
    }

    /// Derives client addresses by whatever `rules` holds (a config reload swaps it).
    pub fn live(rules: Arc<ArcSwap<ClientIpRules>>) -> ClientIpLayer {
        GuardLayer::with(ClientIpCheck { rules })
    }
}

impl Check for ClientIpCheck {
    fn check(&self, req: &mut Request<Body>) -> Result<(), Rejection> {
        if let Some(peer) = context::conn(req.extensions()).map(|c| c.peer.ip()) {
            let client = self.rules.load().client(peer, req.headers());
            context::set_client(req.extensions_mut(), client);
        }
        req.headers_mut().remove(FORWARDED);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn rules(trusted: &[&str], header: ForwardedHeader) -> ClientIpRules {
        ClientIpRules::new(&ClientIpConfig {
            trusted_proxies: trusted.iter().map(|n| n.parse().unwrap()).collect(),
            header,
            proxy_protocol: Vec::new(),
        })
    }

    fn headers(name: &'static str, values: &[&'static str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(name, HeaderValue::from_static(v));
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peer_headers_are_ignored() {
        let r = rules(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        let h = headers("x-forwarded-for", &["1.2.3.4"]);
        assert_eq!(r.client(ip("192.0.2.1"), &h), ip("192.0.2.1"));
        let r = rules(&[], ForwardedHeader::XForwardedFor);
        assert_eq!(r.client(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn walk_skips_trusted_hops_and_ignores_spoofed_leftmost() {
        let r = rules(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        let h = headers("x-forwarded-for", &["6.6.6.6, 203.0.113.9, 10.0.0.2"]);
        assert_eq!(r.client(ip("10.0.0.1"), &h), ip("203.0.113.9"));
        let mut hops = Vec::new();
        assert_eq!(
            r.walk(ip("10.0.0.1"), &h, |hop| hops.push(hop)),
            ip("203.0.113.9")
        );
        assert_eq!(
            hops,
            [
                Hop::Peer {
                    ip: ip("10.0.0.1"),
                    trusted: true
                },
                Hop::Forwarded {
                    ip: ip("10.0.0.2"),
                    trusted: true
                },
                Hop::Forwarded {
                    ip: ip("203.0.113.9"),
                    trusted: false
                },
            ]
        );
        // Several header lines read as one list.
        let h = headers("x-forwarded-for", &["6.6.6.6, 203.0.113.9", "10.0.0.2"]);
        assert_eq!(r.client(ip("10.0.0.1"), &h), ip("203.0.113.9"));
        // Every hop trusted: the leftmost.
        let h = headers("x-forwarded-for", &["10.9.9.9, 10.0.0.2"]);
        assert_eq!(r.client(ip("10.0.0.1"), &h), ip("10.9.9.9"));
        // No header: the peer.
        assert_eq!(r.client(ip("10.0.0.1"), &HeaderMap::new()), ip("10.0.0.1"));
    }

    #[test]
    fn malformed_entry_stops_at_last_good_address() {
        let r = rules(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        let h = headers("x-forwarded-for", &["1.1.1.1, garbage, 10.0.0.2"]);
        assert_eq!(r.client(ip("10.0.0.1"), &h), ip("10.0.0.2"));
        let h = headers("x-forwarded-for", &["1.1.1.1, 300.1.1.1"]);
        assert_eq!(r.client(ip("10.0.0.1"), &h), ip("10.0.0.1"));
        let h = headers("x-forwarded-for", &["1.1.1.1,"]);
        assert_eq!(r.client(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn ports_brackets_and_mapped_addresses() {
        let r = rules(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        let h = headers("x-forwarded-for", &["[2001:db8::7]:443"]);
        assert_eq!(r.client(ip("10.0.0.1"), &h), ip("2001:db8::7"));
        let h = headers("x-forwarded-for", &["198.51.100.4:5555"]);
        assert_eq!(r.client(ip("10.0.0.1"), &h), ip("198.51.100.4"));
        let h = headers("x-forwarded-for", &["::ffff:198.51.100.4"]);
        assert_eq!(r.client(ip("::ffff:10.0.0.1"), &h), ip("198.51.100.4"));
        let h = headers("x-forwarded-for", &["[2001:db8::7]:x"]);
        assert_eq!(r.client(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn rfc7239_forwarded() {
        let r = rules(&["10.0.0.0/8"], ForwardedHeader::Forwarded);
        let h = headers(
            "forwarded",
            &[
                r#"for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https, for=10.0.0.2;by=10.0.0.1"#,
            ],
        );
        assert_eq!(r.client(ip("10.0.0.1"), &h), ip("2001:db8:cafe::17"));
        let h = headers("forwarded", &["for=unknown, for=10.0.0.2"]);
        assert_eq!(r.client(ip("10.0.0.1"), &h), ip("10.0.0.2"));
        let h = headers("forwarded", &["for=_hidden;proto=http"]);
        assert_eq!(r.client(ip("10.0.0.1"), &h), ip("10.0.0.1"));
        let h = headers("forwarded", &["proto=http"]);
        assert_eq!(r.client(ip("10.0.0.1"), &h), ip("10.0.0.1"));
        // X-Forwarded-For is not read when Forwarded is configured.
        let h = headers("x-forwarded-for", &["1.2.3.4"]);
        assert_eq!(r.client(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }
}
