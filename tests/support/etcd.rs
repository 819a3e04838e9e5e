//! A real etcd (Debian's `etcd-server`, `/usr/bin/etcd`) on loopback ephemeral ports, one
//! data directory per member, for the fleet tests. Without the binary a test fails and says
//! how to install it; it never passes silently.

use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ETCD: &str = "/usr/bin/etcd";

/// A port nothing listens on now (for an etcd member, or an endpoint that refuses).
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// One etcd member (or a single-member cluster) on loopback. Killed on drop.
pub struct Etcd {
    name: String,
    client_port: u16,
    peer_port: u16,
    data_dir: PathBuf,
    cluster: String,
    child: Option<Child>,
}

impl Etcd {
    /// The binary, or a failure that says how to get it.
    fn binary() -> &'static str {
        assert!(
            std::path::Path::new(ETCD).exists(),
            "the fleet tests need a real etcd at {ETCD}: install Debian's etcd-server \
             (apt-get install etcd-server; .ci/run does it)"
        );
        ETCD
    }

    /// `n` members forming one cluster (not started yet).
    pub fn cluster(test: &str, n: usize) -> Vec<Etcd> {
        let members: Vec<(String, u16, u16)> = (0..n)
            .map(|i| (format!("{test}-{i}"), free_port(), free_port()))
            .collect();
        let cluster = members
            .iter()
            .map(|(name, _, peer)| format!("{name}=http://127.0.0.1:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        members
            .into_iter()
            .map(|(name, client_port, peer_port)| {
                let data_dir = std::env::temp_dir()
                    .join(format!("kmsgate-fleet-{name}-{}", std::process::id()));
                let _ = std::fs::remove_dir_all(&data_dir);
                Etcd {
                    name,
                    client_port,
                    peer_port,
                    data_dir,
                    cluster: cluster.clone(),
                    child: None,
                }
            })
            .collect()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    pub fn start(&mut self) {
        let client = self.url();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let child = Command::new(Etcd::binary())
            .args(["--name", &self.name])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &self.cluster])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", &self.cluster])
            .args(["--log-level", "error", "--logger", "zap"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {ETCD}: {e}"));
        self.child = Some(child);
    }

    /// Stops the member (SIGKILL: a crash, not a goodbye).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// A client on `endpoints`, once the cluster answers (within 20 s).
pub async fn etcd_client(endpoints: &[String]) -> etcd_client::Client {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut client) = etcd_client::Client::connect(endpoints, None).await
            && tokio::time::timeout(Duration::from_secs(1), client.get("probe", None))
                .await
                .is_ok_and(|r| r.is_ok())
        {
            return client;
        }
        assert!(
            Instant::now() < deadline,
            "etcd at {endpoints:?} did not come up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
