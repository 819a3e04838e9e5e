//! The command line: `kmsgate [run] --config FILE`, `check-config FILE`, `dev-kms --listen ADDR`.

use std::net::SocketAddr;
use std::path::PathBuf;

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
}

/// Options of `run`.
#[derive(Debug, Args, Default)]
pub struct RunArgs {
    /// The TOML configuration file (built-in defaults and KMSGATE_* variables when absent).
    #[arg(long, short, env = "KMSGATE_CONFIG")]
    pub config: Option<PathBuf>,
}
