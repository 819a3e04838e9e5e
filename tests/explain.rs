//! `kmsgate explain` reproduces the live decision: every refusal the gateway itself makes (one
//! case per reason code, the requests taken from the other integration tests) is sent to a
//! gateway on loopback in front of a recording upstream, and explained with the same
//! configuration; status, reason code, envelope, headers (all but `date`) and the
//! forwarded/refused outcome must be the same, and explain's per-layer account must agree with
//! its stack. A few requests that are forwarded are checked the same way.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kmsgate::config::Config;
use kmsgate::conn::ListenerKind;
use kmsgate::explain::{Explainer, Outcome, RequestInput};
use kmsgate::gateway::Gateway;
use support::{Recorder, TestGateway, TestRequest};

const SECRET: &str = "explain-test-hmac-key-of-enough-length";
const IP: &str = "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9";
const PRIVATE: &str = "2a3b4c5d-6e7f-4a8b-9c0d-1e2f3a4b5c6d";
const KCIA: &str = "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f";
const OPEN: &str = "4d5e6f7a-8b9c-4d0e-9f1a-2b3c4d5e6f7a";
/// A key and a registration's resource CRN (tests/service_rules.rs).
const KEY: &str = "0b6ad8a0-5b4a-4f0f-9d1e-5e2d3c4b5a69";
const CRN: &str =
    "crn%3Av1%3Abluemix%3Apublic%3Acloud-object-storage%3Aglobal%3Aa%2Facct%3Ainst%3Abucket%3Ab1";
const V6: &str = "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b";

fn config_toml(upstream: &Recorder) -> String {
    format!(
        r#"
[upstream]
url = "{url}"

[routes]
unknown = "refuse"

[body]
limit = 4096

[auth]
enabled = true
algorithms = ["HS256"]

[[auth.hmac_keys]]
secret = "{SECRET}"
dev = true

[client_ip]
trusted_proxies = ["127.0.0.9/32"]

[network]
private_hosts = ["private.kms.example"]

[policies]
unknown_instance = "reject"

[policies.instances]
"{IP}" = '''
{{"metadata": {{"collectionType": "application/vnd.ibm.kms.policy+json", "collectionTotal": 1}},
 "resources": [{{"policy_type": "allowedIP",
                "policy_data": {{"enabled": true, "attributes": {{"allowed_ip": ["10.0.0.0/8", "127.0.0.2/32"]}}}}}}]}}
'''
"{V6}" = '''
{{"metadata": {{"collectionType": "application/vnd.ibm.kms.policy+json", "collectionTotal": 1}},
 "resources": [{{"policy_type": "allowedIP",
                "policy_data": {{"enabled": true, "attributes": {{"allowed_ip": ["127.0.0.0/8"]}}}}}}]}}
'''
"{PRIVATE}" = '''
{{"metadata": {{"collectionType": "application/vnd.ibm.kms.policy+json", "collectionTotal": 1}},
 "resources": [{{"policy_type": "allowedNetwork",
                "policy_data": {{"enabled": true, "attributes": {{"allowed_network": "private-only"}}}}}}]}}
'''
"{KCIA}" = '''
{{"metadata": {{"collectionType": "application/vnd.ibm.kms.policy+json", "collectionTotal": 1}},
 "resources": [{{"policy_type": "keyCreateImportAccess",
                "policy_data": {{"enabled": true, "attributes": {{"create_standard_key": false, "enforce_token": true}}}}}}]}}
'''
"{OPEN}" = '''
{{"metadata": {{"collectionType": "application/vnd.ibm.kms.policy+json", "collectionTotal": 1}},
 "resources": [{{"policy_type": "dualAuthDelete", "policy_data": {{"enabled": false}}}}]}}
'''
"#,
        url = upstream.url()
    )
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn hs256(claims: &serde_json::Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()).unwrap(),
    )
    .unwrap()
}

