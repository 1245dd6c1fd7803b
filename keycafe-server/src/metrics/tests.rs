//! `/metrics` for known figures, read back by a Prometheus text parser, and
//! `docs/metrics.md` against what is emitted.

use std::collections::BTreeMap;
use std::time::Duration;

use keycafe_core::prometheus::{Kind, check_names};
use prometheus_parse::{Sample, Scrape, Value};

use super::families::{FAMILIES, encode};
use crate::figures::{self, Figures};

/// A replica in cluster mode with its append-only file on: every metric
/// has a sample.
fn a_replica_with_everything() -> Figures {
    Figures {
        server: figures::Server {
            node_id: "5f0c".repeat(10),
            tcp_port: 9815,
            uptime_secs: 3_700,
        },
        clients: figures::Clients {
            connected: 7,
            maxclients: 10_000,
            blocked: 1,
        },
        memory: figures::Memory {
            used: 2_500_000,
            rss: Some(9_000_000),
            dataset: 1_500_000,
            clients_normal: 200_000,
            replication_backlog: 800_000,
            maxmemory: 64 << 20,
            policy: "allkeys-lru",
            samples: 5,
        },
        persistence: figures::Persistence {
            changes: 12,
            last_save_ms: 1_700_000_000_999,
            bgsave_ok: false,
            saves: 3,
            aof_enabled: true,
            aof_rewrite_in_progress: true,
            aof_rewrites: 2,
            aof_base_size: 1_000,
            aof_current_size: 4_096,
            aof_delayed_fsync: 1,
            ..figures::Persistence::default()
        },
        stats: figures::Stats {
            connections_received: 40,
            commands_processed: 123_456,
            rejected_connections: 2,
            expired_keys: 5,
            evicted_keys: 6,
            keyspace_hits: 70,
            keyspace_misses: 30,
            error_replies: 4,
            sync_full: 1,
            sync_partial_ok: 8,
            sync_partial_err: 9,
        },
        replication: figures::Replication {
            offset: 777,
            replid: "a".repeat(40),
            replid2: "0".repeat(40),
            second_offset: 0,
            backlog_active: true,
            backlog_size: 1 << 20,
            backlog_first_byte: 1,
            backlog_histlen: 776,
            upstream: Some(figures::Upstream {
                primary_addr: "10.0.0.11:9814".into(),
                link_up: true,
                last_io_secs: Some(0),
                syncing: false,
            }),
            replicas: Vec::new(),
        },
        cpu: figures::Cpu {
            sys: Duration::from_millis(1_250),
            user: Duration::from_micros(3_000_500),
            ..figures::Cpu::default()
        },
        cluster: Some(figures::Cluster {
            epoch: 42,
            slots: 0,
        }),
        keyspace: figures::Keyspace {
            keys: 1_000,
            expires: 250,
        },
    }
}

fn scrape(f: &Figures) -> Scrape {
    let text = encode(f);
    Scrape::parse(text.lines().map(|line| Ok(line.to_string()))).expect("parses")
}

