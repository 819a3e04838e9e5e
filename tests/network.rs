//! Client address, allowedIP and allowedNetwork over real loopback sockets: distinct
//! `127.0.0.x` source addresses (and `::1`) are distinct clients; X-Forwarded-For, `Forwarded`
//! and PROXY v1/v2 from trusted and untrusted peers; every refusal checks status, code,
//! envelope and that the upstream saw nothing.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use kmsgate::policy::Snapshot;
use kmsgate::policy::model::{AllowedIp, AllowedNetwork, InstancePolicies, NetworkAccess};
use support::{Recorder, TestGateway, TestResponse, assert_rejected};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

fn upstream_toml(upstream: &Recorder) -> String {
    format!("[upstream]\nurl = \"{}\"\n", upstream.url())
}

fn allowed_ip(nets: &[&str]) -> AllowedIp {
    AllowedIp {
        enabled: true,
        allowed_ip: nets.iter().map(|n| n.parse().unwrap()).collect(),
    }
}

fn ip_policy(nets: &[&str]) -> InstancePolicies {
    InstancePolicies {
        allowed_ip: Some(allowed_ip(nets)),
        ..Default::default()
    }
}

fn private_only() -> AllowedNetwork {
    AllowedNetwork {
        enabled: true,
        allowed_network: NetworkAccess::PrivateOnly,
    }
}

fn policies(instances: Vec<(&str, InstancePolicies)>) -> Snapshot {
    Snapshot::new(
        instances.into_iter().map(|(id, p)| (id.to_owned(), p)),
        None,
    )
}

/// A refusal that never reached the upstream.
fn assert_refused(res: &TestResponse, status: u16, code: &str, upstream: &Recorder, seen: usize) {
    assert_rejected(res, status, code);
    assert_eq!(
        upstream.count(),
        seen,
        "the upstream must not see a refused request"
    );
}

