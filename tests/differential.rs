//! The differential test in which Go decides (issue 12, item 5).
//!
//! Key Protect's server is Go. kmsgate decides on *its* reading of a request and the KMS
//! executes *its own*; wherever the two differ, a checked request runs as something else. This
//! test puts a small Go program (`tests/go_oracle`: `net/http`, routing on the decoded path the
//! way gorilla/mux does, `encoding/json` into Key Protect-shaped structs, `uuid.Parse`-style
//! instance ids) behind a real in-process kmsgate, generates thousands of requests — mutations
//! of the reference examples over paths, percent-encodings, both key-action URL styles, query
//! separators, instance-id spellings, Host / absolute-form / `:authority`, duplicate and
//! case-variant JSON keys, Unicode folds, empty strings, nulls, number spellings, framing — and
//! sends each one twice: through the gateway to the oracle, and byte for byte straight to a
//! second oracle, which gives Go's reading of the original. Then:
//!
//! - **forwarded** (the oracle behind the gateway answered) ⇒ the policy verdict of Go's reading
//!   of what was forwarded equals that of Go's reading of the original, and it is "allowed";
//! - **refused** (`kmsgate-reason`) ⇒ the oracle behind the gateway never saw it, and either Go's
//!   reading of the original is refused by the policies (refused by policy), or the code is one of
//!   the gateway's ambiguity codes (`AMBIGUOUS_REQUEST_ERR`, `INVALID_QUERY_PARAM_ERR`) or
//!   shape codes (`BAD_BODY_ERR`, …), counted apart.
//!
//! - **forwarded although Go's HTTP server refuses the original** (a missing or repeated `Host`,
//!   a malformed one): a mismatch too — there is no agreed reading to have checked.
//!
//! The verdict is computed here, in [`verdict`], from a Go reading: keyCreateImportAccess and
//! allowedNetwork semantics, nothing of kmsgate's. A path Go's router would redirect (unclean)
//! or not match is not executed; a refusal is still justified when the clean path's route would
//! be refused ("loose route"). The oracle speaks HTTP/1.1 only (Go 1.19's standard library has
//! no h2c): for an h2c case, Go's reading of the original is that of the same request as
//! HTTP/1.1 with `:authority` as `Host`, as Go's HTTP/2 server reads it.
//!
//! `KMSGATE_DIFF_CASES` (default 10,000), `KMSGATE_DIFF_SEED` (default: the clock; printed
//! first), `KMSGATE_DIFF_SECS` (wall-time bound of the request phase, default 150),
//! `KMSGATE_DIFF_ONLY=<case>` (run one case, print everything about it), `KMSGATE_DIFF_SHOW`
//! (mismatching requests printed per kind, default 3). Each case is generated
//! from the seed and its index alone, so a failing case replays exactly:
//! `KMSGATE_DIFF_SEED=<seed> KMSGATE_DIFF_ONLY=<case> cargo test --test differential -- --nocapture`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::TestGateway;
use support::oracle::{self, GoOracle, H2Request, RawResponse, Reading};

// === The configured world ===

/// keyCreateImportAccess: no root keys, no standard imports, import tokens enforced.
const KCIA_A: &str = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f1";
/// keyCreateImportAccess: no standard keys, no root imports, tokens not enforced.
const KCIA_B: &str = "c0ffee00-1234-4abc-9def-0123456789ab";
/// allowedNetwork private-only.
const NET: &str = "deadbeef-0000-4000-8000-00000000abcd";
/// No policies of its own.
const FREE: &str = "11111111-2222-4333-8444-555555555555";

const PRIVATE_HOST: &str = "private.us-south.kms.cloud.ibm.com";
const PUBLIC_HOST: &str = "us-south.kms.cloud.ibm.com";

#[derive(Clone, Copy, Debug)]
struct Kcia {
    create_root_key: bool,
    create_standard_key: bool,
    import_root_key: bool,
    import_standard_key: bool,
    enforce_token: bool,
}

const POLICY_A: Kcia = Kcia {
    create_root_key: false,
    create_standard_key: true,
    import_root_key: true,
    import_standard_key: false,
    enforce_token: true,
};

const POLICY_B: Kcia = Kcia {
    create_root_key: true,
    create_standard_key: false,
    import_root_key: false,
    import_standard_key: true,
    enforce_token: false,
};

fn kcia_document(p: Kcia) -> String {
    format!(
        r#"{{"metadata":{{"collectionType":"application/vnd.ibm.kms.policy+json","collectionTotal":1}},
"resources":[{{"policy_type":"keyCreateImportAccess","policy_data":{{"enabled":true,"attributes":{{
"create_root_key":{},"create_standard_key":{},"import_root_key":{},"import_standard_key":{},"enforce_token":{}}}}}}}]}}"#,
        p.create_root_key,
        p.create_standard_key,
        p.import_root_key,
        p.import_standard_key,
        p.enforce_token
    )
}

const NET_DOCUMENT: &str = r#"{"metadata":{"collectionType":"application/vnd.ibm.kms.policy+json","collectionTotal":1},
"resources":[{"policy_type":"allowedNetwork","policy_data":{"enabled":true,"attributes":{"allowed_network":"private-only"}}}]}"#;

fn gateway_toml(upstream: &str) -> String {
    format!(
        "[upstream]\nurl = \"{upstream}\"\n\n[log]\naccess_log = false\n\n\
         [network]\nprivate_hosts = [\"{PRIVATE_HOST}\"]\n\n\
         [policies.instances]\n\"{KCIA_A}\" = '''{}'''\n\"{KCIA_B}\" = '''{}'''\n\"{NET}\" = '''{NET_DOCUMENT}'''\n",
        kcia_document(POLICY_A),
        kcia_document(POLICY_B),
    )
}

// === The verdict: Key Protect's policies applied to a Go reading ===

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Allowed,
    /// allowedNetwork private-only, and the request is not private.
    Network,
    /// keyCreateImportAccess (or its enforce_token) refuses it.
    KeyAccess,
}

/// Whether `host` (as Go's `r.Host` reads it) names the private endpoint: port ignored, case
/// ignored, one trailing dot ignored. A bracketed name is an IP literal, never a private name.
fn is_private(host: &str) -> bool {
    if host.starts_with('[') {
        return false;
    }
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    name.eq_ignore_ascii_case(PRIVATE_HOST)
}

/// The policies' answer to the request Go read as `r`, executed as `route`, that came in for
/// `host`. A body Go cannot decode creates nothing (the KMS answers 400).
fn verdict(r: &Reading, route: &str, host: &str) -> Verdict {
    let instance = if r.instance_ok {
        r.instance.as_str()
    } else {
        ""
    };
    if instance == NET && !is_private(host) {
        return Verdict::Network;
    }
    let p = match instance {
        KCIA_A => POLICY_A,
        KCIA_B => POLICY_B,
        _ => return Verdict::Allowed,
    };
    match route {
        "key_create" | "key_create_with_policy_overrides" => {
            let c = &r.create;
            if !c.ok || c.resources == 0 {
                return Verdict::Allowed;
            }
            if c.import && p.enforce_token && !c.token {
                return Verdict::KeyAccess;
            }
            let allowed = match (c.import, c.root) {
                (false, true) => p.create_root_key,
                (false, false) => p.create_standard_key,
                (true, true) => p.import_root_key,
                (true, false) => p.import_standard_key,
            };
            if allowed {
                Verdict::Allowed
            } else {
                Verdict::KeyAccess
            }
        }
        "key_rotate" | "key_restore" => {
            let a = &r.action;
            if a.ok && a.import && p.enforce_token && !a.token {
                Verdict::KeyAccess
            } else {
                Verdict::Allowed
            }
        }
        _ => Verdict::Allowed,
    }
}

