//! The typed views of the bodies the gateway inspects, decoded the way Key Protect's Go
//! `encoding/json` decodes them: keys match case-insensitively ([`gojson::key_eq`]), `null`
//! leaves a field unset, unknown fields are ignored. Strings are borrowed from the body unless
//! they contain escapes.
//!
//! A field that appears twice in one object, in any spelling, is refused (`duplicate field
//! "resources"`): Go decodes the later value *into* the earlier one — for arrays element by
//! element, so fields of the first array's elements survive (golang/go#21092) — which no
//! "first wins" or "last wins" reading reproduces. Real clients never send duplicates.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, Error, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::gojson;

/// A JSON string, borrowed from the body when it has no escapes.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Str<'a>(pub(super) Cow<'a, str>);

impl Str<'_> {
    pub(super) fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrVisitor;
        impl<'de> Visitor<'de> for StrVisitor {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: Error>(self, v: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: Error>(self, v: &str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: Error>(self, v: String) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(StrVisitor)
    }
}

/// Declares a view struct (every field optional) and its Go-style `Deserialize`. The struct's
/// lifetime is the body's (`'a` in the field types).
macro_rules! go_struct {
    ($(#[$doc:meta])* $name:ident<$a:lifetime> { $( $field:ident: $ty:ty = $key:literal, )+ }) => {
        $(#[$doc])*
        #[derive(Debug, Default)]
        pub(super) struct $name<$a> {
            $( pub(super) $field: Option<$ty>, )+
            _body: std::marker::PhantomData<&$a str>,
        }

        impl<$a> Deserialize<$a> for $name<$a> {
            fn deserialize<D: Deserializer<$a>>(deserializer: D) -> Result<Self, D::Error> {
                struct ObjectVisitor;
                impl<$a> Visitor<$a> for ObjectVisitor {
                    type Value = $name<$a>;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("an object")
                    }
                    // Go: `null` decodes into a struct as "no change".
                    fn visit_unit<E: Error>(self) -> Result<$name<$a>, E> {
                        Ok($name::default())
                    }
                    fn visit_map<M: MapAccess<$a>>(self, mut map: M) -> Result<$name<$a>, M::Error> {
                        // Outer `Some`: the field was seen (even as `null`); inner: its value.
                        $( let mut $field: Option<Option<$ty>> = None; )+
                        while let Some(key) = map.next_key::<Str<$a>>()? {
                            $(
                                if gojson::key_eq(key.as_str(), $key) {
                                    if $field.is_some() {
                                        return Err(M::Error::custom(gojson::duplicate_field($key)));
                                    }
                                    $field = Some(map.next_value::<Option<$ty>>()?);
                                    continue;
                                }
                            )+
                            map.next_value::<IgnoredAny>()?;
                        }
                        Ok($name {
                            $( $field: $field.flatten(), )+
                            _body: std::marker::PhantomData,
                        })
                    }
                }
                deserializer.deserialize_any(ObjectVisitor)
            }
        }
    };
}

go_struct! {
    /// `POST /api/v2/keys` and `/api/v2/keys_with_policy_overrides`.
    CreateBody<'a> {
        metadata: Metadata<'a> = "metadata",
        resources: Resources<KeyResource<'a>> = "resources",
    }
}

go_struct! {
    /// `metadata` of a collection.
    Metadata<'a> {
        collection_type: Str<'a> = "collectionType",
        collection_total: i64 = "collectionTotal",
    }
}

go_struct! {
    /// One key resource of a create/import request.
    KeyResource<'a> {
        extractable: bool = "extractable",
        payload: Str<'a> = "payload",
        encrypted_nonce: Str<'a> = "encryptedNonce",
        iv: Str<'a> = "iv",
    }
}

go_struct! {
    /// A key action body (wrap, unwrap, rewrap, rotate, restore): Go's `KeysActionRequest`.
    ActionBody<'a> {
        plaintext: Str<'a> = "plaintext",
        ciphertext: Str<'a> = "ciphertext",
        payload: Str<'a> = "payload",
        encrypted_nonce: Str<'a> = "encryptedNonce",
        iv: Str<'a> = "iv",
    }
}

/// A `resources` array: its first element, decoded, and how many there are (a create request
/// with more than one is refused, so the others are only counted).
#[derive(Debug)]
pub(super) struct Resources<T> {
    pub(super) first: Option<T>,
    pub(super) count: usize,
}

impl<T> Default for Resources<T> {
    fn default() -> Self {
        Resources {
            first: None,
            count: 0,
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Resources<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SeqVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for SeqVisitor<T> {
            type Value = Resources<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_unit<E: Error>(self) -> Result<Resources<T>, E> {
                Ok(Resources::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Resources<T>, A::Error> {
                let first = seq.next_element::<T>()?;
                let mut count = usize::from(first.is_some());
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    count += 1;
                }
                Ok(Resources { first, count })
            }
        }
        deserializer.deserialize_any(SeqVisitor(std::marker::PhantomData))
    }
}
