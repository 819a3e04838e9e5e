//! The embedded dev KMS driven through the gateway over loopback (`upstream.url = "embedded"`),
//! and on its own as a plain HTTP server (`kmsgate dev-kms`).

mod support;

use serde_json::{Value, json};
use support::{TestGateway, TestRequest, TestResponse};

const INSTANCE: &str = "00000000-0000-4000-8000-000000000001";
/// A JWT-shaped token (the gateway may verify tokens; the dev KMS never does).
const TOKEN: &str = "Bearer eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJkZXYifQ.c2ln";

/// A Key Protect client's view of the gateway.
struct Kp {
    gw: TestGateway,
    instance: &'static str,
}

impl Kp {
    async fn start() -> Kp {
        Kp {
            gw: TestGateway::start("[upstream]\nurl = \"embedded\"\n").await,
            instance: INSTANCE,
        }
    }

    /// With `[upstream.dev_kms] action_wait = "0s"`: enable and restore need not wait.
    async fn start_quick() -> Kp {
        Kp {
            gw: TestGateway::start(
                "[upstream]\nurl = \"embedded\"\n[upstream.dev_kms]\naction_wait = \"0s\"\n",
            )
            .await,
            instance: INSTANCE,
        }
    }

    fn req(&self, method: &str, path: &str) -> TestRequest {
        self.req_as(TOKEN, method, path)
    }

    /// A request with another bearer token (another user).
    fn req_as(&self, token: &str, method: &str, path: &str) -> TestRequest {
        self.gw
            .request(method, path)
            .header("authorization", token)
            .header("bluemix-instance", self.instance)
    }

    async fn create(&self, name: &str, extractable: bool) -> Value {
        let res = self
            .req("POST", "/api/v2/keys")
            .header("content-type", "application/vnd.ibm.kms.key+json")
            .header("prefer", "return=representation")
            .json(&key_body(
                json!({"type": "application/vnd.ibm.kms.key+json",
                                   "name": name, "extractable": extractable}),
            ))
            .send()
            .await;
        assert_eq!(res.status, 201, "{}", res.text());
        res.json()["resources"][0].clone()
    }