/// Whether Go runs a Key Protect operation for this route (not a redirect, not a 404).
fn executes(route: &str) -> bool {
    route != "other" && route != "redirect"
}

/// Whether Go would run the operation: a route that executes, with a body its handler accepts
/// (Key Protect answers a body `encoding/json` cannot decode, or a create without a key, with
/// 400 and does nothing).
fn go_runs(r: &Reading, route: &str) -> bool {
    executes(route)
        && match route {
            "key_create" | "key_create_with_policy_overrides" => {
                r.create.ok && r.create.resources > 0
            }
            "instance_policies_put" => r.policy_put.ok,
            "key_rotate" | "key_restore" | "key_wrap" | "key_unwrap" | "key_rewrap" => r.action.ok,
            _ => true,
        }
}

/// The part of a reading the policies depend on, to tell whether forwarding changed it.
fn decisive(r: &Reading) -> String {
    format!(
        "route={} instance={}({}) create={:?} action={:?} policy={:?}",
        r.route, r.instance, r.instance_ok, r.create, r.action, r.policy_put.types
    )
}

// === A deterministic generator ===

/// SplitMix64: small, fast, and the same everywhere.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with probability `percent`%.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

/// A JSON document that keeps what serde_json would lose: key order, duplicate keys, and the
/// exact text of keys, strings and numbers (escapes included).
#[derive(Clone, Debug)]
enum J {
    /// Keys are raw JSON string contents (between the quotes).
    O(Vec<(String, J)>),
    A(Vec<J>),
    /// Raw JSON string contents.
    S(String),
    B(bool),
    /// A raw number (or any raw JSON text).
    N(String),
    Null,
}

impl J {
    fn write(&self, out: &mut String) {
        match self {
            J::O(members) => {
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push('"');
                    out.push_str(k);
                    out.push_str("\":");
                    v.write(out);
                }
                out.push('}');
            }
            J::A(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write(out);
                }
                out.push(']');
            }
            J::S(s) => {
                out.push('"');
                out.push_str(s);
                out.push('"');
            }
            J::B(b) => out.push_str(if *b { "true" } else { "false" }),
            J::N(n) => out.push_str(n),
            J::Null => out.push_str("null"),
        }
    }

    fn text(&self) -> String {
        let mut s = String::new();
        self.write(&mut s);
        s
    }
}

fn o(members: &[(&str, J)]) -> J {
    J::O(
        members
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    )
}

fn s(v: &str) -> J {
    J::S(v.to_owned())
}

