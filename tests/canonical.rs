//! What the gateway checks is what the KMS executes: requests spelled so that a Go KMS would
//! read them differently from a naive reading (percent-encoded routes, instance-id spellings,
//! repeated deciding headers and parameters, a host given twice) are either decided on and
//! forwarded in canonical form, or refused — over real loopback sockets, HTTP/1.1 and h2c, with
//! a recording upstream that shows what was forwarded.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::{Recorder, TestGateway, TestResponse, assert_rejected};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// keyCreateImportAccess: no root keys, imports only with a token.
const LOCKED: &str = "a8b9e8f4-7d0f-4c4f-9b3e-000000000001";
/// allowedNetwork: private-only.
const PRIVATE: &str = "a8b9e8f4-7d0f-4c4f-9b3e-000000000002";
const PRIVATE_HOST: &str = "private.kms.example";

fn document(policy_type: &str, data: &str) -> String {
    format!(
        r#"{{"metadata":{{"collectionType":"application/vnd.ibm.kms.policy+json","collectionTotal":1}},
        "resources":[{{"policy_type":"{policy_type}","policy_data":{data}}}]}}"#
    )
}

async fn gateway(upstream: &Recorder, extra: &str) -> TestGateway {
    let locked = document(
        "keyCreateImportAccess",
        r#"{"enabled":true,"attributes":{"create_root_key":false,"create_standard_key":true,"import_root_key":true,"import_standard_key":true,"enforce_token":true}}"#,
    );
    let private = document(
        "allowedNetwork",
        r#"{"enabled":true,"attributes":{"allowed_network":"private-only"}}"#,
    );
    let toml = format!(
        "[upstream]\nurl = \"{}\"\n[network]\nprivate_hosts = [\"{PRIVATE_HOST}\"]\n{extra}\n\
         [policies.instances]\n\"{LOCKED}\" = '''{locked}'''\n\"{PRIVATE}\" = '''{private}'''\n",
        upstream.url()
    );
    TestGateway::start(&toml).await
}

const ROOT_KEY: &str = r#"{"metadata":{"collectionType":"application/vnd.ibm.kms.key+json","collectionTotal":1},"resources":[{"type":"application/vnd.ibm.kms.key+json","name":"k","extractable":false}]}"#;
const STANDARD_KEY: &str = r#"{"metadata":{"collectionType":"application/vnd.ibm.kms.key+json","collectionTotal":1},"resources":[{"type":"application/vnd.ibm.kms.key+json","name":"k","extractable":true}]}"#;
const ROTATE_WITH_MATERIAL: &str = r#"{"payload":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}"#;

fn assert_refused(res: &TestResponse, status: u16, code: &str, upstream: &Recorder) {
    assert_refused_after(res, status, code, upstream, 0);
}

