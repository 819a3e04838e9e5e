use proptest::prelude::*;

use super::*;

fn rejected(route: Route, query: Option<&str>, body: &str) -> Rejection {
    check(route, query, body.as_bytes()).unwrap_err()
}

fn rendered(r: &Rejection) -> serde_json::Value {
    serde_json::from_slice(&r.body()).unwrap()
}

fn create(resources: &str, total: usize) -> String {
    format!(
        r#"{{"metadata":{{"collectionType":"application/vnd.ibm.kms.key+json","collectionTotal":{total}}},"resources":[{resources}]}}"#
    )
}

const ROOT: &str = r#"{"type":"application/vnd.ibm.kms.key+json","name":"k","extractable":false}"#;

/// The reference's wrap example elides its plaintext ("q+x3Qi.../BVb8bPj....vVD;"); taken
/// literally, Go stops at the first '.', byte 6. The reported byte 38 is the ';' of the real,
/// 39-byte value: the visible pieces with the elisions filled with base64 characters.
pub(crate) const WRAP_PLAINTEXT_38: &str = "q+x3QiAAAAAAAAAA/BVb8bPjAAAAAAAAAAAvVD;";

/// The reference's unwrap example is a truncated ciphertext: 211 base64 characters, so the last
/// quantum ("NyJ") is short and Go reports where it starts, byte 208.
pub(crate) fn unwrap_ciphertext_208() -> String {
    let head = "eyJjaXBoZXJ0ZXh0IjoiUnl";
    let tail = "hYTUtNDNmMi05NTc5LWM2NjAzN2EwNjhkNyJ";
    format!("{head}{}{tail}", "A".repeat(211 - head.len() - tail.len()))
}

#[test]
fn reference_create_with_two_resources() {
    let r = rejected(
        Route::KeyCreate,
        None,
        &create(&format!("{ROOT},{ROOT}"), 1),
    );
    assert_eq!(r.reason(), Reason::BadBody);
    assert_eq!(
        r.wire_message(),
        "Invalid body data was passed. Please ensure the data passed had valid formatting with no invalid characters: Only creation of one key per request is supported"
    );
    assert_eq!(
        r.error_msg(),
        "Bad Request: Key could not be created. Please see `reasons` for more details."
    );
}

