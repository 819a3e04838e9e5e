//! Key material parsed once, when a key is loaded, and the signature check over it.
//!
//! A verification used to go through `jsonwebtoken::decode`, which rebuilt the RSA or EC public
//! key from its DER or JWK components (and set up its Montgomery context) on every call. Here
//! each key is parsed into aws-lc's `ParsedPublicKey` (or an `hmac::Key`) once per algorithm it
//! may verify, and a token's signature is checked against that.

use aws_lc_rs::hmac;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ED25519, ParsedPublicKey,
    RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_2048_8192_SHA384, RSA_PKCS1_2048_8192_SHA512,
    RSA_PSS_2048_8192_SHA256, RSA_PSS_2048_8192_SHA384, RSA_PSS_2048_8192_SHA512, RsaParameters,
    RsaPublicKeyComponents,
};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind};

/// The RSA algorithms, each verified with its own parsed copy of an RSA key.
const RSA_ALGORITHMS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// The HMAC algorithms, each with its own `hmac::Key` for a secret.
const HMAC_ALGORITHMS: [Algorithm; 3] = [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];

/// The aws-lc parameters for an RSA algorithm: the ones jsonwebtoken 12 used (PKCS#1 v1.5 or
/// PSS with the digest's salt length, 2048–8192-bit moduli).
fn rsa_parameters(alg: Algorithm) -> Option<&'static RsaParameters> {
    Some(match alg {
        Algorithm::RS256 => &RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

fn hmac_digest(alg: Algorithm) -> Option<hmac::Algorithm> {
    Some(match alg {
        Algorithm::HS256 => hmac::HMAC_SHA256,
        Algorithm::HS384 => hmac::HMAC_SHA384,
        Algorithm::HS512 => hmac::HMAC_SHA512,
        _ => return None,
    })
}

/// A key's material, ready to verify signatures: one parsed key per algorithm of its family
/// that it can verify. `Debug` shows the family and algorithms, never key material.
#[derive(Clone)]
pub struct Material {
    family: AlgorithmFamily,
    verifiers: Box<[(Algorithm, Verifier)]>,
}

#[derive(Clone)]
enum Verifier {
    Public(ParsedPublicKey),
    Hmac(Box<hmac::Key>),
}

impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let algorithms: Vec<Algorithm> = self.verifiers.iter().map(|(a, _)| *a).collect();
        f.debug_struct("Material")
            .field("family", &self.family)
            .field("algorithms", &algorithms)
            .finish()
    }
}

impl Material {
    /// Parses the material of a jsonwebtoken key (from PEM, a JWK or a secret). `None` when
    /// aws-lc rejects it: not a public key of its family (a private key, say), malformed JWK
    /// components, an EC point on neither P-256 nor P-384, an empty secret.
    ///
    /// An RSA key is parsed for RS256/384/512 and PS256/384/512 (aws-lc checks the
    /// 2048–8192-bit modulus range when verifying), an EC key for the one of ES256/ES384 that
    /// its curve allows, an Ed25519 key for EdDSA, a secret for HS256/384/512.
    pub fn new(key: &DecodingKey) -> Option<Material> {
        let family = key.family();
        let verifiers: Vec<(Algorithm, Verifier)> = match (family, key.kind()) {
            (AlgorithmFamily::Hmac, DecodingKeyKind::SecretOrDer(secret)) if !secret.is_empty() => {
                each(&HMAC_ALGORITHMS, |alg| {
                    Some(Verifier::Hmac(Box::new(hmac::Key::new(
                        hmac_digest(alg)?,
                        secret,
                    ))))
                })?
            }
            (AlgorithmFamily::Rsa, DecodingKeyKind::SecretOrDer(pkcs1_or_spki)) => {
                each(&RSA_ALGORITHMS, |alg| {
                    ParsedPublicKey::new(rsa_parameters(alg)?, pkcs1_or_spki).ok()
                })?
            }
            (AlgorithmFamily::Rsa, DecodingKeyKind::RsaModulusExponent { n, e }) => {
                let components = RsaPublicKeyComponents {
                    n: without_leading_zeros(n),
                    e: without_leading_zeros(e),
                };
                each(&RSA_ALGORITHMS, |alg| {
                    components.to_parsed_public_key(rsa_parameters(alg)?).ok()
                })?
            }
            (AlgorithmFamily::Ec, DecodingKeyKind::SecretOrDer(point_or_spki)) => {
                // The curve decides the one algorithm the key can verify.
                match ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point_or_spki) {
                    Ok(key) => vec![(Algorithm::ES256, Verifier::Public(key))],
                    Err(_) => vec![(
                        Algorithm::ES384,
                        Verifier::Public(
                            ParsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, point_or_spki).ok()?,
                        ),
                    )],
                }
            }
            (AlgorithmFamily::Ed, DecodingKeyKind::SecretOrDer(raw_or_spki)) => vec![(
                Algorithm::EdDSA,
                Verifier::Public(ParsedPublicKey::new(&ED25519, raw_or_spki).ok()?),
            )],
            _ => return None,
        };
        Some(Material {
            family,
            verifiers: verifiers.into_boxed_slice(),
        })
    }

    /// The algorithm family the key belongs to.
    pub fn family(&self) -> AlgorithmFamily {
        self.family
    }

    /// True when `signature` is a valid `alg` signature of `message` under this key. An
    /// algorithm the key cannot verify (ES384 with a P-256 key, say) verifies nothing. HMAC
    /// tags are compared in constant time.
    pub fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        match self.verifiers.iter().find(|(a, _)| *a == alg) {
            Some((_, Verifier::Public(key))) => key.verify_sig(message, signature).is_ok(),
            Some((_, Verifier::Hmac(key))) => hmac::verify(key, message, signature).is_ok(),
            None => false,
        }
    }
}

/// One verifier per algorithm in `algorithms`, or `None` when any cannot be made.
fn each<V: Into<Verifier>>(
    algorithms: &[Algorithm],
    make: impl Fn(Algorithm) -> Option<V>,
) -> Option<Vec<(Algorithm, Verifier)>> {
    algorithms
        .iter()
        .map(|alg| Some((*alg, make(*alg)?.into())))
        .collect()
}

impl From<ParsedPublicKey> for Verifier {
    fn from(key: ParsedPublicKey) -> Verifier {
        Verifier::Public(key)
    }
}

/// A big-endian JWK integer (`n`, `e`) without the leading zero bytes aws-lc refuses in RSA
/// components. RFC 7518 forbids them, but the integer is the same with or without.
fn without_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

#[cfg(test)]
mod tests;
