//! Configuration: a TOML file plus `KMSGATE_` environment overrides, typed and validated.
//!
//! Loading layers, lowest first: built-in defaults → the TOML file → environment variables
//! `KMSGATE_<SECTION>__<KEY>` (`__` separates levels: `KMSGATE_UPSTREAM__URL`). Only variables
//! that name a known section and contain `__` are read, so unrelated `KMSGATE_*` variables
//! (Kubernetes service links such as `KMSGATE_SERVICE_HOST`) are ignored. An unknown key in the
//! file is an error that names the key and its line (and the nearest known key, for a typo); a
//! bad value from the environment names its variable. Durations are written `"2s"`, `"500ms"`.
//!
//! `config/kmsgate.example.toml` documents every key with its default.

pub mod dev_kms;
pub mod network;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

pub use dev_kms::DevKmsConfig;
pub use network::{ClientIpConfig, ForwardedHeader, ListenerName, NetworkConfig};

pub use crate::settings::{ConfigError, Secret, duration};

pub use crate::policy::store::PoliciesConfig;

/// The top-level sections; an environment variable must name one of these to be read.
const SECTIONS: &[&str] = &[
    "listen",
    "upstream",
    "log",
    "shutdown",
    "body",
    "routes",
    "auth",
    "client_ip",
    "network",
    "policies",
];

/// The whole gateway configuration.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Listener addresses and limits.
    pub listen: ListenConfig,
    /// The KMS behind the gateway.
    pub upstream: UpstreamConfig,
    /// Logging.
    pub log: LogConfig,
    /// Graceful shutdown.
    pub shutdown: ShutdownConfig,
    /// Request-body inspection.
    pub body: BodyConfig,
    /// What happens to requests that are no Key Protect operation.
    pub routes: RoutesConfig,
    /// Bearer-token validation.
    pub auth: crate::auth::AuthConfig,
    /// How the client address is derived (trusted proxies, PROXY protocol).
    pub client_ip: ClientIpConfig,
    /// What counts as the private network (allowedNetwork).
    pub network: NetworkConfig,
    /// Instance policies, per instance, in Key Protect's JSON shape.
    pub policies: PoliciesConfig,
}

/// `[listen]`: where the gateway accepts connections.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenConfig {
    /// The public listener.
    pub public: SocketAddr,
    /// The private listener: requests arriving here count as private (allowedNetwork).
    pub private: Option<SocketAddr>,
    /// The admin listener: `/metrics`, `/healthz`, `/readyz`.
    pub admin: SocketAddr,
    /// At most this many client connections at once (public + private); further connections
    /// wait in the accept queue.
    pub max_connections: usize,
    /// A client must send its request headers within this time.
    #[serde(with = "duration")]
    pub header_read_timeout: Duration,
    /// TLS for the public and private listeners; absent means plain HTTP (h1 and h2c).
    pub tls: Option<TlsConfig>,
    /// Serve `POST /explain` on the admin listener: `kmsgate explain` for a request given as
    /// JSON (off by default).
    pub admin_explain: bool,
}

impl Default for ListenConfig {
    fn default() -> Self {
        ListenConfig {
            public: SocketAddr::from(([127, 0, 0, 1], 8080)),
            private: None,
            admin: SocketAddr::from(([127, 0, 0, 1], 9090)),
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(10),
            tls: None,
            admin_explain: false,
        }
    }
}

/// `[listen.tls]`: server certificate for the client listeners.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
}

/// `[upstream]`: the KMS the gateway forwards to.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// `embedded` (the in-process dev KMS) or an `http://` / `https://` base URL.
    pub url: String,
    /// Time allowed to open a connection.
    #[serde(with = "duration")]
    pub connect_timeout: Duration,
    /// Time allowed for the upstream to answer with response headers.
    #[serde(with = "duration")]
    pub request_timeout: Duration,
    /// Idle pooled connections are closed after this time.
    #[serde(with = "duration")]
    pub pool_idle_timeout: Duration,
    /// At most this many idle connections are kept.
    pub pool_max_idle: usize,
    /// At most this many requests are at the upstream at once, so at most about this many
    /// upstream connections are in use; further requests wait for one (within
    /// `request_timeout`).
    pub max_connections: usize,
    /// PEM CA bundle for an `https://` upstream; the system roots when absent.
    pub ca_file: Option<PathBuf>,
    /// `[upstream.dev_kms]`: the embedded dev KMS's waiting rules (with `url = "embedded"`).
    pub dev_kms: DevKmsConfig,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            url: "embedded".to_owned(),
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(30),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle: 256,
            max_connections: 64,
            ca_file: None,
            dev_kms: DevKmsConfig::default(),
        }
    }
}

