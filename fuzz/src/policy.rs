//! Target `policy`: the instance-policy parser, `kmsgate::policy::parse` (`parse_put`,
//! `parse_records`, `parse_document`) and the renderer it must agree with.
//!
//! Input: a first line holding the query string of the `PUT` (`policy=allowedIP`, or empty for
//! none), then the body.
//!
//! Invariants: no panic; every refusal is a client error rendered as a valid envelope; an
//! accepted body is one JSON text; with `?policy=<type>` a PUT sets exactly that one policy;
//! a PUT never sets a type twice; `parse_document` is `parse_records` without the metadata;
//! and a parsed document renders back (compact and pretty) to one that parses to the same
//! records, as `policy::render` promises.

use kmsgate::policy::model::{PolicyRecords, PolicyType};
use kmsgate::policy::parse::{parse_document, parse_put, parse_records};
use kmsgate::policy::render::{render_document, render_document_pretty};
use kmsgate::route::query_param;

use crate::{assert_envelope, is_json, split_line};

/// Runs the target on one input.
pub fn fuzz(data: &[u8]) {
    let (line, body) = split_line(data);
    let line = String::from_utf8_lossy(line);
    let query = (!line.is_empty()).then_some(&line[..]);
    let policy_query = query_param(query, "policy");

    match parse_put(body, policy_query) {
        Ok(policies) => {
            assert!(is_json(body), "a PUT body that is not JSON was accepted");
            let mut seen = [false; PolicyType::ALL.len()];
            for p in &policies {
                let i = p.policy_type().index();
                assert!(!seen[i], "a PUT set {:?} twice", p.policy_type());
                seen[i] = true;
            }
            if let Some(name) = policy_query {
                assert_eq!(policies.len(), 1, "?policy={name} set {policies:?}");
                assert_eq!(policies[0].policy_type().as_str(), name);
            }
            let mut records = PolicyRecords::default();
            for p in policies {
                records.set(p, None);
            }
            round_trip(&records);
        }
        Err(rejection) => {
            assert!(rejection.reason().is_client_fault());
            assert_envelope(&rejection);
        }
    }

    let records = parse_records(body);
    let document = parse_document(body);
    match (&records, &document) {
        (Ok(records), Ok(document)) => {
            assert_eq!(&records.policies, document);
            assert!(is_json(body), "a document that is not JSON was accepted");
            round_trip(records);
        }
        (Err(a), Err(b)) => {
            assert_eq!(a.reason(), b.reason());
            assert_eq!(a.wire_message(), b.wire_message());
            assert_envelope(a);
        }
        _ => panic!("parse_records and parse_document disagree: {records:?} vs {document:?}"),
    }
}

/// The rendered document of `records` parses back to `records`.
fn round_trip(records: &PolicyRecords) {
    for rendered in [
        render_document(records, None),
        render_document_pretty(records),
    ] {
        match parse_records(&rendered) {
            Ok(back) => assert_eq!(
                &back,
                records,
                "rendered as {}",
                String::from_utf8_lossy(&rendered)
            ),
            Err(e) => panic!(
                "a rendered document does not parse back ({}): {}",
                e.wire_message(),
                String::from_utf8_lossy(&rendered)
            ),
        }
    }
}
