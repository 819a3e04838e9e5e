//! Benchmark upstream stub: a minimal hyper HTTP/1.1 server on loopback that answers every
//! request with the same Key Protect-shaped wrap response (200,
//! `application/vnd.ibm.kms.key_action_wrap+json`).
//!
//! It drains the request body before answering (as a real KMS would read it) and keeps
//! connections alive. One thread (current-thread runtime): the harness pins it to a core.
//!
//! Usage: `upstream-stub [ADDR]` (default `127.0.0.1:18080`); it prints `listening ADDR` once
//! bound, so the harness can wait for it.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The fixed answer: what Key Protect returns for a wrap with caller-supplied plaintext.
const WRAP_RESPONSE: &[u8] = br#"{"ciphertext":"eyJjaXBoZXJ0ZXh0IjoiQmVuY2htYXJrU3R1YkNpcGhlcnRleHRCZW5jaG1hcmtTdHViIiwiaXYiOiJzdHViaXYiLCJ2ZXJzaW9uIjoiNC4wLjAiLCJoYW5kbGUiOiJzdHViIn0=","keyVersion":{"id":"12e8c9c2-a162-472d-b7d6-8b9a86b815a6","creationDate":"2026-11-29T12:00:00Z"}}"#;

const WRAP_TYPE: &str = "application/vnd.ibm.kms.key_action_wrap+json";

async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // Read the request body fully, as a real KMS would; a broken body still gets the answer.
    let _ = req.into_body().collect().await;
    let mut res = Response::new(Full::new(Bytes::from_static(WRAP_RESPONSE)));
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(WRAP_TYPE));
    Ok(res)
}

fn main() -> std::io::Result<()> {
    let addr: SocketAddr = match std::env::args().nth(1) {
        Some(arg) => arg.parse().map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{arg}: {e}"))
        })?,
        None => SocketAddr::from(([127, 0, 0, 1], 18080)),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(addr).await?;
        println!("listening {}", listener.local_addr()?);
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    eprintln!("accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service_fn(answer))
                    .await;
            });
        }
    })
}
