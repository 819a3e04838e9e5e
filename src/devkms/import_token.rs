//! The import token: `POST /api/v2/import_token` creates the instance's one token (a fresh
//! 4096-bit RSA key pair and a nonce), `GET` retrieves it (counting retrievals, honouring
//! expiry) with its public key (`payload`, a base64 PEM) and `nonce`. `secure_import.rs` opens
//! what an import sends with it.

use std::time::{Duration, SystemTime};

use http::{Response, StatusCode};
use serde::Deserialize;

use super::call::{Call, json};
use super::crypto;
use super::model::*;
use super::store::Instance;
use crate::body::Body;
use crate::reason::{Reason, Rejection};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateBody {
    expiration: Option<u64>,
    max_allowed_retrievals: Option<u32>,
}

/// `POST /api/v2/import_token`: `expiration` 300–86400 s (600), `maxAllowedRetrievals`
/// 1–500 (1). Replaces the instance's token.
pub(crate) fn create(
    instance: &mut Instance,
    call: &Call<'_>,
) -> Result<Response<Body>, Rejection> {
    let body: Option<CreateBody> = call.json()?;
    let (expiration, max_retrievals) =
        body.map_or((None, None), |b| (b.expiration, b.max_allowed_retrievals));
    let expiration = expiration.unwrap_or(600);
    if !(300..=86_400).contains(&expiration) {
        return Err(
            call.invalid_field("expiration", "an integer between 300 and 86400 (inclusive)")
        );
    }
    let max_retrievals = max_retrievals.unwrap_or(1);
    if !(1..=500).contains(&max_retrievals) {
        return Err(call.invalid_field(
            "maxAllowedRetrievals",
            "an integer between 1 and 500 (inclusive)",
        ));
    }
    let Some(key) = call.import_key.take() else {
        return Err(call
            .reject(Reason::UnprocessableCiphertext)
            .message("the import token's key pair could not be made"));
    };
    let created = SystemTime::now();
    let token = instance.import_token.insert(ImportToken {
        created,
        expires: created + Duration::from_secs(expiration),
        max_retrievals,
        remaining: max_retrievals,
        nonce: crypto::random_bytes(8),
        key,
    });
    Ok(json(StatusCode::OK, &token.render(false)))
}

/// `GET /api/v2/import_token`: the token and its nonce; 409 `IMPORT_TOKEN_EXPIRED_ERR` once
/// expired or retrieved as often as allowed.
pub(crate) fn get(instance: &mut Instance, call: &Call<'_>) -> Result<Response<Body>, Rejection> {
    let Some(token) = instance.import_token.as_mut() else {
        return Err(call
            .reject(Reason::KeyNotFound)
            .message("import token does not exist"));
    };
    if token.remaining == 0 || SystemTime::now() >= token.expires {
        return Err(call.reject(Reason::ImportTokenExpired));
    }
    token.remaining -= 1;
    Ok(json(StatusCode::OK, &token.render(true)))
}
