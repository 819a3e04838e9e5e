//! Hot reload: whatever can change at run time implements [`Reloadable`]; [`run`] reloads
//! every item on SIGHUP and, every poll interval, each item whose sources changed.
//!
//! [`PolicySource`] is the instance-policy item: it rebuilds the whole snapshot from
//! `[policies]` and `policies.dir` and swaps it in atomically. A failed rebuild keeps the
//! previous snapshot, logs the file and the reason, and counts
//! `kmsgate_policy_reloads_total{result="error"}`. It is also where the policy API applies a
//! PUT (persisting it first), under the same lock, so a reload and an API write never
//! interleave.

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, Opts};
use tokio::sync::watch;

use super::backend::PolicyBackend;
use super::config::{PoliciesConfig, PolicyApiMode};
use super::model::Policy;
use super::source::{self, SourceError};
use super::store::PolicyStore;
use crate::metrics::{Metrics, registered};

/// Something the gateway can reload without a restart.
pub trait Reloadable: Send + Sync {
    /// A name for logs.
    fn name(&self) -> &'static str;
    /// Whether its sources changed since the last (attempted) load; cheap, called every poll.
    fn changed(&self) -> bool;
    /// Reloads; on failure keeps the previous state, logs and counts. True on success.
    fn reload(&self) -> bool;
}

/// `kmsgate_policy_reloads_total{result}`, `kmsgate_policy_instances`,
/// `kmsgate_policy_last_reload_timestamp_seconds`.
#[derive(Clone, Debug)]
struct ReloadMetrics {
    ok: IntCounter,
    error: IntCounter,
    instances: IntGauge,
    last: Gauge,
}

impl ReloadMetrics {
    fn register(metrics: &Metrics) -> ReloadMetrics {
        let registry = metrics.registry();
        let reloads = registered(
            registry,
            IntCounterVec::new(
                Opts::new(
                    "kmsgate_policy_reloads_total",
                    "Instance-policy reloads, by result (ok, error)",
                ),
                &["result"],
            ),
        );
        let instances = registered(
            registry,
            IntGauge::new(
                "kmsgate_policy_instances",
                "Instances with policies of their own in the current snapshot",
            ),
        );
        let last = registered(
            registry,
            Gauge::new(
                "kmsgate_policy_last_reload_timestamp_seconds",
                "Unix time of the last successful policy load",
            ),
        );
        ReloadMetrics {
            ok: reloads.with_label_values(&["ok"]),
            error: reloads.with_label_values(&["error"]),
            instances,
            last,
        }
    }

    fn loaded(&self, instances: usize) {
        self.ok.inc();
        self.instances
            .set(i64::try_from(instances).unwrap_or(i64::MAX));
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        self.last.set(now.as_secs_f64());
    }
}

/// Why a policy update through the API was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// `policies.dir` is not set.
    #[error("policies.dir is not set")]
    NoDirectory,
    /// The instance id cannot name a file.
    #[error("the instance id cannot name a policy file")]
    BadInstance,
    /// Persisting failed.
    #[error("persisting the policy file failed: {0}")]
    Io(#[from] io::Error),
}

/// The instance-policy source: `[policies]` plus `policies.dir`, and the store it feeds.
#[derive(Debug)]
pub struct PolicySource {
    /// `[policies]` as last applied (a config reload may replace it).
    config: ArcSwap<PoliciesConfig>,
    store: PolicyStore,
    metrics: ReloadMetrics,
    /// The fingerprint of the directory at the last load attempt. The lock also serialises
    /// reloads with API writes.
    state: Mutex<Option<u64>>,
    /// A shared store (etcd) that replaces `policies.dir`, once connected.
    backend: OnceLock<Arc<dyn PolicyBackend>>,
}

impl PolicySource {
    /// The source for `config`, feeding `store` (already loaded by [`PolicyStore::from_config`]).
    pub fn new(config: PoliciesConfig, store: PolicyStore, metrics: &Metrics) -> PolicySource {
        let metrics = ReloadMetrics::register(metrics);
        let fingerprint = config
            .dir
            .as_deref()
            .and_then(|d| source::fingerprint(d).ok());
        metrics.loaded(store.snapshot().len());
        PolicySource {
            config: ArcSwap::from_pointee(config),
            store,
            metrics,
            state: Mutex::new(fingerprint),
            backend: OnceLock::new(),
        }
    }

    /// The store this source feeds.
    pub fn store(&self) -> &PolicyStore {
        &self.store
    }

    /// Builds snapshots from `backend` instead of `policies.dir` from now on, and lets the
    /// policy API write through it. Set once (a second call is ignored).
    pub fn set_backend(&self, backend: Arc<dyn PolicyBackend>) {
        let _ = self.backend.set(backend);
    }

    /// The shared store the policy API writes through, if there is one.
    pub fn backend(&self) -> Option<&Arc<dyn PolicyBackend>> {
        self.backend.get()
    }

    /// Counts a failed reload that a backend handled itself (an invalid document in etcd).
    pub fn count_failed_reload(&self) {
        self.metrics.error.inc();
    }

    /// The policy API mode.
    pub fn api(&self) -> PolicyApiMode {
        self.config.load().api
    }

