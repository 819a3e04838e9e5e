//! What `kmsgate explain` reports about one request (serialised as is by `--json`). It never
//! holds a token, key material, plaintext or ciphertext: headers that carry credentials are
//! redacted, bodies are shown only when they are the gateway's own refusal.

use serde::Serialize;

/// The whole explanation of one request.
#[derive(Clone, Debug, Serialize)]
pub struct Explanation {
    /// The request as it reaches the stack.
    pub request: RequestSummary,
    /// The route and operation, once the route layer has classified the request.
    pub route: Option<RouteInfo>,
    /// The client address and how it was derived.
    pub client: Option<ClientInfo>,
    /// The instance and the policy document that applies to it.
    pub instance: Option<InstanceInfo>,
    /// Whether the request counts as private, and why.
    pub private: Option<PrivateInfo>,
    /// The bearer token's verification (never the token itself).
    pub token: Option<TokenInfo>,
    /// Each layer's verdict, in the stack's order.
    pub layers: Vec<Step>,
    /// What the real stack did: `forwarded`, `refused` or `answered` (by the gateway itself,
    /// e.g. the policy API in `own` mode).
    pub outcome: Outcome,
    /// For a refusal: the layer, the rule, the status and the code.
    pub refusal: Option<RefusalInfo>,
    /// The response the client would get, byte for byte (for a refusal or a gateway answer).
    pub response: Option<WireResponse>,
    /// What the upstream would receive (credentials redacted), when forwarded.
    pub forwarded: Option<ForwardedInfo>,
    /// Whether the per-layer account agrees with what the real stack did.
    pub agreement: Agreement,
}

/// The request as it reaches the stack.
#[derive(Clone, Debug, Serialize)]
pub struct RequestSummary {
    /// The method.
    pub method: String,
    /// The request target (origin form) as sent.
    pub target: String,
    /// The `Host` header as sent.
    pub host: Option<String>,
    /// `public` or `private`.
    pub listener: &'static str,
    /// The TCP peer.
    pub peer: String,
}

/// The route layer's reading of the request.
#[derive(Clone, Debug, Serialize)]
pub struct RouteInfo {
    /// The route (the metrics' `route` label), e.g. `key_create`.
    pub name: &'static str,
    /// The operation as an `errorMsg` names it, e.g. `Key could not be created`.
    pub operation: &'static str,
    /// The canonical request target the layers decide on (and the upstream receives).
    pub canonical_target: String,
    /// Whether the canonical form differs from what was sent.
    pub rewritten: bool,
}

/// The client address.
#[derive(Clone, Debug, Serialize)]
pub struct ClientInfo {
    /// The address the policies see.
    pub address: String,
    /// How it was derived, in words.
    pub derivation: String,
    /// The hops walked: the peer first, then the forwarded header right to left.
    pub hops: Vec<HopInfo>,
}

/// One hop of the client-address walk.
#[derive(Clone, Debug, Serialize)]
pub struct HopInfo {
    /// `peer`, `forwarded` or `malformed`.
    pub kind: &'static str,
    /// The address (none for a malformed entry).
    pub address: Option<String>,
    /// Whether it is a trusted proxy.
    pub trusted: bool,
}

/// The instance and its policies.
#[derive(Clone, Debug, Serialize)]
pub struct InstanceInfo {
    /// The `bluemix-instance` header as sent.
    pub header: Option<String>,
    /// Its canonical form (what the policies are looked up by, and what goes upstream).
    pub canonical: Option<String>,
    /// Which policy document applies.
    pub policy: PolicyOrigin,
    /// The policies that apply, in Key Protect's words (enabled ones only).
    pub policies: Vec<String>,
}

/// Where the applying policy document comes from.
#[derive(Clone, Debug, Serialize)]
pub struct PolicyOrigin {
    /// `file`, `inline`, `default-file`, `default-inline`, `api` (set through the policy API
    /// since the files were read), `none` (no policies apply) or `refused` (an unknown instance
    /// under `policies.unknown_instance = "reject"`).
    pub source: &'static str,
    /// The file or the config key.
    pub location: Option<String>,
    /// A note (e.g. that an etcd store is not read by explain).
    pub note: Option<String>,
}

/// Why the request is (or is not) private.
#[derive(Clone, Debug, Serialize)]
pub struct PrivateInfo {
    /// Whether it counts as private.
    pub private: bool,
    /// Each rule and what it found.
    pub why: Vec<String>,
}

/// The bearer token, as the bearer layer decided on it.
#[derive(Clone, Debug, Serialize)]
pub struct TokenInfo {
    /// `verified`, `decoded` (decode-only mode), `refused`, `absent` or `not checked`.
    pub result: &'static str,
    /// For a refusal: which check failed.
    pub failure: Option<&'static str>,
    /// The subject (from the verified token; marked unverified otherwise).
    pub subject: Option<String>,
    /// Whether the subject was verified.
    pub verified: bool,
    /// `service` or `user` (by `auth.service_claim`).
    pub caller: Option<&'static str>,
    /// The token's `exp` (Unix seconds).
    pub expires: Option<u64>,
    /// The token's `exp`, RFC 3339.
    pub expires_at: Option<String>,
}

/// One layer's verdict.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    /// The layer, as `gateway.rs` names it.
    pub layer: &'static str,
    /// `pass`, `refuse`, `shadowed` (would refuse; the policy type is shadowed), `skip` (not
    /// reached, or nothing to check), `answer` (the gateway answers itself) or `forward`.
    pub verdict: &'static str,
    /// What the layer looked at and found.
    pub detail: String,
    /// The code of a refusal (or of a shadowed one).
    pub code: Option<&'static str>,
}

/// What the real stack did with the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It reached the upstream.
    Forwarded,
    /// A layer refused it (`kmsgate-reason` is set).
    Refused,
    /// The gateway answered it itself, without a refusal.
    Answered,
}

impl Outcome {
    /// The exit code of `kmsgate explain`: 0 forwarded (or answered), 1 refused.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Forwarded | Outcome::Answered => 0,
            Outcome::Refused => 1,
        }
    }
}

/// A refusal.
#[derive(Clone, Debug, Serialize)]
pub struct RefusalInfo {
    /// The layer that refused.
    pub layer: &'static str,
    /// The rule, in words.
    pub rule: String,
    /// The HTTP status.
    pub status: u16,
    /// The reason code.
    pub code: String,
}

/// A response as the gateway writes it on an HTTP/1.1 connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WireResponse {
    /// The status code.
    pub status: u16,
    /// The headers, in order, including the `content-length` the server adds (the server also
    /// adds `date`, which is not shown).
    pub headers: Vec<(String, String)>,
    /// The body (the envelope of a refusal), as UTF-8 text.
    pub body: String,
}

/// What the upstream would receive.
#[derive(Clone, Debug, Serialize)]
pub struct ForwardedInfo {
    /// The method.
    pub method: String,
    /// The request target.
    pub target: String,
    /// The headers (credentials redacted).
    pub headers: Vec<(String, String)>,
    /// The body's length in bytes (the body itself is never shown).
    pub body_bytes: usize,
}

/// Whether the per-layer account and the real stack agree.
#[derive(Clone, Debug, Serialize)]
pub struct Agreement {
    /// True when they agree.
    pub agrees: bool,
    /// What differs, when they do not.
    pub note: Option<String>,
}
