//! [`Upstream`], the innermost service, and its future: the request rewritten for the upstream
//! (URI, version, headers), at most `upstream.max_connections` requests at the upstream at once,
//! the timeout, and the response normalised and counted on its way back.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri, Version};
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tower::util::BoxCloneSyncService;

use crate::body::{Body, BodyTap};
use crate::config::{ConfigError, UpstreamConfig};
use crate::context::{self, RequestContext};
use crate::http_client::{ClientSettings, HttpsClient, error_chain, https_client};
use crate::metrics::Metrics;
use crate::reason::{Operation, Reason, Rejection};

use super::headers::{forwarded_request_headers, strip_hop_by_hop, upstream_host};
use super::inspect::{ErrorInspector, INSPECT_LIMIT, envelope_codes};

/// A backend served in-process (the embedded dev KMS): any cloneable service that answers
/// every request.
pub type EmbeddedService = BoxCloneSyncService<Request<Body>, Response<Body>, Infallible>;

/// Marks a response that came from the upstream (as opposed to the gateway's own), when the
/// request has no [`RequestContext`] to record it in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FromUpstream;

/// The innermost service: forwards to the configured upstream.
#[derive(Clone)]
pub struct Upstream {
    target: Target,
    metrics: Metrics,
}

#[derive(Clone)]
enum Target {
    Remote(Arc<Remote>),
    Embedded(EmbeddedService),
}

struct Remote {
    client: HttpsClient,
    scheme: Scheme,
    authority: Authority,
    /// The `Host` header every request to the upstream carries.
    host: HeaderValue,
    /// The upstream URL's path without a trailing `/` ("" for none).
    base_path: String,
    request_timeout: Duration,
    /// `upstream.max_connections` permits: one per request at the upstream.
    slots: Arc<Semaphore>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.target {
            Target::Remote(r) => {
                write!(f, "Upstream({}://{}{})", r.scheme, r.authority, r.base_path)
            }
            Target::Embedded(_) => f.write_str("Upstream(embedded)"),
        }
    }
}

impl Upstream {
    /// Builds the remote upstream `upstream.url` names. `"embedded"` names no remote: the
    /// gateway plugs the dev KMS in with [`Upstream::embedded`].
    pub fn new(config: &UpstreamConfig, metrics: Metrics) -> Result<Upstream, ConfigError> {
        if config.is_embedded() {
            return Err(ConfigError::invalid(
                "upstream.url",
                "\"embedded\" is served in-process: use Upstream::embedded",
            ));
        }
        let uri: Uri = config
            .url
            .parse()
            .map_err(|e| ConfigError::invalid("upstream.url", format!("{:?}: {e}", config.url)))?;
        let (Some(scheme), Some(authority)) = (uri.scheme().cloned(), uri.authority().cloned())
        else {
            return Err(ConfigError::invalid(
                "upstream.url",
                "needs a scheme and a host",
            ));
        };
        let base_path = uri.path().trim_end_matches('/').to_owned();
        let host = upstream_host(&uri).ok_or_else(|| {
            ConfigError::invalid("upstream.url", "the host is not a valid Host header")
        })?;

        let client = https_client(&ClientSettings {
            connect_timeout: config.connect_timeout,
            ca_file: config.ca_file.as_deref(),
            ca_file_key: "upstream.ca_file",
            pool_idle_timeout: config.pool_idle_timeout,
            pool_max_idle: config.pool_max_idle,
        })?;
        let remote = Remote {
            client,
            scheme,
            authority,
            host,
            base_path,
            request_timeout: config.request_timeout,
            slots: Arc::new(Semaphore::new(config.max_connections)),
        };
        Ok(Upstream {
            target: Target::Remote(Arc::new(remote)),
            metrics,
        })
    }

    /// An upstream served in-process by `service` (the dev KMS, for `upstream.url =
    /// "embedded"` and tests). Its error envelopes are counted like a remote upstream's.
    pub fn embedded<S>(service: S, metrics: Metrics) -> Upstream
    where
        S: tower_service::Service<Request<Body>, Response = Response<Body>, Error = Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        Upstream {
            target: Target::Embedded(BoxCloneSyncService::new(service)),
            metrics,
        }
    }
}

