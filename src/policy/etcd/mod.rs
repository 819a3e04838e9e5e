//! Instance policies shared through etcd (`[policies.etcd]`, issue 15): many gateway replicas,
//! one policy truth.
//!
//! Each instance's document is one key, `<prefix><instance id>` (and `<prefix>default`),
//! holding the body Key Protect returns for `GET /api/v2/instance/policies`, read by the same
//! parser as policy files. Key names follow the file-name rule (letters, digits, `-`, `_`,
//! `.`); instance ids are made canonical as the file source does, and of two keys naming one
//! instance the canonically spelled one wins.
//!
//! - **Start-up**: the prefix is read in one range request; the snapshot is built from it
//!   (the inline `[policies]` documents, overlaid by etcd's) and swapped in through the
//!   [`PolicySource`], like a file reload. If etcd cannot be reached,
//!   `on_unavailable` decides: `refuse` keeps `/readyz` at 503 until the first load, `cache`
//!   starts from `cache_file` (the last snapshot this gateway loaded).
//! - **Watch**: from the loaded revision + 1. Each watch response is applied atomically: its
//!   documents parsed, the snapshot rebuilt and swapped (`kmsgate_policy_reloads_total`). A
//!   document the parser refuses keeps that instance's previous policies, is logged, and is
//!   counted (`kmsgate_policy_reloads_total{result="error"}` and
//!   `kmsgate_policy_etcd_invalid_documents_total`).
//! - **Liveness**: every `heartbeat` the watch asks etcd for a progress report; a report that
//!   does not come within `request_timeout`, or a broken stream, ends the session. The gateway
//!   keeps enforcing the last snapshot (and stays ready), logs how stale it is, and reconnects
//!   with a doubling backoff up to `backoff_max`, resuming the watch from its revision — or
//!   reloading the whole prefix when that revision was compacted away.
//! - **Writes** ([`PolicyBackend::write`](super::backend::PolicyBackend::write), `write.rs`):
//!   read the key, update the document, and write it in a transaction conditioned on the key's
//!   mod revision (or its absence); on a conflict, read again and retry. The client is answered
//!   once etcd has committed and this replica's watch has applied the change (read-your-writes
//!   on the replica that took the PUT). etcd unreachable → `WriteError::Unavailable`, 503
//!   `POLICY_STORE_UNAVAILABLE_ERR`. The client options, deadlines and error: `client.rs`.
//!
//! `kmsgate_policy_revision` is the etcd revision the snapshot reflects (advanced by every watch
//! response, progress reports included, so idle replicas agree); it is also served by the admin
//! listener ([`EtcdSource::status_json`]).

pub mod cache;
mod client;
pub mod config;
pub mod import;
pub mod metrics;
mod write;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, EventType, GetOptions, WatchOptions, WatchResponse};
use tokio::sync::watch;
use tokio::time::{Instant, timeout};

pub use self::client::EtcdError;
use self::client::{bounded, connect_options};
pub use self::config::{EtcdConfig, OnUnavailable};
use self::metrics::EtcdMetrics;
use super::model::PolicyRecords;
use super::parse::parse_records;
use super::reload::PolicySource;
use super::source::is_file_safe;
use super::store::PolicyStore;
use crate::metrics::Metrics;
use crate::readiness::ReadyGate;
use crate::settings::ConfigError;

/// The key suffix of the default document.
pub const DEFAULT_KEY: &str = "default";

/// The first reconnection delay (it doubles up to `backoff_max`).
const BACKOFF_START: Duration = Duration::from_millis(100);

/// The documents loaded from etcd, by key suffix, and the revision they reflect.
#[derive(Debug, Default)]
struct Docs {
    by_key: BTreeMap<String, PolicyRecords>,
    revision: i64,
    /// Loaded from etcd at least once (not only from the cache file).
    from_etcd: bool,
    /// Loaded from the cache file at start-up.
    from_cache: bool,
}

struct Inner {
    config: EtcdConfig,
    options: ConnectOptions,
    client: tokio::sync::Mutex<Option<Client>>,
    docs: Mutex<Docs>,
    store: PolicyStore,
    revision: watch::Sender<i64>,
    metrics: EtcdMetrics,
}

/// The etcd policy source. Cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct EtcdSource {
    inner: Arc<Inner>,
}

impl fmt::Debug for EtcdSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdSource")
            .field("endpoints", &self.inner.config.endpoints)
            .field("prefix", &self.inner.config.prefix)
            .field("revision", &self.revision())
            .finish_non_exhaustive()
    }
}

