//! INFO: the node's state and statistics as text, in Redis's sections and
//! with Redis's field names.
//!
//! `INFO` and `INFO default` give the default sections; `INFO all` and
//! `INFO everything` add commandstats; named sections (any number, any
//! case) give just those. Sections always come in Redis's order: server,
//! clients, memory, persistence, stats, replication, cpu, commandstats,
//! errorstats, cluster, keyspace. Redis's latencystats (per-command latency
//! percentiles) is not kept: it needs a histogram per command, more than
//! the per-command cost allowed (see [`crate::stats`]).

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use keycafe_core::{Args, Reply};

use super::server::{KEYCAFE_VERSION, REDIS_COMPAT_VERSION};
use super::{CmdResult, Ctx};
use crate::state::Shared;

/// Every section, in Redis's order, and whether `INFO` (default) shows it.
const SECTIONS: &[(&str, bool)] = &[
    ("server", true),
    ("clients", true),
    ("memory", true),
    ("persistence", true),
    ("stats", true),
    ("replication", true),
    ("cpu", true),
    ("commandstats", false),
    ("errorstats", true),
    ("cluster", true),
    ("keyspace", true),
];

/// Which sections a request asks for.
fn wanted_sections(args: Args<'_>) -> Vec<&'static str> {
    let asked: Vec<String> = args
        .iter()
        .skip(1)
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    let everything = asked.iter().any(|w| w == "all" || w == "everything");
    let default = asked.is_empty() || asked.iter().any(|w| w == "default");
    SECTIONS
        .iter()
        .filter(|(name, by_default)| {
            everything || (default && *by_default) || asked.iter().any(|w| w == name)
        })
        .map(|(name, _)| *name)
        .collect()
}

/// `INFO [section ...]`: see the module documentation.
pub fn info(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let wanted = wanted_sections(args);
    let include = |section: &str| wanted.contains(&section);
    let shared = ctx.shared;
    // This connection's earlier commands of the batch count too.
    ctx.conn.stats.flush(&shared.command_stats);
    let stats = &shared.stats;
    let store = shared.store.stats();
    let mut text = String::new();
    if include("server") {
        let uptime = shared.started.elapsed().as_secs();
        let _ = write!(
            text,
            "# Server\r\nkeycafe_version:{KEYCAFE_VERSION}\r\nredis_version:{REDIS_COMPAT_VERSION}\r\n\
             redis_mode:cluster\r\nos:{}\r\narch_bits:{}\r\nprocess_id:{}\r\nrun_id:{}\r\n\
             tcp_port:{}\r\nuptime_in_seconds:{uptime}\r\nuptime_in_days:{}\r\n\r\n",
            std::env::consts::OS,
            usize::BITS,
            std::process::id(),
            shared.node_id,
            shared.config.service_port,
            uptime / 86_400,
        );
    }
    if include("clients") {
        let _ = write!(
            text,
            "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:{}\r\n\r\n",
            stats.connected_clients.load(Ordering::Relaxed),
            shared.runtime.maxclients(),
            shared.clients.blocked(),
        );
    }
    if include("memory") {
        text.push_str(&info_memory(shared, &store));
    }
    if include("persistence") {
        text.push_str(&info_persistence(shared));
    }
    if include("stats") {
        let _ = write!(
            text,
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\n\
             rejected_connections:{}\r\nexpired_keys:{}\r\nevicted_keys:{}\r\n\
             keyspace_hits:{}\r\nkeyspace_misses:{}\r\ntotal_error_replies:{}\r\n{}\r\n",
            stats.connections_received.load(Ordering::Relaxed),
            stats.commands_processed.load(Ordering::Relaxed) + ctx.conn.commands,
            stats.rejected_connections.load(Ordering::Relaxed),
            store.expired_keys,
            store.evicted_keys,
            store.keyspace_hits,
            store.keyspace_misses,
            shared.command_stats.error_replies(),
            super::replication::info_stats(ctx),
        );
    }
    if include("replication") {
        text.push_str(&super::replication::info_section(ctx));
    }
    if include("cpu") {
        text.push_str(&info_cpu());
    }
    if include("commandstats") {
        text.push_str("# Commandstats\r\n");
        for (name, counts) in shared.command_stats.commands() {
            let per_call = match counts.calls {
                0 => 0.0,
                calls => counts.usec as f64 / calls as f64,
            };
            let _ = write!(
                text,
                "cmdstat_{name}:calls={},usec={},usec_per_call={per_call:.2},\
                 rejected_calls={},failed_calls={}\r\n",
                counts.calls, counts.usec, counts.rejected, counts.failed,
            );
        }
        text.push_str("\r\n");
    }
    if include("errorstats") {
        text.push_str("# Errorstats\r\n");
        for (code, count) in shared.command_stats.errors() {
            let _ = write!(text, "errorstat_{code}:count={count}\r\n");
        }
        text.push_str("\r\n");
    }
    if include("cluster") {
        text.push_str("# Cluster\r\ncluster_enabled:1\r\n\r\n");
    }
    if include("keyspace") {
        text.push_str("# Keyspace\r\n");
        if store.keys > 0 {
            let _ = write!(
                text,
                "db0:keys={},expires={},avg_ttl=0\r\n",
                store.keys, store.volatile_keys
            );
        }
        text.push_str("\r\n");
    }
    // A blank line separates sections; the last ends with its last line's
    // CRLF, as in Redis, so that two replies printed back to back do not
    // run together.
    let text = text.strip_suffix("\r\n").unwrap_or(&text);
    reply.verbatim(b"txt", text.as_bytes());
    Ok(())
}

/// INFO's persistence section with Redis's fields. Without a data
/// directory nothing is ever saved: the last "save" is the node's start (as
/// Redis reports its start time before the first save). Keycafe does not
/// fork, so the copy-on-write fields are always 0; `rdb_changes_since_last_save`
/// counts keys changed, as Redis's does.
fn info_persistence(shared: &Shared) -> String {
    let now_ms = crate::store::now_ms();
    let started_ms = now_ms.saturating_sub(shared.started.elapsed().as_millis() as u64);
    let changes = shared.store.stats().changes;
    let mut f = Persisted {
        changes,
        last_save_ms: started_ms,
        ..Persisted::default()
    };
    if let Some(persistence) = &shared.persistence {
        let snapshots = persistence.snapshots();
        f.changes = snapshots.schedule.unsaved(changes);
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
    }
    let flag = |b: bool| u8::from(b);
    let ok = |b: bool| if b { "ok" } else { "err" };
    let mut text = format!(
        "# Persistence\r\nloading:0\r\nasync_loading:0\r\ncurrent_cow_peak:0\r\n\
         current_cow_size:0\r\ncurrent_cow_size_age:0\r\ncurrent_fork_perc:0.00\r\n\
         current_save_keys_processed:0\r\ncurrent_save_keys_total:0\r\n\
         rdb_changes_since_last_save:{}\r\nrdb_bgsave_in_progress:{}\r\n\
         rdb_last_save_time:{}\r\nrdb_last_bgsave_status:{}\r\n\
         rdb_last_bgsave_time_sec:{}\r\nrdb_current_bgsave_time_sec:{}\r\nrdb_saves:{}\r\n\
         rdb_last_cow_size:0\r\nrdb_last_load_keys_expired:0\r\nrdb_last_load_keys_loaded:0\r\n\
         aof_enabled:{}\r\naof_rewrite_in_progress:{}\r\naof_rewrite_scheduled:0\r\n\
         aof_last_rewrite_time_sec:-1\r\naof_current_rewrite_time_sec:-1\r\n\
         aof_last_bgrewrite_status:{}\r\naof_rewrites:{}\r\n\
         aof_rewrites_consecutive_failures:0\r\naof_last_write_status:{}\r\n\
         aof_last_cow_size:0\r\nmodule_fork_in_progress:0\r\nmodule_fork_last_cow_size:0\r\n",
        f.changes,
        flag(f.bgsave_in_progress),
        f.last_save_ms / 1000,
        ok(f.bgsave_ok),
        f.bgsave_secs,
        f.current_bgsave_secs,
        f.saves,
        flag(f.aof_enabled),
        flag(f.aof_rewrite_in_progress),
        ok(f.aof_rewrite_ok),
        f.aof_rewrites,
        ok(f.aof_write_ok),
    );
    if f.aof_enabled {
        let _ = write!(
            text,
            "aof_current_size:{}\r\naof_base_size:{}\r\naof_pending_rewrite:0\r\n\
             aof_buffer_length:0\r\naof_pending_bio_fsync:0\r\naof_delayed_fsync:{}\r\n",
            f.aof_current_size, f.aof_base_size, f.aof_delayed_fsync
        );
    }
    text.push_str("\r\n");
    text
}

/// The figures of INFO's persistence section.
struct Persisted {
    changes: u64,
    last_save_ms: u64,
    bgsave_in_progress: bool,
    bgsave_ok: bool,
    bgsave_secs: i64,
    current_bgsave_secs: i64,
    saves: u64,
    aof_enabled: bool,
    aof_rewrite_in_progress: bool,
    aof_rewrite_ok: bool,
    aof_rewrites: u64,
    aof_write_ok: bool,
    aof_base_size: u64,
    aof_current_size: u64,
    aof_delayed_fsync: u64,
}

impl Default for Persisted {
    fn default() -> Persisted {
        Persisted {
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

/// INFO's cpu section: seconds of CPU used, from getrusage. A Keycafe node
/// has no main thread (every worker thread serves connections), so the
/// `_main_thread` fields are those of the thread that answers INFO.
fn info_cpu() -> String {
    use nix::sys::resource::{UsageWho, getrusage};
    let seconds = |who: UsageWho| match getrusage(who) {
        Ok(usage) => {
            let secs = |t: nix::sys::time::TimeVal| format!("{}.{:06}", t.tv_sec(), t.tv_usec());
            (secs(usage.system_time()), secs(usage.user_time()))
        }
        Err(_) => ("0.000000".to_string(), "0.000000".to_string()),
    };
    let (sys, user) = seconds(UsageWho::RUSAGE_SELF);
    let (sys_children, user_children) = seconds(UsageWho::RUSAGE_CHILDREN);
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let (sys_thread, user_thread) = seconds(UsageWho::RUSAGE_THREAD);
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let (sys_thread, user_thread) = (sys.clone(), user.clone());
    format!(
        "# CPU\r\nused_cpu_sys:{sys}\r\nused_cpu_user:{user}\r\n\
         used_cpu_sys_children:{sys_children}\r\nused_cpu_user_children:{user_children}\r\n\
         used_cpu_sys_main_thread:{sys_thread}\r\nused_cpu_user_main_thread:{user_thread}\r\n\r\n"
    )
}

/// INFO's memory section, with Redis's field names. `used_memory` is what
/// `maxmemory` is compared with: the store's exact bytes plus client buffers
/// and the replication backlog (see `docs/memory.md`).
fn info_memory(shared: &crate::state::Shared, store: &crate::store::StoreStats) -> String {
    let memory = shared.memory();
    let used = store.used_bytes + memory.outside_store();
    let rss = resident_memory_bytes().unwrap_or(0);
    let maxmemory = shared.runtime.maxmemory();
    let fragmentation = match used {
        0 => 0.0,
        used => rss as f64 / used as f64,
    };
    format!(
        "# Memory\r\nused_memory:{used}\r\nused_memory_human:{}\r\n\
         used_memory_rss:{rss}\r\nused_memory_rss_human:{}\r\n\
         used_memory_dataset:{}\r\nmem_clients_normal:{}\r\n\
         mem_replication_backlog:{}\r\nmaxmemory:{maxmemory}\r\nmaxmemory_human:{}\r\n\
         maxmemory_policy:{}\r\nmaxmemory_samples:{}\r\n\
         mem_fragmentation_ratio:{fragmentation:.2}\r\nmem_allocator:libc\r\n\r\n",
        human_bytes(used as u64),
        human_bytes(rss),
        store.used_bytes,
        memory.client_buffers(),
        memory.backlog(),
        human_bytes(maxmemory as u64),
        shared.store.policy().name(),
        shared.store.samples(),
    )
}

/// The process's resident set size, from /proc on Linux.
fn resident_memory_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "K", "M", "G"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.2}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sections(request: &[&str]) -> Vec<&'static str> {
        let mut source = Vec::new();
        let mut spans = Vec::new();
        for word in std::iter::once("INFO").chain(request.iter().copied()) {
            let start = source.len();
            source.extend_from_slice(word.as_bytes());
            spans.push(start..source.len());
        }
        wanted_sections(Args::new(&source, &spans))
    }

    #[test]
    fn sections_come_in_redis_order() {
        let default = [
            "server",
            "clients",
            "memory",
            "persistence",
            "stats",
            "replication",
            "cpu",
            "errorstats",
            "cluster",
            "keyspace",
        ];
        assert_eq!(sections(&[]), default);
        assert_eq!(sections(&["default"]), default);
        assert_eq!(sections(&["all"]).len(), default.len() + 1);
        assert_eq!(sections(&["EVERYTHING"]), sections(&["all"]));
        assert_eq!(sections(&["cpu", "Server"]), ["server", "cpu"]);
        assert_eq!(sections(&["default", "commandstats"]), sections(&["all"]));
        assert!(sections(&["nosuch"]).is_empty());
    }

    #[test]
    fn cpu_reports_seconds_with_six_decimals() {
        let text = info_cpu();
        assert!(text.starts_with("# CPU\r\nused_cpu_sys:"), "{text}");
        for line in text.lines().skip(1).filter(|l| !l.is_empty()) {
            let (_, value) = line.split_once(':').expect("field:value");
            let (_, micros) = value.split_once('.').expect("seconds.micros");
            assert_eq!(micros.len(), 6, "{line}");
        }
    }
}