    async fn create_root(&self) -> String {
        self.create("root", false).await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// An action, in the current (`/actions/<a>`) or deprecated (`?action=<a>`) URL style.
    async fn action(
        &self,
        id: &str,
        action: &str,
        style: Style,
        body: Option<Value>,
    ) -> TestResponse {
        let path = match style {
            Style::Path => format!("/api/v2/keys/{id}/actions/{action}"),
            Style::Query => format!("/api/v2/keys/{id}?action={action}"),
        };
        let mut req = self.req("POST", &path);
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send().await
    }
}

#[derive(Clone, Copy, Debug)]
enum Style {
    Path,
    Query,
}

fn key_body(resource: Value) -> Value {
    json!({
        "metadata": {"collectionType": "application/vnd.ibm.kms.key+json", "collectionTotal": 1},
        "resources": [resource]
    })
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Asserts an error envelope that came from the KMS (not a gateway refusal): status, code,
/// the whole `errorMsg`, and no `kmsgate-reason` header.
fn assert_kms_error(res: &TestResponse, status: u16, code: &str, error_msg: &str) {
    assert_eq!(res.status, status, "status; body: {}", res.text());
    assert_eq!(res.header("content-type"), Some("application/json"));
    assert_eq!(
        res.header("kmsgate-reason"),
        None,
        "the KMS refused, not the gateway"
    );
    let v = res.json();
    assert_eq!(
        v["metadata"],
        json!({"collectionType": "application/vnd.ibm.kms.error+json", "collectionTotal": 1})
    );
    let resource = &v["resources"][0];
    assert_eq!(resource["errorMsg"], error_msg);
    assert_eq!(resource["reasons"][0]["code"], code);
    assert_eq!(resource["reasons"][0]["status"], status);
    assert_eq!(
        resource["reasons"][0]["moreInfo"],
        "https://cloud.ibm.com/apidocs/key-protect"
    );
}

#[tokio::test]
async fn create_wrap_unwrap_returns_the_dek() {
    let kp = Kp::start().await;
    let key = kp.create("my-root", false).await;
    let id = key["id"].as_str().unwrap();
    assert_eq!(key["type"], "application/vnd.ibm.kms.key+json");
    assert_eq!(key["name"], "my-root");
    assert_eq!(key["state"], 1);
    assert_eq!(key["extractable"], false);
    assert_eq!(key["imported"], false);
    assert_eq!(key["deleted"], false);
    assert_eq!(key["createdBy"], "dev"); // the token's `sub`
    assert_eq!(key["algorithmType"], "AES");
    assert_eq!(
        key["crn"],
        format!("crn:v1:bluemix:public:kms:local:a/devkms:{INSTANCE}:key:{id}")
    );
    assert_eq!(
        key["keyVersion"]["id"], id,
        "the first version's id is the key's"
    );
    assert!(
        key.get("payload").is_none(),
        "a root key never shows its material"
    );
    assert_eq!(id.len(), 36);
    assert_eq!(&id[14..15], "4", "a v4 UUID");

    let dek = b64(b"0123456789abcdef0123456789abcdef");
    let res = kp
        .action(
            id,
            "wrap",
            Style::Path,
            Some(json!({"plaintext": dek, "aad": ["ctx"]})),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.header("content-type"), Some("application/json"));
    let wrapped = res.json();
    assert!(wrapped.get("plaintext").is_none());
    assert_eq!(wrapped["keyVersion"]["id"], id);
    let ciphertext = wrapped["ciphertext"].as_str().unwrap();

    let res = kp
        .action(
            id,
            "unwrap",
            Style::Path,
            Some(json!({"ciphertext": ciphertext, "aad": ["ctx"]})),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let unwrapped = res.json();
    assert_eq!(unwrapped["plaintext"], dek);
    assert_eq!(unwrapped["keyVersion"]["id"], id);
    assert!(
        unwrapped.get("ciphertext").is_none(),
        "nothing to rewrap before a rotation"
    );

    // Different aad: the ciphertext does not authenticate.
    let res = kp
        .action(
            id,
            "unwrap",
            Style::Path,
            Some(json!({"ciphertext": ciphertext, "aad": ["other"]})),
        )
        .await;
    assert_kms_error(
        &res,
        422,
        "UNPROCESSABLE_CIPHERTEXT_ERR",
        "Unprocessable Entity: Action could not be performed on key. Please see `reasons` for more details.",
    );
}

#[tokio::test]
async fn wrap_without_plaintext_generates_a_dek() {
    let kp = Kp::start().await;
    let id = kp.create_root().await;
    for body in [None, Some(json!({})), Some(Value::Null)] {
        let res = kp.action(&id, "wrap", Style::Path, body.clone()).await;
        assert_eq!(res.status, 200, "{body:?}: {}", res.text());
        let wrapped = res.json();
        let dek = wrapped["plaintext"].as_str().expect("a generated DEK");
        use base64::Engine;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(dek)
            .unwrap();
        assert_eq!(raw.len(), 32, "a 256-bit DEK");
        let res = kp
            .action(
                &id,
                "unwrap",
                Style::Path,
                Some(json!({"ciphertext": wrapped["ciphertext"]})),
            )
            .await;
        assert_eq!(res.json()["plaintext"], dek);
    }
}

#[tokio::test]
async fn after_rotation_old_ciphertext_unwraps_and_comes_back_rewrapped() {
    let kp = Kp::start().await;
    let id = kp.create_root().await;
    let dek = b64(&[7u8; 32]);
    let old = kp
        .action(&id, "wrap", Style::Path, Some(json!({"plaintext": dek})))
        .await
        .json();

    let res = kp.action(&id, "rotate", Style::Path, None).await;
    assert_eq!(res.status, 204, "{}", res.text());
    assert!(res.body.is_empty());
    let key = kp
        .req("GET", &format!("/api/v2/keys/{id}/metadata"))
        .send()
        .await
        .json();
    let new_version = key["resources"][0]["keyVersion"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_version, id);
    assert!(key["resources"][0]["lastRotateDate"].is_string());

    let res = kp
        .action(
            &id,
            "unwrap",
            Style::Path,
            Some(json!({"ciphertext": old["ciphertext"]})),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let unwrapped = res.json();
    assert_eq!(unwrapped["plaintext"], dek);
    assert_eq!(
        unwrapped["keyVersion"]["id"], id,
        "the version that wrapped it"
    );
    assert_eq!(unwrapped["rewrappedKeyVersion"]["id"], new_version);
    let rewrapped = unwrapped["ciphertext"]
        .as_str()
        .expect("rewrapped ciphertext");
    assert_ne!(rewrapped, old["ciphertext"].as_str().unwrap());

    // The rewrapped ciphertext is under the new version: it unwraps without a further rewrap.
    let again = kp
        .action(
            &id,
            "unwrap",
            Style::Path,
            Some(json!({"ciphertext": rewrapped})),
        )
        .await
        .json();
    assert_eq!(again["plaintext"], dek);
    assert_eq!(again["keyVersion"]["id"], new_version);
    assert!(again.get("ciphertext").is_none());

    // rewrap: the same, without the plaintext.
    let res = kp
        .action(
            &id,
            "rewrap",
            Style::Path,
            Some(json!({"ciphertext": old["ciphertext"]})),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let rewrap = res.json();
    assert!(rewrap.get("plaintext").is_none());
    assert_eq!(rewrap["rewrappedKeyVersion"]["id"], new_version);
    let res = kp
        .action(
            &id,
            "unwrap",
            Style::Path,
            Some(json!({"ciphertext": rewrap["ciphertext"]})),
        )
        .await;
    assert_eq!(res.json()["plaintext"], dek);

    let versions = kp
        .req("GET", &format!("/api/v2/keys/{id}/versions"))
        .send()
        .await
        .json();
    assert_eq!(versions["metadata"]["collectionTotal"], 2);
    assert_eq!(versions["resources"][0]["id"], new_version, "newest first");
    assert_eq!(versions["resources"][1]["id"], id.as_str());
}

#[tokio::test]
async fn delete_twice_is_410_key_deleted() {
    let kp = Kp::start().await;
    let id = kp.create_root().await;
    let res = kp.req("DELETE", &format!("/api/v2/keys/{id}")).send().await;
    assert_eq!(res.status, 204, "{}", res.text());
    assert!(res.body.is_empty());

    let res = kp.req("DELETE", &format!("/api/v2/keys/{id}")).send().await;
    assert_kms_error(
        &res,
        410,
        "KEY_DELETED_ERR",
        "Gone: Key could not be deleted. Please see `reasons` for more details.",
    );
    assert_eq!(
        res.json()["resources"][0]["reasons"][0]["message"],
        "Key has already been deleted. Please delete references to this key."
    );

    // Deleted keys are not listed, refuse actions, and show as deleted.
    let list = kp.req("GET", "/api/v2/keys").send().await.json();
    assert_eq!(list["metadata"]["collectionTotal"], 0);
    let res = kp.action(&id, "wrap", Style::Path, None).await;
    assert_kms_error(
        &res,
        410,
        "KEY_DELETED_ERR",
        "Gone: Action could not be performed on key. Please see `reasons` for more details.",
    );
    let meta = kp
        .req("GET", &format!("/api/v2/keys/{id}/metadata"))
        .send()
        .await
        .json();
    assert_eq!(meta["resources"][0]["state"], 5);
    assert_eq!(meta["resources"][0]["deleted"], true);
    assert!(meta["resources"][0]["deletionDate"].is_string());
}

#[tokio::test]
async fn root_key_actions_on_a_standard_key_are_400_key_root_req() {
    let kp = Kp::start().await;
    let key = kp.create("std", true).await;
    let id = key["id"].as_str().unwrap();
    assert_eq!(key["extractable"], true);
    assert!(
        key["payload"].is_string(),
        "a standard key shows its payload"
    );

    let res = kp
        .action(
            id,
            "wrap",
            Style::Path,
            Some(json!({"plaintext": b64(b"dek")})),
        )
        .await;
    assert_kms_error(
        &res,
        400,
        "KEY_ROOT_REQ_ERR",
        "Bad Request: Action could not be performed on key. Please see `reasons` for more details.",
    );
    let res = kp.action(id, "disable", Style::Path, None).await;
    assert_kms_error(
        &res,
        400,
        "KEY_ROOT_REQ_ERR",
        "Bad Request: Key could not be disabled. Please see `reasons` for more details.",
    );
}

#[tokio::test]
async fn both_action_url_styles_behave_the_same() {
    let kp = Kp::start_quick().await; // enable and restore right after the last action
    let std_key = kp.create("std", true).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for style in [Style::Path, Style::Query] {
        let id = kp.create_root().await;
        let dek = b64(&[42u8; 32]);
        let wrapped = kp
            .action(
                &id,
                "wrap",
                style,
                Some(json!({"plaintext": dek, "aad": ["a", "b"]})),
            )
            .await;
        assert_eq!(wrapped.status, 200, "{style:?}: {}", wrapped.text());
        let ciphertext = wrapped.json()["ciphertext"].clone();
        let unwrapped = kp
            .action(
                &id,
                "unwrap",
                style,
                Some(json!({"ciphertext": ciphertext, "aad": ["a", "b"]})),
            )
            .await;
        assert_eq!(unwrapped.json()["plaintext"], dek, "{style:?}");

        let res = kp.action(&id, "rotate", style, Some(json!({}))).await;
        assert_eq!(res.status, 204, "{style:?}");
        let res = kp
            .action(
                &id,
                "unwrap",
                style,
                Some(json!({"ciphertext": ciphertext, "aad": ["a", "b"]})),
            )
            .await
            .json();
        assert_eq!(res["plaintext"], dek, "{style:?}");
        assert!(res["rewrappedKeyVersion"]["id"].is_string(), "{style:?}");

        assert_eq!(
            kp.action(&id, "disable", style, None).await.status,
            204,
            "{style:?}"
        );
        let res = kp.action(&id, "disable", style, None).await;
        assert_kms_error(
            &res,
            409,
            "KEY_ACTION_INVALID_STATE_ERR",
            "Conflict: Key is not in active state: Key could not be disabled. Please see `reasons` for more details.",
        );
        let res = kp.action(&id, "wrap", style, None).await;
        assert_kms_error(
            &res,
            409,
            "KEY_ACTION_INVALID_STATE_ERR",
            "Conflict: Key is not in active state: Action could not be performed on key. Please see `reasons` for more details.",
        );
        assert_eq!(
            kp.action(&id, "enable", style, None).await.status,
            204,
            "{style:?}"
        );
        let res = kp.action(&id, "enable", style, None).await;
        assert_kms_error(
            &res,
            409,
            "KEY_ACTION_INVALID_STATE_ERR",
            "Conflict: Key is not in suspended state: Key could not be enabled. Please see `reasons` for more details.",
        );

        let res = kp.action(&id, "setKeyForDeletion", style, None).await;
        assert_kms_error(
            &res,
            409,
            "NOT_DUAL_AUTH_ERR",
            "Conflict: Action could not be performed on key. Please see `reasons` for more details.",
        );
        let res = kp.action(&std_key, "wrap", style, None).await;
        assert_kms_error(
            &res,
            400,
            "KEY_ROOT_REQ_ERR",
            "Bad Request: Action could not be performed on key. Please see `reasons` for more details.",
        );
        let res = kp.action("no-such-key", "wrap", style, None).await;
        assert_kms_error(
            &res,
            404,
            "KEY_NOT_FOUND_ERR",
            "Not Found: Action could not be performed on key: Please see `reasons` for more details (KEY_NOT_FOUND_ERR)",
        );
    }
}

#[tokio::test]
async fn put_then_get_instance_policies_returns_what_was_put() {
    let kp = Kp::start().await;
    let policies = |resources: Value| {
        let total = resources.as_array().unwrap().len();
        json!({
            "metadata": {"collectionType": "application/vnd.ibm.kms.policy+json", "collectionTotal": total},
            "resources": resources
        })
    };
    let res = kp
        .req("PUT", "/api/v2/instance/policies?policy=allowedIP")
        .json(&policies(json!([{"policy_type": "allowedIP",
            "policy_data": {"enabled": true, "attributes": {"allowed_ip": ["127.0.0.0/8", "::1/128"]}}}])))
        .send()
        .await;
    assert_eq!(res.status, 204, "{}", res.text());
    assert!(res.body.is_empty());

    let res = kp
        .req("GET", "/api/v2/instance/policies?policy=allowedIP")
        .send()
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.header("content-type"), Some("application/json"));
    assert!(
        res.text()
            .contains(r#""policy_data":{"enabled":true,"attributes":{"allowed_ip":["#),
        "Key Protect's field order: {}",
        res.text()
    );
    let got = res.json();
    assert_eq!(
        got["metadata"],
        json!({"collectionType": "application/vnd.ibm.kms.policy+json", "collectionTotal": 1})
    );
    let resource = &got["resources"][0];
    assert_eq!(resource["policy_type"], "allowedIP");
    assert_eq!(
        resource["policy_data"],
        json!({"enabled": true, "attributes": {"allowed_ip": ["127.0.0.0/8", "::1/128"]}})
    );
    for field in ["createdBy", "creationDate", "updatedBy", "lastUpdated"] {
        assert!(resource[field].is_string(), "{field}");
    }

    // Several at once, without ?policy=; omitted keyCreateImportAccess attributes take their
    // defaults.
    let res = kp
        .req("PUT", "/api/v2/instance/policies")
        .json(&policies(json!([
            {"policy_type": "dualAuthDelete", "policy_data": {"enabled": true}},
            {"policy_type": "keyCreateImportAccess",
             "policy_data": {"enabled": true, "attributes": {"create_standard_key": false}}}
        ])))
        .send()
        .await;
    assert_eq!(res.status, 204, "{}", res.text());
    let all = kp
        .req("GET", "/api/v2/instance/policies")
        .send()
        .await
        .json();
    assert_eq!(all["metadata"]["collectionTotal"], 3);
    let by_type = |t: &str| {
        all["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["policy_type"] == t)
            .unwrap_or_else(|| panic!("no {t}"))["policy_data"]
            .clone()
    };
    assert_eq!(by_type("dualAuthDelete"), json!({"enabled": true}));
    assert_eq!(
        by_type("keyCreateImportAccess"),
        json!({"enabled": true, "attributes": {
            "create_root_key": true, "create_standard_key": false, "import_root_key": true,
            "import_standard_key": true, "enforce_token": false}})
    );
    assert_eq!(
        by_type("allowedIP")["attributes"]["allowed_ip"][0],
        "127.0.0.0/8"
    );

    // allowedIP is enabled: the private port is reported.
    let port = kp
        .req("GET", "/api/v2/instance/allowed_ip_port")
        .send()
        .await
        .json();
    assert_eq!(
        port["metadata"]["collectionType"],
        "application/vnd.ibm.kms.allowed_ip_metadata+json"
    );
    assert!(port["resources"][0]["private_endpoint_port"].is_u64());

    // Policies are per instance.
    let other = kp
        .gw
        .request("GET", "/api/v2/instance/policies")
        .header("authorization", TOKEN)
        .header("bluemix-instance", "another-instance")
        .send()
        .await
        .json();
    assert_eq!(other["metadata"]["collectionTotal"], 0);
    assert_eq!(other["resources"], json!([]));
}

/// A JWT-shaped token for `sub` (the gateway of `Kp::start` does not verify tokens; the dev
/// KMS then reads the caller from the token's `sub`).
fn token_for(sub: &str) -> String {
    use base64::Engine;
    let enc = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "Bearer {}.{}.c2ln",
        enc(json!({"alg": "RS256", "typ": "JWT"})),
        enc(json!({"sub": sub}))
    )
}

#[tokio::test]
async fn dual_auth_delete_needs_a_prior_authorization_by_another_user() {
    let kp = Kp::start().await;
    let res = kp
        .req("PUT", "/api/v2/instance/policies?policy=dualAuthDelete")
        .json(&json!({
            "metadata": {"collectionType": "application/vnd.ibm.kms.policy+json", "collectionTotal": 1},
            "resources": [{"policy_type": "dualAuthDelete", "policy_data": {"enabled": true}}]
        }))
        .send()
        .await;
    assert_eq!(res.status, 204);
    let key = kp.create("guarded", false).await;
    assert_eq!(key["dualAuthDelete"]["enabled"], true);
    let id = key["id"].as_str().unwrap();
    let not_met = "Conflict: 1 prior authorization(s) are required for deletion: Key could not be deleted. Please see `reasons` for more details.";

    let res = kp.req("DELETE", &format!("/api/v2/keys/{id}")).send().await;
    assert_kms_error(&res, 409, "AUTHORIZATIONS_NOT_MET", not_met);
    assert_eq!(
        kp.action(id, "setKeyForDeletion", Style::Path, None)
            .await
            .status,
        204
    );
    // The same user cannot complete the deletion it authorized.
    let res = kp.req("DELETE", &format!("/api/v2/keys/{id}")).send().await;
    assert_kms_error(&res, 409, "AUTHORIZATIONS_NOT_MET", not_met);
    // Another user can.
    let res = kp
        .req_as(
            &token_for("second-user"),
            "DELETE",
            &format!("/api/v2/keys/{id}"),
        )
        .header("prefer", "return=representation")
        .send()
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.json()["resources"][0]["deleted"], true);
    assert_eq!(res.json()["resources"][0]["deletedBy"], "second-user");
}

/// Through a gateway that verifies tokens and owns the instance policies (the quickstart's
/// setup): the dev KMS learns the caller from the verified identity, and the instance's
/// dualAuthDelete from the gateway's policy.
#[tokio::test]
async fn dual_auth_across_two_verified_subjects() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("devkms-dual-auth-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let toml = format!(
        "[upstream]\nurl = \"embedded\"\n\
         [auth]\nenabled = true\nalgorithms = [\"HS256\"]\n\
         [[auth.hmac_keys]]\nkid = \"dev\"\nsecret = \"devkms-dual-auth-test-secret\"\ndev = true\n\
         [policies]\napi = \"own\"\ndir = \"{}\"\n",
        dir.display()
    );
    let toml = toml.as_str();
    let config = kmsgate::config::Config::from_toml(&[toml]).unwrap();
    let mint = |sub: &str| {
        let token = kmsgate::auth::devtoken::mint(
            &config.auth,
            sub,
            std::time::Duration::from_secs(600),
            false,
        )
        .unwrap();
        format!("Bearer {token}")
    };
    let (alice, bob) = (mint("alice"), mint("bob"));
    let gw = TestGateway::start(toml).await;
    let req = |method: &str, path: &str, token: &str| {
        gw.request(method, path)
            .header("authorization", token)
            .header("bluemix-instance", INSTANCE)
    };
    let res = req(
        "PUT",
        "/api/v2/instance/policies?policy=dualAuthDelete",
        &alice,
    )
    .json(&json!({
        "metadata": {"collectionType": "application/vnd.ibm.kms.policy+json", "collectionTotal": 1},
        "resources": [{"policy_type": "dualAuthDelete", "policy_data": {"enabled": true}}]
    }))
    .send()
    .await;
    assert_eq!(res.status, 204, "{}", res.text());
    let create = |name: &str| {
        req("POST", "/api/v2/keys", &alice).json(&key_body(json!({
            "type": "application/vnd.ibm.kms.key+json", "name": name, "extractable": false
        })))
    };
    let res = create("guarded").send().await;
    assert_eq!(res.status, 201, "{}", res.text());
    let key = res.json()["resources"][0].clone();
    assert_eq!(key["dualAuthDelete"]["enabled"], true);
    assert_eq!(key["createdBy"], "alice");
    let id = key["id"].as_str().unwrap();
    let delete = format!("/api/v2/keys/{id}");
    let set = format!("/api/v2/keys/{id}/actions/setKeyForDeletion");
    let not_met = "Conflict: 1 prior authorization(s) are required for deletion: Key could not be deleted. Please see `reasons` for more details.";

    assert_eq!(req("POST", &set, &alice).send().await.status, 204);
    let res = req("DELETE", &delete, &alice).send().await;
    assert_kms_error(&res, 409, "AUTHORIZATIONS_NOT_MET", not_met);
    let res = req("DELETE", &delete, &bob).send().await;
    assert_eq!(res.status, 204, "{}", res.text());

    // The policy off: keys created now delete directly, and refuse setKeyForDeletion.
    let res = req(
        "PUT",
        "/api/v2/instance/policies?policy=dualAuthDelete",
        &alice,
    )
    .json(&json!({
        "metadata": {"collectionType": "application/vnd.ibm.kms.policy+json", "collectionTotal": 1},
        "resources": [{"policy_type": "dualAuthDelete", "policy_data": {"enabled": false}}]
    }))
    .send()
    .await;
    assert_eq!(res.status, 204);
    let res = create("plain").send().await;
    let plain = res.json()["resources"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = req(
        "POST",
        &format!("/api/v2/keys/{plain}/actions/setKeyForDeletion"),
        &alice,
    )
    .send()
    .await;
    assert_kms_error(
        &res,
        409,
        "NOT_DUAL_AUTH_ERR",
        "Conflict: Action could not be performed on key. Please see `reasons` for more details.",
    );
    assert_eq!(
        res.json()["resources"][0]["reasons"][0]["message"],
        "The key is not dual auth enabled and cannot be set for deletion"
    );
    let res = req("DELETE", &format!("/api/v2/keys/{plain}"), &alice)
        .send()
        .await;
    assert_eq!(res.status, 204);
}

#[tokio::test]
async fn one_rotation_an_hour_unless_configured_shorter() {
    let kp = Kp::start().await;
    let id = kp.create_root().await;
    assert_eq!(
        kp.action(&id, "rotate", Style::Path, None).await.status,
        204
    );
    let res = kp.action(&id, "rotate", Style::Query, None).await;
    assert_kms_error(
        &res,
        409,
        "KEY_ROTATION_NOT_PERMITTED",
        "Conflict: Action could not be performed on key: Please see `reasons` for more details (KEY_ROTATION_NOT_PERMITTED)",
    );
    assert_eq!(
        res.json()["resources"][0]["reasons"][0]["message"],
        "This root key has been rotated within the last hour: Only one 'rotate' action per hour is permitted"
    );

    let quick = Kp {
        gw: TestGateway::start(
            "[upstream]\nurl = \"embedded\"\n[upstream.dev_kms]\nrotation_interval = \"0s\"\npurge_wait = \"0s\"\n",
        )
        .await,
        instance: INSTANCE,
    };
    let id = quick.create_root().await;
    for _ in 0..3 {
        assert_eq!(
            quick.action(&id, "rotate", Style::Path, None).await.status,
            204
        );
    }
    // purge_wait = 0s: a deleted key is purged at once, and then is gone.
    assert_eq!(
        quick
            .req("DELETE", &format!("/api/v2/keys/{id}"))
            .send()
            .await
            .status,
        204
    );
    let res = quick
        .req("DELETE", &format!("/api/v2/keys/{id}/purge"))
        .send()
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let res = quick.req("GET", &format!("/api/v2/keys/{id}")).send().await;
    assert_eq!(res.status, 404);
}

#[tokio::test]
async fn purge_only_four_hours_after_deletion() {
    let kp = Kp::start().await;
    let id = kp.create_root().await;
    let res = kp
        .req("DELETE", &format!("/api/v2/keys/{id}/purge"))
        .send()
        .await;
    assert_kms_error(
        &res,
        409,
        "KEY_ACTION_INVALID_STATE_ERR",
        "Conflict: Key is not in destroyed state: Key could not be purged. Please see 'reasons' for more details.",
    );
    assert_eq!(
        kp.req("DELETE", &format!("/api/v2/keys/{id}"))
            .send()
            .await
            .status,
        204
    );
    let res = kp
        .req("DELETE", &format!("/api/v2/keys/{id}/purge"))
        .send()
        .await;
    assert_kms_error(
        &res,
        409,
        "REQ_TOO_EARLY_ERR",
        "Conflict: Key could not be purged: Please see 'reasons' for more details (REQ_TOO_EARLY_ERR)",
    );
}

#[tokio::test]
async fn key_policies_aliases_rings_and_registrations() {
    let kp = Kp::start().await;
    let id = kp.create_root().await;
    // Key policies.
    let res = kp
        .req("PUT", &format!("/api/v2/keys/{id}/policies?policy=rotation"))
        .json(&json!({
            "metadata": {"collectionType": "application/vnd.ibm.kms.policy+json", "collectionTotal": 1},
            "resources": [{"type": "application/vnd.ibm.kms.policy+json",
                           "rotation": {"enabled": true, "interval_month": 2}}]
        }))
        .send()
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let res = kp
        .req("GET", &format!("/api/v2/keys/{id}/policies"))
        .send()
        .await;
    assert_eq!(
        res.json()["resources"][0]["rotation"],
        json!({"enabled": true, "interval_month": 2})
    );
    // Aliases: the key answers to its alias.
    let res = kp
        .req("POST", &format!("/api/v2/keys/{id}/aliases/billing-root"))
        .send()
        .await;
    assert_eq!(res.status, 201, "{}", res.text());
    let res = kp
        .req("GET", "/api/v2/keys/billing-root/metadata")
        .send()
        .await;
    assert_eq!(res.json()["resources"][0]["id"], id.as_str());
    let res = kp
        .req("DELETE", &format!("/api/v2/keys/{id}/aliases/billing-root"))
        .send()
        .await;
    assert_eq!(res.status, 204);
    // Key rings, X-Kms-Key-Ring and the move by PATCH.
    assert_eq!(
        kp.req("POST", "/api/v2/key_rings/ring-b")
            .send()
            .await
            .status,
        201
    );
    let res = kp
        .req("PATCH", &format!("/api/v2/keys/{id}"))
        .json(&json!({"keyRingID": "ring-b"}))
        .send()
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.json()["resources"][0]["keyRingID"], "ring-b");
    let res = kp
        .req("GET", "/api/v2/keys")
        .header("x-kms-key-ring", "ring-b")
        .send()
        .await;
    assert_eq!(res.json()["resources"][0]["id"], id.as_str());
    assert_eq!(res.json()["metadata"]["collectionTotal"], 1);
    let res = kp.req("GET", "/api/v2/key_rings").send().await;
    let rings: Vec<String> = res.json()["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(rings, ["default", "ring-b"]);
    // Registrations: none.
    let res = kp.req("GET", "/api/v2/keys/registrations").send().await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json()["resources"], json!([]));
    // KMIP: refused as Key Protect refuses a feature the instance does not have.
    let res = kp.req("GET", "/api/v2/kmip_adapters").send().await;
    assert_kms_error(
        &res,
        403,
        "FEATURE_RESTRICTED_ERR",
        "Forbidden: Request could not be processed. Please see `reasons` for more details.",
    );
}

#[tokio::test]
async fn imported_keys_rotate_with_material_and_restore() {
    let kp = Kp::start_quick().await; // enable and restore right after the last action
    let material = b64(&[1u8; 32]);
    let res = kp
        .req("POST", "/api/v2/keys")
        .json(&key_body(
            json!({"name": "imported", "extractable": false, "payload": material}),
        ))
        .send()
        .await;
    assert_eq!(res.status, 201, "{}", res.text());
    let key = res.json()["resources"][0].clone();
    assert_eq!(key["imported"], true);
    let id = key["id"].as_str().unwrap();

    let res = kp.action(id, "rotate", Style::Path, None).await;
    assert_kms_error(
        &res,
        400,
        "KEY_PAYLOAD_REQ_ERR",
        "Bad Request: Action could not be performed on key: Please see `reasons` for more details (KEY_PAYLOAD_REQ_ERR)",
    );
    assert_eq!(
        res.json()["resources"][0]["reasons"][0]["target"],
        json!({"type": "field", "name": "payload"})
    );
    let new_material = b64(&[2u8; 32]);
    let res = kp
        .action(
            id,
            "rotate",
            Style::Query,
            Some(json!({"payload": new_material})),
        )
        .await;
    assert_eq!(res.status, 204, "{}", res.text());

    // Only imported keys may be restored.
    let generated = kp.create_root().await;
    kp.req("DELETE", &format!("/api/v2/keys/{generated}"))
        .send()
        .await;
    let res = kp
        .req("POST", &format!("/api/v2/keys/{generated}/restore"))
        .send()
        .await;
    assert_kms_error(
        &res,
        400,
        "KEY_IMPT_REQ_ERR",
        "Bad Request: Key could not be restored. Please see `reasons` for more details.",
    );

    assert_eq!(
        kp.req("DELETE", &format!("/api/v2/keys/{id}"))
            .send()
            .await
            .status,
        204
    );
    let res = kp
        .req("POST", &format!("/api/v2/keys/{id}/restore"))
        .send()
        .await;
    assert_eq!(res.status, 201, "{}", res.text());
    let restored = res.json()["resources"][0].clone();
    assert_eq!(restored["state"], 1);
    assert_eq!(restored["deleted"], false);
    let wrapped = kp.action(id, "wrap", Style::Path, None).await;
    assert_eq!(wrapped.status, 200, "a restored key works again");
}

#[tokio::test]
async fn keys_are_listed_per_instance_with_limit_and_offset() {
    let kp = Kp::start().await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(kp.create(&format!("k{i}"), i == 2).await["id"].clone());
    }
    let list = kp.req("GET", "/api/v2/keys").send().await.json();
    assert_eq!(list["metadata"]["collectionTotal"], 3);
    let listed: Vec<Value> = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].clone())
        .collect();
    let mut by_id = ids.clone();
    by_id.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
    assert_eq!(listed, by_id, "sorted by id, Key Protect's default order");
    assert!(
        list["resources"][2].get("payload").is_none(),
        "lists never carry payloads"
    );
    let page = kp
        .req("GET", "/api/v2/keys?limit=1&offset=1")
        .send()
        .await
        .json();
    assert_eq!(page["metadata"]["collectionTotal"], 1);
    assert_eq!(page["resources"][0]["id"], by_id[1]);
    let head = kp.req("HEAD", "/api/v2/keys").send().await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("key-total"), Some("3"));

    let res = kp.req("GET", "/api/v2/keys?limit=0").send().await;
    assert_kms_error(
        &res,
        400,
        "INVALID_QUERY_PARAM_ERR",
        "Bad Request: Keys could not be retrieved: Please see `reasons` for more details (INVALID_QUERY_PARAM_ERR)",
    );

    let other = kp
        .gw
        .request("GET", "/api/v2/keys")
        .header("authorization", TOKEN)
        .header("bluemix-instance", "another-instance")
        .send()
        .await
        .json();
    assert_eq!(other["metadata"]["collectionTotal"], 0);
    let res = kp
        .gw
        .request("GET", &format!("/api/v2/keys/{}", ids[0].as_str().unwrap()))
        .header("authorization", TOKEN)
        .header("bluemix-instance", "another-instance")
        .send()
        .await;
    assert_kms_error(
        &res,
        404,
        "KEY_NOT_FOUND_ERR",
        "Not Found: Key could not be retrieved: Please see 'reasons' for more details (KEY_NOT_FOUND_ERR)",
    );
}

