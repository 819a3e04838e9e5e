//! [`RequestContext`]: what the layers learn about one request, in one value allocated once.
//!
//! The observe layer puts one `Arc<RequestContext>` into each request's extensions; the layers
//! below record what they decide in it (route, client address, instance policies, the token's
//! subject, a note for the access log, a shadowed refusal, whether the upstream answered), and the observe layer reads it back
//! when the response is ready, for the metrics and the access-log line. One allocation and one
//! extension entry per request, instead of one boxed extension per fact.
//!
//! A layer reads a fact through this module's functions ([`route`], [`client_ip`],
//! [`policy`]). A layer used without the observe layer (alone, in a test, in `explain`'s
//! per-layer account) still works: without a context, the setters put the fact in the
//! extensions as its own value (`Route`, [`ClientAddr`], `Arc<ActivePolicy>`) and the readers
//! look there. The caller's [`Identity`](crate::auth::Identity) stays a plain extension value,
//! which the bearer layer inserts.
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

use http::{Extensions, Request};

use crate::conn::{self, ClientAddr};
use crate::policy::ActivePolicy;
use crate::reason::Reason;
use crate::route::Route;

/// What the layers learn about a request. Each fact is recorded once (the first value stays).
#[derive(Debug, Default)]
pub struct RequestContext {
    route: OnceLock<Route>,
    client: OnceLock<IpAddr>,
    policy: OnceLock<Arc<ActivePolicy>>,
    subject: OnceLock<Arc<str>>,
    note: OnceLock<&'static str>,
    shadow: OnceLock<Reason>,
    from_upstream: OnceLock<()>,
}

impl RequestContext {
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

    /// Records the token subject (an identity, never the token): a reference count, no copy.
    pub fn set_subject(&self, subject: &Arc<str>) {
        let _ = self.subject.set(subject.clone());
    }

    /// The token subject, once the bearer layer has recorded it.
    pub fn subject(&self) -> Option<&str> {
        self.subject.get().map(|s| &**s)
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

/// The client address: the one the client_ip layer decided on, else the connection's peer.
/// `None` outside a connection.
pub fn client_ip(extensions: &Extensions) -> Option<IpAddr> {
    of(extensions)
        .and_then(RequestContext::client)
        .or_else(|| conn::client_ip(extensions))
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
}
