use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use jsonwebtoken::{EncodingKey, Header};

use super::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/auth")
        .join(name);
    std::fs::read(path).unwrap()
}

fn rsa_private() -> EncodingKey {
    EncodingKey::from_rsa_pem(&fixture("test-rsa-private.pem")).unwrap()
}

fn pem_material(name: &str) -> Option<Material> {
    let pem = fixture(name);
    let key = DecodingKey::from_rsa_pem(&pem)
        .or_else(|_| DecodingKey::from_ec_pem(&pem))
        .or_else(|_| DecodingKey::from_ed_pem(&pem))
        .ok()?;
    Material::new(&key)
}

/// A signed token, split into the signed part and the decoded signature.
fn signed(alg: Algorithm, key: &EncodingKey) -> (String, Vec<u8>) {
    let claims = serde_json::json!({"sub": "a", "exp": 4_000_000_000u64});
    let token = jsonwebtoken::encode(&Header::new(alg), &claims, key).unwrap();
    let (message, signature) = token.rsplit_once('.').unwrap();
    (
        message.to_owned(),
        URL_SAFE_NO_PAD.decode(signature).unwrap(),
    )
}

fn verifies(material: &Material, alg: Algorithm, (message, signature): &(String, Vec<u8>)) -> bool {
    material.verify(alg, message.as_bytes(), signature)
}

