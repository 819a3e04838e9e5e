//! The bearer-token layer over real loopback sockets: every refusal (status, code, envelope,
//! `WWW-Authenticate`, nothing forwarded), accepted RSA / EC / Ed25519 / HMAC tokens, the
//! verified-token cache, decode-only mode, and a JWKS URL served on loopback (readiness waits
//! for the first fetch, key rotation through the unknown-`kid` refetch, a failing refresh keeps
//! the last good keys until `max_staleness`).

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use support::{Recorder, TestGateway, TestResponse, assert_rejected};

const ISSUER: &str = "https://iam.test/identity";
const AUDIENCE: &str = "kms";

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/auth/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn private_key(name: &str, alg: Algorithm) -> EncodingKey {
    let pem = std::fs::read(fixture(name)).unwrap();
    match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem).unwrap(),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem).unwrap(),
        _ => EncodingKey::from_rsa_pem(&pem).unwrap(),
    }
}

fn rsa() -> EncodingKey {
    private_key("test-rsa-private.pem", Algorithm::RS256)
}

fn rsa2() -> EncodingKey {
    private_key("test-rsa2-private.pem", Algorithm::RS256)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(Into::into);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn good_claims(sub: &str) -> Value {
    json!({"sub": sub, "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600, "iat": now()})
}

/// `[upstream]` at the recorder plus `[auth]` with the static test keys and `extra` appended.
fn auth_toml(upstream: &Recorder, extra: &str) -> String {
    format!(
        r#"
[upstream]
url = "{upstream}"

[auth]
enabled = true
algorithms = ["RS256", "PS256", "ES256", "EdDSA", "HS256"]
issuers = ["{ISSUER}"]
audiences = ["{AUDIENCE}"]
leeway = "60s"

[[auth.pem_keys]]
kid = "rsa"
file = "{rsa}"

[[auth.pem_keys]]
kid = "ec"
file = "{ec}"

[[auth.pem_keys]]
kid = "ed"
file = "{ed}"

[[auth.hmac_keys]]
kid = "hmac"
secret_file = "{hmac}"
{extra}
"#,
        upstream = upstream.url(),
        rsa = fixture("test-rsa-public.pem"),
        ec = fixture("test-ec-public.pem"),
        ed = fixture("test-ed25519-public.pem"),
        hmac = fixture("test-hmac-secret.txt"),
    )
}

async fn send(gw: &TestGateway, authorization: Option<&str>) -> TestResponse {
    let mut req = gw
        .request("POST", "/api/v2/keys")
        .header("bluemix-instance", "instance-1")
        .header("content-type", "application/json");
    if let Some(value) = authorization {
        req = req.header("authorization", value);
    }
    req.body(&br#"{"metadata":{"collectionType":"application/vnd.ibm.kms.key+json","collectionTotal":1},"resources":[{"type":"application/vnd.ibm.kms.key+json","name":"k"}]}"#[..])
        .send()
        .await
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test]
async fn malformed_authorization_is_bearer_sub_extraction_err() {
    let upstream = Recorder::start().await;
    let gw = TestGateway::start(&auth_toml(&upstream, "")).await;
    let b64 = |s: &str| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    };
    let no_sub = sign(
        Algorithm::RS256,
        Some("rsa"),
        &json!({"iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600}),
        &rsa(),
    );
    let numeric_sub = sign(
        Algorithm::RS256,
        Some("rsa"),
        &json!({"sub": 7, "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600}),
        &rsa(),
    );
    let payload_not_json = format!("{}.{}.c2ln", b64(r#"{"alg":"RS256"}"#), b64("sub=alice"));
    let cases: Vec<(Option<String>, &str)> = vec![
        (None, "missing_header"),
        (Some("Basic YWxpY2U6c2VjcmV0".into()), "not_bearer"),
        (Some("Bearer".into()), "empty_token"),
        (Some("Bearer    ".into()), "empty_token"),
        (Some("Bearer not-a-jwt".into()), "not_jwt"),
        (Some("Bearer a.b.c.d".into()), "not_jwt"),
        (Some(bearer(&payload_not_json)), "not_jwt"),
        (Some(bearer(&no_sub)), "no_subject"),
        (Some(bearer(&numeric_sub)), "no_subject"),
    ];
    for (authorization, label) in &cases {
        let res = send(&gw, authorization.as_deref()).await;
        assert_rejected(&res, 400, "BEARER_SUB_EXTRACTION_ERR");
        let v = res.json();
        assert_eq!(
            v["resources"][0]["errorMsg"],
            "Bad Request: Key could not be created. Please see `reasons` for more details."
        );
        assert_eq!(
            v["resources"][0]["reasons"][0]["message"],
            "Extracting the subject from the bearer token failed: Make sure the bearer token \
             passed is the correct one (and correct format) and is allowed to perform requested \
             actions"
        );
        assert!(res.header("www-authenticate").is_none(), "{label}");
        assert!(
            gw.metric("kmsgate_token_verifications_total", &[("result", label)])
                .await
                >= 1.0,
            "{label}"
        );
    }
    assert_eq!(upstream.count(), 0, "the upstream saw nothing");
    assert_eq!(
        gw.metric(
            "kmsgate_rejections_total",
            &[("code", "BEARER_SUB_EXTRACTION_ERR")]
        )
        .await,
        cases.len() as f64
    );
}

#[tokio::test]
async fn tokens_that_fail_verification_are_unauthorized() {
    let upstream = Recorder::start().await;
    let gw = TestGateway::start(&auth_toml(&upstream, "")).await;
    let t = now();
    let with = |claims: Value| sign(Algorithm::RS256, Some("rsa"), &claims, &rsa());
    let b64 = |s: &str| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    };
    let alg_none = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT"}"#),
        b64(&good_claims("mallory").to_string())
    );
    // HS256 signed with the RSA public key's PEM bytes: the classic algorithm-confusion forgery.
    let confusion = sign(
        Algorithm::HS256,
        Some("rsa"),
        &good_claims("mallory"),
        &EncodingKey::from_secret(&std::fs::read(fixture("test-rsa-public.pem")).unwrap()).unwrap(),
    );
    let cases: Vec<(String, &str)> = vec![
        (
            sign(Algorithm::RS256, Some("rsa"), &good_claims("m"), &rsa2()),
            "bad_signature",
        ),
        (
            sign(Algorithm::RS384, Some("rsa"), &good_claims("m"), &rsa()),
            "algorithm_not_allowed",
        ),
        (alg_none, "algorithm_not_allowed"),
        (confusion, "algorithm_key_mismatch"),
        (
            sign(Algorithm::RS256, Some("rotated"), &good_claims("m"), &rsa()),
            "unknown_key",
        ),
        (
            with(json!({"sub": "m", "iss": ISSUER, "aud": AUDIENCE, "exp": t - 120})),
            "expired",
        ),
        (
            with(json!({"sub": "m", "iss": ISSUER, "aud": AUDIENCE})),
            "missing_exp",
        ),
        (
            with(
                json!({"sub": "m", "iss": ISSUER, "aud": AUDIENCE, "exp": t + 600, "nbf": t + 300}),
            ),
            "not_yet_valid",
        ),
        (
            with(json!({"sub": "m", "iss": "https://evil.test", "aud": AUDIENCE, "exp": t + 600})),
            "wrong_issuer",
        ),
        (
            with(json!({"sub": "m", "iss": ISSUER, "aud": "other", "exp": t + 600})),
            "wrong_audience",
        ),
        (
            with(json!({"sub": "m", "iss": ISSUER, "aud": ["other", "more"], "exp": t + 600})),
            "wrong_audience",
        ),
    ];
    for (token, label) in &cases {
        let res = send(&gw, Some(&bearer(token))).await;
        assert_rejected(&res, 401, "UNAUTHORIZED_ERR");
        assert_eq!(
            res.header("www-authenticate"),
            Some("Bearer error=\"invalid_token\""),
            "{label}"
        );
        assert!(
            gw.metric("kmsgate_token_verifications_total", &[("result", label)])
                .await
                >= 1.0,
            "{label}"
        );
    }
    assert_eq!(upstream.count(), 0, "the upstream saw nothing");
    assert_eq!(
        gw.metric("kmsgate_rejections_total", &[("code", "UNAUTHORIZED_ERR")])
            .await,
        cases.len() as f64
    );
    // Within the leeway an expired token still passes.
    let late = with(json!({"sub": "ok", "iss": ISSUER, "aud": AUDIENCE, "exp": t - 10}));
    assert_eq!(send(&gw, Some(&bearer(&late))).await.status, 200);
}

#[tokio::test]
async fn rsa_ec_ed25519_and_hmac_tokens_are_accepted_and_forwarded_unchanged() {
    let upstream = Recorder::start().await;
    let gw = TestGateway::start(&auth_toml(&upstream, "")).await;
    let hmac = EncodingKey::from_secret(b"integration-test-hmac-secret-0123456789").unwrap();
    let tokens = [
        sign(
            Algorithm::RS256,
            Some("rsa"),
            &good_claims("rsa-user"),
            &rsa(),
        ),
        sign(
            Algorithm::ES256,
            Some("ec"),
            &good_claims("ec-user"),
            &private_key("test-ec-private.pem", Algorithm::ES256),
        ),
        sign(
            Algorithm::EdDSA,
            Some("ed"),
            &good_claims("ed-user"),
            &private_key("test-ed25519-private.pem", Algorithm::EdDSA),
        ),
        sign(
            Algorithm::HS256,
            Some("hmac"),
            &good_claims("hmac-user"),
            &hmac,
        ),
        sign(
            Algorithm::PS256,
            Some("rsa"),
            &good_claims("pss-user"),
            &rsa(),
        ),
        // Without a kid, every key of the algorithm's family is tried.
        sign(
            Algorithm::ES256,
            None,
            &good_claims("no-kid"),
            &private_key("test-ec-private.pem", Algorithm::ES256),
        ),
    ];
    for (i, token) in tokens.iter().enumerate() {
        let res = send(&gw, Some(&bearer(token))).await;
        assert_eq!(res.status, 200, "token {i}: {}", res.text());
        assert!(res.header("kmsgate-reason").is_none());
        assert_eq!(upstream.count(), i + 1);
        assert_eq!(
            upstream.last().headers["authorization"],
            bearer(token).as_str(),
            "the token goes upstream unchanged"
        );
    }
    // h2c as well.
    let res = gw
        .request("GET", "/api/v2/keys")
        .header("authorization", &bearer(&tokens[0]))
        .h2()
        .send()
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(
        gw.metric("kmsgate_token_verifications_total", &[("result", "ok")])
            .await,
        7.0
    );
}

#[tokio::test]
async fn a_jwks_file_is_a_key_source() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bearer-jwks");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("keys.json");
    std::fs::write(&path, jwks(&[(&rsa2(), "file-key")])).unwrap();
    let upstream = Recorder::start().await;
    let gw = TestGateway::start(&format!(
        "[upstream]\nurl = \"{}\"\n[auth]\nenabled = true\njwks_files = [\"{}\"]\n",
        upstream.url(),
        path.display()
    ))
    .await;
    let ok = jwt("file-key", &rsa2(), "dave");
    assert_eq!(send(&gw, Some(&bearer(&ok))).await.status, 200);
    let forged = jwt("file-key", &rsa(), "dave");
    assert_rejected(
        &send(&gw, Some(&bearer(&forged))).await,
        401,
        "UNAUTHORIZED_ERR",
    );
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn the_cache_skips_verification_of_a_repeated_token() {
    let upstream = Recorder::start().await;
    let gw = TestGateway::start(&auth_toml(&upstream, "")).await;
    let token = sign(Algorithm::RS256, Some("rsa"), &good_claims("alice"), &rsa());
    for _ in 0..3 {
        assert_eq!(send(&gw, Some(&bearer(&token))).await.status, 200);
    }
    assert_eq!(
        gw.metric("kmsgate_token_cache_misses_total", &[]).await,
        1.0
    );
    assert_eq!(gw.metric("kmsgate_token_cache_hits_total", &[]).await, 2.0);
    // A different (forged) token with the same claims is not a hit.
    let forged = sign(
        Algorithm::RS256,
        Some("rsa"),
        &good_claims("alice"),
        &rsa2(),
    );
    assert_rejected(
        &send(&gw, Some(&bearer(&forged))).await,
        401,
        "UNAUTHORIZED_ERR",
    );
    assert_eq!(upstream.count(), 3);

    // Switched off: every request is verified.
    let upstream = Recorder::start().await;
    let gw = TestGateway::start(&auth_toml(&upstream, "[auth.cache]\nenabled = false\n")).await;
    for _ in 0..2 {
        assert_eq!(send(&gw, Some(&bearer(&token))).await.status, 200);
    }
    assert_eq!(gw.metric("kmsgate_token_cache_hits_total", &[]).await, 0.0);
    assert_eq!(
        gw.metric("kmsgate_token_verifications_total", &[("result", "ok")])
            .await,
        2.0
    );
}

#[tokio::test]
async fn disabled_auth_passes_requests_through() {
    let upstream = Recorder::start().await;
    let gw = TestGateway::start(&format!("[upstream]\nurl = \"{}\"\n", upstream.url())).await;
    let res = send(&gw, None).await;
    assert_eq!(res.status, 200);
    assert_eq!(upstream.count(), 1);
    let res = send(&gw, Some("Bearer not-a-jwt")).await;
    assert_eq!(res.status, 200);
    assert_eq!(upstream.count(), 2);
}

#[tokio::test]
async fn decode_only_reads_the_subject_without_verifying() {
    let upstream = Recorder::start().await;
    let gw = TestGateway::start(&format!(
        "[upstream]\nurl = \"{}\"\n[auth]\nenabled = true\nmode = \"decode-only\"\n",
        upstream.url()
    ))
    .await;
    // Signed with a key the gateway does not know, expired: accepted, the KMS decides.
    let token = sign(
        Algorithm::RS256,
        Some("anything"),
        &json!({"sub": "bob", "exp": 1}),
        &rsa2(),
    );
    assert_eq!(send(&gw, Some(&bearer(&token))).await.status, 200);
    assert_eq!(upstream.count(), 1);
    assert_rejected(&send(&gw, None).await, 400, "BEARER_SUB_EXTRACTION_ERR");
    assert_rejected(
        &send(&gw, Some("Bearer x.y.z")).await,
        400,
        "BEARER_SUB_EXTRACTION_ERR",
    );
    assert_eq!(upstream.count(), 1);
    assert_eq!(
        gw.metric(
            "kmsgate_token_verifications_total",
            &[("result", "decoded")]
        )
        .await,
        1.0
    );
}

#[tokio::test]
async fn the_dev_key_admits_tokens_minted_by_kmsgate_token() {
    let upstream = Recorder::start().await;
    let toml = format!(
        "[upstream]\nurl = \"{}\"\n[auth]\nenabled = true\nalgorithms = [\"HS256\"]\n\
         [[auth.hmac_keys]]\nkid = \"dev\"\nsecret = \"dev-secret\"\ndev = true\n",
        upstream.url()
    );
    let gw = TestGateway::start(&toml).await;
    let config = kmsgate::config::Config::from_toml(&[&toml]).unwrap();
    let token =
        kmsgate::auth::devtoken::mint(&config.auth, "alice", Duration::from_secs(3600), false)
            .unwrap();
    assert_eq!(send(&gw, Some(&bearer(&token))).await.status, 200);
    assert_eq!(upstream.count(), 1);
}

// === JWKS URL on loopback ===

fn jwk(key: &EncodingKey, kid: &str) -> Jwk {
    let mut jwk = Jwk::from_encoding_key(key, Algorithm::RS256).unwrap();
    jwk.common.key_id = Some(kid.into());
    jwk
}

fn jwks(keys: &[(&EncodingKey, &str)]) -> Vec<u8> {
    let set = JwkSet {
        keys: keys.iter().map(|(k, kid)| jwk(k, kid)).collect(),
    };
    serde_json::to_vec(&set).unwrap()
}

fn jwks_toml(upstream: &Recorder, jwks: &Recorder, extra: &str) -> String {
    format!(
        r#"
[upstream]
url = "{}"

[auth]
enabled = true
algorithms = ["RS256"]

[auth.jwks]
url = "{}/identity/keys"
timeout = "2s"
{extra}
"#,
        upstream.url(),
        jwks.url()
    )
}

/// Polls `/readyz` until it answers `want` (bounded).
async fn wait_ready(gw: &TestGateway, want: u16) {
    for _ in 0..200 {
        if gw.admin("/readyz").await.status == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("/readyz never answered {want}");
}

fn jwt(kid: &str, key: &EncodingKey, sub: &str) -> String {
    sign(
        Algorithm::RS256,
        Some(kid),
        &json!({"sub": sub, "exp": now() + 600}),
        key,
    )
}

#[tokio::test]
async fn readiness_waits_for_the_first_jwks_fetch() {
    let upstream = Recorder::start().await;
    let server = Recorder::start().await;
    server.respond_with(503, &b"not yet"[..]);
    let gw = TestGateway::start(&jwks_toml(&upstream, &server, "")).await;
    // The first fetches fail: not ready, and tokens are refused.
    for _ in 0..50 {
        if server.count() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(server.count() >= 2, "the refresher retries");
    assert_eq!(gw.admin("/readyz").await.status, 503);
    assert!(
        gw.metric("kmsgate_jwks_refresh_total", &[("result", "error")])
            .await
            >= 1.0
    );
    assert_eq!(
        gw.metric("kmsgate_jwks_age_seconds", &[]).await,
        f64::INFINITY
    );
    // The IdP comes up: the next retry succeeds and the gateway turns ready.
    server.respond_with(200, jwks(&[(&rsa(), "k1")]));
    wait_ready(&gw, 200).await;
    assert_eq!(server.last().uri.path(), "/identity/keys");
    assert_eq!(gw.metric("kmsgate_jwks_keys", &[]).await, 1.0);
    assert!(gw.metric("kmsgate_jwks_age_seconds", &[]).await < 60.0);
    let res = send(&gw, Some(&bearer(&jwt("k1", &rsa(), "alice")))).await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn key_rotation_is_picked_up_by_the_unknown_kid_refetch() {
    let upstream = Recorder::start().await;
    let server = Recorder::start().await;
    server.respond_with(200, jwks(&[(&rsa(), "old")]));
    let gw = TestGateway::start(&jwks_toml(
        &upstream,
        &server,
        "refresh_interval = \"1h\"\nrefetch_min_interval = \"1s\"\n",
    ))
    .await;
    wait_ready(&gw, 200).await;
    assert_eq!(server.count(), 1);
    assert_eq!(
        send(&gw, Some(&bearer(&jwt("old", &rsa(), "a"))))
            .await
            .status,
        200
    );

    // The IdP rotates to a new key; the scheduled refresh is an hour away.
    server.respond_with(200, jwks(&[(&rsa(), "old"), (&rsa2(), "new")]));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let res = send(&gw, Some(&bearer(&jwt("new", &rsa2(), "b")))).await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(server.count(), 2, "one refetch");
    assert_eq!(upstream.count(), 2);
    assert_eq!(gw.metric("kmsgate_jwks_keys", &[]).await, 2.0);

    // An unknown kid right after a refetch is refused at once, without another fetch.
    let res = send(&gw, Some(&bearer(&jwt("bogus", &rsa2(), "c")))).await;
    assert_rejected(&res, 401, "UNAUTHORIZED_ERR");
    assert_eq!(
        res.header("www-authenticate"),
        Some("Bearer error=\"invalid_token\"")
    );
    assert_eq!(server.count(), 2, "rate-limited: no fetch");
    // After the interval, an unknown kid triggers one more fetch and is still refused.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let res = send(&gw, Some(&bearer(&jwt("bogus", &rsa2(), "c")))).await;
    assert_rejected(&res, 401, "UNAUTHORIZED_ERR");
    assert_eq!(server.count(), 3);
    assert_eq!(
        upstream.count(),
        2,
        "refused tokens never reach the upstream"
    );
}

#[tokio::test]
async fn a_failing_refresh_keeps_the_last_good_keys_until_max_staleness() {
    let upstream = Recorder::start().await;
    let server = Recorder::start().await;
    server.respond_with(200, jwks(&[(&rsa(), "k1")]));
    let gw = TestGateway::start(&jwks_toml(
        &upstream,
        &server,
        "refresh_interval = \"100ms\"\nmax_staleness = \"1500ms\"\nrefetch_min_interval = \"1h\"\n",
    ))
    .await;
    wait_ready(&gw, 200).await;
    server.respond_with(500, &b"idp down"[..]);
    let mut failed = 0.0;
    for _ in 0..100 {
        failed = gw
            .metric("kmsgate_jwks_refresh_total", &[("result", "error")])
            .await;
        if failed >= 2.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(failed >= 2.0, "refreshes failed");
    // Still serving with the last good keys, and still ready.
    let token = jwt("k1", &rsa(), "alice");
    let res = send(&gw, Some(&bearer(&token))).await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(gw.admin("/readyz").await.status, 200);
    assert_eq!(gw.metric("kmsgate_jwks_keys", &[]).await, 1.0);

    // Past max_staleness the stale keys are no longer trusted (a fresh token, so the cache
    // cannot answer for it).
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert!(gw.metric("kmsgate_jwks_age_seconds", &[]).await >= 1.5);
    let res = send(&gw, Some(&bearer(&jwt("k1", &rsa(), "bob")))).await;
    assert_rejected(&res, 401, "UNAUTHORIZED_ERR");
    assert_eq!(upstream.count(), 1);
}

// === Order in the stack ===

#[tokio::test]
async fn allowed_ip_refuses_before_any_token_work() {
    use kmsgate::policy::Snapshot;
    use kmsgate::policy::model::{AllowedIp, InstancePolicies};
    let upstream = Recorder::start().await;
    let policy = InstancePolicies {
        allowed_ip: Some(AllowedIp {
            enabled: true,
            allowed_ip: vec!["127.0.0.2/32".parse().unwrap()],
        }),
        ..Default::default()
    };
    let snapshot = Snapshot::new([("instance-1".to_owned(), policy)], None);
    let gw = TestGateway::start_with_policies(&auth_toml(&upstream, ""), snapshot).await;
    // Outside allowedIP, no token: allowedIP's 401 wins (no challenge), the token is not looked at.
    let res = gw
        .request("GET", "/api/v2/keys")
        .header("bluemix-instance", "instance-1")
        .from_ip("127.0.0.3")
        .send()
        .await;
    assert_rejected(&res, 401, "UNAUTHORIZED_ERR");
    assert!(res.header("www-authenticate").is_none());
    assert_eq!(
        gw.metric(
            "kmsgate_token_verifications_total",
            &[("result", "missing_header")]
        )
        .await,
        0.0
    );
    // Inside allowedIP, no token: the bearer layer answers.
    let res = gw
        .request("GET", "/api/v2/keys")
        .header("bluemix-instance", "instance-1")
        .from_ip("127.0.0.2")
        .send()
        .await;
    assert_rejected(&res, 400, "BEARER_SUB_EXTRACTION_ERR");
    // Inside, with a good token: forwarded.
    let token = sign(Algorithm::RS256, Some("rsa"), &good_claims("alice"), &rsa());
    let res = gw
        .request("GET", "/api/v2/keys")
        .header("bluemix-instance", "instance-1")
        .header("authorization", &bearer(&token))
        .from_ip("127.0.0.2")
        .send()
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(upstream.count(), 1);
}

// === `kmsgate token` ===

#[tokio::test]
async fn kmsgate_token_signs_with_the_quickstart_dev_key_and_refuses_without_one() {
    let project = |f: &str| format!("{}/{f}", env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kmsgate"))
        .args(["token", "--config", &project("config/kmsgate.toml")])
        .args(["--sub", "alice", "--ttl", "10m", "--service"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(token.split('.').count(), 3);

    // The quickstart's [auth] section in front of a recording upstream admits it.
    let quickstart = std::fs::read_to_string(project("config/kmsgate.toml")).unwrap();
    let auth = &quickstart[quickstart.find("[auth]").unwrap()..];
    let upstream = Recorder::start().await;
    let gw = TestGateway::start(&format!("[upstream]\nurl = \"{}\"\n{auth}", upstream.url())).await;
    assert_eq!(send(&gw, Some(&bearer(&token))).await.status, 200);
    assert_eq!(upstream.count(), 1);
    assert_rejected(&send(&gw, None).await, 400, "BEARER_SUB_EXTRACTION_ERR");
    assert_eq!(upstream.count(), 1);

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kmsgate"))
        .args(["token", "--config", &project("config/kmsgate.example.toml")])
        .args(["--sub", "alice"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no development key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn the_token_is_checked_before_the_body() {
    let upstream = Recorder::start().await;
    let gw = TestGateway::start(&auth_toml(&upstream, "")).await;
    // A bad body and no token: the bearer layer answers (no body is buffered for it).
    let res = gw
        .request("POST", "/api/v2/keys")
        .header("bluemix-instance", "instance-1")
        .body(&b"{not json"[..])
        .send()
        .await;
    assert_rejected(&res, 400, "BEARER_SUB_EXTRACTION_ERR");
    // With a good token, the body layer answers for the same body.
    let token = sign(Algorithm::RS256, Some("rsa"), &good_claims("alice"), &rsa());
    let res = gw
        .request("POST", "/api/v2/keys")
        .header("bluemix-instance", "instance-1")
        .header("authorization", &bearer(&token))
        .body(&b"{not json"[..])
        .send()
        .await;
    assert_rejected(&res, 400, "BAD_BODY_ERR");
    assert_eq!(upstream.count(), 0);
}
