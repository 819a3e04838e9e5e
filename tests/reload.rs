//! Policy files and hot reload over real loopback sockets: a changed file is enforced without a
//! restart (polling, a Kubernetes ConfigMap `..data` symlink swap, SIGHUP), a corrupt file keeps
//! the previous policies, requests keep flowing across reloads, shadow mode forwards and counts,
//! and `unknown_instance = "reject"` refuses instances without policies.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use support::{Recorder, TestGateway, TestResponse, assert_rejected};

const INSTANCE: &str = "a8b9e8f4-7d0f-4c4f-9b3e-000000000007";

/// A fresh, empty directory under the system temp dir.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kmsgate-reload-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A GET-shaped document with allowedIP `nets` (and, optionally, keyCreateImportAccess with
/// standard keys refused).
fn allowed_ip(nets: &[&str]) -> String {
    json!({
        "metadata": {"collectionType": "application/vnd.ibm.kms.policy+json", "collectionTotal": 1},
        "resources": [{
            "createdBy": "IBMid-0", "creationDate": "2026-01-01T00:00:00Z",
            "updatedBy": "IBMid-0", "lastUpdated": "2026-01-01T00:00:00Z",
            "policy_type": "allowedIP",
            "policy_data": {"enabled": true, "attributes": {"allowed_ip": nets}}
        }]
    })
    .to_string()
}

/// Replaces `path` atomically (as an operator's tooling or the gateway itself would).
fn replace(path: &Path, text: &str) {
    let temp = path.with_extension("swap");
    std::fs::write(&temp, text).unwrap();
    std::fs::rename(&temp, path).unwrap();
}

fn config(upstream: &Recorder, dir: &Path, extra: &str) -> String {
    format!(
        "[upstream]\nurl = \"{}\"\n[policies]\ndir = \"{}\"\npoll_interval = \"20ms\"\n{extra}",
        upstream.url(),
        dir.display()
    )
}

async fn get(gw: &TestGateway) -> TestResponse {
    gw.request("GET", "/api/v2/keys")
        .header("bluemix-instance", INSTANCE)
        .send()
        .await
}

