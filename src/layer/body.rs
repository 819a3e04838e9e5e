//! The body layer: request-body shape checks, before anything reaches the KMS.
//!
//! Only the routes that need it buffer their body ([`inspects`]): instance-policy `PUT`, key
//! create/import, wrap, unwrap, rewrap, rotate and restore. The body is read up to `body.limit`
//! bytes (a `Content-Length` above the limit is refused before reading; a longer stream is cut
//! off) → 413 `BODY_TOO_LARGE_ERR`, and must arrive within `body.read_timeout` (a body that
//! trickles in more slowly, or stops) → 408 `BODY_TIMEOUT_ERR`. It is parsed once, whatever
//! `Content-Type` says, into a small typed view decoded the way Key Protect's Go JSON decoder
//! reads it ([`crate::gojson`]), checked by [`check`], and the original bytes go upstream. What
//! the key_access layer needs — is it a root or standard key, does it carry key material, an
//! import token — travels on as a [`KeyBody`] request extension, so nothing parses twice.
//!
//! Read as Go reads it: keys match case-insensitively; an inspected field given twice in one
//! object, in any spelling, is refused (`BAD_BODY_ERR` `duplicate field "resources"`: Go would
//! merge the two values); `null` and `""` are Go's zero values, so `"encryptedNonce": ""` is no
//! nonce; trailing data after the JSON value is refused.
//!
//! | route | refused with |
//! |---|---|
//! | `PUT /instance/policies` | see [`crate::policy::parse`] |
//! | create key | `metadata` empty → `BAD_BODY_ERR` "…: CollectionMetadata is empty"; not exactly one resource → `BAD_BODY_ERR` "…: Only creation of one key per request is supported"; `collectionTotal` ≠ resources → `COLLECTION_TOTAL_MISMATCH_ERR`; empty `payload` → `BAD_BODY_ERR`; `payload`/`encryptedNonce`/`iv` not base64 → `INVALID_FIELD_ERR` |
//! | wrap | `plaintext` not base64 → `INVALID_FIELD_ERR` (no body, `{}` and `null` are fine: the KMS generates a key) |
//! | unwrap, rewrap | no body → `NO_BODY_ERR`; `ciphertext` missing or not base64 → `INVALID_FIELD_ERR` |
//! | rotate, restore | `payload`/`encryptedNonce`/`iv` not base64 → `INVALID_FIELD_ERR`; a `payload` of line breaks only → `BAD_BODY_ERR` |
//! | all of these | not UTF-8 JSON, trailing data, the wrong JSON types, an inspected field twice → `BAD_BODY_ERR` |
//!
//! enable, disable, setKeyForDeletion and unsetKeyForDeletion take no body, `{}` or `null` (the
//! Go client sends `null`); their bodies are not read at all.

mod view;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response, header};
use http_body_util::{LengthLimitError, Limited};
use pin_project_lite::pin_project;
use tokio::time::Sleep;

use crate::body::{Body, ToBytes};
use crate::config::BodyConfig;
use crate::context;
use crate::gojson;
use crate::reason::{Operation, Reason, Rejection};
use crate::route::{Route, query_param};
use view::{ActionBody, CreateBody, Str};

/// What a create, import, rotate or restore body says about key material, for key_access.
/// Holds flags only, never the material itself. A field counts as present as Go's zero value
/// decides: absent, `null` and `""` are all "not present".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyBody {
    /// `extractable: true` (a standard key); false, `null` or absent is a root key.
    pub extractable: bool,
    /// The body carries key material (a non-empty `payload`): an import, or a rotate/restore
    /// with material.
    pub payload: bool,
    /// `encryptedNonce` is present and decodes to at least one byte.
    pub encrypted_nonce: bool,
    /// `iv` is present and decodes to at least one byte.
    pub iv: bool,
}

impl KeyBody {
    /// Key material that comes with an import token (both `encryptedNonce` and `iv`, neither
    /// empty).
    pub fn has_import_token(&self) -> bool {
        self.encrypted_nonce && self.iv
    }
}

/// True for the routes whose bodies the layer reads.
pub fn inspects(route: Route) -> bool {
    matches!(
        route,
        Route::InstancePoliciesPut
            | Route::KeyCreate
            | Route::KeyCreateWithPolicyOverrides
            | Route::KeyWrap
            | Route::KeyUnwrap
            | Route::KeyRewrap
            | Route::KeyRotate
            | Route::KeyRestore
    )
}

const KEY_MATERIAL: &str = "a base64 encoded key material";
const ENCRYPTED_NONCE: &str = "a base64 encoded encrypted nonce";
const IV: &str = "a base64 encoded initialization vector";
const CIPHERTEXT: &str = "the original base64 encoded ciphertext from the wrap operation";

