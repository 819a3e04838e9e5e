//! The command line: `kmsgate [run] --config FILE`, `check-config FILE`, `dev-kms --listen ADDR`,
//! `token --config FILE --sub NAME`, `health [--addr ADDR] [--path /readyz]`,
//! `policies import-dir [--config FILE] [--etcd URL,…] DIR`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// kmsgate: a policy gateway for IBM Key Protect-compatible KMS APIs.
#[derive(Debug, Parser)]
#[command(
    name = "kmsgate",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to do (default: run).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options of `run`, accepted without the subcommand: `kmsgate --config FILE`.
    #[command(flatten)]
    pub run: RunArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (the default).
    Run(RunArgs),
    /// Validate a configuration file and print the effective configuration (secrets redacted).
    CheckConfig {
        /// The TOML configuration file.
        file: PathBuf,
    },
    /// Run the embedded dev KMS on its own, as a plain HTTP server (in-memory, for trying things).
    DevKms {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8200")]
        listen: SocketAddr,
    },
    /// Print a bearer token signed with the configuration's development key (an
    /// `[[auth.hmac_keys]]` entry with `dev = true`); refused when there is none.
    Token {
        /// The TOML configuration file that holds the development key.
        #[arg(long, short)]
        config: PathBuf,
        /// The token's subject (`sub`).
        #[arg(long)]
        sub: String,
        /// How long the token is valid, e.g. `1h`, `15m`.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// Mark the caller as a service (sets `auth.service_claim` to the first service value).
        #[arg(long)]
        service: bool,
    },
    /// Probe a running gateway's admin listener: GET /readyz (or --path); exit 0 on 200, 1
    /// otherwise. For Docker HEALTHCHECK and exec probes in images without curl.
    Health {
        /// The admin listener's address (`listen.admin`).
        #[arg(long, default_value = "127.0.0.1:9090")]
        addr: SocketAddr,
        /// `/readyz` (ready for traffic) or `/healthz` (the process is alive).
        #[arg(long, default_value = "/readyz")]
        path: String,
        /// Give up after this long (connect, send, and read the status line).
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Instance policies kept in etcd (`[policies.etcd]`).
    Policies {
        /// What to do with them.
        #[command(subcommand)]
        command: PoliciesCommand,
    },
}

/// `kmsgate policies …`.
#[derive(Debug, Subcommand)]
pub enum PoliciesCommand {
    /// Copy a `policies.dir` into etcd: `<instance id>.json` and `default.json` become keys under
    /// the prefix. Every file is parsed first (one invalid file: nothing is written); keys that
    /// exist already are kept unless --overwrite. Exit 0 when done, 2 when a file or the
    /// settings are invalid, 1 when etcd failed.
    ImportDir(ImportDirArgs),
}

/// Options of `policies import-dir`.
#[derive(Debug, Args)]
pub struct ImportDirArgs {
    /// The policies directory.
    pub dir: PathBuf,
    /// A configuration file whose `[policies.etcd]` says where etcd is and how to reach it
    /// (TLS, user); --etcd and --prefix override it.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// The etcd members, comma-separated, e.g. `http://etcd-0:2379,http://etcd-1:2379`.
    #[arg(long, value_delimiter = ',')]
    pub etcd: Vec<String>,
    /// The key prefix (default: the config's, else `/kmsgate/policies/`).
    #[arg(long)]
    pub prefix: Option<String>,
    /// Write over keys that exist already (default: keep them).
    #[arg(long)]
    pub overwrite: bool,
    /// Parse the files and read etcd, print what would be imported, write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Options of `run`.
#[derive(Debug, Args, Default)]
pub struct RunArgs {
    /// The TOML configuration file (built-in defaults and KMSGATE_* variables when absent).
    #[arg(long, short, env = "KMSGATE_CONFIG")]
    pub config: Option<PathBuf>,
}
