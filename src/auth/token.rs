//! Reading a bearer token: the `Authorization` header, and the JWT's header and payload
//! (without verifying anything). Everything here that fails is a malformed request (400).

use std::borrow::Cow;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderValue;
use serde::Deserialize;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};

use super::outcome::Failure;

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
pub fn bearer(value: Option<&HeaderValue>) -> Result<&str, Failure> {
    let value = value.ok_or(Failure::MissingHeader)?;
    let value = value.to_str().map_err(|_| Failure::NotBearer)?.trim();
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Failure::NotBearer);
    }
    let token = token.trim_start();
    if token.is_empty() {
        return Err(Failure::EmptyToken);
    }
    Ok(token)
}

/// Which claim, with which values, marks a service caller.
#[derive(Clone, Debug)]
pub struct ServiceRule {
    /// The claim name, e.g. `sub_type`.
    pub claim: Box<str>,
    /// The values that mean "service", e.g. `ServiceId`.
    pub values: Box<[Box<str>]>,
}

/// What the gateway reads from a token before (or instead of) verifying it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unverified {
    /// The header's `alg`, as written.
    pub alg: Option<String>,
    /// The header's `kid`.
    pub kid: Option<String>,
    /// The payload's `sub`.
    pub subject: String,
    /// The payload's `exp`, when it is a number.
    pub exp: Option<u64>,
    /// Whether the service claim holds a service value.
    pub is_service: bool,
}

#[derive(Deserialize)]
struct HeaderFields<'a> {
    #[serde(borrow, default)]
    alg: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    kid: Option<Cow<'a, str>>,
}

/// Splits and decodes a compact JWT: three base64url parts, a JSON object header and a JSON
/// object payload with a string `sub`.
pub fn parse(token: &str, service: &ServiceRule) -> Result<Unverified, Failure> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Failure::NotJwt);
    };
    if !signature
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Failure::NotJwt);
    }
    let header = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| Failure::NotJwt)?;
    let header: HeaderFields<'_> = serde_json::from_slice(&header).map_err(|_| Failure::NotJwt)?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| Failure::NotJwt)?;
    let claims = PayloadSeed { service }
        .deserialize(&mut serde_json::Deserializer::from_slice(&payload))
        .map_err(|_| Failure::NotJwt)?;
    let subject = claims.sub.ok_or(Failure::NoSubject)?;
    Ok(Unverified {
        alg: header.alg.map(Cow::into_owned),
        kid: header.kid.map(Cow::into_owned),
        subject,
        exp: claims.exp,
        is_service: claims.is_service,
    })
}

struct Claims {
    sub: Option<String>,
    exp: Option<u64>,
    is_service: bool,
}

/// Reads a payload object in one pass, keeping only `sub`, `exp` and the service claim.
struct PayloadSeed<'r> {
    service: &'r ServiceRule,
}

impl<'de> DeserializeSeed<'de> for PayloadSeed<'_> {
    type Value = Claims;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Claims, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for PayloadSeed<'_> {
    type Value = Claims;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JWT claims object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Claims, A::Error> {
        let mut claims = Claims {
            sub: None,
            exp: None,
            is_service: false,
        };
        let fields = FieldSeed {
            service_claim: &self.service.claim,
        };
        while let Some(field) = map.next_key_seed(fields)? {
            match field {
                Field::Sub => {
                    claims.sub = match map.next_value::<serde_json::Value>()? {
                        serde_json::Value::String(s) => Some(s),
                        _ => None,
                    };
                }
                Field::Exp => {
                    claims.exp = match map.next_value::<serde_json::Value>()? {
                        serde_json::Value::Number(n) => n
                            .as_u64()
                            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
                        _ => None,
                    };
                }
                Field::Service => {
                    let value = map.next_value::<serde_json::Value>()?;
                    let matches = |v: &serde_json::Value| {
                        v.as_str()
                            .is_some_and(|s| self.service.values.iter().any(|x| **x == *s))
                    };
                    claims.is_service = match &value {
                        serde_json::Value::Array(items) => items.iter().any(matches),
                        other => matches(other),
                    };
                }
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(claims)
    }
}

/// The payload keys the gateway reads; any other key is skipped without allocating.
#[derive(Clone, Copy)]
enum Field {
    Sub,
    Exp,
    Service,
    Other,
}

#[derive(Clone, Copy)]
struct FieldSeed<'r> {
    service_claim: &'r str,
}

