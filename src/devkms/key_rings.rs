//! Key rings: `GET /api/v2/key_rings`, `POST`/`DELETE /api/v2/key_rings/{id}` (`?force=true`),
//! and `PATCH /api/v2/keys/{id}` (`{"keyRingID": "<ring>"}`), which moves a key to another
//! ring. Every instance has the ring `default`, which cannot be created or deleted. Keys are
//! created in the ring `X-Kms-Key-Ring` names (`default` without it).

use http::{Method, Response, StatusCode};
use serde::{Deserialize, Serialize};

use super::call::{Call, KEY_COLLECTION, collection, json, no_content};
use super::keys;
use super::model::View;
use super::store::{DEFAULT_RING, Instance, KeyRing, now};
use crate::body::Body;
use crate::collection::Collection;
use crate::reason::{Reason, Rejection};

/// The `collectionType` of key rings.
const RING_COLLECTION: &str = "application/vnd.ibm.kms.key_ring+json";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RingJson<'a> {
    id: &'a str,
    creation_date: &'a str,
    created_by: &'a str,
}

impl<'a> RingJson<'a> {
    fn of(ring: &'a KeyRing) -> Self {
        RingJson {
            id: &ring.id,
            creation_date: &ring.created,
            created_by: &ring.created_by,
        }
    }
}

/// True for a key ring id Key Protect takes: 2–100 letters, digits and `-`.
fn valid(id: &str) -> bool {
    (2..=100).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// `/api/v2/key_rings[/{id}]`.
pub(crate) fn handle(
    instance: &mut Instance,
    call: &Call<'_>,
) -> Result<Response<Body>, Rejection> {
    let id = call.segment(1).filter(|s| !s.is_empty());
    match (call.method.clone(), id.as_deref()) {
        (Method::GET, None) => Ok(list(instance, call)),
        (Method::POST, Some(id)) => create(instance, call, id),
        (Method::DELETE, Some(id)) => delete(instance, call, id),
        _ => Err(call.reject(Reason::FeatureRestricted)),
    }
}

fn list(instance: &Instance, call: &Call<'_>) -> Response<Body> {
    let limit = call
        .query("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(usize::MAX);
    let offset = call
        .query("offset")
        .and_then(|o| o.parse().ok())
        .unwrap_or(0);
    let resources: Vec<RingJson<'_>> = instance
        .key_rings
        .iter()
        .skip(offset)
        .take(limit)
        .map(RingJson::of)
        .collect();
    let total_count =
        (call.query("totalCount") == Some("true")).then_some(instance.key_rings.len());
    json(
        StatusCode::OK,
        &Collection::new(RING_COLLECTION, &resources).total_count(total_count),
    )
}

fn create(instance: &mut Instance, call: &Call<'_>, id: &str) -> Result<Response<Body>, Rejection> {
    if !valid(id) {
        return Err(call.invalid_field(
            "keyRingID",
            "2 to 100 characters of letters, digits and `-`",
        ));
    }
    if instance.key_ring(id).is_some() {
        return Err(call.invalid_field("keyRingID", "a key ring id the instance does not use yet"));
    }
    instance.key_rings.push(KeyRing {
        id: id.to_owned(),
        created: now(),
        created_by: call.subject.to_owned(),
    });
    let ring = instance.key_rings.last().map(RingJson::of);
    Ok(collection(
        StatusCode::CREATED,
        RING_COLLECTION,
        &Vec::from_iter(ring),
    ))
}

/// Deleting: not `default`; not while the ring holds a key that is not deleted; with a deleted
/// key only with `?force=true` (the deleted keys move to `default`).
fn delete(instance: &mut Instance, call: &Call<'_>, id: &str) -> Result<Response<Body>, Rejection> {
    if id == DEFAULT_RING {
        return Err(call.invalid_field("keyRingID", "a key ring other than `default`"));
    }
    let Some(position) = instance.key_rings.iter().position(|r| r.id == id) else {
        return Err(call
            .reject(Reason::KeyNotFound)
            .message(format!("key ring {id} does not exist")));
    };
    let force = call.query("force") == Some("true");
    let blocking = instance
        .keys()
        .filter(|k| k.key_ring == id)
        .find(|k| !force || !k.is_deleted())
        .map(|k| k.is_deleted());
    if let Some(deleted) = blocking {
        let context = if deleted {
            "Key ring holds deleted keys: delete it with force=true"
        } else {
            "Key ring holds keys that are not deleted"
        };
        return Err(call.reject(Reason::KeyActionInvalidState).context(context));
    }
    instance.move_ring_keys(id, DEFAULT_RING);
    instance.key_rings.remove(position);
    Ok(no_content())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PatchBody {
    #[serde(rename = "keyRingID")]
    key_ring_id: Option<String>,
}

/// `PATCH /api/v2/keys/{id}`: moves the key to the ring `keyRingID` names; 200 + the key.
pub(crate) fn patch_key(
    instance: &mut Instance,
    call: &Call<'_>,
) -> Result<Response<Body>, Rejection> {
    let body: PatchBody = call.json()?.ok_or_else(|| call.reject(Reason::NoBody))?;
    let ring = body
        .key_ring_id
        .filter(|r| !r.is_empty())
        .ok_or_else(|| call.invalid_field("keyRingID", "the id of an existing key ring"))?;
    if instance.key_ring(&ring).is_none() {
        return Err(call
            .reject(Reason::KeyNotFound)
            .message(format!("key ring {ring} does not exist")));
    }
    let key = keys::live(instance, call)?;
    key.key_ring = ring;
    key.updated = now();
    Ok(collection(
        StatusCode::OK,
        KEY_COLLECTION,
        &[key.resource(View::Metadata)],
    ))
}
