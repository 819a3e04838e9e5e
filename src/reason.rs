//! The reason catalogue: every reason code kmsgate can answer with, its HTTP status and its
//! message, and the one renderer of Key Protect's error envelope.
//!
//! The codes, statuses and messages follow IBM's public Key Protect error catalogue (the wire
//! form of its JSON examples). Two codes come from the real API rather than the catalogue
//! (`INVALID_QUERY_PARAM_ERR`, `KEY_NOT_FOUND_ERR`), and four are the gateway's own, for its own
//! failures:
//!
//! | code | status | when |
//! |---|---|---|
//! | `UPSTREAM_UNAVAILABLE_ERR` | 502 | the KMS behind the gateway refused or dropped the connection |
//! | `UPSTREAM_TIMEOUT_ERR` | 504 | the KMS did not answer within `upstream.request_timeout` |
//! | `BODY_TOO_LARGE_ERR` | 413 | a body the gateway must inspect is larger than `body.limit` |
//! | `BODY_TIMEOUT_ERR` | 408 | a body the gateway must inspect did not arrive within `body.read_timeout` |
//! | `POLICY_STORE_UNAVAILABLE_ERR` | 503 | a policy PUT could not be written to the shared policy store (etcd); nothing was changed |
//! | `GATEWAY_INTERNAL_ERR` | 500 | the gateway failed on its own (a bug); the request was not forwarded |
//!
//! Layers never write JSON: they return a [`Rejection`], and [`Rejection::into_response`] renders
//! the envelope, sets `kmsgate-reason: <CODE>` and tags the response so the observe layer counts
//! it. A 401 carries `errorMsg` only, as Key Protect's own 401s do.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Response, StatusCode, header};
use serde::Serialize;

use crate::body::Body;
use crate::collection::Collection;

/// The `moreInfo` link Key Protect puts in every reason.
pub const MORE_INFO: &str = "https://cloud.ibm.com/apidocs/key-protect";

/// The collection type of every error envelope.
pub const ERROR_COLLECTION_TYPE: &str = "application/vnd.ibm.kms.error+json";

/// The response header that names the reason code of a refusal made by the gateway itself.
pub const REASON_HEADER: HeaderName = HeaderName::from_static("kmsgate-reason");

/// How the `errorMsg` of a reason is phrased. Key Protect uses two styles; each code has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Style {
    /// "Bad Request: Key could not be created. Please see `reasons` for more details."
    Period,
    /// "Conflict: Key could not be created: Please see `reasons` for more details (CODE)"
    Suffix,
    /// "Unauthorized: The user does not have access to the specified resource", no `reasons`.
    Unauthorized,
}