impl tower_service::Service<Request<Body>> for Upstream {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = UpstreamFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Body>) -> UpstreamFuture {
        let version = req.version();
        let operation = context::route(&req).operation();
        let context = req.extensions().get::<Arc<RequestContext>>().cloned();
        let start = Instant::now();
        let metrics = self.metrics.clone();
        match &mut self.target {
            Target::Embedded(service) => {
                let future = tower_service::Service::call(service, req);
                UpstreamFuture {
                    kind: Kind::Embedded { future },
                    version,
                    operation,
                    context,
                    start,
                    metrics,
                }
            }
            Target::Remote(remote) => {
                if let Err(rejection) = remote.prepare(&mut req) {
                    return UpstreamFuture {
                        kind: Kind::Failed {
                            rejection: Some(rejection),
                        },
                        version,
                        operation,
                        context,
                        start,
                        metrics,
                    };
                }
                let future =
                    tokio::time::timeout(remote.request_timeout, remote.send(req, &metrics));
                UpstreamFuture {
                    kind: Kind::Remote { future },
                    version,
                    operation,
                    context,
                    start,
                    metrics,
                }
            }
        }
    }
}

/// One of the `upstream.max_connections` slots. A request to the upstream holds one until its
/// response body is dropped: as long as it keeps a pooled connection busy.
type UpstreamSlot = OwnedSemaphorePermit;

/// What a request to the upstream ends with: the response (or why there is none), and the slot
/// it holds.
type Sent = (
    Result<Response<Incoming>, hyper_util::client::legacy::Error>,
    Option<UpstreamSlot>,
);

pin_project! {
    /// Sends a request to the upstream once it has a slot.
    #[project = CallProj]
    enum Call {
        /// A slot was free: the request is on its way.
        Sending {
            #[pin]
            future: hyper_util::client::legacy::ResponseFuture,
            slot: Option<UpstreamSlot>,
        },
        /// Every slot was taken: wait for one, then send (boxed: the uncommon case).
        Waiting { future: Pin<Box<dyn Future<Output = Sent> + Send>> },
    }
}

impl Future for Call {
    type Output = Sent;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Sent> {
        match self.project() {
            CallProj::Sending { future, slot } => match future.poll(cx) {
                Poll::Ready(result) => Poll::Ready((result, slot.take())),
                Poll::Pending => Poll::Pending,
            },
            CallProj::Waiting { future } => future.as_mut().poll(cx),
        }
    }
}

impl Remote {
    /// Sends `req` as soon as a slot is free (a wait is counted in `metrics`).
    fn send(self: &Arc<Self>, req: Request<Body>, metrics: &Metrics) -> Call {
        match self.slots.clone().try_acquire_owned() {
            Ok(permit) => Call::Sending {
                future: self.client.request(req),
                slot: Some(permit),
            },
            Err(_) => {
                metrics.upstream_slot_wait();
                let remote = self.clone();
                Call::Waiting {
                    future: Box::pin(async move {
                        // The semaphore is never closed: acquiring only waits.
                        let slot = remote.slots.clone().acquire_owned().await.ok();
                        (remote.client.request(req).await, slot)
                    }),
                }
            }
        }
    }

    /// Rewrites a client request into the upstream request, in place.
    fn prepare(&self, req: &mut Request<Body>) -> Result<(), Rejection> {
        // The original path and query are reused as they are (a reference count, no copy);
        // only an upstream base path makes a new one.
        let mut parts = std::mem::take(req.uri_mut()).into_parts();
        if !self.base_path.is_empty() {
            let original = parts
                .path_and_query
                .as_ref()
                .map_or("/", PathAndQuery::as_str);
            let joined = format!("{}{original}", self.base_path);
            parts.path_and_query = Some(
                PathAndQuery::from_maybe_shared(Bytes::from(joined)).map_err(|_| {
                    Rejection::new(Reason::GatewayInternal)
                        .detail("the request path cannot be forwarded")
                })?,
            );
        } else if parts.path_and_query.is_none() {
            parts.path_and_query = Some(PathAndQuery::from_static("/"));
        }
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        *req.uri_mut() = Uri::from_parts(parts).map_err(|_| {
            Rejection::new(Reason::GatewayInternal).detail("the upstream URI cannot be built")
        })?;
        *req.version_mut() = Version::HTTP_11;

        let tls = context::conn(req.extensions()).is_some_and(|c| c.tls);
        let client = context::client_ip(req.extensions());
        forwarded_request_headers(req.headers_mut(), &self.host, client, tls);
        Ok(())
    }
}

