//! Registrations: the associations between a root key and the cloud resources (by CRN) it
//! protects, which IBM services create on their customers' keys.
//!
//! | route | answer |
//! |---|---|
//! | `GET /api/v2/keys/{id}/registrations`, `GET /api/v2/keys/registrations` | 200 + the registrations (`limit`, `offset`, `preventKeyDeletion`, `urlEncodedResourceCRN` — exact, or a prefix ending in `*` —, `totalCount`) |
//! | `POST /api/v2/keys/{id}/registrations/{urlEncodedResourceCRN}` | 201 + the registration; a root key that is not deleted (422 `KEY_ROOT_REQ_REG_ERR`, `KEY_INVALID_STATE_ERR`) |
//! | `PUT` (replace), `PATCH` (update) the same path | 200 + the registration; a `keyVersionId` older than the registration's is 422 `KEY_VERSION_INVALID` |
//! | `DELETE` the same path | 204, or 200 + the registration with `Prefer: return=representation` |
//!
//! The writes are for services only (403 `SERVICE_ONLY_ERR`), as in Key Protect. The body is
//! Key Protect's registration input: `{"metadata": {"collectionType":
//! "application/vnd.ibm.kms.registration_input+json", "collectionTotal": 1}, "resources":
//! [{"description", "preventKeyDeletion", "registrationMetadata", "keyVersionId"}]}`.
//! A key's registrations keep it: deleting it is 409 `PROTECTED_RESOURCE_ERR` without `force`,
//! and 409 `PREV_KEY_DEL_ERR` while one has `preventKeyDeletion` (see `keys::delete`).

use http::{Method, Response, StatusCode};
use serde::Deserialize;

use super::call::{Call, Prefer, collection, no_content};
use super::keys;
use super::list::invalid_query;
use super::model::{Key, Registration, State};
use super::query::{parse_bool, unescape};
use super::store::{Instance, now};
use crate::body::Body;
use crate::collection::Collection;
use crate::reason::{Reason, Rejection};
use crate::route::Route;

/// The `collectionType` of registrations.
const REGISTRATION_COLLECTION: &str = "application/vnd.ibm.kms.registration+json";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    #[serde(default)]
    #[allow(dead_code)]
    metadata: Option<serde_json::Value>,
    resources: Vec<InputResource>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct InputResource {
    description: Option<String>,
    prevent_key_deletion: Option<bool>,
    registration_metadata: Option<String>,
    key_version_id: Option<String>,
}

/// Serves every registration route.
pub(crate) fn handle(
    instance: &mut Instance,
    call: &Call<'_>,
) -> Result<Response<Body>, Rejection> {
    match call.route {
        Route::Registrations => list(instance, call),
        _ if !call.is_service => Err(call.reject(Reason::ServiceOnly)),
        Route::RegistrationAction => Err(call
            .reject(Reason::FeatureRestricted)
            .message("This action is not implemented by the dev KMS")),
        route => write(instance, call, route),
    }
}

/// The resource CRN of the path: everything after `/registrations/`, percent-decoded (a CRN
/// sent unencoded keeps its `/`).
fn resource_crn(call: &Call<'_>) -> Result<String, Rejection> {
    call.path
        .split_once("/registrations/")
        .map(|(_, crn)| crn.trim_end_matches('/'))
        .filter(|crn| !crn.is_empty())
        .and_then(unescape)
        .filter(|crn| crn.starts_with("crn:"))
        .ok_or_else(|| {
            call.reject(Reason::BadBody)
                .detail("the path must end in a URL-encoded resource CRN (crn:v1:…)")
        })
}

fn write(
    instance: &mut Instance,
    call: &Call<'_>,
    route: Route,
) -> Result<Response<Body>, Rejection> {
    let crn = resource_crn(call)?;
    let key = keys::named(instance, call)?;
    let key_id = key.id.clone();
    let input = match route {
        Route::RegistrationDelete => InputResource::default(),
        _ => input(call)?,
    };
    let version = match &input.key_version_id {
        Some(id) => key
            .version(id)
            .map(|v| (v.id.clone(), v.created.clone()))
            .ok_or_else(|| call.invalid_field("keyVersionId", "a version of the key"))?,
        None => (key.latest().id.clone(), key.latest().created.clone()),
    };
    if route == Route::RegistrationCreate {
        check_key(key, call)?;
    }
    let existing = instance
        .registrations
        .iter()
        .position(|r| r.key_id == key_id && r.resource_crn == crn);
    let subject = call.subject;
    match (route, existing) {
        (Route::RegistrationCreate, Some(_)) => Err(call
            .reject(Reason::BadBody)
            .detail("a registration for this key and resource exists: replace or update it")),
        (Route::RegistrationCreate, None) => {
            let date = now();
            let registration = Registration {
                key_id,
                resource_crn: crn,
                prevent_key_deletion: input.prevent_key_deletion.unwrap_or(false),
                description: input.description,
                registration_metadata: input.registration_metadata,
                key_version: version,
                created_by: subject.to_owned(),
                created: date.clone(),
                updated_by: subject.to_owned(),
                updated: date,
            };
            let response = respond(StatusCode::CREATED, &registration);
            instance.registrations.push(registration);
            Ok(response)
        }
        (_, None) => Err(call
            .reject(Reason::KeyNotFound)
            .message("registration does not exist")),
        (Route::RegistrationDelete, Some(i)) => {
            let registration = instance.registrations.remove(i);
            Ok(match call.prefer(Prefer::Minimal) {
                Prefer::Minimal => no_content(),
                Prefer::Representation => respond(StatusCode::OK, &registration),
            })
        }
        (_, Some(i)) => {
            let registration = &mut instance.registrations[i];
            if version.1 < registration.key_version.1 {
                return Err(call.reject(Reason::KeyVersionInvalid));
            }
            if route == Route::RegistrationReplace {
                registration.description = input.description;
                registration.registration_metadata = input.registration_metadata;
                registration.prevent_key_deletion = input.prevent_key_deletion.unwrap_or(false);
            } else {
                if input.description.is_some() {
                    registration.description = input.description;
                }
                if input.registration_metadata.is_some() {
                    registration.registration_metadata = input.registration_metadata;
                }
                if let Some(prevent) = input.prevent_key_deletion {
                    registration.prevent_key_deletion = prevent;
                }
            }
            registration.key_version = version;
            registration.updated_by = subject.to_owned();
            registration.updated = now();
            Ok(respond(StatusCode::OK, registration))
        }
    }
}

