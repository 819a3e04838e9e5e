//! [`Call`]: one request as the dev KMS handlers see it, and the responses they build.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use std::cell::Cell;

use super::crypto::ImportKeyPair;
use super::model::Rules;
use super::query::Query;
use crate::body::Body;
use crate::collection::Collection;
use crate::reason::{Operation, Reason, Rejection};
use crate::route::Route;

/// One request, as the handlers see it.
pub(crate) struct Call<'a> {
    /// The operation.
    pub(crate) route: Route,
    pub(super) method: &'a Method,
    /// The path (as the route was classified from).
    pub(super) path: &'a str,
    /// The key id or alias in the path, for key routes.
    pub(crate) key_id: Option<&'a str>,
    /// The query, percent-decoded.
    pub(super) query: Query,
    pub(super) headers: &'a HeaderMap,
    pub(super) body: Bytes,
    /// Who is calling: the subject of the identity the gateway verified, else the `sub` of
    /// the bearer token (the dev KMS served alone verifies nothing), else [`super::model::ACTOR`].
    pub(crate) subject: &'a str,
    /// Whether the caller is a service: the gateway's [`crate::auth::Identity`], else the
    /// bearer token's `sub_type` (IBM IAM's `ServiceId`).
    pub(crate) is_service: bool,
    /// The instance's dualAuthDelete as the gateway enforces it (`policies.api = "own"`: the
    /// policy PUT never reaches the dev KMS), when the gateway put its policy in the request.
    pub(crate) gateway_dual_auth: Option<bool>,
    /// The waiting rules.
    pub(crate) rules: Rules,
    /// For `POST /import_token`: the key pair made before the store was locked (making one
    /// takes a while).
    pub(crate) import_key: Cell<Option<ImportKeyPair>>,
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
    pub(super) fn operation(&self) -> Operation {
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

    /// The `n`th segment of the path after `/api/v2/` (0: `keys`, 1: the key id, …),
    /// percent-decoded.
    pub(crate) fn segment(&self, n: usize) -> Option<String> {
        let rest = self.path.strip_prefix("/api/v2/")?;
        let segment = rest.split('/').nth(n)?;
        if segment.contains('+') {
            // `+` is a space only in a query.
            return Some(segment.to_owned());
        }
        super::query::unescape(segment)
    }

    /// A request header as text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }

    /// The key ring `X-Kms-Key-Ring` names, if any: keys are created in it, and only its keys
    /// are found and listed.
    pub(crate) fn key_ring(&self) -> Option<&str> {
        self.header("x-kms-key-ring")
            .map(str::trim)
            .filter(|r| !r.is_empty())
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