impl UpstreamConfig {
    /// True when the embedded dev KMS serves the requests.
    pub fn is_embedded(&self) -> bool {
        self.url == "embedded"
    }
}

/// Log output format.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A tracing filter: a level (`trace`, `debug`, `info`, `warn`, `error`, `off`) and/or
    /// `target=level` directives, comma-separated (`info,kmsgate::auth=debug`). `RUST_LOG`
    /// overrides it. Anything else is a config error (a bare word would otherwise silence
    /// every log line but that target's).
    pub level: String,
    /// Write one access-log line per request (target `kmsgate::access`).
    pub access_log: bool,
    /// How often buffered access-log lines are written out (and at 64 KiB pending, and on
    /// shutdown); `0s` writes every line at once.
    #[serde(with = "duration")]
    pub access_log_flush: Duration,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".to_owned(),
            access_log: true,
            access_log_flush: Duration::from_secs(1),
        }
    }
}

/// `[shutdown]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// On SIGTERM/SIGINT, `/readyz` turns 503 at once while the listeners keep accepting and
    /// serving for this long, so load balancers (Kubernetes endpoints) stop sending traffic
    /// before connections are refused. A second SIGTERM/SIGINT ends it early; `0s` stops
    /// accepting at once.
    #[serde(with = "duration")]
    pub grace_period: Duration,
    /// Then the listeners stop accepting, and in-flight requests get this long to finish.
    #[serde(with = "duration")]
    pub drain_timeout: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig {
            grace_period: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// `[body]`: request bodies the gateway inspects.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BodyConfig {
    /// Largest body the gateway buffers for inspection, in bytes; larger → 413.
    pub limit: usize,
    /// The whole inspected body must arrive within this time (from when the request reaches the
    /// body layer); a body that trickles in more slowly, or stops, → 408 `BODY_TIMEOUT_ERR`.
    #[serde(with = "duration")]
    pub read_timeout: Duration,
}

impl BodyConfig {
    /// The default `body.read_timeout`.
    pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(10);
}

impl Default for BodyConfig {
    fn default() -> Self {
        BodyConfig {
            limit: 1024 * 1024,
            read_timeout: BodyConfig::DEFAULT_READ_TIMEOUT,
        }
    }
}

/// `[routes]`: requests whose route the gateway does not recognise.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RoutesConfig {
    /// `forward` (the default) or `refuse` (404 `UNKNOWN_ROUTE_ERR`), for a KMS that serves
    /// nothing but the Key Protect API.
    pub unknown: UnknownRoute,
}

/// `routes.unknown`.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum UnknownRoute {
    /// Forward it unchecked, counted as route `other`.
    #[default]
    Forward,
    /// Refuse it with 404 `UNKNOWN_ROUTE_ERR`.
    Refuse,
}

