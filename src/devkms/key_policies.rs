//! A key's own policies: `GET`/`PUT /api/v2/keys/{id}/policies[?policy=rotation|dualAuthDelete]`.
//!
//! `rotation` (root keys only: `KEY_ROOT_REQ_ERR` otherwise) records whether the key is
//! rotated automatically and every how many months (1–12); the dev KMS does not rotate on a
//! schedule. `dualAuthDelete` turns the key's dual authorization on or off: from then on a
//! deletion needs (or no longer needs) a `setKeyForDeletion` by another subject; turning it
//! off withdraws a pending authorization.

use http::{Method, Response, StatusCode};
use serde::{Deserialize, Serialize};

use super::call::{Call, collection};
use super::keys;
use super::model::{Enabled, Key, Stamp};
use super::store::Instance;
use crate::body::Body;
use crate::reason::{Operation, Reason, Rejection, Target};

/// The `collectionType` and resource `type` of key policies.
const POLICY_COLLECTION: &str = "application/vnd.ibm.kms.policy+json";

/// Which key policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Rotation,
    DualAuthDelete,
}

#[derive(Deserialize)]
struct PutBody {
    #[serde(default)]
    resources: Vec<PutResource>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PutResource {
    rotation: Option<RotationPut>,
    dual_auth_delete: Option<Enabled>,
}

#[derive(Deserialize)]
struct RotationPut {
    enabled: Option<bool>,
    interval_month: Option<i64>,
}

#[derive(Serialize)]
struct RotationJson {
    enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    interval_month: Option<u8>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PolicyJson<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    crn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    rotation: Option<RotationJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dual_auth_delete: Option<Enabled>,
    created_by: &'a str,
    creation_date: &'a str,
    updated_by: &'a str,
    last_update_date: &'a str,
}

/// `GET` or `PUT /api/v2/keys/{id}/policies`.
pub(crate) fn handle(
    instance: &mut Instance,
    call: &Call<'_>,
) -> Result<Response<Body>, Rejection> {
    let only = match call.query("policy") {
        None | Some("") => None,
        Some("rotation") => Some(Kind::Rotation),
        Some("dualAuthDelete") => Some(Kind::DualAuthDelete),
        Some(_) => {
            return Err(Rejection::new(Reason::InvalidQueryParam)
                .operation(Operation::KEY_POLICY)
                .message("The query_param 'policy' must be: one of rotation, dualAuthDelete")
                .target(Target::query_param("policy")));
        }
    };
    if *call.method == Method::PUT {
        put(instance, call, only)?;
    } else if *call.method != Method::GET {
        return Err(call
            .reject(Reason::FeatureRestricted)
            .operation(Operation::KEY_POLICY));
    }
    let crn_base = instance.crn("policy", "");
    let crn_of = |id: &str| format!("{crn_base}{id}");
    let key = keys::named(instance, call)?;
    let resources = render(key, only, &crn_of);
    Ok(collection(StatusCode::OK, POLICY_COLLECTION, &resources))
}

fn render<'k>(
    key: &'k Key,
    only: Option<Kind>,
    crn: &dyn Fn(&str) -> String,
) -> Vec<PolicyJson<'k>> {
    let policy = |stamp: &'k Stamp| PolicyJson {
        kind: POLICY_COLLECTION,
        id: &stamp.id,
        crn: crn(&stamp.id),
        rotation: None,
        dual_auth_delete: None,
        created_by: &stamp.created_by,
        creation_date: &stamp.created,
        updated_by: &stamp.updated_by,
        last_update_date: &stamp.updated,
    };
    let mut resources = Vec::new();
    if only.is_none_or(|k| k == Kind::Rotation)
        && let Some((stamp, enabled, interval_month)) = &key.policies.rotation
    {
        resources.push(PolicyJson {
            rotation: Some(RotationJson {
                enabled: *enabled,
                interval_month: *interval_month,
            }),
            ..policy(stamp)
        });
    }
    if only.is_none_or(|k| k == Kind::DualAuthDelete)
        && let Some(stamp) = &key.policies.dual_auth_delete
    {
        resources.push(PolicyJson {
            dual_auth_delete: Some(Enabled {
                enabled: key.dual_auth_delete,
            }),
            ..policy(stamp)
        });
    }
    resources
}

/// Applies a PUT: every resource is checked before any applies.
fn put(instance: &mut Instance, call: &Call<'_>, only: Option<Kind>) -> Result<(), Rejection> {
    let body: PutBody = call.json()?.ok_or_else(|| call.reject(Reason::NoBody))?;
    if body.resources.is_empty() {
        return Err(call
            .reject(Reason::BadBody)
            .detail("no policy in `resources`"));
    }
    if only.is_some() && body.resources.len() > 1 {
        return Err(call.reject(Reason::NumCollectionResource));
    }
    let key = keys::live(instance, call)?;
    let mut rotation = None;
    let mut dual_auth = None;
    for resource in body.resources {
        match (resource.rotation, resource.dual_auth_delete) {
            (Some(r), None) if only.is_none_or(|k| k == Kind::Rotation) => {
                if !key.is_root() {
                    return Err(call.reject(Reason::KeyRootReq));
                }
                let enabled = r.enabled.unwrap_or(true);
                let interval_month = match r.interval_month {
                    Some(m @ 1..=12) => Some(m as u8),
                    Some(_) => {
                        return Err(call.invalid_field(
                            "interval_month",
                            "an integer between 1 and 12 (inclusive)",
                        ));
                    }
                    None if enabled => Some(1),
                    None => None,
                };
                rotation = Some((enabled, interval_month));
            }
            (None, Some(d)) if only.is_none_or(|k| k == Kind::DualAuthDelete) => {
                dual_auth = Some(d.enabled);
            }
            (None, None) => {
                return Err(call
                    .reject(Reason::BadBody)
                    .detail("a policy resource holds `rotation` or `dualAuthDelete`"));
            }
            _ => return Err(call.reject(Reason::BodyQueryParamMismatch)),
        }
    }
    let by = call.subject;
    if let Some((enabled, interval_month)) = rotation {
        match &mut key.policies.rotation {
            Some((stamp, e, m)) => {
                stamp.touch(by);
                (*e, *m) = (enabled, interval_month);
            }
            slot @ None => *slot = Some((Stamp::new(by), enabled, interval_month)),
        }
    }
    if let Some(enabled) = dual_auth {
        match &mut key.policies.dual_auth_delete {
            Some(stamp) => stamp.touch(by),
            slot @ None => *slot = Some(Stamp::new(by)),
        }
        key.dual_auth_delete = enabled;
        if !enabled {
            key.deletion_authorized_by = None;
        }
    }
    Ok(())
}
