//! docs/quickstart.md, run as a reader runs it: its shell blocks in order, in one bash, against
//! the quickstart configuration (`config/kmsgate.toml`) on ephemeral ports, and each block's
//! output compared with the output the page shows after it. Text outputs must match exactly;
//! JSON outputs must match once ids, dates and key material (which differ on every run) are
//! put aside. The blocks that start a server (`cargo run ... --config`, `dev-kms`) are the only
//! ones not run: the test runs the gateway itself.
//!
//! The page's ports (8080, 8081, 9090) become the test gateway's, `cargo run --release -q --`
//! the built binary, and `config/quickstart-policies` a scratch directory, so nothing is written
//! into the repository. The test also checks that every file the page writes is in `$WORK`
//! (a `mktemp -d`), never in the repository: the files hold ciphertext.
//!
//! It needs bash, curl, jq and openssl (`.ci/run` installs them when missing).

mod support;

use std::process::Command;

use serde_json::Value;
use support::{TestGateway, sdk};

/// A fenced block of the page: its language and text.
struct Block {
    lang: String,
    text: String,
}

fn blocks(page: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut lines = page.lines();
    while let Some(line) = lines.next() {
        let Some(lang) = line.strip_prefix("```") else {
            continue;
        };
        let mut text = String::new();
        for line in lines.by_ref() {
            if line.starts_with("```") {
                break;
            }
            text.push_str(line);
            text.push('\n');
        }
        out.push(Block {
            lang: lang.to_owned(),
            text,
        });
    }
    out
}

fn starts_a_server(sh: &str) -> bool {
    sh.contains("--config config/kmsgate.toml\n") || sh.contains(" dev-kms ")
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

fn is_date(s: &str) -> bool {
    s.len() == 20 && s.ends_with('Z') && s.as_bytes()[4] == b'-' && s.as_bytes()[10] == b'T'
}

/// The JSON with what differs on every run put aside: ids, dates, key material.
fn normalized(value: &Value, key: &str) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), normalized(v, k)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| normalized(v, key)).collect()),
        Value::String(s) if key == "ciphertext" || key == "plaintext" => {
            Value::String(if s.is_empty() { "" } else { "<base64>" }.to_owned())
        }
        Value::String(s) if is_date(s) => Value::String("<date>".to_owned()),
        Value::String(s) => Value::String(
            s.split(':')
                .map(|part| if is_uuid(part) { "<uuid>" } else { part })
                .collect::<Vec<_>>()
                .join(":"),
        ),
        other => other.clone(),
    }
}

/// Every file a shell block writes (`> F`, `tee F`, `-o F`) is under `$WORK` or /dev/null.
fn assert_writes_only_to_work(sh: &str) {
    let words: Vec<&str> = sh.split_whitespace().collect();
    for pair in words.windows(2) {
        if [">", ">>", "tee", "-o"].contains(&pair[0]) {
            let target = pair[1].trim_matches('"');
            assert!(
                target.starts_with("$WORK/") || target == "/dev/null",
                "docs/quickstart.md writes {target} outside $WORK:\n{sh}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quickstart_page_prints_what_it_shows() {
    let page = std::fs::read_to_string(sdk::repo().join("docs/quickstart.md"))
        .expect("read docs/quickstart.md");
    let policies = sdk::scratch("quickstart-doc-policies");
    let gw = TestGateway::start_with(sdk::quickstart(&policies)).await;
    let private = gw.addrs.private.expect("a private listener");
    let adapt = |sh: &str| {
        sh.replace("127.0.0.1:8080", &gw.addrs.public.to_string())
            .replace("127.0.0.1:8081", &private.to_string())
            .replace("127.0.0.1:9090", &gw.addrs.admin.to_string())
            .replace("cargo run --release -q --", env!("CARGO_BIN_EXE_kmsgate"))
            .replace(
                "config/quickstart-policies",
                &policies.display().to_string(),
            )
    };

    // The shell blocks that run, each with the output block shown after it (if any).
    let blocks = blocks(&page);
    let mut steps: Vec<(String, Option<&Block>)> = Vec::new();
    for (i, block) in blocks.iter().enumerate() {
        if block.lang != "sh" || starts_a_server(&block.text) {
            continue;
        }
        assert_writes_only_to_work(&block.text);
        let shown = blocks
            .get(i + 1)
            .filter(|b| b.lang == "json" || b.lang == "text");
        steps.push((block.text.clone(), shown));
    }
    assert!(steps.len() >= 10, "{} shell blocks", steps.len());
    let mut script = String::new();
    for (i, (sh, _)) in steps.iter().enumerate() {
        script.push_str(&format!("echo '@@step {i}@@'\n{}\n", adapt(sh)));
    }
    script.push_str("rm -r \"$WORK\"\n");

    let mut bash = Command::new("bash");
    bash.arg("-c").arg(script).current_dir(sdk::repo());
    let out = tokio::task::spawn_blocking(move || bash.output())
        .await
        .expect("the shell panicked")
        .expect("run bash (with curl, jq and openssl)");
    gw.shutdown().await;
    let _ = std::fs::remove_dir_all(&policies);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.trim().is_empty(),
        "the page's commands said:\n{stderr}"
    );

    let outputs: Vec<&str> = stdout.split("@@step ").skip(1).collect();
    assert_eq!(outputs.len(), steps.len(), "{stdout}");
    let mut compared = 0;
    for (i, ((sh, shown), output)) in steps.iter().zip(&outputs).enumerate() {
        // curl -D prints the headers' CRLF; a terminal shows the lines the page shows.
        let output = output
            .split_once("@@\n")
            .map_or("", |(_, rest)| rest)
            .replace('\r', "");
        let output = output.trim_end();
        let Some(shown) = shown else {
            continue;
        };
        compared += 1;
        if shown.lang == "text" {
            assert_eq!(
                output,
                shown.text.trim_end(),
                "step {i} prints otherwise than the page shows:\n{sh}"
            );
            continue;
        }
        // JSON: from its first brace (a status line may come first, which the page says).
        let json = output.find('{').map_or("", |at| &output[at..]);
        let got: Value = serde_json::from_str(json)
            .unwrap_or_else(|e| panic!("step {i} printed no JSON ({e}):\n{output}\n{sh}"));
        let want: Value = serde_json::from_str(&shown.text)
            .unwrap_or_else(|e| panic!("the page's JSON after step {i}: {e}"));
        assert_eq!(
            normalized(&got, ""),
            normalized(&want, ""),
            "step {i} prints otherwise than the page shows:\n{sh}\ngot:\n{output}"
        );
    }
    assert!(compared >= 9, "{compared} outputs compared");
}