/// A registration needs an enabled root key: 422 `KEY_ROOT_REQ_REG_ERR` for a standard key,
/// 422 `KEY_INVALID_STATE_ERR` for one that is not active.
fn check_key(key: &Key, call: &Call<'_>) -> Result<(), Rejection> {
    if !key.is_root() {
        return Err(call.reject(Reason::KeyRootReqReg));
    }
    if key.state != State::Active {
        return Err(call.reject(Reason::KeyInvalidState));
    }
    Ok(())
}

/// The one resource of the request's registration input; 400 `NO_BODY_ERR` without one, 400
/// `BAD_BODY_ERR` for another shape.
fn input(call: &Call<'_>) -> Result<InputResource, Rejection> {
    let Some(input) = call.json::<Input>()? else {
        return Err(call.reject(Reason::NoBody));
    };
    let mut resources = input.resources.into_iter();
    match (resources.next(), resources.next()) {
        (Some(resource), None) => Ok(resource),
        _ => Err(call
            .reject(Reason::BadBody)
            .detail("Only one registration per request is supported")),
    }
}

fn respond(status: StatusCode, registration: &Registration) -> Response<Body> {
    collection(status, REGISTRATION_COLLECTION, &[registration.json()])
}

/// The registrations of the key (`/keys/{id}/registrations`) or of every key
/// (`/keys/registrations`), filtered and paged as the query says.
fn list(instance: &mut Instance, call: &Call<'_>) -> Result<Response<Body>, Rejection> {
    if *call.method != Method::GET && *call.method != Method::HEAD {
        return Err(call.reject(Reason::ServiceOnly));
    }
    let key_id = match call.key_id.filter(|id| *id != "registrations") {
        Some(_) => Some(keys::named(instance, call)?.id.clone()),
        None => None,
    };
    let number = |name: &str, default: usize, max: usize| match call.query(name) {
        None | Some("") => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= max)
            .ok_or_else(|| invalid_query(call, name, "a non-negative integer within range")),
    };
    let limit = number("limit", 200, 5000)?;
    let offset = number("offset", 0, usize::MAX)?;
    let flag = |name: &str| match call.query(name) {
        None | Some("") => Ok(None),
        Some(v) => parse_bool(v)
            .map(Some)
            .ok_or_else(|| invalid_query(call, name, "true or false")),
    };
    let prevent = flag("preventKeyDeletion")?;
    let total_count = flag("totalCount")?.unwrap_or(false);
    let crn = call
        .query("urlEncodedResourceCRN")
        .filter(|c| !c.is_empty());
    let matching: Vec<_> = instance
        .registrations
        .iter()
        .filter(|r| key_id.as_ref().is_none_or(|id| r.key_id == *id))
        .filter(|r| prevent.is_none_or(|p| r.prevent_key_deletion == p))
        .filter(|r| crn.is_none_or(|c| crn_matches(c, &r.resource_crn)))
        .map(Registration::json)
        .collect();
    let total = matching.len();
    let page: Vec<_> = matching.into_iter().skip(offset).take(limit).collect();
    let body =
        Collection::new(REGISTRATION_COLLECTION, &page).total_count(total_count.then_some(total));
    Ok(super::call::json(StatusCode::OK, &body))
}

