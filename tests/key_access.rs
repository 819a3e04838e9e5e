//! keyCreateImportAccess over real loopback sockets.
//!
//! Most tests assemble the tail of the gateway's stack — observe → (the policy, inserted as the
//! instance layer would) → body → key_access → proxy — and serve it with the gateway's own server
//! on 127.0.0.1 in front of a recording upstream, so each test states its policy in Key Protect
//! JSON (loaded with `policy::parse::parse_document`, as a policy file is). The last test runs the
//! whole gateway with the policy in `[policies]` config.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;

use http::Request;
use kmsgate::Body;
use kmsgate::config::UpstreamConfig;
use kmsgate::conn::ListenerKind;
use kmsgate::layer::body::BodyShapeLayer;
use kmsgate::layer::key_access::KeyAccessLayer;
use kmsgate::layer::observe::ObserveLayer;
use kmsgate::metrics::Metrics;
use kmsgate::policy::ActivePolicy;
use kmsgate::policy::parse::parse_document;
use kmsgate::server::{self, ServeOptions};
use kmsgate::upstream::Upstream;
use serde_json::json;
use support::{Recorder, TestRequest, TestResponse, assert_rejected};
use tokio::sync::{Semaphore, watch};
use tower::ServiceBuilder;

const INSTANCE: &str = "a8b9e8f4-7d0f-4c4f-9b3e-000000000001";

/// The gateway's tail with this instance-policy document in force.
struct PolicyGateway {
    addr: SocketAddr,
    _stop: watch::Sender<bool>,
}

impl PolicyGateway {
    async fn start(upstream: &Recorder, document: &str) -> PolicyGateway {
        let model = parse_document(document.as_bytes()).expect("a valid policy document");
        let policy = Arc::new(ActivePolicy::compile(Some(INSTANCE.into()), model));
        let metrics = Metrics::new();
        let config = UpstreamConfig {
            url: upstream.url(),
            ..UpstreamConfig::default()
        };
        let upstream = Upstream::new(&config, metrics.clone()).expect("upstream");
        let stack = ServiceBuilder::new()
            .layer(ObserveLayer::new(metrics, None))
            .map_request(move |mut req: Request<Body>| {
                req.extensions_mut().insert(policy.clone());
                req
            })
            .layer(BodyShapeLayer::new(1024 * 1024))
            .layer(KeyAccessLayer::new())
            .service(upstream);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = watch::channel(false);
        let options = ServeOptions {
            connections: Arc::new(Semaphore::new(64)),
            header_read_timeout: std::time::Duration::from_secs(5),
            drain_timeout: std::time::Duration::from_secs(1),
            tls: None,
        };
        tokio::spawn(server::serve(
            listener,
            ListenerKind::Public,
            stack,
            options,
            stopped,
        ));
        PolicyGateway { addr, _stop: stop }
    }

    async fn post(&self, path: &str, body: &str) -> TestResponse {
        TestRequest::new(self.addr, "POST", path)
            .header("bluemix-instance", INSTANCE)
            .header("authorization", "Bearer test-token")
            .body(body.to_owned())
            .send()
            .await
    }
}

fn kcia(enabled: bool, attributes: &str) -> String {
    format!(
        r#"{{"metadata":{{"collectionType":"application/vnd.ibm.kms.policy+json","collectionTotal":1}},
        "resources":[{{"createdBy":"IBMid-1","creationDate":"2020-09-02T21:12:26Z","updatedBy":"IBMid-1",
        "lastUpdated":"2020-09-08T18:31:37Z","policy_type":"keyCreateImportAccess",
        "policy_data":{{"enabled":{enabled},"attributes":{{{attributes}}}}}}}]}}"#
    )
}

fn create(resource: &str) -> String {
    format!(
        r#"{{"metadata":{{"collectionType":"application/vnd.ibm.kms.key+json","collectionTotal":1}},"resources":[{resource}]}}"#
    )
}

/// The reference example's policy (step 1).
const REFERENCE_POLICY: &str = r#""create_root_key": true, "create_standard_key": false, "import_root_key": true, "import_standard_key": true, "enforce_token": true"#;

/// The reference example's request (step 2b), verbatim.
const STANDARD_KEY: &str = support::REFERENCE_STANDARD_KEY;

