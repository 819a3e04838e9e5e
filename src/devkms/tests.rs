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
    send_as(kms, None, method, uri, body).await
}

/// Sends as the subject the gateway verified (`Some`: an `Identity` in the extensions).
async fn send_as(
    kms: &DevKms,
    subject: Option<&str>,
    method: &str,
    uri: &str,
    body: Option<&str>,
) -> Reply {
    let mut req = Request::builder().method(method).uri(uri);
    req = req.header("bluemix-instance", INSTANCE);
    if let Some(subject) = subject {
        req = req.extension(crate::auth::Identity::new(subject, false));
    }
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
    // The shared parser reads the PUT, as strictly as Key Protect: metadata is required too.
    let body =
        json!({"resources": [{"policy_type": "allowedIP", "policy_data": {"enabled": true}}]});
    let reply = send(
        &kms,
        "PUT",
        "/api/v2/instance/policies",
        Some(&body.to_string()),
    )
    .await;
    assert_eq!((reply.status, code(&reply)), (400, "BAD_BODY_ERR"));
    let body = json!({"metadata": {"collectionType": "application/vnd.ibm.kms.policy+json",
                                   "collectionTotal": 1},
                      "resources": [{"policy_type": "bogus", "policy_data": {"enabled": true}}]});
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
    // Secure import without an import token.
    assert_eq!((reply.status, code(&reply)), (404, "KEY_NOT_FOUND_ERR"));
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
    let kms = quick(); // enable and restore right after the last action
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
    // Only a deleted key can be purged.
    let purge = format!("/api/v2/keys/{id}/purge");
    let reply = send(&kms, "DELETE", &purge, None).await;
    assert_eq!(
        (reply.status, code(&reply)),
        (409, "KEY_ACTION_INVALID_STATE_ERR")
    );
}

