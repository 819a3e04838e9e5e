//! The route layer: the request's canonical form, then its [`Route`].
//!
//! Before anything decides on a request, this layer makes it read the same to the gateway and
//! to the Go KMS behind it ([`crate::canonical`]): the path and query are decoded the way Go's
//! `net/http` decodes them and rewritten in canonical form (so what is forwarded is what was
//! classified), the host is the request-target's authority when there is one (RFC 9112 §3.2.2,
//! RFC 9113 §8.3.1), and what cannot be read one way only is refused:
//!
//! | input | answer |
//! |---|---|
//! | a method no Key Protect operation accepts (`CONNECT`, `TRACE`, lower-case `get`, …) | 405 `METHOD_NOT_ALLOWED_ERR` |
//! | bad `%` escape or encoded `/` in the path; repeated, invalid or (HTTP/1.1) missing `Host`; a method-override header (`X-HTTP-Method-Override`, …) | 400 `AMBIGUOUS_REQUEST_ERR` |
//! | `;`, a bad escape, or a repeated `action`/`policy` in the query | 400 `INVALID_QUERY_PARAM_ERR` |
//! | with `routes.unknown = "refuse"`: a request that is no Key Protect operation | 404 `UNKNOWN_ROUTE_ERR` |
//!
//! The [`Route`] is recorded in the request's [`RequestContext`](crate::context::RequestContext),
//! for the layers below, the metrics and the access log.

use http::uri::{PathAndQuery, Uri};
use http::{HeaderName, HeaderValue, Method, Request, header};

use crate::body::Body;
use crate::canonical::{self, Ambiguity};
use crate::config::UnknownRoute;
use crate::context;
use crate::layer::guard::{Check, Guard, GuardLayer};
use crate::reason::{Reason, Rejection};
use crate::route::Route;

/// The route step of [`RouteLayer`].
#[derive(Clone, Debug)]
pub struct RouteCheck {
    unknown: UnknownRoute,
}

/// Adds [`RouteGuard`] to a stack.
///
/// # Example
///
/// On its own in front of a service: a request that is no Key Protect operation is refused
/// with 404 `UNKNOWN_ROUTE_ERR` when `routes.unknown = "refuse"`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// # use kmsgate::body::Body;
/// # let kms = tower::service_fn(|_req: http::Request<Body>| async {
/// #     Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
/// # });
/// use kmsgate::config::UnknownRoute;
/// use kmsgate::layer::route::RouteLayer;
/// use tower::{ServiceBuilder, ServiceExt};
///
/// let service = ServiceBuilder::new()
///     .layer(RouteLayer::new(UnknownRoute::Refuse))
///     .service(kms);
/// let request = http::Request::get("/not/key/protect")
///     .header("host", "kms.example.com")
///     .body(Body::empty())
///     .unwrap();
/// let response = service.oneshot(request).await.unwrap();
/// assert_eq!(response.status(), 404);
/// assert_eq!(response.headers()["kmsgate-reason"], "UNKNOWN_ROUTE_ERR");
/// # }
/// ```
pub type RouteLayer = GuardLayer<RouteCheck>;

/// See the [module docs](self).
pub type RouteGuard<S> = Guard<RouteCheck, S>;

impl RouteLayer {
    /// Canonicalises and classifies every request; `unknown` says what happens to a request
    /// that is no Key Protect operation.
    pub fn new(unknown: UnknownRoute) -> RouteLayer {
        GuardLayer::with(RouteCheck { unknown })
    }
}

impl Check for RouteCheck {
    fn check(&self, req: &mut Request<Body>) -> Result<(), Rejection> {
        if !accepted_method(req.method()) {
            return Err(Rejection::new(Reason::MethodNotAllowed));
        }
        // One pass over the names (cheaper than three hashed lookups).
        let overridden = req
            .headers()
            .keys()
            .any(|name| METHOD_OVERRIDES.iter().any(|o| o == name));
        if overridden {
            return Err(Ambiguity::MethodOverride.rejection());
        }
        canonicalize(req)?;
        let route = Route::classify(req.method(), req.uri().path(), req.uri().query());
        context::set_route(req.extensions_mut(), route);
        if route == Route::Other && self.unknown == UnknownRoute::Refuse {
            return Err(Rejection::new(Reason::UnknownRoute));
        }
        Ok(())
    }
}

/// Headers with which some frameworks (gorilla's `HTTPMethodOverrideHandler`, Rails, Express's
/// method-override) replace the request's method: no Key Protect client sends them.
const METHOD_OVERRIDES: [HeaderName; 3] = [
    HeaderName::from_static("x-http-method-override"),
    HeaderName::from_static("x-http-method"),
    HeaderName::from_static("x-method-override"),
];

/// The methods Key Protect's operations accept (Go's method names are case-sensitive).
fn accepted_method(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET
            | Method::HEAD
            | Method::POST
            | Method::PUT
            | Method::PATCH
            | Method::DELETE
            | Method::OPTIONS
    )
}

/// Rewrites the request in its canonical form, or says why it has none.
pub fn canonicalize<B>(req: &mut Request<B>) -> Result<(), Rejection> {
    canonical_host(req).map_err(Ambiguity::rejection)?;
    let uri = req.uri();
    let path = canonical::path(uri.path()).map_err(Ambiguity::rejection)?;
    let query = match uri.query() {
        // A bad escape in the query is a query problem (Go drops the pair).
        Some(query) => canonical::query(query).map_err(|a| match a {
            Ambiguity::BadEscape => Rejection::new(Reason::InvalidQueryParam).detail(a.to_string()),
            a => a.rejection(),
        })?,
        None => None,
    };
    if path.is_none() && query.is_none() {
        return Ok(());
    }
    let path = path.as_deref().unwrap_or(uri.path());
    let query = query.as_deref().or(uri.query());
    let uri = rewrite(uri, path, query).map_err(|()| Ambiguity::BadEscape.rejection())?;
    *req.uri_mut() = uri;
    Ok(())
}

