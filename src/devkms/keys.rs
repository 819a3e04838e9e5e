//! Keys: the model, its Key Protect JSON, and create, list, get, versions, delete, restore.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};

use super::call::{Call, KEY_COLLECTION, Prefer, collection, no_content};
use super::crypto::{self, Secret};
use super::model::*;
use super::query::parse_bool;
use super::secure_import::{self, Import};
use super::store::{DEFAULT_RING, Instance, now};
use crate::body::Body;
use crate::reason::{Reason, Rejection};

/// The key a key route names (by id or alias, in the key ring `X-Kms-Key-Ring` names if it
/// names one): 404 `KEY_NOT_FOUND_ERR` when there is none.
pub(crate) fn named<'i>(
    instance: &'i mut Instance,
    call: &Call<'_>,
) -> Result<&'i mut Key, Rejection> {
    call.key_id
        .and_then(|id| instance.key_mut(id))
        .filter(|key| call.key_ring().is_none_or(|ring| key.key_ring == ring))
        .ok_or_else(|| call.reject(Reason::KeyNotFound))
}

/// Like [`named`], and 410 `KEY_DELETED_ERR` when the key was deleted.
pub(crate) fn live<'i>(
    instance: &'i mut Instance,
    call: &Call<'_>,
) -> Result<&'i mut Key, Rejection> {
    let key = named(instance, call)?;
    if key.is_deleted() {
        return Err(call.reject(Reason::KeyDeleted));
    }
    Ok(key)
}

/// A base64 field holding key material; `INVALID_FIELD_ERR` when it is not base64 or has a
/// size the key type does not take.
pub(crate) fn material(
    call: &Call<'_>,
    field: &'static str,
    b64: &str,
    root: bool,
) -> Result<Secret, Rejection> {
    let rule = if root {
        "a base64 encoded 128, 192 or 256-bit key material"
    } else {
        "a base64 encoded key material of at most 7,500 bytes"
    };
    let invalid = || call.invalid_field(field, rule);
    let secret = Secret::new(B64.decode(b64).map_err(|_| invalid())?);
    let fits = if root {
        secret.is_root_material()
    } else {
        (1..=STANDARD_PAYLOAD_MAX).contains(&secret.expose().len())
    };
    fits.then_some(secret).ok_or_else(invalid)
}

#[derive(Deserialize)]
struct CreateBody {
    #[serde(default)]
    resources: Vec<NewKey>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewKey {
    name: Option<String>,
    description: Option<String>,
    #[serde(default)]
    aliases: Vec<String>,
    expiration_date: Option<String>,
    extractable: Option<bool>,
    payload: Option<String>,
    encrypted_nonce: Option<String>,
    iv: Option<String>,
    encryption_algorithm: Option<String>,
    /// `/keys_with_policy_overrides` only.
    dual_auth_delete: Option<Enabled>,
}

/// `POST /api/v2/keys` (and `/keys_with_policy_overrides`): create or import one key.
pub(crate) fn create(
    instance: &mut Instance,
    call: &Call<'_>,
) -> Result<Response<Body>, Rejection> {
    let body: CreateBody = call.json()?.ok_or_else(|| call.reject(Reason::NoBody))?;
    let mut resources = body.resources.into_iter();
    let (Some(new), None) = (resources.next(), resources.next()) else {
        return Err(call
            .reject(Reason::BadBody)
            .detail("Only creation of one key per request is supported"));
    };
    let name = new
        .name
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| call.invalid_field("name", "a non-empty string"))?;
    // A missing `extractable` makes a root key (the Go client's zero value).
    let extractable = new.extractable.unwrap_or(false);
    let sealed = Import {
        payload: new.payload.as_deref(),
        encrypted_nonce: new.encrypted_nonce.as_deref(),
        iv: new.iv.as_deref(),
        algorithm: new.encryption_algorithm.as_deref(),
    };
    let securely = secure_import::open(instance.import_token.as_ref(), call, sealed, !extractable)?;
    let (secret, imported) = match (securely, &new.payload) {
        (Some(secret), _) => (secret, true),
        (None, Some(payload)) => (material(call, "payload", payload, !extractable)?, true),
        (None, None) => (Secret::generate(), false),
    };
    if let Some(alias) = new.aliases.iter().find(|a| instance.alias_taken(a)) {
        return Err(call.invalid_field(
            "aliases",
            &format!("aliases not used by another key ({alias} is)"),
        ));
    }
    let key_ring = call.key_ring().unwrap_or(DEFAULT_RING);
    if instance.key_ring(key_ring).is_none() {
        return Err(call
            .reject(Reason::KeyNotFound)
            .message(format!("key ring {key_ring} does not exist")));
    }
    // The instance's dualAuthDelete: the gateway's when it owns the policies, else the one
    // put to the dev KMS.
    let dual_auth_delete = match new.dual_auth_delete {
        Some(flag) => flag.enabled,
        None => call
            .gateway_dual_auth
            .unwrap_or_else(|| instance.policies.dual_auth_delete()),
    };
    let id = crypto::uuid_v4();
    let created = now();
    let key = Key {
        crn: instance.crn("key", &id),
        versions: vec![Version {
            id: id.clone(),
            created: created.clone(),
            material: secret,
        }],
        id,
        name,
        description: new.description,
        aliases: new.aliases,
        expiration_date: new.expiration_date,
        extractable,
        imported,
        state: State::Active,
        key_ring: key_ring.to_owned(),
        updated: created.clone(),
        created,
        created_by: call.subject.to_owned(),
        last_rotated: None,
        last_rotated_at: None,
        deletion_date: None,
        deleted_at: None,
        deleted_by: None,
        dual_auth_delete,
        deletion_authorized_by: None,
        last_action_at: None,
        policies: KeyPolicies {
            rotation: None,
            dual_auth_delete: dual_auth_delete.then(|| Stamp::new(call.subject)),
        },
        purged: false,
    };
    let key = instance.insert_key(key);
    Ok(respond(
        key,
        View::Full,
        call.prefer(Prefer::Representation),
        StatusCode::CREATED,
    ))
}

