//! Client connections over raw loopback sockets: how a connection's protocol is told from its
//! first bytes, the header-read timeout, half-closed clients, and the connection limit.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::{Recorder, TestGateway};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WRAP: &[u8] = b"POST /api/v2/keys/k1/actions/wrap HTTP/1.1\r\nhost: kms\r\n\
bluemix-instance: i\r\ncontent-type: application/json\r\ncontent-length: 24\r\n\r\n\
{\"plaintext\":\"aGVsbG8=\"}";

/// A gateway with these `[listen]` settings in front of a recording upstream.
async fn gateway(listen: &str) -> (Recorder, TestGateway) {
    let upstream = Recorder::start().await;
    let toml = format!(
        "[listen]\n{listen}\n[upstream]\nurl = \"{}\"\n",
        upstream.url()
    );
    (upstream, TestGateway::start(&toml).await)
}

/// Reads until the gateway closes the connection (at most 5 s).
async fn read_all(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the gateway neither answered nor closed");
    out
}

/// The status line of the first response bytes to arrive within `wait` (None: nothing came).
async fn first_status(stream: &mut TcpStream, wait: Duration) -> Option<String> {
    let mut response = [0u8; 64];
    let n = tokio::time::timeout(wait, stream.read(&mut response))
        .await
        .ok()?
        .unwrap();
    Some(status_line(&response[..n]))
}

/// Asserts that `stream` gets a 200 within 5 s, and that the upstream has now seen `seen`
/// requests.
async fn assert_answered(stream: &mut TcpStream, upstream: &Recorder, seen: usize) {
    let status = first_status(stream, Duration::from_secs(5)).await;
    assert_eq!(status.as_deref(), Some("HTTP/1.1 200 OK"));
    assert_eq!(upstream.count(), seen);
}

fn status_line(response: &[u8]) -> String {
    String::from_utf8_lossy(response)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.unwrap()
}

#[tokio::test]
async fn a_client_that_sends_nothing_is_closed_after_the_header_read_timeout() {
    let (_upstream, gw) = gateway("header_read_timeout = \"300ms\"").await;
    let mut stream = connect(gw.addrs.public).await;
    let start = Instant::now();
    let out = read_all(&mut stream).await;
    assert!(out.is_empty(), "{:?}", String::from_utf8_lossy(&out));
    assert!(start.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn a_request_whose_first_bytes_could_be_the_http2_preface_is_still_http1() {
    // "P" alone could start "PRI * HTTP/2.0": the protocol is decided only by what follows.
    let (upstream, gw) = gateway("").await;
    let mut stream = connect(gw.addrs.public).await;
    stream.write_all(&WRAP[..1]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    stream.write_all(&WRAP[1..]).await.unwrap();
    assert_answered(&mut stream, &upstream, 1).await;
}

#[tokio::test]
async fn a_client_that_half_closes_after_its_request_still_gets_the_response() {
    let (upstream, gw) = gateway("").await;
    upstream.delay(Duration::from_millis(100));
    let mut stream = connect(gw.addrs.public).await;
    stream.write_all(WRAP).await.unwrap();
    stream.shutdown().await.unwrap();
    let out = read_all(&mut stream).await;
    assert_eq!(status_line(&out), "HTTP/1.1 200 OK");
}

#[tokio::test]
async fn beyond_max_connections_a_client_waits_until_another_leaves() {
    let (upstream, gw) = gateway("max_connections = 1").await;
    let mut first = connect(gw.addrs.public).await;
    first.write_all(WRAP).await.unwrap();
    assert_answered(&mut first, &upstream, 1).await;

    // The kernel completes the second handshake, but the gateway does not take the
    // connection while the first one is open.
    let mut second = connect(gw.addrs.public).await;
    second.write_all(WRAP).await.unwrap();
    let early = first_status(&mut second, Duration::from_millis(300)).await;
    assert_eq!(early, None, "answered beyond the connection limit");
    assert_eq!(upstream.count(), 1);

    drop(first);
    assert_answered(&mut second, &upstream, 2).await;
}

#[tokio::test]
async fn a_connection_that_has_sent_nothing_does_not_hold_up_shutdown() {
    let (_upstream, gw) = gateway("header_read_timeout = \"10s\"").await;
    let mut stream = connect(gw.addrs.public).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let start = Instant::now();
    gw.shutdown().await;
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "shutdown took {:?}",
        start.elapsed()
    );
    assert!(read_all(&mut stream).await.is_empty());
}
