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
    let metrics = AuthMetrics::register(&prometheus::Registry::new(), None);
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

// === The same decisions as jsonwebtoken::decode ===
//
// Until this verifier checked signatures and claims itself, `check` ended in
// `jsonwebtoken::decode` with the `Validation` below and mapped its errors with `classify`. The
// oracle runs that path; the tests feed both the same tokens, well-formed and odd.

use aws_lc_rs::hmac;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{DecodingKey, Validation};
use serde::de::IgnoredAny;

const SECRET: &[u8] = b"differential-secret";

/// The claim checks the verifier used to give jsonwebtoken for tokens signed with `alg`.
fn validation(config: &AuthConfig, alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.leeway = config.leeway.as_secs();
    v.validate_exp = true;
    v.validate_nbf = true;
    let mut required = vec!["exp"];
    if !config.issuers.is_empty() {
        v.set_issuer(&config.issuers);
        required.push("iss");
    }
    if config.audiences.is_empty() {
        v.validate_aud = false;
    } else {
        v.set_audience(&config.audiences);
        required.push("aud");
    }
    v.set_required_spec_claims(&required);
    v
}

/// How the verifier used to map a jsonwebtoken error; `None`: this key did not verify it.
fn classify(kind: &ErrorKind) -> Option<Failure> {
    Some(match kind {
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => return None,
        ErrorKind::ExpiredSignature => Failure::Expired,
        ErrorKind::ImmatureSignature => Failure::NotYetValid,
        ErrorKind::InvalidIssuer => Failure::WrongIssuer,
        ErrorKind::InvalidAudience => Failure::WrongAudience,
        ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
            "exp" => Failure::MissingExp,
            "iss" => Failure::WrongIssuer,
            "aud" => Failure::WrongAudience,
            _ => Failure::InvalidToken,
        },
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::InvalidAlgorithmName => Failure::AlgorithmNotAllowed,
        _ => Failure::InvalidToken,
    })
}

