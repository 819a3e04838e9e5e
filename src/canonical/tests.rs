use super::*;

fn p(raw: &str) -> Result<Option<String>, Ambiguity> {
    path(raw)
}

#[test]
fn canonical_paths_take_the_fast_path() {
    for raw in [
        "/api/v2/keys",
        "/api/v2/keys/",
        "/api/v2/keys/0f0e-1/actions/wrap",
        "/",
        "",
        "/a+b;c=d",
        "*",
    ] {
        assert_eq!(p(raw), Ok(None), "{raw}");
    }
}

#[test]
fn escapes_are_decoded_and_only_needed_ones_kept() {
    assert_eq!(p("/api/v2/%6Beys"), Ok(Some("/api/v2/keys".into())));
    assert_eq!(p("/api/v2/%6beys"), Ok(Some("/api/v2/keys".into())));
    assert_eq!(
        p("/api/v2/keys/k1/actions/%72otate"),
        Ok(Some("/api/v2/keys/k1/actions/rotate".into()))
    );
    assert_eq!(
        p("/%61pi/v2/instance/%70olicies"),
        Ok(Some("/api/v2/instance/policies".into()))
    );
    // Already minimal: a space stays escaped, so the path is unchanged.
    assert_eq!(p("/api/v2/keys/a%20b"), Ok(None));
    // `%25` is a literal '%': it stays escaped, never decoded twice.
    assert_eq!(p("/api/v2/keys/a%25b"), Ok(None));
    assert_eq!(p("/api/v2/keys/a%2572"), Ok(None));
    // Lower-case hex in a kept escape becomes upper case.
    assert_eq!(p("/a%c3%a9"), Ok(Some("/a%C3%A9".into())));
}

#[test]
fn dot_and_empty_segments_are_resolved() {
    assert_eq!(p("/api/v2//keys"), Ok(Some("/api/v2/keys".into())));
    assert_eq!(p("/api/v2/x/../keys"), Ok(Some("/api/v2/keys".into())));
    assert_eq!(p("/api/v2/./keys"), Ok(Some("/api/v2/keys".into())));
    assert_eq!(p("/api/v2/x/%2E%2E/keys"), Ok(Some("/api/v2/keys".into())));
    assert_eq!(p("/api/v2/keys/.."), Ok(Some("/api/v2".into())));
    assert_eq!(p("/../../api/v2/keys"), Ok(Some("/api/v2/keys".into())));
    assert_eq!(p("/api/v2/keys/./"), Ok(Some("/api/v2/keys/".into())));
    assert_eq!(p("//"), Ok(Some("/".into())));
}

#[test]
fn ambiguous_paths_are_refused() {
    assert_eq!(p("/api/v2/keys%2Fabc"), Err(Ambiguity::EncodedSlash));
    assert_eq!(p("/api/v2/keys/a%2fb"), Err(Ambiguity::EncodedSlash));
    // A registration's resource CRN keeps its encoded `/` (`a/<account>`), and nothing Go could
    // resolve against the decoded `/`s may follow it.
    let crn = "/api/v2/keys/k/registrations/crn%3Av1%3Ax%3Aa%2Facct%3Ab";
    assert_eq!(
        p(crn),
        Ok(Some(
            "/api/v2/keys/k/registrations/crn:v1:x:a%2Facct:b".to_owned()
        ))
    );
    for tail in ["/..", "/.", "/", "/x/.."] {
        assert_eq!(
            p(&format!("{crn}{tail}")),
            Err(Ambiguity::EncodedSlash),
            "{tail}"
        );
    }
    // Nor inside it: a dot or empty piece between the CRN's own decoded `/`s.
    for inner in [
        "crn%2F..%2F..%2F..%2F..%2Fkeys",
        "a%2F.%2Fb",
        "a%2F%2Fb",
        "%2Fcrn",
        "crn%2F",
        "a%2f..%2fb",
    ] {
        assert_eq!(
            p(&format!("/api/v2/keys/k/registrations/{inner}")),
            Err(Ambiguity::EncodedSlash),
            "{inner}"
        );
    }
    assert_eq!(
        p("/api/v2/keys/a%2Fb/registrations/crn"),
        Err(Ambiguity::EncodedSlash)
    );
    assert_eq!(
        p("/api/v2/keys/k/aliases/a%2Fb"),
        Err(Ambiguity::EncodedSlash)
    );
    assert_eq!(p("/api/v2/keys/a%2"), Err(Ambiguity::BadEscape));
    assert_eq!(p("/api/v2/keys/a%zz"), Err(Ambiguity::BadEscape));
}

