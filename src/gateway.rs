//! The gateway: the layer stack, assembled in one place, and the listeners that serve it.

pub mod config_reload;
pub mod dev_kms;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceBuilder;

use crate::access_log::AccessLog;
use crate::admin::{self, Readiness};
use crate::config::{Config, ConfigError, ListenerName};
use crate::conn::ListenerKind;
use crate::devkms::DevKms;
use crate::ipset::IpSet;
use crate::layer::allowed_ip::{AllowedIpCheck, AllowedIpLayer};
use crate::layer::bearer::{Bearer, BearerLayer};
use crate::layer::body::{BodyShape, BodyShapeLayer};
use crate::layer::client_ip::{ClientIpCheck, ClientIpLayer};
use crate::layer::guard::{Guard, GuardLayer};
use crate::layer::instance::{InstanceCheck, InstanceLayer};
use crate::layer::key_access::{KeyAccess, KeyAccessLayer};
use crate::layer::network::{NetworkCheck, NetworkLayer};
use crate::layer::observe::{Observe, ObserveLayer};
use crate::layer::policy_api::{PolicyApi, PolicyApiLayer};
use crate::layer::route::{RouteCheck, RouteLayer};
use crate::layer::service_rules::{ServiceRulesGuard, ServiceRulesLayer};
use crate::metrics::Metrics;
use crate::policy::PolicyStore;
use crate::policy::etcd::EtcdSource;
use crate::policy::reload::{self, PolicySource, Reloadable};
use crate::server::proxy_protocol::ProxyProtocol;
use crate::server::{self, ServeOptions};
pub use crate::shutdown::{Signals, shutdown_signal};
use crate::upstream::Upstream;
pub use config_reload::{ConfigReload, LiveRules};

/// The full stack a client request goes through.
pub type Stack = Observe<
    Guard<EdgeChecks, Bearer<ServiceRulesGuard<BodyShape<PolicyApi<KeyAccess<Upstream>>>>>>,
>;

/// The guarding layers between observe and bearer — route, client_ip, instance, network,
/// allowed_ip — run as one step, in that order (see [`Check`](crate::layer::guard::Check)'s
/// tuples): one call and one future level instead of five.
pub type EdgeChecks = (
    RouteCheck,
    ClientIpCheck,
    InstanceCheck,
    NetworkCheck,
    AllowedIpCheck,
);

