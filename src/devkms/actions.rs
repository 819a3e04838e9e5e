//! Key actions, in both URL styles (the route already made them one): wrap, unwrap, rewrap,
//! rotate, enable, disable, setKeyForDeletion, unsetKeyForDeletion, sync.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};

use super::call::{Call, json, no_content};
use super::crypto::{self, CryptoError, Sealed, Secret};
use super::keys;
use super::model::{Key, State, VersionJson};
use super::secure_import::{self, Import};
use super::store::{Instance, now};
use crate::body::Body;
use crate::reason::{Operation, Reason, Rejection, Target};
use crate::route::Route;

/// The body of wrap, unwrap and rewrap (each uses its part).
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ActionBody {
    plaintext: Option<String>,
    ciphertext: Option<String>,
    #[serde(default)]
    aad: Vec<String>,
    payload: Option<String>,
    encrypted_nonce: Option<String>,
    iv: Option<String>,
    encryption_algorithm: Option<String>,
}

/// `{"ciphertext"?, "plaintext"?, "keyVersion", "rewrappedKeyVersion"?}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ActionResult<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    plaintext: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ciphertext: Option<String>,
    key_version: VersionJson<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rewrapped_key_version: Option<VersionJson<'a>>,
}

/// Runs the action `call.route` names on the key the path names.
pub(crate) fn perform(
    instance: &mut Instance,
    call: &Call<'_>,
) -> Result<Response<Body>, Rejection> {
    let route = call.route;
    let body: Option<ActionBody> = call.json()?;
    // A rotation by secure import: the material is opened with the import token first.
    let securely = match (&body, route) {
        (Some(b), Route::KeyRotate) => secure_import::open(
            instance.import_token.as_ref(),
            call,
            Import {
                payload: b.payload.as_deref(),
                encrypted_nonce: b.encrypted_nonce.as_deref(),
                iv: b.iv.as_deref(),
                algorithm: b.encryption_algorithm.as_deref(),
            },
            true,
        )?,
        _ => None,
    };
    let key = keys::live(instance, call)?;
    if route.needs_root_key() && !key.is_root() {
        return Err(call.reject(Reason::KeyRootReq));
    }
    // Enable needs a disabled key; every other action an active one.
    let (needed, context) = match route {
        Route::KeyEnable => (State::Suspended, "Key is not in suspended state"),
        _ => (State::Active, "Key is not in active state"),
    };
    if key.state != needed {
        return Err(call.reject(Reason::KeyActionInvalidState).context(context));
    }
    match route {
        Route::KeyWrap => wrap(key, call, body.unwrap_or_default()),
        Route::KeyUnwrap | Route::KeyRewrap => unwrap(key, call, body),
        Route::KeyRotate => rotate(key, call, body.unwrap_or_default(), securely),
        Route::KeyEnable | Route::KeyDisable => {
            // Key Protect: enabling waits 30 seconds after the last action.
            if route == Route::KeyEnable && key.acted_within(call.rules.action_wait) {
                return Err(call.reject(Reason::ReqTooEarly));
            }
            key.last_action_at = Some(std::time::Instant::now());
            key.state = if route == Route::KeyEnable {
                State::Active
            } else {
                State::Suspended
            };
            key.updated = now();
            Ok(no_content())
        }
        // The authorization names its subject: only another subject may then delete.
        Route::KeySetForDeletion | Route::KeyUnsetForDeletion => {
            if !key.dual_auth_delete {
                return Err(call.reject(Reason::NotDualAuth));
            }
            key.deletion_authorized_by =
                (route == Route::KeySetForDeletion).then(|| call.subject.to_owned());
            Ok(no_content())
        }
        // sync: the dev KMS has no associated resources to notify.
        _ => Ok(no_content()),
    }
}

