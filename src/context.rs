//! [`RequestContext`]: what the layers learn about one request, in one value allocated once.
//!
//! The server puts one `Arc<RequestContext>` into each request's extensions, holding the
//! connection the request came on ([`ConnInfo`]); the observe layer adds the request as it
//! arrived (for its access-log line); the layers below record what they decide in it (route,
//! client address, instance policies, the caller's [`Identity`], a note for the access log, a
//! shadowed refusal, whether the upstream answered), and the observe layer reads it back when
//! the response is ready, for the metrics and the access-log line. One allocation and one
//! extension entry per request, instead of one boxed extension per fact.
//!
//! A layer reads a fact through this module's functions ([`conn`], [`route`], [`client_ip`],
//! [`policy`], [`identity`]). A layer used without the server or the observe layer (alone, in a
//! test, in `explain`'s per-layer account) still works: without a context, the setters put the
//! fact in the extensions as its own value (`Route`, [`ClientAddr`], `Arc<ActivePolicy>`,
//! `Identity`) and the readers look there (for [`ConnInfo`] too). The readers look in the
//! context first and then in the extensions even when there is a context: a fact a caller's own
//! layer put in as a plain value (a policy, in tests/key_access.rs) is still enforced, never
//! silently skipped. In the gateway's stack every fact a layer records is in the context; the
//! second look runs only for one no layer recorded (no identity when auth is off).
//!
//! ```
//! use kmsgate::context::{self, RequestContext};
//! use kmsgate::route::Route;
//!
//! let mut req = http::Request::post("/api/v2/keys").body(()).unwrap();
//! req.extensions_mut().insert(std::sync::Arc::new(RequestContext::default()));
//! context::set_route(req.extensions_mut(), Route::KeyCreate);
//! assert_eq!(context::route(&req), Route::KeyCreate);
//! ```

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use http::uri::PathAndQuery;
use http::{Extensions, HeaderValue, Request};

use crate::auth::Identity;
use crate::conn::{self, ClientAddr, ConnInfo};
use crate::policy::ActivePolicy;
use crate::reason::Reason;
use crate::route::Route;

/// What the layers learn about a request. Each fact is recorded once (the first value stays).
#[derive(Debug, Default)]
pub struct RequestContext {
    conn: Option<ConnInfo>,
    arrival: OnceLock<Arrival>,
    route: OnceLock<Route>,
    client: OnceLock<IpAddr>,
    policy: OnceLock<Arc<ActivePolicy>>,
    identity: OnceLock<Identity>,
    note: OnceLock<&'static str>,
    shadow: OnceLock<Reason>,
    from_upstream: OnceLock<()>,
}

/// The request as it arrived, kept for its access-log line (the observe layer records it when
/// there is an access log): what `kmsgate explain --replay` needs to rebuild the request.
#[derive(Debug, Default)]
pub struct Arrival {
    /// The request-target's path and query.
    pub target: Option<PathAndQuery>,
    /// The host the route layer goes by: the request-target's authority, else `Host`.
    pub host: Option<HeaderValue>,
    /// The `bluemix-instance` header.
    pub instance: Option<HeaderValue>,
}

impl RequestContext {
    /// The context of a request that came on `conn` (the server makes one per request).
    pub fn for_conn(conn: ConnInfo) -> Self {
        RequestContext {
            conn: Some(conn),
            ..RequestContext::default()
        }
    }

    /// The connection the request came on; `None` outside a connection.
    pub fn conn(&self) -> Option<&ConnInfo> {
        self.conn.as_ref()
    }

    /// Records the request as it arrived (the observe layer does, once).
    pub fn set_arrival(&self, arrival: Arrival) {
        let _ = self.arrival.set(arrival);
    }

    /// The request as it arrived, if the observe layer recorded it.
    pub fn arrival(&self) -> Option<&Arrival> {
        self.arrival.get()
    }

    /// Records the request's route (the route layer does, once).
    pub fn set_route(&self, route: Route) {
        let _ = self.route.set(route);
    }

    /// The request's route: `other` until the route layer has classified it.
    pub fn route(&self) -> Route {
        self.route.get().copied().unwrap_or(Route::Other)
    }

    /// Records the derived client address.
    pub fn set_client(&self, ip: IpAddr) {
        let _ = self.client.set(ip);
    }

    /// The derived client address, once the client_ip layer has recorded it.
    pub fn client(&self) -> Option<IpAddr> {
        self.client.get().copied()
    }

    /// Records the instance's compiled policies.
    pub fn set_policy(&self, policy: Arc<ActivePolicy>) {
        let _ = self.policy.set(policy);
    }

    /// The instance's compiled policies, once the instance layer has found them.
    pub fn policy(&self) -> Option<&Arc<ActivePolicy>> {
        self.policy.get()
    }

    /// Records the caller's identity (from its token; never the token itself). Like every fact
    /// here it is recorded once: the bearer layer is its one writer, and a second value would
    /// be ignored.
    pub fn set_identity(&self, identity: Identity) {
        let _ = self.identity.set(identity);
    }

    /// The caller's identity, once the bearer layer has recorded it.
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.get()
    }

    /// The token subject, once the bearer layer has recorded the identity.
    pub fn subject(&self) -> Option<&str> {
        self.identity.get().map(|i| &*i.subject)
    }

    /// Records the refusal a shadowed policy would have made (the first one counts).
    pub fn set_shadow(&self, reason: Reason) {
        let _ = self.shadow.set(reason);
    }

    /// The refusal a shadowed policy would have made, if any.
    pub fn shadow(&self) -> Option<Reason> {
        self.shadow.get().copied()
    }

    /// Records why a check failed (a fixed phrase such as `"token expired"`).
    pub fn set_note(&self, note: &'static str) {
        let _ = self.note.set(note);
    }

    /// Why a check failed, if a layer said.
    pub fn note(&self) -> Option<&'static str> {
        self.note.get().copied()
    }

    /// Records that the response came from the upstream (not from the gateway itself).
    pub fn set_from_upstream(&self) {
        let _ = self.from_upstream.set(());
    }

    /// Whether the response came from the upstream.
    pub fn from_upstream(&self) -> bool {
        self.from_upstream.get().is_some()
    }
}

