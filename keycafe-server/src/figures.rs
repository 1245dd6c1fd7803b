//! The node's figures, gathered in one place for the two places that show
//! them: INFO's text (`cmd::info`) and Prometheus's (`metrics`).
//!
//! Every figure already exists somewhere in the node: counters the
//! connections add to once per batch, the store shards' counters, the
//! memory gauge, the persistence and replication state, the cluster view.
//! Gathering only reads them; nothing here is measured, so showing a figure
//! in one more format costs the command path nothing.
//!
//! There is one struct per INFO section, each with its own `gather`, so
//! that `INFO memory` reads only what that section needs; [`Figures`] holds
//! them all for a scrape. The store's counters are summed once per request
//! ([`Store::stats`](crate::store::Store::stats) locks each shard in turn)
//! and handed to the sections that use them.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::state::Shared;
use crate::store::StoreStats;

/// Everything INFO's default sections show and `/metrics` exposes, as of
/// one moment. Commandstats and errorstats are not here: they are lists
/// only INFO shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    pub server: Server,
    pub clients: Clients,
    pub memory: Memory,
    pub persistence: Persistence,
    pub stats: Stats,
    pub replication: Replication,
    pub cpu: Cpu,
    /// `None` for a standalone node.
    pub cluster: Option<Cluster>,
    pub keyspace: Keyspace,
}

impl Figures {
    /// Every section, now.
    pub fn gather(shared: &Shared) -> Figures {
        let store = shared.store.stats();
        Figures {
            server: Server::gather(shared),
            clients: Clients::gather(shared),
            memory: Memory::gather(shared, &store),
            persistence: Persistence::gather(shared, &store),
            stats: Stats::gather(shared, &store),
            replication: Replication::gather(shared),
            cpu: Cpu::gather(),
            cluster: Cluster::gather(shared),
            keyspace: Keyspace::of(&store),
        }
    }
}

/// Who the node is and how long it has run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub node_id: String,
    /// The client port, as bound.
    pub tcp_port: u16,
    pub uptime_secs: u64,
}

impl Server {
    pub fn gather(shared: &Shared) -> Server {
        Server {
            node_id: shared.node_id.clone(),
            tcp_port: shared.config.service_port,
            uptime_secs: shared.started.elapsed().as_secs(),
        }
    }
}

/// Client connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clients {
    /// Open on the client ports (the bus's are not clients).
    pub connected: usize,
    pub maxclients: usize,
    /// Waiting in WAIT or for a pause to end.
    pub blocked: usize,
}

impl Clients {
    pub fn gather(shared: &Shared) -> Clients {
        Clients {
            connected: shared.stats.connected_clients.load(Ordering::Relaxed),
            maxclients: shared.runtime.maxclients(),
            blocked: shared.clients.blocked(),
        }
    }
}

/// Memory, as `docs/memory.md` counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memory {
    /// What `maxmemory` is compared with: the store's exact bytes plus
    /// client buffers and the replication backlog.
    pub used: u64,
    /// The process's resident set, where the system says (Linux).
    pub rss: Option<u64>,
    /// The store's share of `used`.
    pub dataset: u64,
    pub clients_normal: u64,
    pub replication_backlog: u64,
    /// 0: no limit.
    pub maxmemory: u64,
    pub policy: &'static str,
    pub samples: usize,
}

impl Memory {
    pub fn gather(shared: &Shared, store: &StoreStats) -> Memory {
        let memory = shared.memory();
        Memory {
            used: (store.used_bytes + memory.outside_store()) as u64,
            rss: resident_memory_bytes(),
            dataset: store.used_bytes as u64,
            clients_normal: memory.client_buffers() as u64,
            replication_backlog: memory.backlog() as u64,
            maxmemory: shared.runtime.maxmemory() as u64,
            policy: shared.store.policy().name(),
            samples: shared.store.samples(),
        }
    }
}

/// The process's resident set size, from /proc on Linux.
fn resident_memory_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Snapshots and the append-only file. Without a data directory nothing is
/// ever saved: the last "save" is the node's start (as Redis reports its
/// start time before the first save).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Persistence {
    /// Keys changed since the last snapshot, as Redis counts them.
    pub changes: u64,
    /// When the last snapshot finished (ms since the Unix epoch).
    pub last_save_ms: u64,
    pub bgsave_in_progress: bool,
    pub bgsave_ok: bool,
    /// How long the last snapshot took; -1 before the first.
    pub bgsave_secs: i64,
    /// How long the snapshot under way has run; -1 when none is.
    pub current_bgsave_secs: i64,
    pub saves: u64,
    pub aof_enabled: bool,
    pub aof_rewrite_in_progress: bool,
    pub aof_rewrite_ok: bool,
    pub aof_rewrites: u64,
    pub aof_write_ok: bool,
    pub aof_base_size: u64,
    pub aof_current_size: u64,
    /// Syncs of the append-only file that took longer than they should.
    pub aof_delayed_fsync: u64,
}

