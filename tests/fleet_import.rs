//! `kmsgate policies import-dir` (issue 15): the binary migrates a `policies.dir` into a REAL
//! etcd on loopback (Debian's `etcd-server`), and a gateway on that prefix enforces what was
//! imported. Dry run, re-runs that keep what changed since, `--overwrite`, an invalid file
//! (nothing written, the file named, exit 2) and an unreachable etcd (exit 1).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};
use support::etcd::{Etcd, etcd_client, free_port};
use support::{Recorder, TestGateway, assert_rejected};

const PREFIX: &str = "/import/policies/";
const FIRST: &str = "00000000-0000-4000-8000-000000000001";
/// A file named with another spelling of this id (upper case) lands on the canonical key.
const SECOND: &str = "a1b2c3d4-0000-4000-8000-000000000002";

fn doc(resources: Value) -> String {
    let total = resources.as_array().map_or(0, Vec::len);
    json!({
        "metadata": {"collectionType": "application/vnd.ibm.kms.policy+json", "collectionTotal": total},
        "resources": resources,
    })
    .to_string()
}

fn no_standard_keys() -> String {
    doc(json!([{"policy_type": "keyCreateImportAccess",
        "policy_data": {"enabled": true, "attributes": {"create_standard_key": false}}}]))
}

fn dual_auth() -> String {
    doc(json!([{"policy_type": "dualAuthDelete", "policy_data": {"enabled": true}}]))
}

