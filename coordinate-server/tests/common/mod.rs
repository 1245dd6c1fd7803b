//! Test helpers: a coordinator on ephemeral ports, and fake nodes that speak
//! the coordination protocol over real TCP.

#![allow(dead_code)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use coordinate_server::Config;
use coordinate_server::state::view::ClusterView;
use keycafe_core::auth::{self, Step};
use keycafe_core::cluster::{ClusterConfig, NodeInfo};
use keycafe_core::coord::{self, CoordinatorMessage, NodeMessage, NodeReport, ReplicationReport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// Upper bound on anything a test waits for: far above what any step takes
/// (well under a second), so that a loaded CI machine does not fail tests.
pub const PATIENCE: Duration = Duration::from_secs(60);
/// The cluster secret of every coordinator these tests start.
pub const SECRET: &str = "the coordinator tests' cluster secret";

/// The dashboard's admin token in every coordinator [`Coordinator::start`]
/// starts (unless the test's tweak changes it).
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";

/// A coordinator running in this process.
pub struct Coordinator {
    pub node_addr: SocketAddr,
    pub http_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Coordinator {
    pub async fn start(data_dir: &Path, tweak: impl FnOnce(&mut Config)) -> Coordinator {
        // Logs with RUST_LOG=coordinate_server=debug, shown for failed tests.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let mut config = Config {
            data_dir: data_dir.to_path_buf(),
            log_level: "debug".into(),
            secret: Some(SECRET.into()),
            admin_token: Some(ADMIN_TOKEN.into()),
            // A group of one; any free port for the group's links.
            group_port: 0,
            ..Config::default()
        };
        tweak(&mut config);
        let nodes = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let node_addr = nodes.local_addr().unwrap();
        let http_addr = http.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(coordinate_server::run(config, nodes, http, async move {
            let _ = stopped.await;
        }));
        Coordinator {
            node_addr,
            http_addr,
            stop: Some(stop),
            task,
        }
    }

    /// Graceful shutdown; returns what `run` returned.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(PATIENCE, &mut self.task)
            .await
            .expect("stops in time")
            .expect("no panic")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http_addr)
    }

    /// The response to a GET of `path`.
    async fn get(&self, path: &str) -> reqwest::Response {
        reqwest::get(self.url(path)).await.unwrap()
    }

    pub async fn cluster(&self) -> ClusterView {
        self.get("/api/cluster").await.json().await.unwrap()
    }

    /// `/api/cluster` as untyped JSON, for fields the typed view leaves out.
    pub async fn cluster_json(&self) -> serde_json::Value {
        self.get("/api/cluster").await.json().await.unwrap()
    }

    /// The dashboard page's HTML.
    pub async fn page(&self) -> String {
        self.get("/").await.text().await.unwrap()
    }

    /// Polls `/api/cluster` until `done` holds.
    pub async fn wait_for(&self, what: &str, done: impl Fn(&ClusterView) -> bool) -> ClusterView {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let view = self.cluster().await;
            if done(&view) {
                return view;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}: {view:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub fn node_info(n: u16) -> NodeInfo {
    NodeInfo {
        id: format!("{n:040x}"),
        client_addr: format!("127.0.0.1:{}", 7000 + n),
        bus_addr: format!("127.0.0.1:{}", 17000 + n),
        replica_of: None,
    }
}

/// A raw coordination connection, for tests that want every byte in hand.
pub struct Link {
    pub stream: TcpStream,
    buf: BytesMut,
}

impl Link {
    pub async fn connect(addr: SocketAddr) -> Link {
        Link {
            stream: TcpStream::connect(addr).await.unwrap(),
            buf: BytesMut::new(),
        }
    }

    /// `hello` and the coordinator's `challenge`: the proof to put in
    /// `register`, made with `secret`, or the coordinator's error. Panics
    /// if the coordinator's own proof is wrong.
    pub async fn hello(&mut self, node: &str, secret: &str) -> Result<String, String> {
        let ours = auth::nonce().unwrap();
        let hello = NodeMessage::Hello {
            node: node.to_string(),
            nonce: ours.clone(),
        };
        self.send(&hello).await;
        match self.recv().await {
            Some(CoordinatorMessage::Challenge { nonce, proof }) => {
                assert!(
                    auth::verify(
                        SECRET.as_bytes(),
                        Step::Coordinator,
                        &ours,
                        &nonce,
                        "",
                        &proof
                    ),
                    "the coordinator's proof"
                );
                Ok(auth::proof(
                    secret.as_bytes(),
                    Step::CoordinatorClient,
                    &nonce,
                    &ours,
                    node,
                ))
            }
            Some(CoordinatorMessage::Error { message }) => Err(message),
            other => panic!("expected a challenge, got {other:?}"),
        }
    }

    /// `hello` and `register` with the right proof.
    pub async fn register(&mut self, node: NodeInfo, epoch: u64, primary: Option<String>) {
        let proof = self.hello(&node.id, SECRET).await.expect("a challenge");
        let register = NodeMessage::Register {
            node,
            epoch,
            proof,
            primary,
        };
        self.send(&register).await;
    }

    pub async fn send(&mut self, message: &NodeMessage) {
        self.try_send(message).await.expect("the coordinator reads");
    }

    pub async fn try_send(&mut self, message: &NodeMessage) -> std::io::Result<()> {
        let mut out = BytesMut::new();
        coord::encode_message(message, &mut out);
        self.stream.write_all(&out).await
    }

    /// The next message, or `None` once the coordinator closed the connection.
    pub async fn recv(&mut self) -> Option<CoordinatorMessage> {
        tokio::time::timeout(PATIENCE, async {
            loop {
                if let Some(message) = coord::decode_message(&mut self.buf).expect("valid message")
                {
                    return Some(message);
                }
                match self.stream.read_buf(&mut self.buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        })
        .await
        .expect("the coordinator answers in time")
    }
}

/// What a fake node has seen.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    pub configs: Vec<ClusterConfig>,
    pub errors: Vec<String>,
    /// `(seq, ms)` of every lease granted.
    pub leases: Vec<(u64, u64)>,
    pub closed: bool,
}

impl Seen {
    pub fn latest(&self) -> Option<&ClusterConfig> {
        self.configs.last()
    }
}

/// A fake node in its own task: registers, records every message, answers
/// `migration_done` for slots it is asked to give away (when `auto_done`),
/// and heartbeats (when `heartbeat`) with the `replication` report set.
pub struct FakeNode {
    pub info: NodeInfo,
    pub seen: watch::Receiver<Seen>,
    commands: mpsc::UnboundedSender<Option<NodeMessage>>,
    pub auto_done: Arc<Mutex<bool>>,
    pub heartbeat: Arc<Mutex<bool>>,
    pub replication: Arc<Mutex<ReplicationReport>>,
    task: JoinHandle<()>,
}

impl FakeNode {
    pub async fn start(addr: SocketAddr, info: NodeInfo) -> FakeNode {
        Self::start_with_epoch(addr, info, 0).await
    }

    pub async fn start_with_epoch(addr: SocketAddr, info: NodeInfo, epoch: u64) -> FakeNode {
        Self::start_registering(addr, info, epoch, None).await
    }

    /// A node configured to replicate the node at client address `primary`.
    pub async fn start_replica(addr: SocketAddr, info: NodeInfo, primary: &str) -> FakeNode {
        Self::start_registering(addr, info, 0, Some(primary.to_string())).await
    }

    async fn start_registering(
        addr: SocketAddr,
        info: NodeInfo,
        epoch: u64,
        primary: Option<String>,
    ) -> FakeNode {
        let mut link = Link::connect(addr).await;
        link.register(info.clone(), epoch, primary).await;
        let (seen_tx, seen) = watch::channel(Seen::default());
        // `None` asks the task to answer for the migrations it already holds.
        let (commands, mut command_rx) = mpsc::unbounded_channel::<Option<NodeMessage>>();
        let auto_done = Arc::new(Mutex::new(true));
        let heartbeat = Arc::new(Mutex::new(true));
        let replication = Arc::new(Mutex::new(ReplicationReport::default()));
        let (me, auto, beat) = (info.id.clone(), auto_done.clone(), heartbeat.clone());
        let streams = replication.clone();
        let task = tokio::spawn(async move {
            let mut done_sent = HashSet::new();
            let mut ticker = tokio::time::interval(Duration::from_millis(100));
            let mut seq = 0u64;
            // Answers `migration_done` for this node's migrations in `config`.
            async fn answer(
                link: &mut Link,
                me: &str,
                config: Option<&ClusterConfig>,
                done_sent: &mut HashSet<(u16, String)>,
            ) -> std::io::Result<()> {
                for m in config
                    .iter()
                    .flat_map(|c| &c.migrations)
                    .filter(|m| m.from == me)
                {
                    if done_sent.insert((m.slot, m.to.clone())) {
                        let done = NodeMessage::MigrationDone {
                            slot: m.slot,
                            to: m.to.clone(),
                        };
                        link.try_send(&done).await?;
                    }
                }
                Ok(())
            }
            let result: std::io::Result<()> = async {
                loop {
                    tokio::select! {
                        message = link.recv() => match message {
                            None => return Ok(()),
                            Some(CoordinatorMessage::Config(config)) => {
                                if *auto.lock().unwrap() {
                                    answer(&mut link, &me, Some(&config), &mut done_sent).await?;
                                }
                                seen_tx.send_modify(|s| s.configs.push(config));
                            }
                            Some(CoordinatorMessage::Error { message }) => {
                                seen_tx.send_modify(|s| s.errors.push(message));
                            }
                            Some(CoordinatorMessage::Challenge { .. }) => {
                                seen_tx.send_modify(|s| s.errors.push("a second challenge".into()));
                            }
                            Some(CoordinatorMessage::Lease { seq, ms }) => {
                                seen_tx.send_modify(|s| s.leases.push((seq, ms)));
                            }
                            Some(CoordinatorMessage::NotLeader { leader }) => {
                                let text = format!("not the leader; leader {leader:?}");
                                seen_tx.send_modify(|s| s.errors.push(text));
                            }
                        },
                        Some(command) = command_rx.recv() => match command {
                            Some(message) => link.try_send(&message).await?,
                            None => {
                                let latest = seen_tx.borrow().latest().cloned();
                                answer(&mut link, &me, latest.as_ref(), &mut done_sent).await?;
                            }
                        },
                        _ = ticker.tick() => {
                            if *beat.lock().unwrap() {
                                let epoch = seen_tx.borrow().latest().map_or(0, |c| c.epoch);
                                let replication = streams.lock().unwrap().clone();
                                seq += 1;
                                let report = NodeReport { seq, epoch, keys: 7, replication, ..NodeReport::default() };
                                link.try_send(&NodeMessage::Heartbeat(report)).await?;
                            }
                        }
                    }
                }
            }
            .await;
            // A write error is the coordinator going away too.
            let _ = result;
            seen_tx.send_modify(|s| s.closed = true);
        });
        FakeNode {
            info,
            seen,
            commands,
            auto_done,
            heartbeat,
            replication,
            task,
        }
    }

    pub fn send(&self, message: NodeMessage) {
        self.commands
            .send(Some(message))
            .expect("fake node running");
    }

    pub fn set_auto_done(&self, on: bool) {
        *self.auto_done.lock().unwrap() = on;
        if on {
            // The task answers for what it was told while this was off (it
            // handles messages one at a time, so nothing slips between).
            self.commands.send(None).expect("fake node running");
        }
    }

    pub fn set_heartbeat(&self, on: bool) {
        *self.heartbeat.lock().unwrap() = on;
    }

    /// What the following heartbeats report about replication.
    pub fn set_replication(&self, report: ReplicationReport) {
        *self.replication.lock().unwrap() = report;
    }

    /// Waits until what this node has seen satisfies `done`.
    pub async fn wait_for(&mut self, what: &str, done: impl Fn(&Seen) -> bool) -> Seen {
        let seen = tokio::time::timeout(PATIENCE, self.seen.wait_for(|s| done(s)))
            .await
            .map(|seen| seen.map(|s| s.clone()));
        match seen {
            Ok(Ok(seen)) => seen,
            _ => panic!(
                "node {} timed out waiting for {what}: {:#?}",
                &self.info.id[32..],
                self.seen.borrow().latest()
            ),
        }
    }

    /// Simulates a crash: the connection drops without a word.
    pub fn kill(self) {
        self.task.abort();
    }
}

/// True if every slot is owned, the split over `n` nodes is fair and nothing
/// is moving.
pub fn settled(config: &ClusterConfig, n: usize) -> bool {
    let map = config.slot_map();
    let counts: Vec<usize> = (0..config.nodes.len())
        .map(|i| map.slots_of(i).len())
        .collect();
    config.migrations.is_empty()
        && config.nodes.len() == n
        && map.assigned() == 16384
        && counts.iter().all(|&c| c == 16384 / n || c == 16384 / n + 1)
}
