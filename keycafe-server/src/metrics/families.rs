//! Every metric a node's `/metrics` exposes, and [`encode`], which writes
//! one [`Figures`] as Prometheus text.
//!
//! Names follow two rules (`docs/metrics.md`, "A node's /metrics"): a
//! figure the coordinator also exports per node, with exactly the same
//! meaning, keeps the coordinator's `keycafe_node_…` name, so that one
//! query reads either source; every other is `keycafe_` and Redis's INFO
//! field name, with Prometheus's unit suffix (`_bytes`, `_seconds`) and
//! `_total` on counters (Redis's `total_` prefix moves there). A figure the
//! node does not have (the resident set where the system does not say, the
//! append-only file's size while it is off, a replica's link on a primary,
//! the slots of a standalone node) has no sample rather than a made-up 0.

use keycafe_core::prometheus::{Exposition, Family, Number};

use crate::cmd::server::{KEYCAFE_VERSION, REDIS_COMPAT_VERSION};
use crate::figures::Figures;

const INFO: Family = Family::gauge(
    "keycafe_info",
    "Always 1; labels name the node, its role, its versions and its mode.",
);
const UPTIME: Family = Family::gauge(
    "keycafe_uptime_in_seconds",
    "Seconds since the node started.",
);

const CONNECTED_CLIENTS: Family =
    Family::gauge("keycafe_connected_clients", "Client connections open now.");
const BLOCKED_CLIENTS: Family = Family::gauge(
    "keycafe_blocked_clients",
    "Clients waiting in WAIT or for a pause to end.",
);
const MAXCLIENTS: Family = Family::gauge(
    "keycafe_maxclients",
    "Most client connections the node accepts at once.",
);
const CONNECTIONS_RECEIVED: Family = Family::counter(
    "keycafe_connections_received_total",
    "Client connections accepted since the node started.",
);
const REJECTED_CONNECTIONS: Family = Family::counter(
    "keycafe_rejected_connections_total",
    "Client connections refused because maxclients were open.",
);

const COMMANDS: Family = Family::counter(
    "keycafe_node_commands_processed_total",
    "Commands the node has processed since it started.",
);
const ERROR_REPLIES: Family = Family::counter(
    "keycafe_error_replies_total",
    "Error replies sent since the node started or CONFIG RESETSTAT.",
);

const KEYS: Family = Family::gauge("keycafe_node_keys", "Keys the node holds.");
const EXPIRES: Family = Family::gauge("keycafe_expires", "Keys with a time to live.");
const EXPIRED_KEYS: Family = Family::counter(
    "keycafe_expired_keys_total",
    "Keys removed because their time to live ran out.",
);
const EVICTED_KEYS: Family = Family::counter(
    "keycafe_evicted_keys_total",
    "Keys removed to stay under maxmemory.",
);
const KEYSPACE_HITS: Family = Family::counter(
    "keycafe_keyspace_hits_total",
    "Reads of a key that found it.",
);
const KEYSPACE_MISSES: Family = Family::counter(
    "keycafe_keyspace_misses_total",
    "Reads of a key that did not find it.",
);

const USED_MEMORY: Family = Family::gauge(
    "keycafe_node_used_memory_bytes",
    "Memory the node accounts for (INFO used_memory, what maxmemory limits).",
);
const USED_MEMORY_RSS: Family = Family::gauge(
    "keycafe_used_memory_rss_bytes",
    "Resident set size of the process.",
);
const USED_MEMORY_DATASET: Family = Family::gauge(
    "keycafe_used_memory_dataset_bytes",
    "The store's share of used memory: entries, tables and expiry queues.",
);
const MEM_CLIENTS_NORMAL: Family = Family::gauge(
    "keycafe_mem_clients_normal_bytes",
    "Client input and output buffers.",
);
const MEM_REPLICATION_BACKLOG: Family = Family::gauge(
    "keycafe_mem_replication_backlog_bytes",
    "The replication backlog, once a replica has attached.",
);
const MAXMEMORY: Family = Family::gauge(
    "keycafe_maxmemory_bytes",
    "The maxmemory limit; 0 for none.",
);