/// The policies a valid `PUT /api/v2/instance/policies` sets, as the body layer parsed them
/// (a request extension, for the policy API layer: nothing after the body layer reparses).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyPut(pub Vec<crate::policy::model::Policy>);

fn check_policy_put(query: Option<&str>, body: &[u8]) -> Result<PolicyPut, Rejection> {
    crate::policy::parse::parse_put(body, query_param(query, "policy")).map(PolicyPut)
}

/// Checks the body of a request on `route` (with query string `query`). On success, what the
/// key_access layer needs to know (for create, import, rotate and restore bodies).
pub fn check(route: Route, query: Option<&str>, body: &[u8]) -> Result<Option<KeyBody>, Rejection> {
    match route {
        Route::InstancePoliciesPut => check_policy_put(query, body).map(|_| None),
        Route::KeyCreate | Route::KeyCreateWithPolicyOverrides => check_create(body).map(Some),
        Route::KeyWrap => {
            let action: ActionBody<'_> = decode(route, body, true)?;
            base64_field(
                Operation::WRAP,
                "plaintext",
                KEY_MATERIAL,
                text(&action.plaintext),
            )?;
            Ok(None)
        }
        Route::KeyUnwrap | Route::KeyRewrap => {
            if is_blank(body) {
                return Err(Rejection::new(Reason::NoBody).operation(route.operation()));
            }
            let action: ActionBody<'_> = decode(route, body, false)?;
            let operation = match route {
                Route::KeyUnwrap => Operation::UNWRAP,
                _ => Operation::REWRAP,
            };
            let Some(ciphertext) = text(&action.ciphertext).filter(|c| !c.is_empty()) else {
                return Err(Rejection::invalid_field_of(
                    operation,
                    "ciphertext",
                    CIPHERTEXT,
                ));
            };
            base64_field(operation, "ciphertext", CIPHERTEXT, Some(ciphertext))?;
            Ok(None)
        }
        Route::KeyRotate | Route::KeyRestore => {
            let action: ActionBody<'_> = decode(route, body, true)?;
            let operation = match route {
                Route::KeyRotate => Operation::KEY_ROTATE,
                _ => Operation::KEY_RESTORE,
            };
            let material = [&action.payload, &action.encrypted_nonce, &action.iv];
            key_material(operation, material, false).map(Some)
        }
        _ => Ok(None),
    }
}

fn text<'v>(value: &'v Option<Str<'_>>) -> Option<&'v str> {
    value.as_ref().map(Str::as_str)
}

fn check_create(body: &[u8]) -> Result<KeyBody, Rejection> {
    let operation = Operation::KEY_CREATE;
    let create: CreateBody<'_> = decode(Route::KeyCreate, body, false)?;
    let metadata = create.metadata.unwrap_or_default();
    let total = metadata.collection_total.unwrap_or(0);
    if text(&metadata.collection_type).is_none_or(str::is_empty) && total == 0 {
        return Err(bad_body(operation, "CollectionMetadata is empty"));
    }
    let resources = create.resources.unwrap_or_default();
    let Some(key) = resources.first.filter(|_| resources.count == 1) else {
        return Err(bad_body(
            operation,
            "Only creation of one key per request is supported",
        ));
    };
    if usize::try_from(total).ok() != Some(resources.count) {
        return Err(Rejection::new(Reason::CollectionTotalMismatch).operation(operation));
    }
    if text(&key.payload).is_some_and(str::is_empty) {
        return Err(zero_payload(operation));
    }
    let material = [&key.payload, &key.encrypted_nonce, &key.iv];
    key_material(operation, material, key.extractable.unwrap_or(false))
}

/// Key Protect's refusal of a create whose `payload` is empty.
fn zero_payload(operation: Operation) -> Rejection {
    bad_body(operation, "Key has zero value or it's empty")
}