/// `urlEncodedResourceCRN`: the CRN itself, or a prefix of it followed by `*`.
fn crn_matches(query: &str, crn: &str) -> bool {
    match query.strip_suffix('*') {
        Some(prefix) => crn.starts_with(prefix),
        None => crn == query,
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use http::Request;
    use http_body_util::BodyExt;
    use serde_json::{Value, json};
    use tower::ServiceExt;

    use crate::body::Body;
    use crate::devkms::DevKms;

    /// An unsigned token (the dev KMS alone verifies nothing) for `sub`, IAM's service mark
    /// when `service`.
    fn token(sub: &str, service: bool) -> String {
        let b64 = |v: Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
        };
        let mut claims = json!({"sub": sub});
        if service {
            claims["sub_type"] = json!("ServiceId");
        }
        format!(
            "Bearer {}.{}.c2ln",
            b64(json!({"alg": "HS256"})),
            b64(claims)
        )
    }

    async fn send(kms: &DevKms, method: &str, uri: &str, auth: &str, body: &str) -> (u16, Value) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("bluemix-instance", "inst-reg")
            .header("authorization", auth)
            .body(Body::full(body.to_owned()))
            .expect("a request");
        let res = kms.clone().oneshot(req).await.expect("infallible");
        let status = res.status().as_u16();
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    fn code(body: &Value) -> &str {
        body["resources"][0]["reasons"][0]["code"]
            .as_str()
            .unwrap_or("")
    }

    #[tokio::test]
    async fn the_dev_kms_alone_keeps_the_service_rules_from_the_token() {
        let kms = DevKms::new();
        let (user, service) = (token("alice", false), token("cos", true));
        let key = r#"{"metadata": {"collectionType": "application/vnd.ibm.kms.key+json", "collectionTotal": 1}, "resources": [{"type": "application/vnd.ibm.kms.key+json", "name": "k"}]}"#;
        let (status, body) = send(&kms, "POST", "/api/v2/keys", &user, key).await;
        assert_eq!(status, 201);
        let id = body["resources"][0]["id"].as_str().expect("id").to_owned();
        let standard = r#"{"metadata": {"collectionType": "application/vnd.ibm.kms.key+json", "collectionTotal": 1}, "resources": [{"type": "application/vnd.ibm.kms.key+json", "name": "s", "extractable": true}]}"#;
        let (_, body) = send(&kms, "POST", "/api/v2/keys", &user, standard).await;
        let standard_id = body["resources"][0]["id"].as_str().expect("id").to_owned();
        let input = r#"{"metadata": {"collectionType": "application/vnd.ibm.kms.registration_input+json", "collectionTotal": 1}, "resources": [{"preventKeyDeletion": true, "registrationMetadata": "m"}]}"#;
        let reg = format!("/api/v2/keys/{id}/registrations/crn%3Av1%3Ax%3Aa%2Facct%3Ab");
        let (status, body) = send(&kms, "POST", &reg, &user, input).await;
        assert_eq!((status, code(&body)), (403, "SERVICE_ONLY_ERR"));
        assert_eq!(
            body["resources"][0]["errorMsg"],
            "Forbidden: Registration could not be created. Please see `reasons` for more details."
        );
        let (status, body) = send(&kms, "POST", &reg, &service, input).await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["resources"][0]["resourceCrn"], "crn:v1:x:a/acct:b");
        assert_eq!(body["resources"][0]["registrationMetadata"], "m");
        let (status, body) = send(&kms, "POST", &reg, &service, input).await;
        assert_eq!(
            (status, code(&body)),
            (400, "BAD_BODY_ERR"),
            "a second create"
        );
        let other = reg.replace(&id, &standard_id);
        let (status, body) = send(&kms, "POST", &other, &service, input).await;
        assert_eq!((status, code(&body)), (422, "KEY_ROOT_REQ_REG_ERR"));
        let (status, body) = send(&kms, "POST", &reg, &service, "").await;
        assert_eq!((status, code(&body)), (400, "NO_BODY_ERR"), "{body}");
        // A service deletes no key; a user is kept from it by preventKeyDeletion.
        let key_path = format!("/api/v2/keys/{id}?force=true");
        let (status, body) = send(&kms, "DELETE", &key_path, &service, "").await;
        assert_eq!((status, code(&body)), (403, "RESOURCE_OWNER_ERR"));
        let purge = format!("/api/v2/keys/{id}/purge");
        let (status, body) = send(&kms, "DELETE", &purge, &service, "").await;
        assert_eq!((status, code(&body)), (403, "RESOURCE_OWNER_ERR"));
        let (status, body) = send(&kms, "DELETE", &key_path, &user, "").await;
        assert_eq!((status, code(&body)), (409, "PREV_KEY_DEL_ERR"));
        let (status, body) = send(
            &kms,
            "GET",
            "/api/v2/keys/registrations?preventKeyDeletion=false",
            &user,
            "",
        )
        .await;
        assert_eq!((status, &body["resources"]), (200, &json!([])));
        let (status, _) = send(&kms, "DELETE", &reg, &service, "").await;
        assert_eq!(status, 204);
        let (status, body) = send(&kms, "DELETE", &reg, &service, "").await;
        assert_eq!((status, code(&body)), (404, "KEY_NOT_FOUND_ERR"));
        let (status, _) = send(&kms, "DELETE", &key_path, &user, "").await;
        assert_eq!(status, 204);
    }
}