/// One key in a collection, or only its id for `Prefer: return=minimal`.
fn respond(key: &Key, view: View, prefer: Prefer, status: StatusCode) -> Response<Body> {
    #[derive(Serialize)]
    struct Minimal<'a> {
        id: &'a str,
    }
    match prefer {
        Prefer::Representation => collection(status, KEY_COLLECTION, &[key.resource(view)]),
        Prefer::Minimal => collection(status, KEY_COLLECTION, &[Minimal { id: &key.id }]),
    }
}

/// `GET /api/v2/keys/{id}` (with a standard key's payload) and `/metadata`. A deleted key is
/// shown as such (state 5, `deleted: true`), without payload.
pub(crate) fn get(
    instance: &mut Instance,
    call: &Call<'_>,
    view: View,
) -> Result<Response<Body>, Rejection> {
    let key = named(instance, call)?;
    Ok(collection(
        StatusCode::OK,
        KEY_COLLECTION,
        &[key.resource(view)],
    ))
}

/// `GET /api/v2/keys/{id}/versions`: newest first.
pub(crate) fn versions(
    instance: &mut Instance,
    call: &Call<'_>,
) -> Result<Response<Body>, Rejection> {
    let key = live(instance, call)?;
    let versions: Vec<VersionJson<'_>> = key.versions.iter().rev().map(VersionJson::of).collect();
    Ok(collection(StatusCode::OK, KEY_COLLECTION, &versions))
}

/// `DELETE /api/v2/keys/{id}`: 204, or 200 + the key with `Prefer: return=representation`.
/// A dual-auth key needs a prior `setKeyForDeletion` by another subject than the deleter's:
/// with none, or with only the deleter's own, 409 `AUTHORIZATIONS_NOT_MET`. A service may not
/// delete a key (403 `RESOURCE_OWNER_ERR`). A key with registrations needs `force=true` (409
/// `PROTECTED_RESOURCE_ERR`), which removes them, and none may have `preventKeyDeletion` (409
/// `PREV_KEY_DEL_ERR`).
pub(crate) fn delete(
    instance: &mut Instance,
    call: &Call<'_>,
) -> Result<Response<Body>, Rejection> {
    if call.is_service {
        return Err(call.reject(Reason::ResourceOwner));
    }
    let key_id = live(instance, call)?.id.clone();
    let (registered, prevented) = instance.registered(&key_id);
    let force = call.query("force").and_then(parse_bool).unwrap_or(false);
    if prevented {
        return Err(call.reject(Reason::PrevKeyDel));
    }
    if registered && !force {
        return Err(call.reject(Reason::ProtectedResource));
    }
    instance.unregister(&key_id);
    let key = live(instance, call)?;
    if key.dual_auth_delete
        && key
            .deletion_authorized_by
            .as_deref()
            .is_none_or(|by| by == call.subject)
    {
        return Err(call
            .reject(Reason::AuthorizationsNotMet)
            .context("1 prior authorization(s) are required for deletion"));
    }
    let date = now();
    key.state = State::Destroyed;
    key.deletion_date = Some(date.clone());
    key.deleted_at = Some(std::time::Instant::now());
    key.last_action_at = key.deleted_at;
    key.deleted_by = Some(call.subject.to_owned());
    key.updated = date;
    key.deletion_authorized_by = None;
    Ok(match call.prefer(Prefer::Minimal) {
        Prefer::Minimal => no_content(),
        Prefer::Representation => {
            respond(key, View::Metadata, Prefer::Representation, StatusCode::OK)
        }
    })
}