impl Default for Persistence {
    fn default() -> Persistence {
        Persistence {
            changes: 0,
            last_save_ms: 0,
            bgsave_in_progress: false,
            bgsave_ok: true,
            bgsave_secs: -1,
            current_bgsave_secs: -1,
            saves: 0,
            aof_enabled: false,
            aof_rewrite_in_progress: false,
            aof_rewrite_ok: true,
            aof_rewrites: 0,
            aof_write_ok: true,
            aof_base_size: 0,
            aof_current_size: 0,
            aof_delayed_fsync: 0,
        }
    }
}

impl Persistence {
    pub fn gather(shared: &Shared, store: &StoreStats) -> Persistence {
        let now_ms = crate::store::now_ms();
        let started_ms = now_ms.saturating_sub(shared.started.elapsed().as_millis() as u64);
        let mut f = Persistence {
            changes: store.changes,
            last_save_ms: started_ms,
            ..Persistence::default()
        };
        let Some(persistence) = &shared.persistence else {
            return f;
        };
        let snapshots = persistence.snapshots();
        f.changes = snapshots.schedule.unsaved(store.changes);
        f.last_save_ms = snapshots.schedule.last_save_ms;
        f.bgsave_in_progress = snapshots.in_progress.is_some();
        f.bgsave_ok = snapshots.last_ok;
        f.bgsave_secs = snapshots.last_secs.map_or(-1, |s| s as i64);
        f.current_bgsave_secs = snapshots
            .started_ms
            .map_or(-1, |ms| (now_ms.saturating_sub(ms) / 1000) as i64);
        f.saves = snapshots.saves;
        drop(snapshots);
        if let Some(aof) = persistence.aof() {
            let status = aof.status();
            f.aof_enabled = true;
            f.aof_rewrite_in_progress = status.rewrite_in_progress;
            f.aof_rewrite_ok = status.last_rewrite_ok;
            f.aof_rewrites = status.rewrites;
            f.aof_write_ok = status.last_write_error.is_none();
            f.aof_base_size = status.base_size;
            f.aof_delayed_fsync = status.slow_syncs;
            f.aof_current_size = status.base_size + status.increments_size;
        }
        f
    }
}

/// Counters since the node started or, all but the syncs, since
/// `CONFIG RESETSTAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub connections_received: u64,
    /// As connections have added them: each adds its count once per batch,
    /// so a batch still running is not in it yet.
    pub commands_processed: u64,
    pub rejected_connections: u64,
    pub expired_keys: u64,
    pub evicted_keys: u64,
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
    pub error_replies: u64,
    /// Full copies served to replicas.
    pub sync_full: u64,
    /// Replicas that continued from the backlog, and ones that could not.
    pub sync_partial_ok: u64,
    pub sync_partial_err: u64,
}

impl Stats {
    pub fn gather(shared: &Shared, store: &StoreStats) -> Stats {
        let stats = &shared.stats;
        let syncs = &shared.replication.stats;
        Stats {
            connections_received: stats.connections_received.load(Ordering::Relaxed),
            commands_processed: stats.commands_processed.load(Ordering::Relaxed),
            rejected_connections: stats.rejected_connections.load(Ordering::Relaxed),
            expired_keys: store.expired_keys,
            evicted_keys: store.evicted_keys,
            keyspace_hits: store.keyspace_hits,
            keyspace_misses: store.keyspace_misses,
            error_replies: shared.command_stats.error_replies(),
            sync_full: syncs.full.load(Ordering::Relaxed),
            sync_partial_ok: syncs.partial_ok.load(Ordering::Relaxed),
            sync_partial_err: syncs.partial_err.load(Ordering::Relaxed),
        }
    }
}

/// True if this node follows a primary (per the adopted configuration).
pub fn is_replica(shared: &Shared) -> bool {
    shared
        .cluster
        .as_ref()
        .is_some_and(|cluster| cluster.view().is_replica())
}

