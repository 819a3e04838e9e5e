//! The upstream: a pooled HTTP/HTTPS client to the KMS, or the embedded dev KMS in-process.
//!
//! What the upstream does to a request: the URI becomes the upstream's (scheme, authority, base
//! path + the original path and query); the version becomes HTTP/1.1 (the pool is HTTP/1);
//! hop-by-hop headers go; `Host` is the upstream's; `X-Forwarded-For` is *set* (never appended)
//! to the client address and `X-Forwarded-Proto` to the client's scheme. The body streams
//! through unchanged. To a response: hop-by-hop headers go and the version becomes the
//! client's. An upstream error body (≤ 64 KiB) is watched while it streams to the client, and the
//! reason codes of its Key Protect envelope are counted.
//!
//! At most `upstream.max_connections` requests are at the upstream at once: each holds a slot
//! (a semaphore permit) from the moment it is sent until its response body is dropped, which is as
//! long as it occupies a pooled connection. Without the bound, every concurrent client request
//! that finds no idle connection opens a new one (1,000 clients → about 1,000 upstream
//! connections, each with hyper's buffers and connection task), although the upstream answers
//! no faster for it. A request that finds every slot taken waits for one, within
//! `upstream.request_timeout`.
//!
//! Failures answer with the gateway's codes: `UPSTREAM_UNAVAILABLE_ERR` (502) when no answer
//! could be had, `UPSTREAM_TIMEOUT_ERR` (504) after `upstream.request_timeout`.
//!
//! - [`service`]: the service and its future (URI rewrite, slots, timeout, response).
//! - [`headers`]: header hygiene (hop-by-hop, `Host`, `X-Forwarded-*`).
//! - [`inspect`]: the error-envelope inspector that counts the backend's reason codes.
//!
//! The upstream is a remote KMS, or any service the gateway plugs in ([`Upstream::embedded`]:
//! the embedded dev KMS); it knows no particular backend. Not to be confused with the PROXY
//! protocol of the listeners (`server::proxy_protocol`).

pub mod headers;
pub mod inspect;
pub mod service;

pub use headers::strip_hop_by_hop;
pub use inspect::{ErrorInspector, INSPECT_LIMIT, envelope_codes};
pub use service::{FromUpstream, Upstream, UpstreamFuture};
