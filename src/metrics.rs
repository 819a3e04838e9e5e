//! The metrics registry and the gateway's metric families.
//!
//! Every handle a request touches is resolved at start-up and indexed by enum
//! ([`Reason::index`], [`Route::index`]), so the hot path never hashes a label set. Labels come
//! from closed sets only: reason codes, route names, outcomes, status classes, listeners.
//! The one exception to "resolved at start-up" is a route's duration histogram: it is resolved
//! on the route's first request (then kept), so a sidecar whose application uses five routes
//! exposes five histograms, not one per Key Protect operation.

pub mod family;
mod process;

use std::sync::{Arc, OnceLock};

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

pub use self::family::{defined, register, registered};
use crate::conn::ListenerKind;
use crate::reason::Reason;
use crate::route::Route;

/// How a request ended, for `kmsgate_requests_total{outcome}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The upstream answered (whatever its status).
    Forwarded,
    /// The gateway refused it (a policy, token or body rule).
    Rejected,
    /// The gateway could not get an answer (upstream unreachable or slow, internal error).
    Failed,
}

impl Outcome {
    const ALL: [Outcome; 3] = [Outcome::Forwarded, Outcome::Rejected, Outcome::Failed];

    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Forwarded => "forwarded",
            Outcome::Rejected => "rejected",
            Outcome::Failed => "failed",
        }
    }
}

/// The label of upstream reason codes that are not in the catalogue.
pub const OTHER_CODE: &str = "OTHER";