/// Paths (child indices) of every object in `j`.
fn object_paths(j: &J, at: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
    match j {
        J::O(members) => {
            out.push(at.clone());
            for (i, (_, v)) in members.iter().enumerate() {
                at.push(i);
                object_paths(v, at, out);
                at.pop();
            }
        }
        J::A(items) => {
            for (i, v) in items.iter().enumerate() {
                at.push(i);
                object_paths(v, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

fn node_mut<'a>(j: &'a mut J, path: &[usize]) -> &'a mut J {
    match path.split_first() {
        None => j,
        Some((&i, rest)) => match j {
            J::O(members) => node_mut(&mut members[i].1, rest),
            J::A(items) => node_mut(&mut items[i], rest),
            _ => unreachable!("paths lead through containers"),
        },
    }
}

const PAYLOAD: &str = "AAECAwQFBgcICQoLDA0ODw==";
const PAYLOAD_2: &str = "8J+UkfCflJHwn5SR8J+UkQ==";
const NONCE: &str = "DyuDGGCLBl8wL4AwkHuoQL9f+Ds7m9S8mjGHDQ==";
const IV: &str = "puQrzDX7gU1TcTTx";
const CIPHERTEXT: &str = "eyJjaXBoZXJ0ZXh0IjoiYWJjIn0=";
const KEY_ID: &str = "02fd6835-6001-4482-a892-13bd2085f75d";

/// A test case: one request, and how it was made.
#[derive(Clone, Debug)]
struct Case {
    id: usize,
    template: &'static str,
    classes: BTreeSet<&'static str>,
    h2: bool,
    method: String,
    /// Path segments after the leading `/` (raw, already percent-encoded text).
    segments: Vec<String>,
    /// Query pairs (raw text) and the separator between them.
    query: Option<Vec<String>>,
    query_sep: &'static str,
    /// Absolute-form target authority (h1).
    absolute: Option<String>,
    /// `Host` lines (h1), or `:authority` first and then `host` headers (h2).
    hosts: Vec<String>,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    chunked: bool,
    both_lengths: bool,
}

impl Case {
    fn target(&self) -> String {
        let mut t = String::new();
        if let Some(authority) = &self.absolute {
            let _ = write!(t, "http://{authority}");
        }
        t.push('/');
        t.push_str(&self.segments.join("/"));
        if let Some(q) = &self.query {
            t.push('?');
            t.push_str(&q.join(self.query_sep));
        }
        t
    }

    /// The HTTP/1.1 bytes of this request (for h2 cases: Go's HTTP/2 server's reading of it,
    /// `:authority` as the host, as an HTTP/1.1 request).
    fn h1_bytes(&self) -> Vec<u8> {
        let mut head = format!("{} {} HTTP/1.1\r\n", self.method, self.target());
        let hosts: &[String] = if self.h2 {
            &self.hosts[..1.min(self.hosts.len())]
        } else {
            &self.hosts
        };
        for h in hosts {
            let _ = write!(head, "Host: {h}\r\n");
        }
        for (k, v) in &self.headers {
            let _ = write!(head, "{k}: {v}\r\n");
        }
        let _ = write!(head, "X-Diff-Case: {}\r\nConnection: close\r\n", self.id);
        let mut bytes = Vec::new();
        match &self.body {
            Some(body) if self.chunked && !self.h2 => {
                if self.both_lengths {
                    let _ = write!(head, "Content-Length: {}\r\n", body.len());
                }
                head.push_str("Transfer-Encoding: chunked\r\n\r\n");
                bytes.extend_from_slice(head.as_bytes());
                if !body.is_empty() {
                    let mid = body.len() / 2;
                    for part in [&body[..mid], &body[mid..]] {
                        if !part.is_empty() {
                            bytes.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
                            bytes.extend_from_slice(part);
                            bytes.extend_from_slice(b"\r\n");
                        }
                    }
                }
                bytes.extend_from_slice(b"0\r\n\r\n");
            }
            Some(body) => {
                let _ = write!(head, "Content-Length: {}\r\n\r\n", body.len());
                bytes.extend_from_slice(head.as_bytes());
                bytes.extend_from_slice(body);
            }
            None => {
                head.push_str("\r\n");
                bytes.extend_from_slice(head.as_bytes());
            }
        }
        bytes
    }

    fn h2_request(&self) -> H2Request {
        let mut headers: Vec<(String, String)> = self.hosts[1..]
            .iter()
            .map(|h| ("host".to_owned(), h.clone()))
            .collect();
        headers.extend(self.headers.iter().cloned());
        headers.push(("x-diff-case".to_owned(), self.id.to_string()));
        H2Request {
            method: self.method.clone(),
            authority: self.hosts.first().cloned().unwrap_or_default(),
            path: self.target(),
            headers,
            body: self.body.clone().unwrap_or_default(),
        }
    }

    fn describe(&self) -> String {
        let proto = if self.h2 { "h2c" } else { "http/1.1" };
        let mut d = format!(
            "case {} ({}, {proto}; mutations: {:?})\n",
            self.id, self.template, self.classes
        );
        if self.h2 {
            let r = self.h2_request();
            let _ = writeln!(
                d,
                "  :method {} :authority {:?} :path {:?}",
                r.method, r.authority, r.path
            );
            for (k, v) in &r.headers {
                let _ = writeln!(d, "  {k}: {v:?}");
            }
            let _ = writeln!(
                d,
                "  body: {}",
                String::from_utf8_lossy(&r.body).escape_debug()
            );
        } else {
            let _ = writeln!(
                d,
                "  {}",
                String::from_utf8_lossy(&self.h1_bytes()).escape_debug()
            );
        }
        d
    }
}

fn instance_pick(rng: &mut Rng) -> Option<&'static str> {
    match rng.below(100) {
        0..=34 => Some(KCIA_A),
        35..=54 => Some(KCIA_B),
        55..=84 => Some(NET),
        85..=94 => Some(FREE),
        _ => None,
    }
}

fn create_body(rng: &mut Rng, case: &mut Case) -> J {
    let mut resource = vec![
        ("type", s("application/vnd.ibm.kms.key+json")),
        ("name", s("my-key")),
        ("description", s("differential")),
    ];
    match rng.below(8) {
        0 => resource.push(("extractable", J::B(false))),
        1 => resource.push(("extractable", J::B(true))),
        2 => {}
        3 => {
            resource.push(("extractable", J::B(false)));
            resource.push(("payload", s(PAYLOAD)));
            resource.push(("encryptionAlgorithm", s("RSAES_OAEP_SHA_256")));
            resource.push(("encryptedNonce", s(NONCE)));
            resource.push(("iv", s(IV)));
        }
        4 => {
            resource.push(("extractable", J::B(false)));
            resource.push(("payload", s(PAYLOAD)));
        }
        5 => {
            resource.push(("extractable", J::B(true)));
            resource.push(("payload", s(PAYLOAD_2)));
        }
        6 => {
            resource.push(("extractable", J::B(false)));
            resource.push(("payload", s(PAYLOAD)));
            resource.push(("encryptedNonce", s("")));
            resource.push(("iv", s("")));
            case.classes.insert("body-empty-string");
        }
        _ => {
            resource.push(("extractable", J::B(true)));
            resource.push(("payload", s(PAYLOAD_2)));
            resource.push(("encryptedNonce", s(NONCE)));
            resource.push(("iv", s(IV)));
        }
    }
    o(&[
        (
            "metadata",
            o(&[
                ("collectionType", s("application/vnd.ibm.kms.key+json")),
                ("collectionTotal", J::N("1".into())),
            ]),
        ),
        ("resources", J::A(vec![o(&resource)])),
    ])
}

fn material_body(rng: &mut Rng, case: &mut Case) -> Option<J> {
    match rng.below(6) {
        0 => None,
        1 => Some(o(&[])),
        2 => Some(o(&[("payload", s(PAYLOAD))])),
        3 => Some(o(&[
            ("payload", s(PAYLOAD)),
            ("encryptionAlgorithm", s("RSAES_OAEP_SHA_256")),
            ("encryptedNonce", s(NONCE)),
            ("iv", s(IV)),
        ])),
        4 => {
            case.classes.insert("body-empty-string");
            Some(o(&[
                ("payload", s(PAYLOAD)),
                ("encryptedNonce", s("")),
                ("iv", s("")),
            ]))
        }
        _ => Some(o(&[("payload", s(PAYLOAD)), ("encryptedNonce", s(NONCE))])),
    }
}

fn policy_resource(rng: &mut Rng) -> (&'static str, J) {
    let (ty, data) = match rng.below(4) {
        0 => (
            "keyCreateImportAccess",
            o(&[
                ("enabled", J::B(true)),
                (
                    "attributes",
                    o(&[
                        ("create_root_key", J::B(true)),
                        ("create_standard_key", J::B(false)),
                        ("import_root_key", J::B(true)),
                        ("import_standard_key", J::B(true)),
                        ("enforce_token", J::B(true)),
                    ]),
                ),
            ]),
        ),
        1 => (
            "allowedNetwork",
            o(&[
                ("enabled", J::B(true)),
                (
                    "attributes",
                    o(&[("allowed_network", s("public-and-private"))]),
                ),
            ]),
        ),
        2 => (
            "allowedIP",
            o(&[
                ("enabled", J::B(true)),
                (
                    "attributes",
                    o(&[("allowed_ip", J::A(vec![s("10.0.0.0/8"), s("192.0.2.0/24")]))]),
                ),
            ]),
        ),
        _ => ("dualAuthDelete", o(&[("enabled", J::B(false))])),
    };
    (ty, o(&[("policy_type", s(ty)), ("policy_data", data)]))
}

const ACTIONS: &[&str] = &[
    "wrap",
    "unwrap",
    "rewrap",
    "rotate",
    "restore",
    "enable",
    "disable",
    "setKeyForDeletion",
    "unsetKeyForDeletion",
    "sync",
];

fn segs(path: &str) -> Vec<String> {
    path.trim_start_matches('/')
        .split('/')
        .map(str::to_owned)
        .collect()
}

/// A request from the reference examples, before mutation.
fn template(rng: &mut Rng, case: &mut Case) -> Option<J> {
    let roll = rng.below(100);
    if roll < 32 {
        case.template = "create";
        case.method = "POST".into();
        case.segments = if rng.chance(12) {
            segs("api/v2/keys_with_policy_overrides")
        } else {
            segs("api/v2/keys")
        };
        case.headers.push((
            "Content-Type".into(),
            "application/vnd.ibm.kms.key+json".into(),
        ));
        case.headers
            .push(("Prefer".into(), "return=representation".into()));
        Some(create_body(rng, case))
    } else if roll < 70 {
        // Rotate and restore, the actions a policy governs, more often than the rest.
        let action = if rng.chance(50) {
            *rng.pick(&["rotate", "restore"])
        } else {
            *rng.pick(ACTIONS)
        };
        case.template = "action";
        case.method = "POST".into();
        if rng.chance(50) {
            case.segments = segs(&format!("api/v2/keys/{KEY_ID}"));
            case.query = Some(vec![format!("action={action}")]);
        } else if action == "restore" {
            case.segments = segs(&format!("api/v2/keys/{KEY_ID}/restore"));
        } else {
            case.segments = segs(&format!("api/v2/keys/{KEY_ID}/actions/{action}"));
        }
        case.headers.push((
            "Content-Type".into(),
            "application/vnd.ibm.kms.key_action+json".into(),
        ));
        match action {
            "wrap" => Some(o(&[("plaintext", s(PAYLOAD))])),
            "unwrap" | "rewrap" => Some(o(&[("ciphertext", s(CIPHERTEXT))])),
            "rotate" | "restore" => material_body(rng, case),
            _ => rng.chance(50).then_some(J::Null),
        }
    } else if roll < 85 {
        case.template = "policy_put";
        case.method = "PUT".into();
        case.segments = segs("api/v2/instance/policies");
        let (ty, first) = policy_resource(rng);
        let mut resources = vec![first];
        if rng.chance(30) {
            let (ty2, second) = policy_resource(rng);
            if ty2 != ty {
                resources.push(second);
            }
        } else if rng.chance(50) {
            case.query = Some(vec![format!("policy={ty}")]);
        }
        case.headers
            .push(("Content-Type".into(), "application/json".into()));
        Some(o(&[
            (
                "metadata",
                o(&[
                    ("collectionType", s("application/vnd.ibm.kms.policy+json")),
                    ("collectionTotal", J::N(resources.len().to_string())),
                ]),
            ),
            ("resources", J::A(resources)),
        ]))
    } else {
        case.template = "read";
        let reads = [
            ("GET", "api/v2/keys".to_owned()),
            ("GET", format!("api/v2/keys/{KEY_ID}")),
            ("GET", format!("api/v2/keys/{KEY_ID}/metadata")),
            ("DELETE", format!("api/v2/keys/{KEY_ID}")),
            ("GET", "api/v2/instance/policies".to_owned()),
        ];
        let (method, path) = rng.pick(&reads);
        case.method = (*method).into();
        case.segments = segs(path);
        None
    }
}

// --- Mutations ---

fn hex_escape(rng: &mut Rng, c: u8) -> String {
    if rng.chance(50) {
        format!("%{c:02X}")
    } else {
        format!("%{c:02x}")
    }
}

/// Indices of plain (not escape-sequence) alphanumeric bytes of `seg`.
fn plain_positions(seg: &str) -> Vec<usize> {
    let b = seg.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            i += 3;
            continue;
        }
        if b[i].is_ascii_alphanumeric() || b[i] == b'_' {
            out.push(i);
        }
        i += 1;
    }
    out
}