const KEY_CT: &str = "application/vnd.ibm.kms.key+json";
const POLICY_CT: &str = "application/vnd.ibm.kms.policy+json";

fn key_body(resource: &str) -> String {
    format!(
        r#"{{"metadata":{{"collectionType":"application/vnd.ibm.kms.key+json","collectionTotal":1}},"resources":[{resource}]}}"#
    )
}

/// One request of the table.
struct Case {
    /// What it shows, and the code the live gateway answers (None: forwarded).
    name: &'static str,
    code: Option<&'static str>,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: String,
    from: &'static str,
    private: bool,
}

impl Case {
    fn new(
        name: &'static str,
        code: Option<&'static str>,
        method: &'static str,
        path: &str,
    ) -> Case {
        Case {
            name,
            code,
            method,
            path: path.to_owned(),
            headers: Vec::new(),
            body: String::new(),
            from: "127.0.0.1",
            private: false,
        }
    }
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Case {
        self.headers.push((name, value.into()));
        self
    }
    fn instance(self, id: &str) -> Case {
        self.header("bluemix-instance", id)
    }
    fn token(self, token: &str) -> Case {
        self.header("authorization", format!("Bearer {token}"))
    }
    fn body(mut self, content_type: &'static str, body: impl Into<String>) -> Case {
        self.body = body.into();
        self.header("content-type", content_type)
    }
    fn from(mut self, ip: &'static str) -> Case {
        self.from = ip;
        self
    }
    fn private(mut self) -> Case {
        self.private = true;
        self
    }
}

