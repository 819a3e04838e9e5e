//! TLS on both sides: a TLS client listener (HTTP/1.1 and HTTP/2, by ALPN or without it), and
//! an `https://` upstream verified against `upstream.ca_file`. The certificate is made with
//! `openssl` for this run.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::{Recorder, TestGateway};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// A self-signed certificate for `localhost` and 127.0.0.1: (cert path, key path).
fn certificate(name: &str) -> (PathBuf, PathBuf) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("tls")
        .join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args(["-subj", "/CN=localhost", "-days", "1"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl must be installed to make the test certificate");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    (cert, key)
}

fn tls_toml(cert: &Path, key: &Path) -> String {
    format!(
        "[listen.tls]\ncert_file = {:?}\nkey_file = {:?}\n",
        cert.display().to_string(),
        key.display().to_string()
    )
}

/// Sends GET `path` over TLS to `addr`, offering `alpn` (none if empty) and speaking HTTP/2 if
/// `h2`; returns (status, version, body).
async fn get_over_tls(
    addr: std::net::SocketAddr,
    cert: &Path,
    alpn: &[u8],
    h2: bool,
    path: &str,
) -> (u16, http::Version, Bytes) {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(cert).unwrap())
        .unwrap();
    let mut config = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    if !alpn.is_empty() {
        config.alpn_protocols = vec![alpn.to_vec()];
    }
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), stream)
        .await
        .expect("TLS handshake");
    let io = TokioIo::new(tls);
    let req = Request::get(format!("https://localhost:{}{path}", addr.port()))
        .header("bluemix-instance", "tls-instance")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = if h2 {
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .unwrap();
        tokio::spawn(conn);
        sender.send_request(req).await.unwrap()
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        let mut req = req;
        req.headers_mut()
            .insert("host", "localhost".parse().unwrap());
        sender.send_request(req).await.unwrap()
    };
    let status = res.status().as_u16();
    let version = res.version();
    (
        status,
        version,
        res.into_body().collect().await.unwrap().to_bytes(),
    )
}

#[tokio::test]
async fn the_client_listener_speaks_tls_with_h1_and_h2_by_alpn_or_without() {
    let (cert, key) = certificate("listener");
    let upstream = Recorder::start().await;
    let gw = TestGateway::start(&format!(
        "{}[upstream]\nurl = \"{}\"\n",
        tls_toml(&cert, &key),
        upstream.url()
    ))
    .await;

    let (status, version, body) =
        get_over_tls(gw.addrs.public, &cert, b"http/1.1", false, "/api/v2/keys").await;
    assert_eq!((status, version), (200, http::Version::HTTP_11));
    assert_eq!(&body[..], br#"{"ok":true}"#);
    let seen = upstream.last();
    assert_eq!(seen.headers["x-forwarded-proto"], "https");
    assert_eq!(seen.version, http::Version::HTTP_11);

    let (status, version, _) =
        get_over_tls(gw.addrs.public, &cert, b"h2", true, "/api/v2/keys").await;
    assert_eq!((status, version), (200, http::Version::HTTP_2));
    assert_eq!(upstream.count(), 2);

    // Without ALPN the first bytes decide, as on a plain connection.
    let (status, version, _) =
        get_over_tls(gw.addrs.public, &cert, b"", false, "/api/v2/keys").await;
    assert_eq!((status, version), (200, http::Version::HTTP_11));
    let (status, version, _) =
        get_over_tls(gw.addrs.public, &cert, b"", true, "/api/v2/keys").await;
    assert_eq!((status, version), (200, http::Version::HTTP_2));
    assert_eq!(upstream.count(), 4);
}

#[tokio::test]
async fn an_https_upstream_is_verified_against_the_ca_file() {
    // The upstream: a TLS gateway in front of the embedded dev KMS.
    let (cert, key) = certificate("upstream");
    let kms = TestGateway::start(&tls_toml(&cert, &key)).await;
    let url = format!("https://localhost:{}", kms.addrs.public.port());

    let trusting = TestGateway::start(&format!(
        "[upstream]\nurl = \"{url}\"\nca_file = {:?}\n",
        cert.display().to_string()
    ))
    .await;
    let res = trusting
        .request("GET", "/api/v2/keys")
        .header("bluemix-instance", "tls-instance")
        .send()
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(
        res.json()["metadata"]["collectionType"],
        "application/vnd.ibm.kms.key+json"
    );

    // Without the CA the certificate is not trusted: no answer from the upstream → 502.
    let other = tempfile_ca();
    let distrusting = TestGateway::start(&format!(
        "[upstream]\nurl = \"{url}\"\nca_file = {:?}\n",
        other.display().to_string()
    ))
    .await;
    let res = distrusting.request("GET", "/api/v2/keys").send().await;
    support::assert_rejected(&res, 502, "UPSTREAM_UNAVAILABLE_ERR");
}

/// A CA bundle holding an unrelated certificate.
fn tempfile_ca() -> PathBuf {
    certificate("unrelated").0
}

/// A client that opens a TLS connection and never sends its ClientHello is closed after the
/// header-read timeout, as a plain one is: it cannot hold a connection slot forever.
#[tokio::test]
async fn a_stalled_tls_handshake_is_closed_after_the_header_read_timeout() {
    use tokio::io::AsyncReadExt;
    let (cert, key) = certificate("stalled");
    let gw = TestGateway::start(&format!(
        "[listen]\nheader_read_timeout = \"300ms\"\n{}",
        tls_toml(&cert, &key)
    ))
    .await;
    let mut stream = tokio::net::TcpStream::connect(gw.addrs.public)
        .await
        .unwrap();
    let start = std::time::Instant::now();
    let mut out = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut out),
    )
    .await;
    assert!(read.is_ok(), "the gateway kept a stalled handshake open");
    assert!(out.is_empty());
    assert!(start.elapsed() >= std::time::Duration::from_millis(300));
}