fn forwarded_for(upstream: &Recorder) -> String {
    let last = upstream.last();
    let values: Vec<_> = last.headers.get_all("x-forwarded-for").iter().collect();
    assert_eq!(values.len(), 1, "exactly one X-Forwarded-For goes upstream");
    values[0].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn allowed_ip_distinguishes_loopback_clients() {
    let upstream = Recorder::start().await;
    let gw = TestGateway::start_with_policies(
        &upstream_toml(&upstream),
        policies(vec![(
            "inst-ip",
            ip_policy(&["127.0.0.2/32", "127.0.0.3/32"]),
        )]),
    )
    .await;

    for client in ["127.0.0.2", "127.0.0.3"] {
        let res = gw
            .request("GET", "/api/v2/keys")
            .header("bluemix-instance", "inst-ip")
            .from_ip(client)
            .send()
            .await;
        assert_eq!(res.status, 200, "{client}: {}", res.text());
        assert_eq!(forwarded_for(&upstream), client);
    }
    let res = gw
        .request("POST", "/api/v2/keys")
        .header("bluemix-instance", "inst-ip")
        .from_ip("127.0.0.7")
        .body(&b"{}"[..])
        .send()
        .await;
    assert_refused(&res, 401, "UNAUTHORIZED_ERR", &upstream, 2);
    // h2c: same decision.
    let res = gw
        .request("GET", "/api/v2/keys")
        .header("bluemix-instance", "inst-ip")
        .from_ip("127.0.0.7")
        .h2()
        .send()
        .await;
    assert_refused(&res, 401, "UNAUTHORIZED_ERR", &upstream, 2);
    // Another instance has no policy (and there is no default).
    let res = gw
        .request("GET", "/api/v2/keys")
        .header("bluemix-instance", "inst-free")
        .from_ip("127.0.0.7")
        .send()
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(upstream.count(), 3);
    assert_eq!(
        gw.metric("kmsgate_rejections_total", &[("code", "UNAUTHORIZED_ERR")])
            .await,
        2.0
    );
}

#[tokio::test]
async fn default_policy_applies_to_unlisted_instances() {
    let upstream = Recorder::start().await;
    let snapshot = Snapshot::new(
        [("inst-open".to_owned(), InstancePolicies::default())],
        Some(ip_policy(&["127.0.0.2/32"])),
    );
    let gw = TestGateway::start_with_policies(&upstream_toml(&upstream), snapshot).await;
    let res = gw
        .request("GET", "/api/v2/keys")
        .header("bluemix-instance", "anything")
        .from_ip("127.0.0.9")
        .send()
        .await;
    assert_refused(&res, 401, "UNAUTHORIZED_ERR", &upstream, 0);
    let res = gw
        .request("GET", "/api/v2/keys")
        .from_ip("127.0.0.9")
        .send()
        .await;
    assert_refused(&res, 401, "UNAUTHORIZED_ERR", &upstream, 0);
    let res = gw
        .request("GET", "/api/v2/keys")
        .header("bluemix-instance", "inst-open")
        .from_ip("127.0.0.9")
        .send()
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn ipv6_client_against_ipv4_only_and_ipv6_lists() {
    let upstream = Recorder::start().await;
    let gw = TestGateway::start_with_policies(
        &format!(
            "{}[listen]\npublic = \"[::1]:0\"\n",
            upstream_toml(&upstream)
        ),
        policies(vec![
            ("v4-only", ip_policy(&["127.0.0.0/8", "10.0.0.0/8"])),
            ("v6", ip_policy(&["127.0.0.1/32", "::1/128"])),
            ("other-v6", ip_policy(&["127.0.0.1/32", "2001:db8::/32"])),
        ]),
    )
    .await;
    assert!(gw.addrs.public.is_ipv6());
    let send = |instance: &'static str| {
        gw.request("GET", "/api/v2/keys")
            .header("bluemix-instance", instance)
            .from_ip("::1")
            .send()
    };
    let res = send("v4-only").await;
    assert_refused(&res, 403, "FEATURE_RESTRICTED_ERR", &upstream, 0);
    let res = send("other-v6").await;
    assert_refused(&res, 401, "UNAUTHORIZED_ERR", &upstream, 0);
    let res = send("v6").await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(forwarded_for(&upstream), "::1");
}

#[tokio::test]
async fn x_forwarded_for_from_trusted_and_untrusted_peers() {
    let upstream = Recorder::start().await;
    let gw = TestGateway::start_with_policies(
        &format!(
            "{}[client_ip]\ntrusted_proxies = [\"127.0.0.1/32\", \"10.0.0.0/8\"]\n",
            upstream_toml(&upstream)
        ),
        policies(vec![("inst", ip_policy(&["203.0.113.0/24"]))]),
    )
    .await;
    let send = |from: &'static str, xff: &'static str| {
        gw.request("GET", "/api/v2/keys")
            .header("bluemix-instance", "inst")
            .header("x-forwarded-for", xff)
            .from_ip(from)
            .send()
    };

    // Trusted peer: right to left, trusted hops skipped; the spoofed leftmost entry is ignored.
    let res = send("127.0.0.1", "6.6.6.6, 203.0.113.9, 10.1.1.1").await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(forwarded_for(&upstream), "203.0.113.9");
    // IPv4-mapped IPv6 in the chain is IPv4, and goes upstream as IPv4.
    let res = send("127.0.0.1", "::ffff:203.0.113.10").await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(forwarded_for(&upstream), "203.0.113.10");
    // The first untrusted hop from the right decides, even when an allowed one is left of it.
    let res = send("127.0.0.1", "203.0.113.9, 6.6.6.6").await;
    assert_refused(&res, 401, "UNAUTHORIZED_ERR", &upstream, 2);
    // A malformed entry stops the walk at the last good address (the trusted peer).
    let res = send("127.0.0.1", "203.0.113.9, not-an-ip").await;
    assert_refused(&res, 401, "UNAUTHORIZED_ERR", &upstream, 2);
    // Untrusted peer: its X-Forwarded-For is ignored.
    let res = send("127.0.0.9", "203.0.113.9").await;
    assert_refused(&res, 401, "UNAUTHORIZED_ERR", &upstream, 2);

    // And what goes upstream from an untrusted peer is overwritten, not appended to.
    let res = gw
        .request("GET", "/api/v2/keys")
        .header("bluemix-instance", "no-policy")
        .header("x-forwarded-for", "203.0.113.9")
        .from_ip("127.0.0.9")
        .send()
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(forwarded_for(&upstream), "127.0.0.9");
}

#[tokio::test]
async fn rfc7239_forwarded_from_a_trusted_peer() {
    let upstream = Recorder::start().await;
    let gw = TestGateway::start_with_policies(
        &format!(
            "{}[client_ip]\ntrusted_proxies = [\"127.0.0.1/32\"]\nheader = \"forwarded\"\n",
            upstream_toml(&upstream)
        ),
        policies(vec![(
            "inst",
            ip_policy(&["203.0.113.0/24", "2001:db8::/32"]),
        )]),
    )
    .await;
    let send = |from: &'static str, forwarded: &'static str| {
        gw.request("GET", "/api/v2/keys")
            .header("bluemix-instance", "inst")
            .header("forwarded", forwarded)
            .header("x-forwarded-for", "6.6.6.6")
            .from_ip(from)
            .send()
    };
    let res = send(
        "127.0.0.1",
        r#"for=6.6.6.6, for="[2001:db8::17]:4711";proto=http"#,
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(forwarded_for(&upstream), "2001:db8::17");
    assert!(
        upstream.last().headers.get("forwarded").is_none(),
        "the client's Forwarded header does not go upstream"
    );
    let res = send("127.0.0.1", "for=203.0.113.5;by=127.0.0.1").await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(forwarded_for(&upstream), "203.0.113.5");
    // X-Forwarded-For is not read in this mode; an obfuscated node stops the walk.
    let res = send("127.0.0.1", "for=_hidden").await;
    assert_refused(&res, 401, "UNAUTHORIZED_ERR", &upstream, 2);
    let res = send("127.0.0.9", "for=203.0.113.5").await;
    assert_refused(&res, 401, "UNAUTHORIZED_ERR", &upstream, 2);
}

// === PROXY protocol ===

/// Sends `bytes` on a fresh connection from `from` and reads until the gateway closes it.
async fn raw_exchange(to: SocketAddr, from: &str, bytes: &[u8]) -> Vec<u8> {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(from.parse().unwrap(), 0))
        .unwrap();
    let mut stream = socket.connect(to).await.unwrap();
    // The gateway may close early (untrusted peer): a failed write is part of the answer.
    let _ = stream.write_all(bytes).await;
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the gateway neither answered nor closed");
    out
}

fn http_request(instance: &str) -> Vec<u8> {
    format!(
        "GET /api/v2/keys HTTP/1.1\r\nhost: kms\r\nbluemix-instance: {instance}\r\nconnection: close\r\n\r\n"
    )
    .into_bytes()
}

fn status_of(response: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(response).ok()?;
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// A raw HTTP/1.1 response (as read to the end of the connection) as a [`TestResponse`], so the
/// usual assertions apply to it.
fn parse_raw(response: &[u8]) -> TestResponse {
    let text = String::from_utf8_lossy(response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP response: {text}"));
    let mut lines = head.lines();
    let status = status_of(response).unwrap_or_else(|| panic!("no status line: {text}"));
    let _status_line = lines.next();
    let mut headers = http::HeaderMap::new();
    for line in lines {
        let (name, value) = line.split_once(':').expect("a header line");
        headers.append(
            http::HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
            http::HeaderValue::from_str(value.trim()).unwrap(),
        );
    }
    TestResponse {
        status,
        version: http::Version::HTTP_11,
        headers,
        body: bytes::Bytes::from(body.to_owned()),
    }
}

/// Sends `request` (a PROXY header and the request) from 127.0.0.1; asserts a 200 and that
/// the upstream saw `client` as the client address.
async fn assert_forwarded_via(
    public: SocketAddr,
    upstream: &Recorder,
    request: &[u8],
    client: &str,
) {
    let res = raw_exchange(public, "127.0.0.1", request).await;
    assert_eq!(
        status_of(&res),
        Some(200),
        "{}",
        String::from_utf8_lossy(&res)
    );
    assert_eq!(forwarded_for(upstream), client);
}

fn proxy_v2(src: [u8; 4], dst: [u8; 4], sport: u16) -> Vec<u8> {
    let mut out = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    out.extend_from_slice(&[0x21, 0x11, 0, 12]);
    out.extend_from_slice(&src);
    out.extend_from_slice(&dst);
    out.extend_from_slice(&sport.to_be_bytes());
    out.extend_from_slice(&443u16.to_be_bytes());
    out
}

#[tokio::test]
async fn proxy_protocol_v1_and_v2_from_trusted_proxies_only() {
    let upstream = Recorder::start().await;
    let gw = TestGateway::start_with_policies(
        &format!(
            "{}[client_ip]\ntrusted_proxies = [\"127.0.0.1/32\"]\nproxy_protocol = [\"public\"]\n",
            upstream_toml(&upstream)
        ),
        policies(vec![("inst", ip_policy(&["203.0.113.0/24"]))]),
    )
    .await;
    let public = gw.addrs.public;
    let with = |header: &[u8]| [header, &http_request("inst")].concat();

    // v1: the PROXY source is the client.
    let v1 = b"PROXY TCP4 203.0.113.9 127.0.0.1 5555 80\r\n";
    assert_forwarded_via(public, &upstream, &with(v1), "203.0.113.9").await;
    // v1 TCP6 with an IPv4-mapped source: IPv4.
    let v1_mapped = b"PROXY TCP6 ::ffff:203.0.113.8 ::1 5555 80\r\n";
    assert_forwarded_via(public, &upstream, &with(v1_mapped), "203.0.113.8").await;
    // v2.
    let v2 = proxy_v2([203, 0, 113, 7], [127, 0, 0, 1], 4000);
    assert_forwarded_via(public, &upstream, &with(&v2), "203.0.113.7").await;
    // v2, client outside the list: a normal refusal, which never reaches the upstream.
    let outside = proxy_v2([198, 51, 100, 1], [127, 0, 0, 1], 4000);
    let res = raw_exchange(public, "127.0.0.1", &with(&outside)).await;
    assert_refused(&parse_raw(&res), 401, "UNAUTHORIZED_ERR", &upstream, 3);

    // Untrusted peer, malformed header, no header at all: the connection is closed unanswered.
    let closed = [
        (
            "127.0.0.9",
            with(b"PROXY TCP4 203.0.113.9 127.0.0.1 5555 80\r\n"),
        ),
        (
            "127.0.0.1",
            with(b"PROXY TCP4 203.0.113.999 127.0.0.1 5555 80\r\n"),
        ),
        (
            "127.0.0.1",
            with(b"PROXY TCP4 203.0.113.9 127.0.0.1 5555\r\n"),
        ),
        ("127.0.0.1", http_request("inst")),
    ];
    for (from, bytes) in closed {
        let res = raw_exchange(public, from, &bytes).await;
        assert!(res.is_empty(), "{from}: {}", String::from_utf8_lossy(&res));
    }
    assert_eq!(
        upstream.count(),
        3,
        "the upstream saw none of the closed connections"
    );
    // The private listener does not take PROXY headers: plain HTTP works there.
    let res = gw
        .request("GET", "/api/v2/keys")
        .header("bluemix-instance", "no-policy")
        .private()
        .send()
        .await;
    assert_eq!(res.status, 200);
}

// === allowedNetwork ===

#[tokio::test]
async fn private_only_by_listener_host_and_client_range() {
    let upstream = Recorder::start().await;
    let gw = TestGateway::start_with_policies(
        &format!(
            "{}[network]\nprivate_hosts = [\"private.us-south.kms.cloud.ibm.com\"]\nprivate_by_client_address = true\nprivate_ranges = [\"127.0.0.8/32\"]\n",
            upstream_toml(&upstream)
        ),
        policies(vec![(
            "inst",
            InstancePolicies {
                allowed_network: Some(private_only()),
                ..Default::default()
            },
        )]),
    )
    .await;
    let request = |method: &str, path: &str| {
        gw.request(method, path)
            .header("bluemix-instance", "inst")
            .from_ip("127.0.0.9")
    };

    let res = request("POST", "/api/v2/keys")
        .body(&b"{}"[..])
        .send()
        .await;
    assert_refused(&res, 403, "CONFIG_RULE_CONFLICT_ERR", &upstream, 0);
    assert!(
        res.json()["resources"][0]["errorMsg"]
            .as_str()
            .unwrap()
            .starts_with("Forbidden: Key could not be created")
    );
    // Even the policy API is refused from the public side.
    let res = request("PUT", "/api/v2/instance/policies")
        .body(&b"{}"[..])
        .send()
        .await;
    assert_refused(&res, 403, "CONFIG_RULE_CONFLICT_ERR", &upstream, 0);
    let res = request("GET", "/api/v2/keys")
        .header("host", "us-south.kms.cloud.ibm.com")
        .send()
        .await;
    assert_refused(&res, 403, "CONFIG_RULE_CONFLICT_ERR", &upstream, 0);

    let res = request("GET", "/api/v2/keys").private().send().await;
    assert_eq!(res.status, 200, "private listener: {}", res.text());
    let res = request("GET", "/api/v2/keys")
        .header("host", "private.us-south.kms.cloud.ibm.com:443")
        .send()
        .await;
    assert_eq!(res.status, 200, "private host: {}", res.text());
    let res = gw
        .request("GET", "/api/v2/keys")
        .header("bluemix-instance", "inst")
        .from_ip("127.0.0.8")
        .send()
        .await;
    assert_eq!(res.status, 200, "private client range: {}", res.text());
    assert_eq!(upstream.count(), 3);
}

#[tokio::test]
async fn allowed_ip_port_is_exempt_from_allowed_ip() {
    let upstream = Recorder::start().await;
    let gw = TestGateway::start_with_policies(
        &upstream_toml(&upstream),
        policies(vec![("inst", ip_policy(&["127.0.0.2/32"]))]),
    )
    .await;
    let res = gw
        .request("GET", "/api/v2/instance/allowed_ip_port")
        .header("bluemix-instance", "inst")
        .from_ip("127.0.0.7")
        .send()
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(
        upstream.last().uri.path(),
        "/api/v2/instance/allowed_ip_port"
    );
    let res = gw
        .request("GET", "/api/v2/instance/policies")
        .header("bluemix-instance", "inst")
        .from_ip("127.0.0.7")
        .send()
        .await;
    assert_refused(&res, 401, "UNAUTHORIZED_ERR", &upstream, 1);
}

#[tokio::test]
async fn both_policies_apply_and_allowed_network_is_checked_first() {
    let upstream = Recorder::start().await;
    let gw = TestGateway::start_with_policies(
        &upstream_toml(&upstream),
        policies(vec![(
            "inst",
            InstancePolicies {
                allowed_ip: Some(allowed_ip(&["127.0.0.2/32"])),
                allowed_network: Some(private_only()),
                ..Default::default()
            },
        )]),
    )
    .await;
    let send = |from: &'static str, private: bool| {
        let req = gw
            .request("GET", "/api/v2/keys")
            .header("bluemix-instance", "inst")
            .from_ip(from);
        if private { req.private() } else { req }.send()
    };
    // Public and outside the list: allowedNetwork wins.
    let res = send("127.0.0.7", false).await;
    assert_refused(&res, 403, "CONFIG_RULE_CONFLICT_ERR", &upstream, 0);
    // Public, inside the list: still refused by allowedNetwork.
    let res = send("127.0.0.2", false).await;
    assert_refused(&res, 403, "CONFIG_RULE_CONFLICT_ERR", &upstream, 0);
    // Private, outside the list: allowedIP.
    let res = send("127.0.0.7", true).await;
    assert_refused(&res, 401, "UNAUTHORIZED_ERR", &upstream, 0);
    // Private and inside: through.
    let res = send("127.0.0.2", true).await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(upstream.count(), 1);
}

// === Policies from the config file ===

#[test]
fn a_bad_policy_document_is_a_config_error_naming_the_instance() {
    let err = kmsgate::config::Config::from_toml(&[
        "[policies.instances]\n\"inst-broken\" = '''{ \"resources\": [ '''\n",
    ])
    .unwrap_err()
    .to_string();
    assert!(err.contains("policies.instances"), "{err}");
    assert!(err.contains("inst-broken"), "{err}");
}

/// The real configuration path: Key Protect JSON documents in `[policies]`, parsed by
/// `policy::parse::parse_document`.
#[tokio::test]
async fn policies_from_the_config_file_in_key_protect_json() {
    let upstream = Recorder::start().await;
    let toml = format!(
        r#"{}
[policies]
default = '''{{"metadata": {{"collectionType": "application/vnd.ibm.kms.policy+json", "collectionTotal": 1}},
  "resources": [{{"policy_type": "allowedIP",
                 "policy_data": {{"enabled": true, "attributes": {{"allowed_ip": ["127.0.0.3/32"]}}}}}}]}}'''

[policies.instances]
"inst-toml" = '''
{{"metadata": {{"collectionType": "application/vnd.ibm.kms.policy+json", "collectionTotal": 2}},
 "resources": [
  {{"policy_type": "allowedIP",
   "policy_data": {{"enabled": true, "attributes": {{"allowed_ip": ["127.0.0.2/32"]}}}}}},
  {{"policy_type": "allowedNetwork",
   "policy_data": {{"enabled": true, "attributes": {{"allowed_network": "private-only"}}}}}}
 ]}}
'''
"#,
        upstream_toml(&upstream)
    );
    let gw = TestGateway::start(&toml).await;
    let send = |instance: &'static str, from: &'static str, private: bool| {
        let req = gw
            .request("GET", "/api/v2/keys")
            .header("bluemix-instance", instance)
            .from_ip(from);
        if private { req.private() } else { req }.send()
    };
    let res = send("inst-toml", "127.0.0.2", false).await;
    assert_refused(&res, 403, "CONFIG_RULE_CONFLICT_ERR", &upstream, 0);
    let res = send("inst-toml", "127.0.0.3", true).await;
    assert_refused(&res, 401, "UNAUTHORIZED_ERR", &upstream, 0);
    let res = send("inst-toml", "127.0.0.2", true).await;
    assert_eq!(res.status, 200, "{}", res.text());
    // Any other instance: the default document.
    let res = send("someone-else", "127.0.0.2", false).await;
    assert_refused(&res, 401, "UNAUTHORIZED_ERR", &upstream, 1);
    let res = send("someone-else", "127.0.0.3", false).await;
    assert_eq!(res.status, 200, "{}", res.text());
}
