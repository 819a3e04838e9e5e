//! The dev KMS's cryptography: key material, AES-GCM wrap and unwrap (aws-lc-rs), the
//! ciphertext format, and randomness (ids, DEKs, nonces).
//!
//! A wrapped DEK is, like Key Protect's, base64 of a small JSON blob:
//! `{"ciphertext": b64(sealed DEK ‖ tag), "iv": b64(12-byte nonce), "version": "devkms-1",
//! "handle": <key version id>}`. The handle names the key version that sealed it, so ciphertext
//! made before a rotation can still be opened. The AEAD's associated data binds the handle and
//! the caller's `aad` strings (length-prefixed, so `["ab","c"]` and `["a","bc"]` differ).

use std::fmt;

use aws_lc_rs::aead::{
    AES_128_GCM, AES_192_GCM, AES_256_GCM, Aad, Algorithm, LessSafeKey, NONCE_LEN, Nonce,
    UnboundKey,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

/// Length of a generated root key or DEK: 256 bits.
pub(crate) const GENERATED_LEN: usize = 32;

/// The `version` of the ciphertext blob this dev KMS writes and reads.
const FORMAT: &str = "devkms-1";

/// `n` random bytes from the system RNG.
pub(crate) fn random_bytes(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    // aws-lc-rs only fails here when the operating system's RNG is unusable; nothing sensible
    // can be done without randomness.
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random number generator failed");
    bytes
}

/// A random (version 4) UUID in its usual lower-case text form.
pub(crate) fn uuid_v4() -> String {
    let mut b = random_bytes(16);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut text = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            text.push('-');
        }
        text.push_str(&format!("{byte:02x}"));
    }
    text
}

/// Secret bytes: a key version's material or a standard key's payload. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

impl Secret {
    /// Wraps bytes the caller supplied (an import) or generated.
    pub(crate) fn new(bytes: Vec<u8>) -> Self {
        Secret(bytes)
    }

    /// 256 fresh random bits.
    pub(crate) fn generate() -> Self {
        Secret(random_bytes(GENERATED_LEN))
    }

    /// The bytes.
    pub(crate) fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The AES-GCM variant for root-key material of this length (128, 192 or 256 bits).
    fn algorithm(&self) -> Option<&'static Algorithm> {
        match self.0.len() {
            16 => Some(&AES_128_GCM),
            24 => Some(&AES_192_GCM),
            32 => Some(&AES_256_GCM),
            _ => None,
        }
    }

    /// True when this can be a root key's material (16, 24 or 32 bytes).
    pub(crate) fn is_root_material(&self) -> bool {
        self.algorithm().is_some()
    }

    fn aead_key(&self) -> Result<LessSafeKey, CryptoError> {
        let algorithm = self.algorithm().ok_or(CryptoError::Unprocessable)?;
        let key = UnboundKey::new(algorithm, &self.0).map_err(|_| CryptoError::Unprocessable)?;
        Ok(LessSafeKey::new(key))
    }
}

/// Opens an import's `encryptedNonce`: AES-GCM with the imported key material as the key and
/// `iv` (12 bytes) as the nonce, no associated data (what Key Protect's clients seal). `None`
/// when it does not authenticate.
pub(crate) fn open_nonce(material: &Secret, iv: &[u8], encrypted: &[u8]) -> Option<Vec<u8>> {
    let key = material.aead_key().ok()?;
    let nonce = Nonce::try_assume_unique_for_key(iv).ok()?;
    let mut data = encrypted.to_vec();
    let plain = key.open_in_place(nonce, Aad::empty(), &mut data).ok()?;
    Some(plain.to_vec())
}

/// The RSA key pair of an import token: the public key is handed out (PEM, base64), the private
/// key opens the key material an import sends (RSA-OAEP).
pub(crate) struct ImportKeyPair {
    private: aws_lc_rs::rsa::PrivateDecryptingKey,
    public_pem: String,
}

impl fmt::Debug for ImportKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ImportKeyPair(..)")
    }
}

/// The OAEP variants an import names in `encryptionAlgorithm`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Oaep {
    /// `RSAES_OAEP_SHA_256` (the default).
    Sha256,
    /// `RSAES_OAEP_SHA_1`.
    Sha1,
}

