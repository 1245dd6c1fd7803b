//! # cluster-tests
//!
//! A harness that runs a real Keycafe cluster for tests: the
//! `coordinate-server` and `keycafe-server` binaries as child processes on
//! free loopback ports (or, through a [`Host`], on an address of their own
//! in a network namespace), each stopped (SIGKILL) when its handle is
//! dropped.
//!
//! `cargo test --workspace` builds every binary of the workspace into the
//! directory above the test executable, which is where [`binary`] looks; run
//! alone (`cargo test -p cluster-tests`), the harness builds them if they
//! are missing, but does not rebuild stale ones: run `cargo build --bins`
//! first after changing a server.
//!
//! # Layout
//!
//! - this file: the processes ([`Coordinator`], [`Node`]: start with extra
//!   flags, kill -9, SIGSTOP/SIGCONT, restart in place), [`TempDir`],
//!   [`eventually`], and helpers to read the cluster's state through
//!   `/api/cluster`;
//! - [`resp`]: [`RespClient`], a RESP2 connection to one node for INFO,
//!   ROLE, replica reads, WAIT and the other commands a cluster client does
//!   not aim at a chosen node;
//! - [`replicated`]: a cluster of primaries and replicas, and comparing a
//!   replica's data with its primary's;
//! - [`netns`]: a laboratory of network namespaces (one address per
//!   process, a bridge between them) where a test drops a process's
//!   packets with iptables.

pub mod group;
pub mod history;
pub mod netns;
pub mod replicated;
pub mod resp;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, bail};
use keycafe_core::cluster::{ClusterConfig, NodeInfo};
use keycafe_core::{Frame, key_slot};
use tokio::process::{Child, Command};

pub use resp::RespClient;

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
    free_ports::<1>()[0]
}

/// `N` distinct free loopback ports: all bound at once, then released.
/// (Two calls of [`free_port`] in a row may return the same port.)
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<std::net::TcpListener> = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().expect("local addr").port())
}

/// How many times a process is started on fresh ports when it fails to
/// listen (another process may take a port between [`free_ports`] and the
/// child's bind).
const START_ATTEMPTS: usize = 3;

/// Where the processes' logs go (kept after the tests, for post-mortems).
pub fn logs_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("keycafe-cluster-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create log dir");
    dir
}

/// Where a process runs: the IP address it binds (and advertises), and
/// the command it is started under.
#[derive(Debug, Clone)]
pub struct Host {
    ip: String,
    /// Program and arguments put before the binary's path; empty: the
    /// binary is started directly.
    wrapper: Vec<String>,
    /// The address is this process's alone, so every port on it is free.
    dedicated: bool,
}

impl Default for Host {
    fn default() -> Self {
        Host::loopback()
    }
}

impl Host {
    /// 127.0.0.1, shared with everything else on the machine: processes
    /// take free ports.
    pub fn loopback() -> Host {
        Host {
            ip: "127.0.0.1".to_string(),
            wrapper: Vec::new(),
            dedicated: false,
        }
    }

    /// `::1`, IPv6's loopback, shared like [`Host::loopback`]: processes
    /// take free ports, and announce themselves as `::1:<port>`.
    pub fn ipv6_loopback() -> Host {
        Host {
            ip: "::1".to_string(),
            ..Host::loopback()
        }
    }

    /// An address that belongs to one process alone (in a network
    /// namespace of its own), which is started under `wrapper` (such as
    /// `ip netns exec <name>`, which execs the binary: the child's pid is
    /// the binary's, so signals reach it). Every port is free there, so
    /// processes take fixed ones.
    pub fn dedicated(ip: impl Into<String>, wrapper: Vec<String>) -> Host {
        Host {
            ip: ip.into(),
            wrapper,
            dedicated: true,
        }
    }

    pub fn ip(&self) -> &str {
        &self.ip
    }

    /// The address is this process's alone ([`Host::dedicated`]).
    pub fn is_dedicated(&self) -> bool {
        self.dedicated
    }

    /// `N` ports for one process: free loopback ports, or 7000, 17000, ...
    /// on a dedicated address (the second is the first + 10000, like the
    /// default bus port).
    fn ports<const N: usize>(&self) -> [u16; N] {
        if self.dedicated {
            std::array::from_fn(|i| 7000 + 10_000 * i as u16)
        } else {
            free_ports()
        }
    }

    /// `ip:port` as Keycafe writes it (IPv6 without brackets).
    pub fn addr(&self, port: u16) -> String {
        keycafe_core::addr::join(&self.ip, port)
    }

