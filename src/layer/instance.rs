//! The instance layer: `bluemix-instance` → this instance's compiled policies.
//!
//! One snapshot load per request: the layer looks the instance up in the [`PolicyStore`] and
//! records the `Arc<ActivePolicy>` in the request's context ([`crate::context::policy`]), where
//! the later layers (network, allowed_ip, key_access, …) read it. An instance without its own policies gets
//! the configured default (or no policies) — or, with `policies.unknown_instance = "reject"`,
//! 401 `UNAUTHORIZED_ERR` (no `reasons`, as Key Protect answers an instance the caller may not
//! use); a request without the header counts as an unknown instance.
//!
//! Instance ids are UUIDs, and a Go KMS parses the header as one (`google/uuid` accepts upper
//! case, braces, `urn:uuid:` and no hyphens). So the layer first makes the header canonical:
//! any UUID spelling becomes the lowercase hyphenated form — the policies are looked up by it,
//! and it is what goes upstream. A repeated header, or a value that names several ids
//! (`a, b`) or carries spaces, is refused: 400 `AMBIGUOUS_REQUEST_ERR`.

use std::sync::Arc;

use std::borrow::Cow;

use http::{HeaderValue, Request};

use crate::body::Body;
use crate::canonical::{self, Ambiguity};
use crate::context;
use crate::layer::guard::{Check, Guard, GuardLayer};
use crate::layer::observe::RequestLog;
use crate::layer::refusal;
use crate::policy::{ActivePolicy, PolicyStore};
use crate::reason::{Reason, Rejection};

pub use crate::canonical::BLUEMIX_INSTANCE;

/// The instance step of [`InstanceLayer`]: the store (which a reload may swap underneath).
#[derive(Clone, Debug)]
pub struct InstanceCheck {
    store: PolicyStore,
}

/// Adds [`Instance`] to a stack.
///
/// # Example
///
/// In front of a service, with the policies of `[policies]` (here: none); the layers after it
/// read the request's instance policies from its extensions.
///
/// ```
/// # use kmsgate::body::Body;
/// # let kms = tower::service_fn(|_req: http::Request<Body>| async {
/// #     Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
/// # });
/// use kmsgate::config::PoliciesConfig;
/// use kmsgate::layer::instance::InstanceLayer;
/// use kmsgate::policy::PolicyStore;
///
/// let store = PolicyStore::from_config(&PoliciesConfig::default()).unwrap();
/// let service = tower::ServiceBuilder::new()
///     .layer(InstanceLayer::new(store))
///     .service(kms);
/// ```
pub type InstanceLayer = GuardLayer<InstanceCheck>;

/// See the [module docs](self).
pub type Instance<S> = Guard<InstanceCheck, S>;

impl InstanceLayer {
    /// Looks policies up in `store`.
    pub fn new(store: PolicyStore) -> InstanceLayer {
        GuardLayer::with(InstanceCheck { store })
    }
}

impl Check for InstanceCheck {
    fn check(&self, req: &mut Request<Body>) -> Result<(), Rejection> {
        canonicalize(req).map_err(Ambiguity::rejection)?;
        if let Some(policy) = self.store.find(instance_id(req)) {
            context::set_policy(req.extensions_mut(), policy);
            return Ok(());
        }
        let ext = req.extensions();
        if let Some(log) = ext.get::<Arc<RequestLog>>() {
            log.set_note("instance has no policies (policies.unknown_instance = reject)");
        }
        Err(refusal(Reason::Unauthorized, req))
    }
}

/// Makes the `bluemix-instance` header canonical (see the [module docs](self)).
pub fn canonicalize<B>(req: &mut Request<B>) -> Result<(), Ambiguity> {
    const NAME: &str = "bluemix-instance";
    let mut values = req.headers().get_all(BLUEMIX_INSTANCE).iter();
    let Some(value) = values.next() else {
        return Ok(());
    };
    if values.next().is_some() {
        return Err(Ambiguity::DuplicateHeader(NAME));
    }
    // The common case: an id in its canonical form already.
    if canonical::is_canonical_uuid(value.as_bytes()) {
        return Ok(());
    }
    let text = value
        .to_str()
        .map_err(|_| Ambiguity::BadHeaderValue(NAME))?
        .trim();
    if text.bytes().any(|b| matches!(b, b',' | b' ' | b'\t')) {
        return Err(Ambiguity::BadHeaderValue(NAME));
    }
    if let Some(Cow::Owned(id)) = canonical::instance_id(text) {
        let id = HeaderValue::try_from(id).map_err(|_| Ambiguity::BadHeaderValue(NAME))?;
        req.headers_mut().insert(BLUEMIX_INSTANCE, id);
    }
    Ok(())
}

/// The request's instance id (the trimmed `bluemix-instance` header), if it names one.
pub fn instance_id<B>(req: &Request<B>) -> Option<&str> {
    req.headers()
        .get(BLUEMIX_INSTANCE)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|id| !id.is_empty())
}

/// The policies for the request's instance (the default for an unknown one).
pub fn lookup<B>(store: &PolicyStore, req: &Request<B>) -> Arc<ActivePolicy> {
    store.lookup(instance_id(req))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Snapshot;
    use crate::policy::model::{AllowedNetwork, InstancePolicies, NetworkAccess};

    #[test]
    fn header_selects_the_instance() {
        let model = InstancePolicies {
            allowed_network: Some(AllowedNetwork {
                enabled: true,
                allowed_network: NetworkAccess::PrivateOnly,
            }),
            ..Default::default()
        };
        let store = PolicyStore::new(Snapshot::new([("inst-1".to_owned(), model)], None));
        let req = Request::builder()
            .header("bluemix-instance", "inst-1")
            .body(())
            .unwrap();
        assert!(lookup(&store, &req).private_only);
        let req = Request::builder()
            .header("bluemix-instance", "other")
            .body(())
            .unwrap();
        assert!(!lookup(&store, &req).private_only);
        assert!(!lookup(&store, &Request::new(())).private_only);
    }

    #[test]
    fn the_store_finds_an_instance_in_any_uuid_spelling() {
        let id = "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9";
        let model = InstancePolicies {
            allowed_network: Some(AllowedNetwork {
                enabled: true,
                allowed_network: NetworkAccess::PrivateOnly,
            }),
            ..Default::default()
        };
        // Configured in one spelling, asked for in others: the store is keyed canonically.
        let store = PolicyStore::new(Snapshot::new([(id.to_uppercase(), model)], None));
        for spelling in [id.to_owned(), format!("{{{id}}}"), id.replace('-', "")] {
            let req = Request::builder()
                .header("bluemix-instance", spelling.as_str())
                .body(())
                .unwrap();
            assert!(lookup(&store, &req).private_only, "{spelling}");
        }
    }
}
