//! The proxy core over real loopback sockets: pass-through fidelity (h1 and h2c), streaming,
//! upstream failures, upstream error envelopes, correlation ids and metrics, the bound on
//! requests at the upstream.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::{Recorder, TestGateway, assert_rejected};

fn upstream_toml(upstream: &Recorder) -> String {
    format!(
        "[upstream]\nurl = \"{}\"\nrequest_timeout = \"2s\"\n",
        upstream.url()
    )
}

#[tokio::test]
async fn h1_requests_and_responses_pass_through_unchanged() {
    let upstream = Recorder::start().await;
    upstream.respond_with(201, &br#"{"created":true}"#[..]);
    upstream.respond_header("x-backend", "yes");
    let gw = TestGateway::start(&upstream_toml(&upstream)).await;

    let body = br#"{"anything": [1, 2, 3], "bytes": "\u00e9"}"#.to_vec();
    let res = gw
        .request("PATCH", "/api/v2/keys/abc?x=1&y=two%20words")
        .header("bluemix-instance", "inst-1")
        .header("x-custom", "kept")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "dropped")
        .header("x-forwarded-for", "6.6.6.6")
        .header("correlation-id", "corr-123")
        .body(body.clone())
        .send()
        .await;

    assert_eq!(res.status, 201);
    assert_eq!(&res.body[..], br#"{"created":true}"#);
    assert_eq!(res.header("x-backend"), Some("yes"));
    assert_eq!(res.header("correlation-id"), Some("corr-123"));
    assert!(res.header("kmsgate-reason").is_none());
    assert_eq!(res.version, http::Version::HTTP_11);

    let seen = upstream.last();
    assert_eq!(seen.method, "PATCH");
    assert_eq!(seen.uri.path(), "/api/v2/keys/abc");
    assert_eq!(seen.uri.query(), Some("x=1&y=two%20words"));
    assert_eq!(&seen.body[..], &body[..]);
    assert_eq!(seen.version, http::Version::HTTP_11);
    assert_eq!(seen.headers["bluemix-instance"], "inst-1");
    assert_eq!(seen.headers["x-custom"], "kept");
    assert_eq!(seen.headers["correlation-id"], "corr-123");
    assert!(
        seen.headers.get("x-hop").is_none(),
        "hop-by-hop header named in Connection is dropped"
    );
    // The client's X-Forwarded-For is overwritten, not appended to.
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert_eq!(seen.headers["host"], upstream.addr().to_string());
}

#[tokio::test]
async fn h2c_clients_are_forwarded_as_http11() {
    let upstream = Recorder::start().await;
    let gw = TestGateway::start(&upstream_toml(&upstream)).await;
    let res = gw
        .request("GET", "/api/v2/keys?limit=5")
        .header("bluemix-instance", "i")
        .h2()
        .send()
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.version, http::Version::HTTP_2);
    assert_eq!(&res.body[..], br#"{"ok":true}"#);
    let seen = upstream.last();
    assert_eq!(seen.version, http::Version::HTTP_11);
    assert_eq!(seen.uri.query(), Some("limit=5"));
    assert!(
        res.header("correlation-id").is_some(),
        "a generated correlation id is echoed"
    );
    assert_eq!(
        seen.headers["correlation-id"].to_str().unwrap(),
        res.header("correlation-id").unwrap()
    );
}

#[tokio::test]
async fn a_large_body_streams_through_unchanged() {
    let upstream = Recorder::start().await;
    let gw = TestGateway::start(&upstream_toml(&upstream)).await;
    let body: Vec<u8> = (0..16 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let res = gw
        .request("POST", "/api/v2/kmip_adapters")
        .body(body.clone())
        .send()
        .await;
    assert_eq!(res.status, 200);
    let seen = upstream.last();
    assert_eq!(seen.body.len(), body.len());
    assert!(seen.body[..] == body[..], "body bytes differ");
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_502_envelope() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let gw = TestGateway::start(&format!(
        "[upstream]\nurl = \"http://{addr}\"\nconnect_timeout = \"1s\"\n"
    ))
    .await;
    let res = gw.request("GET", "/api/v2/keys").send().await;
    assert_rejected(&res, 502, "UPSTREAM_UNAVAILABLE_ERR");
    assert_eq!(
        res.json()["resources"][0]["errorMsg"],
        "Bad Gateway: Keys could not be retrieved: Please see `reasons` for more details (UPSTREAM_UNAVAILABLE_ERR)"
    );
    assert_eq!(
        gw.metric(
            "kmsgate_rejections_total",
            &[("code", "UPSTREAM_UNAVAILABLE_ERR"), ("status", "502")]
        )
        .await,
        1.0
    );
    assert_eq!(
        gw.metric(
            "kmsgate_requests_total",
            &[("route", "key_list"), ("outcome", "failed")]
        )
        .await,
        1.0
    );
}

#[tokio::test]
async fn a_silent_upstream_is_a_504_after_the_timeout() {
    // Accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            open.push(stream);
        }
    });
    let gw = TestGateway::start(&format!(
        "[upstream]\nurl = \"http://{addr}\"\nrequest_timeout = \"300ms\"\n"
    ))
    .await;
    let start = Instant::now();
    let res = gw
        .request("POST", "/api/v2/keys/k/actions/wrap")
        .body("{}")
        .send()
        .await;
    let took = start.elapsed();
    assert_rejected(&res, 504, "UPSTREAM_TIMEOUT_ERR");
    assert!(
        took >= Duration::from_millis(300),
        "answered after {took:?}, before the timeout"
    );
    assert!(took < Duration::from_secs(5), "answered after {took:?}");
    held.abort();
}

