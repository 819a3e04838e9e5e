//! The body layer over real loopback sockets: every JSON example of the Key Protect error
//! catalogue that the gateway decides on its own is sent through the gateway as the reference
//! shows it, and the answer is compared with the reference envelope; the upstream must not see
//! those requests. The valid requests of the same examples are forwarded byte for byte.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Recorder, TestGateway, TestResponse, assert_rejected};

const INSTANCE: &str = "a8b9e8f4-7d0f-4c4f-9b3e-000000000001";
const MORE_INFO: &str = "https://cloud.ibm.com/apidocs/key-protect";

async fn gateway(upstream: &Recorder, extra: &str) -> TestGateway {
    TestGateway::start(&format!(
        "[upstream]\nurl = \"{}\"\nrequest_timeout = \"2s\"\n{extra}",
        upstream.url()
    ))
    .await
}

async fn send(
    gw: &TestGateway,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &str,
) -> TestResponse {
    let mut req = gw
        .request(method, path)
        .header("authorization", "Bearer test-token")
        .header("bluemix-instance", INSTANCE);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    req.body(body.to_owned()).send().await
}

/// The reference's error envelope for one reason.
fn envelope(
    error_msg: &str,
    code: &str,
    message: &str,
    status: u16,
    target: Option<&str>,
) -> Value {
    let mut reason =
        json!({"code": code, "message": message, "status": status, "moreInfo": MORE_INFO});
    if let Some(name) = target {
        reason["target"] = json!({"type": "field", "name": name});
    }
    json!({
        "metadata": {"collectionType": "application/vnd.ibm.kms.error+json", "collectionTotal": 1},
        "resources": [{"errorMsg": error_msg, "reasons": [reason]}]
    })
}

/// A refusal that matches the reference exactly and never reached the upstream.
async fn assert_reference(
    gw: &TestGateway,
    upstream: &Recorder,
    res: &TestResponse,
    status: u16,
    expected: Value,
) {
    let code = expected["resources"][0]["reasons"][0]["code"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_rejected(res, status, &code);
    assert_eq!(res.json(), expected);
    assert_eq!(upstream.count(), 0, "the upstream saw a refused request");
    assert!(
        gw.metric("kmsgate_rejections_total", &[("code", &code)])
            .await
            >= 1.0
    );
}

const POLICY_CT: Option<&str> = Some("application/vnd.ibm.kms.policy+json");
const KEY_CT: Option<&str> = Some("application/vnd.ibm.kms.key+json");
const ACTION_CT: Option<&str> = Some("application/vnd.ibm.kms.key_action+json");
const POLICY_ERROR_MSG: &str =
    "Bad Request: Instance policy could not be created. Please see `reasons` for more details.";
const CREATE_ERROR_MSG: &str =
    "Bad Request: Key could not be created. Please see `reasons` for more details.";
const BAD_BODY: &str = "Invalid body data was passed. Please ensure the data passed had valid formatting with no invalid characters";

// === The reference examples, verbatim ===

#[tokio::test]
async fn reference_collection_total_mismatch() {
    let upstream = Recorder::start().await;
    let gw = gateway(&upstream, "").await;
    let body = r#"{
"metadata": {
"collectionType": "application/vnd.ibm.kms.policy+json",
"collectionTotal": 2
},
"resources": [
{
"policy_type": "dualAuthDelete",
"policy_data": {
"enabled": false
}
}
]
}"#;
    let res = send(
        &gw,
        "PUT",
        "/api/v2/instance/policies?policy=dualAuthDelete",
        POLICY_CT,
        body,
    )
    .await;
    let expected = envelope(
        POLICY_ERROR_MSG,
        "COLLECTION_TOTAL_MISMATCH_ERR",
        "Collection total does not match number of resources",
        400,
        None,
    );
    assert_reference(&gw, &upstream, &res, 400, expected).await;
}

#[tokio::test]
async fn reference_body_query_param_mismatch() {
    let upstream = Recorder::start().await;
    let gw = gateway(&upstream, "").await;
    let body = r#"{
"metadata": {
"collectionType": "application/vnd.ibm.kms.policy+json",
"collectionTotal": 1
},
"resources": [
{
"policy_type": "badName",
"policy_data": {
"enabled": false
}
}
]
}"#;
    let res = send(
        &gw,
        "PUT",
        "/api/v2/instance/policies?policy=dualAuthDelete",
        POLICY_CT,
        body,
    )
    .await;
    let expected = envelope(
        POLICY_ERROR_MSG,
        "BODY_QUERY_PARAM_MISMATCH_ERR",
        "Data in body does not match data required by query parameter",
        400,
        None,
    );
    assert_reference(&gw, &upstream, &res, 400, expected).await;
}

