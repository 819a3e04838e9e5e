//! The registered claims of a token in verify mode (`exp`, `nbf`, `iss`, `aud`): read from the
//! payload in the same pass as `sub` ([`super::token::parse`]), checked against `[auth]`.
//!
//! The checks are the ones `jsonwebtoken::decode` made with the `Validation` the gateway gave it
//! (jsonwebtoken 12: `exp` required and checked, `nbf` checked when present, `iss` / `aud`
//! required and checked when configured, `leeway` on both times), including how it read
//! malformed claims, so every token gets the same [`Failure`] as before. Only the order in
//! which missing required claims are reported is now fixed: `exp`, then `iss`, then `aud`
//! (jsonwebtoken's followed a `HashSet`).

use std::cell::Cell;
use std::fmt;

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::config::AuthConfig;
use super::outcome::Failure;

/// A NumericDate claim (`exp`, `nbf`) as jsonwebtoken 12 read it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NumericDate {
    /// Not in the payload.
    #[default]
    Absent,
    /// Present but not a number jsonwebtoken accepted (negative, too large, a string, `null`).
    Malformed,
    /// Seconds since the epoch (a fractional value is rounded).
    At(u64),
}

impl NumericDate {
    /// The claim's value read from JSON: an unsigned integer, or a finite float in
    /// `0..2^64` (rounded); anything else is malformed.
    pub fn of(value: &Value) -> NumericDate {
        match value {
            Value::Number(n) => match (n.as_u64(), n.as_f64()) {
                (Some(u), _) if !n.is_f64() => NumericDate::At(u),
                (_, Some(f)) if n.is_f64() => NumericDate::of_f64(f),
                _ => NumericDate::Malformed,
            },
            _ => NumericDate::Malformed,
        }
    }

    fn of_f64(f: f64) -> NumericDate {
        if f.is_finite() && f >= 0.0 && f < u64::MAX as f64 {
            NumericDate::At(f.round() as u64)
        } else {
            NumericDate::Malformed
        }
    }
}

/// The registered claims of a payload, and whether jsonwebtoken could read the payload at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registered {
    /// `exp`.
    pub exp: NumericDate,
    /// `nbf`.
    pub nbf: NumericDate,
    /// `iss`: a string, or an array of strings; `None` when absent, `null` or anything else.
    pub iss: Option<Box<[String]>>,
    /// `aud`: a string, or an array of strings; `None` when absent, `null` or anything else.
    pub aud: Option<Box<[String]>>,
    /// False when jsonwebtoken refused the payload outright (a verified token is then
    /// `InvalidToken`): a registered claim (`exp`, `nbf`, `sub`, `iss`, `aud`) given twice,
    /// characters after the object, or `exp` / `nbf` a non-empty array or object.
    pub readable: bool,
}

impl Default for Registered {
    fn default() -> Self {
        Registered {
            exp: NumericDate::Absent,
            nbf: NumericDate::Absent,
            iss: None,
            aud: None,
            readable: true,
        }
    }
}

/// `iss` / `aud` from an already parsed value (the service claim can be one of them).
pub fn strings_of(value: &Value) -> Option<Box<[String]>> {
    match value {
        Value::String(s) => Some(Box::new([s.clone()])),
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => None,
    }
}

/// `exp` / `nbf` from an already parsed value: the date, and whether jsonwebtoken could still
/// read the payload. It could not when the value is a non-empty array or object: it gave up on
/// the value without reading its elements, and tripped over them.
pub fn date_of(value: &Value) -> (NumericDate, bool) {
    let readable = match value {
        Value::Array(items) => items.is_empty(),
        Value::Object(fields) => fields.is_empty(),
        _ => true,
    };
    (NumericDate::of(value), readable)
}

