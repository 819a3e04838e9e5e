//! The policy API layer: who answers `GET`/`PUT /api/v2/instance/policies` (`policies.api`).
//!
//! - `passthrough` (default): both are forwarded (the body layer has shape-checked the PUT).
//! - `mirror`: the PUT is forwarded; when the backend answers 2xx, the new policies are
//!   applied for that instance at once and persisted to its file in `policies.dir`.
//! - `own`: the gateway answers both itself from its store: `PUT` → 204 after persisting, `GET`
//!   → Key Protect's document (`?policy=` selects one type) with `createdBy`/`updatedBy` from
//!   the token subject (the bearer layer's
//!   [`Identity`]; `unknown` without one).
//!
//! It sits after the body layer and reads the parsed PUT ([`PolicyPut`]) from the request
//! extensions; it never parses a body itself. Updates follow Key Protect: the policies named
//! replace the stored ones whole (an allowedIP list is replaced; keyCreateImportAccess
//! attributes left out take their defaults; a disabled policy's attributes reset).
//!
//! Persisting is a few small synchronous file operations (write, fsync, rename, fsync) on the
//! calling worker; policy writes are rare, and the request waits for them anyway.
//!
//! With a shared store (`[policies.etcd]`) a PUT is written there instead of a file (see
//! `policy::etcd`): in `own` mode the client gets 204 once etcd has committed it, in `mirror`
//! mode the backend's answer once etcd has committed it; etcd unreachable → 503
//! `POLICY_STORE_UNAVAILABLE_ERR`, nothing applied by the gateway (in `mirror` mode the backend
//! already has it: the client retries the PUT, which is idempotent).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;

use super::ResponseFuture;
use super::body::PolicyPut;
use super::instance::instance_id;
use crate::body::Body;
use crate::context;
use crate::policy::PolicyApiMode;
use crate::policy::backend::{PolicyBackend, WriteError, WriteFuture};
use crate::policy::model::Policy;
use crate::policy::parse::parse_policy_query;
use crate::policy::reload::{ApplyError, PolicySource};
use crate::policy::render::document_response;
use crate::reason::{Operation, Reason, Rejection};
use crate::route::{Route, query_param};

/// Who a policy change is attributed to when the request carries no token subject.
pub const UNKNOWN_SUBJECT: &str = "unknown";

/// Adds [`PolicyApi`] to a stack.
///
/// # Example
///
/// With the policy source the instance layer's store is fed from (it applies, persists or
/// answers instance-policy requests as `policies.api` says).
///
/// ```
/// # use kmsgate::body::Body;
/// # let kms = tower::service_fn(|_req: http::Request<Body>| async {
/// #     Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
/// # });
/// use std::sync::Arc;
///
/// use kmsgate::config::PoliciesConfig;
/// use kmsgate::layer::{instance::InstanceLayer, policy_api::PolicyApiLayer};
/// use kmsgate::metrics::Metrics;
/// use kmsgate::policy::{PolicyStore, reload::PolicySource};
///
/// let config = PoliciesConfig::default();
/// let store = PolicyStore::from_config(&config).unwrap();
/// let source = Arc::new(PolicySource::new(config, store.clone(), &Metrics::new()));
/// let service = tower::ServiceBuilder::new()
///     .layer(InstanceLayer::new(store))
///     .layer(PolicyApiLayer::new(source))
///     .service(kms);
/// ```
#[derive(Clone, Debug)]
pub struct PolicyApiLayer {
    source: Arc<PolicySource>,
}

impl PolicyApiLayer {
    /// Answers or mirrors policy requests as `source`'s `policies.api` says.
    pub fn new(source: Arc<PolicySource>) -> PolicyApiLayer {
        PolicyApiLayer { source }
    }
}

impl<S> tower_layer::Layer<S> for PolicyApiLayer {
    type Service = PolicyApi<S>;
    fn layer(&self, inner: S) -> PolicyApi<S> {
        PolicyApi {
            inner,
            source: self.source.clone(),
        }
    }
}

/// See the [module docs](self).
#[derive(Clone, Debug)]
pub struct PolicyApi<S> {
    inner: S,
    source: Arc<PolicySource>,
}

/// A PUT to apply once the backend has accepted it (mirror mode).
#[derive(Debug)]
struct Mirror {
    source: Arc<PolicySource>,
    instance: String,
    policies: Vec<Policy>,
    subject: String,
}