const RDB_CHANGES: Family = Family::gauge(
    "keycafe_rdb_changes_since_last_save",
    "Keys changed since the last snapshot.",
);
const RDB_BGSAVE_IN_PROGRESS: Family = Family::gauge(
    "keycafe_rdb_bgsave_in_progress",
    "1 while a snapshot is being written, else 0.",
);
const RDB_LAST_SAVE_TIME: Family = Family::gauge(
    "keycafe_rdb_last_save_time_seconds",
    "Unix time of the last snapshot (of the node's start before the first).",
);
const RDB_LAST_BGSAVE_STATUS: Family = Family::gauge(
    "keycafe_rdb_last_bgsave_status",
    "1 if the last snapshot succeeded (or none was tried), 0 if it failed.",
);
const RDB_SAVES: Family = Family::counter(
    "keycafe_rdb_saves_total",
    "Snapshots written since the node started.",
);
const AOF_ENABLED: Family = Family::gauge(
    "keycafe_aof_enabled",
    "1 if the append-only file is on, else 0.",
);
const AOF_REWRITE_IN_PROGRESS: Family = Family::gauge(
    "keycafe_aof_rewrite_in_progress",
    "1 while the append-only file is being rewritten, else 0.",
);
const AOF_LAST_BGREWRITE_STATUS: Family = Family::gauge(
    "keycafe_aof_last_bgrewrite_status",
    "1 if the last rewrite of the append-only file succeeded (or none was tried), 0 if it failed.",
);
const AOF_LAST_WRITE_STATUS: Family = Family::gauge(
    "keycafe_aof_last_write_status",
    "1 if the last write to the append-only file succeeded, 0 if it failed.",
);
const AOF_REWRITES: Family = Family::counter(
    "keycafe_aof_rewrites_total",
    "Rewrites of the append-only file since the node started.",
);
const AOF_CURRENT_SIZE: Family = Family::gauge(
    "keycafe_aof_current_size_bytes",
    "Size of the append-only file, base and increments, while it is on.",
);
const AOF_DELAYED_FSYNC: Family = Family::counter(
    "keycafe_aof_delayed_fsync_total",
    "Syncs of the append-only file that took longer than they should.",
);

const REPLICATION_OFFSET: Family = Family::gauge(
    "keycafe_node_replication_offset_bytes",
    "Replication stream produced (a primary) or applied (a replica).",
);
const CONNECTED_SLAVES: Family = Family::gauge(
    "keycafe_connected_slaves",
    "Replicas attached to this node.",
);
const REPLICA_LINK_UP: Family = Family::gauge(
    "keycafe_node_replica_link_up",
    "For a replica: 1 if its link to its primary is up, else 0.",
);
const MASTER_SYNC_IN_PROGRESS: Family = Family::gauge(
    "keycafe_master_sync_in_progress",
    "For a replica: 1 while it receives a full copy from its primary, else 0.",
);
const SYNC_FULL: Family = Family::counter(
    "keycafe_sync_full_total",
    "Full copies this node has sent to replicas.",
);
const SYNC_PARTIAL_OK: Family = Family::counter(
    "keycafe_sync_partial_ok_total",
    "Replicas that continued from this node's backlog.",
);
const SYNC_PARTIAL_ERR: Family = Family::counter(
    "keycafe_sync_partial_err_total",
    "Replicas that asked to continue and needed a full copy instead.",
);

const USED_CPU_SYS: Family = Family::counter(
    "keycafe_used_cpu_sys_seconds_total",
    "CPU time the process has spent in the kernel.",
);
const USED_CPU_USER: Family = Family::counter(
    "keycafe_used_cpu_user_seconds_total",
    "CPU time the process has spent in user space.",
);

const SLOTS: Family = Family::gauge("keycafe_node_slots", "Slots the node owns.");
const CONFIG_EPOCH: Family = Family::gauge(
    "keycafe_node_config_epoch",
    "Epoch of the configuration the node holds.",
);

/// Every metric, in the order [`encode`] writes them.
pub const FAMILIES: &[Family] = &[
    INFO,
    UPTIME,
    CONNECTED_CLIENTS,
    BLOCKED_CLIENTS,
    MAXCLIENTS,
    CONNECTIONS_RECEIVED,
    REJECTED_CONNECTIONS,
    COMMANDS,
    ERROR_REPLIES,
    KEYS,
    EXPIRES,
    EXPIRED_KEYS,
    EVICTED_KEYS,
    KEYSPACE_HITS,
    KEYSPACE_MISSES,
    USED_MEMORY,
    USED_MEMORY_RSS,
    USED_MEMORY_DATASET,
    MEM_CLIENTS_NORMAL,
    MEM_REPLICATION_BACKLOG,
    MAXMEMORY,
    RDB_CHANGES,
    RDB_BGSAVE_IN_PROGRESS,
    RDB_LAST_SAVE_TIME,
    RDB_LAST_BGSAVE_STATUS,
    RDB_SAVES,
    AOF_ENABLED,
    AOF_REWRITE_IN_PROGRESS,
    AOF_LAST_BGREWRITE_STATUS,
    AOF_LAST_WRITE_STATUS,
    AOF_REWRITES,
    AOF_CURRENT_SIZE,
    AOF_DELAYED_FSYNC,
    REPLICATION_OFFSET,
    CONNECTED_SLAVES,
    REPLICA_LINK_UP,
    MASTER_SYNC_IN_PROGRESS,
    SYNC_FULL,
    SYNC_PARTIAL_OK,
    SYNC_PARTIAL_ERR,
    USED_CPU_SYS,
    USED_CPU_USER,
    SLOTS,
    CONFIG_EPOCH,
];

