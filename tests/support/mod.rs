//! Test support: a recording upstream, an in-process gateway on ephemeral loopback ports, and a
//! small HTTP client that can choose its source address and speak h1 or h2c.
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use kmsgate::config::Config;
use kmsgate::gateway::{Addrs, Gateway};
use serde_json::Value;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::oneshot;

pub mod etcd;
pub mod oracle;
pub mod sdk;

// === Recorder: an upstream that records what it receives ===

/// A request as the upstream received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: Method,
    pub uri: http::Uri,
    pub version: http::Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Debug)]
struct RecorderState {
    requests: Vec<Recorded>,
    status: StatusCode,
    body: Bytes,
    headers: HeaderMap,
    delay: Option<Duration>,
}

/// A loopback HTTP/1.1 upstream that records every request and answers with a configurable
/// response (200 `{"ok":true}` by default).
#[derive(Clone)]
pub struct Recorder {
    addr: SocketAddr,
    state: Arc<Mutex<RecorderState>>,
}

impl Recorder {
    pub async fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind recorder");
        let addr = listener.local_addr().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        let state = Arc::new(Mutex::new(RecorderState {
            requests: Vec::new(),
            status: StatusCode::OK,
            body: Bytes::from_static(br#"{"ok":true}"#),
            headers,
            delay: None,
        }));
        let shared = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let state = state.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|c| c.to_bytes())
                                .unwrap_or_default();
                            let (status, reply, headers, delay) = {
                                let mut s = state.lock().unwrap();
                                s.requests.push(Recorded {
                                    method: parts.method,
                                    uri: parts.uri,
                                    version: parts.version,
                                    headers: parts.headers,
                                    body,
                                });
                                (s.status, s.body.clone(), s.headers.clone(), s.delay)
                            };
                            if let Some(delay) = delay {
                                tokio::time::sleep(delay).await;
                            }
                            let mut res = Response::new(Full::new(reply));
                            *res.status_mut() = status;
                            *res.headers_mut() = headers;
                            Ok::<_, Infallible>(res)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Recorder { addr, state }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers every later request with this status and body.
    pub fn respond_with(&self, status: u16, body: impl Into<Bytes>) {
        let mut s = self.state.lock().unwrap();
        s.status = StatusCode::from_u16(status).unwrap();
        s.body = body.into();
    }

    /// Adds a header to every later response.
    pub fn respond_header(&self, name: &'static str, value: &'static str) {
        self.state
            .lock()
            .unwrap()
            .headers
            .insert(name, HeaderValue::from_static(value));
    }

    /// Waits this long before answering.
    pub fn delay(&self, delay: Duration) {
        self.state.lock().unwrap().delay = Some(delay);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn count(&self) -> usize {
        self.state.lock().unwrap().requests.len()
    }

    pub fn last(&self) -> Recorded {
        self.requests()
            .pop()
            .expect("the upstream received no request")
    }
}

/// The reference's KEY_CREATE_IMPORT_ACCESS_ERR example request (step 2b: a standard key),
/// verbatim, line breaks included.
pub const REFERENCE_STANDARD_KEY: &str = r#"{
"metadata": {
"collectionType": "application/vnd.ibm.kms.key+json",
"collectionTotal": 1
},
"resources": [
{
"type": "application/vnd.ibm.kms.key+json",
"name": "my-standard-key",
"description": "my-standard-key",
"extractable": true
}
]
}"#;

// === TestGateway: the real gateway, in process, on ephemeral ports ===

/// The base of every test config: loopback listeners on ephemeral ports, no grace period.
pub const BASE: &str = r#"
[listen]
public = "127.0.0.1:0"
private = "127.0.0.1:0"
admin = "127.0.0.1:0"

[shutdown]
grace_period = "0s"
drain_timeout = "5s"
"#;

