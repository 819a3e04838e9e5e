//! Secure import with the instance's import token: the key material (`payload`) comes
//! RSA-OAEP-encrypted with the token's public key (`encryptionAlgorithm`: `RSAES_OAEP_SHA_256`,
//! the default, or `RSAES_OAEP_SHA_1`), and `encryptedNonce` is the token's nonce AES-GCM-sealed
//! with that key material under `iv`. Used by create, rotate and restore.
//!
//! Refusals, as Key Protect gives them: an expired token is 409 `IMPORT_TOKEN_EXPIRED_ERR`; a
//! nonce that does not open with the material and `iv` is 400 `INCORRECT_NONCE_IV_ERR`; one that
//! opens to another nonce than the token's is 400 `INCORRECT_NONCE_ERR`.

use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::call::Call;
use super::crypto::{self, Oaep, Secret};
use super::model::ImportToken;
use crate::reason::{Reason, Rejection};

/// What an import sends for secure import.
#[derive(Clone, Copy, Default)]
pub(crate) struct Import<'a> {
    pub(crate) payload: Option<&'a str>,
    pub(crate) encrypted_nonce: Option<&'a str>,
    pub(crate) iv: Option<&'a str>,
    pub(crate) algorithm: Option<&'a str>,
}

impl Import<'_> {
    /// True when the body asks for secure import (`encryptedNonce` or `iv`).
    pub(crate) fn requested(&self) -> bool {
        self.encrypted_nonce.is_some() || self.iv.is_some()
    }
}

/// The key material of a secure import, checked against the import token; `None` when the
/// body is no secure import (neither `encryptedNonce` nor `iv`). `root`: the material must be
/// a root key's (128, 192 or 256 bits).
pub(crate) fn open(
    token: Option<&ImportToken>,
    call: &Call<'_>,
    sealed: Import<'_>,
    root: bool,
) -> Result<Option<Secret>, Rejection> {
    if !sealed.requested() {
        return Ok(None);
    }
    let (Some(encrypted_nonce), Some(iv)) = (sealed.encrypted_nonce, sealed.iv) else {
        let missing = if sealed.iv.is_none() {
            "iv"
        } else {
            "encryptedNonce"
        };
        return Err(call.invalid_field(missing, "provided with both `encryptedNonce` and `iv`"));
    };
    let payload = sealed.payload.ok_or_else(|| {
        call.invalid_field(
            "payload",
            "the key material, encrypted with the import token's public key",
        )
    })?;
    let oaep = match sealed.algorithm {
        None | Some("RSAES_OAEP_SHA_256") => Oaep::Sha256,
        Some("RSAES_OAEP_SHA_1") => Oaep::Sha1,
        Some(_) => {
            return Err(call.invalid_field(
                "encryptionAlgorithm",
                "one of RSAES_OAEP_SHA_256, RSAES_OAEP_SHA_1",
            ));
        }
    };
    let Some(token) = token else {
        return Err(call
            .reject(Reason::KeyNotFound)
            .message("import token does not exist"));
    };
    if SystemTime::now() >= token.expires {
        return Err(call.reject(Reason::ImportTokenExpired));
    }
    let material = B64
        .decode(payload)
        .ok()
        .and_then(|bytes| token.key.decrypt(oaep, &bytes))
        .ok_or_else(|| {
            call.invalid_field(
                "payload",
                "the key material, base64 encoded and encrypted with the import token's public key",
            )
        })?;
    let fits = if root {
        material.is_root_material()
    } else {
        (1..=super::model::STANDARD_PAYLOAD_MAX).contains(&material.expose().len())
    };
    if !fits {
        return Err(call.invalid_field("payload", "an encrypted 128, 192 or 256-bit key material"));
    }
    let (Ok(iv), Ok(encrypted_nonce)) = (B64.decode(iv), B64.decode(encrypted_nonce)) else {
        return Err(call.reject(Reason::IncorrectNonceIv));
    };
    let nonce = crypto::open_nonce(&material, &iv, &encrypted_nonce)
        .ok_or_else(|| call.reject(Reason::IncorrectNonceIv))?;
    if nonce != token.nonce {
        return Err(call.reject(Reason::IncorrectNonce));
    }
    Ok(Some(material))
}