    /// The log file of the `process` listening on `port` here.
    fn log_name(&self, process: &str, port: u16) -> String {
        if self.dedicated {
            format!("{process}-{}-{port}.log", self.ip)
        } else {
            format!("{process}-{port}.log")
        }
    }
}

/// `--bind` for a process on `host`: its address, or every address with
/// its address announced.
fn bind_args(host: &Host, everywhere: bool) -> Vec<String> {
    let bind = if everywhere { "0.0.0.0" } else { &host.ip };
    let mut args = vec!["--bind".to_string(), bind.to_string()];
    if everywhere {
        args.extend(["--announce-host".to_string(), host.ip.clone()]);
    }
    args
}

/// The cluster secret every process started here shares: random, made once
/// per test process, and passed in the environment (not on the command
/// line, where `ps` would show it).
pub fn cluster_secret() -> &'static str {
    static SECRET: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SECRET.get_or_init(|| keycafe_core::auth::nonce().expect("random numbers"))
}

/// The dashboard admin token of every coordinator started here: random,
/// made once per test process, passed in the environment.
pub fn admin_token() -> &'static str {
    static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TOKEN.get_or_init(|| keycafe_core::auth::nonce().expect("random numbers"))
}

/// Starts a binary on `host` with its stderr appended to `log_name` (a
/// restarted process keeps writing to the same log).
fn spawn(host: &Host, program: &str, args: &[String], log_name: &str) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(logs_dir().join(log_name))?;
    let mut command = match host.wrapper.split_first() {
        None => Command::new(binary(program)),
        Some((wrapper, wrapper_args)) => {
            let mut command = Command::new(wrapper);
            command.args(wrapper_args).arg(binary(program));
            command
        }
    };
    command
        .args(args)
        .env("KEYCAFE_CLUSTER_SECRET", cluster_secret())
        // A coordinator bound beyond loopback (in a network namespace)
        // needs an admin token of its own choosing (protected mode).
        .env("KEYCAFE_ADMIN_TOKEN", admin_token())
        // CLUSTER_TEST_LOG=info,coordinate_server::driver=debug (say) for
        // more in the processes' logs.
        .env(
            "RUST_LOG",
            std::env::var("CLUSTER_TEST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {program}"))
}

/// Waits until `child` listens on `port` of `host`; fails at once if it
/// exits.
async fn wait_for_port(
    child: &mut Child,
    host: &Host,
    port: u16,
    what: &str,
) -> anyhow::Result<()> {
    let addr = host.addr(port);
    for _ in 0..200 {
        let connect = tokio::net::TcpStream::connect((host.ip.as_str(), port));
        // Bounded: a SYN to an address that does not answer yet may hang.
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(250), connect).await {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!(
                "{what} exited ({status}) instead of listening on {addr} (logs in {})",
                logs_dir().display()
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    bail!(
        "{what} did not listen on {addr} within 5 s (logs in {})",
        logs_dir().display()
    )
}

/// Sends `signal` (`STOP`, `CONT`, ...) to a child through `kill(1)`.
/// True when every thread of process `pid` is stopped (state `T` in
/// `/proc/<pid>/task/<tid>/stat`).
fn all_threads_stopped(pid: u32) -> anyhow::Result<bool> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).context("reading /proc")?;
    for task in tasks {
        let stat = std::fs::read_to_string(task?.path().join("stat")).unwrap_or_default();
        // The state follows the command name, which is in parentheses.
        let state = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next());
        if state != Some('T') {
            return Ok(false);
        }
    }
    Ok(true)
}

