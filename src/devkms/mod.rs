//! The embedded dev KMS: an in-memory, Key Protect-compatible backend for trying kmsgate out
//! and for tests. Selected with `upstream.url = "embedded"` (the gateway plugs it in as the
//! upstream service), or run alone with `kmsgate dev-kms --listen ADDR` (served by
//! [`crate::gateway::dev_kms`]). Nothing is persisted.
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
//! | `POST`/`GET /api/v2/import_token` | the import token (RSA-4096 public key and nonce on GET); secure import in `secure_import.rs` |
//! | `GET`/`PUT /api/v2/keys/{id}/policies[?policy=]` | the key's rotation and dualAuthDelete policies (`key_policies.rs`) |
//! | `POST`/`DELETE /api/v2/keys/{id}/aliases/{alias}` | 201 / 204; a key is found by its aliases wherever an id is taken |
//! | `GET /api/v2/key_rings`, `POST`/`DELETE /api/v2/key_rings/{id}` | key rings (`default` always there); `X-Kms-Key-Ring` scopes key calls |
//! | `PATCH /api/v2/keys/{id}` | moves the key to the ring `keyRingID` names |
//! | `DELETE /api/v2/keys/{id}/purge` | a deleted key, once `purge_wait` (4 h) has passed since its deletion |
//! | `GET /api/v2/keys[/{id}]/registrations`, `POST`/`PUT`/`PATCH`/`DELETE /api/v2/keys/{id}/registrations/{crn}` | registrations (`registrations.rs`); the writes by services only (403 `SERVICE_ONLY_ERR`) |
//! | `/api/v2/kmip_adapters/...` | 403 `FEATURE_RESTRICTED_ERR` with Key Protect's message |
//!
//! Anything else gets 403 `FEATURE_RESTRICTED_ERR` ("not implemented by the dev KMS").
//!
//! Queries are read as Key Protect's Go server reads them (`query.rs`): percent-decoded, `+` a
//! space, the first of repeated parameters; a pair that does not decode is 400
//! `INVALID_QUERY_PARAM_ERR` naming it.
//!
//! Who calls: the subject of the [`Identity`](crate::auth::Identity) the gateway's bearer layer
//! verified and recorded in the request's context, or, without one (`kmsgate dev-kms`, `auth.enabled = false`), the
//! unverified `sub` of the bearer token; a service when the identity says so, or the token's
//! `sub_type` is `ServiceId` (IBM IAM's mark). A service may write registrations and may not
//! delete or purge keys (403 `RESOURCE_OWNER_ERR`). The subject is recorded as
//! `createdBy`/`deletedBy`, and dual
//! authorization needs two: a key with dualAuthDelete is deleted only after a
//! `setKeyForDeletion` by another subject than the deleter (409 `AUTHORIZATIONS_NOT_MET`).
//! The instance's dualAuthDelete is the gateway's ([`ActivePolicy`] in the extensions) when
//! the gateway owns the policies, else the one put to the dev KMS.
//!
//! Wrap and unwrap are real AES-GCM (aws-lc-rs, see `crypto`); rotation adds a key version and
//! unwrapping an older version's ciphertext also returns it rewrapped with the newest. A root
//! key is rotated at most once per `rotation_interval` (409 `KEY_ROTATION_NOT_PERMITTED`;
//! `[upstream.dev_kms]`, one hour by default); enable and restore wait `action_wait` (30 s)
//! after the key's last action, purge `purge_wait` (4 h) after deletion (409
//! `REQ_TOO_EARLY_ERR`). Errors are Key Protect's reason codes, rendered
//! by [`Rejection::into_backend_response`]. The dev KMS does not verify tokens (the gateway
//! does) and does not enforce instance policies (the gateway does).

mod actions;
mod aliases;
mod call;
mod crypto;
mod import_token;
mod key_policies;
mod key_rings;
mod keys;
mod list;
mod model;
mod policies;
mod query;
mod registrations;
mod secure_import;
mod store;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::HeaderMap;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::body::Body;
use crate::config::dev_kms::DevKmsConfig;
use crate::context;
use crate::reason::{Operation, Reason, Rejection};
use crate::route::Route;
use call::Call;
use model::Rules;
use query::Query;
use store::Store;

/// The largest request body the dev KMS reads.
const BODY_LIMIT: usize = 1024 * 1024;

use crate::canonical::BLUEMIX_INSTANCE;

/// The dev KMS as a Tower service. Cheap to clone (shared state inside).
#[derive(Clone, Debug, Default)]
pub struct DevKms {
    store: Arc<Store>,
    rules: Rules,
}