/// Runs `kmsgate policies import-dir ARGS` off the runtime's workers.
async fn import(args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kmsgate"));
    command
        .env_remove("RUST_LOG")
        .args(["policies", "import-dir"])
        .args(args);
    tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("run kmsgate")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The keys and values under `prefix`, and etcd's revision.
async fn read_prefix(
    client: &mut etcd_client::Client,
    prefix: &str,
) -> (Vec<(String, Value)>, i64) {
    let response = client
        .get(prefix, Some(etcd_client::GetOptions::new().with_prefix()))
        .await
        .expect("read the prefix");
    let kvs = response
        .kvs()
        .iter()
        .map(|kv| {
            let key = kv.key_str().expect("utf-8 key").to_owned();
            let value = serde_json::from_slice(kv.value()).expect("the value is JSON");
            (key, value)
        })
        .collect();
    (kvs, response.header().expect("header").revision())
}

fn policy_types(document: &Value) -> Vec<String> {
    document["resources"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|p| p["policy_type"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn policies_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("fleet-import-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the policies dir");
    dir
}

fn write(dir: &Path, file: &str, text: &str) {
    std::fs::write(dir.join(file), text).expect("write a policy file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_dir_migrates_a_policies_dir_into_etcd() {
    let mut etcd = Etcd::cluster("import", 1);
    etcd[0].start();
    let url = etcd[0].url();
    let mut client = etcd_client(std::slice::from_ref(&url)).await;

    let dir = policies_dir("ok");
    write(&dir, &format!("{FIRST}.json"), &no_standard_keys());
    write(
        &dir,
        &format!("{}.json", SECOND.to_uppercase()),
        &dual_auth(),
    );
    write(&dir, "default.json", &dual_auth());
    write(&dir, "not an id.json", &dual_auth());
    write(&dir, "README.txt", "not a policy");
    let dir_arg = dir.to_str().expect("utf-8 path");
    let base = ["--etcd", url.as_str(), "--prefix", PREFIX];

    // A dry run reads etcd, prints the plan, writes nothing.
    let out = import(&[&base[..], &["--dry-run", dir_arg]].concat()).await;
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    for key in [FIRST, SECOND, "default"] {
        assert!(
            text.contains(&format!("would import {PREFIX}{key} from")),
            "{text}"
        );
    }
    assert!(
        text.contains("not an id.json: the name is no instance id"),
        "{text}"
    );
    assert!(!text.contains("README"), "{text}");
    assert!(
        text.contains("3 would import, 0 would keep, 1 skipped; etcd revision"),
        "{text}"
    );
    assert!(text.contains("dry run: nothing written"), "{text}");
    assert!(read_prefix(&mut client, PREFIX).await.0.is_empty());

    // The import: every document under its canonical key, the revision etcd reports.
    let out = import(&[&base[..], &[dir_arg]].concat()).await;
    let text = stdout(&out);
    println!("{text}");
    assert!(out.status.success(), "{text}{}", stderr(&out));
    let (kvs, revision) = read_prefix(&mut client, PREFIX).await;
    let keys: Vec<&str> = kvs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            format!("{PREFIX}{FIRST}"),
            format!("{PREFIX}{SECOND}"),
            format!("{PREFIX}default")
        ]
    );
    assert_eq!(policy_types(&kvs[0].1), ["keyCreateImportAccess"]);
    assert_eq!(policy_types(&kvs[1].1), ["dualAuthDelete"]);
    assert!(
        text.contains(&format!(
            "3 imported, 0 kept, 1 skipped; etcd revision {revision}"
        )),
        "{text}"
    );

    // A policy changed since (through the API, say) survives a second run...
    let changed = dual_auth();
    client
        .put(format!("{PREFIX}{FIRST}"), changed.as_str(), None)
        .await
        .expect("change a policy");
    let out = import(&[&base[..], &[dir_arg]].concat()).await;
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(
        text.contains(&format!(
            "kept {PREFIX}{FIRST} (exists in etcd; --overwrite"
        )),
        "{text}"
    );
    assert!(text.contains("0 imported, 3 kept, 1 skipped"), "{text}");
    let (kvs, _) = read_prefix(&mut client, PREFIX).await;
    assert_eq!(policy_types(&kvs[0].1), ["dualAuthDelete"]);

    // ...and --overwrite puts the directory's document back.
    let out = import(&[&base[..], &["--overwrite", dir_arg]].concat()).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("3 imported, 0 kept"),
        "{}",
        stdout(&out)
    );
    let (kvs, _) = read_prefix(&mut client, PREFIX).await;
    assert_eq!(policy_types(&kvs[0].1), ["keyCreateImportAccess"]);

    // The settings may come from a config file's [policies.etcd].
    let config = dir.join("import.toml");
    std::fs::write(
        &config,
        format!("[policies.etcd]\nendpoints = [\"{url}\"]\nprefix = \"{PREFIX}\"\n"),
    )
    .expect("write the config");
    let out = import(&[
        "--config",
        config.to_str().expect("utf-8"),
        "--dry-run",
        dir_arg,
    ])
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("0 would import, 3 would keep"),
        "{}",
        stdout(&out)
    );

    // A gateway on the prefix enforces what was imported.
    let upstream = Recorder::start().await;
    let gw = TestGateway::start(&format!(
        "[upstream]\nurl = \"{}\"\n[policies]\napi = \"own\"\n[policies.etcd]\nendpoints = [\"{url}\"]\nprefix = \"{PREFIX}\"\n",
        upstream.url()
    ))
    .await;
    let res = gw
        .request("POST", "/api/v2/keys")
        .header("bluemix-instance", FIRST)
        .json(&json!({
            "metadata": {"collectionType": "application/vnd.ibm.kms.key+json", "collectionTotal": 1},
            "resources": [{"type": "application/vnd.ibm.kms.key+json", "name": "std", "extractable": true}],
        }))
        .send()
        .await;
    assert_rejected(&res, 409, "KEY_CREATE_IMPORT_ACCESS_ERR");
    assert_eq!(upstream.count(), 0);

    // One invalid file: exit 2, the file named, nothing written.
    let bad = policies_dir("bad");
    write(&bad, &format!("{FIRST}.json"), &no_standard_keys());
    write(&bad, &format!("{SECOND}.json"), "{\"metadata\": ");
    let other_prefix = "/import/other/";
    let out = import(&[
        "--etcd",
        url.as_str(),
        "--prefix",
        other_prefix,
        bad.to_str().expect("utf-8"),
    ])
    .await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("{SECOND}.json")), "{err}");
    assert!(err.contains("nothing was written"), "{err}");
    assert!(read_prefix(&mut client, other_prefix).await.0.is_empty());

    // etcd unreachable: exit 1, saying so.
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let out = import(&["--etcd", nowhere.as_str(), dir_arg]).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("kmsgate policies import-dir: etcd:"), "{err}");

    // No endpoints at all: a settings error naming the key, exit 2.
    let out = import(&[dir_arg]).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("policies.etcd.endpoints"), "{err}");
}