/// The value of the one sample of `name`, if there is one.
fn value(scrape: &Scrape, name: &str) -> Option<f64> {
    let mut found = scrape.samples.iter().filter(|s| s.metric == name);
    let first = found.next()?;
    assert!(found.next().is_none(), "{name} has more than one sample");
    match first.value {
        Value::Counter(v) | Value::Gauge(v) => Some(v),
        ref other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn the_metrics_parse_back_with_the_figures_they_describe() {
    let f = a_replica_with_everything();
    let m = scrape(&f);

    // Every family: its help, its type, and a sample here.
    for family in FAMILIES {
        assert_eq!(
            m.docs.get(family.name).map(String::as_str),
            Some(family.help),
            "{}",
            family.name
        );
        let samples: Vec<&Sample> = m
            .samples
            .iter()
            .filter(|s| s.metric == family.name)
            .collect();
        assert_eq!(samples.len(), 1, "{}", family.name);
        let typed = matches!(
            (&samples[0].value, family.kind),
            (Value::Counter(_), Kind::Counter) | (Value::Gauge(_), Kind::Gauge)
        );
        assert!(typed, "{} typed as {:?}", family.name, samples[0].value);
    }

    let info = m
        .samples
        .iter()
        .find(|s| s.metric == "keycafe_info")
        .expect("info");
    assert_eq!(info.labels.get("node"), Some(f.server.node_id.as_str()));
    assert_eq!(info.labels.get("role"), Some("replica"));
    assert_eq!(info.labels.get("mode"), Some("cluster"));
    assert_eq!(info.labels.get("version"), Some(env!("CARGO_PKG_VERSION")));
    assert_eq!(value(&m, "keycafe_info"), Some(1.0));

    let expected = [
        ("keycafe_uptime_in_seconds", 3_700.0),
        ("keycafe_connected_clients", 7.0),
        ("keycafe_blocked_clients", 1.0),
        ("keycafe_maxclients", 10_000.0),
        ("keycafe_connections_received_total", 40.0),
        ("keycafe_rejected_connections_total", 2.0),
        ("keycafe_node_commands_processed_total", 123_456.0),
        ("keycafe_error_replies_total", 4.0),
        ("keycafe_node_keys", 1_000.0),
        ("keycafe_expires", 250.0),
        ("keycafe_expired_keys_total", 5.0),
        ("keycafe_evicted_keys_total", 6.0),
        ("keycafe_keyspace_hits_total", 70.0),
        ("keycafe_keyspace_misses_total", 30.0),
        ("keycafe_node_used_memory_bytes", 2_500_000.0),
        ("keycafe_used_memory_rss_bytes", 9_000_000.0),
        ("keycafe_used_memory_dataset_bytes", 1_500_000.0),
        ("keycafe_mem_clients_normal_bytes", 200_000.0),
        ("keycafe_mem_replication_backlog_bytes", 800_000.0),
        ("keycafe_maxmemory_bytes", 67_108_864.0),
        ("keycafe_rdb_changes_since_last_save", 12.0),
        ("keycafe_rdb_bgsave_in_progress", 0.0),
        // Whole seconds, as INFO's rdb_last_save_time.
        ("keycafe_rdb_last_save_time_seconds", 1_700_000_000.0),
        ("keycafe_rdb_last_bgsave_status", 0.0),
        ("keycafe_rdb_saves_total", 3.0),
        ("keycafe_aof_enabled", 1.0),
        ("keycafe_aof_rewrite_in_progress", 1.0),
        ("keycafe_aof_last_bgrewrite_status", 1.0),
        ("keycafe_aof_last_write_status", 1.0),
        ("keycafe_aof_rewrites_total", 2.0),
        ("keycafe_aof_current_size_bytes", 4_096.0),
        ("keycafe_aof_delayed_fsync_total", 1.0),
        ("keycafe_node_replication_offset_bytes", 777.0),
        ("keycafe_connected_slaves", 0.0),
        ("keycafe_node_replica_link_up", 1.0),
        ("keycafe_master_sync_in_progress", 0.0),
        ("keycafe_sync_full_total", 1.0),
        ("keycafe_sync_partial_ok_total", 8.0),
        ("keycafe_sync_partial_err_total", 9.0),
        ("keycafe_used_cpu_sys_seconds_total", 1.25),
        ("keycafe_used_cpu_user_seconds_total", 3.0005),
        ("keycafe_node_slots", 0.0),
        ("keycafe_node_config_epoch", 42.0),
    ];
    for (name, expected) in expected {
        assert_eq!(value(&m, name), Some(expected), "{name}");
    }
    assert_eq!(
        expected.len() + 1,
        FAMILIES.len(),
        "every family but the info gauge is checked above"
    );
}

#[test]
fn what_a_standalone_primary_does_not_have_is_left_out() {
    let mut f = a_replica_with_everything();
    f.cluster = None;
    f.replication.upstream = None;
    f.persistence.aof_enabled = false;
    f.memory.rss = None;
    let text = encode(&f);
    let m = scrape(&f);
    for absent in [
        "keycafe_node_slots",
        "keycafe_node_config_epoch",
        "keycafe_node_replica_link_up",
        "keycafe_master_sync_in_progress",
        "keycafe_aof_current_size_bytes",
        "keycafe_aof_delayed_fsync_total",
        "keycafe_used_memory_rss_bytes",
    ] {
        assert_eq!(value(&m, absent), None, "{absent}");
        // Still described, so that a scraper knows the metric.
        assert!(text.contains(&format!("# TYPE {absent} ")), "{absent}");
    }
    let info = m
        .samples
        .iter()
        .find(|s| s.metric == "keycafe_info")
        .expect("info");
    assert_eq!(info.labels.get("role"), Some("primary"));
    assert_eq!(info.labels.get("mode"), Some("standalone"));
    assert_eq!(value(&m, "keycafe_aof_enabled"), Some(0.0));
}

#[test]
fn names_are_unique_and_well_formed() {
    assert_eq!(check_names(FAMILIES, "keycafe_"), Ok(()));
}

/// The metric names `docs/metrics.md` lists for a node, with their
/// documented types: the first two cells of each table row whose first
/// cell is `keycafe_…`, in the section "A node's /metrics".
fn documented() -> BTreeMap<String, String> {
    let doc = include_str!("../../../docs/metrics.md");
    let documented = keycafe_core::prometheus::documented_metrics(doc, "A node's `/metrics`");
    assert!(
        !documented.is_empty(),
        "docs/metrics.md lists metrics under \"A node's `/metrics`\""
    );
    documented
}

#[test]
fn the_docs_list_exactly_the_metrics_emitted() {
    let emitted = scrape(&a_replica_with_everything()).samples;
    let emitted = emitted.into_iter().map(|s| s.metric);
    let checked = keycafe_core::prometheus::check_documented(FAMILIES, emitted, &documented());
    assert_eq!(checked, Ok(()), "docs/metrics.md against a node's /metrics");
}
