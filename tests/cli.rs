//! The binary: `check-config`, environment overrides, error messages, graceful drain.

mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{Recorder, TestRequest};

fn kmsgate() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kmsgate"));
    cmd.env_remove("RUST_LOG");
    cmd
}

fn project(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn temp_config(name: &str, text: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli-configs");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_shipped_configs_are_valid() {
    for file in ["config/kmsgate.toml", "config/kmsgate.example.toml"] {
        let out = kmsgate()
            .arg("check-config")
            .arg(project(file))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let printed = String::from_utf8_lossy(&out.stdout);
        assert!(
            printed.contains("[upstream]"),
            "{file}: prints the effective config:\n{printed}"
        );
    }
}

#[test]
fn a_bad_value_names_its_key_and_line() {
    let path = temp_config(
        "bad-duration.toml",
        "[listen]\npublic = \"127.0.0.1:0\"\n\n[upstream]\nurl = \"embedded\"\nconnect_timeout = \"soon\"\n",
    );
    let out = kmsgate().arg("check-config").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("upstream.connect_timeout"), "{err}");
    assert!(err.contains("bad-duration.toml:6"), "names the line: {err}");
}

#[test]
fn an_unknown_key_is_an_error_naming_it() {
    let path = temp_config(
        "unknown.toml",
        "[upstream]\nurl = \"embedded\"\nretries = 3\n",
    );
    let out = kmsgate().arg("check-config").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown key `upstream.retries`"), "{err}");
    assert!(err.contains("unknown.toml:3"), "{err}");
}

/// Errors that say what to do: a log level that is none, a bad RUST_LOG, an environment
/// override naming its variable, a misspelled key with a suggestion.
#[test]
fn config_errors_name_the_fix() {
    let check = |name: &str, toml: &str, env: &[(&str, &str)]| {
        let path = temp_config(name, toml);
        let mut cmd = kmsgate();
        cmd.arg("check-config").arg(&path);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let base = "[upstream]\nurl = \"embedded\"\n";
    let err = check(
        "verbose.toml",
        &format!("{base}[log]\nlevel = \"verbose\"\n"),
        &[],
    );
    assert!(
        err.contains("log.level") && err.contains("`verbose` is not a level"),
        "{err}"
    );
    let err = check("rust-log.toml", base, &[("RUST_LOG", "kmsgate=loud")]);
    assert!(err.contains("environment variable `RUST_LOG`"), "{err}");
    let err = check(
        "env-override.toml",
        base,
        &[("KMSGATE_LISTEN__MAX_CONNECTIONS", "lots")],
    );
    assert!(
        err.contains("listen.max_connections")
            && err.contains("environment variable KMSGATE_LISTEN__MAX_CONNECTIONS"),
        "{err}"
    );
    let err = check(
        "typo.toml",
        &format!("{base}[shutdown]\ndrain_timout = \"5s\"\n"),
        &[],
    );
    assert!(
        err.contains("unknown key `shutdown.drain_timout` (did you mean `drain_timeout`?)")
            && err.contains("typo.toml:4"),
        "{err}"
    );
}

#[test]
fn check_config_reads_what_a_start_reads() {
    // A listener certificate that cannot be read, and a policy file that does not parse: a
    // start would fail on each, so check-config does too (it runs the same preparation).
    let path = temp_config(
        "bad-cert.toml",
        "[upstream]\nurl = \"embedded\"\n[listen.tls]\ncert_file = \"/nonexistent/cert.pem\"\n\
         key_file = \"/nonexistent/key.pem\"\n",
    );
    let out = kmsgate().arg("check-config").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("listen.tls.cert_file"), "{err}");

    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli-bad-policies");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("inst-a.json"), "{").unwrap();
    let path = temp_config(
        "bad-policy-file.toml",
        &format!(
            "[upstream]\nurl = \"embedded\"\n[policies]\ndir = {:?}\n",
            dir.display().to_string()
        ),
    );
    let out = kmsgate().arg("check-config").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("inst-a.json"), "{err}");
}

