//! # cluster-tests
//!
//! A harness that runs a real Keycafe cluster for tests: the
//! `coordinate-server` and `keycafe-server` binaries as child processes on
//! free loopback ports, each stopped (SIGKILL) when its handle is dropped.
//!
//! `cargo test --workspace` builds every binary of the workspace into the
//! directory above the test executable, which is where [`binary`] looks; run
//! alone, the harness builds them first.
//!
//! # Layout
//!
//! Everything is in this file: [`Coordinator`], [`Node`], and helpers to
//! read the cluster's state through `/api/cluster` and CLUSTER commands.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, bail};
use keycafe_core::cluster::ClusterConfig;
use tokio::process::{Child, Command};

/// Path of a workspace binary, built once if it is not there yet.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target directory")
        .to_path_buf();
    let path = dir.join(name);
    if !path.exists() {
        BUILT.get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = std::process::Command::new(cargo)
                .args([
                    "build",
                    "-p",
                    "keycafe-server",
                    "-p",
                    "coordinate-server",
                    "--bins",
                ])
                .status()
                .expect("cargo runs");
            assert!(status.success(), "building the cluster binaries failed");
        });
    }
    assert!(
        path.exists(),
        "{} not found; run `cargo build --workspace --bins`",
        path.display()
    );
    path
}

/// A free loopback port (bound, then released for the child to take).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.local_addr().expect("local addr").port()
}

fn logs_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("keycafe-cluster-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create log dir");
    dir
}

fn spawn(program: &str, args: &[String], log_name: &str) -> anyhow::Result<Child> {
    let log = std::fs::File::create(logs_dir().join(log_name))?;
    Command::new(binary(program))
        .args(args)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {program}"))
}

async fn wait_for_port(port: u16, what: &str) -> anyhow::Result<()> {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    bail!(
        "{what} did not listen on port {port} within 5 s (logs in {})",
        logs_dir().display()
    )
}

/// A running coordinate-server.
pub struct Coordinator {
    pub port: u16,
    pub http_port: u16,
    pub data_dir: PathBuf,
    child: Child,
}

impl Coordinator {
    pub async fn start(data_dir: PathBuf) -> anyhow::Result<Coordinator> {
        Coordinator::start_on(free_port(), free_port(), data_dir).await
    }

    /// Starts on given ports (to restart a coordinator where it was).
    pub async fn start_on(
        port: u16,
        http_port: u16,
        data_dir: PathBuf,
    ) -> anyhow::Result<Coordinator> {
        let args = vec![
            "--port".into(),
            port.to_string(),
            "--http-port".into(),
            http_port.to_string(),
            "--data-dir".into(),
            data_dir.display().to_string(),
        ];
        let child = spawn(
            "coordinate-server",
            &args,
            &format!("coordinator-{port}.log"),
        )?;
        wait_for_port(port, "coordinate-server").await?;
        wait_for_port(http_port, "coordinate-server dashboard").await?;
        Ok(Coordinator {
            port,
            http_port,
            data_dir,
            child,
        })
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// SIGKILL: no chance to clean up.
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
        let _ = self.child.wait().await;
    }

    /// The cluster configuration from `/api/cluster`.
    pub async fn config(&self) -> anyhow::Result<ClusterConfig> {
        let json = self.api().await?;
        let config = json.get("config").cloned().unwrap_or(json);
        serde_json::from_value(config).context("config in /api/cluster")
    }

    /// The whole `/api/cluster` document.
    pub async fn api(&self) -> anyhow::Result<serde_json::Value> {
        let body = http_get(self.http_port, "/api/cluster").await?;
        serde_json::from_str(&body).context("/api/cluster is JSON")
    }

    /// Waits until the configuration satisfies `ready`.
    pub async fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        mut ready: impl FnMut(&ClusterConfig) -> bool,
    ) -> anyhow::Result<ClusterConfig> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Ok(config) = self.config().await
                && ready(&config)
            {
                return Ok(config);
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "timed out after {timeout:?} waiting until {what}: {:?}",
                    self.config().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A minimal HTTP/1.0 GET, enough for the dashboard's JSON API.
pub async fn http_get(port: u16, path: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await?;
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut response)).await??;
    let (head, body) = response.split_once("\r\n\r\n").context("HTTP response")?;
    anyhow::ensure!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    Ok(body.to_string())
}

/// A running keycafe-server in cluster mode.
pub struct Node {
    pub port: u16,
    pub bus_port: u16,
    child: Child,
}

impl Node {
    pub async fn start(coordinator: &str) -> anyhow::Result<Node> {
        let (port, bus_port) = (free_port(), free_port());
        let args = vec![
            "--port".into(),
            port.to_string(),
            "--cluster-port".into(),
            bus_port.to_string(),
            "--coordinator".into(),
            coordinator.to_string(),
        ];
        let child = spawn("keycafe-server", &args, &format!("node-{port}.log"))?;
        wait_for_port(port, "keycafe-server").await?;
        Ok(Node {
            port,
            bus_port,
            child,
        })
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Waits (bounded) for the process to exit on its own.
    pub async fn wait_exit(
        &mut self,
        timeout: Duration,
    ) -> anyhow::Result<std::process::ExitStatus> {
        Ok(tokio::time::timeout(timeout, self.child.wait()).await??)
    }
}

/// Number of slots each node owns, by client address.
pub fn slots_per_node(config: &ClusterConfig) -> Vec<(String, usize)> {
    config
        .nodes
        .iter()
        .map(|node| {
            let owned = config
                .slots
                .iter()
                .filter(|r| r.owner == node.id)
                .map(|r| usize::from(r.end - r.start) + 1)
                .sum();
            (node.client_addr.clone(), owned)
        })
        .collect()
}

/// True when every slot is owned, nothing is moving, there are `nodes`
/// members and each owns ⌊16384/N⌋ or ⌈16384/N⌉ slots.
pub fn is_fair(config: &ClusterConfig, nodes: usize) -> bool {
    let counts = slots_per_node(config);
    let total: usize = counts.iter().map(|(_, n)| n).sum();
    let (low, high) = (16384 / nodes, 16384usize.div_ceil(nodes));
    config.nodes.len() == nodes
        && config.migrations.is_empty()
        && total == 16384
        && counts.iter().all(|(_, n)| (low..=high).contains(n))
}
