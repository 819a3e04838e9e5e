//! The bearer-token layer: refuses bad tokens with Key Protect's codes before anything reaches
//! the KMS, and hands the caller's [`Identity`] to the layers after it.
//!
//! - No `Authorization` header, another scheme, an empty token, not a JWT, no string `sub` →
//!   400 `BEARER_SUB_EXTRACTION_ERR` (the route's operation in `errorMsg`).
//! - A well-formed token that fails verification → 401 `UNAUTHORIZED_ERR` (`errorMsg` only) with
//!   `WWW-Authenticate: Bearer error="invalid_token"`.
//! - Admitted: [`Identity`] goes into the request's context (its subject into the access log).
//!   The `Authorization` header is forwarded unchanged (the KMS checks it too).
//!
//! The access log gets a note naming the failed check, never the token. A token that names an
//! unknown `kid` while a JWKS URL is configured waits for one (rate-limited) refetch of the key
//! set and is decided again; every other decision is synchronous. When `[auth] enabled =
//! false` the layer passes requests straight through.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{HeaderValue, Request, Response, header};
use pin_project_lite::pin_project;
use tokio::sync::oneshot;
use tokio::time::Timeout;

use crate::auth::{Admission, Auth, AuthConfig, Failure, Identity};
use crate::body::Body;
use crate::config::ConfigError;
use crate::context;
use crate::layer::ResponseFuture;
use crate::layer::observe::RequestLog;
use crate::reason::Rejection;
use crate::route::Route;

/// The challenge sent with every 401 of this layer.
pub const INVALID_TOKEN_CHALLENGE: HeaderValue =
    HeaderValue::from_static("Bearer error=\"invalid_token\"");

/// Adds [`Bearer`] to a stack. Cheap to clone.
///
/// # Example
///
/// From an `[auth]` section (here the default, which admits every request), counting into a
/// Prometheus registry.
///
/// ```
/// # use kmsgate::body::Body;
/// # let kms = tower::service_fn(|_req: http::Request<Body>| async {
/// #     Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
/// # });
/// use kmsgate::auth::AuthConfig;
/// use kmsgate::layer::bearer::BearerLayer;
///
/// let registry = prometheus::Registry::new();
/// let bearer = BearerLayer::from_config(&AuthConfig::default(), &registry).unwrap();
/// let service = tower::ServiceBuilder::new().layer(bearer).service(kms);
/// ```
#[derive(Clone, Debug)]
pub struct BearerLayer {
    auth: Option<Arc<Auth>>,
}

impl BearerLayer {
    /// The layer for `[auth]` (a pass-through when `enabled = false`), registering its metrics
    /// in `registry`.
    pub fn from_config(
        config: &AuthConfig,
        registry: &prometheus::Registry,
    ) -> Result<BearerLayer, ConfigError> {
        if !config.enabled {
            return Ok(BearerLayer::disabled());
        }
        Ok(BearerLayer::new(Arc::new(Auth::new(config, registry)?)))
    }

    /// The layer deciding with `auth`.
    pub fn new(auth: Arc<Auth>) -> Self {
        BearerLayer { auth: Some(auth) }
    }

    /// A pass-through layer.
    pub fn disabled() -> Self {
        BearerLayer { auth: None }
    }

    /// The decision maker, when enabled (the gateway starts its JWKS refresher).
    pub fn auth(&self) -> Option<&Arc<Auth>> {
        self.auth.as_ref()
    }
}

impl<S> tower_layer::Layer<S> for BearerLayer {
    type Service = Bearer<S>;
    fn layer(&self, inner: S) -> Bearer<S> {
        Bearer {
            inner,
            auth: self.auth.clone(),
        }
    }
}

/// See the [module docs](self).
#[derive(Debug)]
pub struct Bearer<S> {
    inner: S,
    auth: Option<Arc<Auth>>,
}

impl<S: Clone> Clone for Bearer<S> {
    fn clone(&self) -> Self {
        Bearer {
            inner: self.inner.clone(),
            auth: self.auth.clone(),
        }
    }
}

impl<S> tower_service::Service<Request<Body>> for Bearer<S>
where
    S: tower_service::Service<Request<Body>, Response = Response<Body>> + Clone,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BearerFuture<S, S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let Some(auth) = &self.auth else {
            return BearerFuture::ready(ResponseFuture::inner(self.inner.call(req)));
        };
        match auth.check(req.headers()) {
            Ok((identity, admission)) => {
                admit(auth, &mut req, identity, admission);
                BearerFuture::ready(ResponseFuture::inner(self.inner.call(req)))
            }
            Err(Failure::UnknownKey) => {
                match auth
                    .jwks()
                    .and_then(|j| Some((j.request_refetch()?, j.wait_limit())))
                {
                    Some((refetched, limit)) => {
                        // The ready service goes with the request; a clone stays behind.
                        let clone = self.inner.clone();
                        let inner = std::mem::replace(&mut self.inner, clone);
                        BearerFuture {
                            state: State::Waiting {
                                wait: tokio::time::timeout(limit, refetched),
                                pending: Some((req, inner)),
                                auth: auth.clone(),
                            },
                        }
                    }
                    None => BearerFuture::ready(refuse(auth, &req, Failure::UnknownKey)),
                }
            }
            Err(failure) => BearerFuture::ready(refuse(auth, &req, failure)),
        }
    }
}