impl DevKms {
    /// A dev KMS with no instances yet (an instance exists on first use), with Key Protect's
    /// waiting rules (one rotation an hour, purge four hours after deletion).
    pub fn new() -> Self {
        DevKms::default()
    }

    /// A dev KMS with the waiting rules of `[upstream.dev_kms]`.
    pub fn with_config(config: &DevKmsConfig) -> Self {
        DevKms {
            store: Arc::default(),
            rules: Rules {
                rotation_interval: config.rotation_interval,
                purge_wait: config.purge_wait,
                action_wait: config.action_wait,
            },
        }
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
        let rules = self.rules;
        Box::pin(async move { Ok(handle(&store, rules, req).await) })
    }
}

async fn handle(store: &Store, rules: Rules, req: Request<Body>) -> Response<Body> {
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
    // A new import token's RSA key pair is made off the runtime's threads, before the store is
    // locked.
    let import_key = if route == Route::ImportToken && parts.method == Method::POST {
        tokio::task::spawn_blocking(crypto::ImportKeyPair::generate)
            .await
            .ok()
    } else {
        None
    };
    let token_caller;
    let (subject, is_service) = match context::identity(&parts.extensions) {
        Some(identity) => (&*identity.subject, identity.is_service),
        None => {
            token_caller = bearer_caller(&parts.headers);
            match &token_caller {
                Some((sub, service)) => (sub.as_str(), *service),
                None => (model::ACTOR, false),
            }
        }
    };
    let gateway_dual_auth =
        context::policy(&parts.extensions).and_then(|policy| policy.model.dual_auth_delete);
    let call = Call {
        route,
        method: &parts.method,
        path: parts.uri.path(),
        key_id: key_id(parts.uri.path()),
        query,
        headers: &parts.headers,
        body,
        subject,
        is_service,
        gateway_dual_auth,
        rules,
        import_key: std::cell::Cell::new(import_key),
    };
    store
        .with_instance(instance, |instance| dispatch(instance, &call))
        .unwrap_or_else(Rejection::into_backend_response)
}

fn dispatch(instance: &mut store::Instance, call: &Call<'_>) -> Result<Response<Body>, Rejection> {
    match call.route {
        Route::KeyCreate | Route::KeyCreateWithPolicyOverrides => keys::create(instance, call),
        Route::KeyList => list::keys(instance, call),
        Route::KeyGet => keys::get(instance, call, model::View::Full),
        Route::KeyMetadata => keys::get(instance, call, model::View::Metadata),
        Route::KeyVersions => keys::versions(instance, call),
        Route::KeyDelete => keys::delete(instance, call),
        Route::KeyRestore => keys::restore(instance, call),
        Route::KeyPurge => keys::purge(instance, call),
        Route::KeyPatch => key_rings::patch_key(instance, call),
        Route::KeyPolicies => key_policies::handle(instance, call),
        Route::KeyAliases => aliases::handle(instance, call),
        Route::KeyRings => key_rings::handle(instance, call),
        Route::Registrations
        | Route::RegistrationCreate
        | Route::RegistrationReplace
        | Route::RegistrationUpdate
        | Route::RegistrationDelete
        | Route::RegistrationAction => registrations::handle(instance, call),
        // KMIP adapters are a Key Protect feature enabled per instance by IBM: refused as Key
        // Protect refuses a feature the instance does not have.
        Route::Kmip => Err(Rejection::new(Reason::FeatureRestricted).operation(Operation::REQUEST)),
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

/// The `sub` claim of the request's bearer token, and whether its `sub_type` is `ServiceId`
/// (IBM IAM's service mark), read without verifying anything: what the dev KMS knows of the
/// caller when no gateway verified the token (`kmsgate dev-kms`, or a gateway with
/// `auth.enabled = false`).
fn bearer_caller(headers: &HeaderMap) -> Option<(String, bool)> {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    #[derive(serde::Deserialize)]
    struct Claims {
        sub: Option<String>,
        sub_type: Option<serde_json::Value>,
    }
    let value = headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let payload = token.trim().split('.').nth(1)?;
    let payload = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims = serde_json::from_slice::<Claims>(&payload).ok()?;
    let sub = claims.sub.filter(|s| !s.is_empty())?;
    let is_service = claims
        .sub_type
        .is_some_and(|t| t.as_str() == Some("ServiceId"));
    Some((sub, is_service))
}

/// The `{id}` of `/api/v2/keys/{id}[/...]`.
fn key_id(path: &str) -> Option<&str> {
    let id = path.strip_prefix("/api/v2/keys/")?.split('/').next()?;
    (!id.is_empty()).then_some(id)
}

#[cfg(test)]
mod tests;
