//! The upstream: a pooled HTTP/HTTPS client to the KMS, or the embedded dev KMS in-process.
//!
//! What the proxy does to a request: the URI becomes the upstream's (scheme, authority, base
//! path + the original path and query); the version becomes HTTP/1.1 (the pool is HTTP/1);
//! hop-by-hop headers go; `Host` is the upstream's; `X-Forwarded-For` is *set* (never appended)
//! to the client address and `X-Forwarded-Proto` to the client's scheme. The body streams
//! through unchanged. To a response: hop-by-hop headers go and the version becomes the
//! client's. An upstream error body (≤ 64 KiB) is watched while it streams to the client, and the
//! reason codes of its Key Protect envelope are counted.
//!
//! At most `upstream.max_connections` requests are at the upstream at once: each holds an
//! [`UpstreamSlot`] from the moment it is sent until its response body is dropped, which is as
//! long as it occupies a pooled connection. Without the bound, every concurrent client request
//! that finds no idle connection opens a new one (1,000 clients → about 1,000 upstream
//! connections, each with hyper's buffers and connection task), although the upstream answers
//! no faster for it. A request that finds every slot taken waits for one, within
//! `upstream.request_timeout`.
//!
//! Failures answer with the gateway's codes: `UPSTREAM_UNAVAILABLE_ERR` (502) when no answer
//! could be had, `UPSTREAM_TIMEOUT_ERR` (504) after `upstream.request_timeout`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use pin_project_lite::pin_project;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::body::Body;
use crate::config::{ConfigError, UpstreamConfig};
use crate::conn::{ClientAddr, ConnInfo};
use crate::devkms::DevKms;
use crate::metrics::Metrics;
use crate::reason::{Operation, Reason, Rejection};
use crate::route::Route;

/// Error bodies up to this size are inspected for reason codes.
pub const INSPECT_LIMIT: usize = 64 * 1024;

/// The gateway's own pooled HTTP/HTTPS client (for the upstream and the JWKS fetcher).
pub type HttpsClient = Client<HttpsConnector<HttpConnector>, Body>;

/// How to build an [`HttpsClient`].
#[derive(Clone, Copy, Debug)]
pub struct ClientSettings<'a> {
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// PEM CA bundle; the system roots when absent.
    pub ca_file: Option<&'a std::path::Path>,
    /// The config key of `ca_file`, for error messages.
    pub ca_file_key: &'static str,
    /// Idle pooled connections are closed after this time.
    pub pool_idle_timeout: Duration,
    /// At most this many idle connections per host.
    pub pool_max_idle: usize,
}

/// Builds a pooled HTTP/1.1 client for `http://` and `https://` URLs (rustls, TCP_NODELAY).
pub fn https_client(settings: &ClientSettings<'_>) -> Result<HttpsClient, ConfigError> {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(settings.connect_timeout));
    http.set_nodelay(true);
    http.enforce_http(false);
    let tls = crate::server::tls::client_config(settings.ca_file, settings.ca_file_key)?;
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(settings.pool_idle_timeout)
        .pool_max_idle_per_host(settings.pool_max_idle)
        .build(connector))
}

/// Marks a response that came from the upstream (as opposed to the gateway's own).
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
    Embedded(DevKms),
}

struct Remote {
    client: HttpsClient,
    scheme: Scheme,
    authority: Authority,
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
    /// Builds the upstream from its configuration.
    pub fn new(config: &UpstreamConfig, metrics: Metrics) -> Result<Upstream, ConfigError> {
        if config.is_embedded() {
            return Ok(Upstream {
                target: Target::Embedded(DevKms::new()),
                metrics,
            });
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
            base_path,
            request_timeout: config.request_timeout,
            slots: Arc::new(Semaphore::new(config.max_connections)),
        };
        Ok(Upstream {
            target: Target::Remote(Arc::new(remote)),
            metrics,
        })
    }