/// Lets an admitted request through: the identity into its context (the access log's subject).
fn admit(auth: &Auth, req: &mut Request<Body>, identity: Identity, admission: Admission) {
    auth.record(Ok(admission));
    context::set_identity(req.extensions_mut(), identity);
}

/// The refusal for `failure`: 400 `BEARER_SUB_EXTRACTION_ERR` naming the route's operation, or
/// 401 `UNAUTHORIZED_ERR` with the `invalid_token` challenge.
fn refuse<F>(auth: &Auth, req: &Request<Body>, failure: Failure) -> ResponseFuture<F> {
    auth.record(Err(failure));
    if let Some(log) = req.extensions().get::<Arc<RequestLog>>() {
        log.set_note(failure.note());
    }
    ResponseFuture::response(rejection(
        failure,
        context::recorded_route(req.extensions()),
    ))
}

/// The response for `failure` on `route`.
pub fn rejection(failure: Failure, route: Option<Route>) -> Response<Body> {
    let reason = failure.reason();
    let mut rejection = Rejection::new(reason);
    if let Some(route) = route {
        rejection = rejection.operation(route.operation());
    }
    let mut response = rejection.into_response();
    if response.status() == http::StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, INVALID_TOKEN_CHALLENGE);
    }
    response
}

pin_project! {
    /// The response future of [`Bearer`].
    pub struct BearerFuture<S, F> {
        #[pin]
        state: State<S, F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, F> {
        Ready { #[pin] future: ResponseFuture<F> },
        Waiting {
            #[pin]
            wait: Timeout<oneshot::Receiver<()>>,
            pending: Option<(Request<Body>, S)>,
            auth: Arc<Auth>,
        },
    }
}

impl<S, F> BearerFuture<S, F> {
    fn ready(future: ResponseFuture<F>) -> Self {
        BearerFuture {
            state: State::Ready { future },
        }
    }
}

impl<S, F, E> Future for BearerFuture<S, F>
where
    S: tower_service::Service<Request<Body>, Response = Response<Body>, Error = E, Future = F>,
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let next = match self.as_mut().project().state.project() {
                StateProj::Ready { future } => return future.poll(cx),
                StateProj::Waiting {
                    wait,
                    pending,
                    auth,
                } => {
                    // Refetched, failed, or timed out: decide again with whatever keys there are.
                    let _ = ready!(wait.poll(cx));
                    let Some((mut req, mut inner)) = pending.take() else {
                        return Poll::Ready(Ok(rejection(Failure::UnknownKey, None)));
                    };
                    match auth.check(req.headers()) {
                        Ok((identity, admission)) => {
                            admit(auth, &mut req, identity, admission);
                            ResponseFuture::inner(inner.call(req))
                        }
                        Err(failure) => refuse(auth, &req, failure),
                    }
                }
            };
            self.as_mut()
                .project()
                .state
                .set(State::Ready { future: next });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::task::Waker;

    use super::*;
    use crate::auth::{AuthConfig, HmacKeyConfig};
    use crate::config::Secret;

    #[test]
    fn the_identity_reaches_the_next_layer() {
        let config = AuthConfig {
            enabled: true,
            algorithms: vec![jsonwebtoken::Algorithm::HS256],
            hmac_keys: vec![HmacKeyConfig {
                secret: Some(Secret::new("s3cret")),
                dev: true,
                ..Default::default()
            }],
            ..Default::default()
        };
        let layer = BearerLayer::from_config(&config, &prometheus::Registry::new()).unwrap();
        let token =
            crate::auth::devtoken::mint(&config, "svc-1", std::time::Duration::from_secs(60), true)
                .unwrap();
        let inner = tower::service_fn(|req: Request<Body>| {
            let identity = context::identity(req.extensions()).cloned();
            async move {
                let identity = identity.expect("an Identity in the extensions");
                assert_eq!(&*identity.subject, "svc-1");
                assert!(identity.is_service);
                Ok::<_, Infallible>(Response::new(Body::empty()))
            }
        });
        let mut service = tower_layer::Layer::layer(&layer, inner);
        let req = Request::get("/api/v2/keys")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        let future = tower_service::Service::call(&mut service, req);
        let mut future = std::pin::pin!(future);
        let mut cx = Context::from_waker(Waker::noop());
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(res)) => assert_eq!(res.status(), 200),
            _ => panic!("not answered at once"),
        }
    }

    #[test]
    fn refusals_have_the_right_status_code_and_challenge() {
        let res = rejection(Failure::NoSubject, Some(Route::KeyCreate));
        assert_eq!(res.status(), 400);
        assert_eq!(
            res.headers()[crate::reason::REASON_HEADER],
            "BEARER_SUB_EXTRACTION_ERR"
        );
        assert!(res.headers().get(header::WWW_AUTHENTICATE).is_none());
        let res = rejection(Failure::Expired, Some(Route::KeyCreate));
        assert_eq!(res.status(), 401);
        assert_eq!(
            res.headers()[crate::reason::REASON_HEADER],
            "UNAUTHORIZED_ERR"
        );
        assert_eq!(
            res.headers()[header::WWW_AUTHENTICATE],
            "Bearer error=\"invalid_token\""
        );
    }
}