/// The replication stream and who is on either end of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replication {
    /// Bytes of the stream produced (a primary) or applied (a replica).
    pub offset: u64,
    pub replid: String,
    pub replid2: String,
    /// Where the history `replid2` ended (0: none).
    pub second_offset: u64,
    pub backlog_active: bool,
    pub backlog_size: usize,
    pub backlog_first_byte: u64,
    pub backlog_histlen: u64,
    /// This node's link to its primary; `None` on a primary.
    pub upstream: Option<Upstream>,
    /// Replicas attached to this node, by address.
    pub replicas: Vec<Replica>,
}

/// A replica's link to its primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// The primary's client address (`host:port`; empty until known).
    pub primary_addr: String,
    pub link_up: bool,
    /// Seconds since the primary was last heard from.
    pub last_io_secs: Option<u64>,
    /// A full copy is under way.
    pub syncing: bool,
}

/// A replica as its primary sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    /// Its client address (`host:port`).
    pub addr: String,
    /// Still receiving its full copy.
    pub syncing: bool,
    /// The offset it has acknowledged.
    pub acked: u64,
    /// Seconds since its last acknowledgement.
    pub lag_secs: u64,
}

impl Replication {
    pub fn gather(shared: &Shared) -> Replication {
        let replication = &shared.replication;
        let log = &replication.log;
        let (replid, replid2, second_offset, backlog_first_byte, backlog_histlen) = log.describe();
        let upstream = is_replica(shared).then(|| {
            let up = replication.upstream();
            Upstream {
                primary_addr: up.primary_addr.unwrap_or_default(),
                link_up: up.link_up,
                last_io_secs: up.last_io.map(|t| t.elapsed().as_secs()),
                syncing: up.syncing,
            }
        });
        let replicas = replication
            .replicas()
            .into_iter()
            .map(|link| Replica {
                addr: link.addr,
                syncing: link.syncing,
                acked: link.acked,
                lag_secs: link.last_ack.elapsed().as_secs(),
            })
            .collect();
        Replication {
            offset: log.offset(),
            replid,
            replid2,
            second_offset,
            backlog_active: log.is_recording() || backlog_histlen > 0,
            backlog_size: log.capacity(),
            backlog_first_byte,
            backlog_histlen,
            upstream,
            replicas,
        }
    }
}

/// CPU time used, from getrusage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cpu {
    pub sys: Duration,
    pub user: Duration,
    pub sys_children: Duration,
    pub user_children: Duration,
    /// The thread that gathers: a Keycafe node has no main thread (every
    /// worker serves connections), so this is the closest thing to Redis's
    /// `_main_thread` figures.
    pub sys_main_thread: Duration,
    pub user_main_thread: Duration,
}

impl Cpu {
    /// Zero for what the system does not say.
    pub fn gather() -> Cpu {
        use nix::sys::resource::{UsageWho, getrusage};
        let times = |who: UsageWho| match getrusage(who) {
            Ok(usage) => {
                let time = |t: nix::sys::time::TimeVal| {
                    let secs = u64::try_from(t.tv_sec()).unwrap_or(0);
                    let micros = u32::try_from(t.tv_usec()).unwrap_or(0);
                    Duration::new(secs, micros.saturating_mul(1000))
                };
                (time(usage.system_time()), time(usage.user_time()))
            }
            Err(_) => (Duration::ZERO, Duration::ZERO),
        };
        let (sys, user) = times(UsageWho::RUSAGE_SELF);
        let (sys_children, user_children) = times(UsageWho::RUSAGE_CHILDREN);
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let (sys_main_thread, user_main_thread) = times(UsageWho::RUSAGE_THREAD);
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let (sys_main_thread, user_main_thread) = (sys, user);
        Cpu {
            sys,
            user,
            sys_children,
            user_children,
            sys_main_thread,
            user_main_thread,
        }
    }
}

/// Cluster mode: the configuration this node holds and its share of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cluster {
    /// Epoch of the configuration the node holds.
    pub epoch: u64,
    /// Slots it owns in that configuration (migrating ones included).
    pub slots: usize,
}

impl Cluster {
    /// `None` for a standalone node.
    pub fn gather(shared: &Shared) -> Option<Cluster> {
        let view = shared.cluster.as_ref()?.view();
        Some(Cluster {
            epoch: view.epoch(),
            slots: view.my_slots().len(),
        })
    }
}

/// Keys, as INFO's keyspace line `db0:keys=…,expires=…` counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Keyspace {
    /// Keys held, expired ones not yet reclaimed included.
    pub keys: u64,
    /// Keys with a time to live.
    pub expires: u64,
}

impl Keyspace {
    pub fn of(store: &StoreStats) -> Keyspace {
        Keyspace {
            keys: store.keys as u64,
            expires: store.volatile_keys as u64,
        }
    }
}