#[tokio::test]
async fn percent_encoded_routes_are_decided_as_the_route_they_decode_to() {
    let upstream = Recorder::start().await;
    let gw = gateway(&upstream, "").await;
    for h2 in [false, true] {
        for path in [
            "/api/v2/%6Beys",
            "/api/v2/%6beys",
            "/api/v2//keys",
            "/api/v2/x/../keys",
        ] {
            let mut req = gw
                .request("POST", path)
                .header("bluemix-instance", LOCKED)
                .body(ROOT_KEY);
            if h2 {
                req = req.h2();
            }
            let res = req.send().await;
            assert_refused(&res, 409, "KEY_CREATE_IMPORT_ACCESS_ERR", &upstream);
            assert_eq!(
                res.json()["resources"][0]["errorMsg"],
                "Conflict: Key could not be created: Please see `reasons` for more details (KEY_CREATE_IMPORT_ACCESS_ERR)",
                "{path} h2={h2}"
            );
        }
    }
    for (path, what) in [
        ("/api/v2/keys/k1/actions/%72otate", "rotated"),
        ("/api/v2/keys/k1?%61ction=rotate", "rotated"),
        ("/api/v2/keys/k1?action=%72otate", "rotated"),
        ("/api/v2/keys/k1?action=re%73tore", "restored"),
        ("/api/v2/keys/k1/%72estore", "restored"),
    ] {
        let res = gw
            .request("POST", path)
            .header("bluemix-instance", LOCKED)
            .body(ROTATE_WITH_MATERIAL)
            .send()
            .await;
        assert_refused(&res, 409, "KEY_CREATE_IMPORT_ACCESS_ERR", &upstream);
        let msg = res.json()["resources"][0]["errorMsg"].clone();
        assert!(
            msg.as_str().is_some_and(|m| m.contains(what)),
            "{path}: {msg}"
        );
    }
    // The instance-policy route, encoded: its body is checked like the plain route's.
    let res = gw
        .request("PUT", "/api/v2/instance/%70olicies")
        .header("bluemix-instance", LOCKED)
        .body(r#"{"metadata":{"collectionType":"application/vnd.ibm.kms.policy+json","collectionTotal":2},"resources":[{"policy_type":"allowedNetwork","policy_data":{"enabled":true,"attributes":{"allowed_network":"private-only"}}}]}"#)
        .send()
        .await;
    assert_refused(&res, 400, "COLLECTION_TOTAL_MISMATCH_ERR", &upstream);
    assert_eq!(
        res.json()["resources"][0]["errorMsg"],
        "Bad Request: Instance policy could not be created. Please see `reasons` for more details."
    );
}

#[tokio::test]
async fn what_is_forwarded_is_the_canonical_form() {
    let upstream = Recorder::start().await;
    let gw = gateway(&upstream, "").await;
    let res = gw
        .request("POST", "/api/v2/%6Beys")
        .header("bluemix-instance", LOCKED)
        .body(STANDARD_KEY)
        .send()
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let seen = upstream.last();
    assert_eq!(seen.uri.path(), "/api/v2/keys");
    assert_eq!(
        &seen.body[..],
        STANDARD_KEY.as_bytes(),
        "the body is forwarded unchanged"
    );

    let res = gw
        .request("GET", "/api/v2/keys?state=1%2C5&%73earch=a+b")
        .send()
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(
        upstream.last().uri.to_string(),
        "/api/v2/keys?state=1,5&search=a%20b"
    );
    // Already canonical: byte for byte.
    let res = gw
        .request("POST", "/api/v2/keys/k1/actions/wrap?x=%20")
        .body("{}")
        .send()
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(
        upstream.last().uri.to_string(),
        "/api/v2/keys/k1/actions/wrap?x=%20"
    );
}

#[tokio::test]
async fn ambiguous_paths_and_queries_are_refused() {
    let upstream = Recorder::start().await;
    let gw = gateway(&upstream, "").await;
    for (path, code) in [
        ("/api/v2/keys%2Fk1/actions/wrap", "AMBIGUOUS_REQUEST_ERR"),
        ("/api/v2/keys/k1%2factions/wrap", "AMBIGUOUS_REQUEST_ERR"),
        ("/api/v2/keys/k1%zz", "AMBIGUOUS_REQUEST_ERR"),
        // A registration CRN keeps an encoded `/`, but not dot pieces: Go would climb out of
        // the registrations to POST /api/v2/keys.
        (
            "/api/v2/keys/k1/registrations/crn%2F..%2F..%2F..%2F..%2Fkeys",
            "AMBIGUOUS_REQUEST_ERR",
        ),
        (
            "/api/v2/keys/k1?action=wrap&action=rotate",
            "INVALID_QUERY_PARAM_ERR",
        ),
        (
            "/api/v2/keys/k1?action=wrap&%61ction=rotate",
            "INVALID_QUERY_PARAM_ERR",
        ),
        (
            "/api/v2/keys/k1?action=wrap;action=rotate",
            "INVALID_QUERY_PARAM_ERR",
        ),
        ("/api/v2/keys/k1?action=%zz", "INVALID_QUERY_PARAM_ERR"),
    ] {
        let res = gw.request("POST", path).body("{}").send().await;
        assert_refused(&res, 400, code, &upstream);
        let reason = &res.json()["resources"][0]["reasons"][0];
        assert!(
            reason["message"].as_str().is_some_and(|m| m.contains(": ")),
            "the message says which ambiguity: {reason}"
        );
    }
    let res = gw
        .request("POST", "/api/v2/keys/k1?action=wrap&action=rotate")
        .send()
        .await;
    assert_eq!(
        res.json()["resources"][0]["reasons"][0]["target"]["name"],
        "action"
    );
    assert_eq!(
        gw.metric(
            "kmsgate_rejections_total",
            &[("code", "AMBIGUOUS_REQUEST_ERR")]
        )
        .await,
        4.0
    );
}

#[tokio::test]
async fn every_go_spelling_of_an_instance_id_gets_its_policies_and_goes_upstream_canonical() {
    let upstream = Recorder::start().await;
    let gw = gateway(&upstream, "").await;
    let spellings = [
        LOCKED.to_uppercase(),
        format!("{{{LOCKED}}}"),
        format!("urn:uuid:{LOCKED}"),
        format!("URN:UUID:{}", LOCKED.to_uppercase()),
        LOCKED.replace('-', ""),
    ];
    for spelling in &spellings {
        let res = gw
            .request("POST", "/api/v2/keys")
            .header("bluemix-instance", spelling)
            .body(ROOT_KEY)
            .send()
            .await;
        assert_refused(&res, 409, "KEY_CREATE_IMPORT_ACCESS_ERR", &upstream);
    }
    for spelling in &spellings {
        let res = gw
            .request("POST", "/api/v2/keys")
            .header("bluemix-instance", spelling)
            .body(STANDARD_KEY)
            .send()
            .await;
        assert_eq!(res.status, 200);
        assert_eq!(upstream.last().headers["bluemix-instance"], LOCKED);
    }
}

#[tokio::test]
async fn repeated_or_joined_instance_ids_are_refused() {
    let upstream = Recorder::start().await;
    let gw = gateway(&upstream, "").await;
    let other = "a8b9e8f4-7d0f-4c4f-9b3e-0000000000ff";
    let res = gw
        .request("POST", "/api/v2/keys")
        .header("bluemix-instance", other)
        .header("bluemix-instance", LOCKED)
        .body(ROOT_KEY)
        .send()
        .await;
    assert_refused(&res, 400, "AMBIGUOUS_REQUEST_ERR", &upstream);
    for joined in [format!("{other}, {LOCKED}"), format!("{other},{LOCKED}")] {
        let res = gw
            .request("POST", "/api/v2/keys")
            .header("bluemix-instance", &joined)
            .body(ROOT_KEY)
            .send()
            .await;
        assert_refused(&res, 400, "AMBIGUOUS_REQUEST_ERR", &upstream);
    }
}

/// Writes `request` on a new connection and reads the whole answer (`connection: close`).
async fn raw(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the gateway neither answered nor closed");
    String::from_utf8_lossy(&out).into_owned()
}

fn raw_request(target: &str, hosts: &[&str]) -> String {
    let mut request = format!("GET {target} HTTP/1.1\r\n");
    for host in hosts {
        request.push_str(&format!("host: {host}\r\n"));
    }
    request.push_str(&format!(
        "bluemix-instance: {PRIVATE}\r\nconnection: close\r\n\r\n"
    ));
    request
}

/// The status and `kmsgate-reason` of a raw response; for a refusal, also checks that the body
/// is Key Protect's envelope carrying that code.
fn status_and_reason(response: &str) -> (u16, Option<String>) {
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let reason = response
        .lines()
        .find_map(|l| l.strip_prefix("kmsgate-reason: "))
        .map(str::to_owned);
    if let Some(code) = &reason {
        let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        let envelope: serde_json::Value = serde_json::from_str(body)
            .unwrap_or_else(|e| panic!("a refusal's body is JSON ({e}): {body:?}"));
        assert_eq!(
            envelope["metadata"]["collectionType"],
            "application/vnd.ibm.kms.error+json"
        );
        assert_eq!(envelope["metadata"]["collectionTotal"], 1);
        assert_eq!(
            envelope["resources"][0]["reasons"][0]["code"],
            code.as_str()
        );
        assert_eq!(envelope["resources"][0]["reasons"][0]["status"], status);
    }
    (status, reason)
}

#[tokio::test]
async fn the_host_is_read_one_way() {
    let upstream = Recorder::start().await;
    let gw = gateway(&upstream, "").await;
    let public = gw.addrs.public;
    let absolute_public = "http://public.example/api/v2/keys".to_owned();
    let absolute_private = format!("http://{PRIVATE_HOST}/api/v2/keys");
    let ambiguous = Some("AMBIGUOUS_REQUEST_ERR");
    // (request target, Host lines, status, kmsgate-reason)
    let cases: [(&str, &[&str], u16, Option<&str>); 6] = [
        // The plain private host: forwarded.
        ("/api/v2/keys", &[PRIVATE_HOST], 200, None),
        // Two Host lines (RFC 9112: 400) and a bracketed name: refused.
        (
            "/api/v2/keys",
            &[PRIVATE_HOST, "public.example"],
            400,
            ambiguous,
        ),
        (
            "/api/v2/keys",
            &["public.example", PRIVATE_HOST],
            400,
            ambiguous,
        ),
        ("/api/v2/keys", &["[private.kms.example]"], 400, ambiguous),
        // Absolute form: the target's authority is the host, whatever Host says.
        (
            &absolute_public,
            &[PRIVATE_HOST],
            403,
            Some("CONFIG_RULE_CONFLICT_ERR"),
        ),
        (&absolute_private, &["public.example"], 200, None),
    ];
    for (target, hosts, status, reason) in cases {
        let res = raw(public, &raw_request(target, hosts)).await;
        assert_eq!(
            status_and_reason(&res),
            (status, reason.map(str::to_owned)),
            "{target} {hosts:?}: {res}"
        );
    }
    assert_eq!(upstream.count(), 2, "only the two forwarded cases");
    // HTTP/2: `:authority` wins over a `host` header.
    let res = gw
        .request("GET", "/api/v2/keys")
        .h2()
        .header("host", PRIVATE_HOST)
        .header("bluemix-instance", PRIVATE)
        .send()
        .await;
    assert_refused_after(&res, 403, "CONFIG_RULE_CONFLICT_ERR", &upstream, 2);
}

fn assert_refused_after(
    res: &TestResponse,
    status: u16,
    code: &str,
    upstream: &Recorder,
    seen: usize,
) {
    assert_rejected(res, status, code);
    assert_eq!(upstream.count(), seen, "the upstream saw a refused request");
}

#[tokio::test]
async fn methods_no_key_protect_operation_accepts_are_refused() {
    let upstream = Recorder::start().await;
    let gw = gateway(&upstream, "").await;
    for method in ["TRACE", "PROPFIND", "get"] {
        let res = gw.request(method, "/api/v2/keys").send().await;
        assert_refused(&res, 405, "METHOD_NOT_ALLOWED_ERR", &upstream);
    }
    for header in [
        "x-http-method-override",
        "X-HTTP-Method",
        "x-method-override",
    ] {
        let res = gw
            .request("POST", "/api/v2/keys/k1/actions/wrap")
            .header(header, "DELETE")
            .body("{}")
            .send()
            .await;
        assert_refused(&res, 400, "AMBIGUOUS_REQUEST_ERR", &upstream);
    }
    let res = raw(
        gw.addrs.public,
        "CONNECT kms.example:443 HTTP/1.1\r\nhost: kms.example:443\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(
        status_and_reason(&res),
        (405, Some("METHOD_NOT_ALLOWED_ERR".into())),
        "{res}"
    );
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn unknown_routes_are_forwarded_or_refused_as_configured() {
    let upstream = Recorder::start().await;
    let gw = gateway(&upstream, "").await;
    let res = gw.request("GET", "/api/v3/other").send().await;
    assert_eq!(res.status, 200);
    assert_eq!(upstream.count(), 1);

    let upstream = Recorder::start().await;
    let gw = gateway(&upstream, "[routes]\nunknown = \"refuse\"\n").await;
    for path in [
        "/api/v3/other",
        "/API/v2/keys",
        "/api/v2/keys/k1/actions/bogus",
    ] {
        let res = gw.request("POST", path).send().await;
        assert_refused(&res, 404, "UNKNOWN_ROUTE_ERR", &upstream);
    }
    let res = gw.request("GET", "/api/v2/%6Beys").send().await;
    assert_eq!(res.status, 200, "a known route, encoded, is not unknown");
    assert_eq!(
        gw.metric(
            "kmsgate_requests_total",
            &[("route", "key_list"), ("outcome", "forwarded")]
        )
        .await,
        1.0
    );
}

#[tokio::test]
async fn a_repeated_authorization_header_is_refused() {
    let upstream = Recorder::start().await;
    let gw = gateway(
        &upstream,
        "[auth]\nenabled = true\nmode = \"decode-only\"\n",
    )
    .await;
    let token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln";
    let res = gw
        .request("GET", "/api/v2/keys")
        .header("authorization", &format!("Bearer {token}"))
        .send()
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let res = gw
        .request("GET", "/api/v2/keys")
        .header("authorization", &format!("Bearer {token}"))
        .header("authorization", &format!("Bearer {token}"))
        .send()
        .await;
    assert_refused_after(&res, 400, "BEARER_SUB_EXTRACTION_ERR", &upstream, 1);
}

#[tokio::test]
async fn a_policy_file_named_in_another_uuid_spelling_applies_to_the_instance() {
    let dir = std::env::temp_dir().join(format!("kmsgate-canonical-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let locked = document(
        "keyCreateImportAccess",
        r#"{"enabled":true,"attributes":{"create_root_key":false,"create_standard_key":true,"import_root_key":true,"import_standard_key":true,"enforce_token":false}}"#,
    );
    let spelled = format!("{}.json", LOCKED.to_uppercase().replace('-', ""));
    std::fs::write(dir.join(spelled), locked).unwrap();
    let upstream = Recorder::start().await;
    let toml = format!(
        "[upstream]\nurl = \"{}\"\n[policies]\ndir = \"{}\"\n",
        upstream.url(),
        dir.display()
    );
    let gw = TestGateway::start(&toml).await;
    for spelling in [LOCKED.to_owned(), format!("{{{LOCKED}}}")] {
        let res = gw
            .request("POST", "/api/v2/keys")
            .header("bluemix-instance", &spelling)
            .body(ROOT_KEY)
            .send()
            .await;
        assert_refused(&res, 409, "KEY_CREATE_IMPORT_ACCESS_ERR", &upstream);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