#[tokio::test]
async fn restore_checks_the_material_it_is_given() {
    let kms = quick(); // enable and restore right after the last action
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

/// The ids of a list reply, in order.
fn ids(reply: &Reply) -> Vec<String> {
    reply.body["resources"]
        .as_array()
        .unwrap_or_else(|| panic!("no resources: {}", reply.body))
        .iter()
        .map(|k| k["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Creates a key and returns its id.
async fn key(kms: &DevKms, resource: Value) -> String {
    let reply = create(kms, resource).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.body["resources"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The `INVALID_QUERY_PARAM_ERR` reply's message and target, asserting the envelope.
fn invalid_query(reply: &Reply) -> (String, String) {
    assert_eq!(
        (reply.status, code(reply)),
        (400, "INVALID_QUERY_PARAM_ERR"),
        "{}",
        reply.body
    );
    assert_eq!(
        reply.body["resources"][0]["errorMsg"],
        "Bad Request: Keys could not be retrieved: Please see `reasons` for more details (INVALID_QUERY_PARAM_ERR)"
    );
    let reason = &reply.body["resources"][0]["reasons"][0];
    assert_eq!(reason["target"]["type"], "query_param");
    (
        reason["message"].as_str().unwrap().to_owned(),
        reason["target"]["name"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn list_queries_are_percent_decoded_and_empty_values_filter_nothing() {
    let kms = DevKms::new();
    let root = key(&kms, json!({"name": "r"})).await;
    let std = key(&kms, json!({"name": "s", "extractable": true})).await;
    assert_eq!(
        send(&kms, "DELETE", &format!("/api/v2/keys/{root}"), None)
            .await
            .status,
        204
    );
    // keyprotect 3.0.1: get_keys() sends `state=`, get_keys(state=[1, 5]) sends `state=1%2C5`.
    let all = send(&kms, "GET", "/api/v2/keys?state=", None).await;
    assert_eq!((all.status, ids(&all)), (200, vec![std.clone()]));
    let both = send(&kms, "GET", "/api/v2/keys?state=1%2C5", None).await;
    let mut expected = vec![root.clone(), std.clone()];
    expected.sort();
    assert_eq!(
        ids(&both),
        expected,
        "sorted by id, as Key Protect does by default"
    );
    // Every empty parameter is no filter; Go's booleans; encoded names.
    let empty = send(
        &kms,
        "GET",
        "/api/v2/keys?limit=&offset=&extractable=&search=&sort=&filter=&state=",
        None,
    )
    .await;
    assert_eq!(ids(&empty), vec![std.clone()]);
    let roots = send(
        &kms,
        "GET",
        "/api/v2/keys?st%61te=1,5&extractable=False",
        None,
    )
    .await;
    assert_eq!(ids(&roots), vec![root.clone()]);
    // HEAD counts with the same filters.
    let head = send(&kms, "HEAD", "/api/v2/keys?state=1%2c5", None).await;
    assert_eq!(head.headers["key-total"], "2");
    // What does not decode is refused, naming the parameter.
    let bad = send(&kms, "GET", "/api/v2/keys?state=1%2", None).await;
    let (message, target) = invalid_query(&bad);
    assert_eq!(target, "state");
    assert!(
        message.starts_with("The query_param 'state' must be: percent-encoded"),
        "{message}"
    );
    for (query, name) in [
        ("state=1,%205", "state"),
        ("state=1,", "state"),
        ("state=4", "state"),
        ("limit=0", "limit"),
        ("limit=5001", "limit"),
        ("offset=-1", "offset"),
        ("extractable=yes", "extractable"),
        ("totalCount=maybe", "totalCount"),
        ("sort=name", "sort"),
        ("search=not%3A", "search"),
        ("filter=name%3Dx", "filter"),
        ("filter=state%3D1&state=1", "state"),
        ("filter=extractable%3Dtrue&extractable=true", "extractable"),
    ] {
        let reply = send(&kms, "GET", &format!("/api/v2/keys?{query}"), None).await;
        assert_eq!(invalid_query(&reply).1, name, "{query}");
    }
}

#[tokio::test]
async fn list_pages_and_counts() {
    let kms = DevKms::new();
    let mut all = Vec::new();
    for i in 0..5 {
        all.push(key(&kms, json!({"name": format!("k{i}")})).await);
    }
    all.sort();
    let page = send(
        &kms,
        "GET",
        "/api/v2/keys?limit=2&offset=1&totalCount=true",
        None,
    )
    .await;
    assert_eq!(ids(&page), all[1..3].to_vec());
    assert_eq!(page.body["metadata"]["collectionTotal"], 2);
    assert_eq!(page.body["metadata"]["totalCount"], 5);
    let plain = send(&kms, "GET", "/api/v2/keys?limit=2", None).await;
    assert!(plain.body["metadata"].get("totalCount").is_none());
}

#[tokio::test]
async fn list_search_reads_its_options_and_scopes() {
    let kms = DevKms::new();
    let foobar = key(&kms, json!({"name": "Foobar-key", "aliases": ["alpha"]})).await;
    let exact = key(&kms, json!({"name": "foobar", "aliases": ["not:foobar"]})).await;
    let other = key(&kms, json!({"name": "other", "aliases": ["xfoobarx"]})).await;
    let search = |q: &str| {
        let kms = kms.clone();
        let uri = format!("/api/v2/keys?search={q}");
        async move {
            let mut found = ids(&send(&kms, "GET", &uri, None).await);
            found.sort();
            found
        }
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    // Contains, case-insensitive, in names and aliases.
    assert_eq!(
        search("FOOBAR").await,
        sorted(vec![foobar.clone(), exact.clone(), other.clone()])
    );
    assert_eq!(
        search("name%3Afoobar").await,
        sorted(vec![foobar.clone(), exact.clone()])
    );
    assert_eq!(
        search("alias%3Afoobar").await,
        sorted(vec![exact.clone(), other.clone()])
    );
    assert_eq!(search("exact%3Afoobar").await, vec![exact.clone()]);
    assert_eq!(search("exact:name:foobar").await, vec![exact.clone()]);
    assert_eq!(search("not:foobar").await, Vec::<String>::new());
    assert_eq!(
        search("not:exact:foobar").await,
        sorted(vec![foobar.clone(), other.clone()])
    );
    assert_eq!(search("alias:not:foobar").await, vec![foobar.clone()]);
    // escape: takes the rest literally.
    assert_eq!(search("escape:not:foobar").await, vec![exact.clone()]);
    assert_eq!(search("exact:escape:not:foobar").await, vec![exact.clone()]);
    // A key id finds its key, first.
    let by_id = send(&kms, "GET", &format!("/api/v2/keys?search={other}"), None).await;
    assert_eq!(ids(&by_id), vec![other.clone()]);
    let lookup = send(&kms, "GET", "/api/v2/keys?search=alias:alpha", None).await;
    assert_eq!(ids(&lookup), vec![foobar.clone()]);
    // `+` is a space.
    assert_eq!(search("foobar+key").await, Vec::<String>::new());
}

#[tokio::test]
async fn list_sorts_and_filters() {
    let kms = DevKms::new();
    let a = key(&kms, json!({"name": "a", "extractable": true})).await;
    let b = key(
        &kms,
        json!({"name": "b", "payload": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}),
    )
    .await;
    let c = key(
        &kms,
        json!({"name": "c", "expirationDate": "2030-01-01T00:00:00Z"}),
    )
    .await;
    let sorted_ids = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let list = |q: String| {
        let kms = kms.clone();
        async move { ids(&send(&kms, "GET", &format!("/api/v2/keys?{q}"), None).await) }
    };
    // Sort: extractable first descending, then imported descending, then id.
    assert_eq!(
        list("sort=-extractable,-imported".into()).await,
        vec![a.clone(), b.clone(), c.clone()]
    );
    assert_eq!(list("sort=-id".into()).await, {
        let mut v = sorted_ids(vec![a.clone(), b.clone(), c.clone()]);
        v.reverse();
        v
    });
    // Keys without an expiration date sort first.
    assert_eq!(list("sort=-expirationDate".into()).await[0], c);
    // Filter on dates, extractable and state.
    let after = "filter=expirationDate%3Dgte%3A%222029-12-31T00%3A00%3A00Z%22";
    assert_eq!(list(after.into()).await, vec![c.clone()]);
    assert_eq!(
        list("filter=expirationDate%3D%222030-01-01T00:00:00Z%22".into()).await,
        vec![c.clone()]
    );
    assert_eq!(
        list("filter=expirationDate%3Dnone%20extractable%3DFALSE".into()).await,
        vec![b.clone()]
    );
    assert_eq!(
        list("filter=lastRotateDate=NONE+creationDate=lt:%222000-01-01T00:00:00Z%22".into()).await,
        Vec::<String>::new()
    );
    // `state` inside filter: deleted keys too when it says so.
    assert_eq!(
        send(&kms, "DELETE", &format!("/api/v2/keys/{a}"), None)
            .await
            .status,
        204
    );
    assert_eq!(list("filter=state%3D5".into()).await, vec![a.clone()]);
    assert_eq!(
        list("filter=state%3D0,1,2,3,5".into()).await,
        sorted_ids(vec![a.clone(), b.clone(), c.clone()])
    );
    // At most three terms per property.
    let four = "filter=creationDate=none+creationDate=none+creationDate=none+creationDate=none";
    let reply = send(&kms, "GET", &format!("/api/v2/keys?{four}"), None).await;
    let (message, _) = invalid_query(&reply);
    assert!(message.contains("more than three times"), "{message}");
}

fn error_msg(reply: &Reply) -> &str {
    reply.body["resources"][0]["errorMsg"]
        .as_str()
        .unwrap_or("")
}

fn message(reply: &Reply) -> &str {
    reply.body["resources"][0]["reasons"][0]["message"]
        .as_str()
        .unwrap_or("")
}

fn quick() -> DevKms {
    DevKms::with_config(&crate::config::DevKmsConfig {
        rotation_interval: std::time::Duration::ZERO,
        purge_wait: std::time::Duration::ZERO,
        action_wait: std::time::Duration::ZERO,
    })
}

#[tokio::test]
async fn dual_auth_deletion_needs_a_second_subject() {
    let kms = DevKms::new();
    let id = key(&kms, json!({"name": "guarded"})).await;
    // A key without dual auth: setKeyForDeletion and its undo are refused as Key Protect does,
    // and the key is deleted directly.
    let plain = key(&kms, json!({"name": "plain"})).await;
    for action in ["setKeyForDeletion", "unsetKeyForDeletion"] {
        let uri = format!("/api/v2/keys/{plain}/actions/{action}");
        let reply = send_as(&kms, Some("alice"), "POST", &uri, None).await;
        assert_eq!((reply.status, code(&reply)), (409, "NOT_DUAL_AUTH_ERR"));
        assert_eq!(
            message(&reply),
            "The key is not dual auth enabled and cannot be set for deletion"
        );
        assert_eq!(
            error_msg(&reply),
            "Conflict: Action could not be performed on key. Please see `reasons` for more details."
        );
    }
    let uri = format!("/api/v2/keys/{plain}");
    assert_eq!(
        send_as(&kms, Some("alice"), "DELETE", &uri, None)
            .await
            .status,
        204
    );

    // Dual auth through the key's own policy.
    let policies = format!("/api/v2/keys/{id}/policies?policy=dualAuthDelete");
    let body = json!({"metadata": {"collectionType": "application/vnd.ibm.kms.policy+json",
                                   "collectionTotal": 1},
                      "resources": [{"type": "application/vnd.ibm.kms.policy+json",
                                     "dualAuthDelete": {"enabled": true}}]});
    let reply = send_as(
        &kms,
        Some("alice"),
        "PUT",
        &policies,
        Some(&body.to_string()),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.body["resources"][0]["dualAuthDelete"]["enabled"],
        true
    );
    assert_eq!(reply.body["resources"][0]["createdBy"], "alice");

    let delete = format!("/api/v2/keys/{id}");
    let set = format!("/api/v2/keys/{id}/actions/setKeyForDeletion");
    let unset = format!("/api/v2/keys/{id}/actions/unsetKeyForDeletion");
    let not_met = |reply: &Reply| {
        assert_eq!((reply.status, code(reply)), (409, "AUTHORIZATIONS_NOT_MET"));
        assert_eq!(
            error_msg(reply),
            "Conflict: 1 prior authorization(s) are required for deletion: Key could not be \
             deleted. Please see `reasons` for more details."
        );
        assert_eq!(
            message(reply),
            "Number of authorizations required to delete is not met"
        );
    };
    // No authorization yet.
    not_met(&send_as(&kms, Some("bob"), "DELETE", &delete, None).await);
    // Alice authorizes; Alice cannot then delete.
    assert_eq!(
        send_as(&kms, Some("alice"), "POST", &set, None)
            .await
            .status,
        204
    );
    not_met(&send_as(&kms, Some("alice"), "DELETE", &delete, None).await);
    // Withdrawn: Bob cannot delete either.
    assert_eq!(
        send_as(&kms, Some("alice"), "POST", &unset, None)
            .await
            .status,
        204
    );
    not_met(&send_as(&kms, Some("bob"), "DELETE", &delete, None).await);
    // Alice authorizes again; Bob deletes.
    assert_eq!(
        send_as(&kms, Some("alice"), "POST", &set, None)
            .await
            .status,
        204
    );
    let reply = send_as(
        &kms,
        Some("bob"),
        "GET",
        &format!("{delete}/metadata"),
        None,
    )
    .await;
    assert_eq!(reply.body["resources"][0]["createdBy"], "devkms");
    let reply = Request::builder()
        .method("DELETE")
        .uri(&delete)
        .header("bluemix-instance", INSTANCE)
        .header("prefer", "return=representation")
        .extension(crate::auth::Identity::new("bob", false))
        .body(Body::empty())
        .unwrap();
    let res = kms.clone().oneshot(reply).await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["resources"][0]["deletedBy"], "bob");
}

#[tokio::test]
async fn without_a_verified_identity_the_subject_is_the_tokens_sub() {
    use base64::Engine;
    let b64 = |v: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
    };
    let token = |sub: &str| {
        format!(
            "Bearer {}.{}.c2ln",
            b64(&json!({"alg": "HS256"})),
            b64(&json!({"sub": sub}))
        )
    };
    let kms = DevKms::new();
    put_policy(
        &kms,
        json!({"policy_type": "dualAuthDelete", "policy_data": {"enabled": true}}),
    )
    .await;
    let id = key(&kms, json!({"name": "guarded"})).await;
    let as_token = |method: &str, uri: &str, sub: &str| {
        Request::builder()
            .method(method)
            .uri(uri)
            .header("bluemix-instance", INSTANCE)
            .header("authorization", token(sub))
            .body(Body::empty())
            .unwrap()
    };
    let set = format!("/api/v2/keys/{id}/actions/setKeyForDeletion");
    let delete = format!("/api/v2/keys/{id}");
    let res = kms
        .clone()
        .oneshot(as_token("POST", &set, "carol"))
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let res = kms
        .clone()
        .oneshot(as_token("DELETE", &delete, "carol"))
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
    let res = kms
        .clone()
        .oneshot(as_token("DELETE", &delete, "dave"))
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
}

#[tokio::test]
async fn one_rotation_per_interval() {
    let kms = DevKms::new();
    let id = key(&kms, json!({"name": "r"})).await;
    let rotate = format!("/api/v2/keys/{id}/actions/rotate");
    // The first rotation is never too early.
    assert_eq!(send(&kms, "POST", &rotate, Some("{}")).await.status, 204);
    let reply = send(&kms, "POST", &rotate, Some("{}")).await;
    assert_eq!(
        (reply.status, code(&reply)),
        (409, "KEY_ROTATION_NOT_PERMITTED")
    );
    assert_eq!(
        error_msg(&reply),
        "Conflict: Action could not be performed on key: Please see `reasons` for more details \
         (KEY_ROTATION_NOT_PERMITTED)"
    );
    assert_eq!(
        message(&reply),
        "This root key has been rotated within the last hour: Only one 'rotate' action per \
         hour is permitted"
    );
    let versions = send(&kms, "GET", &format!("/api/v2/keys/{id}/versions"), None).await;
    assert_eq!(versions.body["metadata"]["collectionTotal"], 2);

    // A shorter interval (tests, demos).
    let kms = quick();
    let id = key(&kms, json!({"name": "r"})).await;
    let rotate = format!("/api/v2/keys/{id}/actions/rotate");
    for _ in 0..3 {
        assert_eq!(send(&kms, "POST", &rotate, Some("{}")).await.status, 204);
    }
}

#[tokio::test]
async fn key_policies_rotation_and_dual_auth() {
    let kms = DevKms::new();
    let root = key(&kms, json!({"name": "r"})).await;
    let standard = key(&kms, json!({"name": "s", "extractable": true})).await;
    let policies = format!("/api/v2/keys/{root}/policies");
    // Nothing put yet.
    let reply = send(&kms, "GET", &policies, None).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["resources"], json!([]));
    let rotation = |months: i64| {
        json!({"metadata": {"collectionType": "application/vnd.ibm.kms.policy+json",
                            "collectionTotal": 1},
               "resources": [{"type": "application/vnd.ibm.kms.policy+json",
                              "rotation": {"enabled": true, "interval_month": months}}]})
        .to_string()
    };
    let reply = send(
        &kms,
        "PUT",
        &format!("{policies}?policy=rotation"),
        Some(&rotation(3)),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.body["resources"][0]["rotation"],
        json!({"enabled": true, "interval_month": 3})
    );
    assert_eq!(
        reply.body["metadata"]["collectionType"],
        "application/vnd.ibm.kms.policy+json"
    );
    let reply = send(&kms, "PUT", &policies, Some(&rotation(13))).await;
    assert_eq!((reply.status, code(&reply)), (400, "INVALID_FIELD_ERR"));
    assert_eq!(
        reply.body["resources"][0]["reasons"][0]["target"],
        json!({"type": "field", "name": "interval_month"})
    );
    let reply = send(
        &kms,
        "PUT",
        &format!("/api/v2/keys/{standard}/policies"),
        Some(&rotation(1)),
    )
    .await;
    assert_eq!((reply.status, code(&reply)), (400, "KEY_ROOT_REQ_ERR"));
    let reply = send(
        &kms,
        "PUT",
        &format!("{policies}?policy=dualAuthDelete"),
        Some(&rotation(1)),
    )
    .await;
    assert_eq!(
        (reply.status, code(&reply)),
        (400, "BODY_QUERY_PARAM_MISMATCH_ERR")
    );
    let reply = send(
        &kms,
        "GET",
        &format!("{policies}?policy=dualAuthDelete"),
        None,
    )
    .await;
    assert_eq!(reply.body["resources"], json!([]));
    let reply = send(&kms, "GET", &format!("{policies}?policy=nope"), None).await;
    assert_eq!(
        (reply.status, code(&reply)),
        (400, "INVALID_QUERY_PARAM_ERR")
    );
}

#[tokio::test]
async fn aliases_name_keys() {
    let kms = DevKms::new();
    let id = key(&kms, json!({"name": "r"})).await;
    let other = key(&kms, json!({"name": "o"})).await;
    let reply = send(
        &kms,
        "POST",
        &format!("/api/v2/keys/{id}/aliases/payroll"),
        None,
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(
        reply.body["metadata"]["collectionType"],
        "application/vnd.ibm.kms.alias+json"
    );
    assert_eq!(reply.body["resources"][0]["alias"], "payroll");
    assert_eq!(reply.body["resources"][0]["keyId"], id.as_str());
    // Again: already there.
    let reply = send(
        &kms,
        "POST",
        &format!("/api/v2/keys/{id}/aliases/payroll"),
        None,
    )
    .await;
    assert_eq!(reply.status, 200);
    // The key is found by its alias; actions too.
    let reply = send(&kms, "GET", "/api/v2/keys/payroll/metadata", None).await;
    assert_eq!(reply.body["resources"][0]["id"], id.as_str());
    assert_eq!(reply.body["resources"][0]["aliases"], json!(["payroll"]));
    let reply = send(
        &kms,
        "POST",
        "/api/v2/keys/payroll/actions/wrap",
        Some("{}"),
    )
    .await;
    assert_eq!(reply.status, 200);
    // Another key may not take it; names Key Protect refuses are refused.
    let reply = send(
        &kms,
        "POST",
        &format!("/api/v2/keys/{other}/aliases/payroll"),
        None,
    )
    .await;
    assert_eq!((reply.status, code(&reply)), (400, "INVALID_FIELD_ERR"));
    for bad in ["x", "keys", "a%20b", "00000000-0000-4000-8000-000000000001"] {
        let reply = send(
            &kms,
            "POST",
            &format!("/api/v2/keys/{other}/aliases/{bad}"),
            None,
        )
        .await;
        assert_eq!(
            (reply.status, code(&reply)),
            (400, "INVALID_FIELD_ERR"),
            "{bad}"
        );
    }
    // Deleted: the alias no longer names the key.
    let reply = send(
        &kms,
        "DELETE",
        &format!("/api/v2/keys/{id}/aliases/payroll"),
        None,
    )
    .await;
    assert_eq!(reply.status, 204);
    let reply = send(&kms, "GET", "/api/v2/keys/payroll", None).await;
    assert_eq!((reply.status, code(&reply)), (404, "KEY_NOT_FOUND_ERR"));
    let reply = send(
        &kms,
        "DELETE",
        &format!("/api/v2/keys/{id}/aliases/payroll"),
        None,
    )
    .await;
    assert_eq!((reply.status, code(&reply)), (404, "KEY_NOT_FOUND_ERR"));
}

async fn send_in_ring(
    kms: &DevKms,
    ring: &str,
    method: &str,
    uri: &str,
    body: Option<&str>,
) -> Reply {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("bluemix-instance", INSTANCE)
        .header("x-kms-key-ring", ring)
        .body(body.map_or_else(Body::empty, |b| Body::full(b.to_owned())))
        .unwrap();
    let res = kms.clone().oneshot(req).await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
    }
}

#[tokio::test]
async fn key_rings_hold_keys() {
    let kms = DevKms::new();
    let reply = send(&kms, "GET", "/api/v2/key_rings", None).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.body["metadata"]["collectionType"],
        "application/vnd.ibm.kms.key_ring+json"
    );
    assert_eq!(reply.body["resources"][0]["id"], "default");
    assert_eq!(
        send(&kms, "POST", "/api/v2/key_rings/team-a", None)
            .await
            .status,
        201
    );
    let reply = send(&kms, "POST", "/api/v2/key_rings/team-a", None).await;
    assert_eq!((reply.status, code(&reply)), (400, "INVALID_FIELD_ERR"));
    let reply = send(&kms, "GET", "/api/v2/key_rings?totalCount=true", None).await;
    assert_eq!(reply.body["metadata"]["totalCount"], 2);

    // X-Kms-Key-Ring: create in the ring, list and find only its keys.
    let body = json!({"metadata": {"collectionType": "application/vnd.ibm.kms.key+json",
                                   "collectionTotal": 1}, "resources": [{"name": "in-a"}]});
    let reply = send_in_ring(
        &kms,
        "team-a",
        "POST",
        "/api/v2/keys",
        Some(&body.to_string()),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.body["resources"][0]["keyRingID"], "team-a");
    let in_a = reply.body["resources"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let in_default = key(&kms, json!({"name": "in-default"})).await;
    let reply = send_in_ring(&kms, "team-a", "GET", "/api/v2/keys", None).await;
    assert_eq!(ids(&reply), vec![in_a.clone()]);
    let reply = send_in_ring(
        &kms,
        "team-a",
        "GET",
        &format!("/api/v2/keys/{in_default}"),
        None,
    )
    .await;
    assert_eq!(reply.status, 404);
    let reply = send_in_ring(
        &kms,
        "nope",
        "POST",
        "/api/v2/keys",
        Some(&body.to_string()),
    )
    .await;
    assert_eq!(reply.status, 404);

    // A ring with a key that is not deleted stays; `default` always stays.
    let reply = send(&kms, "DELETE", "/api/v2/key_rings/team-a", None).await;
    assert_eq!(
        (reply.status, code(&reply)),
        (409, "KEY_ACTION_INVALID_STATE_ERR")
    );
    let reply = send(&kms, "DELETE", "/api/v2/key_rings/default", None).await;
    assert_eq!((reply.status, code(&reply)), (400, "INVALID_FIELD_ERR"));

    // PATCH moves the key; then the ring is empty and can go.
    let patch = json!({"keyRingID": "default"}).to_string();
    let reply = send(&kms, "PATCH", &format!("/api/v2/keys/{in_a}"), Some(&patch)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["resources"][0]["keyRingID"], "default");
    let reply = send(
        &kms,
        "PATCH",
        &format!("/api/v2/keys/{in_a}"),
        Some(r#"{"keyRingID": "nope"}"#),
    )
    .await;
    assert_eq!(reply.status, 404);
    assert_eq!(
        send(&kms, "DELETE", "/api/v2/key_rings/team-a", None)
            .await
            .status,
        204
    );
    let reply = send(&kms, "DELETE", "/api/v2/key_rings/team-a", None).await;
    assert_eq!(reply.status, 404);
}

#[tokio::test]
async fn purge_waits_after_deletion() {
    let kms = DevKms::new();
    let id = key(&kms, json!({"name": "r"})).await;
    let purge = format!("/api/v2/keys/{id}/purge");
    assert_eq!(
        send(&kms, "DELETE", &format!("/api/v2/keys/{id}"), None)
            .await
            .status,
        204
    );
    let reply = send(&kms, "DELETE", &purge, None).await;
    assert_eq!((reply.status, code(&reply)), (409, "REQ_TOO_EARLY_ERR"));
    assert_eq!(
        message(&reply),
        "The key was updated recently: Please wait and try again: Purge operation is allowed \
         4h0m0s after key is deleted"
    );
    assert!(
        error_msg(&reply).starts_with("Conflict: Key could not be purged"),
        "{}",
        error_msg(&reply)
    );

    let kms = quick();
    let id = key(&kms, json!({"name": "r"})).await;
    let purge = format!("/api/v2/keys/{id}/purge");
    assert_eq!(
        send(&kms, "DELETE", &format!("/api/v2/keys/{id}"), None)
            .await
            .status,
        204
    );
    let reply = send(&kms, "DELETE", &purge, None).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["resources"][0]["id"], id.as_str());
    let reply = send(&kms, "GET", &format!("/api/v2/keys/{id}"), None).await;
    assert_eq!((reply.status, code(&reply)), (404, "KEY_NOT_FOUND_ERR"));
    let reply = send(&kms, "GET", "/api/v2/keys", None).await;
    assert_eq!(reply.body["metadata"]["collectionTotal"], 0);
}

#[tokio::test]
async fn registrations_are_empty_and_kmip_is_refused() {
    let kms = DevKms::new();
    let id = key(&kms, json!({"name": "r"})).await;
    for uri in [
        "/api/v2/keys/registrations".to_owned(),
        format!("/api/v2/keys/{id}/registrations"),
    ] {
        let reply = send(&kms, "GET", &uri, None).await;
        assert_eq!(reply.status, 200, "{uri}");
        assert_eq!(
            reply.body,
            json!({"metadata": {"collectionType": "application/vnd.ibm.kms.registration+json",
                                "collectionTotal": 0}, "resources": []})
        );
    }
    let reply = send(&kms, "GET", "/api/v2/keys/nope/registrations", None).await;
    assert_eq!(reply.status, 404);
    let reply = send(&kms, "GET", "/api/v2/kmip_adapters", None).await;
    assert_eq!(
        (reply.status, code(&reply)),
        (403, "FEATURE_RESTRICTED_ERR")
    );
    assert_eq!(
        message(&reply),
        "This action is not permitted on this resource: Please contact IBM Key Protect or open \
         a service ticket to enable this feature"
    );
}

/// What a Key Protect client sends for a secure import, made with the import token as the
/// client makes it (RSA-OAEP SHA-256 of the material, AES-GCM of the nonce).
struct SecureImport {
    public_key: aws_lc_rs::rsa::PublicEncryptingKey,
    nonce: Vec<u8>,
}

impl SecureImport {
    async fn fetch(kms: &DevKms) -> SecureImport {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let reply = send(
            kms,
            "POST",
            "/api/v2/import_token",
            Some(r#"{"expiration": 600, "maxAllowedRetrievals": 5}"#),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(
            reply.body.get("payload").is_none(),
            "POST shows no public key"
        );
        let reply = send(kms, "GET", "/api/v2/import_token", None).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let pem = b64.decode(reply.body["payload"].as_str().unwrap()).unwrap();
        let pem = String::from_utf8(pem).unwrap();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{pem}");
        let der: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let public_key =
            aws_lc_rs::rsa::PublicEncryptingKey::from_der(&b64.decode(der).unwrap()).unwrap();
        assert_eq!(public_key.key_size_bits(), 4096);
        let nonce = b64.decode(reply.body["nonce"].as_str().unwrap()).unwrap();
        SecureImport { public_key, nonce }
    }

    /// `payload`, `encryptedNonce`, `iv` for `material`, sealing `nonce` under `iv`.
    fn fields(&self, material: &[u8], nonce: &[u8], iv: [u8; 12]) -> (String, String, String) {
        use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
        use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPublicEncryptingKey};
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let oaep = OaepPublicEncryptingKey::new(self.public_key.clone()).unwrap();
        let mut out = vec![0u8; oaep.ciphertext_size()];
        let payload = oaep
            .encrypt(&OAEP_SHA256_MGF1SHA256, material, &mut out, None)
            .unwrap()
            .to_vec();
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, material).unwrap());
        let mut sealed = nonce.to_vec();
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key(iv), Aad::empty(), &mut sealed)
            .unwrap();
        (b64.encode(payload), b64.encode(sealed), b64.encode(iv))
    }
}

#[tokio::test]
async fn secure_import_with_the_import_token() {
    let kms = quick();
    let token = SecureImport::fetch(&kms).await;
    let material = [7u8; 32];
    let (payload, encrypted_nonce, iv) = token.fields(&material, &token.nonce, [1; 12]);
    let reply = create(
        &kms,
        json!({"name": "secure", "payload": payload, "encryptedNonce": encrypted_nonce, "iv": iv,
               "encryptionAlgorithm": "RSAES_OAEP_SHA_256"}),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.body["resources"][0]["imported"], true);
    let id = reply.body["resources"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The material is the one sent: a plain restore check with it passes after deletion.
    assert_eq!(
        send(&kms, "DELETE", &format!("/api/v2/keys/{id}"), None)
            .await
            .status,
        204
    );
    let restore = json!({"resources": [{"payload": b64_std(&material)}]}).to_string();
    let reply = send(
        &kms,
        "POST",
        &format!("/api/v2/keys/{id}/restore"),
        Some(&restore),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.body);

    // Rotation by secure import.
    let new_material = [8u8; 32];
    let (payload, encrypted_nonce, iv) = token.fields(&new_material, &token.nonce, [2; 12]);
    let body = json!({"payload": payload, "encryptedNonce": encrypted_nonce, "iv": iv}).to_string();
    let reply = send(
        &kms,
        "POST",
        &format!("/api/v2/keys/{id}/actions/rotate"),
        Some(&body),
    )
    .await;
    assert_eq!(reply.status, 204, "{}", reply.body);

    // Another nonce than the token's.
    let (payload, encrypted_nonce, iv) = token.fields(&material, b"not-it!!", [3; 12]);
    let reply = create(
        &kms,
        json!({"name": "s", "payload": payload, "encryptedNonce": encrypted_nonce, "iv": iv}),
    )
    .await;
    assert_eq!((reply.status, code(&reply)), (400, "INCORRECT_NONCE_ERR"));
    assert_eq!(
        message(&reply),
        "The encrypted nonce given does not match existing record. Please ensure the correct \
         nonce was given in the request"
    );
    assert_eq!(
        error_msg(&reply),
        "Bad Request: Key could not be created. Please see `reasons` for more details."
    );
    // An iv the nonce was not sealed under.
    let (payload, encrypted_nonce, _) = token.fields(&material, &token.nonce, [4; 12]);
    let reply = create(
        &kms,
        json!({"name": "s", "payload": payload, "encryptedNonce": encrypted_nonce,
               "iv": b64_std(&[5u8; 12])}),
    )
    .await;
    assert_eq!(
        (reply.status, code(&reply)),
        (400, "INCORRECT_NONCE_IV_ERR")
    );
    assert_eq!(
        message(&reply),
        "The provided encrypted nonce was not encrypted with the key material given OR the \
         provided IV does not match the encrypted nonce"
    );
    // Only one of encryptedNonce and iv.
    let reply = create(
        &kms,
        json!({"name": "s", "payload": payload, "encryptedNonce": encrypted_nonce}),
    )
    .await;
    assert_eq!((reply.status, code(&reply)), (400, "INVALID_FIELD_ERR"));
    // An expired token.
    kms.store.with_instance(INSTANCE, |instance| {
        instance.import_token.as_mut().unwrap().expires = std::time::SystemTime::now();
    });
    let (payload, encrypted_nonce, iv) = token.fields(&material, &token.nonce, [6; 12]);
    let reply = create(
        &kms,
        json!({"name": "s", "payload": payload, "encryptedNonce": encrypted_nonce, "iv": iv}),
    )
    .await;
    assert_eq!(
        (reply.status, code(&reply)),
        (409, "IMPORT_TOKEN_EXPIRED_ERR")
    );
    assert_eq!(message(&reply), "The import token has expired.");
}

fn b64_std(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn enable_and_restore_wait_after_the_last_action() {
    let kms = DevKms::new();
    let id = key(&kms, json!({"name": "r"})).await;
    let action = |a: &str| format!("/api/v2/keys/{id}/actions/{a}");
    assert_eq!(
        send(&kms, "POST", &action("disable"), None).await.status,
        204
    );
    let reply = send(&kms, "POST", &action("enable"), None).await;
    assert_eq!((reply.status, code(&reply)), (409, "REQ_TOO_EARLY_ERR"));
    assert_eq!(
        message(&reply),
        "The key was updated recently: Please wait and try again"
    );
    assert!(
        error_msg(&reply).starts_with("Conflict: Key could not be enabled"),
        "{}",
        error_msg(&reply)
    );
    // Restore: 30 s after the deletion.
    let material = b64_std(&[3u8; 32]);
    let imported = key(&kms, json!({"name": "i", "payload": material})).await;
    let path = format!("/api/v2/keys/{imported}");
    assert_eq!(send(&kms, "DELETE", &path, None).await.status, 204);
    let reply = send(&kms, "POST", &format!("{path}/restore"), None).await;
    assert_eq!((reply.status, code(&reply)), (409, "REQ_TOO_EARLY_ERR"));
    assert!(
        error_msg(&reply).starts_with("Conflict: Key could not be restored"),
        "{}",
        error_msg(&reply)
    );
}
