//! Reading a bearer token: the `Authorization` header, and the JWT's header and payload
//! (without verifying anything). Everything here that fails is a malformed request (400).

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderValue;
use serde::Deserialize;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};

use super::claims::{self, NumericDateSeed, Registered, StringsSeed};
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
    /// The registered claims, for the checks of verify mode.
    pub claims: Registered,
    /// The decoded header JSON, for [`header_accepted`].
    pub header: Vec<u8>,
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
    let header_json = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| Failure::NotJwt)?;
    let header: HeaderFields<'_> =
        serde_json::from_slice(&header_json).map_err(|_| Failure::NotJwt)?;
    let (alg, kid) = (
        header.alg.map(Cow::into_owned),
        header.kid.map(Cow::into_owned),
    );
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| Failure::NotJwt)?;
    let mut de = serde_json::Deserializer::from_slice(&payload);
    let swallowed = Cell::new(false);
    let mut claims = PayloadSeed {
        service,
        swallowed: &swallowed,
    }
    .deserialize(&mut de)
    .map_err(|_| Failure::NotJwt)?;
    // A claim value that could not be read may hide a syntax error the object parse stepped
    // over: then the payload must still be JSON as every reader reads it (found by fuzzing).
    // Only the first value: what follows it is judged below, as for every payload.
    if swallowed.get()
        && IgnoredAny::deserialize(&mut serde_json::Deserializer::from_slice(&payload)).is_err()
    {
        return Err(Failure::NotJwt);
    }
    // Characters after the object: jsonwebtoken refused such a payload (a 401 once verified).
    claims.registered.readable &= de.end().is_ok();
    let subject = claims.sub.ok_or(Failure::NoSubject)?;
    Ok(Unverified {
        alg,
        kid,
        subject,
        exp: claims.exp,
        is_service: claims.is_service,
        claims: claims.registered,
        header: header_json,
    })
}

/// Whether jsonwebtoken 12 accepted this header (a token's decoded first part) in a token it
/// verified; if not, the token is `InvalidToken`. Its `Header` type decides the field types
/// (`typ`, `cty`, `x5c`, `jwk`, …), then its rules on `b64` (a boolean, never `false`) and
/// `crit` (only `["b64"]`, with `b64` present).
pub fn header_accepted(json: &[u8]) -> bool {
    let Ok(header) = serde_json::from_slice::<jsonwebtoken::Header>(json) else {
        return false;
    };
    let Ok(b64) = header.extras.get::<bool>("b64") else {
        return false;
    };
    match (b64, header.crit.as_deref()) {
        (Some(false), _) => false,
        (_, None) => true,
        (b64, Some(crit)) => b64.is_some() && crit.len() == 1 && crit[0] == "b64",
    }
}

struct Claims {
    sub: Option<String>,
    /// `exp` for the cache: an integer, or a non-negative float cut to whole seconds.
    exp: Option<u64>,
    is_service: bool,
    registered: Registered,
}

