//! Target `token`: the bearer token reader, `kmsgate::auth::token::{bearer, parse,
//! header_accepted}` and the claim checks `kmsgate::auth::claims::ClaimRules::check`.
//!
//! Input: an `Authorization` header value (`Bearer <jwt>`) or a bare compact JWT; both are
//! tried.
//!
//! Invariants: no panic; `bearer` returns a non-empty, trimmed part of the header; and
//! `token::parse`, which reads the payload in one streaming pass, agrees with a plain reference
//! reading of the same token (base64url parts, the payload parsed by serde_json as a list of
//! entries, the registered claims through `claims::date_of` / `claims::strings_of`): same
//! success or failure, same subject, `exp`, service flag and registered claims. In particular,
//! a payload that is not JSON is never accepted.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderValue;
use kmsgate::auth::claims::{ClaimRules, Registered, date_of, strings_of};
use kmsgate::auth::config::AuthConfig;
use kmsgate::auth::outcome::Failure;
use kmsgate::auth::token::{ServiceRule, Unverified, bearer, header_accepted, parse};
use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

/// Runs the target on one input.
pub fn fuzz(data: &[u8]) {
    if let Ok(value) = HeaderValue::from_bytes(data) {
        if let Ok(token) = bearer(Some(&value)) {
            assert!(!token.is_empty());
            assert_eq!(token, token.trim());
            check_token(token);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        check_token(text);
    }
}

fn rules() -> [ServiceRule; 2] {
    let rule = |claim: &str, value: &str| ServiceRule {
        claim: claim.into(),
        values: vec![value.into()].into_boxed_slice(),
    };
    // IBM IAM's rule, and one whose claim is also a registered claim.
    [rule("sub_type", "ServiceId"), rule("iss", "svc")]
}

fn check_token(token: &str) {
    let claim_rules = {
        let plain = ClaimRules::new(&AuthConfig::default());
        let strict = ClaimRules::new(&AuthConfig {
            issuers: vec!["https://iam.cloud.ibm.com/identity".into()],
            audiences: vec!["kms".into()],
            leeway: Duration::from_secs(60),
            ..AuthConfig::default()
        });
        [plain, strict]
    };
    for rule in rules() {
        let got = parse(token, &rule);
        let want = reference(token, &rule);
        match (&got, &want) {
            (Ok(u), Ok(r)) => {
                assert_eq!(u.subject, r.subject, "sub of {token}");
                assert_eq!(u.exp, r.exp, "exp of {token}");
                assert_eq!(u.is_service, r.is_service, "service flag of {token}");
                assert_eq!(u.claims, r.claims, "registered claims of {token}");
                assert_eq!(u.header, r.header, "header of {token}");
                let _ = header_accepted(&u.header);
                for rules in &claim_rules {
                    for now in [0, 1_700_000_000, u64::MAX] {
                        let _ = rules.check(&u.claims, now);
                    }
                }
            }
            // The one intended difference: `nbf`, `iss` and `aud` values that are well-formed
            // JSON but unreadable as values (invalid UTF-8 in a string, a number out of range)
            // are tolerated as jsonwebtoken tolerated them; the reference's full parse refuses.
            (_, Err(Failure::NotJwt)) if tolerated_unreadable(token) => {}
            (Err(a), Err(b)) => assert_eq!(a, b, "failure of {token}"),
            _ => panic!(
                "token::parse and the reference disagree on {token:?}:\n parse: {}\n reference: {}",
                show(&got),
                show(&want)
            ),
        }
    }
}

/// True when the payload is syntactically one JSON value (strings and numbers scanned, not
/// decoded) that carries a tolerated claim.
fn tolerated_unreadable(token: &str) -> bool {
    let Some(payload) = token
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
    else {
        return false;
    };
    let mut de = serde_json::Deserializer::from_slice(&payload);
    serde::de::IgnoredAny::deserialize(&mut de).is_ok()
        && ["\"nbf\"", "\"iss\"", "\"aud\""]
            .iter()
            .any(|k| payload.windows(k.len()).any(|w| w == k.as_bytes()))
}

fn show(r: &Result<Unverified, Failure>) -> String {
    match r {
        Ok(u) => format!("Ok(sub={:?}, claims={:?})", u.subject, u.claims),
        Err(f) => format!("Err({f:?})"),
    }
}

/// The fields of a JWT header the gateway reads.
#[derive(Deserialize)]
struct HeaderFields<'a> {
    #[serde(borrow, default)]
    alg: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    kid: Option<Cow<'a, str>>,
}

/// The reading a token should get, from a full parse of each part.
fn reference(token: &str, rule: &ServiceRule) -> Result<Unverified, Failure> {
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, signature] = parts[..] else {
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
    let fields: HeaderFields<'_> =
        serde_json::from_slice(&header_json).map_err(|_| Failure::NotJwt)?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| Failure::NotJwt)?;
    let mut de = serde_json::Deserializer::from_slice(&payload);
    let read = ["sub", "exp", "nbf", "iss", "aud", &rule.claim];
    let Entries(entries) = EntriesSeed { read: &read }
        .deserialize(&mut de)
        .map_err(|_| Failure::NotJwt)?;
    let trailing_ok = de.end().is_ok();

    let registered = ["sub", "exp", "nbf", "iss", "aud"];
    let mut claims = Registered::default();
    claims.readable = trailing_ok;
    let mut counts = [0usize; 5];
    let mut sub = None;
    let mut exp = None;
    let mut is_service = false;
    let service_matches = |v: &Value| {
        let one = |v: &Value| {
            v.as_str()
                .is_some_and(|s| rule.values.iter().any(|x| **x == *s))
        };
        match v {
            Value::Array(items) => items.iter().any(one),
            other => one(other),
        }
    };
    for (key, value) in &entries {
        if let Some(i) = registered.iter().position(|r| r == key) {
            counts[i] += 1;
        }
        match key.as_str() {
            "sub" => sub = value.as_str().map(str::to_owned),
            "exp" => {
                exp = match value {
                    Value::Number(n) => n
                        .as_u64()
                        .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
                    _ => None,
                };
                let (date, readable) = date_of(value);
                claims.exp = date;
                claims.readable &= readable;
            }
            k => {
                if k == &*rule.claim {
                    is_service = service_matches(value);
                }
                match k {
                    "nbf" => {
                        let (date, readable) = date_of(value);
                        claims.nbf = date;
                        claims.readable &= readable;
                    }
                    "iss" => claims.iss = strings_of(value),
                    "aud" => claims.aud = strings_of(value),
                    _ => {}
                }
            }
        }
    }
    claims.readable &= counts.iter().all(|&n| n <= 1);
    let subject = sub.ok_or(Failure::NoSubject)?;
    Ok(Unverified {
        alg: fields.alg.map(Cow::into_owned),
        kid: fields.kid.map(Cow::into_owned),
        subject,
        exp,
        is_service,
        claims,
        header: header_json,
    })
}

/// A JSON object as its list of entries, duplicates kept, in order. The values of the claims
/// the gateway reads (`read`) are parsed in full; any other value is skipped as serde_json
/// skips it (which, like jsonwebtoken's reading, does not check the UTF-8 of skipped strings).
struct Entries(Vec<(String, Value)>);

struct EntriesSeed<'r> {
    read: &'r [&'r str],
}

impl<'de> DeserializeSeed<'de> for EntriesSeed<'_> {
    type Value = Entries;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Entries, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EntriesSeed<'_> {
    type Value = Entries;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if self.read.contains(&key.as_str()) {
                let value = map.next_value::<Value>()?;
                entries.push((key, value));
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Entries(entries))
    }
}
