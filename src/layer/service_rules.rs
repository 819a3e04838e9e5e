//! The service_rules layer: Key Protect's service-to-service rules, decided on the caller's
//! [`Identity`] (put in the request by the bearer layer, from the verified token — or, with
//! `auth.mode = "decode-only"`, the decoded one).
//!
//! - **Registration writes are for services only.** Creating, replacing, updating or deleting a
//!   registration (`POST`/`PUT`/`PATCH`/`DELETE /api/v2/keys/{id}/registrations/{crn}`, and the
//!   action-style `POST /api/v2/keys/{id}/registrations?action=deactivate`) by a caller that is
//!   not a service → 403 `SERVICE_ONLY_ERR` ("This action can only be done by a service
//!   (service to service)").
//! - **A service does not delete keys.** `DELETE /api/v2/keys/{id}` (by id or alias, with or
//!   without `force`) and `DELETE /api/v2/keys/{id}/purge` by a service → 403
//!   `RESOURCE_OWNER_ERR` ("The resource(s) queried does not belong to the service"). Key
//!   Protect has no action-style form of either (`?action=` names no deletion;
//!   `setKeyForDeletion` only authorizes one, and is allowed).
//!
//! The `errorMsg` names the operation ("Forbidden: Key could not be deleted. Please see
//! `reasons` for more details."; "Registration could not be created", "… replaced", "…
//! updated", "… deleted" and "Action could not be performed on registration" for the
//! registration writes, whose wording Key Protect does not document).
//!
//! `auth.service_rules` (default `enforce`): `shadow` decides and records the would-be refusal
//! (`kmsgate_shadow_rejections_total{code}`, the access log's `shadow=`, a `kmsgate::shadow` log
//! line) and forwards; `off` decides nothing. A request without an identity (`auth.enabled =
//! false`) is not decided either: who calls is unknown, and the KMS keeps its own rules.
//!
//! # Example
//!
//! ```
//! use kmsgate::auth::ServiceRules;
//! use kmsgate::layer::service_rules::ServiceRulesLayer;
//! use tower_layer::Layer;
//!
//! # #[derive(Clone)] struct Upstream;
//! let layer = ServiceRulesLayer::new(ServiceRules::Enforce);
//! let _service = layer.layer(Upstream);
//! ```

use std::sync::Arc;

use http::Request;

use crate::auth::{Identity, ServiceRules};
use crate::body::Body;
use crate::context;
use crate::layer::guard::{Check, Guard, GuardLayer};
use crate::layer::observe::RequestLog;
use crate::layer::shadow;
use crate::reason::{Reason, Rejection};
use crate::route::Route;

/// The name shadowed refusals of this layer are logged under.
pub const RULE: &str = "service_rules";

/// A service-to-service refusal: the rejection, and a fixed phrase for the access log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// What the client gets.
    pub rejection: Rejection,
    /// Why, for the access log (never request data).
    pub note: &'static str,
}

/// Decides `route` for the caller `identity` (`None`: no identity, nothing decided).
pub fn check(route: Route, identity: Option<&Identity>) -> Result<(), Refusal> {
    let Some(identity) = identity else {
        return Ok(());
    };
    let (reason, note) = if route.is_registration_write() && !identity.is_service {
        (
            Reason::ServiceOnly,
            "service rules: registration write by a user",
        )
    } else if matches!(route, Route::KeyDelete | Route::KeyPurge) && identity.is_service {
        (
            Reason::ResourceOwner,
            "service rules: key deletion by a service",
        )
    } else {
        return Ok(());
    };
    Err(Refusal {
        rejection: Rejection::new(reason).operation(route.operation()),
        note,
    })
}

/// The check of [`ServiceRulesLayer`]: the mode of `auth.service_rules`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ServiceRulesCheck {
    mode: ServiceRules,
}

/// Adds [`ServiceRulesGuard`] to a stack.
pub type ServiceRulesLayer = GuardLayer<ServiceRulesCheck>;

/// See the [module docs](self).
pub type ServiceRulesGuard<S> = Guard<ServiceRulesCheck, S>;

impl ServiceRulesLayer {
    /// The layer, in `mode` (`auth.service_rules`).
    pub fn new(mode: ServiceRules) -> Self {
        GuardLayer::with(ServiceRulesCheck { mode })
    }
}

impl Check for ServiceRulesCheck {
    fn check(&self, req: &mut Request<Body>) -> Result<(), Rejection> {
        if self.mode == ServiceRules::Off {
            return Ok(());
        }
        let extensions = req.extensions();
        let Err(Refusal { rejection, note }) =
            check(context::route(req), context::identity(extensions))
        else {
            return Ok(());
        };
        if self.mode == ServiceRules::Shadow {
            let instance = crate::layer::instance::instance_id(req);
            shadow::record(extensions, RULE, rejection.reason(), instance, note);
            return Ok(());
        }
        let log = extensions.get::<Arc<RequestLog>>();
        log.inspect(|log| log.set_note(note));
        Err(rejection)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: fn() -> Identity = || Identity::new("alice", false);
    const SERVICE: fn() -> Identity = || Identity::new("ServiceId-cos", true);

    #[test]
    fn registration_writes_are_for_services() {
        for route in [
            Route::RegistrationCreate,
            Route::RegistrationReplace,
            Route::RegistrationUpdate,
            Route::RegistrationDelete,
            Route::RegistrationAction,
        ] {
            let refusal = check(route, Some(&USER())).unwrap_err();
            assert_eq!(refusal.rejection.reason(), Reason::ServiceOnly);
            assert!(check(route, Some(&SERVICE())).is_ok(), "{route:?}");
        }
        assert!(check(Route::Registrations, Some(&USER())).is_ok());
    }

    #[test]
    fn services_do_not_delete_keys() {
        for (route, subject) in [
            (Route::KeyDelete, "Forbidden: Key could not be deleted. "),
            (Route::KeyPurge, "Forbidden: Key could not be purged. "),
        ] {
            let r = check(route, Some(&SERVICE())).unwrap_err().rejection;
            assert_eq!(r.reason(), Reason::ResourceOwner);
            assert!(r.error_msg().starts_with(subject), "{}", r.error_msg());
            assert_eq!(
                r.wire_message(),
                "The resource(s) queried does not belong to the service"
            );
            assert!(check(route, Some(&USER())).is_ok());
        }
        // Authorizing a deletion is not deleting.
        assert!(check(Route::KeySetForDeletion, Some(&SERVICE())).is_ok());
    }

    #[test]
    fn no_identity_decides_nothing() {
        for route in Route::ALL {
            assert!(check(*route, None).is_ok(), "{route:?}");
        }
    }

    #[test]
    fn the_registration_wording() {
        let r = check(Route::RegistrationCreate, Some(&USER()))
            .unwrap_err()
            .rejection;
        assert_eq!(
            r.error_msg(),
            "Forbidden: Registration could not be created. Please see `reasons` for more details."
        );
        assert_eq!(
            r.wire_message(),
            "This action can only be done by a service (service to service)"
        );
    }
}
