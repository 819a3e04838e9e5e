//! The Go oracle of the differential test (`tests/go_oracle`): building and running it, its
//! reading of a request, and two small clients that send exactly what a test case says —
//! raw HTTP/1.1 bytes over a `TcpStream` (so duplicate `Host` lines, absolute-form targets and
//! odd framing reach the server as written) and h2c with a chosen `:authority`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Builds `tests/go_oracle` with the `go` toolchain into `CARGO_TARGET_TMPDIR` and returns the
/// binary. Panics, with what to install, when `go` is missing: the differential test must never
/// pass without its oracle.
pub fn build() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let bin = tmp.join("go_oracle");
    let mut cmd = Command::new("go");
    cmd.current_dir(manifest.join("tests/go_oracle"))
        .args(["build", "-buildvcs=false", "-o"])
        .arg(&bin)
        .arg(".")
        .env("GOTOOLCHAIN", "local");
    // CI may run without HOME: give Go a cache and module path of its own.
    if std::env::var_os("GOCACHE").is_none() && std::env::var_os("HOME").is_none() {
        cmd.env("GOCACHE", tmp.join("go-cache"));
    }
    if std::env::var_os("GOPATH").is_none() && std::env::var_os("HOME").is_none() {
        cmd.env("GOPATH", tmp.join("go-path"));
    }
    let out = match cmd.output() {
        Ok(out) => out,
        Err(e) => panic!(
            "the differential test needs the Go toolchain and could not run `go` ({e}).\n\
             Install it: apt-get update && apt-get install -y golang-go (.ci/run does this)"
        ),
    };
    assert!(
        out.status.success(),
        "go build ./tests/go_oracle failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    bin
}

/// A running Go oracle on a loopback port; killed when dropped.
pub struct GoOracle {
    child: Child,
    addr: SocketAddr,
}

impl GoOracle {
    /// Starts `bin` on 127.0.0.1:0 and reads the bound address from its first line of output.
    pub fn spawn(bin: &Path) -> GoOracle {
        let mut child = Command::new(bin)
            .args(["-listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("read the oracle's address");
        let addr = line
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("the oracle printed {line:?} ({e})"));
        GoOracle { child, addr }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many requests reached the oracle's handler (each got a reading).
    pub async fn count(&self) -> u64 {
        self.admin("/__oracle/count").await["count"]
            .as_u64()
            .expect("count")
    }

    /// The `x-diff-case` header of every request that reached the oracle's handler.
    pub async fn seen(&self) -> Vec<String> {
        serde_json::from_value(self.admin("/__oracle/seen").await).expect("seen list")
    }

    async fn admin(&self, path: &str) -> serde_json::Value {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        );
        let res = send_raw(self.addr, req.as_bytes(), Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| panic!("GET {path} from the oracle: {e}"));
        serde_json::from_slice(&res.body).unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }
}

impl Drop for GoOracle {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a key create/import body means to Go (`resources[0]`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct CreateReading {
    /// `json.Unmarshal` succeeded.
    pub ok: bool,
    pub resources: usize,
    /// `extractable` false or absent.
    pub root: bool,
    /// `payload` non-empty.
    pub import: bool,
    /// `encryptedNonce` and `iv` both non-empty.
    pub token: bool,
    pub b64_ok: bool,
}

/// What a key-action body means to Go.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct ActionReading {
    pub ok: bool,
    pub import: bool,
    pub token: bool,
    pub b64_ok: bool,
}

/// What an instance-policy PUT body means to Go.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct PolicyReading {
    pub ok: bool,
    pub types: Option<Vec<String>>,
}

/// Go's reading of one request (see `tests/go_oracle/main.go`).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Reading {
    pub seq: u64,
    /// The `x-diff-case` header: which test case this was.
    pub case: String,
    pub method: String,
    /// `r.URL.Path` (decoded).
    pub path: String,
    pub query: String,
    /// The route a gorilla/mux-style router on the decoded path executes (`redirect` for a
    /// path that cleaning changes); labels as `Route::as_str`.
    pub route: String,
    /// The route of the clean path without a trailing slash.
    pub loose_route: String,
    /// `Bluemix-Instance` as `uuid.Parse` reads it (canonical when `instance_ok`).
    pub instance: String,
    pub instance_ok: bool,
    pub instances: Option<Vec<String>>,
    /// `r.Host`.
    pub host: String,
    pub root: bool,
    pub import: bool,
    pub token: bool,
    pub body_ok: bool,
    pub policy_types: Option<Vec<String>>,
    pub create: CreateReading,
    pub action: ActionReading,
    pub policy_put: PolicyReading,
    pub body_len: usize,
}