impl ImportKeyPair {
    /// A fresh 4096-bit key pair (Key Protect's size).
    pub(crate) fn generate() -> Self {
        use aws_lc_rs::encoding::AsDer;
        let private =
            aws_lc_rs::rsa::PrivateDecryptingKey::generate(aws_lc_rs::rsa::KeySize::Rsa4096)
                .expect("RSA key generation does not fail");
        let der = private
            .public_key()
            .as_der()
            .expect("an RSA public key has a DER form");
        let body = B64.encode(der.as_ref());
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for line in body.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----\n");
        ImportKeyPair {
            private,
            public_pem: pem,
        }
    }

    /// The public key as an import token's `payload`: the PEM (PKIX), base64-encoded.
    pub(crate) fn public_key_payload(&self) -> String {
        B64.encode(self.public_pem.as_bytes())
    }

    /// Opens RSA-OAEP `ciphertext`; `None` when it was not sealed with this key pair.
    pub(crate) fn decrypt(&self, oaep: Oaep, ciphertext: &[u8]) -> Option<Secret> {
        use aws_lc_rs::rsa::{
            OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey,
        };
        let key = OaepPrivateDecryptingKey::new(self.private.clone()).ok()?;
        let algorithm = match oaep {
            Oaep::Sha256 => &OAEP_SHA256_MGF1SHA256,
            Oaep::Sha1 => &OAEP_SHA1_MGF1SHA1,
        };
        let mut out = vec![0u8; key.min_output_size()];
        let plain = key.decrypt(algorithm, ciphertext, &mut out, None).ok()?;
        Some(Secret::new(plain.to_vec()))
    }
}

/// Why a ciphertext could not be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CryptoError {
    /// The `ciphertext` field is not base64 at all.
    NotBase64,
    /// Base64, but not a blob of this KMS, or it does not authenticate (wrong key, wrong
    /// version, changed bytes, different `aad`).
    Unprocessable,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Blob {
    ciphertext: String,
    iv: String,
    version: String,
    handle: String,
}