fn pct_one(rng: &mut Rng, seg: &str) -> Option<String> {
    let positions = plain_positions(seg);
    if positions.is_empty() {
        return None;
    }
    let i = *rng.pick(&positions);
    let esc = hex_escape(rng, seg.as_bytes()[i]);
    Some(format!("{}{}{}", &seg[..i], esc, &seg[i + 1..]))
}

fn mutate_path(rng: &mut Rng, case: &mut Case) {
    let n = case.segments.len();
    match rng.below(9) {
        0 | 1 => {
            let i = rng.below(n);
            if let Some(seg) = pct_one(rng, &case.segments[i]) {
                case.segments[i] = seg;
                case.classes.insert("path-pct");
            }
        }
        2 => {
            // Every byte of a segment encoded.
            let i = rng.below(n);
            let seg = case.segments[i].clone();
            case.segments[i] = seg.bytes().map(|c| hex_escape(rng, c)).collect();
            case.classes.insert("path-pct");
        }
        3 => {
            if n >= 2 {
                let i = rng.below(n - 1);
                let slash = if rng.chance(50) { "%2F" } else { "%2f" };
                let joined = format!("{}{slash}{}", case.segments[i], case.segments[i + 1]);
                case.segments.splice(i..i + 2, [joined]);
                case.classes.insert("path-encoded-slash");
            }
        }
        4 => {
            let i = rng.below(n + 1);
            let dots: &[&[&str]] = &[&["."], &["x", ".."], &["%2e"], &["v2", "%2E%2e"], &[".."]];
            let ins = rng.pick(dots);
            case.segments
                .splice(i..i, ins.iter().map(|s| (*s).to_owned()));
            case.classes.insert("path-dot");
        }
        5 => {
            let i = rng.below(n + 1);
            case.segments.insert(i, String::new());
            case.classes.insert("path-double-slash");
        }
        6 => {
            case.segments.push(String::new());
            case.classes.insert("path-trailing-slash");
        }
        7 => {
            let i = rng.below(n);
            let seg = &case.segments[i];
            case.segments[i] = if rng.chance(50) {
                seg.to_ascii_uppercase()
            } else {
                let mut c = seg.clone();
                if let Some(f) = c.get_mut(..1) {
                    f.make_ascii_uppercase();
                }
                c
            };
            case.classes.insert("path-case");
        }
        _ => {
            // Double encoding: %25 then the hex of a letter ("%256B" decodes to "%6B").
            let i = rng.below(n);
            if let Some(seg) = pct_one(rng, &case.segments[i]) {
                case.segments[i] = seg.replacen('%', "%25", 1);
                case.classes.insert("path-double-pct");
            }
        }
    }
}

fn mutate_query(rng: &mut Rng, case: &mut Case) {
    let q = case.query.get_or_insert_with(Vec::new);
    match rng.below(8) {
        0 => {
            // A second action, before or after.
            let other = format!(
                "action={}",
                ["rotate", "wrap", "restore", "bogus"][rng.below(4)]
            );
            if rng.chance(50) {
                q.push(other);
            } else {
                q.insert(0, other);
            }
            case.classes.insert("query-duplicate");
        }
        1 => {
            case.query_sep = ";";
            if q.len() < 2 {
                q.insert(0, "x=1".into());
            }
            case.classes.insert("query-semicolon");
        }
        2 => {
            if !q.is_empty() {
                let i = rng.below(q.len());
                if let Some(p) = pct_one(rng, &q[i]) {
                    q[i] = p;
                    case.classes.insert("query-pct");
                }
            }
        }
        3 => {
            // Both URL styles at once, or ?action= where none was.
            q.push("action=rotate".into());
            case.classes.insert("query-action-added");
        }
        4 => {
            for p in q.iter_mut() {
                if let Some(v) = p.strip_prefix("action=") {
                    *p = format!("ACTION={v}");
                }
            }
            q.push("Action=rotate".into());
            case.classes.insert("query-case");
        }
        5 => {
            for p in q.iter_mut() {
                if p.starts_with("action=") {
                    p.push_str(["+", "%20", "%00", "&"][rng.below(4)]);
                }
            }
            case.classes.insert("query-value-suffix");
        }
        6 => {
            q.push(String::new());
            q.insert(0, "action=".into());
            case.classes.insert("query-empty");
        }
        _ => {
            // Decoded '&' and '=' inside a value.
            q.insert(0, "x=%26action%3Drotate".into());
            case.classes.insert("query-encoded-separator");
        }
    }
}

