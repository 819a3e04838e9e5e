//! The key_access layer: Key Protect's `keyCreateImportAccess` instance policy.
//!
//! It reads what the body layer learned ([`KeyBody`], a request extension: this layer never
//! parses) and the instance's policy (`Arc<ActivePolicy>`, put there by the instance layer; no
//! extension means no policy). With the policy enabled:
//!
//! - **create / import** (`POST /api/v2/keys`, `/keys_with_policy_overrides`): `extractable`
//!   false or absent is a root key, true a standard key; a `payload` makes it an import. The
//!   matching attribute (`create_root_key`, `create_standard_key`, `import_root_key`,
//!   `import_standard_key`) must be true.
//! - **`enforce_token`**: key material without an import token (`encryptedNonce` *and* `iv`) is
//!   refused on create, rotate and restore, in both URL styles. It comes on top of the import
//!   attributes (Key Protect: it "takes precedence"): an import needs its attribute *and*, when
//!   enforced, a token.
//!
//! A refusal is 409 `KEY_CREATE_IMPORT_ACCESS_ERR`, errorMsg "Conflict: Key could not be
//! created: Please see `reasons` for more details (KEY_CREATE_IMPORT_ACCESS_ERR)" (for rotate
//! and restore, "Key could not be rotated" / "restored"; Key Protect does not document these).

use std::sync::Arc;

use http::Request;

use super::body::KeyBody;
use crate::body::Body;
use crate::context;
use crate::layer::guard::{Check, Guard, GuardLayer};
use crate::layer::observe::RequestLog;
use crate::layer::shadow;
use crate::policy::model::{KeyCreateImportAccess, PolicyType};
use crate::reason::{Operation, Reason, Rejection};
use crate::route::Route;

/// Decides a request under the instance's keyCreateImportAccess policy. `body` is what the body
/// layer found; it reads every create, rotate and restore body, so its absence on those routes
/// under an enabled policy means the stack is mis-assembled, and the request is refused
/// (`GATEWAY_INTERNAL_ERR`) rather than let through unchecked.
pub fn check(
    route: Route,
    body: Option<&KeyBody>,
    policy: Option<&KeyCreateImportAccess>,
) -> Result<(), Refusal> {
    let Some(policy) = policy.filter(|p| p.enabled) else {
        return Ok(());
    };
    let governed = matches!(
        route,
        Route::KeyCreate
            | Route::KeyCreateWithPolicyOverrides
            | Route::KeyRotate
            | Route::KeyRestore
    );
    let body = match body {
        Some(body) if governed => body,
        None if governed => {
            return Err(Refusal {
                rejection: Rejection::new(Reason::GatewayInternal).operation(route.operation()),
                note: "key_access ran without the body layer",
            });
        }
        _ => return Ok(()),
    };
    let token_missing = body.payload && policy.enforce_token && !body.has_import_token();
    match route {
        Route::KeyCreate | Route::KeyCreateWithPolicyOverrides => {
            let allowed = match (body.payload, body.extractable) {
                (false, false) => policy.create_root_key,
                (false, true) => policy.create_standard_key,
                (true, false) => policy.import_root_key,
                (true, true) => policy.import_standard_key,
            };
            if token_missing {
                Err(Refusal::new(
                    Operation::KEY_CREATE,
                    "import without an import token",
                ))
            } else if !allowed {
                Err(Refusal::new(Operation::KEY_CREATE, kind(body)))
            } else {
                Ok(())
            }
        }
        Route::KeyRotate if token_missing => Err(Refusal::new(
            Operation::KEY_ROTATE,
            "rotation with key material but no import token",
        )),
        Route::KeyRestore if token_missing => Err(Refusal::new(
            Operation::KEY_RESTORE,
            "restore with key material but no import token",
        )),
        _ => Ok(()),
    }
}

/// The access-log note of a refused create or import.
fn kind(body: &KeyBody) -> &'static str {
    match (body.payload, body.extractable) {
        (false, false) => "root key creation not allowed",
        (false, true) => "standard key creation not allowed",
        (true, false) => "root key import not allowed",
        (true, true) => "standard key import not allowed",
    }
}

/// A keyCreateImportAccess refusal: the rejection, and a fixed phrase for the access log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// What the client gets.
    pub rejection: Rejection,
    /// Why, for the access log (never request data).
    pub note: &'static str,
}

impl Refusal {
    fn new(operation: Operation, note: &'static str) -> Self {
        Refusal {
            rejection: Rejection::new(Reason::KeyCreateImportAccess).operation(operation),
            note,
        }
    }
}

