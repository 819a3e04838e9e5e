//! The etcd source's metrics: the revision the snapshot reflects, how long ago the watch last
//! heard from etcd, whether it is connected, and the outcome of policy writes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts};

use crate::metrics::{Metrics, defined, register, registered};

/// When the watch last heard from etcd, as milliseconds since a fixed start; read at scrape
/// time, so the staleness gauge is exact however long the watch has been silent.
#[derive(Clone, Debug)]
pub struct LastContact {
    start: Instant,
    /// Milliseconds after `start` of the last contact, plus one (0: never).
    at: Arc<AtomicU64>,
}

impl LastContact {
    fn new() -> LastContact {
        LastContact {
            start: Instant::now(),
            at: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The watch (or a load) heard from etcd just now.
    pub fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        self.at.store(ms.saturating_add(1), Ordering::Release);
    }

    /// Seconds since the last contact; `None` if etcd was never heard from.
    pub fn seconds_ago(&self) -> Option<f64> {
        let at = self.at.load(Ordering::Acquire).checked_sub(1)?;
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        Some(now.saturating_sub(at) as f64 / 1000.0)
    }
}

/// `kmsgate_policy_etcd_last_contact_seconds`, computed at scrape time.
#[derive(Clone, Debug)]
struct StalenessCollector {
    last: LastContact,
    gauge: prometheus::Gauge,
}

impl Collector for StalenessCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        // Never heard from etcd: as stale as the process is old.
        let seconds = self
            .last
            .seconds_ago()
            .unwrap_or_else(|| self.last.start.elapsed().as_secs_f64());
        self.gauge.set(seconds);
        self.gauge.collect()
    }
}

/// Handles to the etcd source's metrics, resolved once.
#[derive(Clone, Debug)]
pub struct EtcdMetrics {
    /// `kmsgate_policy_revision`: the etcd revision the current snapshot reflects.
    pub revision: IntGauge,
    /// `kmsgate_policy_etcd_connected`: 1 while the watch is established.
    pub connected: IntGauge,
    /// Feeds `kmsgate_policy_etcd_last_contact_seconds`.
    pub last_contact: LastContact,
    /// `kmsgate_policy_etcd_invalid_documents_total`: documents refused by the parser (the
    /// instance keeps its previous policies).
    pub invalid_documents: IntCounter,
    /// `kmsgate_policy_etcd_watch_restarts_total{reason}`: reconnections and full reloads.
    pub restarts_lost: IntCounter,
    /// … after the watched revision was compacted away (the prefix is reloaded).
    pub restarts_compacted: IntCounter,
    /// `kmsgate_policy_etcd_writes_total{result}`: committed.
    pub writes_ok: IntCounter,
    /// … lost the race for the document and retried.
    pub writes_conflict: IntCounter,
    /// … etcd unreachable: the client got 503.
    pub writes_unavailable: IntCounter,
}

impl EtcdMetrics {
    /// Registers the families in `metrics` (a second registration keeps the first series).
    pub fn register(metrics: &Metrics) -> EtcdMetrics {
        let registry = metrics.registry();
        let gauge = |name: &str, help: &str| registered(registry, IntGauge::new(name, help));
        let counters = |name: &str, help: &str, label: &str| {
            registered(
                registry,
                IntCounterVec::new(Opts::new(name, help), &[label]),
            )
        };
        let revision = gauge(
            "kmsgate_policy_revision",
            "The etcd revision the current policy snapshot reflects",
        );
        let connected = gauge(
            "kmsgate_policy_etcd_connected",
            "1 while the policy watch on etcd is established, else 0",
        );
        let invalid = registered(
            registry,
            IntCounter::new(
                "kmsgate_policy_etcd_invalid_documents_total",
                "Policy documents in etcd refused by the parser (the instance kept its previous policies)",
            ),
        );
        let restarts = counters(
            "kmsgate_policy_etcd_watch_restarts_total",
            "Policy watch restarts, by reason (lost: etcd unreachable; compacted: reloaded the prefix)",
            "reason",
        );
        let writes = counters(
            "kmsgate_policy_etcd_writes_total",
            "Policy API writes to etcd, by result (ok, conflict: retried, unavailable: answered 503)",
            "result",
        );
        let last_contact = LastContact::new();
        register(
            registry,
            StalenessCollector {
                last: last_contact.clone(),
                gauge: defined(prometheus::Gauge::new(
                    "kmsgate_policy_etcd_last_contact_seconds",
                    "Seconds since the policy watch last heard from etcd",
                )),
            },
        );
        EtcdMetrics {
            revision,
            connected,
            last_contact,
            invalid_documents: invalid,
            restarts_lost: restarts.with_label_values(&["lost"]),
            restarts_compacted: restarts.with_label_values(&["compacted"]),
            writes_ok: writes.with_label_values(&["ok"]),
            writes_conflict: writes.with_label_values(&["conflict"]),
            writes_unavailable: writes.with_label_values(&["unavailable"]),
        }
    }
}

/// Unix time now, in seconds (for the status document).
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}
