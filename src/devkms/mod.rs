//! The embedded dev KMS: an in-memory, Key Protect-compatible backend for trying kmsgate out
//! and for tests. Selected with `upstream.url = "embedded"`, or run alone with
//! `kmsgate dev-kms --listen ADDR`. Nothing is persisted.
//!
//! What it serves, per `bluemix-instance` (an instance exists on first use):
//!
//! | route | answer |
//! |---|---|
//! | `POST /api/v2/keys` (and `/keys_with_policy_overrides`) | 201 + the key; `Prefer: return=minimal` gives only its id |
//! | `GET`/`HEAD /api/v2/keys` | the keys (`limit`, `offset`, `state`, `extractable`, `totalCount`, `search`, `sort`, `filter`: see `list.rs`); HEAD: `Key-Total` |
//! | `GET /api/v2/keys/{id}[/metadata]`, `/versions` | the key (payload of a standard key on the first only), its versions |
//! | `DELETE /api/v2/keys/{id}` | 204, or 200 + the key with `Prefer: return=representation` |
//! | `POST /api/v2/keys/{id}/restore` | 201 + the key (imported root keys only) |
//! | key actions, `/actions/<a>` and `?action=<a>` | wrap, unwrap, rewrap (200 + JSON); rotate, enable, disable, setKeyForDeletion, unsetKeyForDeletion, sync (204) |
//! | `GET`/`PUT /api/v2/instance/policies[?policy=]` | the stored policies; 204 on PUT |
//! | `GET /api/v2/instance/allowed_ip_port` | the private port while allowedIP is enabled |
//! | `POST`/`GET /api/v2/import_token` | a minimal import token |
//!
//! Anything else gets 403 `FEATURE_RESTRICTED_ERR` ("not implemented by the dev KMS").
//!
//! Queries are read as Key Protect's Go server reads them (`query.rs`): percent-decoded, `+` a
//! space, the first of repeated parameters; a pair that does not decode is 400
//! `INVALID_QUERY_PARAM_ERR` naming it.
//!
//! Wrap and unwrap are real AES-GCM (aws-lc-rs, see `crypto`); rotation adds a key version and
//! unwrapping an older version's ciphertext also returns it rewrapped with the newest. Errors
//! are Key Protect's reason codes, rendered by [`Rejection::into_backend_response`]. The dev KMS
//! does not verify tokens (the gateway does), does not enforce instance policies (the gateway
//! does), allows any number of rotations per hour, and does not support secure import with an
//! import token.

mod actions;
mod crypto;
mod import_token;
mod keys;
mod list;
mod policies;
mod query;
mod store;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::body::Body;
use crate::collection::Collection;
use crate::reason::{Operation, Reason, Rejection};
use crate::route::Route;
use query::Query;
use store::Store;

/// The largest request body the dev KMS reads.
const BODY_LIMIT: usize = 1024 * 1024;

/// The header that names the instance.
const BLUEMIX_INSTANCE: HeaderName = HeaderName::from_static("bluemix-instance");

/// The dev KMS as a Tower service. Cheap to clone (shared state inside).
#[derive(Clone, Debug, Default)]
pub struct DevKms {
    store: Arc<Store>,
}

impl DevKms {
    /// A dev KMS with no instances yet (an instance exists on first use).
    pub fn new() -> Self {
        DevKms::default()
    }
}

impl tower_service::Service<Request<Body>> for DevKms {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let store = self.store.clone();
        Box::pin(async move { Ok(handle(&store, req).await) })
    }
}

async fn handle(store: &Store, req: Request<Body>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let route = Route::classify(&parts.method, parts.uri.path(), parts.uri.query());
    let Some(instance) = instance_id(&parts.headers) else {
        // Key Protect cannot authorize a request for no instance.
        return Rejection::new(Reason::Unauthorized).into_backend_response();
    };
    let body = match Limited::new(body, BODY_LIMIT).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => {
            return Rejection::new(Reason::BadBody)
                .operation(route.operation())
                .detail("the body is larger than the dev KMS reads (1 MiB)")
                .into_backend_response();
        }
        Err(_) => {
            return Rejection::new(Reason::BadBody)
                .operation(route.operation())
                .detail("the body could not be read")
                .into_backend_response();
        }
    };
    let query = match Query::decode(parts.uri.query()) {
        Ok(query) => query,
        Err(name) => {
            return list::invalid_query_of(route.operation(), &name).into_backend_response();
        }
    };
    let call = Call {
        route,
        method: &parts.method,
        key_id: key_id(parts.uri.path()),
        query,
        headers: &parts.headers,
        body,
    };
    store
        .with_instance(instance, |instance| dispatch(instance, &call))
        .unwrap_or_else(Rejection::into_backend_response)
}

fn dispatch(instance: &mut store::Instance, call: &Call<'_>) -> Result<Response<Body>, Rejection> {
    match call.route {
        Route::KeyCreate | Route::KeyCreateWithPolicyOverrides => keys::create(instance, call),
        Route::KeyList => list::keys(instance, call),
        Route::KeyGet => keys::get(instance, call, keys::View::Full),
        Route::KeyMetadata => keys::get(instance, call, keys::View::Metadata),
        Route::KeyVersions => keys::versions(instance, call),
        Route::KeyDelete => keys::delete(instance, call),
        Route::KeyRestore => keys::restore(instance, call),
        route if route.is_key_action() => actions::perform(instance, call),
        Route::InstancePoliciesGet => policies::get(instance, call),
        Route::InstancePoliciesPut => policies::put(instance, call),
        Route::AllowedIpPort => Ok(policies::allowed_ip_port(instance)),
        Route::ImportToken if *call.method == Method::POST => import_token::create(instance, call),
        Route::ImportToken if *call.method == Method::GET => import_token::get(instance, call),
        _ => Err(Rejection::new(Reason::FeatureRestricted)
            .operation(Operation::REQUEST)
            .message("This action is not implemented by the dev KMS")),
    }
}