impl<'de> DeserializeSeed<'de> for FieldSeed<'_> {
    type Value = Field;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Field, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for FieldSeed<'_> {
    type Value = Field;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a claim name")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Field, E> {
        Ok(match key {
            "sub" => Field::Sub,
            "exp" => Field::Exp,
            k if k == self.service_claim => Field::Service,
            _ => Field::Other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    fn rule() -> ServiceRule {
        ServiceRule {
            claim: "sub_type".into(),
            values: vec!["ServiceId".into()].into_boxed_slice(),
        }
    }

    fn jwt(header: &str, payload: &str) -> String {
        format!("{}.{}.c2ln", b64(header), b64(payload))
    }

    #[test]
    fn bearer_header_forms() {
        let h = |s: &'static str| HeaderValue::from_static(s);
        assert_eq!(bearer(None), Err(Failure::MissingHeader));
        assert_eq!(bearer(Some(&h("Basic abc"))), Err(Failure::NotBearer));
        assert_eq!(bearer(Some(&h("Bearer"))), Err(Failure::EmptyToken));
        assert_eq!(bearer(Some(&h("Bearer   "))), Err(Failure::EmptyToken));
        assert_eq!(bearer(Some(&h("bearer a.b.c"))), Ok("a.b.c"));
        assert_eq!(bearer(Some(&h("BEARER  a.b.c "))), Ok("a.b.c"));
        assert_eq!(
            bearer(Some(&HeaderValue::from_bytes(b"Bearer \xff").unwrap())),
            Err(Failure::NotBearer)
        );
    }

    #[test]
    fn parses_subject_kid_exp_and_service() {
        let t = jwt(
            r#"{"alg":"RS256","kid":"k1","typ":"JWT"}"#,
            r#"{"iss":"x","sub":"ServiceId-1","exp":1700000000,"sub_type":"ServiceId","n":{"a":[1]}}"#,
        );
        let u = parse(&t, &rule()).unwrap();
        assert_eq!(u.alg.as_deref(), Some("RS256"));
        assert_eq!(u.kid.as_deref(), Some("k1"));
        assert_eq!(u.subject, "ServiceId-1");
        assert_eq!(u.exp, Some(1_700_000_000));
        assert!(u.is_service);
        let t = jwt(
            r#"{"alg":"RS256"}"#,
            r#"{"sub":"alice","sub_type":["User","Other"]}"#,
        );
        assert!(!parse(&t, &rule()).unwrap().is_service);
        let t = jwt(
            r#"{"alg":"RS256"}"#,
            r#"{"sub":"svc","sub_type":["User","ServiceId"]}"#,
        );
        assert!(parse(&t, &rule()).unwrap().is_service);
    }

    #[test]
    fn malformed_tokens() {
        let r = rule();
        assert_eq!(parse("abc", &r), Err(Failure::NotJwt));
        assert_eq!(parse("a.b", &r), Err(Failure::NotJwt));
        assert_eq!(parse("a.b.c.d", &r), Err(Failure::NotJwt));
        assert_eq!(parse("!!.b.c", &r), Err(Failure::NotJwt));
        let not_json = format!("{}.{}.sig", b64("nope"), b64(r#"{"sub":"a"}"#));
        assert_eq!(parse(&not_json, &r), Err(Failure::NotJwt));
        let array = jwt(r#"{"alg":"HS256"}"#, r#"["sub"]"#);
        assert_eq!(parse(&array, &r), Err(Failure::NotJwt));
        let bad_sig = format!(
            "{}.{}.a+b",
            b64(r#"{"alg":"HS256"}"#),
            b64(r#"{"sub":"a"}"#)
        );
        assert_eq!(parse(&bad_sig, &r), Err(Failure::NotJwt));
        let no_sub = jwt(r#"{"alg":"HS256"}"#, r#"{"exp":1}"#);
        assert_eq!(parse(&no_sub, &r), Err(Failure::NoSubject));
        let num_sub = jwt(r#"{"alg":"HS256"}"#, r#"{"sub":42}"#);
        assert_eq!(parse(&num_sub, &r), Err(Failure::NoSubject));
        // `alg: none` with an empty signature is well-formed: verification refuses it (401).
        let none = format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(r#"{"sub":"a"}"#));
        assert_eq!(parse(&none, &r).unwrap().alg.as_deref(), Some("none"));
    }
}