/// The request's context, if it has one.
#[inline]
pub fn of(extensions: &Extensions) -> Option<&RequestContext> {
    extensions.get::<Arc<RequestContext>>().map(|c| &**c)
}

/// The request's route: the one the route layer recorded or, for a layer used without it,
/// classified now.
pub fn route<B>(req: &Request<B>) -> Route {
    match of(req.extensions()).and_then(|c| c.route.get()) {
        Some(route) => *route,
        None => Route::of(req),
    }
}

/// The route the route layer recorded, if it ran.
pub fn recorded_route(extensions: &Extensions) -> Option<Route> {
    match of(extensions) {
        Some(context) => context.route.get().copied(),
        None => extensions.get::<Route>().copied(),
    }
}

/// Records the request's route.
pub fn set_route(extensions: &mut Extensions, route: Route) {
    match of(extensions) {
        Some(context) => context.set_route(route),
        None => {
            extensions.insert(route);
        }
    }
}

/// The connection the request came on: the context's, else a [`ConnInfo`] extension value (a
/// request built without the server). `None` outside a connection.
pub fn conn(extensions: &Extensions) -> Option<&ConnInfo> {
    match of(extensions).and_then(RequestContext::conn) {
        Some(conn) => Some(conn),
        None => extensions.get::<ConnInfo>(),
    }
}

/// The client address: the one the client_ip layer decided on, else the connection's peer.
/// `None` outside a connection.
pub fn client_ip(extensions: &Extensions) -> Option<IpAddr> {
    let context = of(extensions);
    context
        .and_then(RequestContext::client)
        .or_else(|| conn::client_ip(extensions))
        .or_else(|| context.and_then(RequestContext::conn).map(|c| c.peer.ip()))
}

/// Records the derived client address.
pub fn set_client(extensions: &mut Extensions, ip: IpAddr) {
    match of(extensions) {
        Some(context) => context.set_client(ip),
        None => {
            extensions.insert(ClientAddr(ip));
        }
    }
}

/// The instance's compiled policies, once the instance layer has found them.
pub fn policy(extensions: &Extensions) -> Option<&Arc<ActivePolicy>> {
    match of(extensions).and_then(RequestContext::policy) {
        Some(policy) => Some(policy),
        None => extensions.get::<Arc<ActivePolicy>>(),
    }
}

/// Records the instance's compiled policies.
pub fn set_policy(extensions: &mut Extensions, policy: Arc<ActivePolicy>) {
    match of(extensions) {
        Some(context) => context.set_policy(policy),
        None => {
            extensions.insert(policy);
        }
    }
}

/// The caller's identity, once the bearer layer has admitted the request.
pub fn identity(extensions: &Extensions) -> Option<&Identity> {
    match of(extensions).and_then(RequestContext::identity) {
        Some(identity) => Some(identity),
        None => extensions.get::<Identity>(),
    }
}

/// Records the caller's identity.
pub fn set_identity(extensions: &mut Extensions, identity: Identity) {
    match of(extensions) {
        Some(context) => context.set_identity(identity),
        None => {
            extensions.insert(identity);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_go_into_the_context_or_else_the_extensions() {
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        let mut with = Extensions::new();
        with.insert(Arc::new(RequestContext::default()));
        set_route(&mut with, Route::KeyWrap);
        set_client(&mut with, ip);
        assert_eq!(with.len(), 1, "one entry: the context");
        assert_eq!(recorded_route(&with), Some(Route::KeyWrap));
        assert_eq!(client_ip(&with), Some(ip));
        assert_eq!(of(&with).map(RequestContext::route), Some(Route::KeyWrap));

        let mut without = Extensions::new();
        set_route(&mut without, Route::KeyWrap);
        set_client(&mut without, ip);
        assert_eq!(without.get::<Route>(), Some(&Route::KeyWrap));
        assert_eq!(recorded_route(&without), Some(Route::KeyWrap));
        assert_eq!(client_ip(&without), Some(ip));
        assert!(policy(&without).is_none());
    }

    #[test]
    fn the_connection_and_the_identity_come_from_the_context_or_the_extensions() {
        let info = ConnInfo {
            peer: "192.0.2.7:4000".parse().unwrap(),
            local: "127.0.0.1:8080".parse().unwrap(),
            listener: conn::ListenerKind::Public,
            tls: false,
        };
        let alice = Identity::new("alice", false);
        let mut with = Extensions::new();
        with.insert(Arc::new(RequestContext::for_conn(info)));
        assert_eq!(conn(&with), Some(&info));
        assert_eq!(
            client_ip(&with),
            Some(info.peer.ip()),
            "no client_ip layer: the peer"
        );
        set_identity(&mut with, alice.clone());
        assert_eq!(identity(&with), Some(&alice));
        assert_eq!(of(&with).and_then(RequestContext::subject), Some("alice"));
        assert_eq!(with.len(), 1, "one entry: the context");

        let mut without = Extensions::new();
        without.insert(info);
        set_identity(&mut without, alice.clone());
        assert_eq!(conn(&without), Some(&info));
        assert_eq!(client_ip(&without), Some(info.peer.ip()));
        assert_eq!(without.get::<Identity>(), Some(&alice));
        assert_eq!(identity(&without), Some(&alice));
    }
}
