//! The dev KMS as a service, without sockets: the details the gateway tests do not reach.

use http::Request;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::DevKms;
use crate::body::Body;

const INSTANCE: &str = "inst-1";

struct Reply {
    status: u16,
    headers: http::HeaderMap,
    body: Value,
}

async fn send(kms: &DevKms, method: &str, uri: &str, body: Option<&str>) -> Reply {
    let mut req = Request::builder().method(method).uri(uri);
    req = req.header("bluemix-instance", INSTANCE);
    let req = req
        .body(body.map_or_else(Body::empty, |b| Body::full(b.to_owned())))
        .unwrap();
    let res = kms.clone().oneshot(req).await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn code(reply: &Reply) -> &str {
    reply.body["resources"][0]["reasons"][0]["code"]
        .as_str()
        .unwrap_or("")
}

async fn create(kms: &DevKms, resource: Value) -> Reply {
    let body = json!({"metadata": {"collectionType": "application/vnd.ibm.kms.key+json",
                                   "collectionTotal": 1}, "resources": [resource]});
    send(kms, "POST", "/api/v2/keys", Some(&body.to_string())).await
}

async fn put_policy(kms: &DevKms, resource: Value) {
    let body = json!({"metadata": {"collectionType": "application/vnd.ibm.kms.policy+json",
                                   "collectionTotal": 1}, "resources": [resource]});
    let reply = send(
        kms,
        "PUT",
        "/api/v2/instance/policies",
        Some(&body.to_string()),
    )
    .await;
    assert_eq!(reply.status, 204, "{}", reply.body);
}

async fn policy_data(kms: &DevKms, policy: &str) -> Value {
    let uri = format!("/api/v2/instance/policies?policy={policy}");
    let reply = send(kms, "GET", &uri, None).await;
    reply.body["resources"][0]["policy_data"].clone()
}

#[tokio::test]
async fn a_request_without_an_instance_is_unauthorized() {
    let kms = DevKms::new();
    let req = Request::get("/api/v2/keys").body(Body::empty()).unwrap();
    let res = kms.oneshot(req).await.unwrap();
    assert_eq!(res.status(), 401);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert!(body["resources"][0].get("reasons").is_none());
}

#[tokio::test]
async fn disabling_a_policy_resets_its_attributes_and_updates_replace() {
    let kms = DevKms::new();
    put_policy(
        &kms,
        json!({"policy_type": "allowedIP", "policy_data": {"enabled": true,
               "attributes": {"allowed_ip": ["10.0.0.0/8", "192.0.2.0/24"]}}}),
    )
    .await;
    put_policy(
        &kms,
        json!({"policy_type": "allowedIP", "policy_data": {"enabled": true,
               "attributes": {"allowed_ip": ["203.0.113.0/32"]}}}),
    )
    .await;
    assert_eq!(
        policy_data(&kms, "allowedIP").await,
        json!({"enabled": true, "attributes": {"allowed_ip": ["203.0.113.0/32"]}})
    );
    put_policy(
        &kms,
        json!({"policy_type": "allowedIP", "policy_data": {"enabled": false}}),
    )
    .await;
    assert_eq!(
        policy_data(&kms, "allowedIP").await,
        json!({"enabled": false, "attributes": {"allowed_ip": []}})
    );
    let port = send(&kms, "GET", "/api/v2/instance/allowed_ip_port", None).await;
    assert_eq!(port.body["resources"], json!([]));

    // keyCreateImportAccess: what an update leaves out goes back to its default.
    put_policy(
        &kms,
        json!({"policy_type": "keyCreateImportAccess", "policy_data": {"enabled": true,
               "attributes": {"create_root_key": false, "enforce_token": true}}}),
    )
    .await;
    put_policy(
        &kms,
        json!({"policy_type": "keyCreateImportAccess", "policy_data": {"enabled": true,
               "attributes": {"import_root_key": false}}}),
    )
    .await;
    assert_eq!(
        policy_data(&kms, "keyCreateImportAccess").await["attributes"],
        json!({"create_root_key": true, "create_standard_key": true, "import_root_key": false,
               "import_standard_key": true, "enforce_token": false})
    );

    put_policy(
        &kms,
        json!({"policy_type": "allowedNetwork", "policy_data": {"enabled": false,
               "attributes": {"allowed_network": "private-only"}}}),
    )
    .await;
    assert_eq!(
        policy_data(&kms, "allowedNetwork").await,
        json!({"enabled": false, "attributes": {"allowed_network": "public-and-private"}})
    );
}

#[tokio::test]
async fn policy_requests_the_dev_kms_cannot_read_are_refused() {
    let kms = DevKms::new();
    let reply = send(&kms, "GET", "/api/v2/instance/policies?policy=bogus", None).await;
    assert_eq!(reply.status, 400);
    assert_eq!(code(&reply), "INVALID_QUERY_PARAM_ERR");
    let body = json!({"resources": [{"policy_type": "bogus", "policy_data": {"enabled": true}}]});
    let reply = send(
        &kms,
        "PUT",
        "/api/v2/instance/policies",
        Some(&body.to_string()),
    )
    .await;
    assert_eq!(reply.status, 400);
    assert_eq!(code(&reply), "INVALID_FIELD_ERR");
    // Nothing was stored.
    let all = send(&kms, "GET", "/api/v2/instance/policies", None).await;
    assert_eq!(all.body["metadata"]["collectionTotal"], 0);
}

#[tokio::test]
async fn create_refuses_what_it_cannot_make() {
    let kms = DevKms::new();
    let reply = send(&kms, "POST", "/api/v2/keys", None).await;
    assert_eq!((reply.status, code(&reply)), (400, "NO_BODY_ERR"));
    let reply = send(&kms, "POST", "/api/v2/keys", Some("{not json")).await;
    assert_eq!((reply.status, code(&reply)), (400, "BAD_BODY_ERR"));
    let two = json!({"resources": [{"name": "a"}, {"name": "b"}]});
    let reply = send(&kms, "POST", "/api/v2/keys", Some(&two.to_string())).await;
    assert_eq!((reply.status, code(&reply)), (400, "BAD_BODY_ERR"));
    assert_eq!(
        reply.body["resources"][0]["reasons"][0]["message"],
        "Invalid body data was passed. Please ensure the data passed had valid formatting with \
         no invalid characters: Only creation of one key per request is supported"
    );
    let reply = create(&kms, json!({"extractable": false})).await;
    assert_eq!((reply.status, code(&reply)), (400, "INVALID_FIELD_ERR"));
    // Root key material is 128, 192 or 256 bits.
    let reply = create(&kms, json!({"name": "r", "payload": "AAAA"})).await;
    assert_eq!((reply.status, code(&reply)), (400, "INVALID_FIELD_ERR"));
    assert_eq!(
        reply.body["resources"][0]["reasons"][0]["target"],
        json!({"type": "field", "name": "payload"})
    );
    let reply = create(
        &kms,
        json!({"name": "s", "payload": "c2VjcmV0", "encryptedNonce": "x", "iv": "y"}),
    )
    .await;
    assert_eq!(
        (reply.status, code(&reply)),
        (403, "FEATURE_RESTRICTED_ERR")
    );
}

#[tokio::test]
async fn keys_are_found_by_alias_and_standard_keys_keep_their_payload() {
    let kms = DevKms::new();
    let reply = create(
        &kms,
        json!({"name": "s", "extractable": true, "payload": "c2VjcmV0", "aliases": ["my-alias"]}),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let id = reply.body["resources"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let by_alias = send(&kms, "GET", "/api/v2/keys/my-alias", None).await;
    assert_eq!(by_alias.status, 200);
    assert_eq!(by_alias.body["resources"][0]["id"], id.as_str());
    assert_eq!(by_alias.body["resources"][0]["payload"], "c2VjcmV0");
    assert_eq!(
        by_alias.body["resources"][0]["aliases"],
        json!(["my-alias"])
    );
    assert_eq!(
        by_alias.headers.get("content-type").unwrap(),
        "application/json"
    );
    let metadata = send(&kms, "GET", "/api/v2/keys/my-alias/metadata", None).await;
    assert!(metadata.body["resources"][0].get("payload").is_none());
    // An alias is unique in the instance.
    let reply = create(&kms, json!({"name": "t", "aliases": ["my-alias"]})).await;
    assert_eq!((reply.status, code(&reply)), (400, "INVALID_FIELD_ERR"));
}

#[tokio::test]
async fn list_filters_by_state_and_extractable() {
    let kms = DevKms::new();
    let root = create(&kms, json!({"name": "r"})).await.body["resources"][0]["id"].clone();
    create(&kms, json!({"name": "s", "extractable": true})).await;
    let uri = format!("/api/v2/keys/{}", root.as_str().unwrap());
    assert_eq!(send(&kms, "DELETE", &uri, None).await.status, 204);

    let total = |reply: Reply| reply.body["metadata"]["collectionTotal"].clone();
    assert_eq!(total(send(&kms, "GET", "/api/v2/keys", None).await), 1);
    let deleted = send(&kms, "GET", "/api/v2/keys?state=5", None).await;
    assert_eq!(deleted.body["resources"][0]["id"], root);
    assert_eq!(
        total(
            send(
                &kms,
                "GET",
                "/api/v2/keys?state=1,5&extractable=false",
                None
            )
            .await
        ),
        1
    );
    assert_eq!(
        total(send(&kms, "GET", "/api/v2/keys?state=1,5", None).await),
        2
    );
    let bad = send(&kms, "GET", "/api/v2/keys?state=4", None).await;
    assert_eq!((bad.status, code(&bad)), (400, "INVALID_QUERY_PARAM_ERR"));
}

#[tokio::test]
async fn actions_accept_a_null_body_and_refuse_misplaced_payloads() {
    let kms = DevKms::new();
    let id = create(&kms, json!({"name": "r"})).await.body["resources"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The Go client sends `null` for actions without a body.
    let disable = format!("/api/v2/keys/{id}/actions/disable");
    assert_eq!(send(&kms, "POST", &disable, Some("null")).await.status, 204);
    let enable = format!("/api/v2/keys/{id}/actions/enable");
    assert_eq!(send(&kms, "POST", &enable, Some("null")).await.status, 204);

    let rotate = format!("/api/v2/keys/{id}/actions/rotate");
    let reply = send(&kms, "POST", &rotate, Some(r#"{"payload": "c2VjcmV0"}"#)).await;
    assert_eq!(
        (reply.status, code(&reply)),
        (400, "INVALID_QUERY_PARAM_ERR")
    );
    assert_eq!(
        reply.body["resources"][0]["errorMsg"],
        "Bad Request: Key could not be rotated: Please see 'reasons' for more details \
         (INVALID_QUERY_PARAM_ERR)"
    );
    let wrap = format!("/api/v2/keys/{id}/actions/wrap");
    let reply = send(&kms, "POST", &wrap, Some(r#"{"plaintext": "%%%"}"#)).await;
    assert_eq!((reply.status, code(&reply)), (400, "INVALID_FIELD_ERR"));
    assert_eq!(
        reply.body["resources"][0]["errorMsg"],
        "Bad Request: Wrap with key could not be performed: Please see `reasons` for more \
         details (INVALID_FIELD_ERR)"
    );
    // Routes the dev KMS does not implement.
    let purge = format!("/api/v2/keys/{id}/purge");
    let reply = send(&kms, "DELETE", &purge, None).await;
    assert_eq!(
        (reply.status, code(&reply)),
        (403, "FEATURE_RESTRICTED_ERR")
    );
}

#[tokio::test]
async fn restore_checks_the_material_it_is_given() {
    let kms = DevKms::new();
    let material = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    let id = create(&kms, json!({"name": "r", "payload": material}))
        .await
        .body["resources"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let restore = format!("/api/v2/keys/{id}/restore");
    let reply = send(&kms, "POST", &restore, None).await;
    assert_eq!(
        (reply.status, code(&reply)),
        (409, "KEY_ACTION_INVALID_STATE_ERR")
    );
    assert_eq!(
        send(&kms, "DELETE", &format!("/api/v2/keys/{id}"), None)
            .await
            .status,
        204
    );
    let wrong = json!({"resources": [{"payload": "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI="}]});
    let reply = send(&kms, "POST", &restore, Some(&wrong.to_string())).await;
    assert_eq!((reply.status, code(&reply)), (400, "INVALID_FIELD_ERR"));
    let right = json!({"resources": [{"payload": material}]});
    let action_style = format!("/api/v2/keys/{id}?action=restore");
    let reply = send(&kms, "POST", &action_style, Some(&right.to_string())).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.body["resources"][0]["state"], 1);
}
