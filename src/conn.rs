//! What the gateway knows about the connection a request arrived on.
//!
//! The server records a [`ConnInfo`] in every request's context
//! ([`RequestContext`](crate::context::RequestContext)) before the stack sees it; a request built
//! without the server may carry it as a plain extension value. Read it with
//! [`context::conn`](crate::context::conn).

use std::net::SocketAddr;

/// Which listener accepted the connection. Requests on the private listener count as coming
/// from the private network (allowedNetwork).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenerKind {
    /// The public listener.
    Public,
    /// The private listener.
    Private,
}

impl ListenerKind {
    /// `public` or `private`, for logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            ListenerKind::Public => "public",
            ListenerKind::Private => "private",
        }
    }
}

/// The connection a request came on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    /// The direct TCP peer (or the address a trusted PROXY protocol header gave).
    pub peer: SocketAddr,
    /// The local address the connection was accepted on.
    pub local: SocketAddr,
    /// Public or private listener.
    pub listener: ListenerKind,
    /// Whether the connection is TLS.
    pub tls: bool,
}

/// The client address the gateway decided on: the peer, or the first untrusted hop of the
/// forwarded headers when the peer is a trusted proxy. The client_ip layer records it in the
/// request's context, or inserts it as an extension value in a request without one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub std::net::IpAddr);

/// The client address in a request's plain extension values: the [`ClientAddr`] the client_ip
/// layer decided on, else a `ConnInfo` extension's peer. A request from the server keeps both
/// in its context instead: read the address with
/// [`context::client_ip`](crate::context::client_ip), which falls back to this.
pub(crate) fn client_ip(extensions: &http::Extensions) -> Option<std::net::IpAddr> {
    extensions
        .get::<ClientAddr>()
        .map(|c| c.0)
        .or_else(|| extensions.get::<ConnInfo>().map(|c| c.peer.ip()))
}

/// An address as the policies see it: IPv4-mapped IPv6 (`::ffff:a.b.c.d`) becomes IPv4.
pub fn canonical_ip(ip: std::net::IpAddr) -> std::net::IpAddr {
    ip.to_canonical()
}