macro_rules! catalogue {
    ($( $(#[$doc:meta])* $variant:ident = ($code:literal, $status:literal, $style:ident, $message:literal), )+) => {
        /// A reason code of the Key Protect API, or one of the gateway's own.
        ///
        /// See the [module docs](crate::reason) for the gateway's own codes.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Reason {
            $( $(#[$doc])* $variant, )+
        }

        impl Reason {
            /// Every reason, in catalogue order (the index of a reason is `reason as usize`).
            pub const ALL: &'static [Reason] = &[$(Reason::$variant,)+];

            /// The reason code as it appears on the wire, e.g. `BAD_BODY_ERR`.
            pub const fn code(self) -> &'static str {
                match self { $(Reason::$variant => $code,)+ }
            }

            /// The HTTP status Key Protect answers with for this reason.
            pub const fn status(self) -> StatusCode {
                let code: u16 = match self { $(Reason::$variant => $status,)+ };
                match StatusCode::from_u16(code) {
                    Ok(status) => status,
                    Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
                }
            }

            /// The reason's `message`, without any request-specific detail.
            pub const fn message(self) -> &'static str {
                match self { $(Reason::$variant => $message,)+ }
            }

            const fn style(self) -> Style {
                match self { $(Reason::$variant => Style::$style,)+ }
            }
        }
    };
}

catalogue! {
    /// `metadata.collectionTotal` differs from the number of resources.
    CollectionTotalMismatch = ("COLLECTION_TOTAL_MISMATCH_ERR", 400, Period, "Collection total does not match number of resources"),
    /// `?policy=X` and the body's `policy_type` differ.
    BodyQueryParamMismatch = ("BODY_QUERY_PARAM_MISMATCH_ERR", 400, Period, "Data in body does not match data required by query parameter"),
    /// The bearer token is missing, malformed or has no subject.
    BearerSubExtraction = ("BEARER_SUB_EXTRACTION_ERR", 400, Period, "Extracting the subject from the bearer token failed: Make sure the bearer token passed is the correct one (and correct format) and is allowed to perform requested actions"),
    /// The body is not what the operation takes; the detail says why.
    BadBody = ("BAD_BODY_ERR", 400, Period, "Invalid body data was passed. Please ensure the data passed had valid formatting with no invalid characters"),
    /// A field has an invalid value; the message names the field and the rule.
    InvalidField = ("INVALID_FIELD_ERR", 400, Suffix, "Invalid field error"),
    /// A query parameter has an invalid value.
    InvalidQueryParam = ("INVALID_QUERY_PARAM_ERR", 400, Suffix, "Invalid query parameter"),
    /// Dual authorization for deletion is not complete.
    AuthorizationsNotMet = ("AUTHORIZATIONS_NOT_MET", 409, Period, "Number of authorizations required to delete is not met"),
    /// The key protects registered cloud resources.
    ProtectedResource = ("PROTECTED_RESOURCE_ERR", 409, Period, "The key cannot be deleted because the key has one or more associated resources."),
    /// The key protects a resource with a retention policy.
    PrevKeyDel = ("PREV_KEY_DEL_ERR", 409, Period, "The key cannot be deleted because it's protecting a cloud resource that has a retention policy."),
    /// The key was deleted already.
    KeyDeleted = ("KEY_DELETED_ERR", 410, Period, "Key has already been deleted. Please delete references to this key."),
    /// The key's state does not allow the action.
    KeyActionInvalidState = ("KEY_ACTION_INVALID_STATE_ERR", 409, Period, "Key is not in a valid state"),
    /// The key's state does not allow the registration.
    KeyInvalidState = ("KEY_INVALID_STATE_ERR", 422, Period, "Key is not in a valid state"),
    /// Key metadata is corrupted.
    IncompleteMetadata = ("INCOMPLETE_METADATA_ERR", 500, Period, "Key metadata became corrupted: Please delete this key"),
    /// The key was deleted more than 30 days ago.
    KeyRestoreExpired = ("KEY_RESTORE_EXPIRED", 400, Period, "Key restoration has expired"),
    /// The keyCreateImportAccess instance policy refuses this create or import.
    KeyCreateImportAccess = ("KEY_CREATE_IMPORT_ACCESS_ERR", 409, Suffix, "KeyCreateImportAccess instance policy does not allow this action"),
    /// The operation needs a body and none was sent.
    NoBody = ("NO_BODY_ERR", 400, Period, "Missing body in request"),
    /// `?policy=X` with more than one resource.
    NumCollectionResource = ("NUM_COLLECTION_RESOURCE_ERR", 400, Period, "Only a single instance policy may be created per query parameter. Please pass single resource object"),
    /// Only imported keys may be restored.
    KeyImptReq = ("KEY_IMPT_REQ_ERR", 400, Period, "Only imported keys may be restored."),
    /// The action needs a root key.
    KeyRootReq = ("KEY_ROOT_REQ_ERR", 400, Period, "Requested action can only be completed with a root key."),
    /// A registration needs a root key.
    KeyRootReqReg = ("KEY_ROOT_REQ_REG_ERR", 422, Period, "Requested action can only be completed with a root key"),
    /// An instance policy forbids the request (allowedNetwork: private-only).
    ConfigRuleConflict = ("CONFIG_RULE_CONFLICT_ERR", 403, Period, "Requested change is not compliant with configuration rules"),
    /// A rewrap signature is invalid.
    InvalidSigExp = ("INVALID_SIG_EXP_ERR", 422, Period, "Signature is invalid"),
    /// The key has expired.
    KeyExpired = ("KEY_EXPIRED_ERR", 400, Period, "The action could not be performed on the key because the key is expired."),
    /// The encrypted nonce does not match the import token's.
    IncorrectNonce = ("INCORRECT_NONCE_ERR", 400, Period, "The encrypted nonce given does not match existing record. Please ensure the correct nonce was given in the request"),
    /// The import token has expired.
    ImportTokenExpired = ("IMPORT_TOKEN_EXPIRED_ERR", 409, Period, "The import token has expired."),
    /// Dual-auth deletion requested on a key without dual auth.
    NotDualAuth = ("NOT_DUAL_AUTH_ERR", 409, Period, "The key is not dual auth enabled and cannot be set for deletion"),
    /// The key changed too recently for this action.
    ReqTooEarly = ("REQ_TOO_EARLY_ERR", 409, Suffix, "The key was updated recently: Please wait and try again"),
    /// The ciphertext cannot be unwrapped.
    UnprocessableCiphertext = ("UNPROCESSABLE_CIPHERTEXT_ERR", 422, Period, "The provided ciphertext is invalid or corrupted"),
    /// The nonce was not encrypted with the given key material, or the IV does not match.
    IncorrectNonceIv = ("INCORRECT_NONCE_IV_ERR", 400, Period, "The provided encrypted nonce was not encrypted with the key material given OR the provided IV does not match the encrypted nonce"),
    /// A service tried to delete a key it does not own.
    ResourceOwner = ("RESOURCE_OWNER_ERR", 403, Period, "The resource(s) queried does not belong to the service"),
    /// Only a service (service to service) may do this.
    ServiceOnly = ("SERVICE_ONLY_ERR", 403, Period, "This action can only be done by a service (service to service)"),
    /// The feature is not available (e.g. an IPv6 client against an IPv4-only allowedIP list).
    FeatureRestricted = ("FEATURE_RESTRICTED_ERR", 403, Period, "This action is not permitted on this resource: Please contact IBM Key Protect or open a service ticket to enable this feature"),
    /// The key version is older than the registration's.
    KeyVersionInvalid = ("KEY_VERSION_INVALID", 422, Period, "This request requires that the key version is later than current registration key version"),
    /// A root key may be rotated once an hour.
    KeyRotationNotPermitted = ("KEY_ROTATION_NOT_PERMITTED", 409, Suffix, "This root key has been rotated within the last hour: Only one 'rotate' action per hour is permitted"),
    /// An imported root key needs key material to rotate.
    KeyPayloadReq = ("KEY_PAYLOAD_REQ_ERR", 400, Suffix, "This root key was created with user-supplied key material: Key material is required to perform a 'rotate' action"),
    /// The caller may not access the resource (bad token, allowedIP). Rendered without `reasons`.
    Unauthorized = ("UNAUTHORIZED_ERR", 401, Unauthorized, "Unauthorized: The user does not have access to the specified resource"),
    /// The key does not exist.
    KeyNotFound = ("KEY_NOT_FOUND_ERR", 404, Suffix, "key does not exist"),
    /// Gateway: the upstream KMS could not be reached.
    UpstreamUnavailable = ("UPSTREAM_UNAVAILABLE_ERR", 502, Suffix, "The KMS behind the gateway could not be reached"),
    /// Gateway: the upstream KMS did not answer in time.
    UpstreamTimeout = ("UPSTREAM_TIMEOUT_ERR", 504, Suffix, "The KMS behind the gateway did not answer in time"),
    /// Gateway: a body the gateway inspects is larger than its limit.
    BodyTooLarge = ("BODY_TOO_LARGE_ERR", 413, Suffix, "The request body is larger than the gateway accepts"),
    /// Gateway: a body the gateway inspects did not arrive within `body.read_timeout`.
    BodyTimeout = ("BODY_TIMEOUT_ERR", 408, Suffix, "The request body was not received in time"),
    /// Gateway: the request reads differently to the gateway and to a Go KMS (an encoded `/`,
    /// a repeated deciding header, a bad escape or host); the detail says which.
    AmbiguousRequest = ("AMBIGUOUS_REQUEST_ERR", 400, Suffix, "The request can be read in more than one way"),
    /// Gateway: a method that no Key Protect operation accepts (`CONNECT`, `TRACE`, …).
    MethodNotAllowed = ("METHOD_NOT_ALLOWED_ERR", 405, Suffix, "No Key Protect operation accepts this method"),
    /// Gateway: with `routes.unknown = "refuse"`, a request that is no Key Protect operation.
    UnknownRoute = ("UNKNOWN_ROUTE_ERR", 404, Suffix, "The request is not a Key Protect API operation"),
    /// Gateway: the shared policy store (etcd) could not be reached for a policy update;
    /// nothing was changed.
    PolicyStoreUnavailable = ("POLICY_STORE_UNAVAILABLE_ERR", 503, Suffix, "The shared policy store could not be reached; the policy was not changed"),
    /// Gateway: an internal failure; the request was not forwarded.
    GatewayInternal = ("GATEWAY_INTERNAL_ERR", 500, Suffix, "The gateway failed to process the request"),
}

impl Reason {
    /// The number of reasons in the catalogue.
    pub const COUNT: usize = Reason::ALL.len();

    /// The reason with this wire code, if it is in the catalogue.
    pub fn from_code(code: &str) -> Option<Reason> {
        Reason::ALL.iter().copied().find(|r| r.code() == code)
    }

    /// The position of this reason in [`Reason::ALL`], for pre-resolved per-reason tables.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// True for refusals caused by the client (4xx), false for upstream or internal failures.
    pub fn is_client_fault(self) -> bool {
        self.status().is_client_error()
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// How `reasons` is quoted in an `errorMsg`. Key Protect is not consistent; the reference
/// examples are followed exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quote {
    /// `` `reasons` ``
    Backtick,
    /// `'reasons'`
    Single,
    /// `"reasons"` (instance-policy field errors)
    Double,
}

impl Quote {
    /// `name` between these quotes.
    pub fn around(self, name: &str) -> String {
        let q = match self {
            Quote::Backtick => '`',
            Quote::Single => '\'',
            Quote::Double => '"',
        };
        format!("{q}{name}{q}")
    }
}

/// The operation named in an `errorMsg`: "<Status>: **Key could not be created**. Please see …".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Operation {
    subject: &'static str,
    quote: Quote,
}

impl Operation {
    /// Builds an operation phrase, e.g. `"Key could not be created"`.
    pub const fn new(subject: &'static str, quote: Quote) -> Self {
        Operation { subject, quote }
    }
    /// The phrase, e.g. `"Key could not be created"`.
    pub const fn subject(self) -> &'static str {
        self.subject
    }
    /// How the `errorMsg` quotes `reasons`; field messages quote the field name the same way.
    pub const fn quote(self) -> Quote {
        self.quote
    }

    /// `POST /keys`.
    pub const KEY_CREATE: Operation = Operation::new("Key could not be created", Quote::Backtick);
    /// Key listing.
    pub const KEY_LIST: Operation = Operation::new("Keys could not be retrieved", Quote::Backtick);
    /// `GET /keys/{id}`, metadata, versions.
    pub const KEY_RETRIEVE: Operation = Operation::new("Key could not be retrieved", Quote::Single);
    /// `PATCH /keys/{id}`.
    pub const KEY_UPDATE: Operation = Operation::new("Key could not be updated", Quote::Backtick);
    /// `DELETE /keys/{id}`.
    pub const KEY_DELETE: Operation = Operation::new("Key could not be deleted", Quote::Backtick);
    /// `DELETE /keys/{id}/purge`.
    pub const KEY_PURGE: Operation = Operation::new("Key could not be purged", Quote::Single);
    /// `POST /keys/{id}/restore`.
    pub const KEY_RESTORE: Operation = Operation::new("Key could not be restored", Quote::Backtick);
    /// Any key action (the form Key Protect uses for most action refusals).
    pub const KEY_ACTION: Operation =
        Operation::new("Action could not be performed on key", Quote::Backtick);
    /// Disable.
    pub const KEY_DISABLE: Operation = Operation::new("Key could not be disabled", Quote::Backtick);
    /// Enable.
    pub const KEY_ENABLE: Operation = Operation::new("Key could not be enabled", Quote::Backtick);
    /// Wrap, for field errors.
    pub const WRAP: Operation =
        Operation::new("Wrap with key could not be performed", Quote::Backtick);
    /// Unwrap, for field errors.
    pub const UNWRAP: Operation =
        Operation::new("Unwrap with key could not be performed", Quote::Single);
    /// Rewrap, for field errors.
    pub const REWRAP: Operation =
        Operation::new("Rewrap with key could not be performed", Quote::Single);
    /// Rotate.
    pub const KEY_ROTATE: Operation = Operation::new("Key could not be rotated", Quote::Single);
    /// `PUT /instance/policies`.
    pub const INSTANCE_POLICY_CREATE: Operation =
        Operation::new("Instance policy could not be created", Quote::Backtick);
    /// `GET /instance/policies`.
    pub const INSTANCE_POLICY_RETRIEVE: Operation =
        Operation::new("Instance policy could not be retrieved", Quote::Backtick);
    /// Key policies.
    pub const KEY_POLICY: Operation =
        Operation::new("Key policy could not be processed", Quote::Backtick);
    /// Registration lists. Key Protect documents no `errorMsg` for registrations; these follow
    /// its key phrasing.
    pub const REGISTRATION_LIST: Operation =
        Operation::new("Registrations could not be retrieved", Quote::Backtick);
    /// `POST /keys/{id}/registrations/{crn}`.
    pub const REGISTRATION_CREATE: Operation =
        Operation::new("Registration could not be created", Quote::Backtick);
    /// `PUT /keys/{id}/registrations/{crn}`.
    pub const REGISTRATION_REPLACE: Operation =
        Operation::new("Registration could not be replaced", Quote::Backtick);
    /// `PATCH /keys/{id}/registrations/{crn}`.
    pub const REGISTRATION_UPDATE: Operation =
        Operation::new("Registration could not be updated", Quote::Backtick);
    /// `DELETE /keys/{id}/registrations/{crn}`.
    pub const REGISTRATION_DELETE: Operation =
        Operation::new("Registration could not be deleted", Quote::Backtick);
    /// `POST /keys/{id}/registrations?action=<a>`.
    pub const REGISTRATION_ACTION: Operation = Operation::new(
        "Action could not be performed on registration",
        Quote::Backtick,
    );
    /// `POST /import_token`.
    pub const IMPORT_TOKEN_CREATE: Operation =
        Operation::new("Import Token could not be created", Quote::Backtick);
    /// `GET /import_token`.
    pub const IMPORT_TOKEN_RETRIEVE: Operation =
        Operation::new("Import Token could not be retrieved", Quote::Backtick);
    /// Anything else.
    pub const REQUEST: Operation =
        Operation::new("Request could not be processed", Quote::Backtick);
}