/// Builds the layer stack. The order is the contract (see `DESIGN.md`): cheap checks first, no
/// crypto or body buffering for a caller the network rules already refuse.
///
/// `bearer` is built by [`Gateway::bind`] (it loads keys and owns the JWKS refresher).
pub fn stack(
    config: &Config,
    metrics: &Metrics,
    access_log: Option<AccessLog>,
    policies: &Arc<PolicySource>,
    upstream: Upstream,
    bearer: &BearerLayer,
    live: &LiveRules,
) -> Stack {
    // observe: correlation id, route, metrics, access log (outermost: sees every outcome).
    let observe = ObserveLayer::new(metrics.clone(), access_log);
    // route: the canonical form (path, query, host as a Go KMS reads them; ambiguous requests
    // refused), then method + path + query → Route; unknown routes refused if configured.
    let route = RouteLayer::new(config.routes.unknown);
    // client_ip: the peer, or the trusted-proxy walk of X-Forwarded-For / Forwarded.
    // (trusted proxies and [network] come from `live`, which a config reload swaps.)
    let client_ip = ClientIpLayer::live(live.client_ip.clone());
    // instance: bluemix-instance → the instance's compiled policies (one snapshot load).
    let instance = InstanceLayer::new(policies.store().clone());
    // network: allowedNetwork private-only → 403 CONFIG_RULE_CONFLICT_ERR for public requests.
    let network = NetworkLayer::live(live.network.clone());
    // allowed_ip: allowedIP → 401 UNAUTHORIZED_ERR, or 403 FEATURE_RESTRICTED_ERR for IPv6.
    let allowed_ip = AllowedIpLayer::new();
    // bearer: Authorization → 400 BEARER_SUB_EXTRACTION_ERR / 401 UNAUTHORIZED_ERR with
    // WWW-Authenticate; records the caller's Identity in the request's context.
    let bearer = bearer.clone();
    // service_rules: on that identity, registration writes by users → 403 SERVICE_ONLY_ERR,
    // key delete/purge by services → 403 RESOURCE_OWNER_ERR (auth.service_rules).
    let service_rules = ServiceRulesLayer::new(config.auth.service_rules);
    // body: bounded buffer (body.limit, body.read_timeout) of the routes that need it, parse
    // once, Key Protect shape checks.
    let body = BodyShapeLayer::from_config(&config.body);
    // policy_api: policies.api — forward, mirror (apply + persist on 2xx) or own the policy API.
    let policy_api = PolicyApiLayer::new(policies.clone());
    // key_access: keyCreateImportAccess on create/import, enforce_token on rotate/restore.
    let key_access = KeyAccessLayer::new();
    // In request order, outermost first; the upstream (the remote KMS, or the embedded dev KMS)
    // is the innermost service.
    ServiceBuilder::new()
        .layer(observe)
        .layer(GuardLayer::with((
            route.check().clone(),
            client_ip.check().clone(),
            instance.check().clone(),
            network.check().clone(),
            *allowed_ip.check(),
        )))
        .layer(bearer)
        .layer(service_rules)
        .layer(body)
        .layer(policy_api)
        .layer(key_access)
        .service(upstream)
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is not usable.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// A listener could not be bound.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A gateway whose listeners are bound, ready to [`run`](Gateway::run).
pub struct Gateway {
    config: Config,
    metrics: Metrics,
    readiness: Readiness,
    policies: Arc<PolicySource>,
    etcd: Option<EtcdSource>,
    bearer: BearerLayer,
    live: LiveRules,
    config_path: Option<std::path::PathBuf>,
    access_log: Option<AccessLog>,
    explain: Option<admin::Explain>,
    stack: Stack,
    public: TcpListener,
    private: Option<TcpListener>,
    admin: TcpListener,
    options: ServeOptions,
}

/// The addresses a bound gateway listens on (useful with port 0).
#[derive(Clone, Copy, Debug)]
pub struct Addrs {
    /// The public listener.
    pub public: SocketAddr,
    /// The private listener, if configured.
    pub private: Option<SocketAddr>,
    /// The admin listener.
    pub admin: SocketAddr,
}

/// What the configuration names, read and checked once: the policy files, the token keys, the
/// listener certificate and the upstream's CA bundle. [`Gateway::bind_prepared`] starts from it;
/// `check-config` builds one and drops it, so it reports what a start would.
pub struct Prepared {
    config: Config,
    metrics: Metrics,
    upstream: Upstream,
    policies: Arc<PolicySource>,
    bearer: BearerLayer,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("upstream", &self.upstream)
            .finish_non_exhaustive()
    }
}

impl Prepared {
    /// The configuration it was prepared from.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The instance-policy source (its store holds the policies a start would load).
    pub fn policies(&self) -> &Arc<PolicySource> {
        &self.policies
    }

    /// The bearer layer (its [`auth`](BearerLayer::auth) decides on tokens).
    pub fn bearer(&self) -> &BearerLayer {
        &self.bearer
    }

    /// The metrics the stack counts into.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The stack a start would serve — the same [`stack`], from the same configuration,
    /// policies and keys — with `upstream` in place of the configured one and `policies` as
    /// the policy API's source; no listener, no task, no access log. `kmsgate explain` runs
    /// requests through it.
    pub fn stack_with(&self, upstream: Upstream, policies: &Arc<PolicySource>) -> Stack {
        let live = LiveRules::new(&self.config);
        stack(
            &self.config,
            &self.metrics,
            None,
            policies,
            upstream,
            &self.bearer,
            &live,
        )
    }
}

impl Gateway {
    /// Reads every file `config` names, once, and builds what the stack is made of; binds
    /// nothing and starts no task.
    pub fn prepare(config: Config) -> Result<Prepared, ConfigError> {
        let metrics = Metrics::new();
        let upstream = if config.upstream.is_embedded() {
            Upstream::embedded(
                DevKms::with_config(&config.upstream.dev_kms),
                metrics.clone(),
            )
        } else {
            Upstream::new(&config.upstream, metrics.clone())?
        };
        let store = PolicyStore::from_config(&config.policies)?;
        let policies = Arc::new(PolicySource::new(config.policies.clone(), store, &metrics));
        let bearer = BearerLayer::from_config(&config.auth, metrics.registry())?;
        let tls = config
            .listen
            .tls
            .as_ref()
            .map(server::tls::acceptor)
            .transpose()?;
        Ok(Prepared {
            config,
            metrics,
            upstream,
            policies,
            bearer,
            tls,
        })
    }

