use super::*;

fn put(body: &str, query: Option<&str>) -> Result<Vec<Policy>, Rejection> {
    parse_put(body.as_bytes(), query)
}

fn code(result: Result<Vec<Policy>, Rejection>) -> &'static str {
    result.unwrap_err().reason().code()
}

/// The rendered `reasons[0].target`, as `(type, name)`.
fn target(r: &Rejection) -> Option<(String, String)> {
    let v: serde_json::Value = serde_json::from_slice(&r.body()).unwrap();
    let t = &v["resources"][0]["reasons"][0]["target"];
    t.is_object().then(|| {
        (
            t["type"].as_str().unwrap().to_owned(),
            t["name"].as_str().unwrap().to_owned(),
        )
    })
}

fn field(name: &str) -> Option<(String, String)> {
    Some(("field".to_owned(), name.to_owned()))
}

fn envelope(total: usize, resources: &str) -> String {
    format!(
        r#"{{"metadata":{{"collectionType":"application/vnd.ibm.kms.policy+json","collectionTotal":{total}}},"resources":[{resources}]}}"#
    )
}

const DUAL_OFF: &str = r#"{"policy_type":"dualAuthDelete","policy_data":{"enabled":false}}"#;

// The reference's JSON examples, verbatim.

#[test]
fn reference_collection_total_mismatch() {
    let body = r#"{
"metadata": {
"collectionType": "application/vnd.ibm.kms.policy+json",
"collectionTotal": 2
},
"resources": [
{
"policy_type": "dualAuthDelete",
"policy_data": {
"enabled": false
}
}
]
}"#;
    let r = put(body, Some("dualAuthDelete")).unwrap_err();
    assert_eq!(r.reason(), Reason::CollectionTotalMismatch);
    assert_eq!(
        r.wire_message(),
        "Collection total does not match number of resources"
    );
    assert_eq!(
        r.error_msg(),
        "Bad Request: Instance policy could not be created. Please see `reasons` for more details."
    );
}

#[test]
fn reference_body_query_param_mismatch() {
    let body = envelope(
        1,
        r#"{"policy_type":"badName","policy_data":{"enabled":false}}"#,
    );
    let r = put(&body, Some("dualAuthDelete")).unwrap_err();
    assert_eq!(r.reason(), Reason::BodyQueryParamMismatch);
    assert_eq!(
        r.wire_message(),
        "Data in body does not match data required by query parameter"
    );
    assert_eq!(
        r.error_msg(),
        "Bad Request: Instance policy could not be created. Please see `reasons` for more details."
    );
}

#[test]
fn reference_unknown_field() {
    let body = r#"{
"metadata": {
"collectionType": "application/vnd.ibm.kms.policy+json",
"collectionTotal": 1
},
"resources": [
{
"policy_type": "dualAuthDelete",
"policy_data": {
"enabled": false
},
"extra_field": "junk data"
}
]
}"#;
    let r = put(body, Some("dualAuthDelete")).unwrap_err();
    assert_eq!(r.reason(), Reason::BadBody);
    assert_eq!(
        r.wire_message(),
        "Invalid body data was passed. Please ensure the data passed had valid formatting with no invalid characters: json: unknown field \"extra_field\""
    );
}

#[test]
fn reference_num_collection_resource() {
    let body = envelope(2, &format!("{DUAL_OFF},{DUAL_OFF}"));
    let r = put(&body, Some("dualAuthDelete")).unwrap_err();
    assert_eq!(r.reason(), Reason::NumCollectionResource);
    assert_eq!(
        r.error_msg(),
        "Bad Request: Instance policy could not be created. Please see `reasons` for more details."
    );
}