/// Reads a payload object in one pass, keeping only `sub`, `exp`, the service claim and the
/// other registered claims (`nbf`, `iss`, `aud`).
struct PayloadSeed<'r> {
    service: &'r ServiceRule,
    swallowed: &'r Cell<bool>,
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
            registered: Registered::default(),
        };
        let fields = FieldSeed {
            service_claim: &self.service.claim,
        };
        let mut seen = [false; 5];
        while let Some(field) = map.next_key_seed(fields)? {
            if let Some(claim) = field.registered() {
                // jsonwebtoken refused a payload that repeats a registered claim.
                let seen = &mut seen[claim as usize];
                claims.registered.readable &= !*seen;
                *seen = true;
            }
            match field {
                Field::Sub => {
                    claims.sub = match map.next_value::<serde_json::Value>()? {
                        serde_json::Value::String(s) => Some(s),
                        _ => None,
                    };
                }
                Field::Exp => {
                    let value = map.next_value::<serde_json::Value>()?;
                    claims.exp = match &value {
                        serde_json::Value::Number(n) => n
                            .as_u64()
                            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
                        _ => None,
                    };
                    let (exp, readable) = claims::date_of(&value);
                    claims.registered.exp = exp;
                    claims.registered.readable &= readable;
                }
                Field::Service(also) => {
                    let value = map.next_value::<serde_json::Value>()?;
                    let matches = |v: &serde_json::Value| {
                        v.as_str()
                            .is_some_and(|s| self.service.values.iter().any(|x| **x == *s))
                    };
                    claims.is_service = match &value {
                        serde_json::Value::Array(items) => items.iter().any(matches),
                        other => matches(other),
                    };
                    let registered = &mut claims.registered;
                    match also {
                        Some(Claim::Nbf) => {
                            let (nbf, readable) = claims::date_of(&value);
                            registered.nbf = nbf;
                            registered.readable &= readable;
                        }
                        Some(Claim::Iss) => registered.iss = claims::strings_of(&value),
                        Some(Claim::Aud) => registered.aud = claims::strings_of(&value),
                        Some(Claim::Sub | Claim::Exp) | None => {}
                    }
                }
                Field::Nbf => {
                    let (nbf, readable) = map.next_value_seed(NumericDateSeed {
                        swallowed: self.swallowed,
                    })?;
                    claims.registered.nbf = nbf;
                    claims.registered.readable &= readable;
                }
                Field::Iss => {
                    claims.registered.iss = map.next_value_seed(StringsSeed {
                        swallowed: self.swallowed,
                    })?;
                }
                Field::Aud => {
                    claims.registered.aud = map.next_value_seed(StringsSeed {
                        swallowed: self.swallowed,
                    })?;
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
    /// The service claim, which may also be one of the registered claims after `exp`.
    Service(Option<Claim>),
    Nbf,
    Iss,
    Aud,
    Other,
}

/// The claims jsonwebtoken read for its checks (a payload naming one twice was refused).
#[derive(Clone, Copy)]
enum Claim {
    Sub,
    Exp,
    Nbf,
    Iss,
    Aud,
}

impl Claim {
    fn named(key: &str) -> Option<Claim> {
        Some(match key {
            "sub" => Claim::Sub,
            "exp" => Claim::Exp,
            "nbf" => Claim::Nbf,
            "iss" => Claim::Iss,
            "aud" => Claim::Aud,
            _ => return None,
        })
    }
}

impl Field {
    fn registered(self) -> Option<Claim> {
        match self {
            Field::Sub => Some(Claim::Sub),
            Field::Exp => Some(Claim::Exp),
            Field::Service(also) => also,
            Field::Nbf => Some(Claim::Nbf),
            Field::Iss => Some(Claim::Iss),
            Field::Aud => Some(Claim::Aud),
            Field::Other => None,
        }
    }
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
        Ok(match Claim::named(key) {
            Some(Claim::Sub) => Field::Sub,
            Some(Claim::Exp) => Field::Exp,
            claim if key == self.service_claim => Field::Service(claim),
            Some(Claim::Nbf) => Field::Nbf,
            Some(Claim::Iss) => Field::Iss,
            Some(Claim::Aud) => Field::Aud,
            None => Field::Other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::claims::NumericDate;

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

    /// Found by fuzzing: a claim value the tolerant readers could not read hid a syntax error,
    /// and the object parse went on from the middle of the broken value.
    #[test]
    fn a_payload_that_is_not_json_is_refused_even_behind_a_tolerated_claim() {
        let header = r#"{"alg":"RS256"}"#;
        for payload in [
            "{\"sub\":\"a\",\"iss\":\"\u{1}}",
            r#"{"sub":"a","nbf":[,,"b":1}"#,
            r#"{"sub":"a","aud":[1,"x"}"#,
            r#"{"nbf":[,,"b":1}"#,
        ] {
            assert_eq!(
                parse(&jwt(header, payload), &rule()).map(|_| ()),
                Err(Failure::NotJwt),
                "{payload:?}"
            );
        }
        // Unreadable but well-formed values are still tolerated, as before; trailing data is
        // judged the same whether or not a value was unreadable (not JWT-readable: a 401 once
        // verified, never a parse failure).
        for payload in [
            r#"{"sub":"a","iss":1} x"#,
            r#"{"sub":"a","iss":"i"} x"#,
            r#"{"sub":"a","nbf":"soon","iss":7,"aud":[1,2]}"#,
            r#"{"sub":"a","iss":{"x":1}}"#,
        ] {
            assert!(parse(&jwt(header, payload), &rule()).is_ok(), "{payload:?}");
        }
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
    fn reads_the_registered_claims_in_the_same_pass() {
        let t = jwt(
            r#"{"alg":"RS256"}"#,
            r#"{"sub":"a","exp":10.6,"nbf":5,"iss":"i","aud":["x","y"],"other":{"exp":[1]}}"#,
        );
        let u = parse(&t, &rule()).unwrap();
        assert_eq!(u.exp, Some(10), "the cache's exp is cut to whole seconds");
        assert_eq!(
            u.claims.exp,
            NumericDate::At(11),
            "the checked exp is rounded"
        );
        assert_eq!(u.claims.nbf, NumericDate::At(5));
        assert_eq!(u.claims.iss.as_deref(), Some(&["i".to_owned()][..]));
        assert_eq!(u.claims.aud.as_deref().map(<[String]>::len), Some(2));
        assert!(u.claims.readable);
        assert_eq!(u.header, br#"{"alg":"RS256"}"#);
        let service_is_iss = ServiceRule {
            claim: "iss".into(),
            values: vec!["i".into()].into_boxed_slice(),
        };
        let u = parse(&t, &service_is_iss).unwrap();
        assert!(u.is_service);
        assert_eq!(u.claims.iss.as_deref(), Some(&["i".to_owned()][..]));
    }

    #[test]
    fn payloads_jsonwebtoken_refused_still_parse_but_are_unreadable() {
        for payload in [
            r#"{"sub":"a","sub":"b"}"#,
            r#"{"sub":"a","aud":"x","aud":"y"}"#,
            r#"{"sub":"a","exp":[1]}"#,
            r#"{"sub":"a","nbf":{"a":1}}"#,
            r#"{"sub":"a"} x"#,
        ] {
            let u = parse(&jwt(r#"{"alg":"HS256"}"#, payload), &rule()).unwrap();
            assert!(!u.claims.readable, "{payload}");
        }
        for payload in [
            r#"{"sub":"a","exp":[],"nbf":{}} "#,
            r#"{"sub":"a","n":[1]}"#,
        ] {
            let u = parse(&jwt(r#"{"alg":"HS256"}"#, payload), &rule()).unwrap();
            assert!(u.claims.readable, "{payload}");
        }
    }

    #[test]
    fn headers_jsonwebtoken_refused() {
        assert!(header_accepted(br#"{"alg":"RS256","typ":"JWT","kid":"k"}"#));
        assert!(header_accepted(
            br#"{"alg":"RS256","crit":["b64"],"b64":true}"#
        ));
        for refused in [
            &br#"{"alg":"RS256","typ":1}"#[..],
            br#"{"alg":"RS256","b64":false}"#,
            br#"{"alg":"RS256","crit":["b64"]}"#,
            br#"{"alg":"RS256","crit":["exp"],"b64":true}"#,
            br#"{"alg":"RS256","crit":[]}"#,
            br#"{"alg":"nope"}"#,
            br#"not json"#,
        ] {
            assert!(
                !header_accepted(refused),
                "{}",
                String::from_utf8_lossy(refused)
            );
        }
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