/// A spelling of `id` (canonical) that some reader takes for the same UUID.
fn instance_spelling(rng: &mut Rng, id: &str, case: &mut Case) -> String {
    match rng.below(10) {
        0 => {
            case.classes.insert("instance-upper");
            id.to_ascii_uppercase()
        }
        1 => {
            case.classes.insert("instance-mixed-case");
            id.chars()
                .map(|c| {
                    if rng.chance(50) {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect()
        }
        2 => {
            case.classes.insert("instance-braces");
            format!("{{{id}}}")
        }
        3 => {
            case.classes.insert("instance-braces");
            let (a, b) = *rng.pick(&[("x", "y"), ("(", ")"), ("{", "{"), ("}", "{")]);
            format!("{a}{id}{b}")
        }
        4 => {
            case.classes.insert("instance-urn");
            let prefix = *rng.pick(&["urn:uuid:", "URN:UUID:", "Urn:Uuid:"]);
            format!("{prefix}{id}")
        }
        5 => {
            case.classes.insert("instance-no-hyphens");
            id.replace('-', "")
        }
        6 => {
            case.classes.insert("instance-whitespace");
            format!(
                "{}{id}{}",
                rng.pick(&[" ", "\t", "  "]),
                rng.pick(&["", " ", "\t"])
            )
        }
        7 => {
            case.classes.insert("instance-invalid");
            format!("{}g", &id[..35])
        }
        8 => {
            case.classes.insert("instance-urn");
            format!("urn:uuid:{}", id.to_ascii_uppercase())
        }
        _ => {
            case.classes.insert("instance-no-hyphens");
            id.replace('-', "").to_ascii_uppercase()
        }
    }
}

fn mutate_instance(rng: &mut Rng, case: &mut Case, id: Option<&'static str>) {
    let name = |rng: &mut Rng| {
        (*rng.pick(&["bluemix-instance", "Bluemix-Instance", "BLUEMIX-INSTANCE"])).to_owned()
    };
    let other = *rng.pick(&[KCIA_A, KCIA_B, NET, FREE]);
    let id = id.unwrap_or(FREE);
    case.headers
        .retain(|(k, _)| !k.eq_ignore_ascii_case("bluemix-instance"));
    match rng.below(5) {
        0 | 1 => {
            let v = instance_spelling(rng, id, case);
            case.headers.push((name(rng), v));
        }
        2 => {
            // Two lines.
            let (a, b) = if rng.chance(50) {
                (id, other)
            } else {
                (other, id)
            };
            let a = if rng.chance(30) {
                instance_spelling(rng, a, case)
            } else {
                a.to_owned()
            };
            case.headers.push((name(rng), a));
            case.headers.push((name(rng), b.to_owned()));
            case.classes.insert("instance-duplicate");
        }
        3 => {
            let sep = *rng.pick(&[", ", ",", " , "]);
            let v = if rng.chance(50) {
                format!("{id}{sep}{other}")
            } else {
                format!("{other}{sep}{id}")
            };
            case.headers.push((name(rng), v));
            case.classes.insert("instance-comma-joined");
        }
        _ => {
            case.classes.insert("instance-missing");
        }
    }
}

fn mutate_host(rng: &mut Rng, case: &mut Case) {
    let private_first = rng.chance(50);
    let (a, b) = if private_first {
        (PRIVATE_HOST, PUBLIC_HOST)
    } else {
        (PUBLIC_HOST, PRIVATE_HOST)
    };
    match rng.below(7) {
        0 if !case.h2 => {
            case.hosts = vec![a.into(), b.into()];
            case.classes.insert("host-duplicate");
        }
        1 if !case.h2 => {
            case.absolute = Some(a.into());
            case.hosts = vec![b.into()];
            case.classes.insert("host-absolute-form");
        }
        2 => {
            case.hosts = vec![
                (*rng.pick(&[
                    "PRIVATE.US-SOUTH.kms.cloud.ibm.com:443",
                    "private.us-south.kms.cloud.ibm.com.",
                    "private.us-south.kms.cloud.ibm.com:8443",
                    "Private.Us-South.Kms.Cloud.Ibm.Com",
                ]))
                .into(),
            ];
            case.classes.insert("host-spelling");
        }
        3 => {
            case.hosts = vec![
                (*rng.pick(&[
                    "[private.us-south.kms.cloud.ibm.com]",
                    "[private.us-south.kms.cloud.ibm.com]:443",
                    "private.us-south.kms.cloud.ibm.com, us-south.kms.cloud.ibm.com",
                    "us-south.kms.cloud.ibm.com, private.us-south.kms.cloud.ibm.com",
                    "private.us-south.kms.cloud.ibm.com:",
                    "private.us-south.kms.cloud.ibm.com:443:443",
                    "user@private.us-south.kms.cloud.ibm.com",
                ]))
                .into(),
            ];
            case.classes.insert("host-malformed");
        }
        4 if case.h2 => {
            // :authority and a host header that disagree.
            case.hosts = vec![a.into(), b.into()];
            case.classes.insert("h2-authority-vs-host");
        }
        5 if !case.h2 => {
            case.hosts.clear();
            case.classes.insert("host-missing");
        }
        _ => {
            case.hosts = vec![a.into()];
            if case.h2 {
                case.hosts.push(a.into());
            }
            case.classes.insert("host-plain");
        }
    }
}

/// A case or Unicode-fold variant of a JSON key (Go's encoding/json matches keys under simple
/// case folding: `ſ` is `s`, `K` (Kelvin) is `k`).
fn key_variant(rng: &mut Rng, key: &str, case: &mut Case) -> String {
    let folds = key.chars().any(|c| matches!(c, 's' | 'S' | 'k' | 'K'));
    if folds && rng.chance(40) {
        case.classes.insert("body-unicode-fold");
        let mut done = false;
        return key
            .chars()
            .map(|c| match c {
                's' | 'S' if !done || rng.chance(50) => {
                    done = true;
                    if rng.chance(30) {
                        "\\u017f".to_owned()
                    } else {
                        "ſ".to_owned()
                    }
                }
                'k' | 'K' if !done || rng.chance(50) => {
                    done = true;
                    "\u{212A}".to_owned()
                }
                c => c.to_string(),
            })
            .collect();
    }
    case.classes.insert("body-key-case");
    match rng.below(3) {
        0 => key.to_ascii_uppercase(),
        1 => {
            let mut k = key.to_owned();
            if let Some(f) = k.get_mut(..1) {
                f.make_ascii_uppercase();
            }
            k
        }
        _ => key
            .chars()
            .map(|c| {
                if rng.chance(50) {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect(),
    }
}

/// Another value for a member whose value is `v`.
fn other_value(rng: &mut Rng, v: &J, case: &mut Case) -> J {
    match v {
        J::B(b) => match rng.below(3) {
            0 => J::B(!b),
            1 => {
                case.classes.insert("body-null");
                J::Null
            }
            _ => J::B(*b),
        },
        J::S(_) => match rng.below(4) {
            0 => {
                case.classes.insert("body-empty-string");
                s("")
            }
            1 => {
                case.classes.insert("body-null");
                J::Null
            }
            2 => s(PAYLOAD_2),
            _ => s(NONCE),
        },
        J::A(items) => {
            case.classes.insert("body-nested-duplicate");
            match rng.below(4) {
                0 => J::A(vec![]),
                1 => J::A(vec![o(&[("extractable", J::B(true))])]),
                2 => J::A(vec![o(&[("extractable", J::Null)])]),
                _ => {
                    let mut items = items.clone();
                    if let Some(J::O(members)) = items.first_mut() {
                        let n = members.len();
                        if n > 0 {
                            members.remove(rng.below(n));
                        }
                        members.push(("payload".into(), s("")));
                    }
                    J::A(items)
                }
            }
        }
        J::O(members) => {
            case.classes.insert("body-nested-duplicate");
            let mut members = members.clone();
            if !members.is_empty() && rng.chance(50) {
                let i = rng.below(members.len());
                members.remove(i);
            }
            J::O(members)
        }
        J::N(_) => J::N((*rng.pick(&["1", "2", "0"])).into()),
        J::Null => s(""),
    }
}

const NUMBER_SPELLINGS: &[&str] = &[
    "1.0",
    "1e0",
    "1E0",
    "10e-1",
    "0.1e1",
    "-0",
    "0",
    "2",
    "1.5",
    "\"1\"",
    "01",
    "1.",
    "+1",
    "true",
    "null",
    "100000000000000000000",
];

/// The issue's example C: a second `resources` array (any spelling) whose elements lack the
/// key material of the first. `encoding/json` decodes it *into* the first array's elements
/// (golang/go#21092), so Go keeps the material; a last-wins reader drops it.
fn duplicate_array(rng: &mut Rng, case: &mut Case, body: &mut J) -> bool {
    let J::O(top) = body else { return false };
    let Some(i) = top
        .iter()
        .position(|(k, v)| k.eq_ignore_ascii_case("resources") && matches!(v, J::A(_)))
    else {
        return false;
    };
    let key = top[i].0.clone();
    let J::A(items) = &top[i].1 else { return false };
    let second: Vec<J> = items
        .iter()
        .map(|item| match item {
            J::O(members) => J::O(
                members
                    .iter()
                    .filter(|(k, _)| {
                        !["payload", "encryptedNonce", "iv"]
                            .iter()
                            .any(|m| k.eq_ignore_ascii_case(m))
                    })
                    .cloned()
                    .collect(),
            ),
            other => other.clone(),
        })
        .collect();
    let key2 = if rng.chance(50) {
        key_variant(rng, &key, case)
    } else {
        key
    };
    top.insert(i + 1, (key2, J::A(second)));
    case.classes.insert("body-duplicate-array");
    true
}

fn mutate_body(rng: &mut Rng, case: &mut Case, body: &mut J) {
    if rng.chance(12) && duplicate_array(rng, case, body) {
        return;
    }
    let mut paths = Vec::new();
    object_paths(body, &mut Vec::new(), &mut paths);
    // Objects with members.
    paths.retain(|p| matches!(node_mut(body, p), J::O(m) if !m.is_empty()));
    let Some(path) = (!paths.is_empty()).then(|| paths[rng.below(paths.len())].clone()) else {
        return;
    };
    let roll = rng.below(11);
    let J::O(members) = node_mut(body, &path) else {
        return;
    };
    let i = rng.below(members.len());
    match roll {
        0..=2 => {
            // A duplicate member: same or variant spelling, another value, before or after.
            let (key, value) = members[i].clone();
            let key2 = if rng.chance(50) {
                key_variant(rng, &key, case)
            } else {
                key.clone()
            };
            let value2 = other_value(rng, &value, case);
            let at = if rng.chance(50) { i + 1 } else { i };
            members.insert(at, (key2, value2));
            case.classes.insert("body-duplicate-key");
        }
        3 | 4 => {
            let key = members[i].0.clone();
            members[i].0 = key_variant(rng, &key, case);
        }
        5 => {
            if let J::S(_) = members[i].1 {
                members[i].1 = s("");
                case.classes.insert("body-empty-string");
            } else {
                members[i].1 = J::Null;
                case.classes.insert("body-null");
            }
        }
        6 => {
            members[i].1 = J::Null;
            case.classes.insert("body-null");
        }
        7 => {
            members.remove(i);
            case.classes.insert("body-member-removed");
        }
        8 => {
            // A key character as a JSON \u escape.
            let key = members[i].0.clone();
            let positions: Vec<usize> = key
                .bytes()
                .enumerate()
                .filter(|(_, b)| b.is_ascii_alphabetic())
                .map(|(i, _)| i)
                .collect();
            if !positions.is_empty() {
                let p = *rng.pick(&positions);
                members[i].0 =
                    format!("{}\\u{:04x}{}", &key[..p], key.as_bytes()[p], &key[p + 1..]);
                case.classes.insert("body-key-escape");
            }
        }
        9 => {
            // Number spellings, wherever a number is.
            let n = members
                .iter()
                .position(|(_, v)| matches!(v, J::N(_)))
                .unwrap_or(i);
            members[n].1 = J::N((*rng.pick(NUMBER_SPELLINGS)).into());
            case.classes.insert("body-number");
        }
        _ => {
            members.insert(i, ("unknownField".into(), s("x")));
            case.classes.insert("body-unknown-field");
        }
    }
}

/// Whole-body mutations that are not about one member.
fn mutate_body_text(rng: &mut Rng, case: &mut Case, text: &mut Vec<u8>) {
    match rng.below(6) {
        0 => {
            *text = b"null".to_vec();
            case.classes.insert("body-whole-null");
        }
        1 => {
            text.clear();
            case.classes.insert("body-whole-empty");
        }
        2 => {
            text.extend_from_slice(b" {}");
            case.classes.insert("body-trailing-data");
        }
        3 => {
            let mut bom = "\u{feff}".as_bytes().to_vec();
            bom.extend_from_slice(text);
            *text = bom;
            case.classes.insert("body-bom");
        }
        4 => {
            // `\/` and `\u` escapes inside string values.
            let t =
                String::from_utf8_lossy(text).replace(PAYLOAD, "AAECAwQFBgcICQoLDA0ODw\\u003d=");
            *text = t.replace("+", "\\u002b").into_bytes();
            case.classes.insert("body-value-escape");
        }
        _ => {
            *text = format!(" \r\n\t{}\n ", String::from_utf8_lossy(text)).into_bytes();
            case.classes.insert("body-whitespace");
        }
    }
}

fn generate(seed: u64, id: usize) -> Case {
    let mut rng = Rng::new(seed ^ (id as u64).wrapping_mul(0xA076_1D64_78BD_642F));
    rng.next();
    let mut case = Case {
        id,
        template: "",
        classes: BTreeSet::new(),
        h2: rng.chance(15),
        method: String::new(),
        segments: Vec::new(),
        query: None,
        query_sep: "&",
        absolute: None,
        hosts: vec![
            if rng.chance(25) {
                PRIVATE_HOST
            } else {
                PUBLIC_HOST
            }
            .into(),
        ],
        headers: Vec::new(),
        body: None,
        chunked: false,
        both_lengths: false,
    };
    let mut body = template(&mut rng, &mut case);
    let instance = instance_pick(&mut rng);
    if let Some(id) = instance {
        case.headers
            .insert(0, ("bluemix-instance".into(), id.to_owned()));
    }
    case.headers
        .push(("authorization".into(), "Bearer test-token".into()));

    let mutations = *rng.pick(&[0, 1, 1, 2, 2, 2, 3, 3, 4]);
    let mut text_mutation = false;
    for _ in 0..mutations {
        match rng.below(100) {
            0..=21 => mutate_path(&mut rng, &mut case),
            22..=31 => mutate_query(&mut rng, &mut case),
            32..=53 => mutate_instance(&mut rng, &mut case, instance),
            54..=65 => mutate_host(&mut rng, &mut case),
            66..=92 => match body.as_mut() {
                Some(b) => mutate_body(&mut rng, &mut case, b),
                None => mutate_path(&mut rng, &mut case),
            },
            93..=95 => text_mutation = true,
            96..=97 => {
                case.method = case.method.to_ascii_lowercase();
                case.classes.insert("method-case");
            }
            _ => {
                if !case.h2 {
                    case.chunked = true;
                    case.both_lengths = rng.chance(30);
                    case.classes.insert(if case.both_lengths {
                        "framing-cl-and-te"
                    } else {
                        "framing-chunked"
                    });
                }
            }
        }
    }
    if let Some(b) = body {
        let mut text = b.text().into_bytes();
        if text_mutation {
            mutate_body_text(&mut rng, &mut case, &mut text);
        }
        case.body = Some(text);
    }
    if case.classes.is_empty() {
        case.classes.insert("unmutated");
    }
    if case.h2 && case.h2_request().to_http().is_err() {
        // hyper cannot say it over HTTP/2 (a Host value that is no authority): send it as h1.
        case.h2 = false;
    }
    if case.h2 {
        case.classes.insert("h2c");
    }
    case
}

// === Running a case ===

/// What the gateway did with a request.
#[derive(Clone, Debug)]
enum Outcome {
    /// The oracle behind the gateway answered: its reading of what was forwarded.
    Forwarded(Box<Reading>),
    /// Forwarded, and Go's HTTP server refused it before any handler ran.
    ForwardedGoRejected(u16, String),
    /// Refused by the gateway with a reason code.
    Refused(u16, String),
    /// Refused by the gateway's HTTP layer (no reason code, not from Go).
    HttpRejected(u16),
    /// No response.
    Failed(String),
}

fn outcome(res: Result<RawResponse, String>) -> Outcome {
    let res = match res {
        Ok(res) => res,
        Err(e) => return Outcome::Failed(e),
    };
    if let Some(code) = res.header("kmsgate-reason") {
        return Outcome::Refused(res.status, code.to_owned());
    }
    if let Some(reading) = res.reading() {
        return Outcome::Forwarded(Box::new(reading));
    }
    // Go's server answers a request it cannot parse with "400 Bad Request: why" as text.
    let text = String::from_utf8_lossy(&res.body).into_owned();
    if text.starts_with(&format!("{} ", res.status)) {
        return Outcome::ForwardedGoRejected(res.status, text);
    }
    Outcome::HttpRejected(res.status)
}

/// Go's reading of the original request (None: Go's HTTP server refuses it).
fn direct_reading(res: &Result<RawResponse, String>) -> Option<Reading> {
    res.as_ref().ok().and_then(RawResponse::reading)
}

const TIMEOUT: Duration = Duration::from_secs(20);

struct Ran {
    case: Case,
    original: Option<Reading>,
    original_raw: String,
    outcome: Outcome,
}

async fn run_case(case: Case, gateway: SocketAddr, direct: SocketAddr) -> Ran {
    let h1 = case.h1_bytes();
    let through = async {
        if case.h2 {
            match case.h2_request().to_http() {
                Ok(req) => oracle::send_h2(gateway, req, TIMEOUT).await,
                Err(e) => Err(format!("not expressible over h2: {e}")),
            }
        } else {
            oracle::send_raw(gateway, &h1, TIMEOUT).await
        }
    };
    let (gw, orig) = tokio::join!(through, oracle::send_raw(direct, &h1, TIMEOUT));
    let original = direct_reading(&orig);
    let original_raw = match &orig {
        Ok(r) if original.is_none() => format!(
            "Go refused the original: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body).trim()
        ),
        Ok(_) => String::new(),
        Err(e) => format!("no answer from Go: {e}"),
    };
    Ran {
        case,
        original,
        original_raw,
        outcome: outcome(gw),
    }
}

// === Judging ===

/// The gateway's codes for input it cannot read one way only.
const AMBIGUITY_CODES: &[&str] = &["AMBIGUOUS_REQUEST_ERR", "INVALID_QUERY_PARAM_ERR"];
/// The gateway's (Key Protect's) codes for malformed bodies and queries.
const SHAPE_CODES: &[&str] = &[
    "BAD_BODY_ERR",
    "INVALID_FIELD_ERR",
    "NO_BODY_ERR",
    "COLLECTION_TOTAL_MISMATCH_ERR",
    "NUM_COLLECTION_RESOURCE_ERR",
    "BODY_QUERY_PARAM_MISMATCH_ERR",
];
/// Policy refusals: justified only when Go's reading is refused too.
const POLICY_CODES: &[&str] = &["KEY_CREATE_IMPORT_ACCESS_ERR", "CONFIG_RULE_CONFLICT_ERR"];

#[derive(Default)]
struct Tally {
    cases: usize,
    forwarded: usize,
    forwarded_reading_changed: usize,
    forwarded_go_rejected: usize,
    refused_policy: usize,
    refused_policy_not_run: usize,
    refused_ambiguous: usize,
    refused_shape: usize,
    refused_method: usize,
    refused_http: usize,
    codes: BTreeMap<String, usize>,
    mismatches: Vec<(String, Ran)>,
    mismatch_kinds: BTreeMap<&'static str, usize>,
    mismatch_classes: BTreeMap<&'static str, BTreeMap<&'static str, usize>>,
    /// Mismatches of cases with one mutation class (besides h2c): that class is the cause.
    single_class_mismatches: BTreeMap<&'static str, usize>,
    changed_examples: Vec<String>,
}

impl Tally {
    fn mismatch(&mut self, kind: &'static str, why: String, ran: Ran) {
        *self.mismatch_kinds.entry(kind).or_default() += 1;
        let mut own = ran.case.classes.iter().filter(|c| **c != "h2c");
        if let (Some(class), None) = (own.next(), own.next()) {
            *self.single_class_mismatches.entry(class).or_default() += 1;
        }
        let classes = self.mismatch_classes.entry(kind).or_default();
        for class in &ran.case.classes {
            *classes.entry(class).or_default() += 1;
        }
        self.mismatches.push((format!("[{kind}] {why}"), ran));
    }

    fn judge(&mut self, ran: Ran, seen_by_upstream: &BTreeSet<String>) {
        self.cases += 1;
        let id = ran.case.id.to_string();
        match ran.outcome.clone() {
            Outcome::Forwarded(fwd) => {
                self.forwarded += 1;
                if fwd.case != id {
                    let why = format!("the oracle's reading is of case {:?}", fwd.case);
                    return self.mismatch("harness", why, ran);
                }
                let Some(orig) = ran.original.clone() else {
                    let why = format!(
                        "forwarded a request Go's HTTP server refuses ({}); Go executed the forwarded form as {}",
                        ran.original_raw,
                        decisive(&fwd)
                    );
                    return self.mismatch("executes-what-go-refuses", why, ran);
                };
                let host = orig.host.as_str();
                let v_orig = verdict(&orig, &orig.route, host);
                let v_fwd = verdict(&fwd, &fwd.route, host);
                if v_fwd != Verdict::Allowed || v_orig != v_fwd {
                    let why = format!(
                        "forwarded; Go's verdict on what was forwarded: {v_fwd:?}, on the original: {v_orig:?}\n    \
                         forwarded: {}\n    original:  {}",
                        decisive(&fwd),
                        decisive(&orig)
                    );
                    return self.mismatch("forwarded-but-refused-by-go", why, ran);
                }
                if decisive(&fwd) != decisive(&orig) {
                    self.forwarded_reading_changed += 1;
                    if self.changed_examples.len() < 3 {
                        self.changed_examples.push(format!(
                            "case {}: original {} → forwarded {}",
                            ran.case.id,
                            decisive(&orig),
                            decisive(&fwd)
                        ));
                    }
                }
            }
            Outcome::ForwardedGoRejected(status, text) => {
                self.forwarded_go_rejected += 1;
                let why = text.split(':').next().unwrap_or_default().trim().to_owned();
                *self.codes.entry(format!("(Go: {why})")).or_default() += 1;
                debug_assert!(why.starts_with(&status.to_string()));
            }
            Outcome::Refused(status, code) => {
                *self.codes.entry(code.clone()).or_default() += 1;
                if seen_by_upstream.contains(&id) {
                    let why = format!("refused with {code} but the upstream saw it");
                    return self.mismatch("refused-but-forwarded", why, ran);
                }
                let c = code.as_str();
                if AMBIGUITY_CODES.contains(&c) {
                    self.refused_ambiguous += 1;
                } else if SHAPE_CODES.contains(&c) {
                    self.refused_shape += 1;
                } else if POLICY_CODES.contains(&c) {
                    self.refused_policy += 1;
                    let refused_by_go = ran.original.as_ref().is_none_or(|o| {
                        verdict(o, &o.route, &o.host) != Verdict::Allowed
                            || verdict(o, &o.loose_route, &o.host) != Verdict::Allowed
                    });
                    let harmless = ran
                        .original
                        .as_ref()
                        .is_some_and(|o| !go_runs(o, &o.route) && !go_runs(o, &o.loose_route));
                    if !refused_by_go && harmless {
                        self.refused_policy_not_run += 1;
                    } else if !refused_by_go {
                        let o = ran.original.as_ref().expect("checked");
                        let why = format!(
                            "refused {status} {code}, but Go's reading is allowed: {} (loose route {}, host {:?})",
                            decisive(o),
                            o.loose_route,
                            o.host
                        );
                        self.mismatch("refused-but-allowed-by-go", why, ran)
                    }
                } else if c == "METHOD_NOT_ALLOWED_ERR" {
                    self.refused_method += 1;
                    let justified = ran
                        .original
                        .as_ref()
                        .is_none_or(|o| !executes(&o.route) && !executes(&o.loose_route));
                    if !justified {
                        let o = ran.original.as_ref().expect("checked");
                        let why = format!("refused {code}, but Go routes it to {}", o.route);
                        self.mismatch("refused-but-allowed-by-go", why, ran)
                    }
                } else {
                    let why = format!("refused {status} with an unexpected code {code}");
                    self.mismatch("unexpected-code", why, ran)
                }
            }
            Outcome::HttpRejected(status) => {
                self.refused_http += 1;
                *self
                    .codes
                    .entry(format!("(HTTP parser: {status})"))
                    .or_default() += 1;
                if seen_by_upstream.contains(&id) {
                    let why = "no reading came back, but the upstream saw it".to_owned();
                    self.mismatch("refused-but-forwarded", why, ran)
                }
            }
            Outcome::Failed(e) => {
                let why = format!("no answer from the gateway: {e}");
                self.mismatch("no-answer", why, ran);
            }
        }
    }

    fn summary(&self) -> String {
        format!(
            "differential: cases={} forwarded={} (reading changed by canonicalisation: {}) \
             forwarded-but-refused-by-Go's-HTTP-server={} refused-by-policy={} \
             (of which Go would not have run the operation at all: {}) refused-as-ambiguous={} refused-as-malformed={} refused-method={} \
             refused-by-HTTP-parser={} mismatches={}",
            self.cases,
            self.forwarded,
            self.forwarded_reading_changed,
            self.forwarded_go_rejected,
            self.refused_policy,
            self.refused_policy_not_run,
            self.refused_ambiguous,
            self.refused_shape,
            self.refused_method,
            self.refused_http,
            self.mismatches.len()
        )
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.trim()
            .parse()
            .unwrap_or_else(|e| panic!("{name}={v:?}: {e}")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_decides() {
    let seed = env_u64("KMSGATE_DIFF_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let only = env_u64("KMSGATE_DIFF_ONLY").map(|c| c as usize);
    let cases = env_u64("KMSGATE_DIFF_CASES").unwrap_or(10_000) as usize;
    let budget = Duration::from_secs(env_u64("KMSGATE_DIFF_SECS").unwrap_or(150));
    let reproduce = format!(
        "KMSGATE_DIFF_SEED={seed} KMSGATE_DIFF_CASES={cases} cargo test --test differential"
    );
    println!("differential: seed={seed} cases={cases} (reproduce: {reproduce})");
    eprintln!("differential: seed={seed} cases={cases}");

    let bin = oracle::build();
    let upstream = GoOracle::spawn(&bin);
    let direct = GoOracle::spawn(&bin);
    let gw = TestGateway::start(&gateway_toml(&upstream.url())).await;
    let gateway = gw.addrs.public;

    let ids: Vec<usize> = match only {
        Some(id) => vec![id],
        None => (0..cases).collect(),
    };
    let ids = Arc::new(ids);
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + budget;
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let ids = ids.clone();
        let next = next.clone();
        let direct = direct.addr();
        workers.spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= ids.len() || Instant::now() > deadline {
                    return out;
                }
                out.push(run_case(generate(seed, ids[i]), gateway, direct).await);
            }
        });
    }
    let mut ran = Vec::new();
    while let Some(done) = workers.join_next().await {
        ran.extend(done.expect("a worker panicked"));
    }
    let elapsed = started.elapsed();
    ran.sort_by_key(|r| r.case.id);

    let upstream_count = upstream.count().await;
    let seen: BTreeSet<String> = upstream.seen().await.into_iter().collect();
    let forwarded_with_reading = ran
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Forwarded(_)))
        .count() as u64;
    let mut tally = Tally::default();
    for r in ran {
        if only.is_some() {
            println!("{}", r.case.describe());
            println!(
                "  Go's reading of the original: {:?} {}",
                r.original, r.original_raw
            );
            println!("  the gateway: {:?}", r.outcome);
        }
        tally.judge(r, &seen);
    }
    println!("{} in {elapsed:.1?}", tally.summary());
    println!("  refusal codes: {:?}", tally.codes);
    for example in &tally.changed_examples {
        println!("  canonicalised: {example}");
    }
    if !tally.mismatches.is_empty() {
        println!("  mismatches by kind: {:?}", tally.mismatch_kinds);
        for (kind, classes) in &tally.mismatch_classes {
            println!("  {kind}: by mutation class {classes:?}");
        }
        println!(
            "  mismatches of single-mutation cases, by class: {:?}",
            tally.single_class_mismatches
        );
        let show = env_u64("KMSGATE_DIFF_SHOW").unwrap_or(3) as usize;
        let mut shown: BTreeMap<&str, usize> = BTreeMap::new();
        for (why, r) in &tally.mismatches {
            let kind = why.split(']').next().unwrap_or_default();
            let n = shown.entry(kind).or_default();
            *n += 1;
            if *n <= show {
                println!("--- {why}\n{}", r.case.describe());
            }
        }
    }
    if only.is_none() && tally.cases < cases {
        println!(
            "differential: WARNING the wall-time bound ({budget:?}) stopped the run after {} of {cases} cases",
            tally.cases
        );
    }
    assert_eq!(
        upstream_count, forwarded_with_reading,
        "the oracle behind the gateway saw {upstream_count} requests, but {forwarded_with_reading} \
         forwarded readings came back (seed {seed})"
    );
    assert!(
        tally.mismatches.is_empty(),
        "{} — Go reads {} of {} requests differently from the gateway's decision; \
         by kind {:?}. Reproduce: {reproduce} (one case: \
         KMSGATE_DIFF_SEED={seed} KMSGATE_DIFF_ONLY=<case> … -- --nocapture)",
        tally.summary(),
        tally.mismatches.len(),
        tally.cases,
        tally.mismatch_kinds,
    );
    gw.shutdown().await;
}