#[tokio::test]
async fn prefer_return_minimal_gives_only_the_id() {
    let kp = Kp::start().await;
    let res = kp
        .req("POST", "/api/v2/keys")
        .header("prefer", "return=minimal")
        .json(&key_body(json!({"name": "m", "extractable": false})))
        .send()
        .await;
    assert_eq!(res.status, 201, "{}", res.text());
    let v = res.json();
    assert_eq!(v["metadata"]["collectionTotal"], 1);
    let resource = v["resources"][0].as_object().unwrap();
    assert_eq!(resource.len(), 1, "{resource:?}");
    assert!(resource["id"].is_string());
}

#[tokio::test]
async fn unwrap_needs_a_body_and_a_real_ciphertext() {
    let kp = Kp::start().await;
    let id = kp.create_root().await;
    // Shape errors are the gateway's to answer (the body layer runs before the KMS).
    let calls = kp.gw.upstream_calls().await;
    let res = kp.action(&id, "unwrap", Style::Path, None).await;
    support::assert_rejected(&res, 400, "NO_BODY_ERR");
    assert_eq!(
        res.json()["resources"][0]["errorMsg"],
        "Bad Request: Action could not be performed on key. Please see `reasons` for more details."
    );
    let res = kp
        .action(
            &id,
            "unwrap",
            Style::Path,
            Some(json!({"ciphertext": "%%%"})),
        )
        .await;
    support::assert_rejected(&res, 400, "INVALID_FIELD_ERR");
    assert_eq!(
        res.json()["resources"][0]["errorMsg"],
        "Bad Request: Unwrap with key could not be performed: Please see 'reasons' for more details (INVALID_FIELD_ERR)"
    );
    assert_eq!(
        kp.gw.upstream_calls().await,
        calls,
        "the KMS saw neither refusal"
    );
    // Ciphertext of another key.
    let other = kp.create_root().await;
    let foreign = kp.action(&other, "wrap", Style::Path, None).await.json();
    let res = kp
        .action(
            &id,
            "unwrap",
            Style::Path,
            Some(json!({"ciphertext": foreign["ciphertext"]})),
        )
        .await;
    assert_kms_error(
        &res,
        422,
        "UNPROCESSABLE_CIPHERTEXT_ERR",
        "Unprocessable Entity: Action could not be performed on key. Please see `reasons` for more details.",
    );
}

