//! The `kmsgate` binary: a thin CLI over the library.

use std::process::ExitCode;

use clap::Parser;
use kmsgate::cli::{Cli, Command, ImportDirArgs, PoliciesCommand, RunArgs};
use kmsgate::config::Config;
use kmsgate::gateway::{Gateway, Signals, shutdown_signal};

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
        Some(Command::Explain(args)) => explain(&args),
        Some(Command::Health {
            addr,
            path,
            timeout,
        }) => health(addr, &path, timeout),
        Some(Command::Policies {
            command: PoliciesCommand::ImportDir(args),
        }) => import_dir(&args),
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
        // The first SIGTERM/SIGINT starts the drain, a second one skips its grace period.
        let signals = Signals::listen();
        match Gateway::bind(config).await {
            Ok(mut gateway) => {
                // listen.admin_explain: POST /explain on the admin listener.
                if let Err(e) = kmsgate::explain::admin::install(&mut gateway) {
                    eprintln!("kmsgate: {e}");
                    return ExitCode::FAILURE;
                }
                if let Some(path) = args.config.clone() {
                    gateway.watch_config(path);
                }
                gateway.run_with(signals.nth(1), signals.nth(2)).await;
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
            // The same preparation as a start: policy files, keys, certificates.
            if let Err(e) = Gateway::prepare(config.clone()) {
                for message in e.messages() {
                    eprintln!("kmsgate: config error: {message}");
                }
                return ExitCode::from(2);
            }
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

/// `kmsgate explain`: the request through the real stack (nothing is sent), and why.
fn explain(args: &kmsgate::cli::ExplainArgs) -> ExitCode {
    let bad = |message: String| {
        eprintln!("kmsgate explain: {message}");
        ExitCode::from(2)
    };
    let mut config = match load(Some(&args.config)) {
        Ok(config) => config,
        Err(code) => return code,
    };
    if let Some(replay) = &args.replay {
        if let Some(dir) = &args.policies {
            config.policies.dir = Some(dir.clone());
            config.policies.instances.clear();
            config.policies.default = None;
            config.policies.etcd = None;
        }
        return explain_replay(config, replay, args.json);
    }
    let input = match kmsgate::explain::input::from_args(args) {
        Ok(input) => input,
        Err(e) => return bad(e.to_string()),
    };
    let (runtime, explainer) = match explaining(config) {
        Ok(prepared) => prepared,
        Err(code) => return code,
    };
    runtime.block_on(async {
        let explanation = match explainer.explain(&input).await {
            Ok(explanation) => explanation,
            Err(e) => return bad(e.to_string()),
        };
        if args.json {
            match serde_json::to_string_pretty(&explanation) {
                Ok(json) => println!("{json}"),
                Err(e) => return bad(e.to_string()),
            }
        } else {
            print!("{}", kmsgate::explain::render::text(&explanation));
        }
        if !explanation.agreement.agrees {
            eprintln!(
                "kmsgate explain: WARNING: the per-layer account disagrees with the stack: {}",
                explanation.agreement.note.as_deref().unwrap_or("")
            );
        }
        ExitCode::from(explanation.outcome.exit_code())
    })
}

/// A runtime and the explaining stack for `config`, built on it; a configuration error is
/// printed (exit code 2).
fn explaining(
    config: kmsgate::config::Config,
) -> Result<(tokio::runtime::Runtime, kmsgate::explain::Explainer), ExitCode> {
    let runtime = runtime()?;
    let explainer = {
        let _entered = runtime.enter();
        kmsgate::explain::Explainer::new(config).map_err(|e| {
            for message in e.messages() {
                eprintln!("kmsgate: config error: {message}");
            }
            ExitCode::from(2)
        })?
    };
    Ok((runtime, explainer))
}

/// `kmsgate explain --replay FILE`: one prepared stack decides every line of `file`.
fn explain_replay(config: kmsgate::config::Config, file: &std::path::Path, json: bool) -> ExitCode {
    let text = match std::fs::read(file) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => {
            eprintln!("kmsgate explain: {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let (runtime, explainer) = match explaining(config) {
        Ok(prepared) => prepared,
        Err(code) => return code,
    };
    runtime.block_on(async {
        let mut progress = |n: usize| eprintln!("kmsgate explain: {n} lines replayed");
        let replay = kmsgate::explain::replay::replay(&explainer, &text, &mut progress).await;
        if json {
            match serde_json::to_string_pretty(&replay) {
                Ok(json) => println!("{json}"),
                Err(e) => {
                    eprintln!("kmsgate explain: {e}");
                    return ExitCode::from(2);
                }
            }
        } else {
            print!("{}", kmsgate::explain::replay::text(&replay));
        }
        ExitCode::from(replay.exit_code())
    })
}

/// `kmsgate health`: one HTTP/1.1 GET to the admin listener over a plain socket (no runtime, no
/// client library), so an image without curl can run its own HEALTHCHECK or exec probe.
fn health(addr: std::net::SocketAddr, path: &str, timeout: std::time::Duration) -> ExitCode {
    use std::io::{ErrorKind, Read, Write};
    if !path.starts_with('/') || path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        eprintln!("kmsgate health: --path must start with / and contain no spaces: {path:?}");
        return ExitCode::from(2);
    }
    let probe = || -> std::io::Result<String> {
        let deadline = std::time::Instant::now() + timeout;
        let left = || {
            deadline
                .saturating_duration_since(std::time::Instant::now())
                .max(std::time::Duration::from_millis(1))
        };
        let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_write_timeout(Some(left()))?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: kmsgate-health\r\nConnection: close\r\n\r\n"
        )?;
        let mut head = Vec::with_capacity(64);
        let mut buf = [0u8; 64];
        while !head.contains(&b'\n') && head.len() < 1024 {
            stream.set_read_timeout(Some(left()))?;
            let n = stream.read(&mut buf)?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let line = String::from_utf8_lossy(&head);
        Ok(line.lines().next().unwrap_or("").trim().to_owned())
    };
    match probe() {
        Ok(status_line) => {
            let ok = status_line.split_whitespace().nth(1) == Some("200");
            println!("http://{addr}{path}: {status_line}");
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            println!("http://{addr}{path}: no answer within {timeout:?}");
            ExitCode::FAILURE
        }
        Err(e) => {
            println!("http://{addr}{path}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `kmsgate policies import-dir`: the etcd settings from `--config`'s `[policies.etcd]` (or the
/// defaults), `--etcd` and `--prefix` over them; prints what was imported, kept and skipped.
fn import_dir(args: &ImportDirArgs) -> ExitCode {
    use kmsgate::policy::etcd::import::{ImportError, ImportOptions};
    let mut etcd = match args.config.as_deref().map(|path| load(Some(path))) {
        Some(Ok(config)) => config.policies.etcd.unwrap_or_default(),
        Some(Err(code)) => return code,
        None => kmsgate::policy::etcd::EtcdConfig::default(),
    };
    if !args.etcd.is_empty() {
        etcd.endpoints.clone_from(&args.etcd);
    }
    if let Some(prefix) = &args.prefix {
        etcd.prefix.clone_from(prefix);
    }
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let options = ImportOptions {
        overwrite: args.overwrite,
        dry_run: args.dry_run,
    };
    match runtime.block_on(kmsgate::policy::etcd::import::import_dir(
        &etcd, &args.dir, options,
    )) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kmsgate policies import-dir: {e}");
            match e {
                ImportError::Etcd { .. } => ExitCode::FAILURE,
                ImportError::Config(_) | ImportError::Source(_) => ExitCode::from(2),
            }
        }
    }
}
