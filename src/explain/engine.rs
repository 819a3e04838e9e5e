//! The engine: the real stack, built by the gateway's own preparation
//! ([`Gateway::prepare`], [`Prepared::stack_with`]) from the configuration, with the upstream
//! replaced by a recorder; and the per-layer account ([`Narrator`]) beside it.
//!
//! Nothing leaves the process: the recorder answers in place of the KMS (the configured one,
//! remote or the embedded dev KMS, is never called) with 501 and no body, a status on which
//! nothing after the upstream acts (the policy API's mirror mode applies a PUT only on 2xx).
//! The policy API's `own` mode writes an accepted PUT to `policies.dir`; the explaining stack's
//! policy source writes to a scratch directory instead, removed afterwards, and its store is a
//! copy: what `explain` is asked never changes the policies.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Response, Uri, header};
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::input::{InputError, RequestInput};
use super::narrative::{Narrative, Narrator, Predicted};
use super::report::{
    Agreement, Explanation, ForwardedInfo, Outcome, RefusalInfo, RequestSummary, WireResponse,
};
use crate::body::Body;
use crate::config::{Config, ConfigError};
use crate::conn::{ConnInfo, ListenerKind};
use crate::context::RequestContext;
use crate::gateway::{Gateway, Prepared, Stack};
use crate::metrics::Metrics;
use crate::policy::etcd::EtcdSource;
use crate::policy::reload::PolicySource;
use crate::policy::{PolicyApiMode, PolicyStore};
use crate::reason::{REASON_HEADER, Rejected};
use crate::upstream::Upstream;

/// What reached the upstream (a request extension the recorder fills).
#[derive(Clone, Debug, Default)]
struct Probe(Arc<Mutex<Option<ForwardedInfo>>>);

/// Headers whose values are credentials: shown as `[redacted]`.
const SECRET_HEADERS: [HeaderName; 3] = [
    header::AUTHORIZATION,
    header::PROXY_AUTHORIZATION,
    header::COOKIE,
];

/// The headers of `headers`, credentials redacted.
fn redacted(headers: &http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            let value = if SECRET_HEADERS.contains(name) {
                "[redacted]".to_owned()
            } else {
                String::from_utf8_lossy(value.as_bytes()).into_owned()
            };
            (name.as_str().to_owned(), value)
        })
        .collect()
}

/// The upstream in the explaining stack: records what it is sent, answers 501.
async fn record(req: Request<Body>) -> Result<Response<Body>, std::convert::Infallible> {
    if let Some(probe) = req.extensions().get::<Probe>() {
        let info = ForwardedInfo {
            method: req.method().to_string(),
            target: req.uri().to_string(),
            headers: redacted(req.headers()),
            body_bytes: req.body().as_bytes().map_or(0, <[u8]>::len),
        };
        if let Ok(mut slot) = probe.0.lock() {
            *slot = Some(info);
        }
    }
    let mut response = Response::new(Body::empty());
    *response.status_mut() = http::StatusCode::NOT_IMPLEMENTED;
    Ok(response)
}

/// A scratch `policies.dir` for the explaining stack's policy API, removed on drop.
#[derive(Debug)]
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch, ConfigError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir =
            std::env::temp_dir().join(format!("kmsgate-explain-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| ConfigError::invalid("policies.dir", format!("scratch copy: {e}")))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Explains requests under one configuration. Build once, explain many requests.
pub struct Explainer {
    prepared: Prepared,
    /// The explaining stack's own copy of the policies.
    store: PolicyStore,
    /// The store it follows, if any (the running gateway's, for the admin endpoint).
    follows: Option<PolicyStore>,
    /// The shared store that feeds it, if any (its revision is reported).
    etcd: Option<EtcdSource>,
    stack: Stack,
    narrator: Narrator,
    _scratch: Option<Scratch>,
}

impl std::fmt::Debug for Explainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Explainer")
            .field("prepared", &self.prepared)
            .field("follows", &self.follows.is_some())
            .field("etcd", &self.etcd.is_some())
            .finish_non_exhaustive()
    }
}

