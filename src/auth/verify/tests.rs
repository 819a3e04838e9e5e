use std::path::PathBuf;

use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::{Value, json};

use super::*;
use crate::auth::config::{HmacKeyConfig, PemKeyConfig};
use crate::auth::unix_now;
use crate::config::Secret;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/auth")
        .join(name)
}

fn rsa_private() -> EncodingKey {
    EncodingKey::from_rsa_pem(&std::fs::read(fixture("test-rsa-private.pem")).unwrap()).unwrap()
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(Into::into);
    encode(&header, claims, key).unwrap()
}

fn claims(sub: &str) -> Value {
    json!({"sub": sub, "exp": unix_now() + 600, "iss": "https://iss", "aud": ["kms", "other"]})
}

fn config() -> AuthConfig {
    AuthConfig {
        enabled: true,
        algorithms: vec![Algorithm::RS256, Algorithm::HS256],
        issuers: vec!["https://iss".into()],
        audiences: vec!["kms".into()],
        pem_keys: vec![PemKeyConfig {
            kid: Some("rsa1".into()),
            file: fixture("test-rsa-public.pem"),
        }],
        hmac_keys: vec![HmacKeyConfig {
            kid: Some("dev".into()),
            secret: Some(Secret::new("unit-test-secret")),
            dev: true,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn verifier(config: &AuthConfig) -> Verifier {
    let keys = keys::load_static(config).unwrap();
    let cache = config
        .cache
        .enabled
        .then(|| Arc::new(TokenCache::new(config.cache.max_entries)));
    let metrics = AuthMetrics::register(&prometheus::Registry::new(), None).unwrap();
    Verifier::new(config, keys, cache, metrics)
}

fn check(v: &Verifier, token: &str) -> Result<(Identity, Admission), Failure> {
    let value = HeaderValue::try_from(format!("Bearer {token}")).unwrap();
    v.check(Some(&value), &[], unix_now())
}

#[test]
fn accepts_a_good_rs256_token_and_caches_it() {
    let v = verifier(&config());
    let token = sign(
        Algorithm::RS256,
        Some("rsa1"),
        &claims("alice"),
        &rsa_private(),
    );
    let (identity, admission) = check(&v, &token).unwrap();
    assert_eq!(&*identity.subject, "alice");
    assert!(!identity.is_service);
    assert_eq!(admission, Admission::Verified);
    assert_eq!(v.cache().unwrap().len(), 1);
    assert_eq!(check(&v, &token).unwrap().0, identity);
}

#[test]
fn refuses_what_fails_verification() {
    let v = verifier(&config());
    let rsa = rsa_private();
    let other =
        EncodingKey::from_rsa_pem(&std::fs::read(fixture("test-rsa2-private.pem")).unwrap())
            .unwrap();
    let now = unix_now();
    let cases: Vec<(String, Failure)> = vec![
        (
            sign(Algorithm::RS256, Some("rsa1"), &claims("a"), &other),
            Failure::BadSignature,
        ),
        (
            sign(Algorithm::RS256, Some("nope"), &claims("a"), &rsa),
            Failure::UnknownKey,
        ),
        (
            sign(Algorithm::RS384, Some("rsa1"), &claims("a"), &rsa),
            Failure::AlgorithmNotAllowed,
        ),
        (
            sign(
                Algorithm::HS256,
                Some("rsa1"),
                &claims("a"),
                &EncodingKey::from_secret(b"unit-test-secret").unwrap(),
            ),
            Failure::AlgorithmKeyMismatch,
        ),
        (
            sign(
                Algorithm::RS256,
                Some("rsa1"),
                &json!({"sub": "a", "exp": now - 120, "iss": "https://iss", "aud": "kms"}),
                &rsa,
            ),
            Failure::Expired,
        ),
        (
            sign(
                Algorithm::RS256,
                Some("rsa1"),
                &json!({"sub": "a", "iss": "https://iss", "aud": "kms"}),
                &rsa,
            ),
            Failure::MissingExp,
        ),
        (
            sign(
                Algorithm::RS256,
                Some("rsa1"),
                &json!({"sub": "a", "exp": now + 600, "nbf": now + 300, "iss": "https://iss", "aud": "kms"}),
                &rsa,
            ),
            Failure::NotYetValid,
        ),
        (
            sign(
                Algorithm::RS256,
                Some("rsa1"),
                &json!({"sub": "a", "exp": now + 600, "iss": "https://evil", "aud": "kms"}),
                &rsa,
            ),
            Failure::WrongIssuer,
        ),
        (
            sign(
                Algorithm::RS256,
                Some("rsa1"),
                &json!({"sub": "a", "exp": now + 600, "aud": "kms"}),
                &rsa,
            ),
            Failure::WrongIssuer,
        ),
        (
            sign(
                Algorithm::RS256,
                Some("rsa1"),
                &json!({"sub": "a", "exp": now + 600, "iss": "https://iss", "aud": ["x", "y"]}),
                &rsa,
            ),
            Failure::WrongAudience,
        ),
    ];
    for (token, expected) in cases {
        assert_eq!(check(&v, &token).unwrap_err(), expected);
    }
    assert!(v.cache().unwrap().is_empty());
}

#[test]
fn leeway_applies_to_exp() {
    let v = verifier(&config());
    let token = sign(
        Algorithm::RS256,
        Some("rsa1"),
        &json!({"sub": "a", "exp": unix_now() - 10, "iss": "https://iss", "aud": "kms"}),
        &rsa_private(),
    );
    check(&v, &token).unwrap();
    assert!(
        v.cache().unwrap().is_empty(),
        "a token past its exp is never cached"
    );
}

#[test]
fn alg_none_is_refused() {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let v = verifier(&config());
    let body = b64(&claims("a").to_string());
    for header in [
        r#"{"alg":"none"}"#,
        r#"{"alg":"None","kid":"rsa1"}"#,
        r#"{}"#,
    ] {
        let token = format!("{}.{body}.", b64(header));
        assert_eq!(check(&v, &token).unwrap_err(), Failure::AlgorithmNotAllowed);
    }
}

#[test]
fn hmac_with_kidless_fallback_and_service_claim() {
    let mut c = config();
    c.hmac_keys[0].kid = None;
    c.audiences.clear();
    c.issuers.clear();
    let v = verifier(&c);
    let key = EncodingKey::from_secret(b"unit-test-secret").unwrap();
    let svc = json!({"sub": "ServiceId-1", "exp": unix_now() + 60, "sub_type": "ServiceId", "aud": "anything"});
    let (id, _) = check(&v, &sign(Algorithm::HS256, Some("whatever"), &svc, &key)).unwrap();
    assert!(id.is_service);
    let wrong = EncodingKey::from_secret(b"wrong").unwrap();
    assert_eq!(
        check(&v, &sign(Algorithm::HS256, Some("whatever"), &svc, &wrong)).unwrap_err(),
        Failure::UnknownKey,
        "an unknown kid that no kid-less key verifies is an unknown key"
    );
    assert_eq!(
        check(&v, &sign(Algorithm::HS256, None, &svc, &wrong)).unwrap_err(),
        Failure::BadSignature
    );
}

#[test]
fn decode_only_reads_the_subject_without_verifying() {
    let mut c = config();
    c.mode = Mode::DecodeOnly;
    let v = verifier(&c);
    let wrong = EncodingKey::from_secret(b"anything").unwrap();
    let token = sign(Algorithm::HS512, None, &json!({"sub": "bob"}), &wrong);
    let (id, admission) = check(&v, &token).unwrap();
    assert_eq!(&*id.subject, "bob");
    assert_eq!(admission, Admission::Decoded);
    assert_eq!(check(&v, "a.b").unwrap_err(), Failure::NotJwt);
}

#[test]
fn fetched_keys_are_used_with_their_jwk_alg() {
    let c = AuthConfig {
        pem_keys: Vec::new(),
        ..config()
    };
    let v = verifier(&c);
    let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&rsa_private(), Algorithm::RS256).unwrap();
    let mut jwk = jwk;
    jwk.common.key_id = Some("fetched".into());
    let (fetched, skipped) = keys::from_jwk_set(&jsonwebtoken::jwk::JwkSet { keys: vec![jwk] });
    assert_eq!((fetched.len(), skipped), (1, 0));
    let token = sign(
        Algorithm::RS256,
        Some("fetched"),
        &claims("carol"),
        &rsa_private(),
    );
    let value = HeaderValue::try_from(format!("Bearer {token}")).unwrap();
    assert_eq!(
        v.check(Some(&value), &[], unix_now()).unwrap_err(),
        Failure::UnknownKey
    );
    let (id, _) = v.check(Some(&value), &fetched, unix_now()).unwrap();
    assert_eq!(&*id.subject, "carol");
}

#[test]
fn cache_off_verifies_every_time() {
    let mut c = config();
    c.cache.enabled = false;
    let v = verifier(&c);
    let token = sign(
        Algorithm::RS256,
        Some("rsa1"),
        &claims("alice"),
        &rsa_private(),
    );
    check(&v, &token).unwrap();
    check(&v, &token).unwrap();
    assert!(v.cache().is_none());
}
