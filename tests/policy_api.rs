//! The policy API modes (`policies.api`) over real loopback sockets: `mirror` in front of the
//! embedded dev KMS (a PUT is enforced at once, and still after a restart), `own` (the gateway
//! answers GET and PUT itself, in Key Protect's shape), and the seed scenario end to end.

mod support;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use support::{Recorder, TestGateway, TestResponse, assert_rejected};

const INSTANCE: &str = "a8b9e8f4-7d0f-4c4f-9b3e-0000000000a1";

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kmsgate-api-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn config(upstream: &str, dir: &Path, api: &str) -> String {
    format!(
        "[upstream]\nurl = \"{upstream}\"\n[policies]\ndir = \"{}\"\napi = \"{api}\"\n",
        dir.display()
    )
}

/// A `PUT ?policy=keyCreateImportAccess` body.
fn kcia(attributes: Value) -> Value {
    json!({
        "metadata": {"collectionType": "application/vnd.ibm.kms.policy+json", "collectionTotal": 1},
        "resources": [{"policy_type": "keyCreateImportAccess", "policy_data": attributes}]
    })
}

fn allowed_ip(nets: &[&str]) -> Value {
    json!({
        "metadata": {"collectionType": "application/vnd.ibm.kms.policy+json", "collectionTotal": 1},
        "resources": [{"policy_type": "allowedIP",
            "policy_data": {"enabled": true, "attributes": {"allowed_ip": nets}}}]
    })
}

async fn put(gw: &TestGateway, query: &str, body: &Value) -> TestResponse {
    gw.request("PUT", &format!("/api/v2/instance/policies{query}"))
        .header("bluemix-instance", INSTANCE)
        .json(body)
        .send()
        .await
}

async fn get(gw: &TestGateway, query: &str) -> TestResponse {
    gw.request("GET", &format!("/api/v2/instance/policies{query}"))
        .header("bluemix-instance", INSTANCE)
        .send()
        .await
}

async fn create_standard_key(gw: &TestGateway) -> TestResponse {
    gw.request("POST", "/api/v2/keys")
        .header("bluemix-instance", INSTANCE)
        .header("content-type", "application/vnd.ibm.kms.key+json")
        .json(&json!({
            "metadata": {"collectionType": "application/vnd.ibm.kms.key+json", "collectionTotal": 1},
            "resources": [{"type": "application/vnd.ibm.kms.key+json", "name": "std", "extractable": true}]
        }))
        .send()
        .await
}

/// The seed scenario: enable keyCreateImportAccess without standard keys through the API →
/// creating a standard key is refused → disable it → the same create succeeds.
async fn seed_scenario(gw: &TestGateway) {
    assert_eq!(create_standard_key(gw).await.status, 201);
    let res = put(
        gw,
        "?policy=keyCreateImportAccess",
        &kcia(json!({"enabled": true, "attributes": {"create_standard_key": false}})),
    )
    .await;
    assert_eq!(res.status, 204, "{}", res.text());
    assert_rejected(
        &create_standard_key(gw).await,
        409,
        "KEY_CREATE_IMPORT_ACCESS_ERR",
    );
    let res = put(
        gw,
        "?policy=keyCreateImportAccess",
        &kcia(json!({"enabled": false})),
    )
    .await;
    assert_eq!(res.status, 204, "{}", res.text());
    assert_eq!(create_standard_key(gw).await.status, 201);
}

#[tokio::test]
async fn mirror_seed_scenario_against_the_embedded_kms() {
    let dir = temp_dir("mirror-seed");
    let gw = TestGateway::start(&config("embedded", &dir, "mirror")).await;
    seed_scenario(&gw).await;
    // The backend has the same policy (mirror forwards the PUT).
    let res = get(&gw, "?policy=keyCreateImportAccess").await;
    assert_eq!(
        res.json()["resources"][0]["policy_data"]["enabled"],
        false,
        "{}",
        res.text()
    );
}

#[tokio::test]
async fn mirror_persists_across_a_restart() {
    let dir = temp_dir("mirror-restart");
    let gw = TestGateway::start(&config("embedded", &dir, "mirror")).await;
    let res = put(
        &gw,
        "?policy=keyCreateImportAccess",
        &kcia(json!({"enabled": true, "attributes": {"create_standard_key": false}})),
    )
    .await;
    assert_eq!(res.status, 204);
    let calls = gw.upstream_calls().await;
    assert_rejected(
        &create_standard_key(&gw).await,
        409,
        "KEY_CREATE_IMPORT_ACCESS_ERR",
    );
    assert_eq!(
        gw.upstream_calls().await,
        calls,
        "the KMS never saw the refused create"
    );
    gw.shutdown().await;

    // The file is Key Protect's GET document, and a new gateway on the same directory enforces it.
    let text = std::fs::read_to_string(dir.join(format!("{INSTANCE}.json"))).unwrap();
    let file: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(file["resources"][0]["policy_type"], "keyCreateImportAccess");
    assert_eq!(
        file["resources"][0]["policy_data"]["attributes"]["create_standard_key"],
        false
    );
    let restarted = TestGateway::start(&config("embedded", &dir, "mirror")).await;
    assert_rejected(
        &create_standard_key(&restarted).await,
        409,
        "KEY_CREATE_IMPORT_ACCESS_ERR",
    );
    assert_eq!(
        restarted.upstream_calls().await,
        0.0,
        "the KMS never saw the refused create"
    );
}