fn cases(config: &Config) -> Vec<Case> {
    let good =
        kmsgate::auth::devtoken::mint(&config.auth, "alice", Duration::from_secs(600), false)
            .unwrap();
    let service = kmsgate::auth::devtoken::mint(
        &config.auth,
        "ServiceId-cos",
        Duration::from_secs(600),
        true,
    )
    .unwrap();
    let expired = hs256(
        &serde_json::json!({"sub": "alice", "exp": now() - 3600}),
        SECRET,
    );
    let forged = hs256(
        &serde_json::json!({"sub": "alice", "exp": now() + 600}),
        "another-key-that-nobody-configured!!",
    );
    let no_sub = hs256(&serde_json::json!({"exp": now() + 600}), SECRET);
    let standard = key_body(&format!(
        r#"{{"type":"{KEY_CT}","name":"k","extractable":true}}"#
    ));
    let root = key_body(&format!(
        r#"{{"type":"{KEY_CT}","name":"k","extractable":false}}"#
    ));
    let import = key_body(&format!(
        r#"{{"type":"{KEY_CT}","name":"k","payload":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}}"#
    ));
    let two_policies = r#"{"metadata":{"collectionType":"application/vnd.ibm.kms.policy+json","collectionTotal":2},"resources":[{"policy_type":"dualAuthDelete","policy_data":{"enabled":false}},{"policy_type":"dualAuthDelete","policy_data":{"enabled":false}}]}"#;
    let mismatch = r#"{"metadata":{"collectionType":"application/vnd.ibm.kms.policy+json","collectionTotal":1},"resources":[{"policy_type":"allowedNetwork","policy_data":{"enabled":true,"attributes":{"allowed_network":"public-and-private"}}}]}"#;
    let total = r#"{"metadata":{"collectionType":"application/vnd.ibm.kms.policy+json","collectionTotal":2},"resources":[{"policy_type":"dualAuthDelete","policy_data":{"enabled":false}}]}"#;
    vec![
        // route (tests/canonical.rs)
        Case::new(
            "TRACE",
            Some("METHOD_NOT_ALLOWED_ERR"),
            "TRACE",
            "/api/v2/keys",
        )
        .instance(OPEN),
        Case::new(
            "encoded slash",
            Some("AMBIGUOUS_REQUEST_ERR"),
            "GET",
            "/api/v2/keys%2Fx",
        )
        .instance(OPEN),
        Case::new(
            "method override",
            Some("AMBIGUOUS_REQUEST_ERR"),
            "POST",
            "/api/v2/keys",
        )
        .header("x-http-method-override", "DELETE")
        .instance(OPEN),
        Case::new(
            "repeated action",
            Some("INVALID_QUERY_PARAM_ERR"),
            "POST",
            "/api/v2/keys/k1?action=wrap&action=rotate",
        )
        .instance(OPEN),
        Case::new(
            "not Key Protect",
            Some("UNKNOWN_ROUTE_ERR"),
            "GET",
            "/admin/secrets",
        )
        .instance(OPEN),
        // instance (tests/canonical.rs, tests/network.rs)
        Case::new(
            "two instance headers",
            Some("AMBIGUOUS_REQUEST_ERR"),
            "GET",
            "/api/v2/keys",
        )
        .instance(OPEN)
        .instance(IP),
        Case::new(
            "unknown instance",
            Some("UNAUTHORIZED_ERR"),
            "GET",
            "/api/v2/keys",
        )
        .instance("9f9f9f9f-9f9f-4f9f-9f9f-9f9f9f9f9f9f")
        .token(&good),
        // network, allowed_ip (tests/network.rs)
        Case::new(
            "private-only, public",
            Some("CONFIG_RULE_CONFLICT_ERR"),
            "GET",
            "/api/v2/keys",
        )
        .instance(PRIVATE)
        .token(&good),
        Case::new(
            "allowedIP outside",
            Some("UNAUTHORIZED_ERR"),
            "GET",
            "/api/v2/keys",
        )
        .instance(IP)
        .token(&good),
        Case::new(
            "allowedIP, IPv6 client",
            Some("FEATURE_RESTRICTED_ERR"),
            "GET",
            "/api/v2/keys",
        )
        .instance(V6)
        .header("x-forwarded-for", "2001:db8::7")
        .from("127.0.0.9")
        .token(&good),
        // bearer (tests/bearer.rs)
        Case::new(
            "no token",
            Some("BEARER_SUB_EXTRACTION_ERR"),
            "GET",
            "/api/v2/keys",
        )
        .instance(OPEN),
        Case::new(
            "basic auth",
            Some("BEARER_SUB_EXTRACTION_ERR"),
            "GET",
            "/api/v2/keys",
        )
        .instance(OPEN)
        .header("authorization", "Basic YTpi"),
        Case::new(
            "no sub",
            Some("BEARER_SUB_EXTRACTION_ERR"),
            "POST",
            "/api/v2/keys",
        )
        .instance(OPEN)
        .token(&no_sub),
        Case::new(
            "expired token",
            Some("UNAUTHORIZED_ERR"),
            "GET",
            "/api/v2/keys",
        )
        .instance(OPEN)
        .token(&expired),
        Case::new(
            "forged token",
            Some("UNAUTHORIZED_ERR"),
            "GET",
            "/api/v2/keys",
        )
        .instance(OPEN)
        .token(&forged),
        // service_rules (tests/service_rules.rs)
        Case::new(
            "registration by a user",
            Some("SERVICE_ONLY_ERR"),
            "POST",
            &format!("/api/v2/keys/{KEY}/registrations/{CRN}"),
        )
        .instance(OPEN)
        .token(&good)
        .body("application/vnd.ibm.kms.registration_input+json", "{}"),
        Case::new(
            "key deletion by a service",
            Some("RESOURCE_OWNER_ERR"),
            "DELETE",
            &format!("/api/v2/keys/{KEY}"),
        )
        .instance(OPEN)
        .token(&service),
        // body (tests/body.rs)
        Case::new(
            "unwrap without body",
            Some("NO_BODY_ERR"),
            "POST",
            "/api/v2/keys/k1/actions/unwrap",
        )
        .instance(OPEN)
        .token(&good),
        Case::new(
            "create, not JSON",
            Some("BAD_BODY_ERR"),
            "POST",
            "/api/v2/keys",
        )
        .instance(OPEN)
        .token(&good)
        .body(KEY_CT, "{not json"),
        Case::new(
            "collection total",
            Some("COLLECTION_TOTAL_MISMATCH_ERR"),
            "PUT",
            "/api/v2/instance/policies?policy=dualAuthDelete",
        )
        .instance(OPEN)
        .token(&good)
        .body(POLICY_CT, total),
        Case::new(
            "body vs ?policy",
            Some("BODY_QUERY_PARAM_MISMATCH_ERR"),
            "PUT",
            "/api/v2/instance/policies?policy=dualAuthDelete",
        )
        .instance(OPEN)
        .token(&good)
        .body(POLICY_CT, mismatch),
        Case::new(
            "two resources for ?policy",
            Some("NUM_COLLECTION_RESOURCE_ERR"),
            "PUT",
            "/api/v2/instance/policies?policy=dualAuthDelete",
        )
        .instance(OPEN)
        .token(&good)
        .body(POLICY_CT, two_policies),
        Case::new(
            "wrap, plaintext not base64",
            Some("INVALID_FIELD_ERR"),
            "POST",
            "/api/v2/keys/k1/actions/wrap",
        )
        .instance(OPEN)
        .token(&good)
        .body(
            "application/vnd.ibm.kms.key_action+json",
            r#"{"plaintext":"not base64!"}"#,
        ),
        Case::new(
            "body over the limit",
            Some("BODY_TOO_LARGE_ERR"),
            "POST",
            "/api/v2/keys",
        )
        .instance(OPEN)
        .token(&good)
        .body(KEY_CT, format!("{{\"pad\":\"{}\"}}", "x".repeat(5000))),
        // key_access (tests/key_access.rs)
        Case::new(
            "standard key not allowed",
            Some("KEY_CREATE_IMPORT_ACCESS_ERR"),
            "POST",
            "/api/v2/keys",
        )
        .instance(KCIA)
        .token(&good)
        .body(KEY_CT, standard),
        Case::new(
            "import without a token",
            Some("KEY_CREATE_IMPORT_ACCESS_ERR"),
            "POST",
            "/api/v2/keys",
        )
        .instance(KCIA)
        .token(&good)
        .body(KEY_CT, import),
        // forwarded
        Case::new("list keys", None, "GET", "/api/v2/keys")
            .instance(OPEN)
            .token(&good),
        Case::new(
            "private-only, private listener",
            None,
            "GET",
            "/api/v2/keys",
        )
        .instance(PRIVATE)
        .token(&good)
        .private(),
        Case::new("private-only, private host", None, "GET", "/api/v2/keys")
            .instance(PRIVATE)
            .token(&good)
            .header("host", "private.kms.example"),
        Case::new("allowedIP inside", None, "GET", "/api/v2/keys")
            .instance(IP)
            .token(&good)
            .from("127.0.0.2"),
        Case::new(
            "registration by a service",
            None,
            "DELETE",
            &format!("/api/v2/keys/{KEY}/registrations/{CRN}"),
        )
        .instance(OPEN)
        .token(&service),
        Case::new(
            "key deletion by a user",
            None,
            "DELETE",
            &format!("/api/v2/keys/{KEY}"),
        )
        .instance(OPEN)
        .token(&good),
        Case::new("root key allowed", None, "POST", "/api/v2/keys")
            .instance(KCIA)
            .token(&good)
            .body(KEY_CT, root),
    ]
}

