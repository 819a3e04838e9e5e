//! Many replicas, one policy truth (issue 15): three in-process gateway replicas share their
//! instance policies through a REAL etcd (Debian's `etcd-server`, `/usr/bin/etcd`), started
//! by each test on loopback ephemeral ports with its own data directory.
//!
//! Without etcd the tests fail with a message saying how to install it; they never pass
//! silently. Every refusal asserts status, code, envelope, and that the upstream never saw it.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::etcd::{Etcd, etcd_client};
use support::{Recorder, TestGateway, TestResponse, assert_rejected};

const PREFIX: &str = "/fleet/policies/";

// === Gateway replicas ===

fn replica_toml(upstream: &Recorder, endpoints: &[String]) -> String {
    let endpoints = endpoints
        .iter()
        .map(|e| format!("{e:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"
[upstream]
url = "{}"
[policies]
api = "own"
[policies.etcd]
endpoints = [{endpoints}]
prefix = "{PREFIX}"
connect_timeout = "1s"
request_timeout = "1s"
heartbeat = "200ms"
backoff_max = "400ms"
"#,
        upstream.url()
    )
}

async fn replicas(upstream: &Recorder, endpoints: &[String]) -> Vec<TestGateway> {
    let toml = replica_toml(upstream, endpoints);
    let mut out = Vec::new();
    for _ in 0..3 {
        out.push(TestGateway::start(&toml).await);
    }
    for gw in &out {
        wait_until(Duration::from_secs(10), "replica ready", || async {
            gw.admin("/readyz").await.status == 200
        })
        .await;
    }
    out
}

async fn wait_until<F, Fut>(limit: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn revision(gw: &TestGateway) -> i64 {
    let res = gw.admin("/policy/revision").await;
    assert_eq!(res.status, 200, "/policy/revision: {}", res.text());
    res.json()["revision"].as_i64().expect("revision")
}

// === Key Protect requests ===

fn instance(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

fn doc(resources: Value) -> Value {
    let total = resources.as_array().map_or(0, Vec::len);
    json!({
        "metadata": {"collectionType": "application/vnd.ibm.kms.policy+json", "collectionTotal": total},
        "resources": resources,
    })
}

fn no_standard_keys() -> Value {
    doc(json!([{"policy_type": "keyCreateImportAccess",
        "policy_data": {"enabled": true, "attributes": {"create_standard_key": false}}}]))
}

fn dual_auth() -> Value {
    doc(json!([{"policy_type": "dualAuthDelete", "policy_data": {"enabled": true}}]))
}

async fn put_policy(gw: &TestGateway, inst: &str, body: &Value) -> TestResponse {
    gw.request("PUT", "/api/v2/instance/policies")
        .header("bluemix-instance", inst)
        .json(body)
        .send()
        .await
}

async fn get_policies(gw: &TestGateway, inst: &str) -> Value {
    let res = gw
        .request("GET", "/api/v2/instance/policies")
        .header("bluemix-instance", inst)
        .send()
        .await;
    assert_eq!(res.status, 200, "GET policies: {}", res.text());
    res.json()
}

fn has_policy(document: &Value, policy_type: &str) -> bool {
    document["resources"]
        .as_array()
        .is_some_and(|r| r.iter().any(|p| p["policy_type"] == policy_type))
}

async fn create_standard_key(gw: &TestGateway, inst: &str) -> TestResponse {
    gw.request("POST", "/api/v2/keys")
        .header("bluemix-instance", inst)
        .json(&json!({
            "metadata": {"collectionType": "application/vnd.ibm.kms.key+json", "collectionTotal": 1},
            "resources": [{"type": "application/vnd.ibm.kms.key+json", "name": "std", "extractable": true}],
        }))
        .send()
        .await
}

/// A standard-key create is refused with 409 `KEY_CREATE_IMPORT_ACCESS_ERR` and never reaches
/// the upstream.
async fn assert_standard_key_refused(gw: &TestGateway, upstream: &Recorder, inst: &str) {
    let before = upstream.count();
    let res = create_standard_key(gw, inst).await;
    assert_rejected(&res, 409, "KEY_CREATE_IMPORT_ACCESS_ERR");
    assert_eq!(
        upstream.count(),
        before,
        "the upstream saw a refused request"
    );
}

/// etcd is back: every replica's watch resumes (no replica restarted), a PUT of `inst`'s
/// policy through replica `via` succeeds, every replica enforces it within 1 s (printed), and
/// all end on one revision.
async fn converges_after_return(
    gws: &[TestGateway],
    upstream: &Recorder,
    via: usize,
    inst: &str,
    what: &str,
) {
    for gw in gws {
        wait_until(Duration::from_secs(10), "watch re-established", || async {
            gw.metric("kmsgate_policy_etcd_connected", &[]).await == 1.0
        })
        .await;
    }
    let put_at = Instant::now();
    let res = put_policy(&gws[via], inst, &no_standard_keys()).await;
    assert_eq!(res.status, 204, "PUT {what}: {}", res.text());
    for gw in gws {
        wait_until(Duration::from_secs(1), what, || async {
            has_policy(&get_policies(gw, inst).await, "keyCreateImportAccess")
        })
        .await;
        assert_standard_key_refused(gw, upstream, inst).await;
    }
    println!("{what}: converged {:?} after the PUT", put_at.elapsed());
    wait_until(Duration::from_secs(3), "same revision", || async {
        let r = revision(&gws[0]).await;
        revision(&gws[1]).await == r && revision(&gws[2]).await == r
    })
    .await;
}

// === The tests ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_through_one_replica_is_enforced_by_all_within_a_second() {
    let mut etcd = Etcd::cluster("converge", 1);
    etcd[0].start();
    let endpoints = vec![etcd[0].url()];
    etcd_client(&endpoints).await;
    let upstream = Recorder::start().await;
    let gws = replicas(&upstream, &endpoints).await;
    let inst = instance(1);

    // Before: a standard key is created (forwarded).
    let res = create_standard_key(&gws[1], &inst).await;
    assert_eq!(res.status, 200, "{}", res.text());

    let mut times = Vec::new();
    for round in 0..3 {
        let inst = instance(10 + round);
        let put_at = Instant::now();
        let res = put_policy(&gws[0], &inst, &no_standard_keys()).await;
        assert_eq!(res.status, 204, "PUT: {}", res.text());
        let answered = put_at.elapsed();
        // The replica that took the PUT enforces it when it answers (read-your-writes).
        assert!(has_policy(
            &get_policies(&gws[0], &inst).await,
            "keyCreateImportAccess"
        ));
        for (i, gw) in gws.iter().enumerate().skip(1) {
            let seen = wait_until(Duration::from_secs(1), "convergence", || async {
                has_policy(&get_policies(gw, &inst).await, "keyCreateImportAccess")
            })
            .await;
            let since_put = put_at.elapsed();
            times.push(since_put);
            println!(
                "round {round}: replica {} enforces the PUT {:?} after it was sent ({answered:?} to answer it; {seen:?} after)",
                i + 1,
                since_put
            );
            assert!(
                since_put < Duration::from_secs(1),
                "replica {} took {since_put:?}",
                i + 1
            );
            assert_standard_key_refused(gw, &upstream, &inst).await;
        }
    }
    times.sort();
    println!(
        "convergence after a PUT (replicas 2 and 3, {} samples): min {:?}, median {:?}, max {:?}",
        times.len(),
        times[0],
        times[times.len() / 2],
        times[times.len() - 1]
    );
    // Every replica reports the same revision (the last write's, or a later progress report).
    wait_until(
        Duration::from_secs(3),
        "same revision on every replica",
        || async {
            let r0 = revision(&gws[0]).await;
            r0 > 0 && revision(&gws[1]).await == r0 && revision(&gws[2]).await == r0
        },
    )
    .await;
    let r = revision(&gws[0]).await;
    for gw in &gws {
        assert_eq!(gw.metric("kmsgate_policy_revision", &[]).await, r as f64);
    }
    println!("all three replicas report revision {r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_puts_of_different_policy_types_through_two_replicas_both_survive() {
    let mut etcd = Etcd::cluster("concurrent", 1);
    etcd[0].start();
    let endpoints = vec![etcd[0].url()];
    etcd_client(&endpoints).await;
    let upstream = Recorder::start().await;
    let gws = replicas(&upstream, &endpoints).await;
    for round in 0..8 {
        let inst = instance(100 + round);
        let (first, second) = (no_standard_keys(), dual_auth());
        let (a, b) = tokio::join!(
            put_policy(&gws[0], &inst, &first),
            put_policy(&gws[1], &inst, &second),
        );
        assert_eq!(a.status, 204, "{}", a.text());
        assert_eq!(b.status, 204, "{}", b.text());
        for gw in &gws {
            wait_until(
                Duration::from_secs(2),
                "both policies on every replica",
                || async {
                    let d = get_policies(gw, &inst).await;
                    has_policy(&d, "keyCreateImportAccess") && has_policy(&d, "dualAuthDelete")
                },
            )
            .await;
        }
        assert_standard_key_refused(&gws[2], &upstream, &inst).await;
    }
    let conflicts: f64 = {
        let mut sum = 0.0;
        for gw in &gws {
            sum += gw
                .metric(
                    "kmsgate_policy_etcd_writes_total",
                    &[("result", "conflict")],
                )
                .await;
        }
        sum
    };
    println!("8 rounds of two concurrent PUTs: {conflicts} write conflicts retried");
    assert_eq!(
        upstream.count(),
        0,
        "own mode: the upstream never sees policy PUTs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_document_in_etcd_keeps_the_previous_policies_and_is_counted() {
    let mut etcd = Etcd::cluster("corrupt", 1);
    etcd[0].start();
    let endpoints = vec![etcd[0].url()];
    let mut client = etcd_client(&endpoints).await;
    let upstream = Recorder::start().await;
    let gws = replicas(&upstream, &endpoints).await;
    let inst = instance(7);
    assert_eq!(
        put_policy(&gws[0], &inst, &no_standard_keys()).await.status,
        204
    );
    for gw in &gws {
        wait_until(Duration::from_secs(1), "policy applied", || async {
            has_policy(&get_policies(gw, &inst).await, "keyCreateImportAccess")
        })
        .await;
    }
    let errors_before: Vec<f64> = {
        let mut v = Vec::new();
        for gw in &gws {
            v.push(
                gw.metric("kmsgate_policy_reloads_total", &[("result", "error")])
                    .await,
            );
        }
        v
    };
    let put = client
        .put(
            format!("{PREFIX}{inst}"),
            "{\"metadata\": {\"collectionType\": ",
            None,
        )
        .await
        .expect("write the corrupt document");
    let written = put.header().expect("header").revision();
    for (i, gw) in gws.iter().enumerate() {
        wait_until(
            Duration::from_secs(2),
            "the watch saw the corrupt write",
            || async { revision(gw).await >= written },
        )
        .await;
        assert_eq!(
            gw.metric("kmsgate_policy_etcd_invalid_documents_total", &[])
                .await,
            1.0,
            "replica {}",
            i + 1
        );
        assert_eq!(
            gw.metric("kmsgate_policy_reloads_total", &[("result", "error")])
                .await,
            errors_before[i] + 1.0
        );
        // The previous policies stay.
        assert!(has_policy(
            &get_policies(gw, &inst).await,
            "keyCreateImportAccess"
        ));
        assert_standard_key_refused(gw, &upstream, &inst).await;
    }
    // A PUT through the API heals the document (it starts from the kept policies).
    assert_eq!(put_policy(&gws[2], &inst, &dual_auth()).await.status, 204);
    for gw in &gws {
        wait_until(Duration::from_secs(1), "healed everywhere", || async {
            let d = get_policies(gw, &inst).await;
            has_policy(&d, "keyCreateImportAccess") && has_policy(&d, "dualAuthDelete")
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_down_keeps_enforcing_refuses_puts_with_503_and_converges_when_back() {
    let mut etcd = Etcd::cluster("outage", 1);
    etcd[0].start();
    let endpoints = vec![etcd[0].url()];
    etcd_client(&endpoints).await;
    let upstream = Recorder::start().await;
    let gws = replicas(&upstream, &endpoints).await;
    let inst = instance(3);
    assert_eq!(
        put_policy(&gws[0], &inst, &no_standard_keys()).await.status,
        204
    );
    for gw in &gws {
        wait_until(Duration::from_secs(1), "policy applied", || async {
            has_policy(&get_policies(gw, &inst).await, "keyCreateImportAccess")
        })
        .await;
    }

    etcd[0].kill();
    for gw in &gws {
        wait_until(Duration::from_secs(5), "watch noticed the loss", || async {
            gw.metric("kmsgate_policy_etcd_connected", &[]).await == 0.0
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for gw in &gws {
        // Still enforcing the last snapshot, still ready, and saying how stale it is.
        assert_standard_key_refused(gw, &upstream, &inst).await;
        assert_eq!(gw.admin("/readyz").await.status, 200);
        let stale = gw
            .metric("kmsgate_policy_etcd_last_contact_seconds", &[])
            .await;
        assert!(stale >= 1.0, "staleness {stale}");
        let status = gw.admin("/policy/revision").await.json();
        assert_eq!(status["connected"], false);
    }
    // A PUT while etcd is down: 503 with the gateway's code, nothing applied, upstream unseen.
    let other = instance(4);
    let before = upstream.count();
    let res = put_policy(&gws[1], &other, &no_standard_keys()).await;
    assert_rejected(&res, 503, "POLICY_STORE_UNAVAILABLE_ERR");
    assert_eq!(upstream.count(), before);
    for gw in &gws {
        assert!(!has_policy(
            &get_policies(gw, &other).await,
            "keyCreateImportAccess"
        ));
        assert!(
            gw.metric(
                "kmsgate_rejections_total",
                &[("code", "POLICY_STORE_UNAVAILABLE_ERR")]
            )
            .await
                >= 0.0
        );
    }
    assert_eq!(
        gws[1]
            .metric(
                "kmsgate_rejections_total",
                &[("code", "POLICY_STORE_UNAVAILABLE_ERR")]
            )
            .await,
        1.0
    );

    // etcd returns: the watches resume, a PUT goes through, everyone converges, no restart.
    etcd[0].start();
    etcd_client(&endpoints).await;
    converges_after_return(&gws, &upstream, 1, &other, "after etcd returned").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_member_cluster_survives_one_member_killed_and_recovers_from_all_killed() {
    let mut etcd = Etcd::cluster("trio", 3);
    for member in etcd.iter_mut() {
        member.start();
    }
    let endpoints: Vec<String> = etcd.iter().map(Etcd::url).collect();
    etcd_client(&endpoints).await;
    let upstream = Recorder::start().await;
    let gws = replicas(&upstream, &endpoints).await;
    let first = instance(30);
    assert_eq!(
        put_policy(&gws[0], &first, &no_standard_keys())
            .await
            .status,
        204
    );
    etcd[0].kill();
    // PUTs still succeed (retried by the client if one lands on the dead member) and every
    // replica converges.
    let inst = instance(31);
    let put_at = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let res = put_policy(&gws[1], &inst, &no_standard_keys()).await;
        if res.status == 204 {
            break;
        }
        assert_rejected(&res, 503, "POLICY_STORE_UNAVAILABLE_ERR");
        assert!(
            Instant::now() < deadline,
            "no PUT succeeded with two of three members"
        );
    }
    for gw in &gws {
        wait_until(
            Duration::from_secs(5),
            "converged with a member down",
            || async {
                has_policy(&get_policies(gw, &inst).await, "keyCreateImportAccess")
                    && has_policy(&get_policies(gw, &first).await, "keyCreateImportAccess")
            },
        )
        .await;
        assert_standard_key_refused(gw, &upstream, &inst).await;
    }
    println!(
        "one member down: converged {:?} after the first PUT attempt",
        put_at.elapsed()
    );

    // All members killed: every replica keeps enforcing the last snapshot and stays ready; a
    // PUT gets the documented 503 and is applied nowhere.
    etcd[1].kill();
    etcd[2].kill();
    for gw in &gws {
        wait_until(Duration::from_secs(5), "watch noticed the loss", || async {
            gw.metric("kmsgate_policy_etcd_connected", &[]).await == 0.0
        })
        .await;
        assert_standard_key_refused(gw, &upstream, &inst).await;
        assert_standard_key_refused(gw, &upstream, &first).await;
        assert_eq!(gw.admin("/readyz").await.status, 200);
    }
    let during = instance(32);
    let before = upstream.count();
    let res = put_policy(&gws[2], &during, &no_standard_keys()).await;
    assert_rejected(&res, 503, "POLICY_STORE_UNAVAILABLE_ERR");
    assert_eq!(
        upstream.count(),
        before,
        "own mode: the upstream never saw it"
    );
    for gw in &gws {
        assert!(!has_policy(
            &get_policies(gw, &during).await,
            "keyCreateImportAccess"
        ));
    }

    // The cluster returns (same data directories): the watches resume without a restart of
    // any replica, a PUT goes through, and everyone converges on one revision.
    for member in etcd.iter_mut() {
        member.start();
    }
    etcd_client(&endpoints).await;
    converges_after_return(&gws, &upstream, 2, &during, "all members back").await;
}