/// The text exposition of `f`: every family in [`FAMILIES`], each with its
/// `# HELP` and `# TYPE` lines, and a sample for each figure the node has.
pub fn encode(f: &Figures) -> String {
    let mut out = Exposition::default();
    let int = |n: u64| Some(Number::Int(n));
    let count = |n: usize| Some(Number::Int(n as u64));
    let flag = |on: bool| Some(Number::flag(on));

    let role = if f.replication.upstream.is_some() {
        "replica"
    } else {
        "primary"
    };
    let mode = if f.cluster.is_some() {
        "cluster"
    } else {
        "standalone"
    };
    let labels = vec![
        ("node", f.server.node_id.as_str()),
        ("role", role),
        ("version", KEYCAFE_VERSION),
        ("redis_version", REDIS_COMPAT_VERSION),
        ("mode", mode),
    ];
    out.family(&INFO, [(labels, Number::Int(1))]);
    out.single(&UPTIME, int(f.server.uptime_secs));

    out.single(&CONNECTED_CLIENTS, count(f.clients.connected));
    out.single(&BLOCKED_CLIENTS, count(f.clients.blocked));
    out.single(&MAXCLIENTS, count(f.clients.maxclients));
    let stats = &f.stats;
    out.single(&CONNECTIONS_RECEIVED, int(stats.connections_received));
    out.single(&REJECTED_CONNECTIONS, int(stats.rejected_connections));
    out.single(&COMMANDS, int(stats.commands_processed));
    out.single(&ERROR_REPLIES, int(stats.error_replies));

    out.single(&KEYS, int(f.keyspace.keys));
    out.single(&EXPIRES, int(f.keyspace.expires));
    out.single(&EXPIRED_KEYS, int(stats.expired_keys));
    out.single(&EVICTED_KEYS, int(stats.evicted_keys));
    out.single(&KEYSPACE_HITS, int(stats.keyspace_hits));
    out.single(&KEYSPACE_MISSES, int(stats.keyspace_misses));

    let memory = &f.memory;
    out.single(&USED_MEMORY, int(memory.used));
    out.single(&USED_MEMORY_RSS, memory.rss.map(Number::Int));
    out.single(&USED_MEMORY_DATASET, int(memory.dataset));
    out.single(&MEM_CLIENTS_NORMAL, int(memory.clients_normal));
    out.single(&MEM_REPLICATION_BACKLOG, int(memory.replication_backlog));
    out.single(&MAXMEMORY, int(memory.maxmemory));

    let p = &f.persistence;
    out.single(&RDB_CHANGES, int(p.changes));
    out.single(&RDB_BGSAVE_IN_PROGRESS, flag(p.bgsave_in_progress));
    out.single(&RDB_LAST_SAVE_TIME, int(p.last_save_ms / 1000));
    out.single(&RDB_LAST_BGSAVE_STATUS, flag(p.bgsave_ok));
    out.single(&RDB_SAVES, int(p.saves));
    out.single(&AOF_ENABLED, flag(p.aof_enabled));
    out.single(&AOF_REWRITE_IN_PROGRESS, flag(p.aof_rewrite_in_progress));
    out.single(&AOF_LAST_BGREWRITE_STATUS, flag(p.aof_rewrite_ok));
    out.single(&AOF_LAST_WRITE_STATUS, flag(p.aof_write_ok));
    out.single(&AOF_REWRITES, int(p.aof_rewrites));
    let aof = |n: u64| int(n).filter(|_| p.aof_enabled);
    out.single(&AOF_CURRENT_SIZE, aof(p.aof_current_size));
    out.single(&AOF_DELAYED_FSYNC, aof(p.aof_delayed_fsync));

    let replication = &f.replication;
    let upstream = replication.upstream.as_ref();
    out.single(&REPLICATION_OFFSET, int(replication.offset));
    out.single(&CONNECTED_SLAVES, count(replication.replicas.len()));
    out.single(&REPLICA_LINK_UP, upstream.and_then(|up| flag(up.link_up)));
    out.single(
        &MASTER_SYNC_IN_PROGRESS,
        upstream.and_then(|up| flag(up.syncing)),
    );
    out.single(&SYNC_FULL, int(stats.sync_full));
    out.single(&SYNC_PARTIAL_OK, int(stats.sync_partial_ok));
    out.single(&SYNC_PARTIAL_ERR, int(stats.sync_partial_err));

    let seconds = |d: std::time::Duration| Some(Number::Float(d.as_secs_f64()));
    out.single(&USED_CPU_SYS, seconds(f.cpu.sys));
    out.single(&USED_CPU_USER, seconds(f.cpu.user));

    out.single(&SLOTS, f.cluster.and_then(|c| count(c.slots)));
    out.single(&CONFIG_EPOCH, f.cluster.and_then(|c| int(c.epoch)));
    out.into_text()
}
