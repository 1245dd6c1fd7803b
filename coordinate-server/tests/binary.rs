//! The real `coordinate-server` binary: flags, a kill -9 in the middle of a
//! rebalance, and a clean exit on SIGTERM.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{FakeNode, PATIENCE, node_info, settled};
use coordinate_server::state::view::ClusterView;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

struct Process {
    child: Child,
    nodes: SocketAddr,
    http: SocketAddr,
}

impl Process {
    /// Starts the binary on port 0 and reads the addresses it bound from its
    /// "ready" log line.
    async fn start(data_dir: &Path) -> Process {
        let mut child = Command::new(env!("CARGO_BIN_EXE_coordinate-server"))
            .args(["--port", "0", "--http-port", "0", "--data-dir"])
            .arg(data_dir)
            .env("KEYCAFE_CLUSTER_SECRET", common::SECRET)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("coordinate-server starts");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr piped")).lines();
        let field = |line: &str, name: &str| -> Option<String> {
            let rest = line.split(&format!("{name}=")).nth(1)?;
            Some(rest.split_whitespace().next()?.to_string())
        };
        let ready = async {
            while let Some(line) = lines.next_line().await.expect("readable log") {
                if line.contains("coordinate-server ready") {
                    let nodes = field(&line, "nodes").expect("nodes address");
                    let http = field(&line, "dashboard").expect("dashboard address");
                    let http = http
                        .trim_start_matches("http://")
                        .trim_end_matches('/')
                        .to_string();
                    return (nodes.parse().unwrap(), http.parse().unwrap());
                }
            }
            panic!("coordinate-server exited before it was ready");
        };
        let (nodes, http) = tokio::time::timeout(PATIENCE, ready)
            .await
            .expect("ready in time");
        // Keep draining the log so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Process { child, nodes, http }
    }

    async fn cluster(&self) -> ClusterView {
        let url = format!("http://{}/api/cluster", self.http);
        reqwest::get(url).await.unwrap().json().await.unwrap()
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("child is running");
        let status = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    async fn wait(mut self) -> std::process::ExitStatus {
        tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("exits in time")
            .unwrap()
    }
}

#[tokio::test]
async fn kill_9_mid_rebalance_then_restart_resumes_it() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = Process::start(dir.path()).await;
    let mut a = FakeNode::start(coordinator.nodes, node_info(1)).await;
    let b = FakeNode::start(coordinator.nodes, node_info(2)).await;
    a.wait_for("two nodes", |s| s.latest().is_some_and(|c| settled(c, 2)))
        .await;
    a.set_auto_done(false);
    b.set_auto_done(false);
    let c = FakeNode::start(coordinator.nodes, node_info(3)).await;
    let seen = a
        .wait_for("migrations to c", |s| {
            s.latest().is_some_and(|c| !c.migrations.is_empty())
        })
        .await;
    let before = seen.latest().unwrap().clone();

    coordinator.signal("-KILL");
    assert!(!coordinator.wait().await.success());
    a.wait_for("the connection to drop", |s| s.closed).await;
    drop((a, b, c));

    let coordinator = Process::start(dir.path()).await;
    let view = coordinator.cluster().await;
    assert!(
        view.epoch > before.epoch,
        "epoch {} after {}",
        view.epoch,
        before.epoch
    );
    assert_eq!(view.config.nodes, before.nodes);
    assert_eq!(view.config.slots, before.slots);
    assert_eq!(view.config.migrations, before.migrations);

    let mut nodes = Vec::new();
    for n in 1..=3 {
        nodes.push(FakeNode::start_with_epoch(coordinator.nodes, node_info(n), before.epoch).await);
    }
    nodes[2]
        .wait_for("a fair split of three", |s| {
            s.latest().is_some_and(|c| settled(c, 3))
        })
        .await;

    coordinator.signal("-TERM");
    assert!(
        coordinator.wait().await.success(),
        "SIGTERM is a clean exit"
    );
}

#[tokio::test]
async fn a_bad_config_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "port: 9800\nnode_timout_ms: 5\n").unwrap();
    let output = tokio::time::timeout(
        Duration::from_secs(10),
        Command::new(env!("CARGO_BIN_EXE_coordinate-server"))
            .arg(&path)
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bad.yaml") && stderr.contains("node_timout_ms"),
        "{stderr}"
    );
}

#[tokio::test]
async fn without_a_cluster_secret_it_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    for secret in [None, Some("short")] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_coordinate-server"));
        command
            .args(["--port", "0", "--http-port", "0", "--data-dir"])
            .arg(dir.path())
            .env_remove("KEYCAFE_CLUSTER_SECRET");
        if let Some(secret) = secret {
            command.env("KEYCAFE_CLUSTER_SECRET", secret);
        }
        let output = tokio::time::timeout(Duration::from_secs(10), command.output())
            .await
            .unwrap()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("secret"), "{stderr}");
    }
}