#[tokio::test]
async fn upstream_error_envelopes_pass_through_byte_for_byte_and_are_counted() {
    let upstream = Recorder::start().await;
    let envelope = br#"{"metadata":{"collectionType":"application/vnd.ibm.kms.error+json","collectionTotal":1},"resources":[{"errorMsg":"Gone: Key could not be deleted. Please see `reasons` for more details.","reasons":[{"code":"KEY_DELETED_ERR","message":"Key has already been deleted. Please delete references to this key.","status":410,"moreInfo":"https://cloud.ibm.com/apidocs/key-protect"}]}]}"#;
    upstream.respond_with(410, &envelope[..]);
    let gw = TestGateway::start(&upstream_toml(&upstream)).await;
    assert_eq!(
        gw.metric(
            "kmsgate_upstream_reasons_total",
            &[("code", "KEY_DELETED_ERR")]
        )
        .await,
        0.0
    );

    let res = gw.request("DELETE", "/api/v2/keys/k1").send().await;
    assert_eq!(res.status, 410);
    assert_eq!(&res.body[..], &envelope[..]);
    assert!(
        res.header("kmsgate-reason").is_none(),
        "a backend refusal is not marked as the gateway's"
    );
    assert_eq!(
        gw.metric(
            "kmsgate_upstream_reasons_total",
            &[("code", "KEY_DELETED_ERR")]
        )
        .await,
        1.0
    );
    assert_eq!(
        gw.metric(
            "kmsgate_upstream_responses_total",
            &[("status_class", "4xx")]
        )
        .await,
        1.0
    );
    assert_eq!(
        gw.metric("kmsgate_rejections_total", &[("code", "KEY_DELETED_ERR")])
            .await,
        0.0
    );

    upstream.respond_with(
        409,
        &br#"{"resources":[{"reasons":[{"code":"SOMETHING_NEW_ERR"}]}]}"#[..],
    );
    gw.request("DELETE", "/api/v2/keys/k1").send().await;
    assert_eq!(
        gw.metric("kmsgate_upstream_reasons_total", &[("code", "OTHER")])
            .await,
        1.0
    );
}