/// A complete response, as read off the wire.
#[derive(Clone, Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The oracle's reading, when this response is one.
    pub fn reading(&self) -> Option<Reading> {
        if self.status != 200 || self.header("x-go-oracle").is_none() {
            return None;
        }
        serde_json::from_slice(&self.body).ok()
    }
}

/// Writes `request` (which should say `Connection: close`) to `addr` and reads the response
/// until the server closes the connection.
pub async fn send_raw(
    addr: SocketAddr,
    request: &[u8],
    timeout: Duration,
) -> Result<RawResponse, String> {
    let io = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        stream
            .write_all(request)
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut buf = Vec::new();
        // A server may answer and close before reading everything: keep what arrived.
        let read = stream.read_to_end(&mut buf).await;
        if buf.is_empty() {
            return Err(match read {
                Ok(_) => "closed without a response".to_owned(),
                Err(e) => format!("read: {e}"),
            });
        }
        parse_response(&buf)
    };
    tokio::time::timeout(timeout, io)
        .await
        .unwrap_or_else(|_| Err("timed out".to_owned()))
}

fn parse_response(buf: &[u8]) -> Result<RawResponse, String> {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of the response head")?;
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let rest = &buf[end + 4..];
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked")
    });
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(len) = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        rest[..len.min(rest.len())].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(RawResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_text = String::from_utf8_lossy(&rest[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|e| format!("bad chunk size {size_text:?}: {e}"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if rest.len() < size + 2 {
            return Err("truncated chunk".to_owned());
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// An HTTP/2 request with prior knowledge (h2c).
#[derive(Clone, Debug)]
pub struct H2Request {
    pub method: String,
    /// `:authority`.
    pub authority: String,
    /// `:path` (path and query).
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl H2Request {
    /// The request hyper would send, or why it cannot be expressed.
    pub fn to_http(&self) -> Result<Request<Full<Bytes>>, String> {
        let uri = Uri::builder()
            .scheme("http")
            .authority(self.authority.as_str())
            .path_and_query(self.path.as_str())
            .build()
            .map_err(|e| format!("uri: {e}"))?;
        let method = Method::from_bytes(self.method.as_bytes()).map_err(|e| e.to_string())?;
        let mut req = Request::builder().method(method).uri(uri);
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        req.body(Full::new(Bytes::from(self.body.clone())))
            .map_err(|e| format!("request: {e}"))
    }
}

/// Sends one request over a fresh h2c connection.
pub async fn send_h2(
    addr: SocketAddr,
    request: Request<Full<Bytes>>,
    timeout: Duration,
) -> Result<RawResponse, String> {
    let io = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .map_err(|e| format!("h2 handshake: {e}"))?;
        tokio::spawn(conn);
        let res = sender
            .send_request(request)
            .await
            .map_err(|e| format!("h2 request: {e}"))?;
        let (parts, body) = res.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| format!("h2 body: {e}"))?
            .to_bytes();
        Ok(RawResponse {
            status: parts.status.as_u16(),
            headers: parts
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: body.to_vec(),
        })
    };
    tokio::time::timeout(timeout, io)
        .await
        .unwrap_or_else(|_| Err("timed out".to_owned()))
}