#[tokio::test]
async fn mirror_applies_nothing_the_backend_refused() {
    let upstream = Recorder::start().await;
    upstream.respond_with(
        409,
        r#"{"metadata":{"collectionType":"application/vnd.ibm.kms.error+json","collectionTotal":1},"resources":[{"errorMsg":"Conflict"}]}"#,
    );
    let dir = temp_dir("mirror-refused");
    let gw = TestGateway::start(&config(&upstream.url(), &dir, "mirror")).await;
    let res = put(&gw, "?policy=allowedIP", &allowed_ip(&["10.0.0.0/8"])).await;
    assert_eq!(res.status, 409);
    assert!(
        res.header("kmsgate-reason").is_none(),
        "the backend refused, not the gateway"
    );
    assert_eq!(upstream.count(), 1);
    assert!(!dir.join(format!("{INSTANCE}.json")).exists());
    upstream.respond_with(200, "{}");
    // Still no allowedIP policy: the loopback client is let through.
    assert_eq!(get(&gw, "").await.status, 200);
}

#[tokio::test]
async fn own_mode_answers_get_after_put_in_key_protect_shape() {
    let upstream = Recorder::start().await;
    let dir = temp_dir("own");
    let gw = TestGateway::start(&config(&upstream.url(), &dir, "own")).await;

    // Nothing set yet: an empty document.
    let res = get(&gw, "").await;
    assert_eq!(res.status, 200);
    assert_eq!(
        res.json(),
        json!({"metadata": {"collectionType": "application/vnd.ibm.kms.policy+json", "collectionTotal": 0}, "resources": []})
    );

    let res = put(
        &gw,
        "?policy=allowedIP",
        &allowed_ip(&["127.0.0.0/8", "10.0.0.0/8"]),
    )
    .await;
    assert_eq!(res.status, 204, "{}", res.text());
    let res = put(
        &gw,
        "?policy=keyCreateImportAccess",
        &kcia(json!({"enabled": true, "attributes": {"create_standard_key": false, "enforce_token": true}})),
    )
    .await;
    assert_eq!(res.status, 204);
    let first = get(&gw, "").await.json();
    assert_eq!(first["metadata"]["collectionTotal"], 2);
    let ip = &first["resources"][0];
    assert_eq!(ip["policy_type"], "allowedIP");
    assert_eq!(ip["createdBy"], "unknown");
    assert_eq!(ip["updatedBy"], "unknown");
    assert!(ip["creationDate"].as_str().unwrap().ends_with('Z'));
    assert_eq!(ip["lastUpdated"], ip["creationDate"]);
    assert_eq!(
        ip["policy_data"],
        json!({"enabled": true, "attributes": {"allowed_ip": ["127.0.0.0/8", "10.0.0.0/8"]}})
    );
    assert_eq!(
        first["resources"][1]["policy_data"]["attributes"],
        json!({"create_root_key": true, "create_standard_key": false, "import_root_key": true,
               "import_standard_key": true, "enforce_token": true})
    );

    // Key Protect's update semantics: the allowedIP list is replaced; omitted
    // keyCreateImportAccess attributes reset to their defaults.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        put(&gw, "?policy=allowedIP", &allowed_ip(&["127.0.0.1/32"]))
            .await
            .status,
        204
    );
    let res = put(&gw, "", &kcia(json!({"enabled": true}))).await;
    assert_eq!(res.status, 204);
    let second = get(&gw, "").await.json();
    let ip = &second["resources"][0];
    assert_eq!(
        ip["policy_data"]["attributes"]["allowed_ip"],
        json!(["127.0.0.1/32"])
    );
    assert_eq!(ip["creationDate"], first["resources"][0]["creationDate"]);
    assert_ne!(ip["lastUpdated"], ip["creationDate"]);
    assert_eq!(
        second["resources"][1]["policy_data"]["attributes"]["create_standard_key"],
        true
    );
    assert_eq!(
        second["resources"][1]["policy_data"]["attributes"]["enforce_token"],
        false
    );

    // ?policy= selects one; a bad name is Key Protect's error.
    let one = get(&gw, "?policy=allowedIP").await.json();
    assert_eq!(one["metadata"]["collectionTotal"], 1);
    assert_eq!(one["resources"][0]["policy_type"], "allowedIP");
    assert_rejected(
        &get(&gw, "?policy=nope").await,
        400,
        "INVALID_QUERY_PARAM_ERR",
    );

    // The backend never saw a policy request, and what was put is enforced.
    assert_eq!(upstream.count(), 0);
    let res = gw
        .request("GET", "/api/v2/keys")
        .header("bluemix-instance", INSTANCE)
        .send()
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(upstream.count(), 1);

    // A restarted gateway reads the persisted document back unchanged.
    gw.shutdown().await;
    let restarted = TestGateway::start(&config(&upstream.url(), &dir, "own")).await;
    assert_eq!(get(&restarted, "").await.json(), second);
}