impl Config {
    /// Loads the configuration from `path` (if given) and the environment, and validates it.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let source = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError::io(path, e))?;
                Some((path.to_owned(), text))
            }
            None => None,
        };
        Config::from_sources(
            source.as_ref().map(|(p, t)| (p.as_path(), t.as_str())),
            &[],
            true,
        )
    }

    /// Builds a configuration from TOML texts merged in order over the defaults (later texts
    /// win), without reading the environment. For tests and embedding.
    pub fn from_toml(texts: &[&str]) -> Result<Config, ConfigError> {
        Config::from_sources(None, texts, false)
    }

    fn from_sources(
        file: Option<(&Path, &str)>,
        texts: &[&str],
        env: bool,
    ) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some((_, text)) = file {
            figment = figment.merge(Toml::string(text));
        }
        for text in texts {
            figment = figment.merge(Toml::string(text));
        }
        if env {
            figment = figment.merge(Env::prefixed("KMSGATE_").split("__").filter(|key| {
                key.as_str().split_once('.').is_some_and(|(section, _)| {
                    SECTIONS.iter().any(|s| s.eq_ignore_ascii_case(section))
                })
            }));
        }
        if env {
            // RUST_LOG overrides log.level (see telemetry): refuse a bad one here, not silently.
            if let Some(filter) = std::env::var_os("RUST_LOG") {
                let filter = filter.to_string_lossy();
                if !filter.trim().is_empty() {
                    check_log_filter(&filter).map_err(|why| ConfigError::env("RUST_LOG", why))?;
                }
            }
        }
        let source = file.map(|(p, t)| (p.to_owned(), t.to_owned()));
        let config: Config = figment
            .extract()
            .map_err(|e| ConfigError::figment(e, source.as_ref()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot: values that parse but make no sense. Reads no file: what the
    /// files hold is checked by `Gateway::prepare` (which `check-config` runs too).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let url = &self.upstream.url;
        let http = url.starts_with("http://") || url.starts_with("https://");
        if !self.upstream.is_embedded() && !http {
            return Err(ConfigError::invalid(
                "upstream.url",
                format!("{url:?} is neither \"embedded\" nor an http:// or https:// URL"),
            ));
        }
        if !self.upstream.is_embedded() && url.parse::<http::Uri>().is_err() {
            return Err(ConfigError::invalid(
                "upstream.url",
                format!("{url:?} is not a valid URL"),
            ));
        }
        check_log_filter(&self.log.level).map_err(|why| ConfigError::invalid("log.level", why))?;
        if self.listen.max_connections == 0 {
            return Err(ConfigError::invalid(
                "listen.max_connections",
                "must be at least 1",
            ));
        }
        if self.upstream.max_connections == 0 {
            return Err(ConfigError::invalid(
                "upstream.max_connections",
                "must be at least 1",
            ));
        }
        if self.body.limit == 0 {
            return Err(ConfigError::invalid(
                "body.limit",
                "must be at least 1 byte",
            ));
        }
        if self.body.read_timeout.is_zero() {
            return Err(ConfigError::invalid(
                "body.read_timeout",
                "must be longer than zero",
            ));
        }
        self.auth.validate()?;
        if !self.client_ip.proxy_protocol.is_empty() && self.client_ip.trusted_proxies.is_empty() {
            return Err(ConfigError::invalid(
                "client_ip.proxy_protocol",
                "needs client_ip.trusted_proxies: PROXY headers are accepted only from trusted proxies",
            ));
        }
        if self
            .client_ip
            .proxy_protocol
            .contains(&ListenerName::Private)
            && self.listen.private.is_none()
        {
            return Err(ConfigError::invalid(
                "client_ip.proxy_protocol",
                "names the private listener, but listen.private is not set",
            ));
        }
        self.policies.validate()?;
        // The inline documents must parse (they are no file).
        crate::policy::Snapshot::inline_records(&self.policies)?;
        // Files the configuration names (policy documents, keys, certificates) are read and
        // checked once, by `Gateway::prepare`.
        Ok(())
    }

    /// The effective configuration as TOML, with secrets redacted (for `check-config`).
    pub fn to_redacted_toml(&self) -> String {
        toml_string(self)
    }
}

/// Checks a tracing filter (`log.level`, `RUST_LOG`): every comma-separated directive is a
/// level or `target=level` (span filters `target[span{field}]=level` are left to tracing's own
/// parser), and tracing's parser accepts the whole.
pub fn check_log_filter(filter: &str) -> Result<(), String> {
    const LEVELS: &str = "trace, debug, info, warn, error or off";
    let is_level = |s: &str| {
        ["trace", "debug", "info", "warn", "error", "off"]
            .iter()
            .any(|level| level.eq_ignore_ascii_case(s.trim()))
    };
    if filter.trim().is_empty() {
        return Err(format!("empty: write a level ({LEVELS})"));
    }
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        if directive.contains('[') {
            continue;
        }
        match directive.rsplit_once('=') {
            Some((target, level)) if target.trim().is_empty() || !is_level(level) => {
                return Err(format!(
                    "`{directive}`: a directive is `target=level`, with a level of {LEVELS}"
                ));
            }
            Some(_) => {}
            None if is_level(directive) => {}
            None => {
                return Err(format!(
                    "`{directive}` is not a level: use {LEVELS}, or `target=level` (e.g. `kmsgate=debug`)"
                ));
            }
        }
    }
    tracing_subscriber::EnvFilter::try_new(filter)
        .map(drop)
        .map_err(|e| format!("{filter:?}: {e}"))
}

fn toml_string(config: &Config) -> String {
    toml::to_string_pretty(config)
        .unwrap_or_else(|e| format!("# cannot print the configuration: {e}\n"))
}

#[cfg(test)]
mod tests;