/// Seals `plaintext` with `material` under the key version `handle`, binding `aad`.
pub(crate) fn seal(material: &Secret, handle: &str, plaintext: &[u8], aad: &[String]) -> String {
    let key = material
        .aead_key()
        .expect("root key material is 128, 192 or 256 bits");
    let iv = random_bytes(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(&iv).expect("the nonce is NONCE_LEN bytes");
    let mut data = plaintext.to_vec();
    key.seal_in_place_append_tag(nonce, Aad::from(associated_data(handle, aad)), &mut data)
        .expect("AES-GCM sealing of a small buffer cannot fail");
    let blob = Blob {
        ciphertext: B64.encode(&data),
        iv: B64.encode(&iv),
        version: FORMAT.to_owned(),
        handle: handle.to_owned(),
    };
    B64.encode(serde_json::to_vec(&blob).unwrap_or_default())
}

/// A ciphertext from [`seal`], parsed but not yet opened.
#[derive(Debug)]
pub(crate) struct Sealed {
    handle: String,
    iv: [u8; NONCE_LEN],
    data: Vec<u8>,
}

impl Sealed {
    /// Parses the `ciphertext` field of an unwrap or rewrap request.
    pub(crate) fn parse(text: &str) -> Result<Sealed, CryptoError> {
        let raw = B64.decode(text).map_err(|_| CryptoError::NotBase64)?;
        let blob: Blob = serde_json::from_slice(&raw).map_err(|_| CryptoError::Unprocessable)?;
        if blob.version != FORMAT {
            return Err(CryptoError::Unprocessable);
        }
        let iv = B64
            .decode(&blob.iv)
            .ok()
            .and_then(|iv| <[u8; NONCE_LEN]>::try_from(iv).ok())
            .ok_or(CryptoError::Unprocessable)?;
        let data = B64
            .decode(&blob.ciphertext)
            .map_err(|_| CryptoError::Unprocessable)?;
        Ok(Sealed {
            handle: blob.handle,
            iv,
            data,
        })
    }

    /// The id of the key version that sealed this ciphertext.
    pub(crate) fn handle(&self) -> &str {
        &self.handle
    }

    /// Opens the ciphertext with the material of the version [`handle`](Self::handle) names.
    pub(crate) fn open(self, material: &Secret, aad: &[String]) -> Result<Vec<u8>, CryptoError> {
        let key = material.aead_key()?;
        let nonce = Nonce::assume_unique_for_key(self.iv);
        let mut data = self.data;
        let len = key
            .open_in_place(
                nonce,
                Aad::from(associated_data(&self.handle, aad)),
                &mut data,
            )
            .map_err(|_| CryptoError::Unprocessable)?
            .len();
        data.truncate(len);
        Ok(data)
    }
}

/// The AEAD associated data: the key version id and each `aad` string, each length-prefixed.
fn associated_data(handle: &str, aad: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in std::iter::once(handle).chain(aad.iter().map(String::as_str)) {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aad(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn wrap_unwrap_round_trip_for_every_material_size() {
        for len in [16, 24, 32] {
            let material = Secret::new(random_bytes(len));
            let dek = random_bytes(32);
            let ciphertext = seal(&material, "v1", &dek, &aad(&["ctx", "more"]));
            let sealed = Sealed::parse(&ciphertext).unwrap();
            assert_eq!(sealed.handle(), "v1");
            assert_eq!(sealed.open(&material, &aad(&["ctx", "more"])).unwrap(), dek);
        }
    }

    #[test]
    fn every_wrap_uses_a_fresh_nonce() {
        let material = Secret::generate();
        let a = seal(&material, "v1", b"same dek", &[]);
        let b = seal(&material, "v1", b"same dek", &[]);
        assert_ne!(a, b);
    }

    #[test]
    fn aad_mismatch_is_unprocessable() {
        let material = Secret::generate();
        let ciphertext = seal(&material, "v1", b"dek", &aad(&["ab", "c"]));
        for wrong in [
            aad(&[]),
            aad(&["ab"]),
            aad(&["a", "bc"]),
            aad(&["ab", "c", ""]),
        ] {
            let sealed = Sealed::parse(&ciphertext).unwrap();
            assert_eq!(
                sealed.open(&material, &wrong),
                Err(CryptoError::Unprocessable),
                "{wrong:?}"
            );
        }
    }

    #[test]
    fn old_version_material_still_opens_its_ciphertext() {
        // A rotation adds a version; the ciphertext names the version it was sealed under.
        let old = Secret::generate();
        let new = Secret::generate();
        let ciphertext = seal(&old, "version-1", b"dek", &[]);
        let sealed = Sealed::parse(&ciphertext).unwrap();
        assert_eq!(sealed.handle(), "version-1");
        assert_eq!(
            Sealed::parse(&ciphertext).unwrap().open(&new, &[]),
            Err(CryptoError::Unprocessable)
        );
        assert_eq!(sealed.open(&old, &[]).unwrap(), b"dek");
    }

    #[test]
    fn a_moved_handle_does_not_authenticate() {
        let material = Secret::generate();
        let ciphertext = seal(&material, "v1", b"dek", &[]);
        let mut blob: Blob = serde_json::from_slice(&B64.decode(&ciphertext).unwrap()).unwrap();
        blob.handle = "v2".to_owned();
        let forged = B64.encode(serde_json::to_vec(&blob).unwrap());
        let sealed = Sealed::parse(&forged).unwrap();
        assert_eq!(sealed.open(&material, &[]), Err(CryptoError::Unprocessable));
    }

    #[test]
    fn garbage_is_classified() {
        assert_eq!(
            Sealed::parse("not base64!").unwrap_err(),
            CryptoError::NotBase64
        );
        assert_eq!(
            Sealed::parse(&B64.encode(b"{\"x\":1}")).unwrap_err(),
            CryptoError::Unprocessable
        );
        let material = Secret::generate();
        let ciphertext = seal(&material, "v1", b"dek", &[]);
        let mut blob: Blob = serde_json::from_slice(&B64.decode(&ciphertext).unwrap()).unwrap();
        let mut sealed = B64.decode(&blob.ciphertext).unwrap();
        sealed[0] ^= 1;
        blob.ciphertext = B64.encode(sealed);
        let tampered = B64.encode(serde_json::to_vec(&blob).unwrap());
        let result = Sealed::parse(&tampered).and_then(|s| s.open(&material, &[]));
        assert_eq!(result, Err(CryptoError::Unprocessable));
    }

    #[test]
    fn uuids_are_version_4() {
        let id = uuid_v4();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(id, uuid_v4());
    }

    #[test]
    fn secrets_are_not_printed() {
        assert_eq!(
            format!("{:?}", Secret::new(vec![1, 2, 3])),
            "Secret(3 bytes)"
        );
    }
}