#[tokio::test]
async fn reference_bad_body_extra_field() {
    let upstream = Recorder::start().await;
    let gw = gateway(&upstream, "").await;
    let body = r#"{
"metadata": {
"collectionType": "application/vnd.ibm.kms.policy+json",
"collectionTotal": 1
},
"resources": [
{
"policy_type": "dualAuthDelete",
"policy_data": {
"enabled": false
},
"extra_field": "junk data"
}
]
}"#;
    let res = send(
        &gw,
        "PUT",
        "/api/v2/instance/policies?policy=dualAuthDelete",
        POLICY_CT,
        body,
    )
    .await;
    let expected = envelope(
        POLICY_ERROR_MSG,
        "BAD_BODY_ERR",
        &format!("{BAD_BODY}: json: unknown field \"extra_field\""),
        400,
        None,
    );
    assert_reference(&gw, &upstream, &res, 400, expected).await;
}

#[tokio::test]
async fn reference_bad_body_two_keys() {
    let upstream = Recorder::start().await;
    let gw = gateway(&upstream, "").await;
    let body = r#"{
"metadata": {
"collectionType": "application/vnd.ibm.kms.key+json",
"collectionTotal": 1
},
"resources": [
{
"type": "application/vnd.ibm.kms.key+json",
"name": "Root-key-1",
"description": "example-key",
"extractable": false
},
{
"type": "application/vnd.ibm.kms.key+json",
"name": "Root-key-2",
"description": "example-key",
"extractable": false
}
]
}"#;
    let res = send(&gw, "POST", "/api/v2/keys", KEY_CT, body).await;
    let expected = envelope(
        CREATE_ERROR_MSG,
        "BAD_BODY_ERR",
        &format!("{BAD_BODY}: Only creation of one key per request is supported"),
        400,
        None,
    );
    assert_reference(&gw, &upstream, &res, 400, expected).await;
}

#[tokio::test]
async fn reference_bad_body_empty_metadata() {
    let upstream = Recorder::start().await;
    let gw = gateway(&upstream, "").await;
    let body = r#"{
"metadata": {},
"resources": [
{
"type": "application/vnd.ibm.kms.key+json",
"name": "Root-key-1",
"description": "example-key",
"extractable": false
}
]
}"#;
    let res = send(&gw, "POST", "/api/v2/keys", KEY_CT, body).await;
    let expected = envelope(
        CREATE_ERROR_MSG,
        "BAD_BODY_ERR",
        &format!("{BAD_BODY}: CollectionMetadata is empty"),
        400,
        None,
    );
    assert_reference(&gw, &upstream, &res, 400, expected).await;
}

/// The reference elides the plaintext ("q+x3Qi.../BVb8bPj....vVD;"; literally, Go would stop at
/// the first '.', byte 6) and its body has a trailing comma (not JSON). The real value was 39
/// bytes with the ';' at byte 38: the visible pieces, the elisions filled with base64.
#[tokio::test]
async fn reference_invalid_field_wrap() {
    let upstream = Recorder::start().await;
    let gw = gateway(&upstream, "").await;
    let body = "{\n\"plaintext\": \"q+x3QiAAAAAAAAAA/BVb8bPjAAAAAAAAAAAvVD;\"\n}";
    let res = send(
        &gw,
        "POST",
        "/api/v2/keys/0f4a6b5e-1d2c-4b3a-9e8f-7a6b5c4d3e2f/actions/wrap",
        ACTION_CT,
        body,
    )
    .await;
    let expected = envelope(
        "Bad Request: Wrap with key could not be performed: Please see `reasons` for more details (INVALID_FIELD_ERR)",
        "INVALID_FIELD_ERR",
        "The field `plaintext` must be: a base64 encoded key material: illegal base64 data at input byte 38",
        400,
        Some("plaintext"),
    );
    assert_reference(&gw, &upstream, &res, 400, expected).await;
}

