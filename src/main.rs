//! The `kmsgate` binary: a thin CLI over the library.

use std::process::ExitCode;

use clap::Parser;
use kmsgate::cli::{Cli, Command, RunArgs};
use kmsgate::config::Config;
use kmsgate::gateway::{Gateway, shutdown_signal};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None => run(cli.run),
        Some(Command::Run(args)) => run(args),
        Some(Command::CheckConfig { file }) => check_config(&file),
        Some(Command::DevKms { listen }) => dev_kms(listen),
        Some(Command::Token {
            config,
            sub,
            ttl,
            service,
        }) => token(&config, &sub, ttl, service),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("kmsgate: cannot start the runtime: {e}");
            ExitCode::FAILURE
        })
}

fn load(path: Option<&std::path::Path>) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        for message in e.messages() {
            eprintln!("kmsgate: config error: {message}");
        }
        ExitCode::from(2)
    })
}

fn run(args: RunArgs) -> ExitCode {
    let config = match load(args.config.as_deref()) {
        Ok(config) => config,
        Err(code) => return code,
    };
    kmsgate::telemetry::init(&config.log);
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    runtime.block_on(async {
        match Gateway::bind(config).await {
            Ok(mut gateway) => {
                if let Some(path) = args.config.clone() {
                    gateway.watch_config(path);
                }
                gateway.run(shutdown_signal()).await;
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("kmsgate: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

fn check_config(file: &std::path::Path) -> ExitCode {
    match load(Some(file)) {
        Ok(config) => {
            print!("{}", config.to_redacted_toml());
            eprintln!("kmsgate: {} is valid", file.display());
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

fn dev_kms(listen: std::net::SocketAddr) -> ExitCode {
    kmsgate::telemetry::init(&kmsgate::config::LogConfig::default());
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    runtime.block_on(async {
        match kmsgate::gateway::dev_kms::serve(listen, shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("kmsgate dev-kms: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

fn token(file: &std::path::Path, sub: &str, ttl: std::time::Duration, service: bool) -> ExitCode {
    let config = match load(Some(file)) {
        Ok(config) => config,
        Err(code) => return code,
    };
    match kmsgate::auth::devtoken::mint(&config.auth, sub, ttl, service) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kmsgate token: {e}");
            ExitCode::FAILURE
        }
    }
}