#[tokio::test]
async fn import_token_is_created_and_retrieved() {
    let kp = Kp::start().await;
    let res = kp
        .req("POST", "/api/v2/import_token")
        .json(&json!({"expiration": 600, "maxAllowedRetrievals": 1}))
        .send()
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.json()["remainingRetrievals"], 1);
    let res = kp.req("GET", "/api/v2/import_token").send().await;
    assert_eq!(res.status, 200, "{}", res.text());
    let token = res.json();
    assert!(token["nonce"].is_string());
    assert_eq!(token["remainingRetrievals"], 0);
    let res = kp.req("GET", "/api/v2/import_token").send().await;
    assert_kms_error(
        &res,
        409,
        "IMPORT_TOKEN_EXPIRED_ERR",
        "Conflict: Import Token could not be retrieved. Please see `reasons` for more details.",
    );
}

#[tokio::test]
async fn the_dev_kms_serves_on_its_own() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(kmsgate::gateway::dev_kms::serve_on(listener, async move {
        let _ = stopped.await;
    }));

    let req = |method: &str, path: &str| {
        TestRequest::new(addr, method, path).header("bluemix-instance", INSTANCE)
    };
    let res = req("POST", "/api/v2/keys")
        .json(&key_body(json!({"name": "alone", "extractable": false})))
        .send()
        .await;
    assert_eq!(res.status, 201, "{}", res.text());
    let id = res.json()["resources"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let wrapped = req("POST", &format!("/api/v2/keys/{id}/actions/wrap"))
        .send()
        .await;
    assert_eq!(wrapped.status, 200, "{}", wrapped.text());

    // No instance: Key Protect cannot authorize the request.
    let res = TestRequest::new(addr, "GET", "/api/v2/keys").send().await;
    assert_eq!(res.status, 401);
    assert_eq!(
        res.json()["resources"][0]["errorMsg"],
        "Unauthorized: The user does not have access to the specified resource"
    );
    // KMIP is refused as Key Protect refuses a feature the instance does not have.
    let res = req("GET", "/api/v2/kmip_adapters").send().await;
    assert_kms_error(
        &res,
        403,
        "FEATURE_RESTRICTED_ERR",
        "Forbidden: Request could not be processed. Please see `reasons` for more details.",
    );

    let _ = stop.send(());
    server.await.unwrap();
}

