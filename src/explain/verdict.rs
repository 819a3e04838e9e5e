//! The pieces of the per-layer account: a step, the predicted outcome, and the words for
//! the rules ([`super::narrative`] tells the account with them).

use http::{Request, Response};

use super::report::Step;
use crate::body::Body;
use crate::reason::Reason;

/// What the per-layer account predicts.
#[derive(Debug)]
pub enum Predicted {
    /// Refused by `layer` for `rule`, with this response (before the observe layer adds the
    /// correlation id).
    Refused {
        /// The layer.
        layer: &'static str,
        /// The rule, in words.
        rule: String,
        /// The response the layer renders.
        response: Box<Response<Body>>,
    },
    /// Answered by the gateway itself (the policy API in `own` mode).
    Answered,
    /// Forwarded to the upstream.
    Forwarded,
}

/// The layers after observe, in the stack's order (`gateway.rs`).
pub const LAYERS: [&str; 11] = [
    "route",
    "client_ip",
    "instance",
    "network",
    "allowed_ip",
    "bearer",
    "service_rules",
    "body",
    "policy_api",
    "key_access",
    "proxy",
];

/// A verdict of `layer`.
pub fn step(layer: &'static str, verdict: &'static str, detail: impl Into<String>) -> Step {
    Step {
        layer,
        verdict,
        detail: detail.into(),
        code: None,
    }
}

impl Predicted {
    /// The refusal's reason code, if it is one.
    pub fn reason(&self) -> Option<Reason> {
        match self {
            Predicted::Refused { response, .. } => response
                .extensions()
                .get::<crate::reason::Rejected>()
                .map(|r| r.0),
            _ => None,
        }
    }

    /// The same prediction with the rule stated as `rule` (the layer's own words for it).
    pub fn with_rule(self, rule: &str, steps: &mut [Step]) -> Predicted {
        if let Some(last) = steps.last_mut().filter(|_| !rule.is_empty()) {
            last.detail = rule.to_owned();
        }
        match self {
            Predicted::Refused {
                layer, response, ..
            } if !rule.is_empty() => Predicted::Refused {
                layer,
                rule: rule.to_owned(),
                response,
            },
            other => other,
        }
    }
}

/// The allowedIP rule that refused `client`, in words.
pub fn allowed_ip_rule(reason: Reason, client: std::net::IpAddr) -> String {
    match reason {
        Reason::FeatureRestricted => {
            format!("allowedIP: IPv6 client {client} against a list of IPv4 ranges only")
        }
        _ => format!("allowedIP: client {client} is outside every allowed range"),
    }
}

/// The verdict of a shadowed refusal: it would refuse with `reason`, and forwards.
pub fn shadowed(layer: &'static str, reason: Reason, rule: &str) -> Step {
    Step {
        layer,
        verdict: "shadowed",
        detail: format!("would refuse ({rule}), but the policy type is shadowed: forwarded"),
        code: Some(reason.code()),
    }
}

/// The value of header `name`, as text.
pub fn header_text<B>(req: &Request<B>, name: &http::HeaderName) -> Option<String> {
    req.headers()
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}