/// Reads `nbf` the way jsonwebtoken did, without failing the payload: what [`date_of`] tells
/// from a parsed value. A value it cannot read sets `swallowed`: the caller then checks that
/// the whole payload is JSON (an error here may also be a syntax error, after which the object
/// parse would go on from the middle of the broken value).
pub struct NumericDateSeed<'a> {
    /// Set when a read error was swallowed.
    pub swallowed: &'a Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for NumericDateSeed<'_> {
    type Value = (NumericDate, bool);
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(NumericDate, bool), D::Error> {
        // A string that is not valid UTF-8 fails before the visitor sees it, but is consumed.
        Ok(d.deserialize_any(NumericDateVisitor).unwrap_or_else(|_| {
            self.swallowed.set(true);
            (NumericDate::Malformed, true)
        }))
    }
}

struct NumericDateVisitor;

impl<'de> Visitor<'de> for NumericDateVisitor {
    type Value = (NumericDate, bool);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a NumericDate")
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok((NumericDate::At(v), true))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok((NumericDate::Malformed, true))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok((NumericDate::of_f64(v), true))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok((NumericDate::Malformed, true))
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok((NumericDate::Malformed, true))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok((NumericDate::Malformed, true))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut empty = true;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            empty = false;
        }
        Ok((NumericDate::Malformed, empty))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut empty = true;
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {
            empty = false;
        }
        Ok((NumericDate::Malformed, empty))
    }
}

/// Reads `iss` / `aud` the way jsonwebtoken did (a string or an array of strings; anything
/// else, including a value it cannot read, is `None`), without failing the payload. A value it
/// cannot read sets `swallowed`, as [`NumericDateSeed`] does.
pub struct StringsSeed<'a> {
    /// Set when a read error was swallowed.
    pub swallowed: &'a Cell<bool>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl<'de> DeserializeSeed<'de> for StringsSeed<'_> {
    type Value = Option<Box<[String]>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        Ok(match Option::<OneOrMany>::deserialize(d) {
            Ok(Some(OneOrMany::One(s))) => Some(Box::new([s])),
            Ok(Some(OneOrMany::Many(v))) => Some(v.into_boxed_slice()),
            Ok(None) => None,
            Err(_) => {
                self.swallowed.set(true);
                None
            }
        })
    }
}

/// The claim checks `[auth]` asks for.
#[derive(Clone, Debug)]
pub struct ClaimRules {
    leeway: u64,
    issuers: Box<[Box<str>]>,
    audiences: Box<[Box<str>]>,
}

impl ClaimRules {
    /// The rules of `config`: `leeway`, `issuers`, `audiences`.
    pub fn new(config: &AuthConfig) -> ClaimRules {
        let strs = |v: &[String]| v.iter().map(|s| s.as_str().into()).collect();
        ClaimRules {
            leeway: config.leeway.as_secs(),
            issuers: strs(&config.issuers),
            audiences: strs(&config.audiences),
        }
    }

    /// Checks the claims of a token whose signature has been verified, at Unix time `now`.
    pub fn check(&self, claims: &Registered, now: u64) -> Result<(), Failure> {
        if !claims.readable {
            return Err(Failure::InvalidToken);
        }
        let NumericDate::At(exp) = claims.exp else {
            return Err(Failure::MissingExp);
        };
        if !self.issuers.is_empty() && claims.iss.is_none() {
            return Err(Failure::WrongIssuer);
        }
        if !self.audiences.is_empty() && claims.aud.is_none() {
            return Err(Failure::WrongAudience);
        }
        if claims.nbf == NumericDate::Malformed {
            return Err(Failure::InvalidToken);
        }
        if exp < now.saturating_sub(self.leeway) {
            return Err(Failure::Expired);
        }
        if let NumericDate::At(nbf) = claims.nbf
            && nbf > now.saturating_add(self.leeway)
        {
            return Err(Failure::NotYetValid);
        }
        if !any_in(claims.iss.as_deref(), &self.issuers) {
            return Err(Failure::WrongIssuer);
        }
        if !any_in(claims.aud.as_deref(), &self.audiences) {
            return Err(Failure::WrongAudience);
        }
        Ok(())
    }
}

/// True when nothing is accepted-listed, or one of `values` is in `accepted`.
fn any_in(values: Option<&[String]>, accepted: &[Box<str>]) -> bool {
    accepted.is_empty()
        || values.is_some_and(|values| values.iter().any(|v| accepted.iter().any(|a| **a == **v)))
}

#[cfg(test)]
mod tests;