    /// Prepares (see [`Gateway::prepare`]), builds the stack and binds every listener.
    pub async fn bind(config: Config) -> Result<Gateway, StartError> {
        Gateway::bind_prepared(Gateway::prepare(config)?).await
    }

    /// Builds the stack from what [`Gateway::prepare`] read and binds every listener.
    pub async fn bind_prepared(prepared: Prepared) -> Result<Gateway, StartError> {
        let Prepared {
            config,
            metrics,
            upstream,
            policies,
            bearer,
            tls,
        } = prepared;
        let readiness = Readiness::new();
        // [policies.etcd]: load the shared policies (or the cache, or start unready).
        let etcd = match &config.policies.etcd {
            Some(etcd_config) => {
                let etcd = EtcdSource::new(etcd_config, policies.store().clone(), &metrics)?;
                etcd.start(&policies).await;
                Some(etcd)
            }
            None => None,
        };
        let live = LiveRules::new(&config);
        let access_log = AccessLog::from_config(&config.log, metrics.registry());
        let stack = stack(
            &config,
            &metrics,
            access_log.clone(),
            &policies,
            upstream,
            &bearer,
            &live,
        );
        let public = server::bind(config.listen.public, "listen.public").await?;
        let private = match config.listen.private {
            Some(addr) => Some(server::bind(addr, "listen.private").await?),
            None => None,
        };
        let admin = server::bind(config.listen.admin, "listen.admin").await?;
        let options = ServeOptions {
            connections: Arc::new(Semaphore::new(config.listen.max_connections)),
            header_read_timeout: config.listen.header_read_timeout,
            drain_timeout: config.shutdown.drain_timeout,
            tls,
        };
        Ok(Gateway {
            config,
            metrics,
            readiness,
            policies,
            etcd,
            bearer,
            live,
            config_path: None,
            access_log,
            explain: None,
            stack,
            public,
            private,
            admin,
            options,
        })
    }

    /// The bound addresses.
    pub fn addrs(&self) -> Addrs {
        Addrs {
            public: self
                .public
                .local_addr()
                .unwrap_or(self.config.listen.public),
            private: self.private.as_ref().and_then(|l| l.local_addr().ok()),
            admin: self.admin.local_addr().unwrap_or(self.config.listen.admin),
        }
    }

    /// The instance-policy store (a reload swaps its snapshot).
    pub fn policies(&self) -> &PolicyStore {
        self.policies.store()
    }

    /// The instance-policy source (reload it, or apply an update, by hand).
    pub fn policy_source(&self) -> &Arc<PolicySource> {
        &self.policies
    }

    /// Reloads the config file `path` (the one this gateway's config was loaded from) on
    /// SIGHUP and when it changes: see [`config_reload`].
    pub fn watch_config(&mut self, path: std::path::PathBuf) {
        self.config_path = Some(path);
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The shared policy store (`[policies.etcd]`), if configured.
    pub fn etcd(&self) -> Option<&EtcdSource> {
        self.etcd.as_ref()
    }

    /// Serves `POST /explain` on the admin listener with `explain` (`listen.admin_explain`;
    /// the binary hands the engine in).
    pub fn serve_explain(&mut self, explain: admin::Explain) {
        self.explain = Some(explain);
    }

    /// The metrics registry of this gateway.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Serves until `shutdown` completes, then drains (see [`Gateway::run_with`]; here the
    /// grace period always runs to its end).
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        self.run_with(shutdown, std::future::pending()).await;
    }