/// What ended a watch session.
enum Ended {
    /// The gateway is shutting down.
    Stop,
    /// etcd was lost (or the watch broken); reconnect after a backoff.
    Lost(EtcdError),
}

impl From<EtcdError> for Ended {
    fn from(e: EtcdError) -> Self {
        Ended::Lost(e)
    }
}

impl EtcdSource {
    /// The source for `config`, feeding `store`; nothing is contacted yet.
    pub fn new(
        config: &EtcdConfig,
        store: PolicyStore,
        metrics: &Metrics,
    ) -> Result<EtcdSource, ConfigError> {
        config.validate()?;
        let options = connect_options(config)?;
        let (revision, _) = watch::channel(0);
        Ok(EtcdSource {
            inner: Arc::new(Inner {
                config: config.clone(),
                options,
                client: tokio::sync::Mutex::new(None),
                docs: Mutex::new(Docs::default()),
                store,
                revision,
                metrics: EtcdMetrics::register(metrics),
            }),
        })
    }

    /// Connects `policies` to this source and loads the prefix once. When etcd cannot be
    /// reached, `on_unavailable = "cache"` loads `cache_file` instead; otherwise (or without a
    /// readable cache) the gateway starts with the inline documents only and
    /// [`EtcdSource::run`] keeps it unready until the first load.
    pub async fn start(&self, policies: &Arc<PolicySource>) {
        policies.set_backend(Arc::new(self.clone()));
        let config = &self.inner.config;
        let limit = config.connect_timeout + config.request_timeout;
        let loaded = match timeout(limit, self.load(policies)).await {
            Ok(result) => result,
            Err(_) => Err(EtcdError::Timeout("initial load")),
        };
        match loaded {
            Ok(()) => {}
            Err(e) if config.on_unavailable == OnUnavailable::Cache => {
                tracing::warn!(error = %e, endpoints = ?config.endpoints, "etcd unreachable at start-up; starting from the policy cache");
                self.load_cache(policies).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, endpoints = ?config.endpoints, "etcd unreachable at start-up; not ready until the policies are loaded");
            }
        }
    }

    async fn load_cache(&self, policies: &Arc<PolicySource>) {
        let Some(path) = self.inner.config.cache_file.clone() else {
            return;
        };
        let read = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || cache::read(&path)).await
        };
        match read {
            Ok(Ok((revision, by_key))) => {
                {
                    let mut docs = self.docs();
                    docs.by_key = by_key;
                    docs.revision = revision;
                    docs.from_cache = true;
                }
                self.rebuild(policies).await;
                self.publish(revision);
                tracing::warn!(file = %path.display(), revision, "enforcing the cached policy snapshot until etcd is reachable");
            }
            Ok(Err(e)) => {
                tracing::error!(file = %path.display(), error = %e, "policy cache unreadable; not ready until etcd is reachable");
            }
            Err(e) => tracing::error!(error = %e, "policy cache read failed"),
        }
    }

    fn docs(&self) -> MutexGuard<'_, Docs> {
        self.inner.docs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The etcd revision the current snapshot reflects (0: nothing loaded yet).
    pub fn revision(&self) -> i64 {
        *self.inner.revision.borrow()
    }

    /// Whether the gateway may take traffic: the prefix was loaded from etcd, or the cache.
    fn has_snapshot(&self) -> bool {
        let docs = self.docs();
        docs.from_etcd || docs.from_cache
    }

    /// The admin listener's `GET /policy/revision` document: `{"source": "etcd", "revision":
    /// N, "connected": bool, "last_contact_seconds": x, "loaded": "etcd" | "cache" | "none"}`.
    pub fn status_json(&self) -> String {
        let (loaded, revision) = {
            let docs = self.docs();
            let loaded = if docs.from_etcd {
                "etcd"
            } else if docs.from_cache {
                "cache"
            } else {
                "none"
            };
            (loaded, docs.revision)
        };
        let value = serde_json::json!({
            "source": "etcd",
            "revision": revision.max(self.revision()),
            "connected": self.inner.metrics.connected.get() == 1,
            "last_contact_seconds": self.inner.metrics.last_contact.seconds_ago(),
            "loaded": loaded,
        });
        format!("{value}\n")
    }

    /// A connected client (created on first use; the channel reconnects by itself).
    async fn client(&self) -> Result<Client, EtcdError> {
        let mut slot = self.inner.client.lock().await;
        if let Some(client) = slot.as_ref() {
            return Ok(client.clone());
        }
        let config = &self.inner.config;
        let client = bounded(
            config.connect_timeout,
            "connect",
            Client::connect(&config.endpoints, Some(self.inner.options.clone())),
        )
        .await?;
        *slot = Some(client.clone());
        Ok(client)
    }

    /// The key suffix of an etcd key under the prefix, if it names an instance (or `default`).
    fn suffix(&self, key: &[u8]) -> Option<String> {
        let key = std::str::from_utf8(key).ok()?;
        let suffix = key.strip_prefix(self.inner.config.prefix.as_str())?;
        if suffix == DEFAULT_KEY || is_file_safe(suffix) {
            Some(suffix.to_owned())
        } else {
            tracing::warn!(
                key,
                "etcd key under the policy prefix is not an instance id; skipped"
            );
            None
        }
    }

    /// Reads the whole prefix and swaps in the snapshot it describes.
    async fn load(&self, policies: &Arc<PolicySource>) -> Result<(), EtcdError> {
        let mut client = self.client().await?;
        let config = &self.inner.config;
        let response = bounded(
            config.request_timeout,
            "load",
            client.get(
                config.prefix.as_str(),
                Some(GetOptions::new().with_prefix()),
            ),
        )
        .await?;
        self.inner.metrics.last_contact.touch();
        let revision = response.header().map_or(0, |h| h.revision());
        let mut invalid = 0;
        {
            let mut docs = self.docs();
            let mut by_key = BTreeMap::new();
            for kv in response.kvs() {
                let Some(suffix) = self.suffix(kv.key()) else {
                    continue;
                };
                match parse_records(kv.value()) {
                    Ok(records) => {
                        by_key.insert(suffix, records);
                    }
                    Err(rejection) => {
                        invalid += 1;
                        self.invalid(policies, &suffix, &rejection.wire_message());
                        if let Some(previous) = docs.by_key.remove(&suffix) {
                            by_key.insert(suffix, previous);
                        }
                    }
                }
            }
            docs.by_key = by_key;
            docs.revision = revision;
            docs.from_etcd = true;
        }
        self.rebuild(policies).await;
        self.publish(revision);
        tracing::info!(revision, invalid, "instance policies loaded from etcd");
        Ok(())
    }

    /// Logs and counts a document the parser refused (the instance keeps its policies).
    fn invalid(&self, policies: &PolicySource, suffix: &str, reason: &str) {
        self.inner.metrics.invalid_documents.inc();
        policies.count_failed_reload();
        tracing::error!(
            key = %self.inner.config.key(suffix),
            reason = %reason,
            "instance policy document in etcd is invalid; keeping the previous policies"
        );
    }

    /// Rebuilds the snapshot through `policies` (on the blocking pool: it compiles every
    /// instance) and rewrites the cache file.
    async fn rebuild(&self, policies: &Arc<PolicySource>) {
        let policies = policies.clone();
        let this = self.clone();
        let done = tokio::task::spawn_blocking(move || {
            let _ = policies.try_reload();
            this.write_cache();
        })
        .await;
        if let Err(e) = done {
            tracing::error!(error = %e, "policy rebuild task failed");
        }
    }

    fn write_cache(&self) {
        let Some(path) = &self.inner.config.cache_file else {
            return;
        };
        let docs = self.docs();
        if !docs.from_etcd {
            return;
        }
        if let Err(e) = cache::write(path, docs.revision, &docs.by_key) {
            tracing::warn!(file = %path.display(), error = %e, "policy cache not written");
        }
    }

    /// The snapshot now reflects `revision`.
    fn publish(&self, revision: i64) {
        self.inner.revision.send_if_modified(|current| {
            let newer = revision > *current;
            if newer {
                *current = revision;
            }
            newer
        });
        self.inner.metrics.revision.set(self.revision());
    }

    /// Applies one watch response: every event, then one rebuild.
    async fn apply(&self, policies: &Arc<PolicySource>, response: &WatchResponse) {
        let mut changed = false;
        let mut revision = response.header().map_or(0, |h| h.revision());
        {
            let mut docs = self.docs();
            for event in response.events() {
                let Some(kv) = event.kv() else { continue };
                revision = revision.max(kv.mod_revision());
                let Some(suffix) = self.suffix(kv.key()) else {
                    continue;
                };
                match event.event_type() {
                    EventType::Put => match parse_records(kv.value()) {
                        Ok(records) => {
                            docs.by_key.insert(suffix, records);
                            changed = true;
                        }
                        Err(rejection) => {
                            self.invalid(policies, &suffix, &rejection.wire_message())
                        }
                    },
                    EventType::Delete => changed |= docs.by_key.remove(&suffix).is_some(),
                }
            }
            docs.revision = docs.revision.max(revision);
        }
        if changed {
            self.rebuild(policies).await;
        }
        self.publish(revision);
    }

    /// Keeps the snapshot in step with etcd until `stop`: watches the prefix, reconnects with
    /// backoff, reloads after a compaction. Opens `gate` once a snapshot is loaded (at once if
    /// [`start`](EtcdSource::start) loaded one).
    pub async fn run(
        self,
        policies: Arc<PolicySource>,
        mut gate: ReadyGate,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut need_load = !self.docs().from_etcd;
        if self.has_snapshot() {
            gate.open();
        }
        let mut backoff = BACKOFF_START;
        loop {
            if *stop.borrow() {
                return;
            }
            let started = Instant::now();
            let ended = self
                .session(&policies, &mut gate, &mut need_load, &mut stop)
                .await;
            self.inner.metrics.connected.set(0);
            let e = match ended {
                Ended::Stop => return,
                Ended::Lost(e) => e,
            };
            if started.elapsed() > self.inner.config.backoff_max * 2 {
                backoff = BACKOFF_START;
            }
            self.inner.metrics.restarts_lost.inc();
            tracing::warn!(
                error = %e,
                revision = self.revision(),
                last_contact_seconds = self.inner.metrics.last_contact.seconds_ago(),
                retry_in = ?backoff,
                "etcd policy watch lost; enforcing the last snapshot"
            );
            tokio::select! {
                _ = stop.changed() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(self.inner.config.backoff_max);
        }
    }

    /// One connection's life: load if needed, then watch until lost or stopped.
    async fn session(
        &self,
        policies: &Arc<PolicySource>,
        gate: &mut ReadyGate,
        need_load: &mut bool,
        stop: &mut watch::Receiver<bool>,
    ) -> Ended {
        if *need_load {
            if let Err(e) = self.load(policies).await {
                return Ended::Lost(e);
            }
            *need_load = false;
            gate.open();
        }
        match self.watch(policies, need_load, stop).await {
            Ok(()) => Ended::Stop,
            Err(ended) => ended,
        }
    }

    async fn watch(
        &self,
        policies: &Arc<PolicySource>,
        need_load: &mut bool,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), Ended> {
        let config = &self.inner.config;
        let mut client = self.client().await?;
        let from = self.docs().revision + 1;
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(from)
            .with_progress_notify();
        let stream = bounded(
            config.request_timeout,
            "watch",
            client.watch(config.prefix.as_str(), Some(options)),
        )
        .await?;
        let (mut requests, mut responses) = stream.split();
        let mut heartbeat = tokio::time::interval(config.heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut asked: Option<Instant> = None;
        let mut announced = false;
        loop {
            tokio::select! {
                _ = stop.changed() => return Err(Ended::Stop),
                _ = heartbeat.tick() => {
                    match asked {
                        Some(at) if at.elapsed() > config.request_timeout => {
                            return Err(Ended::Lost(EtcdError::Timeout("watch progress")));
                        }
                        Some(_) => {}
                        None => {
                            requests.request_progress().await.map_err(EtcdError::from)?;
                            asked = Some(Instant::now());
                        }
                    }
                }
                message = responses.message() => {
                    let response = match message {
                        Ok(Some(response)) => response,
                        Ok(None) => return Err(EtcdError::Watch("closed by etcd".into()).into()),
                        Err(e) => return Err(EtcdError::from(e).into()),
                    };
                    self.inner.metrics.last_contact.touch();
                    asked = None;
                    if response.compact_revision() > 0 {
                        self.inner.metrics.restarts_compacted.inc();
                        *need_load = true;
                        tracing::warn!(from, compacted = response.compact_revision(), "etcd compacted the watched revision; reloading the prefix");
                        return Err(EtcdError::Watch("revision compacted".into()).into());
                    }
                    if response.canceled() {
                        return Err(EtcdError::Watch(format!("cancelled: {}", response.cancel_reason())).into());
                    }
                    if !announced {
                        announced = true;
                        self.inner.metrics.connected.set(1);
                        tracing::info!(from, "etcd policy watch established");
                    }
                    self.apply(policies, &response).await;
                }
            }
        }
    }
}