/// The keyCreateImportAccess check of [`KeyAccessLayer`] (no settings: the policy comes with
/// each request).
#[derive(Clone, Copy, Debug, Default)]
pub struct KeyAccessCheck;

/// Adds [`KeyAccess`] to a stack.
///
/// # Example
///
/// With the instance and body layers it relies on (the instance's policies, the parsed
/// body): under a default policy that forbids standard keys, creating one is refused with 409
/// `KEY_CREATE_IMPORT_ACCESS_ERR` and never reaches the KMS.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// # use kmsgate::body::Body;
/// # let kms = tower::service_fn(|_req: http::Request<Body>| async {
/// #     Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
/// # });
/// use kmsgate::config::PoliciesConfig;
/// use kmsgate::layer::{body::BodyShapeLayer, instance::InstanceLayer, key_access::KeyAccessLayer};
/// use kmsgate::policy::PolicyStore;
/// use tower::{ServiceBuilder, ServiceExt};
///
/// let policies = PoliciesConfig {
///     default: Some(r#"{"metadata": {"collectionType": "application/vnd.ibm.kms.policy+json",
///         "collectionTotal": 1}, "resources": [{"policy_type": "keyCreateImportAccess",
///         "policy_data": {"enabled": true, "attributes": {"create_standard_key": false}}}]}"#
///         .to_owned()),
///     ..PoliciesConfig::default()
/// };
/// let store = PolicyStore::from_config(&policies).unwrap();
/// let service = ServiceBuilder::new()
///     .layer(InstanceLayer::new(store))
///     .layer(BodyShapeLayer::new(1 << 20))
///     .layer(KeyAccessLayer::new())
///     .service(kms);
/// let create = r#"{"metadata": {"collectionType": "application/vnd.ibm.kms.key+json",
///     "collectionTotal": 1}, "resources": [{"type": "application/vnd.ibm.kms.key+json",
///     "name": "k", "extractable": true}]}"#;
/// let request = http::Request::post("/api/v2/keys")
///     .header("bluemix-instance", "a1b2c3d4-0000-4000-8000-000000000001")
///     .body(Body::full(create))
///     .unwrap();
/// let response = service.oneshot(request).await.unwrap();
/// assert_eq!(response.status(), 409);
/// assert_eq!(response.headers()["kmsgate-reason"], "KEY_CREATE_IMPORT_ACCESS_ERR");
/// # }
/// ```
pub type KeyAccessLayer = GuardLayer<KeyAccessCheck>;

/// See the [module docs](self).
pub type KeyAccess<S> = Guard<KeyAccessCheck, S>;

impl KeyAccessLayer {
    /// The layer.
    pub fn new() -> Self {
        GuardLayer::with(KeyAccessCheck)
    }
}