    fn lock(&self) -> MutexGuard<'_, Option<u64>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fingerprint(config: &PoliciesConfig) -> Option<u64> {
        config
            .dir
            .as_deref()
            .and_then(|d| source::fingerprint(d).ok())
    }

    /// Rebuilds the whole snapshot and swaps it in; on error the previous one stays.
    pub fn try_reload(&self) -> Result<usize, SourceError> {
        self.reload_with(None)
    }

    /// Rebuilds the whole snapshot from a new `[policies]` section (a config reload); on error
    /// the previous section and snapshot both stay.
    pub fn try_reconfigure(&self, config: PoliciesConfig) -> Result<usize, SourceError> {
        self.reload_with(Some(config))
    }

    fn reload_with(&self, next: Option<PoliciesConfig>) -> Result<usize, SourceError> {
        let mut state = self.lock();
        let current = self.config.load_full();
        let config = next.as_ref().unwrap_or(&current);
        let fingerprint = PolicySource::fingerprint(config);
        if next.is_none() {
            *state = fingerprint;
        }
        let built = match self.backend.get() {
            Some(backend) => backend.build(config),
            None => source::load(config),
        };
        match built {
            Ok(snapshot) => {
                let instances = snapshot.len();
                if let Some(next) = next {
                    self.config.store(Arc::new(next));
                    *state = fingerprint;
                }
                self.store.replace(snapshot);
                self.metrics.loaded(instances);
                tracing::info!(instances, "instance policies reloaded");
                Ok(instances)
            }
            Err(e) => {
                self.metrics.error.inc();
                let (file, reason) = match &e {
                    SourceError::Invalid { path, reason } => (Some(path.as_path()), reason.clone()),
                    SourceError::Io { path, error } => (Some(path.as_path()), error.to_string()),
                    SourceError::Config(c) => (None, c.to_string()),
                };
                tracing::error!(
                    file = file.map(Path::display).map(tracing::field::display),
                    reason = %reason,
                    "instance policy reload failed; keeping the previous policies"
                );
                Err(e)
            }
        }
    }

    /// Applies a successful `PUT /api/v2/instance/policies` for `instance` by `subject`:
    /// the instance's current policies (its own, else the default it was under) updated with
    /// `policies`, persisted to its file, then swapped in.
    ///
    /// When persisting fails: with `apply_unpersisted` (mirror mode, where the backend has
    /// already accepted it) the policy is still enforced in memory until the next reload;
    /// otherwise nothing changes. Either way the error is returned.
    pub fn apply(
        &self,
        instance: &str,
        policies: Vec<Policy>,
        subject: &str,
        apply_unpersisted: bool,
    ) -> Result<(), ApplyError> {
        let config = self.config.load_full();
        let dir = config.dir.as_deref().ok_or(ApplyError::NoDirectory)?;
        if !source::is_file_safe(instance) {
            return Err(ApplyError::BadInstance);
        }
        let mut state = self.lock();
        let snapshot = self.store.snapshot();
        let mut records = snapshot.get(Some(instance)).records();
        let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        records.update(policies, subject, &now);
        let persisted = source::persist(dir, instance, &records);
        if persisted.is_ok() {
            // Our own write is not a change to reload for.
            *state = PolicySource::fingerprint(&config);
        }
        if persisted.is_ok() || apply_unpersisted {
            let next = snapshot.with_instance(instance, records);
            self.metrics
                .instances
                .set(i64::try_from(next.len()).unwrap_or(i64::MAX));
            self.store.replace(next);
        }
        persisted.map(|_| ()).map_err(ApplyError::from)
    }
}

impl Reloadable for PolicySource {
    fn name(&self) -> &'static str {
        "policies"
    }

    fn changed(&self) -> bool {
        let config = self.config.load();
        config.dir.is_some() && PolicySource::fingerprint(&config) != *self.lock()
    }

    fn reload(&self) -> bool {
        self.try_reload().is_ok()
    }
}

/// Reloads `items` on SIGHUP, and every `interval` (zero: never) each item whose sources
/// changed, until `stop` turns true. Reloads run on the blocking pool (they read files).
pub async fn run(
    items: Vec<Arc<dyn Reloadable>>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut hangup = hangup();
    let mut tick = (!interval.is_zero()).then(|| {
        let mut t = tokio::time::interval(interval);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    loop {
        let all = tokio::select! {
            _ = stop.changed() => return,
            () = recv(&mut hangup) => {
                tracing::info!("SIGHUP received: reloading");
                true
            }
            () = tick_or_never(&mut tick) => false,
        };
        for item in &items {
            let item = item.clone();
            let _ = tokio::task::spawn_blocking(move || {
                if all || item.changed() {
                    item.reload();
                }
            })
            .await;
        }
        if *stop.borrow() {
            return;
        }
    }
}

async fn tick_or_never(tick: &mut Option<tokio::time::Interval>) {
    match tick {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

fn hangup() -> Hangup {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; reload by polling only");
                None
            }
        }
    }
    #[cfg(not(unix))]
    None
}

async fn recv(hangup: &mut Hangup) {
    #[cfg(unix)]
    if let Some(signal) = hangup
        && signal.recv().await.is_some()
    {
        return;
    }
    std::future::pending::<()>().await
}