/// From a refusal (tens of µs: all below the first bucket) to a slow KMS; 1s is one of them
/// (the `KmsgateHighLatency` alert's threshold).
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The gateway's metrics. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    rejections: Vec<IntCounter>,
    shadow_rejections: Vec<IntCounter>,
    requests: Vec<[IntCounter; 3]>,
    /// Per route, resolved from `duration_vec` on the route's first request.
    request_duration: Vec<OnceLock<Histogram>>,
    duration_vec: HistogramVec,
    /// Per listener kind (`ListenerKind as usize`).
    listeners: [ListenerMetrics; 2],
    upstream_duration: Histogram,
    upstream_responses: [IntCounter; 5],
    upstream_reasons: Vec<IntCounter>,
    upstream_other_reason: IntCounter,
    upstream_slot_waits: IntCounter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh registry with every family registered and every handle resolved.
    pub fn new() -> Self {
        let registry = Registry::new();

        let rejections_vec = registered(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "kmsgate_rejections_total",
                    "Requests the gateway refused, by reason code",
                ),
                &["code", "status"],
            ),
        );
        let rejections = Reason::ALL
            .iter()
            .map(|r| rejections_vec.with_label_values(&[r.code(), r.status().as_str()]))
            .collect();

        let shadow_vec = registered(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "kmsgate_shadow_rejections_total",
                    "Requests a shadowed policy would have refused (forwarded), by reason code",
                ),
                &["code"],
            ),
        );
        let shadow_rejections = Reason::ALL
            .iter()
            .map(|r| shadow_vec.with_label_values(&[r.code()]))
            .collect();

        let requests_vec = registered(
            &registry,
            IntCounterVec::new(
                Opts::new("kmsgate_requests_total", "Requests by route and outcome"),
                &["route", "outcome"],
            ),
        );
        let requests = Route::ALL
            .iter()
            .map(|route| {
                Outcome::ALL.map(|o| requests_vec.with_label_values(&[route.as_str(), o.as_str()]))
            })
            .collect();

        let duration_vec = registered(
            &registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "kmsgate_request_duration_seconds",
                    "Time to response headers, by route",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["route"],
            ),
        );
        let request_duration: Vec<OnceLock<Histogram>> =
            Route::ALL.iter().map(|_| OnceLock::new()).collect();
        // `other` from the start, so the family is always there to scrape and query.
        let _ = request_duration[Route::Other.index()]
            .set(duration_vec.with_label_values(&[Route::Other.as_str()]));

        let upstream_duration = registered(
            &registry,
            Histogram::with_opts(
                HistogramOpts::new(
                    "kmsgate_upstream_duration_seconds",
                    "Time the upstream took to answer with headers",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
            ),
        );

        let responses_vec = registered(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "kmsgate_upstream_responses_total",
                    "Upstream responses by status class",
                ),
                &["status_class"],
            ),
        );
        let upstream_responses =
            ["1xx", "2xx", "3xx", "4xx", "5xx"].map(|c| responses_vec.with_label_values(&[c]));

        let reasons_vec = registered(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "kmsgate_upstream_reasons_total",
                    "Reason codes found in the upstream's own error envelopes",
                ),
                &["code"],
            ),
        );
        let upstream_reasons = Reason::ALL
            .iter()
            .map(|r| reasons_vec.with_label_values(&[r.code()]))
            .collect();
        let upstream_other_reason = reasons_vec.with_label_values(&[OTHER_CODE]);

        let upstream_slot_waits = registered(
            &registry,
            IntCounter::new(
                "kmsgate_upstream_slot_waits_total",
                "Requests that found all upstream.max_connections slots taken and waited for one",
            ),
        );

        let build = registered(
            &registry,
            IntGaugeVec::new(
                Opts::new("kmsgate_build_info", "The running kmsgate version"),
                &["version"],
            ),
        );
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);

        let open_vec = registered(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "kmsgate_open_connections",
                    "Client connections open now, by listener",
                ),
                &["listener"],
            ),
        );
        let in_flight_vec = registered(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "kmsgate_in_flight_requests",
                    "Client requests received and not yet answered with response headers, by listener",
                ),
                &["listener"],
            ),
        );
        let waits_vec = registered(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "kmsgate_connection_limit_waits_total",
                    "Accepted connections that found all listen.max_connections slots taken and waited for one, by listener",
                ),
                &["listener"],
            ),
        );
        let listeners = [ListenerKind::Public, ListenerKind::Private].map(|kind| {
            let label = [kind.as_str()];
            ListenerMetrics {
                open_connections: open_vec.with_label_values(&label),
                in_flight_requests: in_flight_vec.with_label_values(&label),
                connection_limit_waits: waits_vec.with_label_values(&label),
            }
        });

        if let Some(process) = process::ProcessCollector::new() {
            register(&registry, process);
        }

        Metrics {
            inner: Arc::new(Inner {
                registry,
                rejections,
                shadow_rejections,
                requests,
                request_duration,
                duration_vec,
                listeners,
                upstream_duration,
                upstream_responses,
                upstream_reasons,
                upstream_other_reason,
                upstream_slot_waits,
            }),
        }
    }

    /// The registry, for layers that register families of their own.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// Counts a refusal by the gateway.
    pub fn rejection(&self, reason: Reason) {
        self.inner.rejections[reason.index()].inc();
    }

    /// Counts a refusal a shadowed policy would have made (the request was forwarded).
    pub fn shadow_rejection(&self, reason: Reason) {
        self.inner.shadow_rejections[reason.index()].inc();
    }

    /// Counts a finished request and its latency.
    pub fn request(&self, route: Route, outcome: Outcome, seconds: f64) {
        let i = route.index();
        self.inner.requests[i][outcome as usize].inc();
        self.inner.request_duration[i]
            .get_or_init(|| self.inner.duration_vec.with_label_values(&[route.as_str()]))
            .observe(seconds);
    }

    /// The connection and request gauges of a client listener.
    pub fn listener(&self, kind: ListenerKind) -> ListenerMetrics {
        self.inner.listeners[match kind {
            ListenerKind::Public => 0,
            ListenerKind::Private => 1,
        }]
        .clone()
    }

    /// Counts an upstream response.
    pub fn upstream_response(&self, status: http::StatusCode, seconds: f64) {
        self.inner.upstream_duration.observe(seconds);
        let class = (status.as_u16() / 100).clamp(1, 5) as usize - 1;
        self.inner.upstream_responses[class].inc();
    }

    /// Counts a reason code found in an upstream error envelope.
    pub fn upstream_reason(&self, code: &str) {
        match Reason::from_code(code.trim()) {
            Some(reason) => self.inner.upstream_reasons[reason.index()].inc(),
            None => self.inner.upstream_other_reason.inc(),
        }
    }

    /// Counts a request that had to wait for an upstream slot.
    pub fn upstream_slot_wait(&self) {
        self.inner.upstream_slot_waits.inc();
    }

    /// The Prometheus text exposition of every family.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        let families = self.inner.registry.gather();
        if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
            tracing::error!(error = %e, "encoding metrics");
        }
        out
    }
}

/// A client listener's gauges (`listener` label): open connections, requests in flight, and
/// waits for a connection slot. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ListenerMetrics {
    open_connections: IntGauge,
    in_flight_requests: IntGauge,
    connection_limit_waits: IntCounter,
}

impl ListenerMetrics {
    /// A connection is open until the guard is dropped.
    pub fn connection(&self) -> GaugeGuard {
        GaugeGuard::new(&self.open_connections)
    }

    /// A request is in flight until the guard is dropped.
    pub fn request(&self) -> GaugeGuard {
        GaugeGuard::new(&self.in_flight_requests)
    }

    /// Counts an accepted connection that had to wait for a `listen.max_connections` slot.
    pub fn connection_limit_wait(&self) {
        self.connection_limit_waits.inc();
    }
}

/// Holds one unit of a gauge; gives it back when dropped.
#[derive(Debug)]
pub struct GaugeGuard(IntGauge);

impl GaugeGuard {
    fn new(gauge: &IntGauge) -> GaugeGuard {
        gauge.inc();
        GaugeGuard(gauge.clone())
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