/// Waits (at most 5 s) until a request gets `status`.
async fn until_status(gw: &TestGateway, status: u16) -> TestResponse {
    for _ in 0..250 {
        let res = get(gw).await;
        if res.status == status {
            return res;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the gateway never answered {status}");
}

/// Waits (at most 5 s) until `kmsgate_policy_reloads_total{result}` reaches `at_least`.
async fn until_reloads(gw: &TestGateway, result: &str, at_least: f64) {
    for _ in 0..250 {
        if gw
            .metric("kmsgate_policy_reloads_total", &[("result", result)])
            .await
            >= at_least
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("fewer than {at_least} reloads with result {result}");
}

/// Log lines, captured for the whole test binary.
static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Capture;

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    let _ = tracing_subscriber::fmt()
        .with_writer(|| Capture)
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .try_init();
}

fn logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned()
}

#[tokio::test]
async fn a_changed_policy_file_is_enforced_without_a_restart() {
    let upstream = Recorder::start().await;
    let dir = temp_dir("changed");
    let file = dir.join(format!("{INSTANCE}.json"));
    std::fs::write(&file, allowed_ip(&["10.0.0.0/8"])).unwrap();
    let gw = TestGateway::start(&config(&upstream, &dir, "")).await;

    let res = get(&gw).await;
    assert_rejected(&res, 401, "UNAUTHORIZED_ERR");
    assert_eq!(
        upstream.count(),
        0,
        "a refused request reached the upstream"
    );
    assert_eq!(gw.metric("kmsgate_policy_instances", &[]).await, 1.0);

    replace(&file, &allowed_ip(&["10.0.0.0/8", "127.0.0.0/8"]));
    until_status(&gw, 200).await;
    assert!(upstream.count() >= 1);
    assert!(
        gw.metric("kmsgate_policy_reloads_total", &[("result", "ok")])
            .await
            >= 2.0
    );
    assert!(
        gw.metric("kmsgate_policy_last_reload_timestamp_seconds", &[])
            .await
            > 1.7e9
    );

    // Removing the file removes the policy: with another policy file as the default, the
    // instance now gets the default.
    std::fs::write(dir.join("default.json"), allowed_ip(&["10.0.0.0/8"])).unwrap();
    std::fs::remove_file(&file).unwrap();
    assert_rejected(&until_status(&gw, 401).await, 401, "UNAUTHORIZED_ERR");
    assert_eq!(gw.metric("kmsgate_policy_instances", &[]).await, 0.0);
}

#[tokio::test]
async fn a_corrupt_file_keeps_the_previous_policy_and_says_so() {
    capture_logs();
    let upstream = Recorder::start().await;
    let dir = temp_dir("corrupt");
    let file = dir.join(format!("{INSTANCE}.json"));
    std::fs::write(&file, allowed_ip(&["127.0.0.0/8"])).unwrap();
    let gw = TestGateway::start(&config(&upstream, &dir, "")).await;
    assert_eq!(get(&gw).await.status, 200);

    // A typo in a policy type and a torn file: both refused by the parser.
    replace(
        &file,
        &allowed_ip(&["10.0.0.0/8"]).replace("allowedIP", "allowedIp"),
    );
    until_reloads(&gw, "error", 1.0).await;
    let res = get(&gw).await;
    assert_eq!(
        res.status, 200,
        "the previous policy (127.0.0.0/8) must stay"
    );
    replace(&file, "{\"metadata\": {\"collectionTy");
    until_reloads(&gw, "error", 2.0).await;
    assert_eq!(get(&gw).await.status, 200);
    let logs = logs();
    assert!(
        logs.contains("instance policy reload failed")
            && logs.contains(&format!("{INSTANCE}.json")),
        "the log names the file: {logs}"
    );

    // Fixed: the new policy applies.
    replace(&file, &allowed_ip(&["10.0.0.0/8"]));
    until_status(&gw, 401).await;
    let seen = upstream.count();
    assert_rejected(&get(&gw).await, 401, "UNAUTHORIZED_ERR");
    assert_eq!(
        upstream.count(),
        seen,
        "the upstream never saw the refused request"
    );
}

#[tokio::test]
async fn a_configmap_symlink_swap_is_a_change() {
    let upstream = Recorder::start().await;
    let dir = temp_dir("configmap");
    // The layout kubelet writes: <dir>/..<timestamp>/<files>, ..data → it, <file> → ..data/<file>.
    let name = format!("{INSTANCE}.json");
    let version = |stamp: &str, text: &str| {
        let sub = dir.join(format!("..{stamp}"));
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join(&name), text).unwrap();
        sub
    };
    let first = version("2026_11_29_12_00_00.1", &allowed_ip(&["10.0.0.0/8"]));
    std::os::unix::fs::symlink(first.file_name().unwrap(), dir.join("..data")).unwrap();
    std::os::unix::fs::symlink(format!("..data/{name}"), dir.join(&name)).unwrap();
    let gw = TestGateway::start(&config(&upstream, &dir, "")).await;
    assert_rejected(&get(&gw).await, 401, "UNAUTHORIZED_ERR");
    assert_eq!(
        upstream.count(),
        0,
        "the upstream never saw the refused request"
    );

    let second = version("2026_11_29_12_05_00.2", &allowed_ip(&["127.0.0.0/8"]));
    std::os::unix::fs::symlink(second.file_name().unwrap(), dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    std::fs::remove_dir_all(&first).unwrap();
    until_status(&gw, 200).await;
    assert_eq!(gw.metric("kmsgate_policy_instances", &[]).await, 1.0);
}

#[tokio::test]
async fn sighup_reloads() {
    let upstream = Recorder::start().await;
    let dir = temp_dir("sighup");
    let file = dir.join(format!("{INSTANCE}.json"));
    std::fs::write(&file, allowed_ip(&["10.0.0.0/8"])).unwrap();
    // Polling off: only the signal reloads.
    let toml = config(&upstream, &dir, "").replace("\"20ms\"", "\"0s\"");
    let gw = TestGateway::start(&toml).await;
    assert_rejected(&get(&gw).await, 401, "UNAUTHORIZED_ERR");
    replace(&file, &allowed_ip(&["127.0.0.0/8"]));
    // Give the reload task time to install its handler, then check nothing reloaded by itself.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_rejected(&get(&gw).await, 401, "UNAUTHORIZED_ERR");
    assert_eq!(
        upstream.count(),
        0,
        "the upstream never saw a refused request"
    );
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    until_status(&gw, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_requests_across_fifty_reloads_all_succeed() {
    let upstream = Recorder::start().await;
    let dir = temp_dir("churn");
    let file = dir.join(format!("{INSTANCE}.json"));
    std::fs::write(&file, allowed_ip(&["127.0.0.0/8"])).unwrap();
    // Other instances, so each reload rebuilds a real snapshot.
    for i in 0..50 {
        std::fs::write(
            dir.join(format!("other-{i}.json")),
            allowed_ip(&["10.0.0.0/8"]),
        )
        .unwrap();
    }
    let gw = Arc::new(TestGateway::start(&config(&upstream, &dir, "")).await);
    let before = gw
        .metric("kmsgate_policy_reloads_total", &[("result", "ok")])
        .await;

    // 50 workers × 20 requests, while the policy file is rewritten 50 times (always allowing
    // the loopback client, with a changing second range).
    let workers: Vec<_> = (0..50)
        .map(|_| {
            let gw = gw.clone();
            tokio::spawn(async move {
                let mut statuses = Vec::with_capacity(20);
                for _ in 0..20 {
                    statuses.push(get(&gw).await.status);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                statuses
            })
        })
        .collect();
    for i in 0..50u32 {
        let extra = format!("192.0.2.{i}/32");
        replace(&file, &allowed_ip(&["127.0.0.0/8", &extra]));
        until_reloads(&gw, "ok", before + f64::from(i) + 1.0).await;
    }
    let mut statuses = Vec::new();
    for worker in workers {
        statuses.extend(worker.await.unwrap());
    }
    assert_eq!(statuses.len(), 1000);
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(upstream.count(), 1000);
    assert!(
        gw.metric("kmsgate_policy_reloads_total", &[("result", "ok")])
            .await
            >= before + 50.0
    );
    assert_eq!(
        gw.metric("kmsgate_policy_reloads_total", &[("result", "error")])
            .await,
        0.0
    );
}

#[tokio::test]
async fn shadow_mode_forwards_and_counts() {
    let upstream = Recorder::start().await;
    let dir = temp_dir("shadow");
    std::fs::write(
        dir.join(format!("{INSTANCE}.json")),
        allowed_ip(&["10.0.0.0/8"]),
    )
    .unwrap();
    let gw = TestGateway::start(&config(&upstream, &dir, "shadow = [\"allowedIP\"]\n")).await;
    let res = get(&gw).await;
    assert_eq!(res.status, 200, "a shadowed policy does not refuse");
    assert!(res.headers.get("kmsgate-reason").is_none());
    assert_eq!(upstream.count(), 1);
    assert_eq!(
        gw.metric(
            "kmsgate_shadow_rejections_total",
            &[("code", "UNAUTHORIZED_ERR")]
        )
        .await,
        1.0
    );
    assert_eq!(
        gw.metric("kmsgate_rejections_total", &[("code", "UNAUTHORIZED_ERR")])
            .await,
        0.0
    );
}

#[tokio::test]
async fn shadow_all_covers_every_enforced_policy() {
    let upstream = Recorder::start().await;
    let dir = temp_dir("shadow-all");
    let document = json!({
        "metadata": {"collectionType": "application/vnd.ibm.kms.policy+json", "collectionTotal": 1},
        "resources": [{"policy_type": "keyCreateImportAccess",
            "policy_data": {"enabled": true, "attributes": {"create_standard_key": false}}}]
    });
    std::fs::write(dir.join(format!("{INSTANCE}.json")), document.to_string()).unwrap();
    let create = json!({
        "metadata": {"collectionType": "application/vnd.ibm.kms.key+json", "collectionTotal": 1},
        "resources": [{"type": "application/vnd.ibm.kms.key+json", "name": "k", "extractable": true}]
    });
    let gw = TestGateway::start(&config(&upstream, &dir, "shadow_all = true\n")).await;
    let res = gw
        .request("POST", "/api/v2/keys")
        .header("bluemix-instance", INSTANCE)
        .json(&create)
        .send()
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(upstream.count(), 1);
    let code = [("code", "KEY_CREATE_IMPORT_ACCESS_ERR")];
    assert_eq!(
        gw.metric("kmsgate_shadow_rejections_total", &code).await,
        1.0
    );

    // Without shadow mode the same request is refused.
    let enforcing = TestGateway::start(&config(&upstream, &dir, "")).await;
    let res = enforcing
        .request("POST", "/api/v2/keys")
        .header("bluemix-instance", INSTANCE)
        .json(&create)
        .send()
        .await;
    assert_rejected(&res, 409, "KEY_CREATE_IMPORT_ACCESS_ERR");
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn unknown_instances_can_be_refused() {
    let upstream = Recorder::start().await;
    let dir = temp_dir("unknown");
    std::fs::write(
        dir.join(format!("{INSTANCE}.json")),
        allowed_ip(&["127.0.0.0/8"]),
    )
    .unwrap();
    let gw = TestGateway::start(&config(&upstream, &dir, "unknown_instance = \"reject\"\n")).await;
    assert_eq!(get(&gw).await.status, 200);
    for instance in [Some("someone-else"), None] {
        let mut req = gw.request("GET", "/api/v2/keys");
        if let Some(instance) = instance {
            req = req.header("bluemix-instance", instance);
        }
        assert_rejected(&req.send().await, 401, "UNAUTHORIZED_ERR");
    }
    assert_eq!(upstream.count(), 1);

    // "reject" refuses every instance without policies of its own, a default.json or not.
    std::fs::write(dir.join("default.json"), allowed_ip(&["127.0.0.0/8"])).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let res = gw
        .request("GET", "/api/v2/keys")
        .header("bluemix-instance", "someone-else")
        .send()
        .await;
    assert_rejected(&res, 401, "UNAUTHORIZED_ERR");
}

#[tokio::test]
async fn a_corrupt_file_at_start_up_is_a_config_error_naming_it() {
    let dir = temp_dir("startup");
    std::fs::write(dir.join("bad.json"), "{").unwrap();
    let toml = format!("[policies]\ndir = \"{}\"\n", dir.display());
    // The configuration reads no file; preparing the start reads (and checks) the policy files.
    let config = kmsgate::config::Config::from_toml(&[&toml]).unwrap();
    let e = kmsgate::gateway::Gateway::prepare(config)
        .unwrap_err()
        .to_string();
    assert!(e.contains("policies.dir") && e.contains("bad.json"), "{e}");
}

/// The config file reloads too: trusted proxies change at run time; a listener change is only
/// logged (the gateway keeps serving where it was); an invalid file changes nothing.
#[tokio::test]
async fn the_config_file_reloads_what_can_change_at_run_time() {
    let upstream = Recorder::start().await;
    let dir = temp_dir("config");
    std::fs::write(
        dir.join(format!("{INSTANCE}.json")),
        allowed_ip(&["10.0.0.0/8"]),
    )
    .unwrap();
    let file = dir.join("kmsgate.toml");
    let toml = |trusted: &str, public: &str| {
        format!(
            "[listen]\npublic = \"{public}\"\nadmin = \"127.0.0.1:0\"\n\
             [upstream]\nurl = \"{}\"\n[client_ip]\ntrusted_proxies = [{trusted}]\n\
             [policies]\ndir = \"{}\"\npoll_interval = \"20ms\"\n",
            upstream.url(),
            dir.display()
        )
    };
    // The policy directory holds the config file too: it is not a .json file, so skipped.
    replace(&file, &toml("", "127.0.0.1:0"));
    let config = kmsgate::config::Config::load(Some(&file)).unwrap();
    let mut gateway = kmsgate::gateway::Gateway::bind(config).await.unwrap();
    gateway.watch_config(file.clone());
    let addrs = gateway.addrs();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(gateway.run(async move {
        let _ = stopped.await;
    }));
    let forwarded = || async {
        support::TestRequest::new(addrs.public, "GET", "/api/v2/keys")
            .header("bluemix-instance", INSTANCE)
            .header("x-forwarded-for", "10.1.2.3")
            .send()
            .await
    };
    let metric = |result: &'static str| async move {
        let text = support::TestRequest::new(addrs.admin, "GET", "/metrics")
            .send()
            .await
            .text();
        support::find_metric(&text, "kmsgate_config_reloads_total", &[("result", result)])
            .unwrap_or(0.0)
    };
    // The loopback peer is not a trusted proxy: the client is 127.0.0.1, outside 10.0.0.0/8.
    assert_rejected(&forwarded().await, 401, "UNAUTHORIZED_ERR");
    assert_eq!(
        upstream.count(),
        0,
        "the upstream never saw the refused request"
    );

    replace(&file, &toml("\"127.0.0.0/8\"", "127.0.0.1:1"));
    let mut status = 0;
    for _ in 0..250 {
        status = forwarded().await.status;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        status, 200,
        "the new trusted proxy applies; the listener stays where it was"
    );
    assert!(metric("ok").await >= 1.0);

    replace(&file, "[listen]\nbogus = 1\n");
    for _ in 0..250 {
        if metric("error").await >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(metric("error").await >= 1.0);
    assert_eq!(
        forwarded().await.status,
        200,
        "an invalid file changes nothing"
    );
    let _ = stop.send(());
    let _ = task.await;
}
