//! Cluster mode for tests: a scripted coordinator and helpers to build
//! configurations.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use keycafe_core::auth::{self, Step};
use keycafe_core::cluster::{ClusterConfig, Migration, NodeInfo, SlotRange};
use keycafe_core::coord::{self, CoordinatorMessage, NodeMessage};
use keycafe_server::test_util::TEST_CLUSTER_SECRET;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{Mutex, mpsc};

/// A coordinator that does only what the test tells it to, except that it
/// answers every heartbeat with a lease (of [`FakeCoordinator::set_lease`]
/// milliseconds; 10 s to start with, an empty one when set to 0).
pub struct FakeCoordinator {
    pub addr: String,
    pub registered: mpsc::UnboundedReceiver<NodeInfo>,
    pub messages: mpsc::UnboundedReceiver<(String, NodeMessage)>,
    links: Arc<Mutex<Vec<Link>>>,
    lease_ms: Arc<AtomicU64>,
}

type Link = Arc<Mutex<OwnedWriteHalf>>;

async fn send(link: &Link, message: &CoordinatorMessage) {
    let mut out = BytesMut::new();
    coord::encode_message(message, &mut out);
    // A node that went away is not the test's concern here.
    let _ = link.lock().await.write_all(&out).await;
}

impl FakeCoordinator {
    pub async fn start() -> FakeCoordinator {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (registered_tx, registered) = mpsc::unbounded_channel();
        let (messages_tx, messages) = mpsc::unbounded_channel();
        let links = Arc::new(Mutex::new(Vec::new()));
        let lease_ms = Arc::new(AtomicU64::new(10_000));
        let (accepted, leases) = (links.clone(), lease_ms.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (mut read, write) = stream.into_split();
                let link: Link = Arc::new(Mutex::new(write));
                accepted.lock().await.push(link.clone());
                let (registered_tx, messages_tx) = (registered_tx.clone(), messages_tx.clone());
                let leases = leases.clone();
                tokio::spawn(async move {
                    let mut buf = BytesMut::new();
                    let mut me = String::new();
                    while read.read_buf(&mut buf).await.unwrap_or(0) > 0 {
                        while let Ok(Some(message)) = coord::decode_message::<NodeMessage>(&mut buf)
                        {
                            match message {
                                // It proves the cluster secret, as the real
                                // one does; nodes refuse it otherwise.
                                NodeMessage::Hello { nonce: theirs, .. } => {
                                    let secret = TEST_CLUSTER_SECRET.as_bytes();
                                    let ours = auth::nonce().unwrap();
                                    let proof =
                                        auth::proof(secret, Step::Coordinator, &theirs, &ours, "");
                                    let challenge =
                                        CoordinatorMessage::Challenge { nonce: ours, proof };
                                    send(&link, &challenge).await;
                                }
                                NodeMessage::Register { node, .. } => {
                                    me = node.id.clone();
                                    let _ = registered_tx.send(node);
                                }
                                NodeMessage::Heartbeat(report) => {
                                    let ms = leases.load(Ordering::Relaxed);
                                    let seq = report.seq;
                                    send(&link, &CoordinatorMessage::Lease { seq, ms }).await;
                                    let heartbeat = NodeMessage::Heartbeat(report);
                                    let _ = messages_tx.send((me.clone(), heartbeat));
                                }
                                other => {
                                    let _ = messages_tx.send((me.clone(), other));
                                }
                            }
                        }
                    }
                });
            }
        });
        FakeCoordinator {
            addr,
            registered,
            messages,
            links,
            lease_ms,
        }
    }

    pub async fn push(&self, config: &ClusterConfig) {
        let message = CoordinatorMessage::Config(config.clone());
        for link in self.links.lock().await.iter() {
            send(link, &message).await;
        }
    }

    /// Answers heartbeats from now on with leases of `ms` (0: empty ones).
    pub fn set_lease(&self, ms: u64) {
        self.lease_ms.store(ms, Ordering::Relaxed);
    }

    /// Waits for `migration_done` for every slot in `slots`.
    pub async fn wait_done(&mut self, mut slots: Vec<u16>) {
        let wait = async {
            while !slots.is_empty() {
                let (_, message) = self.messages.recv().await.expect("coordinator link open");
                if let NodeMessage::MigrationDone { slot, .. } = message {
                    slots.retain(|&s| s != slot);
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(30), wait)
            .await
            .expect("migrations finish");
    }
}

pub fn config(
    epoch: u64,
    nodes: &[NodeInfo],
    slots: Vec<SlotRange>,
    migrations: Vec<Migration>,
) -> ClusterConfig {
    ClusterConfig {
        epoch,
        nodes: nodes.to_vec(),
        slots,
        migrations,
    }
}

pub fn range(start: u16, end: u16, owner: &NodeInfo) -> SlotRange {
    SlotRange {
        start,
        end,
        owner: owner.id.clone(),
    }
}

/// Polls until `check` holds (bounded).
pub async fn eventually<F: AsyncFnMut() -> bool>(what: &str, mut check: F) {
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting until {what}");
}
