//! Shutdown as Kubernetes sees it: on the first signal `/readyz` turns 503 while the gateway
//! keeps accepting and serving for `shutdown.grace_period`; then new connections are refused,
//! in-flight requests finish, and the admin listener answers until the very end.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::{Recorder, TestGateway};
use tokio::net::TcpStream;

/// A gateway with this `[shutdown]` section in front of a recording upstream.
async fn gateway(shutdown: &str) -> (Recorder, TestGateway) {
    let upstream = Recorder::start().await;
    let toml = format!(
        "[upstream]\nurl = \"{}\"\n[shutdown]\n{shutdown}\n",
        upstream.url()
    );
    (upstream, TestGateway::start(&toml).await)
}

/// Polls `/readyz` until it answers `status` (at most 5 s).
async fn readyz_turns(gw: &TestGateway, status: u16) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = gw.admin("/readyz").await.status;
        if now == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz stayed {now}, not {status}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until a new connection to `addr` is refused (at most 5 s).
async fn connections_refused(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match TcpStream::connect(addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
            // Still in the accept queue when the listener closed: reset, not served. Poll on.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("connect failed otherwise: {e}"),
            Ok(_) => {}
        }
        assert!(
            Instant::now() < deadline,
            "{addr} still accepts connections"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits for the gateway's run future to complete (at most `within`).
async fn finished(gw: &TestGateway, within: Duration) {
    let deadline = Instant::now() + within;
    while !gw.is_finished() {
        assert!(
            Instant::now() < deadline,
            "the gateway still runs after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn readyz_turns_503_and_new_connections_are_served_during_the_grace_period() {
    let (upstream, mut gw) = gateway("grace_period = \"2s\"\ndrain_timeout = \"10s\"").await;
    readyz_turns(&gw, 200).await;
    let start = Instant::now();
    gw.begin_shutdown();
    readyz_turns(&gw, 503).await;

    // Grace period: each TestRequest opens a new connection, and it is served.
    let res = gw.request("GET", "/api/v2/keys").send().await;
    assert_eq!(res.status, 200, "{}", res.text());
    let res = gw.request("GET", "/api/v2/keys").private().send().await;
    assert_eq!(
        res.status,
        200,
        "the private listener serves too: {}",
        res.text()
    );
    assert_eq!(upstream.count(), 2);

    // A slow request that is still in flight when the grace period ends.
    upstream.delay(Duration::from_millis(2500));
    let in_flight = tokio::spawn(gw.request("GET", "/api/v2/keys").send());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(upstream.count(), 3, "the slow request reached the upstream");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "the test itself was too slow to start the request inside the grace period"
    );

    // After it: new connections are refused on both client listeners ...
    connections_refused(gw.addrs.public).await;
    assert!(
        start.elapsed() >= Duration::from_secs(2),
        "refused before the grace period ended"
    );
    connections_refused(gw.addrs.private.unwrap()).await;
    // ... while the admin listener still answers (unready) during the drain.
    assert!(!in_flight.is_finished());
    assert_eq!(gw.admin("/readyz").await.status, 503);
    assert_eq!(gw.admin("/healthz").await.status, 200);

    // The in-flight request finishes, then the gateway's run completes.
    let res = in_flight.await.unwrap();
    assert_eq!(
        res.status,
        200,
        "the in-flight request finished: {}",
        res.text()
    );
    finished(&gw, Duration::from_secs(5)).await;
    connections_refused(gw.addrs.admin).await;
}

#[tokio::test]
async fn a_second_signal_ends_the_grace_period() {
    let (_upstream, mut gw) = gateway("grace_period = \"60s\"").await;
    gw.begin_shutdown();
    readyz_turns(&gw, 503).await;
    let res = gw.request("GET", "/api/v2/keys").send().await;
    assert_eq!(res.status, 200, "{}", res.text());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!gw.is_finished(), "the grace period ended on its own");

    let start = Instant::now();
    gw.skip_grace();
    connections_refused(gw.addrs.public).await;
    finished(&gw, Duration::from_secs(5)).await;
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn without_a_grace_period_connections_are_refused_at_once() {
    let (_upstream, mut gw) = gateway("grace_period = \"0s\"").await;
    readyz_turns(&gw, 200).await;
    gw.begin_shutdown();
    connections_refused(gw.addrs.public).await;
    finished(&gw, Duration::from_secs(5)).await;
}