/// What a field or query-parameter reason points at (`reasons[].target`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Target {
    /// `field`, `query_param` or `header`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The field or parameter name.
    pub name: Cow<'static, str>,
}

impl Target {
    /// A body field.
    pub fn field(name: impl Into<Cow<'static, str>>) -> Self {
        Target {
            kind: "field",
            name: name.into(),
        }
    }
    /// A query parameter.
    pub fn query_param(name: impl Into<Cow<'static, str>>) -> Self {
        Target {
            kind: "query_param",
            name: name.into(),
        }
    }
}

/// A refusal: a reason plus what the envelope needs to say about this request.
///
/// Built by layers (and by the dev KMS), rendered once by [`Rejection::into_response`]. Small
/// (the rarely used parts are boxed), so `Result<_, Rejection>` stays cheap to return.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    reason: Reason,
    operation: Operation,
    extra: Option<Box<Extra>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Extra {
    /// Replaces the catalogue message (field errors carry their own).
    message: Option<Cow<'static, str>>,
    /// Appended to the message after ": " (e.g. `json: unknown field "x"`).
    detail: Option<Cow<'static, str>>,
    /// Put before the operation in `errorMsg` ("Key is not in active state: Key could not be …").
    context: Option<Cow<'static, str>>,
    target: Option<Target>,
}

