//! Target `body`: the body reader, `kmsgate::layer::body::check(route, query, bytes)`.
//!
//! Input: a first line `<route label>[?<query>]` (a label of [`Route::as_str`], e.g.
//! `key_create` or `instance_policies_put?policy=allowedIP`), then the body. A label that
//! names no route picks one of the inspected routes, so every input checks a body.
//!
//! Invariants: no panic; a refusal is a client error rendered as a valid envelope; a route the
//! layer does not inspect is always accepted with nothing to report; an accepted body that is
//! not blank is one JSON text; create, rotate and restore report key flags, the others none.

use kmsgate::Route;
use kmsgate::layer::body::{check, inspects};

use crate::{assert_envelope, is_blank, is_json, split_line};

/// The routes whose bodies the layer reads.
fn inspected() -> impl Iterator<Item = Route> {
    Route::ALL.iter().copied().filter(|r| inspects(*r))
}

/// The route and query a header line names.
pub fn route_of(line: &[u8]) -> (Route, Option<String>) {
    let line = String::from_utf8_lossy(line);
    let (label, query) = match line.split_once('?') {
        Some((label, query)) => (label, Some(query.to_owned())),
        None => (&line[..], None),
    };
    let route = Route::ALL
        .iter()
        .copied()
        .find(|r| r.as_str() == label)
        .unwrap_or_else(|| {
            let n = inspected().count();
            inspected().nth(label.len() % n).unwrap_or(Route::KeyCreate)
        });
    (route, query)
}

/// Runs the target on one input.
pub fn fuzz(data: &[u8]) {
    let (line, body) = split_line(data);
    let (route, query) = route_of(line);
    match check(route, query.as_deref(), body) {
        Ok(key) => {
            if !inspects(route) {
                assert_eq!(key, None, "{route:?} is not inspected");
                return;
            }
            if !is_blank(body) {
                assert!(
                    is_json(body),
                    "{route:?} accepted a body that is not JSON: {body:?}"
                );
            }
            match route {
                Route::KeyCreate
                | Route::KeyCreateWithPolicyOverrides
                | Route::KeyRotate
                | Route::KeyRestore => {
                    assert!(key.is_some(), "{route:?} accepted without key flags")
                }
                _ => assert_eq!(key, None, "{route:?} reported key flags"),
            }
            if matches!(
                route,
                Route::KeyCreate | Route::KeyCreateWithPolicyOverrides
            ) {
                // A create or import body is never blank: it needs metadata and one resource.
                assert!(!is_blank(body), "{route:?} accepted a blank body");
            }
        }
        Err(rejection) => {
            assert!(inspects(route), "{route:?} is not inspected, yet refused");
            assert!(
                rejection.reason().is_client_fault(),
                "{route:?}: a body refusal with a server status: {:?}",
                rejection.reason()
            );
            assert_envelope(&rejection);
        }
    }
}