/// The embedded KMS's own refusals are counted like a remote backend's.
#[tokio::test]
async fn embedded_refusals_are_counted_as_upstream_reasons() {
    let gw = support::TestGateway::start("").await;
    let res = gw
        .request("GET", "/api/v2/keys/00000000-0000-4000-8000-00000000dead")
        .header("bluemix-instance", "metrics-instance")
        .send()
        .await;
    assert_eq!(res.status, 404);
    assert!(res.header("kmsgate-reason").is_none());
    assert_eq!(
        gw.metric(
            "kmsgate_upstream_reasons_total",
            &[("code", "KEY_NOT_FOUND_ERR")]
        )
        .await,
        1.0
    );
    assert_eq!(
        gw.metric("kmsgate_rejections_total", &[("code", "KEY_NOT_FOUND_ERR")])
            .await,
        0.0
    );
}

/// The list queries the SDKs send, through the gateway: keyprotect 3.0.1's `get_keys()` sends
/// `state=` (an empty list), `get_keys(state=[1, 5])` sends `state=1%2C5`; the Node SDK sends
/// the same; the Go client adds `totalCount`.
#[tokio::test]
async fn list_queries_as_the_sdks_send_them() {
    let kp = Kp::start().await;
    let root = kp.create("sdk-root", false).await["id"].clone();
    let standard = kp.create("sdk-standard", true).await["id"].clone();
    let res = kp
        .req(
            "DELETE",
            &format!("/api/v2/keys/{}", root.as_str().unwrap()),
        )
        .send()
        .await;
    assert_eq!(res.status, 204, "{}", res.text());
    let list = |query: &'static str| {
        let req = kp.req("GET", &format!("/api/v2/keys{query}"));
        async move {
            let res = req.send().await;
            assert_eq!(res.status, 200, "{query}: {}", res.text());
            res.json()
        }
    };
    let ids = |v: &Value| -> Vec<Value> {
        v["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["id"].clone())
            .collect()
    };
    assert_eq!(ids(&list("?state=").await), vec![standard.clone()]);
    let mut both = vec![root.clone(), standard.clone()];
    both.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
    assert_eq!(ids(&list("?state=1%2C5").await), both);
    let go = list("?limit=1&offset=0&totalCount=true&state=1,5&extractable=false").await;
    assert_eq!(ids(&go), vec![root.clone()]);
    assert_eq!(go["metadata"]["totalCount"], 1);
    let found =
        list("?search=exact%3Asdk-standard&sort=-creationDate&filter=extractable%3Dtrue").await;
    assert_eq!(ids(&found), vec![standard.clone()]);
    // What the dev KMS does not read is a precise refusal, not ignored.
    let res = kp.req("GET", "/api/v2/keys?sort=name").send().await;
    assert_kms_error(
        &res,
        400,
        "INVALID_QUERY_PARAM_ERR",
        "Bad Request: Keys could not be retrieved: Please see `reasons` for more details (INVALID_QUERY_PARAM_ERR)",
    );
    let reason = &res.json()["resources"][0]["reasons"][0];
    assert_eq!(
        reason["target"],
        json!({"type": "query_param", "name": "sort"})
    );
    assert!(
        reason["message"]
            .as_str()
            .unwrap()
            .starts_with("The query_param 'sort' must be: a comma-separated list of id, state,"),
        "{reason}"
    );
    kp.gw.shutdown().await;
}