/// The marker a rejection leaves in the response extensions; the observe layer counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejected(pub Reason);

impl Rejection {
    /// A refusal with the catalogue message and a generic operation.
    pub fn new(reason: Reason) -> Self {
        Rejection {
            reason,
            operation: Operation::REQUEST,
            extra: None,
        }
    }

    /// Names the operation that failed (usually `route.operation()`).
    pub fn operation(mut self, operation: Operation) -> Self {
        self.operation = operation;
        self
    }

    /// Appends request-specific detail to the catalogue message.
    pub fn detail(mut self, detail: impl Into<Cow<'static, str>>) -> Self {
        self.extra().detail = Some(detail.into());
        self
    }

    /// Replaces the catalogue message.
    pub fn message(mut self, message: impl Into<Cow<'static, str>>) -> Self {
        self.extra().message = Some(message.into());
        self
    }

    /// Adds context before the operation in `errorMsg`.
    pub fn context(mut self, context: impl Into<Cow<'static, str>>) -> Self {
        self.extra().context = Some(context.into());
        self
    }

    /// Points the reason at a field or query parameter.
    pub fn target(mut self, target: Target) -> Self {
        self.extra().target = Some(target);
        self
    }

    /// An `INVALID_FIELD_ERR` for `field`, with message "The field `<field>` must be: <rule>".
    pub fn invalid_field(field: &'static str, rule: impl fmt::Display) -> Self {
        Rejection::new(Reason::InvalidField)
            .message(format!("The field `{field}` must be: {rule}"))
            .target(Target::field(field))
    }