/// A running gateway. Dropping it shuts it down.
pub struct TestGateway {
    pub addrs: Addrs,
    stop: Option<oneshot::Sender<()>>,
    skip_grace: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestGateway {
    /// Starts a gateway with `toml` merged over a base config that listens on 127.0.0.1:0
    /// (public, private, admin). An empty string means the embedded dev KMS upstream.
    pub async fn start(toml: &str) -> TestGateway {
        let config =
            Config::from_toml(&[BASE, toml]).unwrap_or_else(|e| panic!("test config: {e}"));
        TestGateway::start_with(config).await
    }

    pub async fn start_with(config: Config) -> TestGateway {
        let gateway = Gateway::bind(config)
            .await
            .unwrap_or_else(|e| panic!("gateway bind: {e}"));
        TestGateway::run(gateway)
    }

    /// Like [`TestGateway::start`], with these instance policies swapped into the policy store
    /// before the first request (built as values, independent of the policy JSON parser).
    pub async fn start_with_policies(
        toml: &str,
        policies: kmsgate::policy::Snapshot,
    ) -> TestGateway {
        let config =
            Config::from_toml(&[BASE, toml]).unwrap_or_else(|e| panic!("test config: {e}"));
        let gateway = Gateway::bind(config)
            .await
            .unwrap_or_else(|e| panic!("gateway bind: {e}"));
        gateway.policies().replace(policies);
        TestGateway::run(gateway)
    }

    /// Runs a bound gateway (one the test has set up further).
    pub fn run(gateway: Gateway) -> TestGateway {
        let addrs = gateway.addrs();
        let (stop, stopped) = oneshot::channel::<()>();
        let (skip_grace, skipped) = oneshot::channel::<()>();
        let task = tokio::spawn(gateway.run_with(
            async move {
                let _ = stopped.await;
            },
            async move {
                if skipped.await.is_err() {
                    std::future::pending::<()>().await;
                }
            },
        ));
        TestGateway {
            addrs,
            stop: Some(stop),
            skip_grace: Some(skip_grace),
            task: Some(task),
        }
    }

    /// Starts the gateway's shutdown (as the first SIGTERM does) without waiting for it.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Ends the grace period early (as a second SIGTERM does).
    pub fn skip_grace(&mut self) {
        if let Some(skip) = self.skip_grace.take() {
            let _ = skip.send(());
        }
    }

    /// True once the gateway's run future has completed.
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(|task| task.is_finished())
    }

    /// Starts the gateway's drain and waits until it has finished.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// A request to the public listener.
    pub fn request(&self, method: &str, path: &str) -> TestRequest {
        TestRequest::new(self.addrs.public, method, path).private_addr(self.addrs.private)
    }

    /// GET on the admin listener.
    pub async fn admin(&self, path: &str) -> TestResponse {
        TestRequest::new(self.addrs.admin, "GET", path).send().await
    }

    /// How many answers the upstream has given, whatever their status (the sum of
    /// `kmsgate_upstream_responses_total`). For the embedded dev KMS, whose requests cannot be
    /// recorded, this is how a test shows that a refused request never reached it.
    pub async fn upstream_calls(&self) -> f64 {
        let text = self.admin("/metrics").await.text();
        ["1xx", "2xx", "3xx", "4xx", "5xx"]
            .iter()
            .map(|class| {
                find_metric(
                    &text,
                    "kmsgate_upstream_responses_total",
                    &[("status_class", class)],
                )
                .unwrap_or_else(|| panic!("no upstream response counter for {class}"))
            })
            .sum()
    }

    /// The value of the first series of metric `name` whose labels include every pair in
    /// `labels`. Panics when there is none, so a missing metric fails the test.
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let text = self.admin("/metrics").await.text();
        find_metric(&text, name, labels)
            .unwrap_or_else(|| panic!("no series {name}{labels:?} in /metrics:\n{text}"))
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Finds a series in Prometheus text exposition.
pub fn find_metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, series_labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if series_name != name {
                return None;
            }
            let all = labels.iter().all(|(k, v)| {
                series_labels
                    .split(',')
                    .any(|pair| pair == format!("{k}=\"{v}\""))
            });
            if all { value.parse().ok() } else { None }
        })
}

// === TestRequest / TestResponse ===

/// A request under construction.
pub struct TestRequest {
    addr: SocketAddr,
    private: Option<SocketAddr>,
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Bytes,
    from_ip: Option<IpAddr>,
    h2: bool,
}