impl Explainer {
    /// Prepares the gateway for `config` (every file it names is read, as a start reads it)
    /// and builds the explaining stack. Needs a Tokio runtime (the stack's services are
    /// built on it, as a start builds them).
    pub fn new(config: Config) -> Result<Explainer, ConfigError> {
        let prepared = Gateway::prepare(config)?;
        // A copy of the loaded policies: the explaining stack's policy API may change it.
        let store = PolicyStore::new((*prepared.policies().store().snapshot()).clone());
        let mut policies_config = prepared.config().policies.clone();
        let scratch = match (&policies_config.dir, policies_config.api) {
            (Some(_), PolicyApiMode::Own) => {
                let scratch = Scratch::new()?;
                policies_config.dir = Some(scratch.0.clone());
                Some(scratch)
            }
            _ => None,
        };
        let source = Arc::new(PolicySource::new(
            policies_config,
            store.clone(),
            &Metrics::new(),
        ));
        let upstream = Upstream::embedded(tower::service_fn(record), prepared.metrics().clone());
        let stack = prepared.stack_with(upstream, &source);
        let narrator = Narrator::new(prepared.config(), &store, prepared.bearer().auth().cloned());
        Ok(Explainer {
            prepared,
            store,
            follows: None,
            etcd: None,
            stack,
            narrator,
            _scratch: scratch,
        })
    }

    /// Like [`Explainer::new`], but each request is explained under the policies `store`
    /// holds at that moment (copied; the admin endpoint follows the running gateway's store).
    /// `etcd`: the shared store that feeds `store`, if any (its revision is reported).
    pub fn following(
        config: Config,
        store: PolicyStore,
        etcd: Option<EtcdSource>,
    ) -> Result<Explainer, ConfigError> {
        let mut explainer = Explainer::new(config)?;
        explainer.follows = Some(store);
        explainer.etcd = etcd;
        Ok(explainer)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        self.prepared.config()
    }

    /// The request `input` describes, as the listener would hand it to the stack.
    pub fn request(&self, input: &RequestInput) -> Result<Request<Body>, InputError> {
        let config = self.config();
        let listener = match input.listener {
            ListenerKind::Public => config.listen.public,
            ListenerKind::Private => config.listen.private.ok_or_else(|| {
                InputError("--listener private: the configuration has no listen.private".into())
            })?,
        };
        let method = Method::from_bytes(input.method.as_bytes())
            .map_err(|_| InputError(format!("not an HTTP method: {:?}", input.method)))?;
        let url: Uri = input
            .url
            .parse()
            .map_err(|e| InputError(format!("not a URL: {:?}: {e}", input.url)))?;
        // An HTTP/1.1 client sends the origin form and names the authority in Host.
        let target = url.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        let mut builder = Request::builder()
            .method(method)
            .uri(&target)
            .version(http::Version::HTTP_11);
        let has = |name: &str| {
            input
                .headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(name))
        };
        if !has("host") {
            let host = url
                .authority()
                .map_or_else(|| listener.to_string(), |a| a.as_str().to_owned());
            builder = builder.header(header::HOST, host);
        }
        for (name, value) in &input.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| InputError(format!("not a header name: {name:?}")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| InputError(format!("not a header value for {name}: {value:?}")))?;
            builder = builder.header(name, value);
        }
        if !input.body.is_empty() && !has("content-length") && !has("transfer-encoding") {
            builder = builder.header(header::CONTENT_LENGTH, input.body.len());
        }
        let mut req = builder
            .body(Body::full(input.body.clone()))
            .map_err(|e| InputError(format!("not a request: {e}")))?;
        // As the server does: the request's context, holding its connection.
        req.extensions_mut()
            .insert(Arc::new(RequestContext::for_conn(ConnInfo {
                peer: SocketAddr::new(input.peer, 40000),
                local: listener,
                listener: input.listener,
                tls: config.listen.tls.is_some(),
            })));
        Ok(req)
    }

    /// Explains `input`: the per-layer account, and what the real stack did.
    pub async fn explain(&self, input: &RequestInput) -> Result<Explanation, InputError> {
        if let Some(follows) = &self.follows {
            self.store.replace((*follows.snapshot()).clone());
        }
        let revision = self.etcd.as_ref().map(EtcdSource::revision);
        let narrative = self.narrator.narrate(self.request(input)?, revision);
        let mut req = self.request(input)?;
        let summary = RequestSummary {
            method: req.method().to_string(),
            target: req.uri().to_string(),
            host: req
                .headers()
                .get(header::HOST)
                .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned()),
            listener: input.listener.as_str(),
            peer: input.peer.to_string(),
        };
        let probe = Probe::default();
        req.extensions_mut().insert(probe.clone());
        let response = match self.stack.clone().oneshot(req).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let forwarded = probe.0.lock().ok().and_then(|mut slot| slot.take());
        let rejected = response.extensions().get::<Rejected>().map(|r| r.0);
        let outcome = match (&forwarded, rejected) {
            (_, Some(_)) => Outcome::Refused,
            (Some(_), None) => Outcome::Forwarded,
            (None, None) => Outcome::Answered,
        };
        let wire = match outcome {
            Outcome::Forwarded => None,
            _ => Some(wire(response).await),
        };
        Ok(assemble(summary, narrative, outcome, wire, forwarded))
    }
}