/// The old decision for a verifier with one kid-less `key`.
fn oracle(config: &AuthConfig, token: &str, key: &DecodingKey) -> Result<(), Failure> {
    let service = ServiceRule {
        claim: config.service_claim.as_str().into(),
        values: Box::new([]),
    };
    let unverified = token::parse(token, &service)?;
    let alg: Algorithm = unverified
        .alg
        .as_deref()
        .and_then(|a| a.parse().ok())
        .filter(|a| config.algorithms.contains(a))
        .ok_or(Failure::AlgorithmNotAllowed)?;
    if alg.family() != key.family() {
        return Err(Failure::UnknownKey);
    }
    match jsonwebtoken::decode::<IgnoredAny>(token, key, &validation(config, alg)) {
        Ok(_) => Ok(()),
        Err(e) => Err(classify(e.kind()).unwrap_or(Failure::BadSignature)),
    }
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A token with exactly this header and payload text, its HMAC computed with `digest`.
fn hmac_token(digest: hmac::Algorithm, header: &str, payload: &str) -> String {
    let signed = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let tag = hmac::sign(&hmac::Key::new(digest, SECRET), signed.as_bytes());
    format!("{signed}.{}", b64(tag.as_ref()))
}

fn hmac_config(claims: bool) -> AuthConfig {
    AuthConfig {
        enabled: true,
        algorithms: vec![Algorithm::HS256, Algorithm::HS384, Algorithm::RS256],
        issuers: if claims {
            vec!["https://iss".into()]
        } else {
            Vec::new()
        },
        audiences: if claims {
            vec!["kms".into()]
        } else {
            Vec::new()
        },
        pem_keys: Vec::new(),
        hmac_keys: vec![HmacKeyConfig {
            secret_env: Some("KMSGATE_TEST_DIFFERENTIAL_SECRET".into()),
            ..Default::default()
        }],
        cache: crate::auth::CacheConfig {
            enabled: false,
            max_entries: 1,
        },
        ..Default::default()
    }
}

/// The verifier for [`hmac_config`], with [`SECRET`] as its one (kid-less) key.
fn hmac_verifier(config: &AuthConfig) -> Verifier {
    let secret = DecodingKey::from_secret(SECRET).unwrap();
    let key = Key::new(
        None,
        crate::auth::signature::Material::new(&secret).unwrap(),
    );
    let metrics = AuthMetrics::register(&prometheus::Registry::new(), None);
    Verifier::new(config, vec![key], None, metrics)
}

/// Payloads that each differ from a good one in one way (so at most one required claim is
/// missing: jsonwebtoken reported missing ones in `HashSet` order).
fn payloads(now: u64) -> Vec<String> {
    let good = |exp: &str, rest: &str| {
        format!(r#"{{"sub":"a","exp":{exp},"iss":"https://iss","aud":"kms"{rest}}}"#)
    };
    let exp_ok = (now + 600).to_string();
    let mut out = vec![good(&exp_ok, "")];
    // Values jsonwebtoken read oddly as a NumericDate, for `exp` and for `nbf`.
    let odd = [
        "null",
        "true",
        "\"x\"",
        "[]",
        "[ ]",
        "[1]",
        "{}",
        r#"{"a":[1]}"#,
        "-5",
        "-0",
        "-1.5",
        "1e30",
        "18446744073709551615",
        "1.8446744073709552e19",
        "0.0",
        "1e3",
        "1.5",
    ];
    let times = |deltas: [i64; 3]| deltas.map(|d| now.saturating_add_signed(d).to_string());
    for exp in times([-120, -10, 600]).into_iter().chain([
        format!("{}.5", now + 600),
        format!("{}.4", now - 120),
        format!("{}.0", now - 61),
        format!("\"{}\"", now + 600),
        format!("[{}]", now + 600),
    ]) {
        out.push(good(&exp, ""));
    }
    for nbf in times([300, 30, -100])
        .into_iter()
        .chain([format!("{}.5", now + 300)])
    {
        out.push(good(&exp_ok, &format!(r#","nbf":{nbf}"#)));
    }
    for value in odd {
        out.push(good(value, ""));
        out.push(good(&exp_ok, &format!(r#","nbf":{value}"#)));
    }
    out.push(r#"{"sub":"a","iss":"https://iss","aud":"kms"}"#.into());
    out.push(good(&exp_ok, &format!(r#","exp":{exp_ok}"#)));
    out.push(good(&exp_ok, r#","nbf":1,"nbf":2"#));
    for (claim, values) in [("iss", "https://iss"), ("aud", "kms")] {
        for v in [
            "\"other\"".to_owned(),
            format!(r#"["{values}","x"]"#),
            r#"["x","y"]"#.into(),
            "[]".into(),
            format!(r#"["{values}",1]"#),
            format!(r#"[["{values}"]]"#),
            "null".into(),
            "5".into(),
            r#"{"a":1}"#.into(),
        ] {
            // Replaces the good value (JSON objects keep the last of repeated keys only when
            // asked; jsonwebtoken refused repeats, so the good payload is rebuilt instead).
            let payload = match claim {
                "iss" => format!(r#"{{"sub":"a","exp":{exp_ok},"iss":{v},"aud":"kms"}}"#),
                _ => format!(r#"{{"sub":"a","exp":{exp_ok},"iss":"https://iss","aud":{v}}}"#),
            };
            out.push(payload);
        }
        out.push(good(&exp_ok, &format!(r#","{claim}":"{values}""#)));
    }
    out.push(format!(r#"{{"sub":"a","exp":{exp_ok},"aud":"kms"}}"#));
    out.push(format!(
        r#"{{"sub":"a","exp":{exp_ok},"iss":"https://iss"}}"#
    ));
    out.push(good(&exp_ok, r#","sub":"b""#));
    out.push(format!(
        r#"{{"exp":{exp_ok},"iss":"https://iss","aud":"kms"}}"#
    ));
    out.push(good(
        &exp_ok,
        r#","sub_type":"ServiceId","x":{"y":[1,{"z":null}]},"n":-1e300"#,
    ));
    out.push(format!(
        r#"{{"\u0073ub":"a","\u0065xp":{exp_ok},"iss":"https:\/\/iss","aud":["kms"]}}"#
    ));
    out.push(format!("{}  \n", good(&exp_ok, "")));
    out.push(format!("{}x", good(&exp_ok, "")));
    out.push(format!("{}{{}}", good(&exp_ok, "")));
    out
}

const HEADERS: &[&str] = &[
    r#"{"alg":"HS256","typ":"JWT"}"#,
    r#"{"alg":"HS256"}"#,
    r#"{"typ":"JWT","alg":"HS384"}"#,
    r#"{"alg":"HS256","typ":5}"#,
    r#"{"alg":"HS256","typ":null}"#,
    r#"{"alg":"HS256","cty":["x"]}"#,
    r#"{"alg":"HS256","x5c":["a","b"]}"#,
    r#"{"alg":"HS256","x5c":[1]}"#,
    r#"{"alg":"HS256","crit":["b64"],"b64":true}"#,
    r#"{"alg":"HS256","crit":["b64"]}"#,
    r#"{"alg":"HS256","crit":[]}"#,
    r#"{"alg":"HS256","crit":"b64","b64":true}"#,
    r#"{"alg":"HS256","crit":["exp"],"b64":true}"#,
    r#"{"alg":"HS256","crit":["b64","b64"],"b64":true}"#,
    r#"{"alg":"HS256","b64":false}"#,
    r#"{"alg":"HS256","b64":null}"#,
    r#"{"alg":"HS256","b64":"yes"}"#,
    r#"{"alg":"HS256","b64":true}"#,
    r#"{"alg":"HS256","b64":true,"b64":false}"#,
    r#"{"alg":"HS256","jwk":{}}"#,
    r#"{"alg":"HS256","jwk":{"kty":"oct","k":"c2VjcmV0"}}"#,
    r#"{"alg":"HS256","typ":"JWT","typ":"JWT"}"#,
    r#"{"alg":"HS256","enc":"A128GCM","zip":"DEF","custom":{"a":[1]}}"#,
    r#"{"alg":"HS256","zip":1}"#,
    r#"{"alg":"HS256","x5t#S256":"a","nonce":"n","url":"u","jku":"j","x5u":"x","x5t":"t"}"#,
    r#"["HS256"]"#,
    r#"{"alg":"RS256"}"#,
    r#"{"alg":"none"}"#,
];

fn digest_for(header: &str) -> hmac::Algorithm {
    if header.contains("HS384") {
        hmac::HMAC_SHA384
    } else {
        hmac::HMAC_SHA256
    }
}

#[test]
fn decides_like_jsonwebtoken_on_odd_headers_payloads_and_signatures() {
    let decoding = DecodingKey::from_secret(SECRET).unwrap();
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for claims in [true, false] {
        let config = hmac_config(claims);
        let v = hmac_verifier(&config);
        let now = unix_now();
        let mut tokens: Vec<String> = Vec::new();
        for header in HEADERS {
            for payload in payloads(now) {
                tokens.push(hmac_token(digest_for(header), header, &payload));
            }
        }
        let good = hmac_token(hmac::HMAC_SHA256, HEADERS[0], &payloads(now)[0]);
        let (signed, sig) = good.rsplit_once('.').unwrap();
        let mut last_char_flipped = sig.to_owned();
        last_char_flipped.pop();
        // 32 bytes end in a character carrying 4 bits; 'B' sets one of the 2 unused ones.
        last_char_flipped.push('B');
        tokens.extend([
            format!("{signed}."),
            format!("{signed}.{sig}="),
            format!("{signed}.{sig}A"),
            format!("{signed}.{sig}AA"),
            format!("{signed}.{last_char_flipped}"),
            format!("{signed}.{}", &sig[..sig.len() - 4]),
            hmac_token(hmac::HMAC_SHA384, HEADERS[0], &payloads(now)[0]),
        ]);
        for token in &tokens {
            let old = oracle(&config, token, &decoding);
            let value = HeaderValue::try_from(format!("Bearer {token}")).unwrap();
            let new = v.check(Some(&value), &[], now).map(|_| ());
            assert_eq!(new, old, "claims configured: {claims}; token {token}");
            *seen.entry(format!("{old:?}")).or_default() += 1;
        }
    }
    for outcome in [
        "Ok(())",
        "Err(NotJwt)",
        "Err(NoSubject)",
        "Err(AlgorithmNotAllowed)",
        "Err(UnknownKey)",
        "Err(BadSignature)",
        "Err(InvalidToken)",
        "Err(MissingExp)",
        "Err(Expired)",
        "Err(NotYetValid)",
        "Err(WrongIssuer)",
        "Err(WrongAudience)",
    ] {
        assert!(
            seen.contains_key(outcome),
            "{outcome} never decided: {seen:?}"
        );
    }
}

#[test]
fn pss_eddsa_and_ecdsa_verify_and_a_tampered_payload_does_not() {
    let c = AuthConfig {
        algorithms: vec![Algorithm::PS256, Algorithm::EdDSA, Algorithm::ES256],
        pem_keys: [
            "test-rsa-public.pem",
            "test-ed25519-public.pem",
            "test-ec-public.pem",
        ]
        .into_iter()
        .map(|name| PemKeyConfig {
            kid: None,
            file: fixture(name),
        })
        .collect(),
        hmac_keys: Vec::new(),
        ..config()
    };
    let v = verifier(&c);
    let private = |name: &str| std::fs::read(fixture(name)).unwrap();
    let signers = [
        (Algorithm::PS256, rsa_private()),
        (
            Algorithm::EdDSA,
            EncodingKey::from_ed_pem(&private("test-ed25519-private.pem")).unwrap(),
        ),
        (
            Algorithm::ES256,
            EncodingKey::from_ec_pem(&private("test-ec-private.pem")).unwrap(),
        ),
    ];
    for (alg, key) in &signers {
        let token = sign(*alg, None, &claims("dana"), key);
        let (id, _) = check(&v, &token).unwrap_or_else(|e| panic!("{alg:?}: {e:?}"));
        assert_eq!(&*id.subject, "dana");
        let forged = sign(*alg, None, &claims("root"), key);
        let (forged_header_payload, _) = forged.rsplit_once('.').unwrap();
        let (_, signature) = token.rsplit_once('.').unwrap();
        assert_eq!(
            check(&v, &format!("{forged_header_payload}.{signature}")).unwrap_err(),
            Failure::BadSignature,
            "{alg:?}: another payload under the same signature"
        );
    }
    // An RS256 token finds no key: the RSA key is kid-less, RS256 is not allowed.
    let rs = sign(Algorithm::RS256, None, &claims("a"), &rsa_private());
    assert_eq!(check(&v, &rs).unwrap_err(), Failure::AlgorithmNotAllowed);
}

#[test]
fn a_pem_file_that_is_not_a_public_key_is_a_config_error_naming_it() {
    let c = AuthConfig {
        pem_keys: vec![PemKeyConfig {
            kid: None,
            file: fixture("test-rsa-private.pem"),
        }],
        ..config()
    };
    let err = keys::load_static(&c).unwrap_err().to_string();
    assert!(err.contains("auth.pem_keys[0].file"), "{err}");
    assert!(err.contains("test-rsa-private.pem"), "{err}");
}