#[tokio::test]
async fn explain_reproduces_every_live_decision() {
    let upstream = Recorder::start().await;
    let toml = config_toml(&upstream);
    let config = Config::from_toml(&[support::BASE, &toml]).unwrap();
    let gw = TestGateway::start_with(config.clone()).await;
    let explainer = Explainer::new(config.clone()).unwrap();
    let cases = cases(&config);
    let mut codes = std::collections::BTreeSet::new();
    for (i, case) in cases.iter().enumerate() {
        let correlation = format!("explain-case-{i}");
        let has_host = case.headers.iter().any(|(n, _)| *n == "host");
        let host = "kms.example".to_owned();
        // Live.
        let seen = upstream.count();
        let mut req = gw.request(case.method, &case.path).from_ip(case.from);
        if case.private {
            req = req.private();
        }
        req = req.header("correlation-id", &correlation);
        if !has_host {
            req = req.header("host", &host);
        }
        for (name, value) in &case.headers {
            req = req.header(name, value);
        }
        let live = req.body(case.body.clone()).send().await;
        let forwarded = upstream.count() > seen;
        // Explained.
        let mut headers = vec![("correlation-id".to_owned(), correlation.clone())];
        if !has_host {
            headers.push(("host".to_owned(), host.clone()));
        }
        headers.extend(
            case.headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), v.clone())),
        );
        let input = RequestInput {
            method: case.method.to_owned(),
            url: case.path.clone(),
            headers,
            body: case.body.clone().into(),
            peer: case.from.parse().unwrap(),
            listener: if case.private {
                ListenerKind::Private
            } else {
                ListenerKind::Public
            },
        };
        let explained = explainer.explain(&input).await.unwrap();
        let name = case.name;
        assert!(
            explained.agreement.agrees,
            "{name}: the account disagrees with the stack: {:?}",
            explained.agreement.note
        );
        match case.code {
            None => {
                assert!(forwarded, "{name}: live, not forwarded: {}", live.text());
                assert_eq!(explained.outcome, Outcome::Forwarded, "{name}");
                assert!(explained.response.is_none(), "{name}");
            }
            Some(code) => {
                codes.insert(code);
                assert!(!forwarded, "{name}: the live gateway forwarded it");
                assert_eq!(
                    live.header("kmsgate-reason"),
                    Some(code),
                    "{name}: live code"
                );
                assert_eq!(explained.outcome, Outcome::Refused, "{name}");
                let refusal = explained.refusal.as_ref().unwrap();
                assert_eq!(refusal.code, code, "{name}");
                let response = explained.response.as_ref().unwrap();
                assert_eq!(response.status, live.status, "{name}: status");
                assert_eq!(response.body, live.text(), "{name}: envelope");
                let mut live_headers: Vec<(String, String)> = live
                    .headers
                    .iter()
                    .filter(|(n, _)| n.as_str() != "date")
                    .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
                    .collect();
                let mut explained_headers = response.headers.clone();
                live_headers.sort();
                explained_headers.sort();
                assert_eq!(explained_headers, live_headers, "{name}: headers");
            }
        }
    }
    // Every reason code the gateway produces on a request it decides itself.
    for code in [
        "METHOD_NOT_ALLOWED_ERR",
        "AMBIGUOUS_REQUEST_ERR",
        "INVALID_QUERY_PARAM_ERR",
        "UNKNOWN_ROUTE_ERR",
        "UNAUTHORIZED_ERR",
        "CONFIG_RULE_CONFLICT_ERR",
        "FEATURE_RESTRICTED_ERR",
        "BEARER_SUB_EXTRACTION_ERR",
        "NO_BODY_ERR",
        "BAD_BODY_ERR",
        "COLLECTION_TOTAL_MISMATCH_ERR",
        "BODY_QUERY_PARAM_MISMATCH_ERR",
        "NUM_COLLECTION_RESOURCE_ERR",
        "INVALID_FIELD_ERR",
        "BODY_TOO_LARGE_ERR",
        "KEY_CREATE_IMPORT_ACCESS_ERR",
        "SERVICE_ONLY_ERR",
        "RESOURCE_OWNER_ERR",
    ] {
        assert!(codes.contains(code), "no case for {code}");
    }
}

