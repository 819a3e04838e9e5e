//! `kmsgate explain`: what the gateway would do with a request, and why — without sending it.
//!
//! The decision and the exact response come from the real stack, built by the gateway's own
//! preparation from the configuration and run in-process with the upstream replaced by a
//! recorder ([`engine`]). The per-layer account beside it — route and operation, client
//! address and the hops walked, instance and the policy document that applies, private or
//! not, token verification, each layer's verdict — comes from the layers' own decision
//! functions ([`narrative`], [`facts`]). The engine checks that the two agree, and says so
//! loudly when they do not; the decision it reports is always the stack's.
//!
//! - [`input`]: the request, from flags, a curl command line or a raw HTTP request file.
//! - [`report`]: the explanation (what `--json` prints).
//! - [`verdict`]: a layer's verdict, the predicted outcome, the rules in words.
//! - [`render`]: the text form.
//! - [`logline`], [`replay`]: `--replay FILE`, access-log lines decided again.
//! - [`admin`]: `POST /explain` on the admin listener (`listen.admin_explain`).

pub mod admin;
pub mod engine;
pub mod facts;
pub mod input;
pub mod logline;
pub mod narrative;
pub mod render;
pub mod replay;
pub mod report;
pub mod verdict;

pub use engine::Explainer;
pub use input::{InputError, RequestInput};
pub use report::{Explanation, Outcome};