/// The reference's ciphertext is truncated: 211 base64 characters, so the last quantum is short
/// and Go reports where it starts, byte 208.
#[tokio::test]
async fn reference_invalid_field_unwrap() {
    let upstream = Recorder::start().await;
    let gw = gateway(&upstream, "").await;
    let head = "eyJjaXBoZXJ0ZXh0IjoiUnl";
    let tail = "hYTUtNDNmMi05NTc5LWM2NjAzN2EwNjhkNyJ";
    let ciphertext = format!("{head}{}{tail}", "A".repeat(211 - head.len() - tail.len()));
    let body = format!("{{\n\"ciphertext\": \"{ciphertext}\"\n}}");
    let res = send(
        &gw,
        "POST",
        "/api/v2/keys/0f4a6b5e-1d2c-4b3a-9e8f-7a6b5c4d3e2f/actions/unwrap",
        ACTION_CT,
        &body,
    )
    .await;
    let expected = envelope(
        "Bad Request: Unwrap with key could not be performed: Please see 'reasons' for more details (INVALID_FIELD_ERR)",
        "INVALID_FIELD_ERR",
        "The field 'ciphertext' must be: the original base64 encoded ciphertext from the wrap operation: illegal base64 data at input byte 208",
        400,
        Some("ciphertext"),
    );
    assert_reference(&gw, &upstream, &res, 400, expected).await;
}

#[tokio::test]
async fn reference_no_body_then_the_same_unwrap_with_a_body_is_forwarded() {
    let upstream = Recorder::start().await;
    let gw = gateway(&upstream, "").await;
    let path = "/api/v2/keys/66ffaf5b-86c8-4a50-8a2a-920ae71f86dc/actions/unwrap";
    let res = send(&gw, "POST", path, ACTION_CT, "").await;
    let expected = envelope(
        "Bad Request: Action could not be performed on key. Please see `reasons` for more details.",
        "NO_BODY_ERR",
        "Missing body in request",
        400,
        None,
    );
    assert_reference(&gw, &upstream, &res, 400, expected).await;

    // Step 5: the same request with its body.
    let body = "{\n\"ciphertext\": \"eyJjaXBoZXJ0ZXh0IjoiR0VnTFZGSmpKYWU3MWY4NmRjIn0=\"\n}";
    let res = send(&gw, "POST", path, ACTION_CT, body).await;
    assert_eq!(res.status, 200);
    assert_eq!(upstream.count(), 1);
    assert_eq!(&upstream.last().body[..], body.as_bytes());
}

#[tokio::test]
async fn reference_num_collection_resource() {
    let upstream = Recorder::start().await;
    let gw = gateway(&upstream, "").await;
    let body = r#"{
"metadata": {
"collectionType": "application/vnd.ibm.kms.policy+json",
"collectionTotal": 2
},
"resources": [
{
"policy_type": "dualAuthDelete",
"policy_data": {
"enabled": false
}
},
{
"policy_type": "dualAuthDelete",
"policy_data": {
"enabled": false
}
}
]
}"#;
    let res = send(
        &gw,
        "PUT",
        "/api/v2/instance/policies?policy=dualAuthDelete",
        POLICY_CT,
        body,
    )
    .await;
    let expected = envelope(
        POLICY_ERROR_MSG,
        "NUM_COLLECTION_RESOURCE_ERR",
        "Only a single instance policy may be created per query parameter. Please pass single resource object",
        400,
        None,
    );
    assert_reference(&gw, &upstream, &res, 400, expected).await;
}

// === The valid requests of the examples are forwarded unchanged ===

#[tokio::test]
async fn valid_example_requests_are_forwarded_byte_for_byte() {
    let upstream = Recorder::start().await;
    let gw = gateway(&upstream, "").await;
    let kcia_on = r#"{
"metadata": {
"collectionType": "application/vnd.ibm.kms.policy+json",
"collectionTotal": 1
},
"resources": [
{
"policy_type": "keyCreateImportAccess",
"policy_data": {
"enabled": true,
"attributes": {
"create_root_key": true,
"create_standard_key": false,
"import_root_key": true,
"import_standard_key": true,
"enforce_token": true
}
}
}
]
}"#;
    let kcia_off = r#"{