/// The `bluemix-instance` header, if it is a plausible instance id.
fn instance_id(headers: &HeaderMap) -> Option<&str> {
    let id = headers.get(BLUEMIX_INSTANCE)?.to_str().ok()?.trim();
    let plausible = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    plausible.then_some(id)
}

/// The `{id}` of `/api/v2/keys/{id}[/...]`.
fn key_id(path: &str) -> Option<&str> {
    let id = path.strip_prefix("/api/v2/keys/")?.split('/').next()?;
    (!id.is_empty()).then_some(id)
}

/// One request, as the handlers see it.
pub(crate) struct Call<'a> {
    /// The operation.
    pub(crate) route: Route,
    method: &'a Method,
    /// The key id or alias in the path, for key routes.
    pub(crate) key_id: Option<&'a str>,
    /// The query, percent-decoded.
    query: Query,
    headers: &'a HeaderMap,
    body: Bytes,
}

/// What `Prefer: return=…` asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Prefer {
    /// `return=minimal`
    Minimal,
    /// `return=representation`
    Representation,
}

impl Call<'_> {
    /// The operation an `errorMsg` names: the route's, told apart by method for the import
    /// token (one route, two operations).
    fn operation(&self) -> Operation {
        match self.route {
            Route::ImportToken if *self.method == Method::POST => Operation::IMPORT_TOKEN_CREATE,
            Route::ImportToken => Operation::IMPORT_TOKEN_RETRIEVE,
            route => route.operation(),
        }
    }

    /// A refusal naming this request's operation in its `errorMsg`.
    pub(crate) fn reject(&self, reason: Reason) -> Rejection {
        Rejection::new(reason).operation(self.operation())
    }

    /// `INVALID_FIELD_ERR` for a body field. Wrap, unwrap and rewrap name their field errors
    /// "Wrap with key could not be performed" and so on, as Key Protect does.
    pub(crate) fn invalid_field(&self, field: &'static str, rule: &str) -> Rejection {
        let operation = match self.route {
            Route::KeyWrap => Operation::WRAP,
            Route::KeyUnwrap => Operation::UNWRAP,
            Route::KeyRewrap => Operation::REWRAP,
            _ => self.operation(),
        };
        Rejection::invalid_field(field, rule).operation(operation)
    }

    /// The first value of a query parameter, percent-decoded.
    pub(crate) fn query(&self, name: &str) -> Option<&str> {
        self.query.get(name)
    }

    /// A request header as text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }

    /// `Prefer: return=…`, or `default` when the request does not say.
    pub(crate) fn prefer(&self, default: Prefer) -> Prefer {
        match self.header("prefer") {
            Some(v) if v.contains("return=minimal") => Prefer::Minimal,
            Some(v) if v.contains("return=representation") => Prefer::Representation,
            _ => default,
        }
    }

    /// The body as JSON; `None` for no body or a literal `null` (the Go client sends `null`
    /// for actions that take no body).
    pub(crate) fn json<T: DeserializeOwned>(&self) -> Result<Option<T>, Rejection> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice::<Option<T>>(&self.body).map_err(|e| {
            let rejection = self.reject(Reason::BadBody);
            if e.is_data() {
                rejection.detail(format!("json: {e}"))
            } else {
                rejection.detail("the body is not valid JSON")
            }
        })
    }
}

/// The `collectionType` of key resources.
pub(crate) const KEY_COLLECTION: &str = "application/vnd.ibm.kms.key+json";

/// `{"metadata": {"collectionType", "collectionTotal"}, "resources": [...]}`.
pub(crate) fn collection<T: Serialize>(
    status: StatusCode,
    collection_type: &'static str,
    resources: &[T],
) -> Response<Body> {
    json(status, &Collection::new(collection_type, resources))
}

/// A JSON response.
pub(crate) fn json(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    // The values are plain structs of strings and numbers: serializing cannot fail.
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    let mut response = Response::new(Body::full(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// 204 No Content.
pub(crate) fn no_content() -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// Serves the dev KMS as a plain HTTP server on `addr` until `shutdown` completes.
pub async fn serve(
    addr: std::net::SocketAddr,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let listener = crate::server::bind(addr, "dev-kms").await?;
    serve_on(listener, shutdown).await;
    Ok(())
}

/// Serves the dev KMS on a bound listener until `shutdown` completes (for tests on port 0).
pub async fn serve_on(listener: tokio::net::TcpListener, shutdown: impl Future<Output = ()>) {
    let addr = listener
        .local_addr()
        .map_or_else(|_| "?".to_owned(), |a| a.to_string());
    tracing::info!(%addr, "dev KMS listening (in-memory; nothing is persisted)");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let options = crate::server::ServeOptions {
        connections: std::sync::Arc::new(tokio::sync::Semaphore::new(10_000)),
        header_read_timeout: std::time::Duration::from_secs(10),
        drain_timeout: std::time::Duration::from_secs(5),
        tls: None,
    };
    let task = tokio::spawn(crate::server::serve(
        listener,
        crate::conn::ListenerKind::Public,
        DevKms::new(),
        options,
        stop_rx,
    ));
    shutdown.await;
    let _ = stop_tx.send(true);
    let _ = task.await;
}

#[cfg(test)]
mod tests;