/// One host: the request-target's authority when it has one (absolute-form, `:authority`),
/// else the single `Host` header; the `Host` header is set to it.
fn canonical_host<B>(req: &mut Request<B>) -> Result<(), Ambiguity> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let first = hosts.next();
    if hosts.next().is_some() {
        return Err(Ambiguity::DuplicateHeader("host"));
    }
    // Go refuses a malformed Host header even when the target's authority overrides it, and an
    // HTTP/1.1 request without one even in absolute form (RFC 9112 §3.2: 400).
    match first {
        Some(header) => canonical::host(header.to_str().map_err(|_| Ambiguity::BadHost)?)?,
        None if req.version() == http::Version::HTTP_11 => return Err(Ambiguity::MissingHost),
        None => {}
    }
    match (req.uri().authority(), first) {
        (Some(authority), header) => {
            canonical::host(authority.as_str())?;
            if header.is_none_or(|h| h.as_bytes() != authority.as_str().as_bytes()) {
                let value =
                    HeaderValue::from_str(authority.as_str()).map_err(|_| Ambiguity::BadHost)?;
                req.headers_mut().insert(header::HOST, value);
            }
            Ok(())
        }
        (None, _) => Ok(()),
    }
}

/// `uri` with `path` and `query` in place of its own.
fn rewrite(uri: &Uri, path: &str, query: Option<&str>) -> Result<Uri, ()> {
    let mut text = String::with_capacity(path.len() + query.map_or(0, |q| q.len() + 1));
    text.push_str(path);
    if let Some(query) = query {
        text.push('?');
        text.push_str(query);
    }
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(text).map_err(|_| ())?);
    Uri::from_parts(parts).map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(uri: &str) -> Result<String, Reason> {
        let mut req = Request::builder()
            .uri(uri)
            .header("host", "kms.example")
            .body(())
            .unwrap();
        canonicalize(&mut req).map_err(|r| r.reason())?;
        Ok(req.uri().to_string())
    }

    #[test]
    fn the_canonical_form_replaces_path_and_query() {
        assert_eq!(canonical("/api/v2/%6Beys").unwrap(), "/api/v2/keys");
        assert_eq!(
            canonical("/api/v2/keys/k/actions/%72otate?x=1").unwrap(),
            "/api/v2/keys/k/actions/rotate?x=1"
        );
        assert_eq!(
            canonical("/api/v2/keys/k?%61ction=re%73tore").unwrap(),
            "/api/v2/keys/k?action=restore"
        );
        assert_eq!(
            canonical("http://kms.example/api/v2/%6Beys").unwrap(),
            "http://kms.example/api/v2/keys"
        );
        assert_eq!(canonical("/api/v2/keys").unwrap(), "/api/v2/keys");
    }

    #[test]
    fn ambiguous_paths_and_queries_are_refused() {
        assert_eq!(canonical("/api/v2/keys%2Fx"), Err(Reason::AmbiguousRequest));
        assert_eq!(
            canonical("/api/v2/keys/k?action=wrap&action=rotate"),
            Err(Reason::InvalidQueryParam)
        );
        assert_eq!(
            canonical("/api/v2/keys/k?action=wrap;x"),
            Err(Reason::InvalidQueryParam)
        );
    }

    #[test]
    fn the_target_authority_is_the_host() {
        let mut req = Request::builder()
            .uri("http://private.example/api/v2/keys")
            .header("host", "public.example")
            .body(())
            .unwrap();
        canonicalize(&mut req).unwrap();
        assert_eq!(req.headers()["host"], "private.example");
        let mut req = Request::builder()
            .uri("/api/v2/keys")
            .header("host", "a.example")
            .header("host", "b.example")
            .body(())
            .unwrap();
        assert_eq!(
            canonicalize(&mut req).unwrap_err().reason(),
            Reason::AmbiguousRequest
        );
        let mut req = Request::builder()
            .uri("/api/v2/keys")
            .header("host", "[private.example]")
            .body(())
            .unwrap();
        assert_eq!(
            canonicalize(&mut req).unwrap_err().reason(),
            Reason::AmbiguousRequest
        );
        // HTTP/1.1 needs a Host (RFC 9112 §3.2); HTTP/1.0 does not.
        let mut req = Request::builder().uri("/api/v2/keys").body(()).unwrap();
        assert_eq!(
            canonicalize(&mut req).unwrap_err().reason(),
            Reason::AmbiguousRequest
        );
        let mut req = Request::builder()
            .uri("/api/v2/keys")
            .version(http::Version::HTTP_10)
            .body(())
            .unwrap();
        assert!(canonicalize(&mut req).is_ok());
        // A malformed Host is refused even when the target's authority overrides it.
        let mut req = Request::builder()
            .uri("http://private.example/api/v2/keys")
            .header("host", "user@private.example")
            .body(())
            .unwrap();
        assert_eq!(
            canonicalize(&mut req).unwrap_err().reason(),
            Reason::AmbiguousRequest
        );
    }

    #[test]
    fn only_key_protect_methods_are_accepted() {
        for m in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
            assert!(accepted_method(&Method::from_bytes(m.as_bytes()).unwrap()));
        }
        for m in ["CONNECT", "TRACE", "get", "PROPFIND", "BREW"] {
            assert!(!accepted_method(&Method::from_bytes(m.as_bytes()).unwrap()));
        }
    }
}