#[tokio::test]
async fn reference_key_create_import_access() {
    let upstream = Recorder::start().await;
    let gw = PolicyGateway::start(&upstream, &kcia(true, REFERENCE_POLICY)).await;
    let res = gw.post("/api/v2/keys", STANDARD_KEY).await;
    assert_rejected(&res, 409, "KEY_CREATE_IMPORT_ACCESS_ERR");
    assert_eq!(
        res.json(),
        json!({
            "metadata": {"collectionType": "application/vnd.ibm.kms.error+json", "collectionTotal": 1},
            "resources": [{
                "errorMsg": "Conflict: Key could not be created: Please see `reasons` for more details (KEY_CREATE_IMPORT_ACCESS_ERR)",
                "reasons": [{
                    "code": "KEY_CREATE_IMPORT_ACCESS_ERR",
                    "message": "KeyCreateImportAccess instance policy does not allow this action",
                    "status": 409,
                    "moreInfo": "https://cloud.ibm.com/apidocs/key-protect"
                }]
            }]
        })
    );
    assert_eq!(upstream.count(), 0);

    // Root keys are still allowed by the same policy.
    let root = STANDARD_KEY.replace("\"extractable\": true", "\"extractable\": false");
    let res = gw.post("/api/v2/keys", &root).await;
    assert_eq!(res.status, 200);
    assert_eq!(&upstream.last().body[..], root.as_bytes());

    // Steps 3–4: with the policy disabled, the standard key is created.
    let upstream = Recorder::start().await;
    let gw = PolicyGateway::start(&upstream, &kcia(false, "")).await;
    let res = gw.post("/api/v2/keys", STANDARD_KEY).await;
    assert_eq!(res.status, 200);
    assert_eq!(&upstream.last().body[..], STANDARD_KEY.as_bytes());
}