#[test]
fn queries_are_read_as_go_reads_them() {
    assert_eq!(query("action=wrap"), Ok(None));
    assert_eq!(query("limit=10&offset=0"), Ok(None));
    assert_eq!(query(""), Ok(None));
    assert_eq!(query("%61ction=rotate"), Ok(Some("action=rotate".into())));
    assert_eq!(query("action=re%73tore"), Ok(Some("action=restore".into())));
    assert_eq!(query("state=1%2C5"), Ok(Some("state=1,5".into())));
    assert_eq!(query("search=a+b"), Ok(Some("search=a%20b".into())));
    assert_eq!(query("a=%2B"), Ok(None));
    assert_eq!(
        query("policy=allowedIP&&x=1%2C"),
        Ok(Some("policy=allowedIP&x=1,".into()))
    );
}

#[test]
fn ambiguous_queries_are_refused() {
    assert_eq!(
        query("action=wrap;action=rotate"),
        Err(Ambiguity::QuerySemicolon)
    );
    assert_eq!(query("x=1;y=2"), Err(Ambiguity::QuerySemicolon));
    assert_eq!(
        query("action=wrap&action=rotate"),
        Err(Ambiguity::DuplicateParam("action"))
    );
    assert_eq!(
        query("action=wrap&%61ction=rotate"),
        Err(Ambiguity::DuplicateParam("action"))
    );
    assert_eq!(
        query("policy=allowedIP&policy=keyCreateImportAccess"),
        Err(Ambiguity::DuplicateParam("policy"))
    );
    assert_eq!(query("action=%zz"), Err(Ambiguity::BadEscape));
    // Other parameters may repeat.
    assert_eq!(query("state=1&state=5"), Ok(None));
}

#[test]
fn instance_ids_in_every_go_spelling() {
    let canonical = "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9";
    for spelling in [
        canonical,
        "1F2E3D4C-5B6A-4978-8695-A4B3C2D1E0F9",
        "{1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9}",
        "urn:uuid:1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9",
        "URN:UUID:1F2E3D4C-5B6A-4978-8695-A4B3C2D1E0F9",
        "1f2e3d4c5b6a49788695a4b3c2d1e0f9",
        // uuid.Parse skips the first and last of 38 bytes without looking at them.
        "(1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9)",
        "x1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9y",
        "}1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9{",
    ] {
        assert_eq!(
            instance_id(spelling).as_deref(),
            Some(canonical),
            "{spelling}"
        );
    }
    assert!(matches!(instance_id(canonical), Some(Cow::Borrowed(_))));
    for other in [
        "inst-1",
        "",
        "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f",
        "1f2e3d4c_5b6a-4978-8695-a4b3c2d1e0f9",
        "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0fg",
        "(1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9))",
        "urn:uuid:1f2e3d4c5b6a49788695a4b3c2d1e0f9",
    ] {
        assert_eq!(instance_id(other), None, "{other}");
    }
}

#[test]
fn hosts() {
    for ok in [
        "kms.example.com",
        "kms.example.com:443",
        "private.us-south.kms.cloud.ibm.com",
        "127.0.0.1:8080",
        "[::1]:8080",
        "[::1]",
        "host:",
        "",
    ] {
        assert_eq!(host(ok), Ok(()), "{ok}");
    }
    for bad in [
        "[private.example.com]",
        "[private.example.com]:80",
        "user@private.example.com",
        "a b",
        "host:port",
        "host:123456",
        "[::1]x",
        "private.example.com,other",
    ] {
        assert_eq!(host(bad), Err(Ambiguity::BadHost), "{bad}");
    }
}
