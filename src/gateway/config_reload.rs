//! Reloading the config file at run time (SIGHUP, or a change seen by polling).
//!
//! What can change while running is swapped in: `[client_ip]` (trusted proxies, header),
//! `[network]` (private hosts and ranges) and `[policies]` (rebuilt like a policy reload).
//! What needs a restart — `[listen]`, `[upstream]`, `[log]`, `[shutdown]`, `[body]`, `[auth]`,
//! `client_ip.proxy_protocol` (and `client_ip.trusted_proxies` while PROXY protocol is on, so
//! the two trust decisions never disagree), `policies.poll_interval` — is logged as such and
//! not applied at all; the running values stay, and the warning repeats until a restart. An
//! invalid file changes nothing and is counted as `kmsgate_config_reloads_total{result="error"}`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use prometheus::{IntCounter, IntCounterVec, Opts};
use serde::Serialize;

use crate::config::Config;
use crate::layer::client_ip::ClientIpRules;
use crate::layer::network::PrivateNetwork;
use crate::metrics::{Metrics, registered};
use crate::policy::reload::{PolicySource, Reloadable};

/// The parts of the running gateway a config reload swaps.
#[derive(Clone, Debug)]
pub struct LiveRules {
    /// `[client_ip]`, compiled.
    pub client_ip: Arc<ArcSwap<ClientIpRules>>,
    /// `[network]`, compiled.
    pub network: Arc<ArcSwap<PrivateNetwork>>,
}

impl LiveRules {
    /// Compiles the reloadable sections of `config`.
    pub fn new(config: &Config) -> LiveRules {
        LiveRules {
            client_ip: Arc::new(ArcSwap::from_pointee(ClientIpRules::new(&config.client_ip))),
            network: Arc::new(ArcSwap::from_pointee(PrivateNetwork::new(&config.network))),
        }
    }
}

/// The config file as a [`Reloadable`].
#[derive(Debug)]
pub struct ConfigReload {
    path: PathBuf,
    live: LiveRules,
    policies: Arc<PolicySource>,
    /// The running configuration and the file's fingerprint at the last load attempt.
    state: Mutex<(Config, Option<u64>)>,
    ok: IntCounter,
    error: IntCounter,
}

fn differs<T: Serialize>(a: &T, b: &T) -> bool {
    toml::Value::try_from(a).ok() != toml::Value::try_from(b).ok()
}

/// The keys whose change in `next` needs a restart.
pub fn restart_keys(running: &Config, next: &Config) -> Vec<&'static str> {
    let proxy_protocol = !running.client_ip.proxy_protocol.is_empty();
    [
        ("listen", differs(&running.listen, &next.listen)),
        ("upstream", differs(&running.upstream, &next.upstream)),
        ("log", differs(&running.log, &next.log)),
        ("shutdown", differs(&running.shutdown, &next.shutdown)),
        ("body", differs(&running.body, &next.body)),
        ("routes", differs(&running.routes, &next.routes)),
        ("auth", differs(&running.auth, &next.auth)),
        (
            "client_ip.proxy_protocol",
            differs(
                &running.client_ip.proxy_protocol,
                &next.client_ip.proxy_protocol,
            ),
        ),
        (
            "client_ip.trusted_proxies (with PROXY protocol)",
            proxy_protocol
                && differs(
                    &running.client_ip.trusted_proxies,
                    &next.client_ip.trusted_proxies,
                ),
        ),
        (
            "policies.poll_interval",
            running.policies.poll_interval != next.policies.poll_interval,
        ),
    ]
    .into_iter()
    .filter_map(|(key, changed)| changed.then_some(key))
    .collect()
}

/// `next` with every restart-only part as it is running.
fn runtime_part(running: &Config, next: Config) -> Config {
    let proxy_protocol = !running.client_ip.proxy_protocol.is_empty();
    let mut applied = Config {
        listen: running.listen.clone(),
        upstream: running.upstream.clone(),
        log: running.log.clone(),
        shutdown: running.shutdown.clone(),
        body: running.body.clone(),
        auth: running.auth.clone(),
        ..next
    };
    applied.client_ip.proxy_protocol = running.client_ip.proxy_protocol.clone();
    if proxy_protocol {
        applied.client_ip.trusted_proxies = running.client_ip.trusted_proxies.clone();
    }
    applied.policies.poll_interval = running.policies.poll_interval;
    applied
}

fn fingerprint(path: &std::path::Path) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let meta = std::fs::metadata(path).ok()?;
    let mut hasher = std::hash::DefaultHasher::new();
    meta.len().hash(&mut hasher);
    meta.modified().ok().hash(&mut hasher);
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        (meta.dev(), meta.ino(), meta.ctime(), meta.ctime_nsec()).hash(&mut hasher);
    }
    Some(hasher.finish())
}

impl ConfigReload {
    /// Reloads `path` (the file `running` was loaded from) into `live` and `policies`.
    pub fn new(
        path: PathBuf,
        running: Config,
        live: LiveRules,
        policies: Arc<PolicySource>,
        metrics: &Metrics,
    ) -> ConfigReload {
        let counters = registered(
            metrics.registry(),
            IntCounterVec::new(
                Opts::new(
                    "kmsgate_config_reloads_total",
                    "Config file reloads, by result (ok, error)",
                ),
                &["result"],
            ),
        );
        let fingerprint = fingerprint(&path);
        ConfigReload {
            path,
            live,
            policies,
            state: Mutex::new((running, fingerprint)),
            ok: counters.with_label_values(&["ok"]),
            error: counters.with_label_values(&["error"]),
        }
    }

    /// Loads the file and applies what can change at run time. False when the file is invalid
    /// (nothing changes).
    pub fn apply(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.1 = fingerprint(&self.path);
        let next = match Config::load(Some(&self.path)) {
            Ok(next) => next,
            Err(e) => {
                self.error.inc();
                tracing::error!(file = %self.path.display(), error = %e, "config reload failed; nothing changed");
                return false;
            }
        };
        let restart = restart_keys(&state.0, &next);
        if !restart.is_empty() {
            tracing::warn!(
                keys = ?restart,
                "config changes that need a restart were not applied"
            );
        }
        let next = runtime_part(&state.0, next);
        if differs(&state.0.policies, &next.policies)
            && self
                .policies
                .try_reconfigure(next.policies.clone())
                .is_err()
        {
            self.error.inc();
            return false;
        }
        self.live
            .client_ip
            .store(Arc::new(ClientIpRules::new(&next.client_ip)));
        self.live
            .network
            .store(Arc::new(PrivateNetwork::new(&next.network)));
        state.0 = next;
        self.ok.inc();
        tracing::info!(file = %self.path.display(), "config reloaded");
        true
    }
}

impl Reloadable for ConfigReload {
    fn name(&self) -> &'static str {
        "config"
    }

    fn changed(&self) -> bool {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        fingerprint(&self.path) != state.1
    }

    fn reload(&self) -> bool {
        self.apply()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_only_changes_are_named_and_kept_as_running() {
        let running = Config::from_toml(&[]).unwrap();
        let next = Config::from_toml(&[
            "[listen]\npublic = \"127.0.0.1:1\"\n[client_ip]\ntrusted_proxies = [\"10.0.0.0/8\"]\n",
        ])
        .unwrap();
        assert_eq!(restart_keys(&running, &next), ["listen"]);
        let applied = runtime_part(&running, next);
        assert_eq!(applied.listen.public, running.listen.public);
        assert_eq!(applied.client_ip.trusted_proxies.len(), 1);
        assert!(restart_keys(&running, &applied).is_empty());
    }
}