#[tokio::test]
async fn the_explanation_names_layer_rule_client_policy_and_token() {
    let upstream = Recorder::start().await;
    let config = Config::from_toml(&[support::BASE, &config_toml(&upstream)]).unwrap();
    let explainer = Explainer::new(config.clone()).unwrap();
    let token =
        kmsgate::auth::devtoken::mint(&config.auth, "svc-7", Duration::from_secs(600), true)
            .unwrap();
    let input = RequestInput {
        method: "GET".into(),
        url: "http://kms.example/api/v2/keys".into(),
        headers: vec![
            ("bluemix-instance".into(), IP.to_uppercase()),
            ("authorization".into(), format!("Bearer {token}")),
            ("x-forwarded-for".into(), "203.0.113.5, 127.0.0.9".into()),
        ],
        peer: "127.0.0.9".parse().unwrap(),
        ..RequestInput::default()
    };
    let e = explainer.explain(&input).await.unwrap();
    assert_eq!(e.outcome, Outcome::Refused);
    let refusal = e.refusal.as_ref().unwrap();
    assert_eq!((refusal.layer, refusal.status), ("allowed_ip", 401));
    assert!(refusal.rule.contains("203.0.113.5"), "{}", refusal.rule);
    let client = e.client.as_ref().unwrap();
    assert_eq!(client.address, "203.0.113.5");
    assert_eq!(client.hops.len(), 3, "peer, 127.0.0.9, 203.0.113.5");
    let instance = e.instance.as_ref().unwrap();
    assert_eq!(instance.canonical.as_deref(), Some(IP));
    assert_eq!(instance.policy.source, "inline");
    // The token is never printed; its subject and kind are (the bearer layer comes after
    // allowed_ip, so it was not reached here).
    let json = serde_json::to_string(&e).unwrap();
    assert!(!json.contains(&token));
    let input = RequestInput {
        headers: vec![
            ("bluemix-instance".into(), OPEN.into()),
            ("authorization".into(), format!("Bearer {token}")),
        ],
        ..input
    };
    let e = explainer.explain(&input).await.unwrap();
    assert_eq!(e.outcome, Outcome::Forwarded);
    let t = e.token.as_ref().unwrap();
    assert_eq!(
        (t.result, t.subject.as_deref(), t.caller),
        ("verified", Some("svc-7"), Some("service"))
    );
    assert!(t.expires.is_some_and(|exp| exp > now()));
    let forwarded = e.forwarded.as_ref().unwrap();
    assert!(
        forwarded
            .headers
            .iter()
            .any(|(n, v)| n == "authorization" && v == "[redacted]")
    );
    let json = serde_json::to_string(&e).unwrap();
    assert!(!json.contains(&token), "the token must never be printed");
}