/// Secure import through the gateway, as a Key Protect client does it: the import token's
/// public key seals the key material (RSA-OAEP SHA-256), the material seals the token's nonce
/// (AES-GCM).
#[tokio::test]
async fn secure_import_through_the_gateway() {
    use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
    use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPublicEncryptingKey, PublicEncryptingKey};
    use base64::Engine;
    let std_b64 = base64::engine::general_purpose::STANDARD;
    let kp = Kp::start().await;
    let res = kp
        .req("POST", "/api/v2/import_token")
        .json(&json!({"expiration": 600, "maxAllowedRetrievals": 1}))
        .send()
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let token = kp.req("GET", "/api/v2/import_token").send().await.json();
    let pem =
        String::from_utf8(std_b64.decode(token["payload"].as_str().unwrap()).unwrap()).unwrap();
    let der: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let public = PublicEncryptingKey::from_der(&std_b64.decode(der).unwrap()).unwrap();
    let oaep = OaepPublicEncryptingKey::new(public).unwrap();
    let nonce = std_b64.decode(token["nonce"].as_str().unwrap()).unwrap();
    let material = [9u8; 32];
    let seal = |plain: &[u8], iv: [u8; 12]| {
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &material).unwrap());
        let mut data = plain.to_vec();
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key(iv), Aad::empty(), &mut data)
            .unwrap();
        std_b64.encode(data)
    };
    let mut out = vec![0u8; oaep.ciphertext_size()];
    let payload = std_b64.encode(
        oaep.encrypt(&OAEP_SHA256_MGF1SHA256, &material, &mut out, None)
            .unwrap(),
    );
    let create = |encrypted_nonce: String| {
        kp.req("POST", "/api/v2/keys").json(&key_body(json!({
            "type": "application/vnd.ibm.kms.key+json", "name": "secure", "extractable": false,
            "payload": payload, "encryptedNonce": encrypted_nonce, "iv": b64(&[1u8; 12]),
            "encryptionAlgorithm": "RSAES_OAEP_SHA_256"
        })))
    };
    let res = create(seal(b"wrong-nonce", [1; 12])).send().await;
    assert_kms_error(
        &res,
        400,
        "INCORRECT_NONCE_ERR",
        "Bad Request: Key could not be created. Please see `reasons` for more details.",
    );
    let res = create(seal(&nonce, [2; 12])).send().await;
    assert_kms_error(
        &res,
        400,
        "INCORRECT_NONCE_IV_ERR",
        "Bad Request: Key could not be created. Please see `reasons` for more details.",
    );
    let res = create(seal(&nonce, [1; 12])).send().await;
    assert_eq!(res.status, 201, "{}", res.text());
    let key = res.json()["resources"][0].clone();
    assert_eq!(key["imported"], true);
    // The imported material wraps and unwraps.
    let id = key["id"].as_str().unwrap();
    let wrapped = kp
        .action(
            id,
            "wrap",
            Style::Path,
            Some(json!({"plaintext": b64(b"dek")})),
        )
        .await
        .json();
    let unwrapped = kp
        .action(
            id,
            "unwrap",
            Style::Path,
            Some(json!({"ciphertext": wrapped["ciphertext"]})),
        )
        .await
        .json();
    assert_eq!(unwrapped["plaintext"], b64(b"dek"));
}
