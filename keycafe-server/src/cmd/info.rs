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
//!
//! The figures come from [`crate::figures`], which `/metrics` reads too;
//! this module only writes them as Redis does.

use std::fmt::Write as _;
use std::time::Duration;

use keycafe_core::{Args, Reply};

use super::server::{KEYCAFE_VERSION, REDIS_COMPAT_VERSION};
use super::{CmdResult, Ctx};
use crate::figures;

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
    let store = shared.store.stats();
    let mut text = String::new();
    if include("server") {
        text.push_str(&info_server(&figures::Server::gather(shared)));
    }
    if include("clients") {
        let clients = figures::Clients::gather(shared);
        let _ = write!(
            text,
            "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:{}\r\n\r\n",
            clients.connected, clients.maxclients, clients.blocked,
        );
    }
    if include("memory") {
        text.push_str(&info_memory(&figures::Memory::gather(shared, &store)));
    }
    if include("persistence") {
        let persistence = figures::Persistence::gather(shared, &store);
        text.push_str(&info_persistence(&persistence));
    }
    if include("stats") {
        let mut stats = figures::Stats::gather(shared, &store);
        // This connection's own commands of this batch: not added yet.
        stats.commands_processed += ctx.conn.commands;
        text.push_str(&info_stats(&stats));
    }
    if include("replication") {
        let replication = figures::Replication::gather(shared);
        text.push_str(&super::replication::info_section(&replication));
    }
    if include("cpu") {
        text.push_str(&info_cpu(&figures::Cpu::gather()));
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
        let keyspace = figures::Keyspace::of(&store);
        text.push_str("# Keyspace\r\n");
        if keyspace.keys > 0 {
            let _ = write!(
                text,
                "db0:keys={},expires={},avg_ttl=0\r\n",
                keyspace.keys, keyspace.expires
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

/// INFO's server section.
fn info_server(f: &figures::Server) -> String {
    format!(
        "# Server\r\nkeycafe_version:{KEYCAFE_VERSION}\r\nredis_version:{REDIS_COMPAT_VERSION}\r\n\
         redis_mode:cluster\r\nos:{}\r\narch_bits:{}\r\nprocess_id:{}\r\nrun_id:{}\r\n\
         tcp_port:{}\r\nuptime_in_seconds:{}\r\nuptime_in_days:{}\r\n\r\n",
        std::env::consts::OS,
        usize::BITS,
        std::process::id(),
        f.node_id,
        f.tcp_port,
        f.uptime_secs,
        f.uptime_secs / 86_400,
    )
}

/// INFO's stats section, with the replication stream's syncs.
fn info_stats(f: &figures::Stats) -> String {
    format!(
        "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\n\
         rejected_connections:{}\r\nexpired_keys:{}\r\nevicted_keys:{}\r\n\
         keyspace_hits:{}\r\nkeyspace_misses:{}\r\ntotal_error_replies:{}\r\n\
         sync_full:{}\r\nsync_partial_ok:{}\r\nsync_partial_err:{}\r\n\r\n",
        f.connections_received,
        f.commands_processed,
        f.rejected_connections,
        f.expired_keys,
        f.evicted_keys,
        f.keyspace_hits,
        f.keyspace_misses,
        f.error_replies,
        f.sync_full,
        f.sync_partial_ok,
        f.sync_partial_err,
    )
}

/// INFO's persistence section with Redis's fields (see
/// [`figures::Persistence`]). Keycafe does not fork, so the copy-on-write
/// fields are always 0; `rdb_changes_since_last_save` counts keys changed,
/// as Redis's does.
fn info_persistence(f: &figures::Persistence) -> String {
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

/// INFO's cpu section: seconds with six decimals, as Redis writes them.
fn info_cpu(f: &figures::Cpu) -> String {
    let s = |d: Duration| format!("{}.{:06}", d.as_secs(), d.subsec_micros());
    format!(
        "# CPU\r\nused_cpu_sys:{}\r\nused_cpu_user:{}\r\n\
         used_cpu_sys_children:{}\r\nused_cpu_user_children:{}\r\n\
         used_cpu_sys_main_thread:{}\r\nused_cpu_user_main_thread:{}\r\n\r\n",
        s(f.sys),
        s(f.user),
        s(f.sys_children),
        s(f.user_children),
        s(f.sys_main_thread),
        s(f.user_main_thread),
    )
}

/// INFO's memory section, with Redis's field names. `used_memory` is what
/// `maxmemory` is compared with (see `docs/memory.md`).
fn info_memory(f: &figures::Memory) -> String {
    let rss = f.rss.unwrap_or(0);
    let fragmentation = match f.used {
        0 => 0.0,
        used => rss as f64 / used as f64,
    };
    format!(
        "# Memory\r\nused_memory:{}\r\nused_memory_human:{}\r\n\
         used_memory_rss:{rss}\r\nused_memory_rss_human:{}\r\n\
         used_memory_dataset:{}\r\nmem_clients_normal:{}\r\n\
         mem_replication_backlog:{}\r\nmaxmemory:{}\r\nmaxmemory_human:{}\r\n\
         maxmemory_policy:{}\r\nmaxmemory_samples:{}\r\n\
         mem_fragmentation_ratio:{fragmentation:.2}\r\nmem_allocator:libc\r\n\r\n",
        f.used,
        human_bytes(f.used),
        human_bytes(rss),
        f.dataset,
        f.clients_normal,
        f.replication_backlog,
        f.maxmemory,
        human_bytes(f.maxmemory),
        f.policy,
        f.samples,
    )
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
        let text = info_cpu(&figures::Cpu {
            user: Duration::from_micros(2_000_050),
            ..figures::Cpu::gather()
        });
        assert!(text.contains("\r\nused_cpu_user:2.000050\r\n"), "{text}");
        assert!(text.starts_with("# CPU\r\nused_cpu_sys:"), "{text}");
        for line in text.lines().skip(1).filter(|l| !l.is_empty()) {
            let (_, value) = line.split_once(':').expect("field:value");
            let (_, micros) = value.split_once('.').expect("seconds.micros");
            assert_eq!(micros.len(), 6, "{line}");
        }
    }
}