impl TestRequest {
    pub fn new(addr: SocketAddr, method: &str, path: &str) -> TestRequest {
        TestRequest {
            addr,
            private: None,
            method: Method::from_bytes(method.as_bytes()).unwrap(),
            path: path.to_owned(),
            headers: Vec::new(),
            body: Bytes::new(),
            from_ip: None,
            h2: false,
        }
    }

    fn private_addr(mut self, private: Option<SocketAddr>) -> Self {
        self.private = private;
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    pub fn json(self, value: &Value) -> Self {
        self.body(serde_json::to_vec(value).unwrap())
    }

    /// Sends to the private listener instead of the public one.
    pub fn private(mut self) -> Self {
        self.addr = self.private.expect("the gateway has no private listener");
        self
    }

    /// Binds the client socket to this source address (e.g. `127.0.0.7` or `::1`).
    #[allow(clippy::wrong_self_convention)] // a builder step, read as "send from this IP"
    pub fn from_ip(mut self, ip: &str) -> Self {
        self.from_ip = Some(ip.parse().expect("an IP address"));
        self
    }

    /// Speaks h2c (HTTP/2 with prior knowledge) instead of HTTP/1.1.
    pub fn h2(mut self) -> Self {
        self.h2 = true;
        self
    }

    pub async fn send(self) -> TestResponse {
        let socket = if self.addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .unwrap();
        if let Some(ip) = self.from_ip {
            socket
                .bind(SocketAddr::new(ip, 0))
                .expect("bind the client source address");
        }
        let stream = socket
            .connect(self.addr)
            .await
            .expect("connect to the gateway");
        let io = TokioIo::new(stream);
        let uri = if self.h2 {
            format!("http://{}{}", self.addr, self.path)
        } else {
            self.path.clone()
        };
        let mut req = Request::builder().method(self.method).uri(uri);
        if !self.h2
            && !self
                .headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("host"))
        {
            req = req.header("host", self.addr.to_string());
        }
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req.body(Full::new(self.body)).unwrap();
        let res = if self.h2 {
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .expect("h2 handshake");
            tokio::spawn(conn);
            sender.send_request(req).await.expect("send h2 request")
        } else {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .expect("h1 handshake");
            tokio::spawn(conn);
            sender.send_request(req).await.expect("send h1 request")
        };
        let (parts, body) = res.into_parts();
        let body = body
            .collect()
            .await
            .expect("read the response body")
            .to_bytes();
        TestResponse {
            status: parts.status.as_u16(),
            version: parts.version,
            headers: parts.headers,
            body,
        }
    }
}

/// A complete response.
#[derive(Debug)]
pub struct TestResponse {
    pub status: u16,
    pub version: http::Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl TestResponse {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Asserts a refusal by the gateway: status, `kmsgate-reason`, a correlation id, and Key
/// Protect's envelope with the code (a 401 has `errorMsg` only).
pub fn assert_rejected(res: &TestResponse, status: u16, code: &str) {
    assert_eq!(res.status, status, "status; body: {}", res.text());
    assert_eq!(
        res.header("kmsgate-reason"),
        Some(code),
        "kmsgate-reason header"
    );
    assert!(
        res.header("correlation-id").is_some(),
        "correlation-id header"
    );
    let v = res.json();
    assert_eq!(
        v["metadata"]["collectionType"],
        "application/vnd.ibm.kms.error+json"
    );
    assert_eq!(v["metadata"]["collectionTotal"], 1);
    let resources = v["resources"].as_array().expect("resources");
    assert_eq!(resources.len(), 1);
    let error_msg = resources[0]["errorMsg"].as_str().expect("errorMsg");
    if status == 401 {
        assert_eq!(
            error_msg,
            "Unauthorized: The user does not have access to the specified resource"
        );
        assert!(
            resources[0].get("reasons").is_none(),
            "a 401 carries no reasons"
        );
    } else {
        let reason = &resources[0]["reasons"][0];
        assert_eq!(reason["code"], code);
        assert_eq!(reason["status"], status);
        assert_eq!(
            reason["moreInfo"],
            "https://cloud.ibm.com/apidocs/key-protect"
        );
        assert!(reason["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(error_msg.contains("Please see"), "errorMsg {error_msg:?}");
    }
}