/// A CA bundle or certificate file without a certificate is a config error, not a failure on
/// every connection.
#[test]
fn a_pem_file_without_a_certificate_is_refused() {
    let empty = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli-empty.pem");
    std::fs::write(&empty, "").unwrap();
    let path = temp_config(
        "empty-ca.toml",
        &format!(
            "[upstream]\nurl = \"https://kms.example\"\nca_file = {:?}\n",
            empty.display().to_string()
        ),
    );
    let out = kmsgate().arg("check-config").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("upstream.ca_file") && err.contains("holds no PEM certificate"),
        "{err}"
    );
    let path = temp_config(
        "empty-cert.toml",
        &format!(
            "[upstream]\nurl = \"embedded\"\n[listen.tls]\ncert_file = {:?}\nkey_file = {:?}\n",
            empty.display().to_string(),
            empty.display().to_string()
        ),
    );
    let out = kmsgate().arg("check-config").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("listen.tls.cert_file") && err.contains("holds no PEM certificate"),
        "{err}"
    );
}

#[test]
fn a_bad_upstream_url_is_refused() {
    let path = temp_config("bad-url.toml", "[upstream]\nurl = \"ftp://kms\"\n");
    let out = kmsgate().arg("check-config").arg(&path).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("upstream.url"));
}

#[test]
fn environment_overrides_apply_and_unrelated_variables_are_ignored() {
    let path = temp_config("env.toml", "[upstream]\nurl = \"embedded\"\n");
    let out = kmsgate()
        .arg("check-config")
        .arg(&path)
        .env("KMSGATE_UPSTREAM__URL", "https://kms.example:8443")
        .env("KMSGATE_UPSTREAM__REQUEST_TIMEOUT", "7s")
        .env("KMSGATE_SERVICE_HOST", "10.0.0.1")
        .env("KMSGATE_PORT", "tcp://10.0.0.1:80")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("url = \"https://kms.example:8443\""),
        "{stdout}"
    );
    assert!(stdout.contains("request_timeout = \"7s\""), "{stdout}");

    let out = kmsgate()
        .arg("check-config")
        .arg(&path)
        .env("KMSGATE_UPSTREAM__CONNECT_TIMEOUT", "whenever")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("upstream.connect_timeout") && err.contains("environment"),
        "{err}"
    );
}

#[test]
fn every_subcommand_has_help() {
    for args in [
        &["--help"][..],
        &["run", "--help"],
        &["check-config", "--help"],
        &["dev-kms", "--help"],
        &["health", "--help"],
        &["explain", "--help"],
    ] {
        let out = kmsgate().args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{args:?}"
        );
    }
}