"metadata": {
"collectionType": "application/vnd.ibm.kms.policy+json",
"collectionTotal": 1
},
"resources": [
{
"policy_type": "keyCreateImportAccess",
"policy_data": {
"enabled": false
}
}
]
}"#;
    let standard_key = support::REFERENCE_STANDARD_KEY;
    let cases = [
        (
            "PUT",
            "/api/v2/instance/policies?policy=keyCreateImportAccess",
            POLICY_CT,
            kcia_on,
        ),
        (
            "PUT",
            "/api/v2/instance/policies?policy=keyCreateImportAccess",
            POLICY_CT,
            kcia_off,
        ),
        ("POST", "/api/v2/keys", KEY_CT, standard_key),
        // The Go client: no Content-Type at all.
        ("POST", "/api/v2/keys", None, standard_key),
        (
            "POST",
            "/api/v2/keys_with_policy_overrides",
            Some("application/json"),
            standard_key,
        ),
        (
            "POST",
            "/api/v2/keys/k1/actions/wrap",
            Some("application/vnd.ibm.kms.key_action_wrap+json"),
            r#"{"plaintext":"2eLAD3LyD3H2bq8dIDAy0A/lN9DSE/Ne3bwu40CdErs=","aad":["ctx"]}"#,
        ),
        ("POST", "/api/v2/keys/k1?action=wrap", None, "{}"),
        ("POST", "/api/v2/keys/k1/actions/wrap", None, ""),
        (
            "POST",
            "/api/v2/keys/k1/actions/rewrap",
            Some("text/plain"),
            r#"{"ciphertext":"YWJj"}"#,
        ),
        (
            "POST",
            "/api/v2/keys/k1/actions/rotate",
            None,
            r#"{"payload":"YWJjZA=="}"#,
        ),
        ("POST", "/api/v2/keys/k1/restore", None, ""),
    ];
    for (i, (method, path, ct, body)) in cases.iter().enumerate() {
        let res = send(&gw, method, path, *ct, body).await;
        assert_eq!(res.status, 200, "{method} {path}: {}", res.text());
        assert_eq!(upstream.count(), i + 1, "{method} {path}");
        let seen = upstream.last();
        assert_eq!(&seen.body[..], body.as_bytes(), "{method} {path}");
        assert_eq!(seen.uri.path_and_query().unwrap().as_str(), *path);
    }
}

#[tokio::test]
async fn enable_disable_and_dual_auth_actions_take_no_body_empty_object_or_null() {
    let upstream = Recorder::start().await;
    let gw = gateway(&upstream, "").await;
    let mut sent = 0;
    for action in [
        "enable",
        "disable",
        "setKeyForDeletion",
        "unsetKeyForDeletion",
    ] {
        for path in [
            format!("/api/v2/keys/k1/actions/{action}"),
            format!("/api/v2/keys/k1?action={action}"),
        ] {
            for body in ["", "{}", "null"] {
                let res = send(&gw, "POST", &path, None, body).await;
                sent += 1;
                assert_eq!(res.status, 200, "{path} {body:?}");
                assert_eq!(upstream.count(), sent);
                assert_eq!(&upstream.last().body[..], body.as_bytes());
            }
        }
    }
}

// === Both URL styles, content types, h2, the limit ===