/// A policy write through the shared store, resolving to the client's answer.
type StoreWrite = Pin<Box<dyn Future<Output = Response<Body>> + Send>>;

/// Answers `done` once `write` has committed; 503 `POLICY_STORE_UNAVAILABLE_ERR` when the store
/// could not take it. In mirror mode (`mirrored`) an instance id the store cannot hold is
/// logged and `done` answered (the backend has the policy), as with files.
fn store_write(
    write: WriteFuture,
    instance: String,
    done: Response<Body>,
    mirrored: bool,
) -> StoreWrite {
    let operation = Operation::INSTANCE_POLICY_CREATE;
    Box::pin(async move {
        match write.await {
            Ok(()) => done,
            Err(WriteError::BadInstance) if mirrored => {
                tracing::error!(instance = %instance, "mirror: the instance id cannot name a shared policy document; not applied");
                done
            }
            Err(WriteError::BadInstance) => Rejection::new(Reason::Unauthorized)
                .operation(operation)
                .into_response(),
            Err(e) => {
                tracing::error!(instance = %instance, error = %e, "policy update not written to the shared store");
                Rejection::new(Reason::PolicyStoreUnavailable)
                    .operation(operation)
                    .into_response()
            }
        }
    })
}

fn no_content() -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

impl Mirror {
    /// Applies the update the backend accepted with `response`: through the shared store, or
    /// to the file and the snapshot on the blocking pool; the backend's answer goes back once
    /// the write is done.
    fn apply(self, response: Response<Body>) -> StoreWrite {
        if let Some(backend) = self.source.backend() {
            let write = backend.write(&self.instance, self.policies, &self.subject);
            return store_write(write, self.instance, response, true);
        }
        let write = file_write(
            self.source,
            self.instance,
            self.policies,
            self.subject,
            true,
        );
        Box::pin(async move {
            write.await;
            response
        })
    }
}

pin_project! {
    /// The response future of [`PolicyApi`].
    pub struct PolicyApiFuture<F> {
        #[pin]
        inner: ResponseFuture<F>,
        mirror: Option<Mirror>,
        // A write through the shared store; when set, it answers (`inner` is done or unused).
        write: Option<StoreWrite>,
    }
}

impl<F, E> Future for PolicyApiFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            if let Some(write) = this.write.as_mut() {
                let response = ready!(write.as_mut().poll(cx));
                *this.write = None;
                return Poll::Ready(Ok(response));
            }
            let result = ready!(this.inner.as_mut().poll(cx));
            match (result, this.mirror.take()) {
                (Ok(response), Some(mirror)) if response.status().is_success() => {
                    *this.write = Some(mirror.apply(response));
                }
                (result, _) => return Poll::Ready(result),
            }
        }
    }
}

/// The caller, as the bearer layer identified it (`unknown` without a token).
fn subject(req: &Request<Body>) -> String {
    context::identity(req.extensions())
        .map(|identity| identity.subject.to_string())
        .unwrap_or_else(|| UNKNOWN_SUBJECT.to_owned())
}

/// What a policy update needs from the request: the instance and the parsed PUT.
fn update(req: &Request<Body>, operation: Operation) -> Result<(String, Vec<Policy>), Rejection> {
    let instance = instance_id(req)
        .ok_or_else(|| Rejection::new(Reason::Unauthorized).operation(operation))?;
    let put = req
        .extensions()
        .get::<PolicyPut>()
        .ok_or_else(|| Rejection::new(Reason::GatewayInternal).operation(operation))?;
    Ok((instance.to_owned(), put.0.clone()))
}

/// `GET /api/v2/instance/policies[?policy=]` answered from the store (own mode).
pub fn own_get(req: &Request<Body>) -> Result<Response<Body>, Rejection> {
    let operation = Operation::INSTANCE_POLICY_RETRIEVE;
    if instance_id(req).is_none() {
        return Err(Rejection::new(Reason::Unauthorized).operation(operation));
    }
    let only = query_param(req.uri().query(), "policy")
        .map(parse_policy_query)
        .transpose()?;
    let records = context::policy(req.extensions())
        .map(|p| p.records())
        .unwrap_or_default();
    Ok(document_response(&records, only))
}