#[test]
fn reference_key_create_import_access_policy_is_valid() {
    let body = envelope(
        1,
        r#"{"policy_type":"keyCreateImportAccess","policy_data":{"enabled":true,"attributes":{
            "create_root_key":true,"create_standard_key":false,"import_root_key":true,
            "import_standard_key":true,"enforce_token":true}}}"#,
    );
    let policies = put(&body, Some("keyCreateImportAccess")).unwrap();
    assert_eq!(
        policies,
        vec![Policy::KeyCreateImportAccess(KeyCreateImportAccess {
            enabled: true,
            create_root_key: true,
            create_standard_key: false,
            import_root_key: true,
            import_standard_key: true,
            enforce_token: true,
        })]
    );
    // Step 3: disabling with no attributes.
    let body = envelope(
        1,
        r#"{"policy_type":"keyCreateImportAccess","policy_data":{"enabled":false}}"#,
    );
    assert_eq!(
        put(&body, Some("keyCreateImportAccess")).unwrap(),
        vec![Policy::KeyCreateImportAccess(
            KeyCreateImportAccess::default()
        )]
    );
}

// The rules of the issue.

#[test]
fn empty_invalid_and_resourceless_bodies_are_bad_bodies() {
    for body in [
        "",
        "   ",
        "{",
        "nope",
        "null",
        "{}",
        "[]",
        "\u{0}",
        r#"{"metadata":{"collectionType":"x","collectionTotal":0}}"#,
        r#"{"metadata":{"collectionType":"x","collectionTotal":0},"resources":[]}"#,
        r#"{"metadata":{"collectionType":"x","collectionTotal":1},"resources":{}}"#,
    ] {
        assert_eq!(code(put(body, None)), "BAD_BODY_ERR", "body {body:?}");
    }
    let r = put("", None).unwrap_err();
    assert!(r.wire_message().ends_with(": unexpected end of JSON input"));
}

#[test]
fn invalid_utf8_is_a_bad_body() {
    let mut body = envelope(1, DUAL_OFF).into_bytes();
    body.extend_from_slice(b"\xff");
    assert_eq!(
        parse_put(&body, None).unwrap_err().reason(),
        Reason::BadBody
    );
    let body = b"{\"metadata\":{\"collectionType\":\"\xc3\x28\",\"collectionTotal\":1}}";
    assert_eq!(parse_put(body, None).unwrap_err().reason(), Reason::BadBody);
}

