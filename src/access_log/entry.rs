//! [`Entry`]: what one access-log line says about a request.

use std::net::IpAddr;
use std::time::Duration;

/// What one access-log line says about a request.
#[derive(Clone, Copy, Debug)]
pub struct Entry<'a> {
    /// The request method.
    pub method: &'a str,
    /// The route's name (`Route::as_str`).
    pub route: &'static str,
    /// The status sent to the client.
    pub status: u16,
    /// The gateway's reason code, when the gateway refused the request.
    pub reason: Option<&'static str>,
    /// The upstream's status, when the response came from the upstream.
    pub upstream_status: Option<u16>,
    /// Time from the request's arrival to its response head.
    pub latency: Duration,
    /// The correlation id (the client's, or a generated one).
    pub correlation_id: &'a str,
    /// The trace id of the client's W3C `traceparent` header (32 lowercase hex digits), if it
    /// sent a valid one: joins the line to the client's trace.
    pub trace_id: Option<&'a str>,
    /// The direct peer (or the PROXY protocol source).
    pub peer: Option<IpAddr>,
    /// The client address the policies were checked against.
    pub client: Option<IpAddr>,
    /// The token subject (an identity, never the token).
    pub subject: Option<&'a str>,
    /// Why a check failed: a fixed phrase.
    pub note: Option<&'static str>,
    /// The refusal a shadowed policy would have made.
    pub shadow: Option<&'static str>,
    /// The request target as received (path and query): names a key or an action, never
    /// holds key material. Lets `kmsgate explain --replay` rebuild the request.
    pub target: Option<&'a str>,
    /// The `Host` header (or HTTP/2 authority) as received.
    pub host: Option<&'a str>,
    /// The `bluemix-instance` header as received (an instance id, not a credential).
    pub instance: Option<&'a str>,
    /// The listener the request arrived on: `public` or `private`.
    pub listener: Option<&'static str>,
}