    fn extra(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Box::default)
    }

    /// An `INVALID_FIELD_ERR` for `field` of `operation`: "The field <field> must be: <rule>",
    /// with the field name quoted the way the operation's `errorMsg` quotes `reasons` (Key
    /// Protect's own pattern: `` `plaintext` `` for wrap, `'ciphertext'` for unwrap,
    /// `"interval_month"` for instance policies).
    pub fn invalid_field_of(
        operation: Operation,
        field: &'static str,
        rule: impl fmt::Display,
    ) -> Self {
        let name = operation.quote().around(field);
        Rejection::new(Reason::InvalidField)
            .operation(operation)
            .message(format!("The field {name} must be: {rule}"))
            .target(Target::field(field))
    }

    /// The reason.
    pub fn reason(&self) -> Reason {
        self.reason
    }

    /// The reason's message as it goes on the wire (catalogue message, override and detail).
    pub fn wire_message(&self) -> Cow<'_, str> {
        let extra = self.extra.as_deref();
        let base: &str = extra
            .and_then(|e| e.message.as_deref())
            .unwrap_or(self.reason.message());
        match extra.and_then(|e| e.detail.as_ref()) {
            Some(detail) => Cow::Owned(format!("{base}: {detail}")),
            None => Cow::Borrowed(base),
        }
    }

    /// The `errorMsg` of the envelope.
    pub fn error_msg(&self) -> String {
        let status = self.reason.status();
        let phrase = status.canonical_reason().unwrap_or("Error");
        let op = self.operation;
        let quoted = match op.quote {
            Quote::Backtick => "`reasons`",
            Quote::Single => "'reasons'",
            Quote::Double => "\"reasons\"",
        };
        let context = match self.extra.as_deref().and_then(|e| e.context.as_ref()) {
            Some(c) => format!("{c}: "),
            None => String::new(),
        };
        match self.reason.style() {
            Style::Unauthorized => self.reason.message().to_owned(),
            Style::Period => format!(
                "{phrase}: {context}{}. Please see {quoted} for more details.",
                op.subject
            ),
            Style::Suffix => format!(
                "{phrase}: {context}{}: Please see {quoted} for more details ({})",
                op.subject,
                self.reason.code()
            ),
        }
    }

    /// The envelope as JSON bytes.
    pub fn body(&self) -> Bytes {
        #[derive(Serialize)]
        struct Resource<'a> {
            #[serde(rename = "errorMsg")]
            error_msg: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            reasons: Option<[ReasonJson<'a>; 1]>,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct ReasonJson<'a> {
            code: &'static str,
            message: Cow<'a, str>,
            status: u16,
            more_info: &'static str,
            #[serde(skip_serializing_if = "Option::is_none")]
            target: Option<&'a Target>,
        }
        let reasons = (self.reason.style() != Style::Unauthorized).then(|| {
            [ReasonJson {
                code: self.reason.code(),
                message: self.wire_message(),
                status: self.reason.status().as_u16(),
                more_info: MORE_INFO,
                target: self.extra.as_deref().and_then(|e| e.target.as_ref()),
            }]
        });
        let resources = [Resource {
            error_msg: self.error_msg(),
            reasons,
        }];
        let envelope = Collection::new(ERROR_COLLECTION_TYPE, &resources);
        // Serializing plain strings and numbers cannot fail.
        Bytes::from(serde_json::to_vec(&envelope).unwrap_or_default())
    }

    /// The envelope as a backend would send it: status, JSON, no gateway marker. Used by the
    /// embedded dev KMS.
    pub fn into_backend_response(self) -> Response<Body> {
        let mut response = Response::new(Body::full(self.body()));
        *response.status_mut() = self.reason.status();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }

    /// The gateway's refusal: the envelope plus `kmsgate-reason: <CODE>`, tagged with
    /// [`Rejected`] for the observe layer (which counts it and echoes the correlation id).
    pub fn into_response(self) -> Response<Body> {
        let reason = self.reason;
        let mut response = self.into_backend_response();
        response
            .headers_mut()
            .insert(REASON_HEADER, HeaderValue::from_static(reason.code()));
        response.extensions_mut().insert(Rejected(reason));
        response
    }
}

impl From<Reason> for Rejection {
    fn from(reason: Reason) -> Self {
        Rejection::new(reason)
    }
}

#[cfg(test)]
mod tests;