/// `POST /explain` on the admin listener: off by default; with `listen.admin_explain`, the same
/// engine, under the policies the gateway enforces at that moment.
#[tokio::test]
async fn the_admin_endpoint_explains_under_the_running_policies() {
    let upstream = Recorder::start().await;
    let toml = config_toml(&upstream);
    let config = Config::from_toml(&[support::BASE, &toml]).unwrap();
    let off = TestGateway::start_with(config.clone()).await;
    let res = TestRequest::new(off.addrs.admin, "POST", "/explain")
        .body("{}")
        .send()
        .await;
    assert_eq!(res.status, 405, "off by default");

    let config =
        Config::from_toml(&[support::BASE, &toml, "[listen]\nadmin_explain = true\n"]).unwrap();
    let token =
        kmsgate::auth::devtoken::mint(&config.auth, "alice", Duration::from_secs(600), false)
            .unwrap();
    let mut gateway = Gateway::bind(config).await.unwrap();
    kmsgate::explain::admin::install(&mut gateway).unwrap();
    let store = gateway.policies().clone();
    let gw = TestGateway::run(gateway);
    let ask = |body: serde_json::Value| {
        TestRequest::new(gw.addrs.admin, "POST", "/explain")
            .json(&body)
            .send()
    };
    let request = serde_json::json!({
        "url": "/api/v2/keys",
        "headers": [["bluemix-instance", IP], ["authorization", format!("Bearer {token}")]],
        "peer": "127.0.0.1",
    });
    let res = ask(request.clone()).await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert!(
        !res.text().contains(&token),
        "the token must never be returned"
    );
    let e = res.json();
    assert_eq!(e["outcome"], "refused");
    assert_eq!(e["refusal"]["layer"], "allowed_ip");
    assert_eq!(e["response"]["status"], 401);
    // The live gateway agrees.
    let live = gw
        .request("GET", "/api/v2/keys")
        .header("bluemix-instance", IP)
        .header("authorization", &format!("Bearer {token}"))
        .send()
        .await;
    assert_eq!(live.status, 401);
    assert_eq!(upstream.count(), 0);
    // A policy change the gateway applies is what the endpoint explains under.
    store.replace(kmsgate::policy::Snapshot::new(
        [(IP.to_owned(), Default::default())],
        None,
    ));
    let e = ask(request).await.json();
    assert_eq!(e["outcome"], "forwarded", "{e}");
    assert_eq!(upstream.count(), 0, "explain sends nothing");
    // Bad input: 400 with the reason.
    let res = ask(serde_json::json!({"curl": "curl --user a:b http://h/"})).await;
    assert_eq!(res.status, 400);
    assert!(res.json()["error"].as_str().unwrap().contains("--user"));
    let res = ask(serde_json::json!({"nonsense": 1})).await;
    assert_eq!(res.status, 400);
}

