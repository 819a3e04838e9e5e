//! Key Protect's service-to-service rules through the whole gateway, over loopback: a
//! registration write by a user is 403 `SERVICE_ONLY_ERR`, a key delete or purge by a service
//! 403 `RESOURCE_OWNER_ERR`, on every route and URL style, with the envelope, the counter and
//! an upstream that never saw the request; the non-refusals reach a real upstream (a recorder,
//! and the embedded dev KMS's registrations end to end); shadow, off and decode-only modes; and
//! IBM's Python (keyprotect 3.0.1) and Node (0.1.2) SDKs doing the registration flow through
//! the gateway on the quickstart configuration (`tests/service_rules/kp_registrations.{py,js}`).

mod support;

use std::time::Duration;

use kmsgate::config::Config;
use serde_json::{Value, json};
use support::{Recorder, TestGateway, TestResponse, assert_rejected, sdk};

const INSTANCE: &str = "00000000-0000-4000-8000-00000000051a";
const KEY: &str = "0b6ad8a0-5b4a-4f0f-9d1e-5e2d3c4b5a69";
/// A COS bucket CRN as a client sends it (URL-encoded: its `a/<account>` becomes `%2F`).
const CRN: &str =
    "crn%3Av1%3Abluemix%3Apublic%3Acloud-object-storage%3Aglobal%3Aa%2Facct%3Ainst%3Abucket%3Ab1";
/// The same CRN sent unencoded.
const RAW_CRN: &str = "crn:v1:bluemix:public:cloud-object-storage:global:a/acct:inst:bucket:b1";

/// The gateway's upstream and `[auth]` (a development HMAC key), plus `extra` (dotted keys).
fn settings(upstream: &str, extra: &str) -> String {
    let key = r#"{ kid = "dev", secret = "service-rules-test-secret", dev = true }"#;
    format!(
        "upstream.url = \"{upstream}\"\nauth.enabled = true\nauth.algorithms = [\"HS256\"]\n\
         auth.hmac_keys = [{key}]\n{extra}\n"
    )
}

/// A gateway with `settings`, and a user's and a service's token for it.
async fn gateway(settings: &str) -> (TestGateway, String, String) {
    let config = Config::from_toml(&[settings]).unwrap_or_else(|e| panic!("test config: {e}"));
    let user = token(&config, "alice", false);
    let service = token(&config, "cos-service", true);
    (TestGateway::start(settings).await, user, service)
}

/// A token for `sub`, a service's when `service`.
fn token(config: &Config, sub: &str, service: bool) -> String {
    kmsgate::auth::devtoken::mint(&config.auth, sub, Duration::from_secs(600), service)
        .expect("the test configuration mints tokens")
}

async fn send(
    gw: &TestGateway,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> TestResponse {
    let mut req = gw
        .request(method, path)
        .header("bluemix-instance", INSTANCE)
        .header("authorization", &format!("Bearer {token}"));
    if let Some(body) = body {
        req = req.json(body);
    }
    req.send().await
}

async fn rejections(gw: &TestGateway, code: &str) -> f64 {
    gw.metric("kmsgate_rejections_total", &[("code", code)])
        .await
}

/// The exact envelope of a 403 refusal naming `operation` (Key Protect's period style).
fn envelope(code: &str, message: &str, operation: &str, quote: &str) -> Value {
    json!({
        "metadata": {"collectionType": "application/vnd.ibm.kms.error+json", "collectionTotal": 1},
        "resources": [{
            "errorMsg": format!("Forbidden: {operation}. Please see {quote} for more details."),
            "reasons": [{
                "code": code,
                "message": message,
                "status": 403,
                "moreInfo": "https://cloud.ibm.com/apidocs/key-protect"
            }]
        }]
    })
}

const SERVICE_ONLY: &str = "This action can only be done by a service (service to service)";
const RESOURCE_OWNER: &str = "The resource(s) queried does not belong to the service";

fn registration_input() -> Value {
    json!({
        "metadata": {
            "collectionType": "application/vnd.ibm.kms.registration_input+json",
            "collectionTotal": 1
        },
        "resources": [{"preventKeyDeletion": false, "description": "bucket b1"}]
    })
}

/// One refused request: what is sent, by whom, and the refusal's code and operation.
struct Case<'a> {
    method: &'static str,
    path: String,
    body: Option<&'a Value>,
    caller: &'a str,
    code: &'static str,
    operation: &'static str,
    quote: &'static str,
}

