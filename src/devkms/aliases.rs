//! Key aliases: `POST`/`DELETE /api/v2/keys/{id}/aliases/{alias}`. A key is found by any of
//! its aliases wherever a key id is taken.

use http::{Method, Response, StatusCode};
use serde::Serialize;

use super::call::{Call, collection, no_content};
use super::keys;
use super::store::{Instance, now};
use crate::body::Body;
use crate::reason::{Reason, Rejection};

/// The `collectionType` of aliases.
const ALIAS_COLLECTION: &str = "application/vnd.ibm.kms.alias+json";

/// The most aliases one key may have.
const MAX_ALIASES: usize = 5;

/// Words Key Protect reserves (they are path segments of its API).
const RESERVED: &[&str] = &[
    "allowed_ip",
    "key",
    "keys",
    "metadata",
    "policy",
    "policies",
    "registration",
    "registrations",
    "ring",
    "rings",
    "rotate",
    "wrap",
    "unwrap",
    "rewrap",
    "version",
    "versions",
];

/// The rule an alias follows, as its `INVALID_FIELD_ERR` states it.
pub(crate) const ALIAS_RULE: &str = "2 to 90 characters of letters, digits, `-` and `_`, not a UUID \
     and not a reserved word";

/// True when `alias` follows [`ALIAS_RULE`].
pub(crate) fn valid(alias: &str) -> bool {
    (2..=90).contains(&alias.len())
        && alias
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !is_uuid(alias)
        && !RESERVED.contains(&alias)
}

fn is_uuid(text: &str) -> bool {
    text.len() == 36
        && text.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AliasJson<'a> {
    key_id: &'a str,
    alias: &'a str,
    created_by: &'a str,
    creation_date: &'a str,
}

/// `POST` (201; 200 when the key already has the alias) or `DELETE` (204).
pub(crate) fn handle(
    instance: &mut Instance,
    call: &Call<'_>,
) -> Result<Response<Body>, Rejection> {
    let alias = call.segment(3).unwrap_or_default();
    let alias = alias.as_str();
    if *call.method == Method::DELETE {
        let key = keys::live(instance, call)?;
        let Some(position) = key.aliases.iter().position(|a| a == alias) else {
            return Err(call
                .reject(Reason::KeyNotFound)
                .message(format!("alias {alias} does not exist on this key")));
        };
        key.aliases.remove(position);
        key.updated = now();
        return Ok(no_content());
    }
    if *call.method != Method::POST {
        return Err(call.reject(Reason::FeatureRestricted));
    }
    if !valid(alias) {
        return Err(call.invalid_field("alias", ALIAS_RULE));
    }
    let taken = instance.alias_taken(alias);
    let key = keys::live(instance, call)?;
    let status = if key.has_alias(alias) {
        StatusCode::OK
    } else if taken {
        return Err(call.invalid_field("alias", "an alias no other key of the instance uses"));
    } else if key.aliases.len() >= MAX_ALIASES {
        return Err(call.invalid_field("alias", "one of at most 5 aliases of a key"));
    } else {
        key.aliases.push(alias.to_owned());
        key.updated = now();
        StatusCode::CREATED
    };
    Ok(collection(
        status,
        ALIAS_COLLECTION,
        &[AliasJson {
            key_id: &key.id,
            alias,
            created_by: call.subject,
            creation_date: &key.updated,
        }],
    ))
}
