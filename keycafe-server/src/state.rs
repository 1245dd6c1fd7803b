//! State shared by every connection of a node.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use keycafe_core::cluster::NodeInfo;
use keycafe_core::coord::NodeReport;

use crate::clients::Clients;
use crate::cluster::ClusterState;
use crate::config::Config;
use crate::persist::Persistence;
use crate::persist::dir::new_node_id;
use crate::replication::Replication;
use crate::replication::log::ReplicationLog;
use crate::runtime::Runtime;
use crate::stats::CommandStats;
use crate::store::{ChangeFeed, MemoryUse, OutOfMemory, Store, now_ms};

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
    /// Settings `CONFIG SET` may change while the node runs.
    pub runtime: Runtime,
    /// Every connection, for CLIENT LIST, CLIENT KILL, CLIENT PAUSE and
    /// MONITOR.
    pub clients: Arc<Clients>,
    /// Commandstats, errorstats, the slow log and the latency monitor.
    pub command_stats: CommandStats,
    /// The data directory's snapshots and append-only file; `None` without
    /// a `dir`.
    pub persistence: Option<Arc<Persistence>>,
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
    /// The node's state for `config`, with the data of its data directory
    /// loaded (blocking). Fails if a TLS file it names for the cluster's
    /// links cannot be loaded, or its data directory cannot be used.
    pub fn new(config: Config) -> anyhow::Result<Shared> {
        // One gauge for everything maxmemory counts: the store's shards, the
        // backlog and (fed by the connections) client buffers.
        let memory = Arc::new(MemoryUse::new());
        let log =
            Arc::new(ReplicationLog::new(config.repl_backlog_size).counting_in(memory.clone()));
        let feed = ChangeFeed::new().with(log.clone());
        let (persistence, feed, identity) = match config.persistence() {
            Some((dir, settings)) => {
                let (persistence, feed, identity) = Persistence::open(&dir, &settings, feed)?;
                (
                    Some((Arc::new(persistence), settings)),
                    feed,
                    Some(identity),
                )
            }
            None => (None, feed, None),
        };
        let node_id = identity
            .as_ref()
            .map_or_else(new_node_id, |identity| identity.id.clone());
        let member_tls = config.member_tls()?;
        let cluster = config.coordinator.as_ref().map(|coordinator| {
            let me = NodeInfo {
                id: node_id.clone(),
                client_addr: config.announced_client_addr(),
                bus_addr: config.announced_bus_addr(),
                replica_of: None,
            };
            // Validated: cluster mode always has one.
            let secret = config.cluster_secret.clone().unwrap_or_default();
            let cluster = ClusterState::new(me, coordinator.clone(), secret);
            if let Some(identity) = &identity {
                cluster.remember_epoch(identity.epoch);
            }
            Arc::new(cluster.with_tls(member_tls))
        });
        let store = Store::with_memory(Store::DEFAULT_SHARDS, feed, memory);
        store.set_policy(config.maxmemory_policy);
        store.set_samples(config.maxmemory_samples);
        let store = Arc::new(store);
        let log_position = match &persistence {
            Some((persistence, settings)) => {
                persistence.load(&store, settings)?;
                persistence.take_stopped_at()
            }
            None => None,
        };
        // After a clean stop the data is exactly the replication history
        // up to where it stopped: replicas (and this node, as one) can
        // continue from there instead of copying everything.
        if let Some(stopped) = log_position.filter(|_| config.coordinator.is_some()) {
            tracing::info!(replid = %stopped.replid, offset = stopped.offset, "resuming the replication history where the clean stop left it");
            log.reset(&stopped.replid, stopped.offset);
        }
        Ok(Shared {
            persistence: persistence.map(|(persistence, _)| persistence),
            store,
            replication: Arc::new(Replication::new(log)),
            runtime: Runtime::new(&config),
            config,
            node_id,
            started: Instant::now(),
            stats: Stats::default(),
            command_stats: CommandStats::new(),
            cluster,
            clients: Arc::new(Clients::default()),
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

    /// The node's memory gauge: what `maxmemory` is checked against. The
    /// connection code counts its buffers in it
    /// ([`MemoryUse::add_client_buffers`] / [`MemoryUse::sub_client_buffers`]).
    pub fn memory(&self) -> &MemoryUse {
        self.store.memory()
    }

    /// What CONFIG reads settings from and writes them to.
    pub fn settings(&self) -> crate::runtime::Node<'_> {
        crate::runtime::Node {
            config: &self.config,
            runtime: &self.runtime,
            store: &self.store,
            persistence: self.persistence.as_ref(),
        }
    }

    /// Before a command that may grow memory (flagged `DENYOOM`): evicts
    /// keys if the node is over `maxmemory`, or refuses under `noeviction`
    /// or when nothing may go. Costs one load when no limit is set, two
    /// when the node is under it.
    pub fn make_room(&self) -> Result<(), OutOfMemory> {
        let max = self.runtime.maxmemory();
        if max == 0 || self.memory().used() <= max {
            return Ok(());
        }
        self.store.make_room(max, now_ms()).map(drop)
    }

    pub fn next_client_id(&self) -> u64 {
        self.stats.next_client_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// This node's heartbeat: its epoch, key counts per owned range, what is
    /// left to move of each slot it is migrating away, its replication, and
    /// its load (commands processed, memory used) for the coordinator's
    /// `/metrics`.
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
            commands_processed: Some(self.stats.commands_processed.load(Ordering::Relaxed)),
            used_memory: Some(self.memory().used() as u64),
            ..NodeReport::default()
        }
    }
}
