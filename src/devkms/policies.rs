//! Instance policies, stored per instance, and `allowed_ip_port`.
//!
//! The policies are the crate's one model ([`PolicyRecords`]): a PUT is read by the shared
//! parser ([`parse_put`], the same the gateway's body layer runs) and a GET rendered by the
//! shared renderer ([`document_response`]), as the gateway's own policy API does. Updates follow
//! Key Protect: attributes a PUT leaves out take their defaults (keyCreateImportAccess: every
//! flag `true` but `enforce_token`); an allowedIP list is replaced, not merged; disabling a
//! policy resets its attributes.

use http::{Response, StatusCode};
use serde::Serialize;

use super::call::{Call, collection, no_content};
use super::store::{Instance, now};
use crate::body::Body;
use crate::policy::parse::{parse_policy_query, parse_put};
use crate::policy::render::document_response;
use crate::reason::{Reason, Rejection};

/// The `collectionType` of `allowed_ip_port`.
const ALLOWED_IP_COLLECTION: &str = "application/vnd.ibm.kms.allowed_ip_metadata+json";

/// `PUT /api/v2/instance/policies[?policy=]`: 204. The whole PUT applies or nothing does.
pub(crate) fn put(instance: &mut Instance, call: &Call<'_>) -> Result<Response<Body>, Rejection> {
    if call.body.iter().all(u8::is_ascii_whitespace) {
        return Err(call.reject(Reason::NoBody));
    }
    let policies = parse_put(&call.body, call.query("policy"))?;
    instance
        .policies
        .records
        .update(policies, call.subject, &now());
    Ok(no_content())
}

/// `GET /api/v2/instance/policies[?policy=]`: every policy that was put (in a fixed order),
/// or the one asked for; `resources` is empty for a policy never put.
pub(crate) fn get(instance: &mut Instance, call: &Call<'_>) -> Result<Response<Body>, Rejection> {
    let only = call.query("policy").map(parse_policy_query).transpose()?;
    Ok(document_response(&instance.policies.records, only))
}

/// `GET /api/v2/instance/allowed_ip_port`: the private endpoint port while allowedIP is
/// enabled, no resources otherwise.
pub(crate) fn allowed_ip_port(instance: &Instance) -> Response<Body> {
    #[derive(Serialize)]
    struct Port {
        private_endpoint_port: u16,
    }
    let ports: Vec<Port> = instance
        .policies
        .allowed_ip()
        .then_some(Port {
            private_endpoint_port: instance.private_port,
        })
        .into_iter()
        .collect();
    collection(StatusCode::OK, ALLOWED_IP_COLLECTION, &ports)
}