/// `kmsgate health` (the image's HEALTHCHECK): 0 while the admin listener answers 200, 1 on any
/// other status and once the gateway is gone.
#[test]
fn health_probes_the_admin_listener() {
    let path = temp_config(
        "health.toml",
        "[listen]\npublic = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n[upstream]\nurl = \"embedded\"\n",
    );
    let mut child = ChildGuard(
        kmsgate()
            .arg("--config")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Read stderr to the end on a thread, so the gateway never writes into a closed pipe.
    let stderr = child.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let admin = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the gateway logs its admin address");
        if let Some(rest) = line.split("admin=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    let health = |args: &[&str]| {
        kmsgate()
            .args(["health", "--addr", &admin])
            .args(args)
            .output()
            .unwrap()
    };
    let ready = health(&[]);
    assert_eq!(ready.status.code(), Some(0), "{ready:?}");
    assert!(
        String::from_utf8_lossy(&ready.stdout).contains("200"),
        "{ready:?}"
    );
    assert_eq!(health(&["--path", "/healthz"]).status.code(), Some(0));
    assert_eq!(health(&["--path", "/nowhere"]).status.code(), Some(1));
    assert_eq!(health(&["--path", "no-slash"]).status.code(), Some(2));
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    assert_eq!(health(&["--timeout", "1s"]).status.code(), Some(1));
}

/// SIGTERM: `/readyz` turns 503 and new requests are still served (the grace period); a second
/// SIGTERM ends the grace period, the slow request in flight completes, the process exits 0.
#[tokio::test]
async fn sigterm_drains_in_flight_requests_then_exits_zero() {
    let upstream = Recorder::start().await;
    let path = temp_config(
        "drain.toml",
        &format!(
            "[listen]\npublic = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n[upstream]\nurl = \"{}\"\n[shutdown]\ngrace_period = \"60s\"\ndrain_timeout = \"10s\"\n",
            upstream.url()
        ),
    );
    let mut child = ChildGuard(
        kmsgate()
            .arg("--config")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // The start-up line names the bound addresses.
    let stderr = child.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let addr = |line: &str, key: &str| -> std::net::SocketAddr {
        let rest = line.split(key).nth(1).unwrap();
        rest.split_whitespace().next().unwrap().parse().unwrap()
    };
    let (public, admin) = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the gateway logs its addresses");
        if line.contains("public=") {
            break (addr(&line, "public="), addr(&line, "admin="));
        }
    };
    let readyz = || async {
        TestRequest::new(admin, "GET", "/readyz")
            .send()
            .await
            .status
    };
    assert_eq!(readyz().await, 200);
    let kill = |pid: u32| {
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .unwrap()
                .success()
        );
    };
    kill(child.0.id());
    // The grace period: unready, and a new connection is still served.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while readyz().await != 503 {
        assert!(
            std::time::Instant::now() < deadline,
            "/readyz never turned 503"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // With a W3C traceparent: its trace id joins the access-log line to the client's trace.
    let res = TestRequest::new(public, "GET", "/api/v2/keys")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .send()
        .await;
    assert_eq!(
        res.status,
        200,
        "served during the grace period: {}",
        res.text()
    );
    // A slow request in flight when the second SIGTERM ends the grace period.
    upstream.delay(Duration::from_millis(1500));
    let in_flight = tokio::spawn(TestRequest::new(public, "GET", "/api/v2/keys").send());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(upstream.count(), 2, "the slow request reached the upstream");
    kill(child.0.id());
    let res = in_flight.await.unwrap();
    assert_eq!(
        res.status,
        200,
        "the in-flight request finished: {}",
        res.text()
    );
    let status = tokio::task::spawn_blocking(move || child.0.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    // The in-flight request's access-log line was written before the exit (it is buffered
    // for a second otherwise): nothing is lost on the way out.
    let correlation_id = res.header("correlation-id").unwrap().to_owned();
    let mut access = Vec::new();
    // The reader thread ends at the end of stderr (the process has exited).
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(10)) {
        if line.contains("kmsgate::access: request") {
            access.push(line);
        }
    }
    assert_eq!(access.len(), 2, "{access:?}");
    assert!(
        access[0].contains("trace_id=4bf92f3577b34da6a3ce929d0e0e4736"),
        "{}",
        access[0]
    );
    assert!(!access[1].contains("trace_id="), "{}", access[1]);
    assert!(
        access[1].contains("method=GET")
            && access[1].contains("status=200")
            && access[1].contains(&format!("correlation_id={correlation_id}")),
        "{}",
        access[1]
    );
}

/// Kills the child process if the test ends early.
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `kmsgate explain` on the quickstart configuration: 1 for a refusal (printed with its code and
/// envelope, never the token), 0 for a forwarded request, 2 for a request it cannot read;
/// `--json` is JSON.
#[test]
fn explain_exits_by_the_decision() {
    let config = project("config/kmsgate.toml");
    let loaded = kmsgate::config::Config::load(Some(&config)).unwrap();
    let token =
        kmsgate::auth::devtoken::mint(&loaded.auth, "alice", Duration::from_secs(600), false)
            .unwrap();
    let authorization = format!("authorization: Bearer {token}");
    let explain = |args: &[&str]| {
        kmsgate()
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .arg("explain")
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .unwrap()
    };
    let refused = explain(&[
        "--",
        "curl",
        "http://127.0.0.1:8080/api/v2/keys",
        "-H",
        "bluemix-instance: demo-allowed-ip",
        "-H",
        &authorization,
    ]);
    let text = String::from_utf8_lossy(&refused.stdout);
    assert_eq!(refused.status.code(), Some(1), "{text}");
    assert!(
        text.contains("REFUSED by allowed_ip: 401 UNAUTHORIZED_ERR"),
        "{text}"
    );
    assert!(text.contains("kmsgate-reason: UNAUTHORIZED_ERR"), "{text}");
    assert!(!text.contains(&token), "the token must never be printed");
    let forwarded = explain(&[
        "--url",
        "/api/v2/keys",
        "-H",
        "bluemix-instance: demo-private",
        "-H",
        &authorization,
        "--listener",
        "private",
        "--json",
    ]);
    assert_eq!(forwarded.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&forwarded.stdout).unwrap();
    assert_eq!(json["outcome"], "forwarded");
    assert_eq!(json["token"]["subject"], "alice");
    assert_eq!(json["agreement"]["agrees"], true);
    assert!(!String::from_utf8_lossy(&forwarded.stdout).contains(&token));
    let bad = explain(&[
        "--",
        "curl",
        "--user",
        "a:b",
        "http://127.0.0.1:8080/api/v2/keys",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--user"));
}
