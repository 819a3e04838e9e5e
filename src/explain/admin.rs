//! `POST /explain` on the admin listener (`listen.admin_explain`, off by default): the same
//! engine as the command, for a request given as JSON, under the policies the gateway enforces
//! at that moment (its store's current snapshot, copied per request).
//!
//! The body is an object: `{"method": "POST", "url": "/api/v2/keys", "headers": [["name",
//! "value"], …], "body": "…", "peer": "10.0.0.5", "listener": "public"}` (only `url` is
//! required), or `{"curl": "curl -X POST …", "peer": …, "listener": …}`, or `{"http": "POST
//! /api/v2/keys HTTP/1.1\r\n…"}`. The answer is the explanation as `kmsgate explain --json`
//! prints it (200), or `{"error": "…"}` (400).

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;

use super::engine::Explainer;
use super::input::{InputError, RequestInput, shell_words};
use crate::conn::ListenerKind;
use crate::gateway::Gateway;
use crate::settings::ConfigError;

/// A request to explain, as the endpoint takes it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct JsonRequest {
    method: Option<String>,
    url: Option<String>,
    headers: Vec<(String, String)>,
    body: Option<String>,
    curl: Option<String>,
    http: Option<String>,
    peer: Option<IpAddr>,
    listener: Option<String>,
}

impl JsonRequest {
    fn input(self) -> Result<RequestInput, InputError> {
        let mut input = match (self.curl, self.http, self.url) {
            (Some(curl), None, None) => RequestInput::from_curl(&shell_words(&curl)?)?,
            (None, Some(http), None) => RequestInput::from_http(http.as_bytes())?,
            (None, None, Some(url)) => RequestInput {
                method: self.method.unwrap_or_else(|| "GET".to_owned()),
                url,
                headers: self.headers,
                body: Bytes::from(self.body.unwrap_or_default()),
                ..RequestInput::default()
            },
            _ => {
                return Err(InputError(
                    "give exactly one of \"url\", \"curl\" or \"http\"".to_owned(),
                ));
            }
        };
        if let Some(peer) = self.peer {
            input.peer = peer;
        }
        input.listener = match self.listener.as_deref() {
            None | Some("public") => ListenerKind::Public,
            Some("private") => ListenerKind::Private,
            Some(other) => {
                return Err(InputError(format!(
                    "listener: \"public\" or \"private\", not {other:?}"
                )));
            }
        };
        Ok(input)
    }
}

/// With `listen.admin_explain`, hands `gateway` the engine for `POST /explain`, explaining
/// under the gateway's own policy store.
pub fn install(gateway: &mut Gateway) -> Result<(), ConfigError> {
    if !gateway.config().listen.admin_explain {
        return Ok(());
    }
    let explainer = Arc::new(Explainer::following(
        gateway.config().clone(),
        gateway.policies().clone(),
        gateway.etcd().cloned(),
    )?);
    gateway.serve_explain(Arc::new(move |body| {
        let explainer = explainer.clone();
        Box::pin(async move { answer(&explainer, &body).await })
    }));
    Ok(())
}

/// The endpoint's answer to `body`.
pub async fn answer(explainer: &Explainer, body: &[u8]) -> (StatusCode, Bytes) {
    let error = |message: String| {
        let body = serde_json::json!({ "error": message }).to_string();
        (StatusCode::BAD_REQUEST, Bytes::from(body))
    };
    let request: JsonRequest = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(e) => return error(format!("not an explain request: {e}")),
    };
    let input = match request.input() {
        Ok(input) => input,
        Err(e) => return error(e.0),
    };
    match explainer.explain(&input).await {
        Ok(explanation) => match serde_json::to_vec(&explanation) {
            Ok(json) => (StatusCode::OK, Bytes::from(json)),
            Err(e) => error(e.to_string()),
        },
        Err(e) => error(e.0),
    }
}
