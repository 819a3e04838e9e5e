use super::*;
use serde_json::Value;

/// The reference error catalogue, laid read-only beside the project.
fn reference() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/reference/key-protect-error-messages.txt"
    );
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// Every (code, status) pair the reference states: a `Reason code: X` line followed by an
/// `NNN - Phrase` line, and every `"code"`/`"status"` pair of its JSON examples.
fn reference_codes(text: &str) -> Vec<(String, Option<u16>)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if let Some(code) = line.strip_prefix("Reason code:") {
            let code = code.trim().to_owned();
            let status = lines[i + 1..lines.len().min(i + 4)].iter().find_map(|l| {
                let (num, rest) = l.split_once(" - ")?;
                (!rest.is_empty()).then_some(())?;
                num.trim().parse::<u16>().ok()
            });
            found.push((code, status));
        }
        if let Some(rest) = line.trim().strip_prefix("\"code\":") {
            let code = rest
                .trim()
                .trim_matches(|c| c == '"' || c == ',' || c == ' ')
                .to_owned();
            let status = lines[i + 1..lines.len().min(i + 4)].iter().find_map(|l| {
                l.trim()
                    .strip_prefix("\"status\":")?
                    .trim()
                    .trim_end_matches(',')
                    .parse::<u16>()
                    .ok()
            });
            found.push((code, status));
        }
    }
    found
}

#[test]
fn every_reference_code_is_in_the_catalogue_with_its_status() {
    let text = reference();
    let codes = reference_codes(&text);
    assert!(
        codes.len() > 30,
        "the reference parser found only {} codes",
        codes.len()
    );
    for (code, status) in codes {
        let reason = Reason::from_code(&code)
            .unwrap_or_else(|| panic!("{code} is in the reference but not in the catalogue"));
        if let Some(status) = status {
            assert_eq!(reason.status().as_u16(), status, "status of {code}");
        }
    }
    // INVALID_FIELD_ERR has no "Reason code:" line, only JSON examples; it must still be found.
    assert!(text.contains("\"code\": \"INVALID_FIELD_ERR\""));
}

#[test]
fn reference_messages_match_the_catalogue() {
    // Each code's catalogue message must be one of the messages the reference's JSON examples
    // send for that code, or such a message's prefix before ": <detail>" (BAD_BODY_ERR).
    // INVALID_FIELD_ERR messages are per field and are checked by the body tests.
    let text = reference();
    let lines: Vec<&str> = text.lines().collect();
    let mut seen: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for (i, line) in lines.iter().enumerate() {
        let Some(rest) = line.trim().strip_prefix("\"code\":") else {
            continue;
        };
        let code = rest
            .trim()
            .trim_matches(|c| c == '"' || c == ',' || c == ' ');
        let Some(message) = lines[i + 1].trim().strip_prefix("\"message\":") else {
            continue;
        };
        let message: String =
            serde_json::from_str(message.trim().trim_end_matches(',')).expect("a JSON string");
        seen.entry(code).or_default().push(message);
    }
    assert!(seen.len() > 15);
    for (code, messages) in seen {
        let reason = Reason::from_code(code).expect("checked above");
        if reason == Reason::InvalidField {
            assert!(
                messages.iter().all(|m| m.starts_with("The field ")),
                "{messages:?}"
            );
            continue;
        }
        let ours = reason.message();
        assert!(
            messages
                .iter()
                .any(|m| m == ours || m.starts_with(&format!("{ours}: "))),
            "{code}: the reference sends {messages:?}, the catalogue says {ours:?}"
        );
    }
}

fn envelope(rejection: &Rejection) -> Value {
    serde_json::from_slice(&rejection.body()).expect("valid JSON")
}

#[test]
fn renders_the_collection_total_mismatch_example() {
    let r = Rejection::new(Reason::CollectionTotalMismatch)
        .operation(Operation::INSTANCE_POLICY_CREATE);
    let expected: Value = serde_json::from_str(r#"{
        "metadata": {"collectionType": "application/vnd.ibm.kms.error+json", "collectionTotal": 1},
        "resources": [{
            "errorMsg": "Bad Request: Instance policy could not be created. Please see `reasons` for more details.",
            "reasons": [{"code": "COLLECTION_TOTAL_MISMATCH_ERR",
                         "message": "Collection total does not match number of resources",
                         "status": 400, "moreInfo": "https://cloud.ibm.com/apidocs/key-protect"}]
        }]}"#).unwrap();
    assert_eq!(envelope(&r), expected);
}

#[test]
fn renders_suffix_style_and_targets() {
    let r = Rejection::invalid_field("plaintext", "a base64 encoded key material")
        .detail("illegal base64 data at input byte 38")
        .operation(Operation::WRAP);
    let v = envelope(&r);
    assert_eq!(
        v["resources"][0]["errorMsg"],
        "Bad Request: Wrap with key could not be performed: Please see `reasons` for more details (INVALID_FIELD_ERR)"
    );
    assert_eq!(
        v["resources"][0]["reasons"][0]["message"],
        "The field `plaintext` must be: a base64 encoded key material: illegal base64 data at input byte 38"
    );
    assert_eq!(v["resources"][0]["reasons"][0]["target"]["type"], "field");
    assert_eq!(
        v["resources"][0]["reasons"][0]["target"]["name"],
        "plaintext"
    );

    let r = Rejection::new(Reason::KeyCreateImportAccess).operation(Operation::KEY_CREATE);
    assert_eq!(
        r.error_msg(),
        "Conflict: Key could not be created: Please see `reasons` for more details (KEY_CREATE_IMPORT_ACCESS_ERR)"
    );
}

#[test]
fn unauthorized_has_no_reasons() {
    let v = envelope(&Rejection::new(Reason::Unauthorized));
    assert_eq!(
        v["resources"][0],
        serde_json::json!({"errorMsg": "Unauthorized: The user does not have access to the specified resource"})
    );
}

#[test]
fn gateway_response_carries_the_reason_header_and_marker() {
    let res = Rejection::new(Reason::UpstreamTimeout).into_response();
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(res.headers()[REASON_HEADER], "UPSTREAM_TIMEOUT_ERR");
    assert_eq!(
        res.extensions().get::<Rejected>(),
        Some(&Rejected(Reason::UpstreamTimeout))
    );
    let backend = Rejection::new(Reason::KeyDeleted).into_backend_response();
    assert!(backend.headers().get(REASON_HEADER).is_none());
}

#[test]
fn codes_are_unique() {
    for (i, a) in Reason::ALL.iter().enumerate() {
        assert_eq!(a.index(), i);
        for b in &Reason::ALL[i + 1..] {
            assert_ne!(a.code(), b.code());
        }
    }
}