#[tokio::test]
async fn own_mode_seed_scenario() {
    let dir = temp_dir("own-seed");
    let gw = TestGateway::start(&config("embedded", &dir, "own")).await;
    seed_scenario(&gw).await;
}

#[tokio::test]
async fn own_mode_refuses_bad_puts_before_storing() {
    let upstream = Recorder::start().await;
    let dir = temp_dir("own-bad");
    let gw = TestGateway::start(&config(&upstream.url(), &dir, "own")).await;
    let res = put(
        &gw,
        "?policy=allowedIP",
        &json!({"metadata": {"collectionType": "application/vnd.ibm.kms.policy+json", "collectionTotal": 1},
                "resources": [{"policy_type": "allowedIP",
                    "policy_data": {"enabled": true, "attributes": {"allowed_ip": ["not-a-cidr"]}}}]}),
    )
    .await;
    assert_rejected(&res, 400, "INVALID_FIELD_ERR");
    let res = gw
        .request("PUT", "/api/v2/instance/policies?policy=allowedIP")
        .json(&allowed_ip(&["10.0.0.0/8"]))
        .send()
        .await;
    assert_rejected(&res, 401, "UNAUTHORIZED_ERR");
    assert_eq!(upstream.count(), 0);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
}

#[tokio::test]
async fn api_modes_that_persist_need_a_directory() {
    let e = kmsgate::config::Config::from_toml(&["[policies]\napi = \"mirror\"\n"])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("policies.api") && e.contains("policies.dir"),
        "{e}"
    );
}

/// A crash between writing the temporary file and renaming it leaves the old document: the
/// gateway (re)starts on the old policy, ignores the torn temporary file, and the next PUT
/// replaces both.
#[tokio::test]
async fn a_crash_before_the_rename_leaves_the_old_policy() {
    use kmsgate::policy::model::{AllowedIp, Policy, PolicyRecords};
    use kmsgate::policy::source::{persist, write_temp};

    let upstream = Recorder::start().await;
    let dir = temp_dir("crash");
    let records = |net: &str| {
        let mut r = PolicyRecords::default();
        r.update(
            [Policy::AllowedIp(AllowedIp {
                enabled: true,
                allowed_ip: vec![net.parse().unwrap()],
            })],
            "test",
            "2026-11-29T12:00:00Z",
        );
        r
    };
    persist(&dir, INSTANCE, &records("127.0.0.0/8")).unwrap();
    // The new version reaches its temporary file, which is then torn; the process "dies".
    let temp = write_temp(&dir, INSTANCE, &records("10.0.0.0/8")).unwrap();
    std::fs::write(&temp, "{\"metadata\": {\"colle").unwrap();

    let gw = TestGateway::start(&config(&upstream.url(), &dir, "own")).await;
    let keys = || {
        gw.request("GET", "/api/v2/keys")
            .header("bluemix-instance", INSTANCE)
            .send()
    };
    assert_eq!(
        keys().await.status,
        200,
        "the old policy (127.0.0.0/8) applies"
    );
    let doc = get(&gw, "?policy=allowedIP").await.json();
    assert_eq!(
        doc["resources"][0]["policy_data"]["attributes"]["allowed_ip"],
        json!(["127.0.0.0/8"])
    );
    assert_eq!(
        put(&gw, "?policy=allowedIP", &allowed_ip(&["10.0.0.0/8"]))
            .await
            .status,
        204
    );
    assert!(!temp.exists(), "the next write replaces the leftover");
    let seen = upstream.count();
    assert_rejected(&keys().await, 401, "UNAUTHORIZED_ERR");
    assert_eq!(
        upstream.count(),
        seen,
        "the upstream never saw the refused request"
    );
}