/// The same token with another payload and the original signature.
fn tampered((message, signature): &(String, Vec<u8>)) -> (String, Vec<u8>) {
    let (header, _) = message.split_once('.').unwrap();
    let payload = URL_SAFE_NO_PAD.encode(br#"{"sub":"admin","exp":4000000000}"#);
    (format!("{header}.{payload}"), signature.clone())
}

fn rsa_jwk() -> Jwk {
    Jwk::from_encoding_key(&rsa_private(), Algorithm::RS256).unwrap()
}

#[test]
fn a_jwk_and_a_pem_of_the_same_rsa_key_verify_the_same_tokens() {
    let from_pem = pem_material("test-rsa-public.pem").unwrap();
    let from_jwk = Material::new(&DecodingKey::from_jwk(&rsa_jwk()).unwrap()).unwrap();
    for alg in RSA_ALGORITHMS {
        let token = signed(alg, &rsa_private());
        assert!(verifies(&from_pem, alg, &token), "{alg:?} with the PEM key");
        assert!(verifies(&from_jwk, alg, &token), "{alg:?} with the JWK key");
        assert!(!verifies(&from_pem, alg, &tampered(&token)), "{alg:?}");
        assert!(!verifies(&from_jwk, alg, &tampered(&token)), "{alg:?}");
    }
    // A PS256 signature is not an RS256 one, and another key's signature verifies nothing.
    let pss = signed(Algorithm::PS256, &rsa_private());
    assert!(!verifies(&from_pem, Algorithm::RS256, &pss));
    let other = EncodingKey::from_rsa_pem(&fixture("test-rsa2-private.pem")).unwrap();
    assert!(!verifies(
        &from_pem,
        Algorithm::RS256,
        &signed(Algorithm::RS256, &other)
    ));
}

#[test]
fn jwk_rsa_components_with_a_leading_zero_are_the_same_key() {
    let mut jwk = rsa_jwk();
    let AlgorithmParameters::RSA(rsa) = &mut jwk.algorithm else {
        panic!("not an RSA JWK");
    };
    let mut n = vec![0];
    n.extend(URL_SAFE_NO_PAD.decode(&rsa.n).unwrap());
    rsa.n = URL_SAFE_NO_PAD.encode(n);
    let material = Material::new(&DecodingKey::from_jwk(&jwk).unwrap()).unwrap();
    let token = signed(Algorithm::RS256, &rsa_private());
    assert!(verifies(&material, Algorithm::RS256, &token));
}

/// The private key of the `test-{stem}-private.pem` fixture, for `alg`.
fn private_key(stem: &str, alg: Algorithm) -> EncodingKey {
    let pem = fixture(&format!("test-{stem}-private.pem"));
    match alg.family() {
        AlgorithmFamily::Ec => EncodingKey::from_ec_pem(&pem).unwrap(),
        AlgorithmFamily::Ed => EncodingKey::from_ed_pem(&pem).unwrap(),
        _ => EncodingKey::from_rsa_pem(&pem).unwrap(),
    }
}

/// The material of the `test-{stem}-public.pem` fixture, of `alg`'s family, and a token signed
/// with its private key: it verifies, a tampered payload does not.
fn one_of_a_family(alg: Algorithm, stem: &str) -> (Material, (String, Vec<u8>)) {
    let material = pem_material(&format!("test-{stem}-public.pem")).unwrap();
    assert_eq!(material.family(), alg.family());
    let token = signed(alg, &private_key(stem, alg));
    assert!(verifies(&material, alg, &token), "{alg:?}");
    assert!(!verifies(&material, alg, &tampered(&token)), "{alg:?}");
    (material, token)
}

#[test]
fn ec_and_ed25519_keys_verify_their_one_algorithm() {
    let (ec, token) = one_of_a_family(Algorithm::ES256, "ec");
    assert!(
        !verifies(&ec, Algorithm::ES384, &token),
        "a P-256 key is not ES384"
    );
    // The same key as a JWK (x, y): an uncompressed point.
    let jwk =
        Jwk::from_encoding_key(&private_key("ec", Algorithm::ES256), Algorithm::ES256).unwrap();
    let from_jwk = Material::new(&DecodingKey::from_jwk(&jwk).unwrap()).unwrap();
    assert!(verifies(&from_jwk, Algorithm::ES256, &token));

    let (_, token) = one_of_a_family(Algorithm::EdDSA, "ed25519");
    // The same key as a JWK's raw 32 bytes (x).
    let spki = DecodingKey::from_ed_pem(&fixture("test-ed25519-public.pem")).unwrap();
    let DecodingKeyKind::SecretOrDer(raw) = spki.kind() else {
        panic!("not raw bytes");
    };
    assert_eq!(raw.len(), 32);
    let from_x = DecodingKey::from_ed_components(&URL_SAFE_NO_PAD.encode(raw)).unwrap();
    assert!(verifies(
        &Material::new(&from_x).unwrap(),
        Algorithm::EdDSA,
        &token
    ));
}

#[test]
fn hmac_needs_the_same_secret_and_algorithm() {
    let material = Material::new(&DecodingKey::from_secret(b"right").unwrap()).unwrap();
    let right = signed(
        Algorithm::HS256,
        &EncodingKey::from_secret(b"right").unwrap(),
    );
    let wrong = signed(
        Algorithm::HS256,
        &EncodingKey::from_secret(b"wrong").unwrap(),
    );
    assert!(verifies(&material, Algorithm::HS256, &right));
    assert!(!verifies(&material, Algorithm::HS256, &wrong));
    assert!(!verifies(&material, Algorithm::HS256, &tampered(&right)));
    assert!(!verifies(&material, Algorithm::HS384, &right));
    let hs512 = signed(
        Algorithm::HS512,
        &EncodingKey::from_secret(b"right").unwrap(),
    );
    assert!(verifies(&material, Algorithm::HS512, &hs512));
    // A truncated tag is not accepted.
    let (message, tag) = &right;
    assert!(!material.verify(Algorithm::HS256, message.as_bytes(), &tag[..16]));
}

#[test]
fn a_key_verifies_nothing_of_another_family() {
    let rsa = pem_material("test-rsa-public.pem").unwrap();
    let hmac = Material::new(&DecodingKey::from_secret(b"s").unwrap()).unwrap();
    let hs = signed(Algorithm::HS256, &EncodingKey::from_secret(b"s").unwrap());
    let rs = signed(Algorithm::RS256, &rsa_private());
    assert!(!verifies(&rsa, Algorithm::HS256, &hs));
    assert!(!verifies(&hmac, Algorithm::RS256, &rs));
    assert!(!verifies(&rsa, Algorithm::EdDSA, &rs));
}

#[test]
fn what_is_not_a_usable_public_key_is_refused_at_load() {
    // Private keys parse as jsonwebtoken keys of their family, but are not public keys.
    assert!(pem_material("test-rsa-private.pem").is_none());
    assert!(pem_material("test-ed25519-private.pem").is_none());
    assert!(Material::new(&DecodingKey::from_rsa_raw_components(&[], &[1, 0, 1])).is_none());
    assert!(Material::new(&DecodingKey::from_ec_der(&[4, 1, 2, 3])).is_none());
    assert!(Material::new(&DecodingKey::from_ed_der(&[0; 31])).is_none());
}

#[test]
fn debug_names_family_and_algorithms_only() {
    let rsa = pem_material("test-rsa-public.pem").unwrap();
    assert_eq!(
        format!("{rsa:?}"),
        "Material { family: Rsa, algorithms: [RS256, RS384, RS512, PS256, PS384, PS512] }"
    );
    let hmac = Material::new(&DecodingKey::from_secret(b"top-secret").unwrap()).unwrap();
    assert_eq!(
        format!("{hmac:?}"),
        "Material { family: Hmac, algorithms: [HS256, HS384, HS512] }"
    );
}