#[tokio::test]
async fn every_attribute_governs_its_kind_of_request() {
    let kinds = [
        ("create_root_key", r#"{"name":"k","extractable":false}"#),
        ("create_standard_key", r#"{"name":"k","extractable":true}"#),
        (
            "import_root_key",
            r#"{"name":"k","payload":"YWJjZGVmZ2hpamtsbW5vcA=="}"#,
        ),
        (
            "import_standard_key",
            r#"{"name":"k","extractable":true,"payload":"c2VjcmV0"}"#,
        ),
    ];
    for (attribute, _) in kinds {
        let upstream = Recorder::start().await;
        let gw =
            PolicyGateway::start(&upstream, &kcia(true, &format!(r#""{attribute}": false"#))).await;
        let mut forwarded = 0;
        for (kind, resource) in kinds {
            for path in ["/api/v2/keys", "/api/v2/keys_with_policy_overrides"] {
                let res = gw.post(path, &create(resource)).await;
                if kind == attribute {
                    assert_rejected(&res, 409, "KEY_CREATE_IMPORT_ACCESS_ERR");
                } else {
                    forwarded += 1;
                    assert_eq!(res.status, 200, "{attribute} off, {kind} {path}");
                }
                assert_eq!(
                    upstream.count(),
                    forwarded,
                    "{attribute} off, {kind} {path}"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_differently_cased_key_does_not_slip_past_the_policy() {
    // Key Protect (Go) reads "Extractable"/"PAYLOAD" as extractable/payload.
    let upstream = Recorder::start().await;
    let gw = PolicyGateway::start(
        &upstream,
        &kcia(
            true,
            r#""create_standard_key": false, "import_root_key": false"#,
        ),
    )
    .await;
    for resource in [
        r#"{"name":"k","Extractable":true}"#,
        r#"{"name":"k","EXTRACTABLE":true}"#,
        r#"{"name":"k","PAYLOAD":"YWJjZA=="}"#,
    ] {
        let res = gw.post("/api/v2/keys", &create(resource)).await;
        assert_rejected(&res, 409, "KEY_CREATE_IMPORT_ACCESS_ERR");
    }
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn enforce_token_on_create_rotate_and_restore_in_both_url_styles() {
    let upstream = Recorder::start().await;
    let gw = PolicyGateway::start(&upstream, &kcia(true, r#""enforce_token": true"#)).await;
    let bare = r#"{"payload":"YWJjZGVmZ2hpamtsbW5vcA=="}"#;
    let half = r#"{"payload":"YWJjZGVmZ2hpamtsbW5vcA==","iv":"cHVRcnpEWDdnVTFUY1RUeA=="}"#;
    let token = r#"{"payload":"YWJjZGVmZ2hpamtsbW5vcA==","encryptedNonce":"YWJjZA==","iv":"cHVRcnpEWDdnVTFUY1RUeA==","encryptionAlgorithm":"RSAES_OAEP_SHA_256"}"#;

    let res = gw.post("/api/v2/keys", &create(bare)).await;
    assert_rejected(&res, 409, "KEY_CREATE_IMPORT_ACCESS_ERR");
    let res = gw.post("/api/v2/keys", &create(half)).await;
    assert_rejected(&res, 409, "KEY_CREATE_IMPORT_ACCESS_ERR");
    assert_eq!(upstream.count(), 0);
    let res = gw.post("/api/v2/keys", &create(token)).await;
    assert_eq!(res.status, 200);
    let mut forwarded = 1;

    for (path, subject) in [
        ("/api/v2/keys/k1/actions/rotate", "Key could not be rotated"),
        ("/api/v2/keys/k1?action=rotate", "Key could not be rotated"),
        ("/api/v2/keys/k1/restore", "Key could not be restored"),
        (
            "/api/v2/keys/k1?action=restore",
            "Key could not be restored",
        ),
    ] {
        for body in [bare, half] {
            let res = gw.post(path, body).await;
            assert_rejected(&res, 409, "KEY_CREATE_IMPORT_ACCESS_ERR");
            let error_msg = res.json()["resources"][0]["errorMsg"]
                .as_str()
                .unwrap()
                .to_owned();
            assert!(
                error_msg.starts_with(&format!("Conflict: {subject}: ")),
                "{error_msg}"
            );
        }
        // With a token, or without key material at all, it goes through.
        for body in [token, "", "{}", "null"] {
            let res = gw.post(path, body).await;
            forwarded += 1;
            assert_eq!(res.status, 200, "{path} {body:?}");
            assert_eq!(upstream.count(), forwarded);
            assert_eq!(&upstream.last().body[..], body.as_bytes());
        }
    }
    // Other actions are not this policy's business.
    let res = gw
        .post("/api/v2/keys/k1/actions/wrap", r#"{"plaintext":"YWJj"}"#)
        .await;
    assert_eq!(res.status, 200);
}

/// The issue's example B: Go reads `""` as no value, so an empty nonce and IV are no import
/// token.
#[tokio::test]
async fn empty_strings_are_no_import_token() {
    let upstream = Recorder::start().await;
    let gw = PolicyGateway::start(&upstream, &kcia(true, r#""enforce_token": true"#)).await;
    let empty = r#"{"payload":"YWJjZGVmZ2hpamtsbW5vcA==","encryptedNonce":"","iv":""}"#;
    let half = r#"{"payload":"YWJjZGVmZ2hpamtsbW5vcA==","encryptedNonce":"YWJjZA==","iv":""}"#;
    let breaks = r#"{"payload":"YWJjZGVmZ2hpamtsbW5vcA==","encryptedNonce":"\r\n","iv":"\n"}"#;
    for body in [empty, half, breaks] {
        let res = gw.post("/api/v2/keys", &create(body)).await;
        assert_rejected(&res, 409, "KEY_CREATE_IMPORT_ACCESS_ERR");
        assert_eq!(
            res.json()["resources"][0]["errorMsg"],
            "Conflict: Key could not be created: Please see `reasons` for more details (KEY_CREATE_IMPORT_ACCESS_ERR)"
        );
        for path in [
            "/api/v2/keys/k1/actions/rotate",
            "/api/v2/keys/k1?action=rotate",
            "/api/v2/keys/k1/restore",
            "/api/v2/keys/k1?action=restore",
        ] {
            let res = gw.post(path, body).await;
            assert_rejected(&res, 409, "KEY_CREATE_IMPORT_ACCESS_ERR");
        }
    }
    assert_eq!(upstream.count(), 0, "the upstream saw a refused request");
    // An empty payload is no key material: a plain rotate, which the policy does not govern.
    let res = gw
        .post(
            "/api/v2/keys/k1/actions/rotate",
            r#"{"payload":"","encryptedNonce":"","iv":""}"#,
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(upstream.count(), 1);
}

/// The issue's example C: the first `resources` imports without a token, the second looks like
/// a plain standard-key create. Go decodes the second array into the elements of the first, so
/// the KMS would import; the gateway refuses the body instead of choosing a reading.
#[tokio::test]
async fn duplicate_resources_cannot_disguise_an_import_as_a_create() {
    let upstream = Recorder::start().await;
    let gw = PolicyGateway::start(
        &upstream,
        &kcia(
            true,
            r#""import_standard_key": false, "enforce_token": true"#,
        ),
    )
    .await;
    let import = r#"[{"name":"k","extractable":true,"payload":"c2VjcmV0"}]"#;
    let plain = r#"[{"name":"k","extractable":true}]"#;
    let metadata =
        r#""metadata":{"collectionType":"application/vnd.ibm.kms.key+json","collectionTotal":1}"#;
    for second in ["resources", "Resources", "RESOURCES", "re\u{17F}ources"] {
        let body = format!(r#"{{{metadata},"resources":{import},"{second}":{plain}}}"#);
        let res = gw.post("/api/v2/keys", &body).await;
        assert_rejected(&res, 400, "BAD_BODY_ERR");
        let message = res.json()["resources"][0]["reasons"][0]["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            message.contains(": duplicate field \"resources\""),
            "{second}: {message}"
        );
    }
    assert_eq!(upstream.count(), 0, "the upstream saw a refused request");
    // Each half alone is read as what it is.
    let res = gw
        .post("/api/v2/keys", &create(&import[1..import.len() - 1]))
        .await;
    assert_rejected(&res, 409, "KEY_CREATE_IMPORT_ACCESS_ERR");
    let res = gw
        .post("/api/v2/keys", &create(&plain[1..plain.len() - 1]))
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn shape_errors_win_over_the_policy() {
    // The body layer runs before key_access: a malformed create is a 400, not a 409.
    let upstream = Recorder::start().await;
    let gw = PolicyGateway::start(&upstream, &kcia(true, r#""create_root_key": false"#)).await;
    let res = gw
        .post(
            "/api/v2/keys",
            r#"{"metadata":{},"resources":[{"name":"k"}]}"#,
        )
        .await;
    assert_rejected(&res, 400, "BAD_BODY_ERR");
    let res = gw
        .post("/api/v2/keys", &create(r#"{"name":"k","payload":"!!"}"#))
        .await;
    assert_rejected(&res, 400, "INVALID_FIELD_ERR");
    assert_eq!(upstream.count(), 0);
}

/// The whole gateway: the policy comes from `[policies]` config through the instance layer,
/// chosen by `bluemix-instance`.
#[tokio::test]
async fn the_full_gateway_applies_the_instance_policy_from_config() {
    let upstream = Recorder::start().await;
    let toml = format!(
        "[upstream]\nurl = \"{}\"\n\n[policies.instances]\n\"{INSTANCE}\" = '''{}'''\n",
        upstream.url(),
        kcia(true, REFERENCE_POLICY)
    );
    let gw = support::TestGateway::start(&toml).await;
    let send = |instance: &'static str, body: &'static str| {
        gw.request("POST", "/api/v2/keys")
            .header("authorization", "Bearer test-token")
            .header("bluemix-instance", instance)
            .body(body)
            .send()
    };
    let res = send(INSTANCE, STANDARD_KEY).await;
    assert_rejected(&res, 409, "KEY_CREATE_IMPORT_ACCESS_ERR");
    assert_eq!(
        res.json()["resources"][0]["errorMsg"],
        "Conflict: Key could not be created: Please see `reasons` for more details (KEY_CREATE_IMPORT_ACCESS_ERR)"
    );
    assert_eq!(upstream.count(), 0);
    assert_eq!(
        gw.metric(
            "kmsgate_rejections_total",
            &[("code", "KEY_CREATE_IMPORT_ACCESS_ERR")]
        )
        .await,
        1.0
    );
    // Another instance has no policy.
    let res = send("another-instance", STANDARD_KEY).await;
    assert_eq!(res.status, 200);
    assert_eq!(&upstream.last().body[..], STANDARD_KEY.as_bytes());
}
