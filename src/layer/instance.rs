//! The instance layer: `bluemix-instance` → this instance's compiled policies.
//!
//! One snapshot load per request: the layer looks the instance up in the [`PolicyStore`] and
//! inserts the `Arc<ActivePolicy>` into the request extensions, where the later layers
//! (network, allowed_ip, key_access, …) read it. An instance without its own policies gets
//! the configured default (or no policies).

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderName, Request, Response};

use crate::body::Body;
use crate::layer::ResponseFuture;
use crate::policy::{ActivePolicy, PolicyStore};

/// The header that names the Key Protect instance.
pub const BLUEMIX_INSTANCE: HeaderName = HeaderName::from_static("bluemix-instance");

/// Adds [`Instance`] to a stack.
#[derive(Clone, Debug)]
pub struct InstanceLayer {
    store: PolicyStore,
}

impl InstanceLayer {
    /// Looks policies up in `store` (which a reload may swap underneath).
    pub fn new(store: PolicyStore) -> InstanceLayer {
        InstanceLayer { store }
    }
}

impl<S> tower_layer::Layer<S> for InstanceLayer {
    type Service = Instance<S>;
    fn layer(&self, inner: S) -> Instance<S> {
        Instance {
            inner,
            store: self.store.clone(),
        }
    }
}

/// See the [module docs](self).
#[derive(Clone, Debug)]
pub struct Instance<S> {
    inner: S,
    store: PolicyStore,
}

/// The policies for the request's instance.
pub fn lookup<B>(store: &PolicyStore, req: &Request<B>) -> Arc<ActivePolicy> {
    let instance = req
        .headers()
        .get(BLUEMIX_INSTANCE)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    store.lookup(instance)
}

impl<S> tower_service::Service<Request<Body>> for Instance<S>
where
    S: tower_service::Service<Request<Body>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let policy = lookup(&self.store, &req);
        req.extensions_mut().insert(policy);
        ResponseFuture::inner(self.inner.call(req))
    }
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
}
