//! The command line: `kmsgate [run] --config FILE`, `check-config FILE`, `dev-kms --listen ADDR`,
//! `token --config FILE --sub NAME`, `health [--addr ADDR] [--path /readyz]`,
//! `policies import-dir [--config FILE] [--etcd URL,…] DIR`,
//! `explain --config FILE (--url URL … | --request-file FILE | --replay FILE | -- curl …)`.

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
    /// Explain what the gateway would do with a request, and why, without sending it: exit 0
    /// forwarded, 1 refused, 2 bad input.
    Explain(Box<ExplainArgs>),
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

/// Options of `explain`: the configuration and the request, as flags, a curl command line
/// (after `--`) or a request file.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The TOML configuration file.
    #[arg(long, short)]
    pub config: PathBuf,
    /// The request's method.
    #[arg(long, short = 'X', default_value = "GET", conflicts_with_all = ["request_file", "curl"])]
    pub method: String,
    /// The request's URL (`http://host:port/path?query`) or path (`/path?query`).
    #[arg(long, conflicts_with_all = ["request_file", "curl", "replay"], required_unless_present_any = ["request_file", "curl", "replay"])]
    pub url: Option<String>,
    /// A request header, `Name: value` (repeatable).
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE", conflicts_with_all = ["request_file", "curl"])]
    pub headers: Vec<String>,
    /// The request body.
    #[arg(long, short = 'd', conflicts_with_all = ["data_file", "request_file", "curl"])]
    pub data: Option<String>,
    /// A file holding the request body.
    #[arg(long, conflicts_with_all = ["request_file", "curl"])]
    pub data_file: Option<PathBuf>,
    /// A file holding a raw HTTP/1.1 request, or a curl command line.
    #[arg(long, conflicts_with_all = ["curl", "replay"])]
    pub request_file: Option<PathBuf>,
    /// Replay a file of access-log lines (text or JSON) and/or curl command lines, one per
    /// line: how each would be decided now, against what the log says happened. Exit 0: none
    /// goes from forwarded to refused; 1: some would; 2: nothing readable.
    #[arg(long, conflicts_with = "curl")]
    pub replay: Option<PathBuf>,
    /// With --replay: decide under the policy documents in this directory (a proposed set)
    /// instead of the configuration's `policies.dir` and inline documents.
    #[arg(long, requires = "replay")]
    pub policies: Option<PathBuf>,
    /// The TCP peer the gateway sees (the client, or the proxy in front of it).
    #[arg(long, default_value = "127.0.0.1")]
    pub peer: std::net::IpAddr,
    /// The listener the request arrives on: `public` or `private`.
    #[arg(long, default_value = "public", value_parser = ["public", "private"])]
    pub listener: String,
    /// Print the explanation as JSON.
    #[arg(long)]
    pub json: bool,
    /// A curl command line (`-- curl -X POST https://… -H … -d …`), quoted by your shell.
    #[arg(last = true, value_name = "CURL")]
    pub curl: Vec<String>,
}

/// Options of `run`.
#[derive(Debug, Args, Default)]
pub struct RunArgs {
    /// The TOML configuration file (built-in defaults and KMSGATE_* variables when absent).
    #[arg(long, short, env = "KMSGATE_CONFIG")]
    pub config: Option<PathBuf>,
}