    /// Serves until `shutdown` completes, then drains in three steps:
    /// 1. `/readyz` turns 503 at once, and the listeners keep accepting and serving for
    ///    `shutdown.grace_period` (or until `skip_grace` completes, whichever is first), so
    ///    load balancers take the gateway out before it refuses connections;
    /// 2. the client listeners stop accepting, and in-flight requests finish (up to
    ///    `shutdown.drain_timeout`);
    /// 3. the admin listener, which answered throughout, closes last.
    ///
    /// The binary passes the first SIGTERM/SIGINT as `shutdown` and the second as `skip_grace`
    /// ([`Signals`](crate::shutdown::Signals)).
    pub async fn run_with(
        self,
        shutdown: impl Future<Output = ()>,
        skip_grace: impl Future<Output = ()>,
    ) {
        let addrs = self.addrs();
        let (stop_tx, stop_rx) = watch::channel(false);
        // The admin listener has its own flag: it stays up until the drain is over.
        let (admin_stop_tx, admin_stop_rx) = watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(server::serve_with_proxy_protocol(
            self.public,
            ListenerKind::Public,
            self.stack.clone(),
            self.options.clone(),
            proxy_protocol(&self.config, ListenerName::Public, &self.options),
            Some(self.metrics.listener(ListenerKind::Public)),
            stop_rx.clone(),
        ));
        if let Some(private) = self.private {
            tasks.spawn(server::serve_with_proxy_protocol(
                private,
                ListenerKind::Private,
                self.stack.clone(),
                self.options.clone(),
                proxy_protocol(&self.config, ListenerName::Private, &self.options),
                Some(self.metrics.listener(ListenerKind::Private)),
                stop_rx.clone(),
            ));
        }
        let stop_rx_reload = stop_rx.clone();
        // The JWKS URL is fetched before /readyz turns ready, then kept fresh.
        if let Some(jwks) = self.bearer.auth().and_then(|auth| auth.jwks()) {
            tasks.spawn(jwks.clone().run(self.readiness.gate(), stop_rx.clone()));
        }
        // The etcd watch keeps the policies in step (unready until a snapshot is loaded).
        let policy_status = self.etcd.clone().map(|etcd| {
            tasks.spawn(etcd.clone().run(
                self.policies.clone(),
                self.readiness.gate(),
                stop_rx.clone(),
            ));
            Arc::new(move || etcd.status_json()) as admin::PolicyStatus
        });
        let admin_task = tokio::spawn(admin::serve(
            self.admin,
            self.metrics.clone(),
            self.readiness.clone(),
            policy_status,
            self.explain.clone(),
            admin_stop_rx,
        ));
        // Hot reload: SIGHUP, and polling policies.dir and the config file. Listener addresses,
        // TLS and the upstream need a restart (a config reload logs and skips them).
        let mut reloadables: Vec<Arc<dyn Reloadable>> = vec![self.policies.clone()];
        if let Some(path) = self.config_path.clone() {
            reloadables.push(Arc::new(ConfigReload::new(
                path,
                self.config.clone(),
                self.live.clone(),
                self.policies.clone(),
                &self.metrics,
            )));
        }
        let reload_task = tokio::spawn(reload::run(
            reloadables,
            self.config.policies.poll_interval,
            stop_rx_reload,
        ));
        self.readiness.set_started();
        tracing::info!(
            public = %addrs.public,
            private = ?addrs.private,
            admin = %addrs.admin,
            upstream = %self.config.upstream.url,
            "kmsgate listening"
        );
        shutdown.await;
        self.readiness.set_draining();
        let grace = self.config.shutdown.grace_period;
        if !grace.is_zero() {
            tracing::info!(
                grace_period = ?grace,
                "shutting down: /readyz answers 503; still serving for the grace period (a second signal ends it)"
            );
            tokio::select! {
                _ = tokio::time::sleep(grace) => {}
                _ = skip_grace => tracing::info!("grace period cut short"),
            }
        }
        tracing::info!(
            drain_timeout = ?self.config.shutdown.drain_timeout,
            "shutting down: no new connections; draining in-flight requests"
        );
        let _ = stop_tx.send(true);
        while tasks.join_next().await.is_some() {}
        let _ = reload_task.await;
        let _ = admin_stop_tx.send(true);
        let _ = admin_task.await;
        if let Some(access_log) = &self.access_log {
            access_log.flush();
        }
        tracing::info!("drained; bye");
    }
}

/// PROXY protocol for `listener`, if `client_ip.proxy_protocol` names it.
fn proxy_protocol(
    config: &Config,
    listener: ListenerName,
    options: &ServeOptions,
) -> Option<ProxyProtocol> {
    let client_ip = &config.client_ip;
    client_ip.proxy_protocol.contains(&listener).then(|| {
        ProxyProtocol::new(
            Arc::new(IpSet::new(&client_ip.trusted_proxies)),
            options.header_read_timeout,
        )
    })
}