    /// An upstream served by this dev KMS (for tests and `upstream.url = "embedded"`).
    pub fn embedded(devkms: DevKms, metrics: Metrics) -> Upstream {
        Upstream {
            target: Target::Embedded(devkms),
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
        let operation = Route::of(&req).operation();
        let start = Instant::now();
        let metrics = self.metrics.clone();
        match &mut self.target {
            Target::Embedded(devkms) => {
                let future = tower_service::Service::call(devkms, req);
                UpstreamFuture {
                    kind: Kind::Embedded { future },
                    version,
                    operation,
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
                    start,
                    metrics,
                }
            }
        }
    }
}

/// One of the `upstream.max_connections` slots. A request to the upstream holds one until its
/// response body is dropped: as long as it keeps a pooled connection busy.
#[derive(Debug)]
pub struct UpstreamSlot {
    _permit: OwnedSemaphorePermit,
}

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
                slot: Some(UpstreamSlot { _permit: permit }),
            },
            Err(_) => {
                metrics.upstream_slot_wait();
                let remote = self.clone();
                Call::Waiting {
                    future: Box::pin(async move {
                        // The semaphore is never closed: acquiring only waits.
                        let slot = remote.slots.clone().acquire_owned().await.ok();
                        let slot = slot.map(|permit| UpstreamSlot { _permit: permit });
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

        let conn = req.extensions().get::<ConnInfo>().copied();
        let client = req
            .extensions()
            .get::<ClientAddr>()
            .map(|c| c.0)
            .or(conn.map(|c| c.peer.ip()));
        let headers = req.headers_mut();
        strip_hop_by_hop(headers);
        headers.remove(header::HOST);
        if let Some(ip) = client {
            // Overwrite, never append: what the client sent is not trusted here.
            let mut text = Vec::with_capacity(15);
            crate::text::push_ip(&mut text, crate::conn::canonical_ip(ip));
            if let Ok(value) = HeaderValue::from_maybe_shared(Bytes::from(text)) {
                headers.insert(X_FORWARDED_FOR, value);
            }
        }
        let proto = if conn.is_some_and(|c| c.tls) {
            "https"
        } else {
            "http"
        };
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
        Ok(())
    }
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// The headers that never cross a proxy (RFC 9110 §7.6.1), besides those `Connection` names.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    header::TRANSFER_ENCODING,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
];

/// Removes the hop-by-hop headers (RFC 9110 §7.6.1), including those `Connection` names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // The common case has none: one pass over the names, instead of a hashed lookup for each
    // of the nine (`Connection` itself is in the list, so the names it lists are found too).
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

pin_project! {
    /// The response future of [`Upstream`].
    pub struct UpstreamFuture {
        #[pin]
        kind: Kind,
        version: Version,
        operation: Operation,
        start: Instant,
        metrics: Metrics,
    }
}

type EmbeddedFuture = <DevKms as tower_service::Service<Request<Body>>>::Future;

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
                    let inspector = inspect.then(|| ErrorInspector::new(this.metrics.clone()));
                    Response::from_parts(parts, Body::upstream(incoming, inspector, slot))
                }
            },
        };
        Poll::Ready(Ok(finish_response(
            response,
            *this.version,
            this.start.elapsed().as_secs_f64(),
            this.metrics,
        )))
    }
}

/// Normalises an upstream response for the client and counts it.
fn finish_response(
    mut res: Response<Body>,
    version: Version,
    seconds: f64,
    metrics: &Metrics,
) -> Response<Body> {
    metrics.upstream_response(res.status(), seconds);
    strip_hop_by_hop(res.headers_mut());
    *res.version_mut() = version;
    res.extensions_mut().insert(FromUpstream);
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

/// The error and its sources, for a log line.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// Watches an upstream error body as it streams to the client (up to [`INSPECT_LIMIT`] bytes)
/// and counts the reason codes of its Key Protect envelope when it ends. The bytes themselves
/// are passed on untouched.
#[derive(Debug)]
pub struct ErrorInspector {
    buffer: Vec<u8>,
    overflowed: bool,
    finished: bool,
    metrics: Metrics,
}

impl ErrorInspector {
    /// A new inspector that counts into `metrics`.
    pub fn new(metrics: Metrics) -> Self {
        ErrorInspector {
            buffer: Vec::new(),
            overflowed: false,
            finished: false,
            metrics,
        }
    }

    /// Sees a data frame.
    pub fn observe(&mut self, data: &Bytes) {
        if self.overflowed {
            return;
        }
        if self.buffer.len() + data.len() > INSPECT_LIMIT {
            self.overflowed = true;
            self.buffer = Vec::new();
            return;
        }
        self.buffer.extend_from_slice(data);
    }

    /// The body ended: count the codes found (once).
    pub fn finish(&mut self) {
        if std::mem::replace(&mut self.finished, true) || self.overflowed {
            return;
        }
        for code in envelope_codes(&self.buffer) {
            self.metrics.upstream_reason(&code);
        }
        self.buffer = Vec::new();
    }
}

/// The reason codes in a Key Protect error envelope (empty for anything else).
pub fn envelope_codes(body: &[u8]) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        #[serde(default)]
        resources: Vec<Resource>,
    }
    #[derive(serde::Deserialize)]
    struct Resource {
        #[serde(default)]
        reasons: Vec<ReasonCode>,
    }
    #[derive(serde::Deserialize)]
    struct ReasonCode {
        #[serde(default)]
        code: String,
    }
    match serde_json::from_slice::<Envelope>(body) {
        Ok(envelope) => envelope
            .resources
            .into_iter()
            .flat_map(|r| r.reasons)
            .map(|r| r.code)
            .filter(|c| !c.is_empty())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_go_including_connection_named_ones() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret-hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("bluemix-instance", HeaderValue::from_static("i"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("bluemix-instance"));
    }

    #[test]
    fn envelope_codes_are_read_leniently() {
        let body = br#"{"metadata":{},"resources":[{"errorMsg":"x","reasons":[{"code":"KEY_DELETED_ERR"},{"code":" WEIRD"}]}]}"#;
        assert_eq!(
            envelope_codes(body),
            vec!["KEY_DELETED_ERR".to_owned(), " WEIRD".to_owned()]
        );
        assert!(envelope_codes(b"not json").is_empty());
    }
}