/// SIGSTOP to `child`; returns once every thread of it has stopped
/// (`kill` returns when the signal is sent, and a thread that was running
/// stops a moment later), so that whatever the test does next finds it
/// frozen.
fn pause(child: &Child) -> anyhow::Result<()> {
    signal(child, "STOP")?;
    let pid = child.id().context("the process has exited")?;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !all_threads_stopped(pid)? {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "process {pid} did not stop within 5 s of SIGSTOP"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

fn signal(child: &Child, signal: &str) -> anyhow::Result<()> {
    let pid = child.id().context("the process has exited")?;
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .context("running kill")?;
    anyhow::ensure!(status.success(), "kill -{signal} {pid} failed: {status}");
    Ok(())
}

/// Polls `check` every 50 ms until it answers true; fails after `timeout`
/// with the last error `check` returned, if any. Returns how long it took.
pub async fn eventually(
    what: &str,
    timeout: Duration,
    mut check: impl AsyncFnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<Duration> {
    let start = tokio::time::Instant::now();
    let mut last_error = None;
    loop {
        match check().await {
            Ok(true) => return Ok(start.elapsed()),
            Ok(false) => {}
            Err(err) => last_error = Some(err),
        }
        if start.elapsed() > timeout {
            match last_error {
                Some(err) => bail!("timed out after {timeout:?} waiting until {what}: {err:#}"),
                None => bail!("timed out after {timeout:?} waiting until {what}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A temporary directory, removed on drop.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new() -> TempDir {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("keycafe-coord-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }
}

impl Default for TempDir {
    fn default() -> Self {
        TempDir::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A TLS cluster member's files: its certificate (usable as a server and as
/// a client certificate), its key, and the CA that signed every member's.
#[derive(Debug, Clone)]
pub struct MemberTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

impl MemberTls {
    /// A member presenting `pki`'s server certificate (which also serves
    /// as its client certificate) and trusting its CA.
    pub fn from_pki(pki: &keycafe_core::tls::test_pki::TestPki) -> MemberTls {
        MemberTls {
            cert: pki.server_cert.clone(),
            key: pki.server_key.clone(),
            ca: pki.ca_cert.clone(),
        }
    }

    fn args(&self) -> Vec<String> {
        [
            ("--tls-cert-file", &self.cert),
            ("--tls-key-file", &self.key),
            ("--tls-ca-cert-file", &self.ca),
        ]
        .into_iter()
        .flat_map(|(flag, path)| [flag.to_string(), path.display().to_string()])
        .collect()
    }
}

/// Coordinator settings beyond the ports and the data directory.
#[derive(Debug, Clone, Default)]
pub struct CoordinatorOptions {
    /// Where it runs (loopback by default).
    pub host: Host,
    /// Mutual TLS on the port nodes connect to.
    pub tls: Option<MemberTls>,
    /// `--replicas`: replicas wanted per primary.
    pub replicas: Option<usize>,
    /// `--node-timeout-ms`.
    pub node_timeout_ms: Option<u64>,
    /// Listen on every address (`--bind 0.0.0.0`) and announce the host's
    /// own (`--announce-host`), as in a container.
    pub listen_everywhere: bool,
    /// A member of a coordinator group ([`group::CoordinatorGroup`]); a
    /// group of one without.
    pub group: Option<group::Membership>,
}

impl CoordinatorOptions {
    fn args(&self) -> Vec<String> {
        let mut args = bind_args(&self.host, self.listen_everywhere);
        match &self.group {
            Some(membership) => args.extend(membership.args()),
            // A group of one: any free port for the group's links.
            None => args.extend(["--group-port", "0"].map(String::from)),
        }
        if let Some(replicas) = self.replicas {
            args.extend(["--replicas".to_string(), replicas.to_string()]);
        }
        if let Some(ms) = self.node_timeout_ms {
            args.extend(["--node-timeout-ms".to_string(), ms.to_string()]);
        }
        if let Some(tls) = &self.tls {
            args.extend(tls.args());
        }
        args
    }
}

/// A running coordinate-server.
pub struct Coordinator {
    pub port: u16,
    pub http_port: u16,
    pub data_dir: PathBuf,
    host: Host,
    child: Child,
}

impl Coordinator {
    pub async fn start(data_dir: PathBuf) -> anyhow::Result<Coordinator> {
        Coordinator::start_with(data_dir, &CoordinatorOptions::default()).await
    }

    pub async fn start_with(
        data_dir: PathBuf,
        options: &CoordinatorOptions,
    ) -> anyhow::Result<Coordinator> {
        let mut attempt = 1;
        loop {
            let [port, http_port] = options.host.ports();
            match Coordinator::launch(port, http_port, data_dir.clone(), options).await {
                Err(err) if attempt < START_ATTEMPTS => {
                    eprintln!("coordinate-server did not start, retrying on other ports: {err:#}");
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    /// Starts on given ports (to restart a coordinator where it was).
    pub async fn start_on(
        port: u16,
        http_port: u16,
        data_dir: PathBuf,
    ) -> anyhow::Result<Coordinator> {
        Coordinator::launch(port, http_port, data_dir, &CoordinatorOptions::default()).await
    }

    /// [`Coordinator::start_on`] with settings.
    pub async fn start_on_with(
        port: u16,
        http_port: u16,
        data_dir: PathBuf,
        options: &CoordinatorOptions,
    ) -> anyhow::Result<Coordinator> {
        Coordinator::launch(port, http_port, data_dir, options).await
    }

    async fn launch(
        port: u16,
        http_port: u16,
        data_dir: PathBuf,
        options: &CoordinatorOptions,
    ) -> anyhow::Result<Coordinator> {
        let mut args = vec![
            "--port".into(),
            port.to_string(),
            "--http-port".into(),
            http_port.to_string(),
            "--data-dir".into(),
            data_dir.display().to_string(),
        ];
        args.extend(options.args());
        let host = &options.host;
        let log = host.log_name("coordinator", port);
        let mut child = spawn(host, "coordinate-server", &args, &log)?;
        wait_for_port(&mut child, host, port, "coordinate-server").await?;
        wait_for_port(&mut child, host, http_port, "coordinate-server dashboard").await?;
        Ok(Coordinator {
            port,
            http_port,
            data_dir,
            host: host.clone(),
            child,
        })
    }

    pub fn addr(&self) -> String {
        self.host.addr(self.port)
    }

    /// SIGKILL: no chance to clean up.
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
        let _ = self.child.wait().await;
    }

    /// SIGSTOP, once every thread has stopped ([`Node::pause`]).
    pub fn pause(&self) -> anyhow::Result<()> {
        pause(&self.child)
    }

    /// SIGCONT.
    pub fn resume(&self) -> anyhow::Result<()> {
        signal(&self.child, "CONT")
    }

    /// SIGTERM, then waits (bounded) until the process has exited.
    pub async fn terminate(
        mut self,
        timeout: Duration,
    ) -> anyhow::Result<std::process::ExitStatus> {
        signal(&self.child, "TERM")?;
        Ok(tokio::time::timeout(timeout, self.child.wait()).await??)
    }

    /// The cluster configuration from `/api/cluster`.
    pub async fn config(&self) -> anyhow::Result<ClusterConfig> {
        let json = self.api().await?;
        let config = json.get("config").cloned().unwrap_or(json);
        serde_json::from_value(config).context("config in /api/cluster")
    }

    /// The whole `/api/cluster` document.
    pub async fn api(&self) -> anyhow::Result<serde_json::Value> {
        let body = http_get_from(&self.host.ip, self.http_port, "/api/cluster").await?;
        serde_json::from_str(&body).context("/api/cluster is JSON")
    }

    /// The coordinator's view of the node at `client_addr` (an entry of
    /// `nodes` in `/api/cluster`: state, role, offset, link_up, synced...).
    pub async fn node_view(&self, client_addr: &str) -> anyhow::Result<serde_json::Value> {
        let api = self.api().await?;
        api["nodes"]
            .as_array()
            .and_then(|nodes| nodes.iter().find(|n| n["client_addr"] == client_addr))
            .cloned()
            .with_context(|| format!("/api/cluster has no node at {client_addr}: {api}"))
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
    http_get_from("127.0.0.1", port, path).await
}

/// [`http_get`] from a server at `ip`.
pub async fn http_get_from(ip: &str, port: u16, path: &str) -> anyhow::Result<String> {
    let (status, body) = http_request(ip, port, "GET", path, &[], "").await?;
    anyhow::ensure!(status == 200, "GET {path}: {status} {body}");
    Ok(body)
}

/// One HTTP/1.0 request with `headers` and `body`; the status and body of
/// the answer.
pub async fn http_request(
    ip: &str,
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> anyhow::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let timeout = Duration::from_secs(5);
    let mut stream = tokio::time::timeout(timeout, tokio::net::TcpStream::connect((ip, port)))
        .await
        .with_context(|| format!("connecting to {ip}:{port} timed out"))??;
    let mut request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {}\r\nContent-Length: {}\r\n",
        http_host(ip),
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    tokio::time::timeout(timeout, stream.read_to_string(&mut response)).await??;
    let (head, body) = response.split_once("\r\n\r\n").context("HTTP response")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("an HTTP status line: {head}"))?;
    Ok((status, body.to_string()))
}

/// `ip` as an HTTP `Host` header names it (IPv6 in brackets).
fn http_host(ip: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    }
}

/// Asks `client` for a key that another primary than the one it is
/// connected to owns in `config`, and checks the answer is `MOVED <slot>
/// <owner>` with the owner's announced address. Returns that owner.
pub async fn assert_redirected_to_owner(client: &mut RespClient, config: &ClusterConfig) -> String {
    let asked = client.addr().to_string();
    let (key, owner) = (0..)
        .map(|i| format!("elsewhere:{i}"))
        .find_map(|key| {
            let owner = owner_of(config, &key)?;
            (owner != asked).then_some((key, owner))
        })
        .expect("a key another primary owns");
    let reply = client.cmd(&["GET", &key]).await.expect("an answer to GET");
    let Frame::Error(moved) = reply else {
        panic!("GET {key} on {asked} is redirected, not answered {reply:?}");
    };
    let moved = String::from_utf8_lossy(&moved).into_owned();
    assert!(
        moved.starts_with("MOVED ") && moved.ends_with(&format!(" {owner}")),
        "GET {key} on {asked}: {moved}, not MOVED to {owner}"
    );
    owner
}

/// Node settings beyond the ports and the coordinator.
#[derive(Debug, Clone, Default)]
pub struct NodeOptions {
    /// Where it runs (loopback by default).
    pub host: Host,
    /// `--replica-of`: the client address of the primary to follow.
    pub replica_of: Option<String>,
    /// `--node-timeout-ms`.
    pub node_timeout_ms: Option<u64>,
    /// `--repl-backlog-size`, in bytes.
    pub repl_backlog_size: Option<usize>,
    /// A TLS cluster's member: the bus and the coordinator link speak
    /// mutual TLS (`--tls-cluster`), and so does the client port, which
    /// then requires client certificates from the same CA.
    pub tls: Option<MemberTls>,
    /// `--dir`: the data directory (identity, snapshots, append-only file),
    /// which makes a restarted node the same node with the same data.
    pub dir: Option<PathBuf>,
    /// `--appendonly yes --appendfsync <this>` (`always`, `everysec`, `no`).
    pub appendfsync: Option<&'static str>,
    /// Listen on every address (`--bind 0.0.0.0`) and announce the host's
    /// own (`--announce-host`), as in a container.
    pub listen_everywhere: bool,
    /// `--requirepass`: clients must AUTH with it.
    pub requirepass: Option<String>,
}

impl NodeOptions {
    fn args(&self) -> Vec<String> {
        let mut args = bind_args(&self.host, self.listen_everywhere);
        if let Some(password) = &self.requirepass {
            args.extend(["--requirepass".to_string(), password.clone()]);
        } else if self.host.dedicated {
            // Bound beyond loopback, but on a network of the test's own
            // (a lab of namespaces) that nothing else reaches: without a
            // password, protected mode is turned off.
            args.extend(["--protected-mode", "no"].map(String::from));
        }
        if let Some(primary) = &self.replica_of {
            args.extend(["--replica-of".to_string(), primary.clone()]);
        }
        if let Some(ms) = self.node_timeout_ms {
            args.extend(["--node-timeout-ms".to_string(), ms.to_string()]);
        }
        if let Some(bytes) = self.repl_backlog_size {
            args.extend(["--repl-backlog-size".to_string(), bytes.to_string()]);
        }
        if let Some(tls) = &self.tls {
            args.extend(tls.args());
            args.extend(["--tls-cluster".to_string(), "yes".to_string()]);
        }
        if let Some(dir) = &self.dir {
            args.extend(["--dir".to_string(), dir.display().to_string()]);
        }
        if let Some(fsync) = self.appendfsync {
            args.extend(["--appendonly", "yes", "--appendfsync", fsync].map(String::from));
        }
        args
    }
}

/// A keycafe-server in cluster mode. It can be killed and restarted in
/// place (same ports, same flags); the process is SIGKILLed when the handle
/// is dropped, stopped (SIGSTOP) or not.
pub struct Node {
    pub port: u16,
    pub bus_port: u16,
    host: Host,
    args: Vec<String>,
    child: Child,
}

impl Node {
    pub async fn start(coordinator: &str) -> anyhow::Result<Node> {
        Node::start_with(coordinator, &NodeOptions::default()).await
    }

    pub async fn start_with(coordinator: &str, options: &NodeOptions) -> anyhow::Result<Node> {
        let mut attempt = 1;
        loop {
            match Node::start_on_free_ports(coordinator, options).await {
                Err(err) if attempt < START_ATTEMPTS => {
                    eprintln!("keycafe-server did not start, retrying on other ports: {err:#}");
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn start_on_free_ports(coordinator: &str, options: &NodeOptions) -> anyhow::Result<Node> {
        let host = &options.host;
        let [port, bus_port] = host.ports();
        let mut args = vec![
            "--port".into(),
            port.to_string(),
            "--cluster-port".into(),
            bus_port.to_string(),
            "--coordinator".into(),
            coordinator.to_string(),
        ];
        if options.tls.is_some() {
            // The client port itself speaks TLS: the port the node announces.
            args.extend(["--tls-port".to_string(), port.to_string()]);
        }
        args.extend(options.args());
        let child = Node::launch(host, port, bus_port, &args).await?;
        Ok(Node {
            port,
            bus_port,
            host: host.clone(),
            args,
            child,
        })
    }

    async fn launch(
        host: &Host,
        port: u16,
        bus_port: u16,
        args: &[String],
    ) -> anyhow::Result<Child> {
        let log = host.log_name("node", port);
        let mut child = spawn(host, "keycafe-server", args, &log)?;
        wait_for_port(&mut child, host, port, "keycafe-server").await?;
        wait_for_port(&mut child, host, bus_port, "keycafe-server's cluster bus").await?;
        Ok(child)
    }

    /// The client address, as the node advertises it.
    pub fn addr(&self) -> String {
        self.host.addr(self.port)
    }

    pub fn host(&self) -> &Host {
        &self.host
    }

    /// A RESP connection to this node.
    pub async fn client(&self) -> anyhow::Result<RespClient> {
        RespClient::connect(&self.addr()).await
    }

    /// SIGKILL (kill -9), and waits until the process is gone.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill().await.context("killing the node")
    }

    /// Starts the binary again with the same ports and flags (after
    /// [`Node::kill`]); it comes up with a new id and empty memory, unless
    /// it has a data directory ([`NodeOptions::dir`]): then it is the same
    /// node, with what it had persisted.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.child = Node::launch(&self.host, self.port, self.bus_port, &self.args).await?;
        Ok(())
    }

    /// SIGSTOP: the process freezes, its sockets stay open. Returns once
    /// every thread of it has stopped (`kill` returns when the signal is
    /// sent, and a thread that was running stops a moment later), so that
    /// whatever the test sends next finds it frozen.
    pub fn pause(&self) -> anyhow::Result<()> {
        pause(&self.child)
    }

    /// SIGTERM: the clean stop an operator or a service manager asks for.
    pub fn terminate(&self) -> anyhow::Result<()> {
        signal(&self.child, "TERM")
    }

    /// SIGCONT after [`Node::pause`].
    pub fn resume(&self) -> anyhow::Result<()> {
        signal(&self.child, "CONT")
    }

    /// Waits (bounded) for the process to exit on its own.
    pub async fn wait_exit(
        &mut self,
        timeout: Duration,
    ) -> anyhow::Result<std::process::ExitStatus> {
        Ok(tokio::time::timeout(timeout, self.child.wait()).await??)
    }
}

/// The nodes that may own slots.
pub fn primaries(config: &ClusterConfig) -> impl Iterator<Item = &NodeInfo> {
    config.nodes.iter().filter(|n| !n.is_replica())
}

/// The node with this client address.
pub fn node_at<'a>(config: &'a ClusterConfig, client_addr: &str) -> Option<&'a NodeInfo> {
    config.nodes.iter().find(|n| n.client_addr == client_addr)
}

/// Client address of the primary that owns `key`'s slot.
pub fn owner_of(config: &ClusterConfig, key: &str) -> Option<String> {
    let index = config.slot_map().owner(key_slot(key.as_bytes()))?;
    Some(config.nodes[index].client_addr.clone())
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
    config.nodes.len() == nodes && is_fair_replicated(config, nodes, 0)
}

/// True when there are `primaries` primaries with `replicas` replicas
/// each, nothing is moving, and the primaries share the 16384 slots fairly
/// (⌊16384/N⌋ or ⌈16384/N⌉ each).
pub fn is_fair_replicated(config: &ClusterConfig, primaries: usize, replicas: usize) -> bool {
    let counts: Vec<usize> = slots_per_node(config)
        .into_iter()
        .zip(&config.nodes)
        .filter(|(_, node)| !node.is_replica())
        .map(|((_, owned), _)| owned)
        .collect();
    let total: usize = counts.iter().sum();
    let (low, high) = (16384 / primaries, 16384usize.div_ceil(primaries));
    counts.len() == primaries
        && config.nodes.len() == primaries * (1 + replicas)
        && self::primaries(config).all(|p| config.replicas_of(&p.id).count() == replicas)
        && config.migrations.is_empty()
        && total == 16384
        && counts.iter().all(|n| (low..=high).contains(n))
}