#[test]
fn reference_create_with_empty_metadata() {
    let body = format!(r#"{{"metadata": {{}}, "resources": [{ROOT}]}}"#);
    let r = rejected(Route::KeyCreateWithPolicyOverrides, None, &body);
    assert_eq!(r.reason(), Reason::BadBody);
    assert!(
        r.wire_message()
            .ends_with("with no invalid characters: CollectionMetadata is empty")
    );
}

#[test]
fn reference_wrap_plaintext() {
    assert_eq!(
        crate::gojson::base64_error("q+x3Qi.../BVb8bPj....vVD;"),
        Some(6)
    );
    let body = format!(r#"{{"plaintext": "{WRAP_PLAINTEXT_38}"}}"#);
    let r = rejected(Route::KeyWrap, None, &body);
    let v = rendered(&r);
    assert_eq!(
        v["resources"][0]["errorMsg"],
        "Bad Request: Wrap with key could not be performed: Please see `reasons` for more details (INVALID_FIELD_ERR)"
    );
    let reason = &v["resources"][0]["reasons"][0];
    assert_eq!(reason["code"], "INVALID_FIELD_ERR");
    assert_eq!(
        reason["message"],
        "The field `plaintext` must be: a base64 encoded key material: illegal base64 data at input byte 38"
    );
    assert_eq!(
        reason["target"],
        serde_json::json!({"type": "field", "name": "plaintext"})
    );
}

#[test]
fn reference_unwrap_ciphertext() {
    let body = format!(r#"{{"ciphertext": "{}"}}"#, unwrap_ciphertext_208());
    let v = rendered(&rejected(Route::KeyUnwrap, None, &body));
    assert_eq!(
        v["resources"][0]["errorMsg"],
        "Bad Request: Unwrap with key could not be performed: Please see 'reasons' for more details (INVALID_FIELD_ERR)"
    );
    let reason = &v["resources"][0]["reasons"][0];
    assert_eq!(
        reason["message"],
        "The field 'ciphertext' must be: the original base64 encoded ciphertext from the wrap operation: illegal base64 data at input byte 208"
    );
    assert_eq!(
        reason["target"],
        serde_json::json!({"type": "field", "name": "ciphertext"})
    );
}

#[test]
fn reference_unwrap_without_body() {
    for route in [Route::KeyUnwrap, Route::KeyRewrap] {
        for body in ["", " \r\n"] {
            let r = rejected(route, None, body);
            assert_eq!(r.reason(), Reason::NoBody);
            assert_eq!(r.wire_message(), "Missing body in request");
            assert_eq!(
                r.error_msg(),
                "Bad Request: Action could not be performed on key. Please see `reasons` for more details."
            );
        }
    }
}

#[test]
fn unwrap_and_rewrap_need_a_ciphertext() {
    for body in [
        "{}",
        "null",
        r#"{"ciphertext":""}"#,
        r#"{"ciphertext":null}"#,
        r#"{"aad":["x"]}"#,
    ] {
        let r = rejected(Route::KeyUnwrap, None, body);
        assert_eq!(
            r.wire_message(),
            "The field 'ciphertext' must be: the original base64 encoded ciphertext from the wrap operation",
            "{body}"
        );
    }
    let r = rejected(Route::KeyRewrap, None, r#"{"ciphertext":"%%%%"}"#);
    assert_eq!(
        r.error_msg(),
        "Bad Request: Rewrap with key could not be performed: Please see 'reasons' for more details (INVALID_FIELD_ERR)"
    );
    assert_eq!(
        check(
            Route::KeyUnwrap,
            None,
            br#"{"ciphertext":"YWJj","aad":["a"]}"#
        ),
        Ok(None)
    );
}

#[test]
fn wrap_accepts_no_body_empty_object_and_null() {
    for body in [
        "",
        "{}",
        "null",
        " {} ",
        r#"{"aad":["a","b"]}"#,
        r#"{"plaintext":"YWJjZA=="}"#,
    ] {
        assert_eq!(
            check(Route::KeyWrap, None, body.as_bytes()),
            Ok(None),
            "{body}"
        );
    }
}

#[test]
fn not_json_is_a_bad_body() {
    for route in [
        Route::KeyCreate,
        Route::KeyWrap,
        Route::KeyUnwrap,
        Route::KeyRotate,
        Route::KeyRestore,
    ] {
        for body in [
            "{",
            "plaintext=abc",
            "[]",
            "42",
            "\"s\"",
            r#"{"plaintext":1}"#,
            r#"{"ciphertext":true}"#,
            r#"{"payload":{}}"#,
        ] {
            let r = rejected(route, None, body);
            assert_eq!(r.reason(), Reason::BadBody, "{route:?} {body}");
        }
        let r = check(route, None, b"{\"plaintext\":\"\xff\xfe\"}").unwrap_err();
        assert_eq!(r.reason(), Reason::BadBody);
        assert!(
            r.wire_message()
                .ends_with("the body is not UTF-8 (byte 14)"),
            "{}",
            r.wire_message()
        );
    }
    // Unknown fields are Key Protect's business on these routes.
    assert_eq!(check(Route::KeyWrap, None, br#"{"extra":1}"#), Ok(None));
}

#[test]
fn create_rules_in_order() {
    let code = |body: &str| rejected(Route::KeyCreate, None, body).reason().code();
    assert_eq!(code(""), "BAD_BODY_ERR");
    assert_eq!(code("null"), "BAD_BODY_ERR");
    assert_eq!(
        code(&format!(r#"{{"resources":[{ROOT}]}}"#)),
        "BAD_BODY_ERR"
    );
    assert_eq!(code(&create("", 0)), "BAD_BODY_ERR");
    assert_eq!(
        code(r#"{"metadata":{"collectionType":"x","collectionTotal":1}}"#),
        "BAD_BODY_ERR"
    );
    assert_eq!(code(&create(ROOT, 2)), "COLLECTION_TOTAL_MISMATCH_ERR");
    assert_eq!(
        code(&create(ROOT, 0).replace(
            r#""collectionType":"application/vnd.ibm.kms.key+json","#,
            r#""collectionType":"x","#
        )),
        "COLLECTION_TOTAL_MISMATCH_ERR"
    );
    assert_eq!(code(&create(r#"{"payload":""}"#, 1)), "BAD_BODY_ERR");
    let r = rejected(
        Route::KeyCreate,
        None,
        &create(r#"{"payload":"YWJj","iv":"bad!"}"#, 1),
    );
    assert_eq!(r.reason(), Reason::InvalidField);
    assert_eq!(
        r.wire_message(),
        "The field `iv` must be: a base64 encoded initialization vector: illegal base64 data at input byte 3"
    );
    assert_eq!(
        r.error_msg(),
        "Bad Request: Key could not be created: Please see `reasons` for more details (INVALID_FIELD_ERR)"
    );
    let r = rejected(
        Route::KeyCreate,
        None,
        &create(r#"{"payload":"YWJj","encryptedNonce":"=="}"#, 1),
    );
    assert_eq!(
        rendered(&r)["resources"][0]["reasons"][0]["target"]["name"],
        "encryptedNonce"
    );
}

#[test]
fn create_classification() {
    let body = |resource: &str| {
        check(Route::KeyCreate, None, create(resource, 1).as_bytes())
            .unwrap()
            .unwrap()
    };
    assert_eq!(body(ROOT), KeyBody::default());
    assert_eq!(body(r#"{"name":"k"}"#), KeyBody::default());
    assert!(body(r#"{"extractable":true}"#).extractable);
    let import =
        body(r#"{"extractable":false,"payload":"YWJjZA==","encryptedNonce":"YWJj","iv":"YWJj"}"#);
    assert!(import.payload && import.has_import_token() && !import.extractable);
    assert!(!body(r#"{"payload":"YWJjZA==","iv":"YWJj"}"#).has_import_token());
}

#[test]
fn keys_are_read_as_go_reads_them() {
    let body = |resource: &str| {
        check(Route::KeyCreate, None, create(resource, 1).as_bytes())
            .unwrap()
            .unwrap()
    };
    // Case-insensitive keys (a case-sensitive gateway would see a root create here).
    assert!(body(r#"{"Extractable":true}"#).extractable);
    assert!(body(r#"{"EXTRACTABLE":true,"PAYLOAD":"YWJj"}"#).payload);
    // The ſ fold (Go folds "ſ" with "s"), and escapes in keys.
    let long_s =
        "{\"metadata\":{\"collectionTotal\":1},\"re\u{17F}ources\":[{\"extractable\":true}]}";
    assert!(
        check(Route::KeyCreate, None, long_s.as_bytes())
            .unwrap()
            .unwrap()
            .extractable
    );
    assert!(body(r#"{"payload":"YWJj","encryptedNon\u0063e":"YWJj"}"#).encrypted_nonce);
    // Escaped strings are decoded before base64 is checked.
    assert!(body(r#"{"payload":"YW\u004Aj"}"#).payload);
    let r = rejected(
        Route::KeyCreate,
        None,
        &create(r#"{"payload":"YW\u0021j"}"#, 1),
    );
    assert!(r.wire_message().ends_with("input byte 2"));
    let upper = r#"{"METADATA":{"COLLECTIONTYPE":"x","CollectionTotal":1},"Resources":[{"extractable":true}]}"#;
    assert!(
        check(Route::KeyCreate, None, upper.as_bytes())
            .unwrap()
            .unwrap()
            .extractable
    );
}

#[test]
fn rotate_and_restore_check_material_when_present() {
    for route in [Route::KeyRotate, Route::KeyRestore] {
        for body in ["", "{}", "null"] {
            assert_eq!(
                check(route, None, body.as_bytes()),
                Ok(Some(KeyBody::default())),
                "{body}"
            );
        }
        let with_token = check(
            route,
            None,
            br#"{"payload":"YWJj","encryptedNonce":"YWJj","iv":"YWJj"}"#,
        )
        .unwrap()
        .unwrap();
        assert!(with_token.payload && with_token.has_import_token());
        let r = rejected(route, None, r#"{"payload":"YW;j"}"#);
        assert_eq!(r.reason(), Reason::InvalidField);
    }
    let r = rejected(Route::KeyRotate, None, r#"{"payload":"YW;j"}"#);
    assert_eq!(
        r.error_msg(),
        "Bad Request: Key could not be rotated: Please see 'reasons' for more details (INVALID_FIELD_ERR)"
    );
    assert_eq!(
        r.wire_message(),
        "The field 'payload' must be: a base64 encoded key material: illegal base64 data at input byte 2"
    );
}

#[test]
fn instance_policies_use_the_policy_parser() {
    let body = r#"{"metadata":{"collectionType":"application/vnd.ibm.kms.policy+json","collectionTotal":1},
        "resources":[{"policy_type":"metrics","policy_data":{"enabled":true}}]}"#;
    assert_eq!(
        check(
            Route::InstancePoliciesPut,
            Some("policy=metrics"),
            body.as_bytes()
        ),
        Ok(None)
    );
    let r = rejected(
        Route::InstancePoliciesPut,
        Some("policy=dualAuthDelete"),
        body,
    );
    assert_eq!(r.reason(), Reason::BodyQueryParamMismatch);
    let r = rejected(Route::InstancePoliciesPut, Some("policy=nope"), body);
    assert_eq!(r.reason(), Reason::InvalidQueryParam);
}

#[test]
fn only_body_routes_are_inspected() {
    let inspected: Vec<Route> = Route::ALL
        .iter()
        .copied()
        .filter(|r| inspects(*r))
        .collect();
    assert_eq!(inspected.len(), 8);
    for route in [
        Route::KeyEnable,
        Route::KeyDisable,
        Route::KeySetForDeletion,
        Route::KeyUnsetForDeletion,
        Route::KeyList,
        Route::Other,
    ] {
        assert!(!inspects(route));
        assert_eq!(check(route, None, b"garbage"), Ok(None));
    }
}

const INSPECTED: [Route; 8] = [
    Route::InstancePoliciesPut,
    Route::KeyCreate,
    Route::KeyCreateWithPolicyOverrides,
    Route::KeyWrap,
    Route::KeyUnwrap,
    Route::KeyRewrap,
    Route::KeyRotate,
    Route::KeyRestore,
];

/// Valid bodies to mutate, one per inspected route.
fn seeds() -> Vec<(Route, Option<&'static str>, String)> {
    vec![
        (
            Route::InstancePoliciesPut,
            Some("policy=keyCreateImportAccess"),
            r#"{"metadata":{"collectionType":"application/vnd.ibm.kms.policy+json","collectionTotal":1},"resources":[{"policy_type":"keyCreateImportAccess","policy_data":{"enabled":true,"attributes":{"create_root_key":true,"enforce_token":false}}}]}"#.to_owned(),
        ),
        (Route::KeyCreate, None, create(r#"{"type":"application/vnd.ibm.kms.key+json","name":"k","extractable":false,"payload":"YWJjZA==","encryptedNonce":"YWJj","iv":"YWJj"}"#, 1)),
        (Route::KeyCreateWithPolicyOverrides, None, create(r#"{"name":"k","extractable":true,"rotation":{"enabled":true,"interval_month":3}}"#, 1)),
        (Route::KeyWrap, None, r#"{"plaintext":"2eLAD3LyD3H2bq8dIDAy0A/lN9DSE/Ne3bwu40CdErs=","aad":["a"]}"#.to_owned()),
        (Route::KeyUnwrap, None, r#"{"ciphertext":"eyJjaXBoZXJ0ZXh0IjoiR0VnTFZGSmpK","aad":["a"]}"#.to_owned()),
        (Route::KeyRewrap, None, r#"{"ciphertext":"eyJjaXBoZXJ0ZXh0IjoiR0VnTFZGSmpK"}"#.to_owned()),
        (Route::KeyRotate, None, r#"{"payload":"YWJjZA==","encryptedNonce":"YWJj","iv":"YWJj"}"#.to_owned()),
        (Route::KeyRestore, None, r#"{"payload":"YWJjZA=="}"#.to_owned()),
    ]
}

fn catalogued(result: &Result<Option<KeyBody>, Rejection>) -> bool {
    match result {
        Ok(_) => true,
        Err(r) => {
            let rendered = rendered(r);
            Reason::from_code(r.reason().code()).is_some()
                && r.reason().is_client_fault()
                && rendered["resources"][0]["reasons"][0]["code"] == r.reason().code()
        }
    }
}

#[test]
fn seeds_are_valid() {
    for (route, query, body) in seeds() {
        assert!(check(route, query, body.as_bytes()).is_ok(), "{route:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_end_in_a_forward_or_a_catalogued_code(
        route in 0..INSPECTED.len(),
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let result = check(INSPECTED[route], Some("policy=metrics"), &body);
        prop_assert!(catalogued(&result));
    }

    #[test]
    fn random_json_ends_in_a_forward_or_a_catalogued_code(
        route in 0..INSPECTED.len(),
        body in "[{}\\[\\]\":,a-zA-Z0-9=+/ _.-]{0,200}",
    ) {
        let result = check(INSPECTED[route], None, body.as_bytes());
        prop_assert!(catalogued(&result));
    }

    #[test]
    fn mutated_bodies_end_in_a_forward_or_a_catalogued_code(
        seed in 0..8usize,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..8),
    ) {
        let (route, query, body) = &seeds()[seed];
        let mut body = body.clone().into_bytes();
        for (at, byte, op) in edits {
            let i = at.index(body.len().max(1)).min(body.len());
            match op {
                0 if i < body.len() => body[i] = byte,
                1 => body.insert(i, byte),
                _ if i < body.len() => { body.remove(i); }
                _ => {}
            }
        }
        let result = check(*route, *query, &body);
        prop_assert!(catalogued(&result));
    }
}

// === Read as Go's encoding/json reads it ===

/// The detail of a `BAD_BODY_ERR` (after the catalogue message).
fn bad_body_detail(route: Route, query: Option<&str>, body: &str) -> String {
    let r = rejected(route, query, body);
    assert_eq!(r.reason(), Reason::BadBody, "{route:?} {body}");
    let message = r.wire_message();
    message
        .strip_prefix(Reason::BadBody.message())
        .and_then(|m| m.strip_prefix(": "))
        .unwrap_or_else(|| panic!("no detail in {message:?}"))
        .to_owned()
}

fn assert_duplicate(route: Route, query: Option<&str>, body: &str, field: &str) {
    let detail = bad_body_detail(route, query, body);
    assert!(
        detail.starts_with(&format!("duplicate field \"{field}\"")),
        "{route:?} {body}: {detail}"
    );
}

/// The issue's example: an import (the first `resources`) disguised as a create (the second).
/// Go decodes the second array into the first one's elements, so the KMS would import.
const IMPORT_DISGUISED_AS_CREATE: &str = r#"{"metadata":{"collectionType":"application/vnd.ibm.kms.key+json","collectionTotal":1},"resources":[{"extractable":true,"payload":"YWJjZA=="}],"resources":[{"extractable":true}]}"#;

#[test]
fn an_inspected_field_twice_in_any_spelling_is_refused() {
    assert_duplicate(
        Route::KeyCreate,
        None,
        IMPORT_DISGUISED_AS_CREATE,
        "resources",
    );
    let meta = r#""metadata":{"collectionType":"x","collectionTotal":1}"#;
    let resources = r#""resources":[{"extractable":false}]"#;
    let create_cases = [
        // Top level, in every spelling Go folds together.
        (format!("{{{meta},{resources},{resources}}}"), "resources"),
        (
            format!(r#"{{{meta},{resources},"Resources":[{{"extractable":true}}]}}"#),
            "resources",
        ),
        (
            format!("{{{meta},{resources},\"RE\u{17F}OURCES\":[]}}"),
            "resources",
        ),
        (
            format!(r#"{{{meta},{resources},"re\u0073ources":null}}"#),
            "resources",
        ),
        (
            format!(r#"{{{meta},"METADATA":null,{resources}}}"#),
            "metadata",
        ),
        // Inside metadata and inside the resource.
        (
            format!(
                r#"{{"metadata":{{"collectionType":"x","collectionTotal":1,"CollectionTotal":1}},{resources}}}"#
            ),
            "collectionTotal",
        ),
        (
            format!(
                r#"{{"metadata":{{"collectionType":"x","collectionType":"y","collectionTotal":1}},{resources}}}"#
            ),
            "collectionType",
        ),
        (
            create(r#"{"extractable":true,"extractable":null}"#, 1),
            "extractable",
        ),
        (
            create(r#"{"extractable":false,"eXtractable":true}"#, 1),
            "extractable",
        ),
        (
            create(r#"{"extractable":false,"EXTRACTABLE":true}"#, 1),
            "extractable",
        ),
        (create(r#"{"payload":"YWJj","PAYLOAD":""}"#, 1), "payload"),
        (
            create(
                r#"{"payload":"YWJj","encryptedNonce":"YWJj","encryptednonce":"YWJj","iv":"YWJj"}"#,
                1,
            ),
            "encryptedNonce",
        ),
        (
            create(
                r#"{"payload":"YWJj","encryptedNonce":"YWJj","iv":"YWJj","IV":"YWJj"}"#,
                1,
            ),
            "iv",
        ),
    ];
    for route in [Route::KeyCreate, Route::KeyCreateWithPolicyOverrides] {
        for (body, field) in &create_cases {
            assert_duplicate(route, None, body, field);
        }
    }
    for (route, body, field) in [
        (
            Route::KeyWrap,
            r#"{"plaintext":"YWJj","Plaintext":"%%%%"}"#,
            "plaintext",
        ),
        (
            Route::KeyUnwrap,
            r#"{"ciphertext":"YWJj","ciphertext":"YWJj"}"#,
            "ciphertext",
        ),
        (
            Route::KeyRewrap,
            r#"{"CIPHERTEXT":"YWJj","ciphertext":null}"#,
            "ciphertext",
        ),
        (
            Route::KeyRotate,
            r#"{"payload":"YWJj","payload":""}"#,
            "payload",
        ),
        (
            Route::KeyRestore,
            r#"{"payload":"YWJj","encryptedNonce":"YWJj","iv":"YWJj","Iv":""}"#,
            "iv",
        ),
    ] {
        assert_duplicate(route, None, body, field);
    }
}

#[test]
fn duplicates_of_fields_the_gateway_does_not_read_are_key_protects_business() {
    for (route, body) in [
        (
            Route::KeyCreate,
            create(r#"{"name":"a","name":"b","extractable":false}"#, 1),
        ),
        (
            Route::KeyCreateWithPolicyOverrides,
            create(
                r#"{"rotation":{"enabled":true,"enabled":false},"Rotation":{}}"#,
                1,
            ),
        ),
        (
            Route::KeyWrap,
            r#"{"plaintext":"YWJj","aad":["a"],"aad":["b"]}"#.to_owned(),
        ),
    ] {
        assert!(check(route, None, body.as_bytes()).is_ok(), "{body}");
    }
}

#[test]
fn instance_policy_puts_refuse_duplicates_at_every_level() {
    let policy = |resource: &str| {
        format!(
            r#"{{"metadata":{{"collectionType":"application/vnd.ibm.kms.policy+json","collectionTotal":1}},"resources":[{resource}]}}"#
        )
    };
    let kcia = r#"{"policy_type":"keyCreateImportAccess","policy_data":{"enabled":true,"attributes":{"create_root_key":false}}}"#;
    let cases = [
        // The second array would be decoded into the first one's elements by Go.
        (
            policy(kcia).replace(
                r#""resources":["#,
                r#""resources":[{"policy_type":"metrics","policy_data":{"enabled":true}}],"resources":["#,
            ),
            "resources",
        ),
        (
            policy(kcia).replace(r#""metadata":"#, r#""Metadata":{},"metadata":"#),
            "metadata",
        ),
        (
            policy(&kcia.replace(
                r#""policy_type":"keyCreateImportAccess""#,
                r#""policy_type":"keyCreateImportAccess","POLICY_TYPE":"keyCreateImportAccess""#,
            )),
            "POLICY_TYPE",
        ),
        (
            policy(&kcia.replace(r#""enabled":true"#, r#""enabled":true,"enabled":false"#)),
            "enabled",
        ),
        (
            policy(&kcia.replace(
                r#""create_root_key":false"#,
                r#""create_root_key":false,"create_root_\u006Bey":true"#,
            )),
            "create_root_key",
        ),
        (
            policy(&kcia.replace(
                r#""create_root_key":false"#,
                "\"create_root_key\":false,\"CREATE_ROOT_\u{212A}EY\":true",
            )),
            "CREATE_ROOT_\u{212A}EY",
        ),
    ];
    for (body, field) in &cases {
        for query in [None, Some("policy=keyCreateImportAccess")] {
            assert_duplicate(Route::InstancePoliciesPut, query, body, field);
        }
        // A policy file or a GET document is held to the same rule.
        let r = crate::policy::parse::parse_document(body.as_bytes()).unwrap_err();
        assert!(r.wire_message().contains("duplicate field"), "{body}");
    }
    assert_eq!(
        check(
            Route::InstancePoliciesPut,
            Some("policy=keyCreateImportAccess"),
            policy(kcia).as_bytes()
        ),
        Ok(None)
    );
}

#[test]
fn empty_strings_are_go_zero_values() {
    let key = |resource: &str| {
        check(Route::KeyCreate, None, create(resource, 1).as_bytes())
            .unwrap()
            .unwrap()
    };
    // The issue's example: an empty nonce and IV are no import token.
    let import = key(r#"{"payload":"YWJjZA==","encryptedNonce":"","iv":""}"#);
    assert!(import.payload && !import.encrypted_nonce && !import.iv);
    assert!(!import.has_import_token());
    assert!(!key(r#"{"payload":"YWJjZA==","encryptedNonce":"YWJj","iv":""}"#).has_import_token());
    assert!(!key(r#"{"payload":"YWJjZA==","encryptedNonce":"","iv":"YWJj"}"#).has_import_token());
    // Line breaks only decode to nothing: no nonce either.
    assert!(!key(r#"{"payload":"YWJjZA==","encryptedNonce":"\r\n","iv":"\n"}"#).has_import_token());
    assert!(
        key(r#"{"payload":"YWJjZA==","encryptedNonce":"YW\nJj","iv":"YWJj"}"#).has_import_token()
    );
    // An empty payload on create is Key Protect's own refusal; line breaks only are the same.
    for payload in [r#""""#, r#""\n""#, r#""\r\n\r\n""#] {
        let detail = bad_body_detail(
            Route::KeyCreate,
            None,
            &create(&format!(r#"{{"payload":{payload}}}"#), 1),
        );
        assert_eq!(detail, "Key has zero value or it's empty", "{payload}");
    }
    for route in [Route::KeyRotate, Route::KeyRestore] {
        // "" is no material (a plain rotate/restore to Go), so nothing for enforce_token.
        for body in [
            r#"{"payload":""}"#,
            r#"{"payload":"","encryptedNonce":"","iv":""}"#,
            r#"{"encryptedNonce":"YWJj","iv":"YWJj"}"#,
        ] {
            let key_body = check(route, None, body.as_bytes()).unwrap().unwrap();
            assert!(!key_body.payload, "{route:?} {body}");
        }
        let key_body = check(
            route,
            None,
            br#"{"payload":"YWJj","iv":"","encryptedNonce":""}"#,
        )
        .unwrap()
        .unwrap();
        assert!(key_body.payload && !key_body.has_import_token());
        // Line breaks only are not Go's zero value, yet decode to nothing: ambiguous, refused.
        assert_eq!(
            bad_body_detail(route, None, r#"{"payload":"\r\n"}"#),
            "Key has zero value or it's empty"
        );
    }
    // A wrap with "" asks the KMS to generate a key, like no plaintext at all.
    assert_eq!(
        check(Route::KeyWrap, None, br#"{"plaintext":""}"#),
        Ok(None)
    );
}

#[test]
fn null_is_absent_wherever_it_appears() {
    let key = |resource: &str| {
        check(Route::KeyCreate, None, create(resource, 1).as_bytes())
            .unwrap()
            .unwrap()
    };
    assert_eq!(
        key(r#"{"extractable":null,"payload":null,"encryptedNonce":null,"iv":null}"#),
        KeyBody::default()
    );
    // A null element of `resources` is a zero-valued key: one root-key create.
    assert_eq!(key("null"), KeyBody::default());
    let meta = r#""metadata":{"collectionType":"x","collectionTotal":1}"#;
    for body in [
        format!(r#"{{{meta},"resources":null}}"#),
        format!(r#"{{{meta},"resources":[]}}"#),
        format!(r#"{{{meta}}}"#),
    ] {
        assert_eq!(
            bad_body_detail(Route::KeyCreate, None, &body),
            "Only creation of one key per request is supported"
        );
    }
    for metadata in [
        "null",
        "{}",
        r#"{"collectionType":null,"collectionTotal":null}"#,
    ] {
        let body = format!(r#"{{"metadata":{metadata},"resources":[{{}}]}}"#);
        assert_eq!(
            bad_body_detail(Route::KeyCreate, None, &body),
            "CollectionMetadata is empty"
        );
    }
    for route in [Route::KeyRotate, Route::KeyRestore] {
        assert_eq!(
            check(
                route,
                None,
                br#"{"payload":null,"encryptedNonce":null,"iv":null}"#
            ),
            Ok(Some(KeyBody::default()))
        );
    }
    assert_eq!(
        check(Route::KeyWrap, None, br#"{"plaintext":null,"aad":null}"#),
        Ok(None)
    );
    assert_eq!(
        rejected(Route::KeyUnwrap, None, r#"{"ciphertext":null}"#).reason(),
        Reason::InvalidField
    );
}

#[test]
fn numbers_and_booleans_only_as_go_accepts_them() {
    let total = |value: &str| {
        let body = format!(
            r#"{{"metadata":{{"collectionType":"x","collectionTotal":{value}}},"resources":[{{}}]}}"#
        );
        check(Route::KeyCreate, None, body.as_bytes())
    };
    assert!(total("1").is_ok());
    assert!(total("1 ").is_ok());
    // Go's int64 takes only integer literals in range: no fraction, no exponent, no string.
    // `-0` is an integer to Go (0, then a collection total mismatch) but a float to serde: a
    // refusal either way.
    for value in [
        "1.0",
        "1e0",
        "1E0",
        "10e-1",
        "\"1\"",
        "true",
        "[1]",
        "{}",
        "9223372036854775808",
        "-9223372036854775809",
        "-0",
        "-0.0",
    ] {
        let r = total(value).unwrap_err();
        assert_eq!(r.reason(), Reason::BadBody, "{value}");
    }
    // Not JSON at all: a syntax error.
    for value in ["01", "+1", ".5", "0x1", "NaN", "Infinity", "1."] {
        let r = total(value).unwrap_err();
        assert!(r.wire_message().contains("invalid JSON"), "{value}");
    }
    // Booleans are only true and false.
    for value in ["\"true\"", "1", "0", "\"\"", "[]", "True", "TRUE"] {
        let body = create(&format!(r#"{{"extractable":{value}}}"#), 1);
        assert_eq!(
            rejected(Route::KeyCreate, None, &body).reason(),
            Reason::BadBody,
            "{value}"
        );
    }
    // Strings only as strings.
    for body in [
        r#"{"payload":123}"#,
        r#"{"iv":true}"#,
        r#"{"encryptedNonce":["YWJj"]}"#,
    ] {
        let detail = bad_body_detail(Route::KeyRotate, None, body);
        assert!(detail.starts_with("invalid type"), "{body}: {detail}");
    }
}

#[test]
fn trailing_data_and_undecodable_strings_are_refused() {
    let wrap = r#"{"plaintext":"YWJj"}"#;
    for trailing in [" x", "{}", " {}", "null", ",", "]", "\u{0}"] {
        let body = format!("{wrap}{trailing}");
        for route in [Route::KeyWrap, Route::KeyRotate] {
            let detail = bad_body_detail(route, None, &body);
            assert!(
                detail.starts_with("invalid JSON: trailing characters"),
                "{body:?}: {detail}"
            );
        }
    }
    let detail = bad_body_detail(
        Route::InstancePoliciesPut,
        None,
        r#"{"resources":[]} {"resources":[]}"#,
    );
    assert!(
        detail.starts_with("invalid JSON: trailing characters"),
        "{detail}"
    );
    // Trailing JSON whitespace is fine.
    assert_eq!(
        check(Route::KeyWrap, None, format!("{wrap} \r\n\t").as_bytes()),
        Ok(None)
    );
    // Invalid UTF-8 anywhere (Go would substitute U+FFFD): refused.
    let r = check(Route::KeyWrap, None, b"{\"aad\":[\"\xc3\x28\"]}").unwrap_err();
    assert_eq!(r.reason(), Reason::BadBody);
    // A lone surrogate escape in a field the gateway reads: refused; in one it ignores, it does
    // not change the decision and is forwarded.
    let r = rejected(Route::KeyRotate, None, r#"{"payload":"\ud800"}"#);
    assert_eq!(r.reason(), Reason::BadBody);
    assert_eq!(
        check(Route::KeyWrap, None, br#"{"aad":["\ud800"]}"#),
        Ok(None)
    );
    // A raw control character in a string is not JSON, to Go either.
    let r = rejected(Route::KeyWrap, None, "{\"plaintext\":\"YW\u{1}Jj\"}");
    assert_eq!(r.reason(), Reason::BadBody);
}

mod service {
    use std::convert::Infallible;
    use std::sync::{Arc, Mutex};

    use http::{Request, Response};
    use tower::ServiceExt;

    use super::super::{BodyShapeLayer, KeyBody};
    use crate::body::Body;
    use crate::route::Route;

    type Seen = Arc<Mutex<Vec<(Option<KeyBody>, bytes::Bytes)>>>;

    /// The layer around a service that records what reaches it.
    fn stack(
        limit: usize,
    ) -> (
        impl tower_service::Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
        Seen,
    ) {
        let seen: Seen = Arc::default();
        let record = seen.clone();
        let inner = tower::service_fn(move |req: Request<Body>| {
            let record = record.clone();
            async move {
                let key_body = req.extensions().get::<KeyBody>().copied();
                let bytes = http_body_util::BodyExt::collect(req.into_body())
                    .await
                    .map(|c| c.to_bytes())
                    .unwrap_or_default();
                record.lock().unwrap().push((key_body, bytes));
                Ok::<_, Infallible>(Response::new(Body::empty()))
            }
        });
        (
            tower_layer::Layer::layer(&BodyShapeLayer::new(limit), inner),
            seen,
        )
    }

    fn post(path: &str, body: &'static str) -> Request<Body> {
        Request::post(path).body(Body::full(body)).unwrap()
    }

    /// A body that is complete on the first poll starts no timer, so the layer needs no Tokio
    /// runtime for it (the benchmark drives it this way).
    #[test]
    fn a_body_already_in_memory_starts_no_timer() {
        use std::future::Future;
        use std::task::{Context, Poll, Waker};
        let (mut svc, seen) = stack(1024);
        let req = post("/api/v2/keys/k/actions/wrap", r#"{"plaintext":"YWJj"}"#);
        let mut cx = Context::from_waker(Waker::noop());
        let future = std::pin::pin!(tower_service::Service::call(&mut svc, req));
        match future.poll(&mut cx) {
            Poll::Ready(Ok(res)) => assert_eq!(res.status(), 200),
            _ => panic!("an in-memory body must be decided on the first poll"),
        }
        assert_eq!(seen.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_stream_longer_than_the_limit_is_cut_off_without_content_length() {
        let (svc, seen) = stack(16);
        let req = post("/api/v2/keys/k/actions/wrap", r#"{"plaintext":"YWJjZA=="}"#);
        assert!(req.headers().get("content-length").is_none());
        let res = svc.oneshot(req).await.unwrap();
        assert_eq!(res.status(), 413);
        assert_eq!(res.headers()["kmsgate-reason"], "BODY_TOO_LARGE_ERR");
        assert!(seen.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_original_bytes_and_the_key_body_reach_the_inner_service() {
        let (svc, seen) = stack(1024);
        let body = r#"{"metadata":{"collectionType":"x","collectionTotal":1},"resources":[{"Extractable":true}]}"#;
        let mut req = post("/api/v2/keys", body);
        req.extensions_mut().insert(Route::KeyCreate);
        let res = svc.oneshot(req).await.unwrap();
        assert_eq!(res.status(), 200);
        let seen = seen.lock().unwrap();
        assert_eq!(&seen[0].1[..], body.as_bytes());
        assert_eq!(
            seen[0].0,
            Some(KeyBody {
                extractable: true,
                ..KeyBody::default()
            })
        );
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_before_reading() {
        let (svc, seen) = stack(8);
        let req = Request::post("/api/v2/instance/policies")
            .method("PUT")
            .header("content-length", "9999")
            .body(Body::empty())
            .unwrap();
        let res = svc.oneshot(req).await.unwrap();
        assert_eq!(res.status(), 413);
        // Routes that are not inspected pass whatever their length.
        let (svc, _) = stack(8);
        let req = post(
            "/api/v2/keys/k/actions/disable",
            "null and more than eight bytes",
        );
        assert_eq!(svc.oneshot(req).await.unwrap().status(), 200);
        assert!(seen.lock().unwrap().is_empty());
    }
}