impl Check for KeyAccessCheck {
    fn check(&self, req: &mut Request<Body>) -> Result<(), Rejection> {
        let extensions = req.extensions();
        let route = context::route(req);
        let active = context::policy(extensions);
        let policy = active.and_then(|p| p.model.key_create_import_access.as_ref());
        let Err(refusal) = check(route, extensions.get::<KeyBody>(), policy) else {
            return Ok(());
        };
        let reason = refusal.rejection.reason();
        let ty = PolicyType::KeyCreateImportAccess;
        // A mis-assembled stack (GATEWAY_INTERNAL_ERR) is never shadowed.
        let shadowed = reason == Reason::KeyCreateImportAccess
            && active.is_some_and(|p| !shadow::refuses(extensions, p, ty, reason, refusal.note));
        if shadowed {
            return Ok(());
        }
        if let Some(log) = extensions.get::<Arc<RequestLog>>() {
            log.set_note(refusal.note);
        }
        Err(refusal.rejection)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(
        [
            create_root_key,
            create_standard_key,
            import_root_key,
            import_standard_key,
            enforce_token,
        ]: [bool; 5],
    ) -> KeyCreateImportAccess {
        KeyCreateImportAccess {
            enabled: true,
            create_root_key,
            create_standard_key,
            import_root_key,
            import_standard_key,
            enforce_token,
        }
    }

    const ROOT: KeyBody = KeyBody {
        extractable: false,
        payload: false,
        encrypted_nonce: false,
        iv: false,
    };
    const STANDARD: KeyBody = KeyBody {
        extractable: true,
        ..ROOT
    };
    const ROOT_IMPORT: KeyBody = KeyBody {
        payload: true,
        ..ROOT
    };
    const STANDARD_IMPORT: KeyBody = KeyBody {
        payload: true,
        ..STANDARD
    };
    const ROOT_IMPORT_WITH_TOKEN: KeyBody = KeyBody {
        encrypted_nonce: true,
        iv: true,
        ..ROOT_IMPORT
    };

    fn allowed(route: Route, body: KeyBody, p: [bool; 5]) -> bool {
        check(route, Some(&body), Some(&policy(p))).is_ok()
    }

    #[test]
    fn each_attribute_governs_its_kind() {
        let all = [true, true, true, true, false];
        for (i, body) in [ROOT, STANDARD, ROOT_IMPORT, STANDARD_IMPORT]
            .into_iter()
            .enumerate()
        {
            for route in [Route::KeyCreate, Route::KeyCreateWithPolicyOverrides] {
                assert!(allowed(route, body, all));
                let mut p = all;
                p[i] = false;
                assert!(!allowed(route, body, p), "{body:?} with {p:?}");
                // Switching off the other attributes does not matter.
                let mut others = [false, false, false, false, false];
                others[i] = true;
                assert!(allowed(route, body, others), "{body:?} with {others:?}");
            }
        }
    }

    #[test]
    fn the_reference_refusal() {
        // create_standard_key false, a standard key create (error-messages: KEY_CREATE_IMPORT_ACCESS_ERR).
        let refusal = check(
            Route::KeyCreate,
            Some(&STANDARD),
            Some(&policy([true, false, true, true, true])),
        )
        .unwrap_err();
        let r = refusal.rejection;
        assert_eq!(r.reason().status(), http::StatusCode::CONFLICT);
        assert_eq!(
            r.error_msg(),
            "Conflict: Key could not be created: Please see `reasons` for more details (KEY_CREATE_IMPORT_ACCESS_ERR)"
        );
        assert_eq!(
            r.wire_message(),
            "KeyCreateImportAccess instance policy does not allow this action"
        );
        assert_eq!(refusal.note, "standard key creation not allowed");
    }

    #[test]
    fn enforce_token_needs_nonce_and_iv_on_create_rotate_and_restore() {
        let enforce = [true, true, true, true, true];
        assert!(allowed(Route::KeyCreate, ROOT, enforce));
        assert!(!allowed(Route::KeyCreate, ROOT_IMPORT, enforce));
        assert!(allowed(Route::KeyCreate, ROOT_IMPORT_WITH_TOKEN, enforce));
        let half = KeyBody {
            iv: false,
            ..ROOT_IMPORT_WITH_TOKEN
        };
        assert!(!allowed(Route::KeyCreate, half, enforce));
        // The token does not override a switched-off import attribute.
        assert!(!allowed(
            Route::KeyCreate,
            ROOT_IMPORT_WITH_TOKEN,
            [true, true, false, true, true]
        ));
        for (route, subject) in [
            (Route::KeyRotate, "Key could not be rotated"),
            (Route::KeyRestore, "Key could not be restored"),
        ] {
            assert!(allowed(route, ROOT, enforce), "no material");
            assert!(allowed(route, ROOT_IMPORT_WITH_TOKEN, enforce));
            let r = check(route, Some(&ROOT_IMPORT), Some(&policy(enforce)))
                .unwrap_err()
                .rejection;
            assert!(
                r.error_msg().starts_with(&format!("Conflict: {subject}: ")),
                "{}",
                r.error_msg()
            );
            // Without enforce_token, material alone is fine (import attributes govern creation only).
            assert!(allowed(
                route,
                ROOT_IMPORT,
                [false, false, false, false, false]
            ));
        }
    }

    #[test]
    fn no_policy_disabled_policy_or_no_body_allows() {
        let off = KeyCreateImportAccess {
            enabled: false,
            ..policy([false; 5])
        };
        assert!(check(Route::KeyCreate, Some(&STANDARD), Some(&off)).is_ok());
        assert!(check(Route::KeyCreate, Some(&STANDARD), None).is_ok());
        assert!(check(Route::KeyWrap, None, Some(&policy([false; 5]))).is_ok());
        // A governed route without the body layer's view is refused, not waved through.
        let r = check(Route::KeyCreate, None, Some(&policy([true; 5]))).unwrap_err();
        assert_eq!(r.rejection.reason(), Reason::GatewayInternal);
        // Other routes are not this policy's business.
        assert!(
            check(
                Route::KeyWrap,
                Some(&ROOT_IMPORT),
                Some(&policy([false, false, false, false, true]))
            )
            .is_ok()
        );
    }
}