/// `DELETE /api/v2/keys/{id}/purge`: removes a deleted key for good, once `purge_wait` (Key
/// Protect: four hours) has passed since its deletion (409 `REQ_TOO_EARLY_ERR` before; 409
/// `KEY_ACTION_INVALID_STATE_ERR` for a key that is not deleted; 403 `RESOURCE_OWNER_ERR` for a
/// service). 200 + the key, or 204 with
/// `Prefer: return=minimal`; afterwards the key is not found.
pub(crate) fn purge(instance: &mut Instance, call: &Call<'_>) -> Result<Response<Body>, Rejection> {
    if call.is_service {
        return Err(call.reject(Reason::ResourceOwner));
    }
    let key = named(instance, call)?;
    let Some(deleted_at) = key.deleted_at.filter(|_| key.is_deleted()) else {
        return Err(call
            .reject(Reason::KeyActionInvalidState)
            .context("Key is not in destroyed state"));
    };
    let wait = call.rules.purge_wait;
    if deleted_at.elapsed() < wait {
        return Err(call.reject(Reason::ReqTooEarly).detail(format!(
            "Purge operation is allowed {} after key is deleted",
            go_duration(wait)
        )));
    }
    key.purged = true;
    key.aliases.clear();
    Ok(match call.prefer(Prefer::Representation) {
        Prefer::Minimal => no_content(),
        Prefer::Representation => {
            respond(key, View::Metadata, Prefer::Representation, StatusCode::OK)
        }
    })
}

/// A duration as Go's `time.Duration` prints it, to the second (`4h0m0s`, `1m30s`, `30s`),
/// as Key Protect's messages do.
fn go_duration(duration: std::time::Duration) -> String {
    let secs = duration.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

#[derive(Deserialize)]
struct RestoreBody {
    #[serde(default)]
    resources: Vec<RestoreResource>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RestoreResource {
    payload: Option<String>,
    encrypted_nonce: Option<String>,
    iv: Option<String>,
    encryption_algorithm: Option<String>,
}

/// `POST /api/v2/keys/{id}/restore` (or `?action=restore`): only imported root keys. A
/// `payload`, if sent, must be the key's current material.
pub(crate) fn restore(
    instance: &mut Instance,
    call: &Call<'_>,
) -> Result<Response<Body>, Rejection> {
    let body: Option<RestoreBody> = call.json()?;
    let resource = body.and_then(|b| b.resources.into_iter().next());
    let securely = match &resource {
        Some(r) => secure_import::open(
            instance.import_token.as_ref(),
            call,
            Import {
                payload: r.payload.as_deref(),
                encrypted_nonce: r.encrypted_nonce.as_deref(),
                iv: r.iv.as_deref(),
                algorithm: r.encryption_algorithm.as_deref(),
            },
            true,
        )?,
        None => None,
    };
    let key = named(instance, call)?;
    if !key.is_root() {
        return Err(call.reject(Reason::KeyRootReq));
    }
    if !key.imported {
        return Err(call.reject(Reason::KeyImptReq));
    }
    if !key.is_deleted() {
        return Err(call
            .reject(Reason::KeyActionInvalidState)
            .context("Key is not in destroyed state"));
    }
    let given = match (
        securely,
        resource.as_ref().and_then(|r| r.payload.as_deref()),
    ) {
        (Some(secret), _) => Some(secret),
        (None, Some(payload)) => Some(material(call, "payload", payload, true)?),
        (None, None) => None,
    };
    // Key Protect: a restore waits 30 seconds after the last action (the deletion).
    if key.acted_within(call.rules.action_wait) {
        return Err(call.reject(Reason::ReqTooEarly));
    }
    if given.is_some_and(|given| given != key.latest().material) {
        return Err(call.invalid_field("payload", "the key material of the key's current version"));
    }
    let date = now();
    key.state = State::Active;
    key.deletion_date = None;
    key.deleted_at = None;
    key.deleted_by = None;
    key.last_action_at = Some(std::time::Instant::now());
    key.updated = date;
    Ok(respond(
        key,
        View::Full,
        call.prefer(Prefer::Representation),
        StatusCode::CREATED,
    ))
}