#[tokio::test]
async fn metrics_show_every_code_at_zero_on_start() {
    let gw = TestGateway::start("").await;
    let text = gw.admin("/metrics").await.text();
    for reason in kmsgate::Reason::ALL {
        let value = support::find_metric(
            &text,
            "kmsgate_rejections_total",
            &[
                ("code", reason.code()),
                ("status", reason.status().as_str()),
            ],
        );
        assert_eq!(value, Some(0.0), "{} missing or not zero", reason.code());
    }
    assert_eq!(
        gw.metric(
            "kmsgate_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        )
        .await,
        1.0
    );
}

#[tokio::test]
async fn health_and_readiness() {
    let gw = TestGateway::start("").await;
    assert_eq!(gw.admin("/healthz").await.status, 200);
    assert_eq!(gw.admin("/readyz").await.status, 200);
    assert_eq!(gw.admin("/nope").await.status, 404);
}

#[tokio::test]
async fn an_upstream_base_path_is_prefixed() {
    let upstream = Recorder::start().await;
    let gw = TestGateway::start(&format!("[upstream]\nurl = \"{}/kms/\"\n", upstream.url())).await;
    gw.request("GET", "/api/v2/keys/k1/metadata").send().await;
    assert_eq!(upstream.last().uri.path(), "/kms/api/v2/keys/k1/metadata");
}

/// A gateway in front of `upstream` that sends it at most `max_connections` requests at once.
async fn gateway_with_max_connections(
    upstream: std::net::SocketAddr,
    request_timeout: &str,
    max_connections: usize,
) -> TestGateway {
    TestGateway::start(&format!(
        "[upstream]\nurl = \"http://{upstream}\"\nrequest_timeout = \"{request_timeout}\"\n\
         max_connections = {max_connections}\n"
    ))
    .await
}

/// An upstream that answers 200 after `delay` and records the most requests it had in flight
/// at once.
async fn slow_upstream(delay: Duration) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let seen = most.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (in_flight, most) = (in_flight.clone(), most.clone());
            let service = hyper::service::service_fn(move |_req| {
                let (in_flight, most) = (in_flight.clone(), most.clone());
                async move {
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(delay).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    Ok::<_, std::convert::Infallible>(http::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from_static(b"{}")),
                    ))
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
            );
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn requests_beyond_upstream_max_connections_wait_for_a_free_one() {
    let (addr, most) = slow_upstream(Duration::from_millis(100)).await;
    let gw = gateway_with_max_connections(addr, "5s", 2).await;
    let start = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..8 {
        clients.spawn(gw.request("GET", "/api/v2/keys").send());
    }
    while let Some(res) = clients.join_next().await {
        assert_eq!(res.unwrap().status, 200);
    }
    assert_eq!(
        most.load(Ordering::SeqCst),
        2,
        "requests at the upstream at once"
    );
    // 8 requests, 2 at a time, 100 ms each.
    assert!(start.elapsed() >= Duration::from_millis(400));
    // At most 2 found a free slot; the others waited, and each wait was counted.
    let waits = gw.metric("kmsgate_upstream_slot_waits_total", &[]).await;
    assert!((6.0..=8.0).contains(&waits), "{waits} waits");
}

#[tokio::test]
async fn waiting_for_an_upstream_connection_counts_against_the_request_timeout() {
    let (addr, _) = slow_upstream(Duration::from_millis(600)).await;
    let gw = gateway_with_max_connections(addr, "900ms", 1).await;
    let first = tokio::spawn(gw.request("GET", "/api/v2/keys").send());
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Waits 500 ms for the only connection, then would need 600 ms more.
    let second = gw.request("GET", "/api/v2/keys").send().await;
    assert_rejected(&second, 504, "UPSTREAM_TIMEOUT_ERR");
    assert_eq!(first.await.unwrap().status, 200);
}
