//! State shared by every connection of a node.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use keycafe_core::cluster::NodeInfo;
use keycafe_core::coord::NodeReport;

use crate::cluster::ClusterState;
use crate::config::Config;
use crate::replication::Replication;
use crate::replication::log::ReplicationLog;
use crate::store::{ChangeFeed, Store};

/// The node's shared state: configuration, data and counters. One `Arc` of it
/// is handed to every connection task; the mechanisms below it (replication,
/// the cluster links) get only the parts they use.
pub struct Shared {
    pub config: Config,
    pub store: Arc<Store>,
    /// This node's id: 40 random hex characters, as in Redis Cluster.
    pub node_id: String,
    pub started: Instant,
    pub stats: Stats,
    /// Cluster mode's state; `None` for a standalone node.
    pub cluster: Option<Arc<ClusterState>>,
    /// Replicas of this node, or this node's link to its primary.
    pub replication: Arc<Replication>,
}

/// Server-wide counters reported by INFO. Connections add their command
/// counts once per batch, not once per command, to keep the hot path free of
/// shared writes.
#[derive(Default)]
pub struct Stats {
    pub connected_clients: AtomicUsize,
    /// Open cluster-bus connections (limited by `bus_maxclients`).
    pub bus_connections: AtomicUsize,
    pub connections_received: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub commands_processed: AtomicU64,
    pub next_client_id: AtomicU64,
}

impl Shared {
    /// The node's state for `config`. Fails if a TLS file it names for the
    /// cluster's links cannot be loaded.
    pub fn new(config: Config) -> anyhow::Result<Shared> {
        let node_id = random_node_id();
        let member_tls = config.member_tls()?;
        let cluster = config.coordinator.as_ref().map(|coordinator| {
            let me = NodeInfo {
                id: node_id.clone(),
                client_addr: format!("{}:{}", config.bind, config.service_port),
                bus_addr: format!("{}:{}", config.bind, config.bus_port()),
                replica_of: None,
            };
            // Validated: cluster mode always has one.
            let secret = config.cluster_secret.clone().unwrap_or_default();
            let cluster = ClusterState::new(me, coordinator.clone(), secret);
            Arc::new(cluster.with_tls(member_tls))
        });
        let log = Arc::new(ReplicationLog::new(config.repl_backlog_size));
        let feed = ChangeFeed::new().with(log.clone());
        Ok(Shared {
            store: Arc::new(Store::with_feed(Store::DEFAULT_SHARDS, feed)),
            replication: Arc::new(Replication::new(log)),
            config,
            node_id,
            started: Instant::now(),
            stats: Stats::default(),
            cluster,
        })
    }

    /// What replication works with, in cluster mode.
    pub fn replication_parts(&self) -> Option<crate::replication::Parts> {
        Some(crate::replication::Parts {
            store: self.store.clone(),
            replication: self.replication.clone(),
            cluster: self.cluster.clone()?,
            node_timeout: std::time::Duration::from_millis(self.config.node_timeout_ms),
        })
    }

    pub fn next_client_id(&self) -> u64 {
        self.stats.next_client_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// This node's heartbeat: its epoch, key counts per owned range, what is
    /// left to move of each slot it is migrating away, and its replication.
    pub fn report(&self) -> NodeReport {
        let Some(cluster) = self.cluster.as_ref() else {
            return NodeReport::default();
        };
        let view = cluster.view();
        let store = &self.store;
        let slot_keys = view
            .config
            .slots
            .iter()
            .filter(|range| range.owner == cluster.me.id)
            .map(|range| {
                let keys = (range.start..=range.end)
                    .map(|s| store.count_keys_in_slot(s) as u64)
                    .sum();
                (range.start, range.end, keys)
            })
            .collect();
        let migrating = view
            .outgoing
            .keys()
            .map(|&slot| (slot, store.count_keys_in_slot(slot) as u64))
            .collect();
        NodeReport {
            epoch: view.epoch(),
            keys: store.stats().keys as u64,
            slot_keys,
            migrating,
            replication: self.replication.report(),
            ..NodeReport::default()
        }
    }
}

fn random_node_id() -> String {
    let bytes: [u8; 20] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