/// wrap: seals `plaintext` (base64), or a fresh 256-bit DEK when there is none, with the
/// newest version.
fn wrap(key: &Key, call: &Call<'_>, body: ActionBody) -> Result<Response<Body>, Rejection> {
    let (dek, generated) = match &body.plaintext {
        Some(b64) => {
            let dek = B64
                .decode(b64)
                .ok()
                .filter(|dek| !dek.is_empty())
                .ok_or_else(|| call.invalid_field("plaintext", "a base64 encoded key material"))?;
            (dek, false)
        }
        None => (crypto::random_bytes(crypto::GENERATED_LEN), true),
    };
    let latest = key.latest();
    let ciphertext = crypto::seal(&latest.material, &latest.id, &dek, &body.aad);
    Ok(json(
        StatusCode::OK,
        &ActionResult {
            plaintext: generated.then(|| B64.encode(&dek)),
            ciphertext: Some(ciphertext),
            key_version: VersionJson::of(latest),
            rewrapped_key_version: None,
        },
    ))
}

/// unwrap and rewrap: opens `ciphertext` with the version it names. unwrap returns the
/// plaintext, and when that version is not the newest also the DEK rewrapped with the newest;
/// rewrap returns only the rewrapped DEK. Both need a body (`NO_BODY_ERR`).
fn unwrap(
    key: &Key,
    call: &Call<'_>,
    body: Option<ActionBody>,
) -> Result<Response<Body>, Rejection> {
    let body = body.ok_or_else(|| call.reject(Reason::NoBody))?;
    let bad_ciphertext = || {
        call.invalid_field(
            "ciphertext",
            "the original base64 encoded ciphertext from the wrap operation",
        )
    };
    let unprocessable = |e: CryptoError| match e {
        CryptoError::NotBase64 => bad_ciphertext(),
        CryptoError::Unprocessable => call.reject(Reason::UnprocessableCiphertext),
    };
    let text = body.ciphertext.as_deref().ok_or_else(bad_ciphertext)?;
    let sealed = Sealed::parse(text).map_err(unprocessable)?;
    let version = key
        .version(sealed.handle())
        .ok_or_else(|| call.reject(Reason::UnprocessableCiphertext))?;
    let dek = sealed
        .open(&version.material, &body.aad)
        .map_err(unprocessable)?;
    let latest = key.latest();
    let rewrapped = (call.route == Route::KeyRewrap || version.id != latest.id)
        .then(|| crypto::seal(&latest.material, &latest.id, &dek, &body.aad));
    let plaintext = (call.route == Route::KeyUnwrap).then(|| B64.encode(&dek));
    Ok(json(
        StatusCode::OK,
        &ActionResult {
            plaintext,
            rewrapped_key_version: rewrapped.as_ref().map(|_| VersionJson::of(latest)),
            ciphertext: rewrapped,
            key_version: VersionJson::of(version),
        },
    ))
}

/// rotate: a new version with generated material, or with `payload` for an imported key.
/// At most one rotation per `rotation_interval` (Key Protect: an hour); the first rotation of a
/// key is never too early.
fn rotate(
    key: &mut Key,
    call: &Call<'_>,
    body: ActionBody,
    securely: Option<Secret>,
) -> Result<Response<Body>, Rejection> {
    if key
        .last_rotated_at
        .is_some_and(|at| at.elapsed() < call.rules.rotation_interval)
    {
        return Err(call.reject(Reason::KeyRotationNotPermitted));
    }
    let material = match (&body.payload, key.imported) {
        (Some(payload), true) => match securely {
            Some(secret) => secret,
            None => keys::material(call, "payload", payload, true)?,
        },
        (None, true) => {
            return Err(call
                .reject(Reason::KeyPayloadReq)
                .target(Target::field("payload")));
        }
        (Some(_), false) => {
            return Err(Rejection::new(Reason::InvalidQueryParam)
                .operation(Operation::KEY_ROTATE)
                .message("The query_param 'payload' must be: provided only if key is imported")
                .target(Target::query_param("payload")));
        }
        (None, false) => Secret::generate(),
    };
    key.rotate(material);
    Ok(no_content())
}