/// `PUT /api/v2/instance/policies[?policy=]` applied and persisted by the gateway (own mode):
/// 204 once the file is written (on the blocking pool).
fn own_put<F>(
    source: &Arc<PolicySource>,
    req: &Request<Body>,
) -> Result<PolicyApiFuture<F>, Rejection> {
    let (instance, policies) = update(req, Operation::INSTANCE_POLICY_CREATE)?;
    let write = file_write(source.clone(), instance, policies, subject(req), false);
    Ok(PolicyApiFuture {
        // Never polled: the write answers.
        inner: ResponseFuture::response(no_content()),
        mirror: None,
        write: Some(write),
    })
}

/// Applies a policy update to `policies.dir` and the snapshot on the blocking pool (the file is
/// written, `fsync`ed and renamed, and its directory `fsync`ed: no runtime worker waits on the
/// disk). Resolves to 204; in own mode a failure is the client's answer, in mirror mode
/// (`mirrored`: the backend has already accepted the update) it is logged and the update is
/// still enforced in memory until the next reload.
fn file_write(
    source: Arc<PolicySource>,
    instance: String,
    policies: Vec<Policy>,
    subject: String,
    mirrored: bool,
) -> StoreWrite {
    let operation = Operation::INSTANCE_POLICY_CREATE;
    Box::pin(async move {
        let id = instance.clone();
        let applied =
            tokio::task::spawn_blocking(move || source.apply(&id, policies, &subject, mirrored))
                .await;
        let error = match applied {
            Ok(Ok(())) => return no_content(),
            Ok(Err(ApplyError::BadInstance)) if !mirrored => {
                return Rejection::new(Reason::Unauthorized)
                    .operation(operation)
                    .into_response();
            }
            Ok(Err(e)) => e.to_string(),
            Err(join) => join.to_string(),
        };
        if mirrored {
            tracing::error!(instance = %instance, error = %error, "mirror: the backend accepted a policy update the gateway could not persist");
            return no_content();
        }
        tracing::error!(instance = %instance, error = %error, "own: policy update not persisted");
        Rejection::new(Reason::GatewayInternal)
            .operation(operation)
            .into_response()
    })
}

/// `PUT /api/v2/instance/policies` written through the shared store (own mode): 204 once it
/// has committed.
fn own_put_shared<F>(
    backend: &dyn PolicyBackend,
    req: &Request<Body>,
) -> Result<PolicyApiFuture<F>, Rejection> {
    let (instance, policies) = update(req, Operation::INSTANCE_POLICY_CREATE)?;
    let write = backend.write(&instance, policies, &subject(req));
    Ok(PolicyApiFuture {
        // Never polled: the write answers.
        inner: ResponseFuture::response(no_content()),
        mirror: None,
        write: Some(store_write(write, instance, no_content(), false)),
    })
}

impl<S> tower_service::Service<Request<Body>> for PolicyApi<S>
where
    S: tower_service::Service<Request<Body>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = PolicyApiFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let route = context::recorded_route(req.extensions());
        let answered = |result: Result<Response<Body>, Rejection>| PolicyApiFuture {
            inner: match result {
                Ok(response) => ResponseFuture::response(response),
                Err(rejection) => ResponseFuture::refused(rejection),
            },
            mirror: None,
            write: None,
        };
        let mode = match route {
            Some(Route::InstancePoliciesGet | Route::InstancePoliciesPut) => self.source.api(),
            _ => PolicyApiMode::Passthrough,
        };
        match (mode, route) {
            (PolicyApiMode::Own, Some(Route::InstancePoliciesGet)) => answered(own_get(&req)),
            (PolicyApiMode::Own, Some(Route::InstancePoliciesPut)) => match self.source.backend() {
                Some(backend) => own_put_shared(backend.as_ref(), &req)
                    .unwrap_or_else(|rejection| answered(Err(rejection))),
                None => {
                    own_put(&self.source, &req).unwrap_or_else(|rejection| answered(Err(rejection)))
                }
            },
            (PolicyApiMode::Mirror, Some(Route::InstancePoliciesPut)) => {
                match update(&req, Operation::INSTANCE_POLICY_CREATE) {
                    Ok((instance, policies)) => PolicyApiFuture {
                        mirror: Some(Mirror {
                            source: self.source.clone(),
                            instance,
                            policies,
                            subject: subject(&req),
                        }),
                        inner: ResponseFuture::inner(self.inner.call(req)),
                        write: None,
                    },
                    Err(rejection) => answered(Err(rejection)),
                }
            }
            _ => PolicyApiFuture {
                inner: ResponseFuture::inner(self.inner.call(req)),
                mirror: None,
                write: None,
            },
        }
    }
}