/// docs/explain.md's worked examples are real: each request, explained on the page's
/// configuration, prints what the page shows (but for the generated correlation id and the
/// token's expiry).
#[tokio::test]
async fn the_worked_examples_of_docs_explain_md_are_real() {
    use kmsgate::explain::input::shell_words;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/explain.md")).unwrap();
    let config = Config::load(Some(&root.join("docs/explain/kmsgate.toml"))).unwrap();
    let token =
        kmsgate::auth::devtoken::mint(&config.auth, "alice", Duration::from_secs(3600), false)
            .unwrap();
    let explainer = Explainer::new(config).unwrap();
    let normalize = |text: &str| -> String {
        text.lines()
            .map(|line| {
                if let Some((head, _)) = line.split_once("correlation-id: ") {
                    format!("{head}correlation-id: *")
                } else if let Some((head, _)) = line.split_once("; expires ") {
                    format!("{head}; expires *")
                } else {
                    line.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let create = format!("'{}'", support::REFERENCE_STANDARD_KEY);
    let examples = [
        (
            "10.0.0.5",
            r#"curl -X GET "https://us-south.kms.cloud.ibm.com/api/v2/keys" -H "authorization: Bearer TOKEN" -H "bluemix-instance: a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d" -H "x-forwarded-for: 198.51.100.23""#.to_owned(),
        ),
        (
            "127.0.0.1",
            format!(
                r#"curl -X POST "https://us-south.kms.cloud.ibm.com/api/v2/keys" -H "authorization: Bearer TOKEN" -H "bluemix-instance: b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d6e" -H "content-type: application/vnd.ibm.kms.key+json" -d {create}"#
            ),
        ),
        (
            "127.0.0.1",
            r#"curl -X GET "https://us-south.kms.cloud.ibm.com/api/v2/keys" -H "authorization: Bearer TOKEN" -H "bluemix-instance: C3D4E5F6-A7B8-4C9D-8E0F-2A3B4C5D6E7F""#.to_owned(),
        ),
    ];
    let page = normalize(&doc);
    for (peer, curl) in examples {
        let mut input =
            RequestInput::from_curl(&shell_words(&curl.replace("TOKEN", &token)).unwrap()).unwrap();
        input.peer = peer.parse().unwrap();
        let explained = explainer.explain(&input).await.unwrap();
        assert!(explained.agreement.agrees);
        let text = normalize(&kmsgate::explain::render::text(&explained));
        assert!(
            page.contains(&text),
            "docs/explain.md does not show this output (rerun the example):\n{text}"
        );
    }
}