#[test]
fn empty_metadata_is_reported() {
    for body in [
        format!(r#"{{"metadata":{{}},"resources":[{DUAL_OFF}]}}"#),
        format!(r#"{{"resources":[{DUAL_OFF}]}}"#),
        format!(r#"{{"metadata":null,"resources":[{DUAL_OFF}]}}"#),
        format!(
            r#"{{"metadata":{{"collectionType":"","collectionTotal":0}},"resources":[{DUAL_OFF}]}}"#
        ),
    ] {
        let r = put(&body, None).unwrap_err();
        assert_eq!(r.reason(), Reason::BadBody, "{body}");
        assert!(
            r.wire_message().ends_with(": CollectionMetadata is empty"),
            "{}",
            r.wire_message()
        );
    }
}

#[test]
fn unknown_fields_anywhere_are_named() {
    for (body, field) in [
        (
            r#"{"metadata":{"collectionType":"x","collectionTotal":1},"resources":[],"extra":1}"#
                .to_owned(),
            "extra",
        ),
        (
            format!(
                r#"{{"metadata":{{"collectionType":"x","collectionTotal":1,"more":2}},"resources":[{DUAL_OFF}]}}"#
            ),
            "more",
        ),
        (
            envelope(
                1,
                r#"{"policy_type":"dualAuthDelete","policy_data":{"enabled":true,"attributes":{}}}"#,
            ),
            "attributes",
        ),
        (
            envelope(
                1,
                r#"{"policy_type":"rotation","policy_data":{"enabled":true,"attributes":{"interval_month":3,"interval_day":2}}}"#,
            ),
            "interval_day",
        ),
        (
            envelope(
                1,
                r#"{"policy_type":"dualAuthDelete","policy_data":{"enabled":false},"createdBy":"me"}"#,
            ),
            "createdBy",
        ),
    ] {
        let r = put(&body, None).unwrap_err();
        assert_eq!(r.reason(), Reason::BadBody, "{body}");
        assert!(
            r.wire_message()
                .ends_with(&format!(": json: unknown field \"{field}\"")),
            "{}",
            r.wire_message()
        );
    }
}

#[test]
fn keys_match_case_insensitively_like_go() {
    let body = r#"{"Metadata":{"COLLECTIONTYPE":"x","collectiontotal":1},"Resources":[
        {"Policy_Type":"rotation","POLICY_DATA":{"Enabled":true,"Attributes":{"Interval_Month":4}}}]}"#;
    assert_eq!(
        put(body, None).unwrap(),
        vec![Policy::Rotation(Rotation {
            enabled: true,
            interval_month: Some(4)
        })]
    );
}

#[test]
fn wrong_types_in_the_envelope_are_bad_bodies() {
    for body in [
        r#"{"metadata":{"collectionType":"x","collectionTotal":"1"},"resources":[]}"#,
        r#"{"metadata":{"collectionType":1,"collectionTotal":1},"resources":[]}"#,
        r#"{"metadata":{"collectionType":"x","collectionTotal":1.5},"resources":[]}"#,
        r#"{"metadata":[],"resources":[]}"#,
        r#"{"metadata":{"collectionType":"x","collectionTotal":1},"resources":[7]}"#,
        r#"{"metadata":{"collectionType":"x","collectionTotal":1},"resources":[{"policy_type":5}]}"#,
    ] {
        let r = put(body, None).unwrap_err();
        assert_eq!(r.reason(), Reason::BadBody, "{body}");
        assert!(
            r.wire_message().contains("json: cannot unmarshal"),
            "{}",
            r.wire_message()
        );
    }
}

#[test]
fn collection_total_must_match() {
    assert_eq!(
        code(put(&envelope(2, DUAL_OFF), None)),
        "COLLECTION_TOTAL_MISMATCH_ERR"
    );
    assert_eq!(
        code(put(&envelope(0, DUAL_OFF), None)),
        "COLLECTION_TOTAL_MISMATCH_ERR"
    );
    let no_total = format!(r#"{{"metadata":{{"collectionType":"x"}},"resources":[{DUAL_OFF}]}}"#);
    assert_eq!(code(put(&no_total, None)), "COLLECTION_TOTAL_MISMATCH_ERR");
    // With ?policy= and two resources but a total of 1, the total is checked first.
    let two = envelope(1, &format!("{DUAL_OFF},{DUAL_OFF}"));
    assert_eq!(
        code(put(&two, Some("dualAuthDelete"))),
        "COLLECTION_TOTAL_MISMATCH_ERR"
    );
}

#[test]
fn query_rules() {
    let r = put(&envelope(1, DUAL_OFF), Some("bogus")).unwrap_err();
    assert_eq!(r.reason(), Reason::InvalidQueryParam);
    assert_eq!(
        target(&r),
        Some(("query_param".to_owned(), "policy".to_owned()))
    );
    assert_eq!(
        r.error_msg(),
        "Bad Request: Instance policy could not be created: Please see \"reasons\" for more details (INVALID_QUERY_PARAM_ERR)"
    );
    // Checked before the body.
    assert_eq!(code(put("", Some(""))), "INVALID_QUERY_PARAM_ERR");
    assert_eq!(
        code(put(&envelope(1, DUAL_OFF), Some("metrics"))),
        "BODY_QUERY_PARAM_MISMATCH_ERR"
    );
    let no_type = envelope(1, r#"{"policy_data":{"enabled":false}}"#);
    assert_eq!(
        code(put(&no_type, Some("metrics"))),
        "BODY_QUERY_PARAM_MISMATCH_ERR"
    );
    assert_eq!(
        put(&envelope(1, DUAL_OFF), Some("dualAuthDelete")).unwrap(),
        vec![Policy::DualAuthDelete(false)]
    );
}

#[test]
fn several_distinct_policies_without_a_query() {
    let body = envelope(
        2,
        &format!(
            r#"{DUAL_OFF},{{"policy_type":"allowedIP","policy_data":{{"enabled":true,"attributes":{{"allowed_ip":["192.0.2.1/24","2001:db8::/32"]}}}}}}"#
        ),
    );
    let policies = put(&body, None).unwrap();
    assert_eq!(policies.len(), 2);
    assert_eq!(
        policies[1],
        Policy::AllowedIp(AllowedIp {
            enabled: true,
            allowed_ip: vec![
                "192.0.2.0/24".parse().unwrap(),
                "2001:db8::/32".parse().unwrap()
            ],
        })
    );
    let twice = envelope(2, &format!("{DUAL_OFF},{DUAL_OFF}"));
    let r = put(&twice, None).unwrap_err();
    assert_eq!(r.reason(), Reason::BadBody);
    assert!(
        r.wire_message()
            .ends_with(": Only one of each policy can be created")
    );
}

fn field_of(body: &str) -> (Reason, Option<(String, String)>, String) {
    let r = put(body, None).unwrap_err();
    (r.reason(), target(&r), r.wire_message().into_owned())
}

fn one(policy: &str) -> String {
    envelope(1, policy)
}

#[test]
fn policy_data_is_validated_per_type() {
    let cases = [
        (
            r#"{"policy_type":"badName","policy_data":{"enabled":false}}"#,
            "policy_type",
        ),
        (r#"{"policy_type":"metrics"}"#, "policy_data"),
        (r#"{"policy_type":"metrics","policy_data":{}}"#, "enabled"),
        (
            r#"{"policy_type":"metrics","policy_data":{"enabled":"yes"}}"#,
            "enabled",
        ),
        (
            r#"{"policy_type":"allowedIP","policy_data":{"enabled":true}}"#,
            "allowed_ip",
        ),
        (
            r#"{"policy_type":"allowedIP","policy_data":{"enabled":true,"attributes":{"allowed_ip":[]}}}"#,
            "allowed_ip",
        ),
        (
            r#"{"policy_type":"allowedIP","policy_data":{"enabled":true,"attributes":{"allowed_ip":["10.0.0.1"]}}}"#,
            "allowed_ip",
        ),
        (
            r#"{"policy_type":"allowedIP","policy_data":{"enabled":true,"attributes":{"allowed_ip":["10.0.0.0/33"]}}}"#,
            "allowed_ip",
        ),
        (
            r#"{"policy_type":"allowedIP","policy_data":{"enabled":true,"attributes":{"allowed_ip":"10.0.0.0/8"}}}"#,
            "allowed_ip",
        ),
        (
            r#"{"policy_type":"allowedIP","policy_data":{"enabled":true,"attributes":{"allowed_ip":[10]}}}"#,
            "allowed_ip",
        ),
        (
            r#"{"policy_type":"allowedNetwork","policy_data":{"enabled":true}}"#,
            "allowed_network",
        ),
        (
            r#"{"policy_type":"allowedNetwork","policy_data":{"enabled":true,"attributes":{"allowed_network":"public-only"}}}"#,
            "allowed_network",
        ),
        (
            r#"{"policy_type":"keyCreateImportAccess","policy_data":{"enabled":true,"attributes":{"create_root_key":"false"}}}"#,
            "create_root_key",
        ),
        (
            r#"{"policy_type":"keyCreateImportAccess","policy_data":{"enabled":true,"attributes":{"enforce_token":1}}}"#,
            "enforce_token",
        ),
        (
            r#"{"policy_type":"rotation","policy_data":{"enabled":true}}"#,
            "interval_month",
        ),
        (
            r#"{"policy_type":"rotation","policy_data":{"enabled":true,"attributes":{"interval_month":0}}}"#,
            "interval_month",
        ),
        (
            r#"{"policy_type":"rotation","policy_data":{"enabled":true,"attributes":{"interval_month":13}}}"#,
            "interval_month",
        ),
        (
            r#"{"policy_type":"rotation","policy_data":{"enabled":true,"attributes":{"interval_month":2.5}}}"#,
            "interval_month",
        ),
        (
            r#"{"policy_type":"rotation","policy_data":{"enabled":true,"attributes":{"interval_month":"3"}}}"#,
            "interval_month",
        ),
    ];
    for (policy, field) in cases {
        let (reason, target, message) = field_of(&one(policy));
        assert_eq!(reason, Reason::InvalidField, "{policy}: {message}");
        assert_eq!(target, super::tests::field(field), "{policy}");
    }
    let too_many: Vec<String> = (0..=MAX_ALLOWED_IP)
        .map(|i| format!("\"10.{}.{}.0/24\"", i / 256, i % 256))
        .collect();
    let body = one(&format!(
        r#"{{"policy_type":"allowedIP","policy_data":{{"enabled":true,"attributes":{{"allowed_ip":[{}]}}}}}}"#,
        too_many.join(",")
    ));
    assert_eq!(field_of(&body).1, field("allowed_ip"));
}

#[test]
fn interval_month_error_matches_key_protect() {
    let body = one(
        r#"{"policy_type":"rotation","policy_data":{"enabled":true,"attributes":{"interval_month":13}}}"#,
    );
    let r = put(&body, Some("rotation")).unwrap_err();
    assert_eq!(
        r.wire_message(),
        "The field \"interval_month\" must be: an integer between 1 and 12 (inclusive)"
    );
    assert_eq!(
        r.error_msg(),
        "Bad Request: Instance policy could not be created: Please see \"reasons\" for more details (INVALID_FIELD_ERR)"
    );
    assert_eq!(target(&r), field("interval_month"));
}

#[test]
fn valid_policies_of_every_type() {
    let body = envelope(
        6,
        r#"{"policy_type":"allowedIP","policy_data":{"enabled":false,"attributes":{"allowed_ip":[]}}},
           {"policy_type":"allowedNetwork","policy_data":{"enabled":true,"attributes":{"allowed_network":"private-only"}}},
           {"policy_type":"keyCreateImportAccess","policy_data":{"enabled":true,"attributes":{"create_standard_key":false}}},
           {"policy_type":"dualAuthDelete","policy_data":{"enabled":true}},
           {"policy_type":"metrics","policy_data":{"enabled":false}},
           {"policy_type":"rotation","policy_data":{"enabled":false}}"#,
    );
    let policies = put(&body, None).unwrap();
    assert_eq!(
        policies,
        vec![
            Policy::AllowedIp(AllowedIp::default()),
            Policy::AllowedNetwork(AllowedNetwork {
                enabled: true,
                allowed_network: NetworkAccess::PrivateOnly
            }),
            Policy::KeyCreateImportAccess(KeyCreateImportAccess {
                enabled: true,
                create_standard_key: false,
                ..KeyCreateImportAccess::default()
            }),
            Policy::DualAuthDelete(true),
            Policy::Metrics(false),
            Policy::Rotation(Rotation::default()),
        ]
    );
}

#[test]
fn get_documents_parse() {
    // The Go client's all-policies fixture (collectionTotal corrected to 4) plus an allowedIP
    // and a keyCreateImportAccess resource.
    let body = r#"{
      "metadata": {"collectionType": "application/vnd.ibm.kms.policy+json", "collectionTotal": 6},
      "resources": [
        {"createdBy": "abc", "creationDate": "2010-01-01T00:00:00Z", "lastUpdated": "2010-01-01T00:00:00Z",
         "updatedBy": "abc", "policy_type": "dualAuthDelete", "policy_data": {"enabled": true}},
        {"createdBy": "abc", "creationDate": "2010-01-01T00:00:00Z", "lastUpdated": "2010-01-01T00:00:00Z",
         "updatedBy": "abc", "policy_type": "metrics", "policy_data": {"enabled": true}},
        {"createdBy": "abc", "creationDate": "2010-01-01T00:00:00Z", "lastUpdated": "2010-01-01T00:00:00Z",
         "updatedBy": "abc", "policy_type": "allowedNetwork",
         "policy_data": {"enabled": true, "attributes": {"allowed_network": "public-and-private"}}},
        {"createdBy": "abc", "creationDate": "2010-01-01T00:00:00Z", "lastUpdated": "2010-01-01T00:00:00Z",
         "updatedBy": "abc", "policy_type": "rotation", "policy_data": {"enabled": true, "attributes": {"interval_month": 3}}},
        {"createdBy": "abc", "creationDate": "2020-09-02T21:12:26Z", "updatedBy": "abc", "lastUpdated": "2020-09-08T18:31:37Z",
         "policy_type": "allowedIP",
         "policy_data": {"enabled": true, "attributes": {"allowed_ip": ["192.0.2.0/24", "203.0.113.0/32"]}}},
        {"createdBy": "abc", "creationDate": "2020-09-02T21:12:26Z", "updatedBy": "abc", "lastUpdated": "2020-09-08T18:31:37Z",
         "policy_type": "keyCreateImportAccess",
         "policy_data": {"enabled": true, "attributes": {"create_root_key": true, "create_standard_key": false,
           "import_root_key": true, "import_standard_key": false, "enforce_token": true}}}
      ]
    }"#;
    let policies = parse_document(body.as_bytes()).unwrap();
    assert_eq!(policies.dual_auth_delete, Some(true));
    assert_eq!(policies.metrics, Some(true));
    assert_eq!(
        policies.allowed_network,
        Some(AllowedNetwork {
            enabled: true,
            allowed_network: NetworkAccess::PublicAndPrivate
        })
    );
    assert_eq!(
        policies.rotation,
        Some(Rotation {
            enabled: true,
            interval_month: Some(3)
        })
    );
    assert_eq!(policies.allowed_ip.unwrap().allowed_ip.len(), 2);
    let kcia = policies.key_create_import_access.unwrap();
    assert!(
        kcia.enabled
            && !kcia.create_standard_key
            && !kcia.import_standard_key
            && kcia.enforce_token
    );

    // A PUT body is a document too; an instance without policies is an empty one.
    let put_body = envelope(1, DUAL_OFF);
    assert_eq!(
        parse_document(put_body.as_bytes())
            .unwrap()
            .dual_auth_delete,
        Some(false)
    );
    let empty = r#"{"metadata":{"collectionType":"application/vnd.ibm.kms.policy+json","collectionTotal":0},"resources":[]}"#;
    assert_eq!(
        parse_document(empty.as_bytes()).unwrap(),
        InstancePolicies::default()
    );
    // The Go fixture's sloppy total, no metadata, legacy and repeated records are all read.
    let sloppy = envelope(
        1,
        &format!(r#"{DUAL_OFF},{{"policy_type":"metrics","policy_data":{{"enabled":true}}}}"#),
    );
    assert_eq!(
        parse_document(sloppy.as_bytes()).unwrap().metrics,
        Some(true)
    );
    let ip = r#"{"policy_type":"allowedIP","policy_data":{"enabled":true,"attributes":{"allowed_ip":["192.0.2.0/24"]}}}"#;
    let legacy = format!(
        r#"{{"resources":[{ip},{ip},{}]}}"#,
        ip.replace("allowedIP", "ipWhitelist")
    );
    assert_eq!(
        parse_document(legacy.as_bytes())
            .unwrap()
            .allowed_ip
            .unwrap()
            .allowed_ip
            .len(),
        1
    );
    // ... but not in a PUT, and not two different records of one type.
    let repeated = envelope(2, &format!("{ip},{ip}"));
    let r = parse_put(repeated.as_bytes(), None).unwrap_err();
    assert!(
        r.wire_message()
            .ends_with("Only one of each policy can be created")
    );
    let legacy_put = envelope(1, &ip.replace("allowedIP", "ipWhitelist"));
    let r = parse_put(legacy_put.as_bytes(), None).unwrap_err();
    assert_eq!(r.reason(), Reason::InvalidField);
    let other = ip.replace("192.0.2.0/24", "198.51.100.0/24");
    let conflicting = format!(r#"{{"resources":[{ip},{other}]}}"#);
    assert_eq!(
        parse_document(conflicting.as_bytes()).unwrap_err().reason(),
        Reason::BadBody
    );
    assert_eq!(parse_document(b"{}").unwrap_err().reason(), Reason::BadBody);
    // Still validated.
    let bad = envelope(
        1,
        r#"{"policy_type":"rotation","policy_data":{"enabled":true,"attributes":{"interval_month":99}}}"#,
    );
    assert_eq!(
        parse_document(bad.as_bytes()).unwrap_err().reason(),
        Reason::InvalidField
    );
    let extra = envelope(
        1,
        r#"{"policy_type":"metrics","policy_data":{"enabled":true},"owner":"x"}"#,
    );
    assert_eq!(
        parse_document(extra.as_bytes()).unwrap_err().reason(),
        Reason::BadBody
    );
}
