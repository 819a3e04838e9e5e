//! kmsgate: a policy gateway for IBM Key Protect-compatible KMS APIs.
//!
//! kmsgate stands in front of a KMS and enforces Key Protect *instance policies* (allowedIP,
//! allowedNetwork, keyCreateImportAccess), bearer-token validation and request-body shape rules
//! before anything reaches the KMS. A refused request gets Key Protect's own reason-coded error
//! envelope (see [`reason`]) and a Prometheus counter for that code goes up.
//!
//! The gateway is a stack of Tower layers over hyper 1; [`gateway`] assembles it, in the order
//! that is the contract:
//!
//! ```text
//! observe → client_ip → instance → network → allowed_ip → bearer → service_rules → body → policy_api →
//! key_access → proxy
//! ```
//!
//! Each layer is public and can be used on its own.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub, rust_2018_idioms)]
// No `unwrap()` on anything a request or config can make fail: outside tests it is refused.
#![deny(clippy::unwrap_used)]

pub mod access_log;
pub mod admin;
pub mod auth;
pub mod body;
pub mod bytes_pool;
pub mod canonical;
pub mod cli;
pub mod collection;
pub mod config;
pub mod conn;
pub mod context;
pub mod devkms;
pub mod explain;
pub mod gateway;
pub mod gojson;
pub mod http_client;
pub mod ipset;
pub mod layer;
pub mod metrics;
pub mod policy;
pub mod readiness;
pub mod reason;
pub mod route;
pub mod server;
pub mod settings;
pub mod shutdown;
pub mod telemetry;
pub mod text;
pub mod upstream;

pub use body::Body;
pub use reason::{Operation, Reason, Rejection};
pub use route::Route;