/// Checks `payload`, `encryptedNonce` and `iv` (each base64 when present) and summarises them.
///
/// `""` is Go's zero value: no material, no nonce, no IV. A value of line breaks only decodes to
/// no bytes but is not Go's zero value, so a KMS might read it either way: as a `payload` it is
/// refused (like `""` on create); as a nonce or IV it counts as absent (the reading under which
/// `enforce_token` refuses more, never less).
fn key_material(
    operation: Operation,
    [payload, encrypted_nonce, iv]: [&Option<Str<'_>>; 3],
    extractable: bool,
) -> Result<KeyBody, Rejection> {
    let payload = text(payload);
    let encrypted_nonce = text(encrypted_nonce);
    let iv = text(iv);
    base64_field(operation, "payload", KEY_MATERIAL, payload)?;
    base64_field(
        operation,
        "encryptedNonce",
        ENCRYPTED_NONCE,
        encrypted_nonce,
    )?;
    base64_field(operation, "iv", IV, iv)?;
    if payload.is_some_and(|p| !p.is_empty() && !gojson::base64_has_data(p)) {
        return Err(zero_payload(operation));
    }
    Ok(KeyBody {
        extractable,
        payload: payload.is_some_and(|p| !p.is_empty()),
        encrypted_nonce: encrypted_nonce.is_some_and(gojson::base64_has_data),
        iv: iv.is_some_and(gojson::base64_has_data),
    })
}

/// True when the body is empty or only JSON whitespace ("no body").
fn is_blank(body: &[u8]) -> bool {
    body.iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

/// Decodes a body into a view; a blank body is the empty view when `blank_ok`.
fn decode<'a, T: serde::Deserialize<'a> + Default>(
    route: Route,
    body: &'a [u8],
    blank_ok: bool,
) -> Result<T, Rejection> {
    if blank_ok && is_blank(body) {
        return Ok(T::default());
    }
    let text = std::str::from_utf8(body).map_err(|e| {
        bad_body(
            route.operation(),
            format!("the body is not UTF-8 (byte {})", e.valid_up_to()),
        )
    })?;
    serde_json::from_str(text).map_err(|e| bad_body(route.operation(), gojson::decode_message(&e)))
}

/// `INVALID_FIELD_ERR` unless `value` (when present) is base64 as Go decodes it.
fn base64_field(
    operation: Operation,
    field: &'static str,
    rule: &'static str,
    value: Option<&str>,
) -> Result<(), Rejection> {
    match value.and_then(gojson::base64_error) {
        None => Ok(()),
        Some(offset) => Err(Rejection::invalid_field_of(operation, field, rule)
            .detail(gojson::base64_message(offset))),
    }
}

fn bad_body(operation: Operation, detail: impl Into<std::borrow::Cow<'static, str>>) -> Rejection {
    Rejection::new(Reason::BadBody)
        .operation(operation)
        .detail(detail)
}

/// Adds [`BodyShape`] to a stack.
///
/// # Example
///
/// In front of a service, buffering at most 1 MiB of the bodies it inspects.
///
/// ```
/// # use kmsgate::body::Body;
/// # let kms = tower::service_fn(|_req: http::Request<Body>| async {
/// #     Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
/// # });
/// use kmsgate::layer::body::BodyShapeLayer;
///
/// let service = tower::ServiceBuilder::new()
///     .layer(BodyShapeLayer::new(1 << 20))
///     .service(kms);
/// ```
#[derive(Clone, Debug)]
pub struct BodyShapeLayer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    limit: usize,
    read_timeout: Duration,
}

impl BodyShapeLayer {
    /// Buffers inspected bodies up to `limit` bytes (`body.limit`), each within the default
    /// `body.read_timeout` ([`BodyConfig::DEFAULT_READ_TIMEOUT`]).
    pub fn new(limit: usize) -> Self {
        BodyShapeLayer {
            shared: Arc::new(Shared {
                limit,
                read_timeout: BodyConfig::DEFAULT_READ_TIMEOUT,
            }),
        }
    }

    /// The layer the `[body]` section configures: `body.limit` and `body.read_timeout`.
    pub fn from_config(config: &BodyConfig) -> Self {
        BodyShapeLayer::new(config.limit).read_timeout(config.read_timeout)
    }

    /// An inspected body must arrive in full within `timeout` of the first time the layer waits
    /// for it (`body.read_timeout`), else 408 `BODY_TIMEOUT_ERR`. A body that is already in
    /// memory never starts a timer. Reading a body that is not needs a Tokio runtime with its
    /// timer enabled.
    pub fn read_timeout(self, timeout: Duration) -> Self {
        BodyShapeLayer {
            shared: Arc::new(Shared {
                limit: self.shared.limit,
                read_timeout: timeout,
            }),
        }
    }
}

impl<S> tower_layer::Layer<S> for BodyShapeLayer {
    type Service = BodyShape<S>;
    fn layer(&self, inner: S) -> BodyShape<S> {
        BodyShape {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// See the [module docs](self).
#[derive(Debug)]
pub struct BodyShape<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: Clone> Clone for BodyShape<S> {
    fn clone(&self) -> Self {
        BodyShape {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S> tower_service::Service<Request<Body>> for BodyShape<S>
where
    S: tower_service::Service<Request<Body>, Response = Response<Body>> + Clone,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BodyFuture<S, S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let route = context::route(&req);
        if !inspects(route) {
            return BodyFuture::inner(self.inner.call(req));
        }
        let limit = self.shared.limit;
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit as u64) {
            return BodyFuture::refused(too_large(route));
        }
        // The ready service goes into the future; a clone takes its place (tower's pattern).
        let clone = self.inner.clone();
        let service = std::mem::replace(&mut self.inner, clone);
        let (parts, body) = req.into_parts();
        BodyFuture {
            state: State::Reading {
                collect: ToBytes::new(Limited::new(body, limit)),
                deadline: None,
                read_timeout: self.shared.read_timeout,
                parts: Some(parts),
                service: Some(service),
                route,
            },
        }
    }
}

fn too_large(route: Route) -> Rejection {
    Rejection::new(Reason::BodyTooLarge).operation(route.operation())
}

fn too_slow(route: Route) -> Rejection {
    Rejection::new(Reason::BodyTimeout).operation(route.operation())
}

pin_project! {
    /// The response future of [`BodyShape`]: read the body, check it, then call the inner
    /// service (or answer with the refusal).
    pub struct BodyFuture<S, F> {
        #[pin]
        state: State<S, F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, F> {
        Reading {
            #[pin]
            collect: ToBytes<Limited<Body>>,
            // Started the first time the body is not complete (`read_timeout` from then).
            #[pin]
            deadline: Option<Sleep>,
            read_timeout: Duration,
            parts: Option<Parts>,
            service: Option<S>,
            route: Route,
        },
        Inner { #[pin] future: F },
        Refused { rejection: Option<Rejection> },
    }
}

impl<S, F> BodyFuture<S, F> {
    fn inner(future: F) -> Self {
        BodyFuture {
            state: State::Inner { future },
        }
    }

    fn refused(rejection: Rejection) -> Self {
        BodyFuture {
            state: State::Refused {
                rejection: Some(rejection),
            },
        }
    }
}

impl<S, F, E> Future for BodyFuture<S, F>
where
    S: tower_service::Service<Request<Body>, Response = Response<Body>, Error = E, Future = F>,
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            let next = match state.as_mut().project() {
                StateProj::Inner { future } => return future.poll(cx),
                StateProj::Refused { rejection } => {
                    let rejection = rejection
                        .take()
                        .unwrap_or_else(|| Rejection::new(Reason::GatewayInternal));
                    return Poll::Ready(Ok(rejection.into_response()));
                }
                StateProj::Reading {
                    collect,
                    mut deadline,
                    read_timeout,
                    parts,
                    service,
                    route,
                } => {
                    let route = *route;
                    let Poll::Ready(read) = collect.poll(cx) else {
                        if deadline.is_none() {
                            deadline.set(Some(tokio::time::sleep(*read_timeout)));
                        }
                        if let Some(deadline) = deadline.as_pin_mut() {
                            ready!(deadline.poll(cx));
                        }
                        // Out of time: the rest of the body is never read.
                        state.set(State::Refused {
                            rejection: Some(too_slow(route)),
                        });
                        continue;
                    };
                    match (read, parts.take(), service.take()) {
                        (Ok(bytes), Some(parts), Some(service)) => {
                            forward(route, parts, service, bytes)
                        }
                        (Err(error), ..) if error.downcast_ref::<LengthLimitError>().is_some() => {
                            State::Refused {
                                rejection: Some(too_large(route)),
                            }
                        }
                        (Err(_), ..) => State::Refused {
                            rejection: Some(bad_body(
                                route.operation(),
                                "the request body could not be read",
                            )),
                        },
                        // Polled again after completion.
                        (Ok(_), ..) => State::Refused { rejection: None },
                    }
                }
            };
            state.set(next);
        }
    }
}

/// Checks a buffered body; on success, calls the inner service with the original bytes.
fn forward<S, F, E>(route: Route, mut parts: Parts, mut service: S, bytes: Bytes) -> State<S, F>
where
    S: tower_service::Service<Request<Body>, Response = Response<Body>, Error = E, Future = F>,
{
    // What the later layers need from the body: the parsed policy PUT, or the key facts.
    let query = parts.uri.query();
    let checked = if route == Route::InstancePoliciesPut {
        check_policy_put(query, &bytes).map(|put| {
            parts.extensions.insert(put);
        })
    } else {
        check(route, query, &bytes).map(|key_body| {
            if let Some(key_body) = key_body {
                parts.extensions.insert(key_body);
            }
        })
    };
    match checked {
        Ok(()) => State::Inner {
            future: service.call(Request::from_parts(parts, Body::full(bytes))),
        },
        Err(rejection) => State::Refused {
            rejection: Some(rejection),
        },
    }
}

#[cfg(test)]
mod tests;
