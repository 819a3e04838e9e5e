//! Benchmark candidate "bare proxy": a hyper pass-through reverse proxy with no layers, the
//! floor for a hyper-based proxy such as kmsgate.
//!
//! It uses the same building blocks kmsgate's proxy core uses: the hyper-util auto server
//! (HTTP/1.1 + h2c) with a header-read timeout on a multi-thread runtime, and the pooled
//! hyper-util legacy client over `HttpConnector` (TCP_NODELAY, same pool settings as kmsgate's
//! defaults). Per request it only rewrites the URI to the upstream's, forces HTTP/1.1 on the
//! upstream side and drops `Connection`; bodies stream through untouched.
//!
//! Usage: `bare-proxy LISTEN_ADDR UPSTREAM_AUTHORITY`, e.g.
//! `bare-proxy 127.0.0.1:18081 127.0.0.1:18080`; prints `listening ADDR` once bound.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version, header};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

type Upstream = Client<HttpConnector, Incoming>;
type ProxyBody = http_body_util::Either<Incoming, http_body_util::Empty<bytes::Bytes>>;

fn invalid(what: &str, e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{what}: {e}"))
}

async fn forward(
    client: Arc<(Upstream, Authority)>,
    mut req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let (upstream, authority) = &*client;
    let path = req
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let uri = Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(authority.clone())
        .path_and_query(path)
        .build();
    let Ok(uri) = uri else {
        return Ok(status(StatusCode::BAD_REQUEST));
    };
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_11;
    req.headers_mut().remove(header::CONNECTION);
    match upstream.request(req).await {
        Ok(res) => Ok(res.map(http_body_util::Either::Left)),
        Err(_) => Ok(status(StatusCode::BAD_GATEWAY)),
    }
}

fn status(code: StatusCode) -> Response<ProxyBody> {
    let mut res = Response::new(http_body_util::Either::Right(http_body_util::Empty::new()));
    *res.status_mut() = code;
    res
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:18081".to_owned())
        .parse()
        .map_err(|e| invalid("listen address", e))?;
    let authority: Authority = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:18080".to_owned())
        .parse()
        .map_err(|e| invalid("upstream authority", e))?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(Duration::from_secs(2)));
        http.set_nodelay(true);
        let upstream: Upstream = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .build(http);
        let client = Arc::new((upstream, authority));

        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(10));
        builder.http2().timer(TokioTimer::new());
        let builder = Arc::new(builder);

        let listener = TcpListener::bind(listen).await?;
        println!("listening {}", listener.local_addr()?);
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    eprintln!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let client = client.clone();
            let builder = builder.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| forward(client.clone(), req));
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}
