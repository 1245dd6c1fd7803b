//! State shared by every connection of a node.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use keycafe_core::cluster::NodeInfo;

use crate::cluster::ClusterState;
use crate::config::Config;
use crate::replication::Replication;
use crate::replication::log::ReplicationLog;
use crate::store::{ChangeFeed, Store};

/// The node's shared state: configuration, data and counters. One `Arc` of it
/// is handed to every connection task.
pub struct Shared {
    pub config: Config,
    pub store: Store,
    /// This node's id: 40 random hex characters, as in Redis Cluster.
    pub node_id: String,
    pub started: Instant,
    pub stats: Stats,
    /// Cluster mode's state; `None` for a standalone node.
    pub cluster: Option<ClusterState>,
    /// Replicas of this node, or this node's link to its primary.
    pub replication: Replication,
}

/// Server-wide counters reported by INFO. Connections add their command
/// counts once per batch, not once per command, to keep the hot path free of
/// shared writes.
#[derive(Default)]
pub struct Stats {
    pub connected_clients: AtomicUsize,
    pub connections_received: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub commands_processed: AtomicU64,
    pub next_client_id: AtomicU64,
}

impl Shared {
    pub fn new(config: Config) -> Shared {
        let node_id = random_node_id();
        let cluster = config.coordinator.as_ref().map(|coordinator| {
            let me = NodeInfo {
                id: node_id.clone(),
                client_addr: format!("{}:{}", config.bind, config.service_port),
                bus_addr: format!("{}:{}", config.bind, config.bus_port()),
                replica_of: None,
            };
            ClusterState::new(me, coordinator.clone(), config.cluster_secret.clone())
        });
        let log = std::sync::Arc::new(ReplicationLog::new(config.repl_backlog_size));
        let feed = ChangeFeed::new().with(log.clone());
        Shared {
            store: Store::with_feed(Store::DEFAULT_SHARDS, feed),
            replication: Replication::new(log),
            config,
            node_id,
            started: Instant::now(),
            stats: Stats::default(),
            cluster,
        }
    }

    pub fn next_client_id(&self) -> u64 {
        self.stats.next_client_id.fetch_add(1, Ordering::Relaxed) + 1
    }
}

fn random_node_id() -> String {
    let bytes: [u8; 20] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
