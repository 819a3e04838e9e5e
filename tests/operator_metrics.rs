//! The metrics an operator expects beside the gateway's own (issue 16): open connections and
//! requests in flight per listener, `process_*`, and a duration histogram whose series appear
//! per route on its first request.

mod support;

use std::time::{Duration, Instant};

use support::{Recorder, TestGateway, find_metric};

/// Polls `/metrics` until `name{labels}` equals `want` (at most 5 s).
async fn metric_turns(gw: &TestGateway, name: &str, labels: &[(&str, &str)], want: f64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = gw.admin("/metrics").await.text();
        let now = find_metric(&text, name, labels);
        if now == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name}{labels:?} stayed {now:?}, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn connections_and_requests_in_flight_are_counted_per_listener() {
    let upstream = Recorder::start().await;
    let gw = TestGateway::start(&format!("[upstream]\nurl = \"{}\"\n", upstream.url())).await;
    let public = [("listener", "public")];
    let private = [("listener", "private")];
    assert_eq!(gw.metric("kmsgate_open_connections", &public).await, 0.0);
    assert_eq!(gw.metric("kmsgate_in_flight_requests", &public).await, 0.0);

    upstream.delay(Duration::from_millis(1000));
    let slow = tokio::spawn(gw.request("GET", "/api/v2/keys").send());
    metric_turns(&gw, "kmsgate_in_flight_requests", &public, 1.0).await;
    assert_eq!(gw.metric("kmsgate_open_connections", &public).await, 1.0);
    assert_eq!(gw.metric("kmsgate_in_flight_requests", &private).await, 0.0);
    assert_eq!(slow.await.unwrap().status, 200);

    // The client's connection closes with the response read: both fall back to zero.
    metric_turns(&gw, "kmsgate_in_flight_requests", &public, 0.0).await;
    metric_turns(&gw, "kmsgate_open_connections", &public, 0.0).await;
    assert_eq!(
        gw.metric("kmsgate_connection_limit_waits_total", &public)
            .await,
        0.0
    );
}

#[tokio::test]
async fn a_route_histogram_appears_on_the_routes_first_request() {
    let gw = TestGateway::start("").await;
    let text = gw.admin("/metrics").await.text();
    let bucket = |text: &str, route: &str| {
        find_metric(
            text,
            "kmsgate_request_duration_seconds_count",
            &[("route", route)],
        )
    };
    assert_eq!(
        bucket(&text, "other"),
        Some(0.0),
        "other is there from the start"
    );
    assert_eq!(
        bucket(&text, "key_list"),
        None,
        "no series before the first request"
    );

    let res = gw
        .request("GET", "/api/v2/keys")
        .header("bluemix-instance", "a9f4a4c2-1f3e-4b1e-9a55-0d1b2c3d4e5f")
        .header("authorization", "Bearer x")
        .send()
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let text = gw.admin("/metrics").await.text();
    assert_eq!(bucket(&text, "key_list"), Some(1.0));
    let buckets = text
        .lines()
        .filter(|l| {
            l.starts_with("kmsgate_request_duration_seconds_bucket{")
                && l.contains("route=\"key_list\"")
        })
        .count();
    assert_eq!(buckets, 14, "13 buckets and +Inf");
}

#[tokio::test]
#[cfg(target_os = "linux")]
async fn process_metrics_are_exposed() {
    let gw = TestGateway::start("").await;
    let text = gw.admin("/metrics").await.text();
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_threads",
        "process_start_time_seconds",
    ] {
        let value = find_metric(&text, name, &[]).unwrap_or_else(|| panic!("{name} in {text}"));
        assert!(value >= 0.0, "{name} = {value}");
    }
    assert!(find_metric(&text, "process_resident_memory_bytes", &[]).unwrap() > 1e6);
    assert!(find_metric(&text, "process_open_fds", &[]).unwrap() >= 3.0);
}