impl<'a> Case<'a> {
    fn service_only(
        method: &'static str,
        path: String,
        body: Option<&'a Value>,
        user: &'a str,
        operation: &'static str,
    ) -> Self {
        Case {
            method,
            path,
            body,
            caller: user,
            code: "SERVICE_ONLY_ERR",
            operation,
            quote: "`reasons`",
        }
    }

    fn resource_owner(
        path: String,
        service: &'a str,
        operation: &'static str,
        quote: &'static str,
    ) -> Self {
        Case {
            method: "DELETE",
            path,
            body: None,
            caller: service,
            code: "RESOURCE_OWNER_ERR",
            operation,
            quote,
        }
    }
}

#[tokio::test]
async fn every_refusal_route_and_style_with_envelope_counter_and_untouched_upstream() {
    let upstream = Recorder::start().await;
    let (gw, user, service) = gateway(&settings(&upstream.url(), "")).await;
    let body = registration_input();
    let registration = |crn: &str| format!("/api/v2/keys/{KEY}/registrations/{crn}");
    let mut cases: Vec<Case<'_>> = Vec::new();
    for crn in [CRN, RAW_CRN] {
        for (method, operation, with_body) in [
            ("POST", "Registration could not be created", true),
            ("PUT", "Registration could not be replaced", true),
            ("PATCH", "Registration could not be updated", true),
            ("DELETE", "Registration could not be deleted", false),
        ] {
            let body = with_body.then_some(&body);
            cases.push(Case::service_only(
                method,
                registration(crn),
                body,
                &user,
                operation,
            ));
        }
    }
    // The action-style form, and a key named by its alias.
    cases.push(Case::service_only(
        "POST",
        format!("/api/v2/keys/{KEY}/registrations?action=deactivate"),
        Some(&body),
        &user,
        "Action could not be performed on registration",
    ));
    cases.push(Case::service_only(
        "POST",
        format!("/api/v2/keys/bucket-key/registrations/{CRN}"),
        Some(&body),
        &user,
        "Registration could not be created",
    ));
    for path in [
        format!("/api/v2/keys/{KEY}"),
        format!("/api/v2/keys/{KEY}?force=true"),
        format!("/api/v2/keys/{KEY}/"),
        "/api/v2/keys/bucket-key".to_owned(),
    ] {
        cases.push(Case::resource_owner(
            path,
            &service,
            "Key could not be deleted",
            "`reasons`",
        ));
    }
    cases.push(Case::resource_owner(
        format!("/api/v2/keys/{KEY}/purge"),
        &service,
        "Key could not be purged",
        "'reasons'",
    ));
    let mut expected = [("SERVICE_ONLY_ERR", 0.0), ("RESOURCE_OWNER_ERR", 0.0)];
    for case in &cases {
        let (method, path) = (case.method, &case.path);
        let res = send(&gw, method, path, case.caller, case.body).await;
        assert_rejected(&res, 403, case.code);
        let message = if case.code == "SERVICE_ONLY_ERR" {
            SERVICE_ONLY
        } else {
            RESOURCE_OWNER
        };
        assert_eq!(
            res.json(),
            envelope(case.code, message, case.operation, case.quote),
            "{method} {path}"
        );
        for (c, n) in &mut expected {
            if *c == case.code {
                *n += 1.0;
            }
            assert_eq!(rejections(&gw, c).await, *n, "{c} after {method} {path}");
        }
    }
    // Over HTTP/2 too.
    let res = gw
        .request("PUT", &registration(CRN))
        .h2()
        .header("bluemix-instance", INSTANCE)
        .header("authorization", &format!("Bearer {user}"))
        .json(&body)
        .send()
        .await;
    assert_rejected(&res, 403, "SERVICE_ONLY_ERR");
    assert_eq!(
        upstream.count(),
        0,
        "the upstream saw a refused request: {:?}",
        upstream.requests()
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn who_may_is_forwarded_and_nothing_is_counted() {
    let upstream = Recorder::start().await;
    let (gw, user, service) = gateway(&settings(&upstream.url(), "")).await;
    let body = registration_input();
    let reg = format!("/api/v2/keys/{KEY}/registrations/{CRN}");
    let allowed: Vec<(&str, String, Option<&Value>, &str)> = vec![
        ("POST", reg.clone(), Some(&body), &service),
        ("PUT", reg.clone(), Some(&body), &service),
        ("PATCH", reg.clone(), Some(&body), &service),
        ("DELETE", reg.clone(), None, &service),
        (
            "POST",
            format!("/api/v2/keys/{KEY}/registrations?action=deactivate"),
            Some(&body),
            &service,
        ),
        (
            "GET",
            format!("/api/v2/keys/{KEY}/registrations"),
            None,
            &user,
        ),
        ("GET", "/api/v2/keys/registrations".to_owned(), None, &user),
        ("DELETE", format!("/api/v2/keys/{KEY}"), None, &user),
        ("DELETE", format!("/api/v2/keys/{KEY}/purge"), None, &user),
        (
            "POST",
            format!("/api/v2/keys/{KEY}/actions/setKeyForDeletion"),
            None,
            &service,
        ),
        ("GET", format!("/api/v2/keys/{KEY}"), None, &service),
    ];
    for (i, (method, path, body, caller)) in allowed.iter().enumerate() {
        let res = send(&gw, method, path, caller, *body).await;
        assert_eq!(res.status, 200, "{method} {path}: {}", res.text());
        assert_eq!(res.header("kmsgate-reason"), None);
        assert_eq!(upstream.count(), i + 1, "{method} {path} was not forwarded");
        let seen = upstream.last();
        assert_eq!(seen.method.as_str(), *method);
    }
    // The encoded CRN went upstream in its canonical form: `:` plain, the `/` still `%2F`.
    assert!(
        upstream.requests()[0]
            .uri
            .path()
            .ends_with(":global:a%2Facct:inst:bucket:b1"),
        "{}",
        upstream.requests()[0].uri
    );
    for code in ["SERVICE_ONLY_ERR", "RESOURCE_OWNER_ERR"] {
        assert_eq!(rejections(&gw, code).await, 0.0);
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn shadow_counts_and_forwards_off_decides_nothing() {
    for (mode, shadowed) in [("shadow", 1.0), ("off", 0.0)] {
        let upstream = Recorder::start().await;
        let extra = format!("auth.service_rules = \"{mode}\"");
        let (gw, user, service) = gateway(&settings(&upstream.url(), &extra)).await;
        let reg = format!("/api/v2/keys/{KEY}/registrations/{CRN}");
        let res = send(&gw, "POST", &reg, &user, Some(&registration_input())).await;
        assert_eq!(res.status, 200, "{mode}: {}", res.text());
        let res = send(
            &gw,
            "DELETE",
            &format!("/api/v2/keys/{KEY}"),
            &service,
            None,
        )
        .await;
        assert_eq!(res.status, 200, "{mode}: {}", res.text());
        assert_eq!(upstream.count(), 2, "{mode}");
        for code in ["SERVICE_ONLY_ERR", "RESOURCE_OWNER_ERR"] {
            assert_eq!(rejections(&gw, code).await, 0.0, "{mode} {code}");
            let would = gw
                .metric("kmsgate_shadow_rejections_total", &[("code", code)])
                .await;
            assert_eq!(would, shadowed, "{mode} {code}");
        }
        gw.shutdown().await;
    }
}

#[tokio::test]
async fn decode_only_reads_the_service_claim_and_bearer_refusals_come_first() {
    let upstream = Recorder::start().await;
    // Tokens signed with the key, read by a gateway that only decodes them.
    let (gw, user, service) =
        gateway(&settings(&upstream.url(), "auth.mode = \"decode-only\"")).await;
    let res = send(
        &gw,
        "DELETE",
        &format!("/api/v2/keys/{KEY}/purge"),
        &service,
        None,
    )
    .await;
    assert_rejected(&res, 403, "RESOURCE_OWNER_ERR");
    let reg = format!("/api/v2/keys/{KEY}/registrations/{CRN}");
    let res = send(&gw, "PATCH", &reg, &user, Some(&registration_input())).await;
    assert_rejected(&res, 403, "SERVICE_ONLY_ERR");
    // No token: the bearer layer answers before any service rule.
    let res = gw
        .request("POST", &reg)
        .header("bluemix-instance", INSTANCE)
        .json(&registration_input())
        .send()
        .await;
    assert_rejected(&res, 400, "BEARER_SUB_EXTRACTION_ERR");
    assert_eq!(
        res.json()["resources"][0]["errorMsg"],
        "Bad Request: Registration could not be created. Please see `reasons` for more details."
    );
    assert_eq!(upstream.count(), 0);
    gw.shutdown().await;
}

/// The flow end to end on the embedded dev KMS: a user's root key, a service's registration
/// on it (create, list, update, replace), the key kept by it, then released.
#[tokio::test]
async fn registrations_end_to_end_on_the_dev_kms() {
    let (gw, user, service) = gateway(&settings("embedded", "")).await;
    let created = send(
        &gw,
        "POST",
        "/api/v2/keys",
        &user,
        Some(&json!({
            "metadata": {"collectionType": "application/vnd.ibm.kms.key+json", "collectionTotal": 1},
            "resources": [{"type": "application/vnd.ibm.kms.key+json", "name": "bucket-root", "extractable": false}]
        })),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let key = created.json()["resources"][0]["id"]
        .as_str()
        .expect("key id")
        .to_owned();
    let reg = format!("/api/v2/keys/{key}/registrations/{CRN}");
    // A user may not; the upstream never sees it.
    let before = gw.upstream_calls().await;
    let res = send(&gw, "POST", &reg, &user, Some(&registration_input())).await;
    assert_rejected(&res, 403, "SERVICE_ONLY_ERR");
    assert_eq!(gw.upstream_calls().await, before);
    // The service may.
    let res = send(&gw, "POST", &reg, &service, Some(&registration_input())).await;
    assert_eq!(res.status, 201, "{}", res.text());
    let v = res.json();
    assert_eq!(
        v["metadata"]["collectionType"],
        "application/vnd.ibm.kms.registration+json"
    );
    let r = &v["resources"][0];
    assert_eq!(r["keyId"], key.as_str());
    assert_eq!(r["resourceCrn"], RAW_CRN);
    assert_eq!(r["createdBy"], "cos-service");
    assert_eq!(r["preventKeyDeletion"], false);
    // Everyone may list it.
    for path in [
        format!("/api/v2/keys/{key}/registrations?totalCount=true"),
        "/api/v2/keys/registrations?urlEncodedResourceCRN=crn%3Av1%3Abluemix%3A*&totalCount=true"
            .to_owned(),
    ] {
        let res = send(&gw, "GET", &path, &user, None).await;
        assert_eq!(res.status, 200, "{path}: {}", res.text());
        assert_eq!(res.json()["metadata"]["totalCount"], 1, "{path}");
        assert_eq!(res.json()["resources"][0]["resourceCrn"], RAW_CRN);
    }
    // The key is protected: the dev KMS refuses its deletion (the KMS's answer, no kmsgate-reason).
    let res = send(&gw, "DELETE", &format!("/api/v2/keys/{key}"), &user, None).await;
    assert_eq!(res.status, 409, "{}", res.text());
    assert_eq!(res.header("kmsgate-reason"), None);
    assert_eq!(
        res.json()["resources"][0]["reasons"][0]["code"],
        "PROTECTED_RESOURCE_ERR"
    );
    // Update, then replace with preventKeyDeletion: even a forced delete is refused.
    let patch = json!({
        "metadata": {"collectionType": "application/vnd.ibm.kms.registration_input+json", "collectionTotal": 1},
        "resources": [{"description": "bucket b1, updated"}]
    });
    let res = send(&gw, "PATCH", &reg, &service, Some(&patch)).await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(
        res.json()["resources"][0]["description"],
        "bucket b1, updated"
    );
    let put = json!({
        "metadata": {"collectionType": "application/vnd.ibm.kms.registration_input+json", "collectionTotal": 1},
        "resources": [{"preventKeyDeletion": true}]
    });
    let res = send(&gw, "PUT", &reg, &service, Some(&put)).await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.json()["resources"][0]["preventKeyDeletion"], true);
    assert!(res.json()["resources"][0].get("description").is_none());
    let path = format!("/api/v2/keys/{key}?force=true");
    let res = send(&gw, "DELETE", &path, &user, None).await;
    assert_eq!(res.status, 409, "{}", res.text());
    assert_eq!(
        res.json()["resources"][0]["reasons"][0]["code"],
        "PREV_KEY_DEL_ERR"
    );
    // The service may not delete the key (the gateway answers), but deletes its registration.
    let res = send(&gw, "DELETE", &path, &service, None).await;
    assert_rejected(&res, 403, "RESOURCE_OWNER_ERR");
    let res = send(&gw, "DELETE", &reg, &service, None).await;
    assert_eq!(res.status, 204, "{}", res.text());
    // Now the user deletes the key.
    let res = send(&gw, "DELETE", &format!("/api/v2/keys/{key}"), &user, None).await;
    assert_eq!(res.status, 204, "{}", res.text());
    gw.shutdown().await;
}

/// Runs an SDK's registration script (`tests/service_rules/kp_registrations.*`) against a
/// quickstart gateway with a user's token (`KP_TOKEN`) and a service's (`KP_TOKEN_2`), and
/// checks the gateway counted its refusals.
async fn sdk_flow(name: &str, program: &std::path::Path, script: &str, env: &[(&str, String)]) {
    let policies = sdk::scratch(&format!("service-rules-{name}"));
    let config = sdk::quickstart(&policies);
    let tokens = [
        sdk::token(&config, &format!("{name}-user")),
        token(&config, &format!("{name}-service"), true),
    ];
    let gw = TestGateway::start_with(config).await;
    let mut command = sdk::client_command(program, script, &gw, INSTANCE, tokens);
    command.envs(env.iter().map(|(k, v)| (*k, v)));
    let out = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the client run panicked")
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("all steps passed"),
        "the {name} client failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // Three user writes and two service deletions were the gateway's refusals.
    assert_eq!(rejections(&gw, "SERVICE_ONLY_ERR").await, 3.0);
    assert_eq!(rejections(&gw, "RESOURCE_OWNER_ERR").await, 2.0);
    let created = gw
        .metric(
            "kmsgate_requests_total",
            &[("route", "registration_create"), ("outcome", "forwarded")],
        )
        .await;
    assert_eq!(created, 1.0);
    gw.shutdown().await;
    let _ = std::fs::remove_dir_all(&policies);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_registers_as_a_service_through_the_gateway() {
    let python = tokio::task::spawn_blocking(sdk::keyprotect_3_0_1)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    let script = "tests/service_rules/kp_registrations.py";
    sdk_flow("python", &python, script, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_sdk_registers_as_a_service_through_the_gateway() {
    let modules = tokio::task::spawn_blocking(sdk::node_modules)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    let env = [("NODE_PATH", modules.display().to_string())];
    let script = "tests/service_rules/kp_registrations.js";
    sdk_flow("node", std::path::Path::new("node"), script, &env).await;
}
