//! Target `route`: route classification, `kmsgate::Route::classify(method, path, query)` and
//! `kmsgate::route::query_param`.
//!
//! Input: a request line without the version, `<METHOD> <path>[?<query>]` (the method may be
//! any token; an input without a space is a path for `POST`).
//!
//! Invariants: no panic; a path outside `/api/v2/` is `other`; one trailing `/` does not change
//! the route; a route's label, index and operation are consistent; `Route::of` on a request
//! with that target agrees with `classify`; `query_param` returns a value that was in the query.
//! The canonical path and query (when there is one) classify without panicking and are
//! canonical themselves.

use http::Method;
use kmsgate::Route;
use kmsgate::canonical;
use kmsgate::layer::body::inspects;
use kmsgate::route::query_param;

use crate::split_line;

/// Runs the target on one input.
pub fn fuzz(data: &[u8]) {
    let (line, _) = split_line(data);
    let (method, target) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (&b"POST"[..], line),
    };
    let Ok(method) = Method::from_bytes(method) else {
        return;
    };
    let target = String::from_utf8_lossy(target);
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (&target[..], None),
    };
    let route = check(&method, path, query);

    if !path.ends_with('/') {
        let slashed = format!("{path}/");
        assert_eq!(
            Route::classify(&method, &slashed, query),
            route,
            "{method} {path} vs {slashed}"
        );
    }

    if let Ok(uri) = target.parse::<http::Uri>() {
        if let Ok(req) = http::Request::builder()
            .method(method.clone())
            .uri(uri.clone())
            .body(())
        {
            assert_eq!(
                Route::of(&req),
                Route::classify(&method, uri.path(), uri.query())
            );
        }
    }

    for name in ["action", "policy", ""] {
        if let Some(value) = query_param(query, name) {
            let q = query.unwrap_or("");
            assert!(
                q.split('&')
                    .any(|pair| pair == name || pair == format!("{name}={value}")),
                "query_param({q:?}, {name:?}) = {value:?}"
            );
        }
    }

    canonical_route(&method, path, query);
}

/// Classifies and checks the route's own consistency.
fn check(method: &Method, path: &str, query: Option<&str>) -> Route {
    let route = Route::classify(method, path, query);
    if !path.starts_with("/api/v2/") {
        assert_eq!(route, Route::Other, "{method} {path}");
    }
    assert_eq!(Route::ALL[route.index()], route);
    assert!(route.index() < Route::COUNT);
    assert!(!route.as_str().is_empty());
    let _ = route.operation();
    if route.needs_root_key() {
        assert!(route.is_key_action());
    }
    if inspects(route) {
        assert!(
            matches!(*method, Method::POST | Method::PUT),
            "{method} {path} inspects a body"
        );
    }
    route
}

/// Checks the route of the canonical path and query.
fn canonical_route(method: &Method, path: &str, query: Option<&str>) {
    let path = match canonical::path(path) {
        Ok(Some(p)) => {
            assert_eq!(
                canonical::path(&p),
                Ok(None),
                "canonical path {p:?} of {path:?}"
            );
            p
        }
        Ok(None) => path.to_owned(),
        Err(_) => return,
    };
    let query = match query.map(canonical::query) {
        Some(Ok(Some(q))) => {
            assert_eq!(canonical::query(&q), Ok(None), "canonical query {q:?}");
            Some(q)
        }
        Some(Ok(None)) => query.map(str::to_owned),
        Some(Err(_)) => return,
        None => None,
    };
    check(method, &path, query.as_deref());
}