pin_project! {
    /// The response future of [`Upstream`].
    pub struct UpstreamFuture {
        #[pin]
        kind: Kind,
        version: Version,
        operation: Operation,
        context: Option<Arc<RequestContext>>,
        start: Instant,
        metrics: Metrics,
    }
}

type EmbeddedFuture = <EmbeddedService as tower_service::Service<Request<Body>>>::Future;

pin_project! {
    #[project = KindProj]
    enum Kind {
        Remote { #[pin] future: tokio::time::Timeout<Call> },
        Embedded { #[pin] future: EmbeddedFuture },
        Failed { rejection: Option<Rejection> },
    }
}

impl Future for UpstreamFuture {
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = match this.kind.project() {
            KindProj::Embedded { future } => match future.poll(cx) {
                Poll::Ready(Ok(res)) => {
                    // The dev KMS answers from memory: count its envelope's codes directly.
                    if res.status().as_u16() >= 400 {
                        let codes = res
                            .body()
                            .as_bytes()
                            .map(envelope_codes)
                            .unwrap_or_default();
                        for code in codes {
                            this.metrics.upstream_reason(&code);
                        }
                    }
                    res
                }
                Poll::Ready(Err(never)) => match never {},
                Poll::Pending => return Poll::Pending,
            },
            KindProj::Failed { rejection } => {
                let rejection = rejection
                    .take()
                    .unwrap_or_else(|| Rejection::new(Reason::GatewayInternal));
                return Poll::Ready(Ok(rejection.operation(*this.operation).into_response()));
            }
            KindProj::Remote { future } => match future.poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(_elapsed)) => {
                    tracing::warn!("upstream did not answer in time");
                    let rejection = Rejection::new(Reason::UpstreamTimeout);
                    return Poll::Ready(Ok(rejection.operation(*this.operation).into_response()));
                }
                Poll::Ready(Ok((Err(error), _slot))) => {
                    tracing::warn!(error = %error_chain(&error), "upstream request failed");
                    let rejection = Rejection::new(Reason::UpstreamUnavailable);
                    return Poll::Ready(Ok(rejection.operation(*this.operation).into_response()));
                }
                Poll::Ready(Ok((Ok(res), slot))) => {
                    let (parts, incoming) = res.into_parts();
                    let inspect = parts.status.as_u16() >= 400
                        && incoming_len(&parts.headers)
                            .is_none_or(|len| len <= INSPECT_LIMIT as u64);
                    let inspector = inspect.then(|| {
                        Box::new(ErrorInspector::new(this.metrics.clone())) as Box<dyn BodyTap>
                    });
                    Response::from_parts(parts, Body::upstream(incoming, inspector, slot))
                }
            },
        };
        Poll::Ready(Ok(finish_response(
            response,
            *this.version,
            this.start.elapsed().as_secs_f64(),
            this.metrics,
            this.context.as_deref(),
        )))
    }
}

/// Normalises an upstream response for the client and counts it.
fn finish_response(
    mut res: Response<Body>,
    version: Version,
    seconds: f64,
    metrics: &Metrics,
    context: Option<&RequestContext>,
) -> Response<Body> {
    metrics.upstream_response(res.status(), seconds);
    strip_hop_by_hop(res.headers_mut());
    *res.version_mut() = version;
    match context {
        Some(context) => context.set_from_upstream(),
        None => {
            res.extensions_mut().insert(FromUpstream);
        }
    }
    res
}

fn incoming_len(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}