/// The response as the server writes it: its headers plus the `content-length` hyper adds
/// for a body of known length.
async fn wire(response: Response<Body>) -> WireResponse {
    let (parts, body) = response.into_parts();
    let body: Bytes = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let mut headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let bodiless = parts.status == http::StatusCode::NO_CONTENT || parts.status.is_informational();
    if !bodiless && !parts.headers.contains_key(header::CONTENT_LENGTH) {
        headers.push(("content-length".to_owned(), body.len().to_string()));
    }
    WireResponse {
        status: parts.status.as_u16(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// Puts the account and the stack's outcome together, checking that they agree.
fn assemble(
    request: RequestSummary,
    narrative: Narrative,
    outcome: Outcome,
    response: Option<WireResponse>,
    forwarded: Option<ForwardedInfo>,
) -> Explanation {
    let code = response.as_ref().and_then(|r| {
        r.headers
            .iter()
            .find(|(n, _)| n.as_str() == REASON_HEADER.as_str())
            .map(|(_, v)| v.clone())
    });
    let (agreement, refusal) = match (&narrative.predicted, outcome) {
        (
            Predicted::Refused {
                layer,
                rule,
                response: predicted,
            },
            Outcome::Refused,
        ) => {
            let predicted_code = predicted
                .headers()
                .get(REASON_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let predicted_body = predicted.body().as_bytes().unwrap_or_default();
            let actual = response.as_ref();
            let same = predicted_code == code
                && actual.is_some_and(|r| {
                    r.status == predicted.status().as_u16() && r.body.as_bytes() == predicted_body
                });
            let refusal = RefusalInfo {
                layer,
                rule: rule.clone(),
                status: actual.map_or(0, |r| r.status),
                code: code.clone().unwrap_or_default(),
            };
            let note = (!same).then(|| {
                format!(
                    "the per-layer account predicted {} {} from {layer}; the stack answered {} {}",
                    predicted.status().as_u16(),
                    predicted_code.as_deref().unwrap_or("-"),
                    actual.map_or(0, |r| r.status),
                    code.as_deref().unwrap_or("-"),
                )
            });
            (Agreement { agrees: same, note }, Some(refusal))
        }
        (Predicted::Forwarded, Outcome::Forwarded) | (Predicted::Answered, Outcome::Answered) => (
            Agreement {
                agrees: true,
                note: None,
            },
            None,
        ),
        (predicted, actual) => {
            let said = match predicted {
                Predicted::Refused { layer, .. } => format!("a refusal by {layer}"),
                Predicted::Forwarded => "forwarded".to_owned(),
                Predicted::Answered => "answered by the gateway".to_owned(),
            };
            let refusal = (actual == Outcome::Refused).then(|| RefusalInfo {
                layer: "(a layer the per-layer account does not model)",
                rule: "see the response".to_owned(),
                status: response.as_ref().map_or(0, |r| r.status),
                code: code.clone().unwrap_or_default(),
            });
            let note = format!(
                "the per-layer account predicted {said}; the stack's outcome is {}{}",
                match actual {
                    Outcome::Forwarded => "forwarded",
                    Outcome::Refused => "refused",
                    Outcome::Answered => "answered",
                },
                code.as_deref().map_or(String::new(), |c| format!(" ({c})")),
            );
            (
                Agreement {
                    agrees: false,
                    note: Some(note),
                },
                refusal,
            )
        }
    };
    Explanation {
        request,
        route: narrative.route,
        client: narrative.client,
        instance: narrative.instance,
        private: narrative.private,
        token: narrative.token,
        layers: narrative.steps,
        outcome,
        refusal,
        response,
        forwarded,
        agreement,
    }
}