#[tokio::test]
async fn both_url_styles_and_any_content_type_are_checked_alike() {
    let upstream = Recorder::start().await;
    let gw = gateway(&upstream, "").await;
    for path in [
        "/api/v2/keys/k1/actions/unwrap",
        "/api/v2/keys/k1?action=unwrap",
    ] {
        for ct in [
            None,
            Some("application/json"),
            Some("application/vnd.ibm.kms.key_action_unwrap+json"),
            Some("text/plain"),
        ] {
            let res = send(&gw, "POST", path, ct, "").await;
            assert_rejected(&res, 400, "NO_BODY_ERR");
            let res = send(&gw, "POST", path, ct, r#"{"ciphertext":"not base64!"}"#).await;
            assert_rejected(&res, 400, "INVALID_FIELD_ERR");
        }
    }
    for path in [
        "/api/v2/keys/k1/actions/rotate",
        "/api/v2/keys/k1?action=rotate",
        "/api/v2/keys/k1/restore",
        "/api/v2/keys/k1?action=restore",
    ] {
        let res = send(&gw, "POST", path, None, r#"{"payload":"YWJj","iv":"%%%%"}"#).await;
        assert_rejected(&res, 400, "INVALID_FIELD_ERR");
        assert_eq!(
            res.json()["resources"][0]["reasons"][0]["target"]["name"],
            "iv"
        );
    }
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn h2_bodies_are_checked_and_forwarded() {
    let upstream = Recorder::start().await;
    let gw = gateway(&upstream, "").await;
    let res = gw
        .request("POST", "/api/v2/keys/k1/actions/unwrap")
        .h2()
        .send()
        .await;
    assert_rejected(&res, 400, "NO_BODY_ERR");
    assert_eq!(upstream.count(), 0);
    let body = r#"{"ciphertext":"YWJj"}"#;
    let res = gw
        .request("POST", "/api/v2/keys/k1/actions/unwrap")
        .h2()
        .body(body)
        .send()
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(&upstream.last().body[..], body.as_bytes());
}

#[tokio::test]
async fn not_json_is_a_bad_body() {
    let upstream = Recorder::start().await;
    let gw = gateway(&upstream, "").await;
    for (path, body) in [
        ("/api/v2/keys", "name=key"),
        ("/api/v2/keys/k1/actions/wrap", "{\"plaintext\": \"abc\""),
        ("/api/v2/keys/k1/actions/unwrap", "[1,2]"),
    ] {
        let res = send(&gw, "POST", path, Some("application/json"), body).await;
        assert_rejected(&res, 400, "BAD_BODY_ERR");
    }
    let res = gw
        .request("PUT", "/api/v2/instance/policies")
        .body(&b"{\"metadata\":\xff}"[..])
        .send()
        .await;
    assert_rejected(&res, 400, "BAD_BODY_ERR");
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused_and_the_limit_is_inclusive() {
    let upstream = Recorder::start().await;
    let gw = gateway(&upstream, "[body]\nlimit = 64\n").await;
    let exactly = format!(r#"{{"plaintext":"{}"}}"#, "A".repeat(64 - 16));
    assert_eq!(exactly.len(), 64);
    let res = send(&gw, "POST", "/api/v2/keys/k1/actions/wrap", None, &exactly).await;
    assert_eq!(res.status, 200, "{}", res.text());
    let over = format!(r#"{{"plaintext":"{}"}}"#, "A".repeat(64 - 16 + 4));
    for h2 in [false, true] {
        let mut req = gw
            .request("POST", "/api/v2/keys/k1/actions/wrap")
            .body(over.clone());
        if h2 {
            req = req.h2();
        }
        let res = req.send().await;
        assert_rejected(&res, 413, "BODY_TOO_LARGE_ERR");
    }
    // Routes the layer does not inspect are streamed, whatever their size.
    let big = "x".repeat(4096);
    let res = send(&gw, "PATCH", "/api/v2/keys/k1", None, &big).await;
    assert_eq!(res.status, 200);
    assert_eq!(upstream.count(), 2);
    assert_eq!(upstream.last().body.len(), 4096);
}

#[tokio::test]
async fn instance_policy_put_rules_through_the_gateway() {
    let upstream = Recorder::start().await;
    let gw = gateway(&upstream, "").await;
    let one = |ty: &str, data: &str| {
        format!(
            r#"{{"metadata":{{"collectionType":"application/vnd.ibm.kms.policy+json","collectionTotal":1}},"resources":[{{"policy_type":"{ty}","policy_data":{data}}}]}}"#
        )
    };
    let res = send(
        &gw,
        "PUT",
        "/api/v2/instance/policies?policy=bogus",
        None,
        &one("metrics", r#"{"enabled":true}"#),
    )
    .await;
    assert_rejected(&res, 400, "INVALID_QUERY_PARAM_ERR");
    assert_eq!(
        res.json()["resources"][0]["reasons"][0]["target"],
        json!({"type": "query_param", "name": "policy"})
    );

    let res = send(&gw, "PUT", "/api/v2/instance/policies", None, "").await;
    assert_rejected(&res, 400, "BAD_BODY_ERR");

    let res = send(
        &gw,
        "PUT",
        "/api/v2/instance/policies?policy=rotation",
        None,
        &one(
            "rotation",
            r#"{"enabled":true,"attributes":{"interval_month":13}}"#,
        ),
    )
    .await;
    assert_rejected(&res, 400, "INVALID_FIELD_ERR");
    let v = res.json();
    assert_eq!(
        v["resources"][0]["errorMsg"],
        "Bad Request: Instance policy could not be created: Please see \"reasons\" for more details (INVALID_FIELD_ERR)"
    );
    assert_eq!(
        v["resources"][0]["reasons"][0]["message"],
        "The field \"interval_month\" must be: an integer between 1 and 12 (inclusive)"
    );
    assert_eq!(
        v["resources"][0]["reasons"][0]["target"],
        json!({"type": "field", "name": "interval_month"})
    );

    let res = send(
        &gw,
        "PUT",
        "/api/v2/instance/policies?policy=allowedIP",
        None,
        &one(
            "allowedIP",
            r#"{"enabled":true,"attributes":{"allowed_ip":["10.0.0.0/8","2001:db8::/32"]}}"#,
        ),
    )
    .await;
    assert_eq!(res.status, 200);
    assert_eq!(upstream.count(), 1);
}

// === Read as Go reads it: duplicate fields, trailing data ===

/// The issue's example: the first `resources` imports key material, the second looks like a
/// plain create. Go decodes the second array into the elements of the first (golang/go#21092),
/// so the KMS would import while a "last wins" reader saw a create.
const IMPORT_DISGUISED_AS_CREATE: &str = r#"{"metadata":{"collectionType":"application/vnd.ibm.kms.key+json","collectionTotal":1},"resources":[{"type":"application/vnd.ibm.kms.key+json","name":"k","extractable":true,"payload":"c2VjcmV0"}],"resources":[{"type":"application/vnd.ibm.kms.key+json","name":"k","extractable":true}]}"#;

/// A refused body: 400 `BAD_BODY_ERR`, the create errorMsg, a detail that starts with `detail`.
fn assert_bad_body(res: &TestResponse, error_msg: &str, detail: &str) {
    assert_rejected(res, 400, "BAD_BODY_ERR");
    let v = res.json();
    assert_eq!(v["resources"][0]["errorMsg"], error_msg);
    let message = v["resources"][0]["reasons"][0]["message"].as_str().unwrap();
    let got = message
        .strip_prefix(&format!("{BAD_BODY}: "))
        .unwrap_or(message);
    assert!(got.starts_with(detail), "{message}");
}

#[tokio::test]
async fn an_inspected_field_given_twice_is_refused_in_any_spelling() {
    let upstream = Recorder::start().await;
    let gw = gateway(&upstream, "").await;
    let case_variant =
        IMPORT_DISGUISED_AS_CREATE.replace(r#"],"resources":["#, r#"],"Resources":["#);
    let escaped =
        IMPORT_DISGUISED_AS_CREATE.replace(r#"],"resources":["#, r#"],"re\u0073ources":["#);
    let long_s =
        IMPORT_DISGUISED_AS_CREATE.replace(r#"],"resources":["#, "],\"RE\u{17F}OURCES\":[");
    // The body views name the field as Key Protect's struct does, whatever the spelling.
    for body in [IMPORT_DISGUISED_AS_CREATE, &case_variant, &escaped, &long_s] {
        for path in ["/api/v2/keys", "/api/v2/keys_with_policy_overrides"] {
            for h2 in [false, true] {
                let mut req = gw
                    .request("POST", path)
                    .header("authorization", "Bearer test-token")
                    .header("bluemix-instance", INSTANCE)
                    .body(body.to_owned());
                if h2 {
                    req = req.h2();
                }
                let res = req.send().await;
                assert_bad_body(&res, CREATE_ERROR_MSG, "duplicate field \"resources\"");
            }
        }
    }
    // One level down: in the key resource, and in an action body (both URL styles).
    let res = send(
        &gw,
        "POST",
        "/api/v2/keys",
        KEY_CT,
        &STANDARD_CREATE.replace(
            r#""extractable":true"#,
            r#""extractable":true,"payload":"c2VjcmV0","Payload":"""#,
        ),
    )
    .await;
    assert_bad_body(&res, CREATE_ERROR_MSG, "duplicate field \"payload\"");
    let rotate = r#"{"payload":"c2VjcmV0","encryptedNonce":"YWJj","iv":"YWJj","IV":""}"#;
    for path in [
        "/api/v2/keys/k1/actions/rotate",
        "/api/v2/keys/k1?action=rotate",
    ] {
        let res = send(&gw, "POST", path, ACTION_CT, rotate).await;
        assert_bad_body(
            &res,
            "Bad Request: Action could not be performed on key. Please see `reasons` for more details.",
            "duplicate field \"iv\"",
        );
    }
    // Instance-policy PUTs, at any depth.
    let policy = r#"{"metadata":{"collectionType":"application/vnd.ibm.kms.policy+json","collectionTotal":1},"resources":[{"policy_type":"keyCreateImportAccess","policy_data":{"enabled":true,"attributes":{"enforce_token":true,"ENFORCE_TOKEN":false}}}]}"#;
    let res = send(
        &gw,
        "PUT",
        "/api/v2/instance/policies?policy=keyCreateImportAccess",
        POLICY_CT,
        policy,
    )
    .await;
    assert_bad_body(&res, POLICY_ERROR_MSG, "duplicate field \"ENFORCE_TOKEN\"");
    assert_eq!(upstream.count(), 0, "the upstream saw a refused request");
    assert!(
        gw.metric("kmsgate_rejections_total", &[("code", "BAD_BODY_ERR")])
            .await
            >= 20.0
    );

    // Duplicates of fields the gateway does not read are the KMS's business.
    let body = STANDARD_CREATE.replace(r#""name":"k""#, r#""name":"a","name":"b""#);
    let res = send(&gw, "POST", "/api/v2/keys", KEY_CT, &body).await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(&upstream.last().body[..], body.as_bytes());
}

const STANDARD_CREATE: &str = r#"{"metadata":{"collectionType":"application/vnd.ibm.kms.key+json","collectionTotal":1},"resources":[{"type":"application/vnd.ibm.kms.key+json","name":"k","extractable":true}]}"#;

#[tokio::test]
async fn trailing_data_wrong_numbers_and_wrong_booleans_are_bad_bodies() {
    let upstream = Recorder::start().await;
    let gw = gateway(&upstream, "").await;
    let cases = [
        (
            format!("{STANDARD_CREATE} {{}}"),
            "invalid JSON: trailing characters",
        ),
        (
            format!("{STANDARD_CREATE}x"),
            "invalid JSON: trailing characters",
        ),
        (
            STANDARD_CREATE.replace(r#""collectionTotal":1"#, r#""collectionTotal":1.0"#),
            "invalid type: floating point",
        ),
        (
            STANDARD_CREATE.replace(r#""collectionTotal":1"#, r#""collectionTotal":1e0"#),
            "invalid type: floating point",
        ),
        (
            STANDARD_CREATE.replace(r#""collectionTotal":1"#, r#""collectionTotal":"1""#),
            "invalid type: string",
        ),
        (
            STANDARD_CREATE.replace(r#""extractable":true"#, r#""extractable":"true""#),
            "invalid type: string",
        ),
        (
            STANDARD_CREATE.replace(r#""extractable":true"#, r#""extractable":1"#),
            "invalid type: integer",
        ),
    ];
    for (body, detail) in &cases {
        let res = send(&gw, "POST", "/api/v2/keys", KEY_CT, body).await;
        assert_bad_body(&res, CREATE_ERROR_MSG, detail);
    }
    assert_eq!(upstream.count(), 0, "the upstream saw a refused request");
    // Trailing whitespace is not data.
    let body = format!("{STANDARD_CREATE}\r\n");
    let res = send(&gw, "POST", "/api/v2/keys", KEY_CT, &body).await;
    assert_eq!(res.status, 200);
    assert_eq!(&upstream.last().body[..], body.as_bytes());
}

// === body.read_timeout ===

const WRAP_BODY: &str = r#"{"plaintext":"2eLAD3LyD3H2bq8dIDAy0A/lN9DSE/Ne3bwu40CdErs="}"#;

/// Sends a wrap request over a raw h1 connection: its head and the body in `chunks` (each
/// written after its delay), then nothing more; returns the response and when it arrived.
async fn raw_wrap(
    gw: &TestGateway,
    chunks: Vec<(Duration, &'static [u8])>,
) -> (TestResponse, Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect(gw.addrs.public)
        .await
        .unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let head = format!(
        "POST /api/v2/keys/k1/actions/wrap HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer test-token\r\n\
         bluemix-instance: {INSTANCE}\r\ncontent-length: {}\r\n\r\n",
        gw.addrs.public,
        WRAP_BODY.len()
    );
    let start = Instant::now();
    writer.write_all(head.as_bytes()).await.unwrap();
    let trickle = tokio::spawn(async move {
        for (delay, chunk) in chunks {
            tokio::time::sleep(delay).await;
            if writer.write_all(chunk).await.is_err() {
                return;
            }
        }
        // Hold the connection open: the rest of the body never comes.
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(writer);
    });
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let response = loop {
        let n = tokio::time::timeout(Duration::from_secs(5), reader.read(&mut buf))
            .await
            .expect("the gateway did not answer within 5 s")
            .unwrap();
        assert!(n > 0, "the gateway closed without an answer");
        raw.extend_from_slice(&buf[..n]);
        if let Some(response) = parse_response(&raw) {
            break response;
        }
    };
    trickle.abort();
    (response, start.elapsed())
}

/// A complete HTTP/1.1 response with a `content-length`, if `raw` holds one.
fn parse_response(raw: &[u8]) -> Option<TestResponse> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let mut headers = http::HeaderMap::new();
    for line in lines {
        let (name, value) = line.split_once(':')?;
        headers.append(
            http::HeaderName::from_bytes(name.trim().as_bytes()).ok()?,
            http::HeaderValue::from_str(value.trim()).ok()?,
        );
    }
    let length: usize = headers.get("content-length")?.to_str().ok()?.parse().ok()?;
    let body = raw.get(end + 4..end + 4 + length)?;
    Some(TestResponse {
        status,
        version: http::Version::HTTP_11,
        headers,
        body: bytes::Bytes::copy_from_slice(body),
    })
}

fn assert_body_timeout(res: &TestResponse, took: Duration) {
    assert_rejected(res, 408, "BODY_TIMEOUT_ERR");
    assert_eq!(
        res.json(),
        envelope(
            "Request Timeout: Action could not be performed on key: Please see `reasons` for more details (BODY_TIMEOUT_ERR)",
            "BODY_TIMEOUT_ERR",
            "The request body was not received in time",
            408,
            None,
        )
    );
    // The deadline is 300 ms; bounded well below the 5 s the test waits.
    assert!(
        took >= Duration::from_millis(290),
        "cut off early: {took:?}"
    );
    assert!(took < Duration::from_secs(3), "cut off late: {took:?}");
}

#[tokio::test]
async fn a_body_that_stops_or_trickles_is_cut_off_at_the_read_timeout() {
    let upstream = Recorder::start().await;
    let gw = gateway(&upstream, "[body]\nread_timeout = \"300ms\"\n").await;
    let ms = Duration::from_millis;
    // Headers and part of the body, then nothing.
    let (res, took) = raw_wrap(&gw, vec![(ms(0), &WRAP_BODY.as_bytes()[..10])]).await;
    assert_body_timeout(&res, took);
    // No body at all after the headers.
    let (res, took) = raw_wrap(&gw, vec![]).await;
    assert_body_timeout(&res, took);
    // A byte every 50 ms: each arrives, the whole never does in time.
    let trickle: Vec<(Duration, &'static [u8])> = WRAP_BODY
        .as_bytes()
        .chunks(1)
        .map(|byte| (ms(50), byte))
        .collect();
    let (res, took) = raw_wrap(&gw, trickle).await;
    assert_body_timeout(&res, took);
    assert_eq!(upstream.count(), 0, "the upstream saw a cut-off request");
    assert_eq!(
        gw.metric("kmsgate_rejections_total", &[("code", "BODY_TIMEOUT_ERR")])
            .await,
        3.0
    );

    // A body in three pieces that arrives within the deadline is forwarded unchanged.
    let bytes = WRAP_BODY.as_bytes();
    let (res, _) = raw_wrap(
        &gw,
        vec![
            (ms(0), &bytes[..20]),
            (ms(60), &bytes[20..40]),
            (ms(60), &bytes[40..]),
        ],
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(upstream.count(), 1);
    assert_eq!(&upstream.last().body[..], WRAP_BODY.as_bytes());
}

/// A request body that sends its first frame and then never another (nor its end).
struct Stalled(Option<bytes::Bytes>);

impl http_body::Body for Stalled {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        match self.0.take() {
            Some(data) => std::task::Poll::Ready(Some(Ok(http_body::Frame::data(data)))),
            None => std::task::Poll::Pending,
        }
    }
}

#[tokio::test]
async fn an_h2_body_that_stops_is_cut_off_at_the_read_timeout() {
    let upstream = Recorder::start().await;
    let gw = gateway(&upstream, "[body]\nread_timeout = \"300ms\"\n").await;
    let stream = tokio::net::TcpStream::connect(gw.addrs.public)
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = http::Request::post(format!(
        "http://{}/api/v2/keys/k1/actions/wrap",
        gw.addrs.public
    ))
    .header("authorization", "Bearer test-token")
    .header("bluemix-instance", INSTANCE)
    .body(Stalled(Some(bytes::Bytes::from_static(b"{\"plaintext\""))))
    .unwrap();
    let start = Instant::now();
    let res = tokio::time::timeout(Duration::from_secs(5), sender.send_request(req))
        .await
        .expect("the gateway did not answer within 5 s")
        .unwrap();
    let took = start.elapsed();
    let (parts, body) = res.into_parts();
    let body = http_body_util::BodyExt::collect(body)
        .await
        .unwrap()
        .to_bytes();
    let res = TestResponse {
        status: parts.status.as_u16(),
        version: parts.version,
        headers: parts.headers,
        body,
    };
    assert_body_timeout(&res, took);
    assert_eq!(upstream.count(), 0, "the upstream saw a cut-off request");
}

#[test]
fn the_read_timeout_is_configurable_and_must_be_positive() {
    use kmsgate::config::{BodyConfig, Config};
    let config = Config::from_toml(&[]).unwrap();
    assert_eq!(config.body.read_timeout, BodyConfig::DEFAULT_READ_TIMEOUT);
    assert_eq!(BodyConfig::DEFAULT_READ_TIMEOUT, Duration::from_secs(10));
    let config = Config::from_toml(&["[body]\nread_timeout = \"1m 30s\"\n"]).unwrap();
    assert_eq!(config.body.read_timeout, Duration::from_secs(90));
    let error = Config::from_toml(&["[body]\nread_timeout = \"0s\"\n"])
        .unwrap_err()
        .to_string();
    assert!(error.contains("body.read_timeout"), "{error}");
}
