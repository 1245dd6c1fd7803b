//! `/metrics` for a known state, read back by a Prometheus text parser, and
//! `docs/metrics.md` against what is emitted.

use std::collections::BTreeMap;
use std::time::Duration;

use prometheus_parse::{Sample, Scrape, Value};

use super::*;
use crate::http::metrics::{FAMILIES, Kind, encode};

/// A heartbeat from connection `conn` with keys, a command count, memory and
/// a replication report.
fn beat(h: &mut Harness, conn: ConnId, keys: u64, commands: u64, replication: ReplicationReport) {
    let report = NodeReport {
        epoch: h.config().epoch,
        keys,
        commands_processed: Some(commands),
        used_memory: Some(1_000_000 + keys * 100),
        replication,
        ..NodeReport::default()
    };
    h.send(conn, NodeMessage::Heartbeat(report));
}

fn primary(offset: u64) -> ReplicationReport {
    ReplicationReport {
        offset,
        ..ReplicationReport::default()
    }
}

/// Primaries 2 and 4 (4 promoted in place of 1, which failed: one automatic
/// failover) and 5 (just joined, taking slots in a window of migrations);
/// replicas 1 (silent and disconnected) and 3, both of node 4. Nodes 2, 3
/// and 4 have heartbeated twice, two seconds apart, since the failover.
fn a_cluster_with_one_of_everything() -> Harness {
    let mut h = Harness::new(Settings::default());
    h.register_only(1, node(1));
    h.register_only(2, node(2));
    h.tick();
    h.register_replica_only(3, node(3), &node(1).client_addr);
    h.register_replica_only(4, node(4), &node(1).client_addr);
    h.tick();
    beat(&mut h, 1, 10, 0, primary(500));
    beat(&mut h, 2, 20, 0, primary(0));
    beat(&mut h, 3, 10, 0, replica_report(1, 400, true, true));
    beat(&mut h, 4, 10, 0, replica_report(1, 450, true, true));

    // Node 1 goes silent; its replicas lose it; 4 (further ahead) takes over.
    h.advance(Duration::from_secs(6));
    beat(&mut h, 2, 20, 1_000, primary(0));
    beat(&mut h, 3, 10, 7, replica_report(1, 400, false, true));
    beat(&mut h, 4, 10, 400, replica_report(1, 450, false, true));
    h.tick();
    assert_eq!(h.primary_of(1), Some(4), "failed over");
    h.step(Event::Disconnected { conn: 1 });

    h.advance(Duration::from_secs(2));
    beat(&mut h, 2, 25, 3_000, primary(0));
    beat(&mut h, 3, 11, 7, replica_report(4, 550, true, true));
    beat(&mut h, 4, 11, 900, primary(600));

    h.register_only(5, node(5));
    h.tick();
    h
}

/// The text of `/metrics` for `h`, parsed.
fn scrape(h: &Harness) -> Scrape {
    let mut view = h.coordinator.view(h.now);
    view.group = Some(a_group_of_three_led_here());
    let text = encode(&view);
    Scrape::parse(text.lines().map(|line| Ok(line.to_string()))).expect("parses")
}

/// The group as its leader, member 1 of three, sees it.
fn a_group_of_three_led_here() -> crate::group::view::GroupView {
    let member = |id: u64| crate::group::view::MemberView {
        id,
        group_addr: format!("10.0.0.{id}:9900"),
        node_addr: format!("10.0.0.{id}:9800"),
        http_addr: None,
        is_me: id == 1,
        is_leader: id == 1,
        matched: Some(40),
        linked: (id != 1).then_some(true),
        heard_ms: None,
    };
    crate::group::view::GroupView {
        id: 1,
        role: "leader".into(),
        leader: Some(1),
        term: 7,
        commit: 40,
        applied: 39,
        last_index: 41,
        members: (1..=3).map(member).collect(),
    }
}

#[test]
fn the_group_is_in_the_metrics() {
    let m = scrape(&a_cluster_with_one_of_everything());
    for (name, expected) in [
        ("keycafe_coordinator_group_leader", 1.0),
        ("keycafe_coordinator_group_term", 7.0),
        ("keycafe_coordinator_group_commit_index", 40.0),
        ("keycafe_coordinator_group_applied_index", 39.0),
        ("keycafe_coordinator_group_members", 3.0),
    ] {
        assert_eq!(value(&m, name, &[]), expected, "{name}");
    }
}

/// The one sample of `name` whose labels include `labels`.
fn sample<'a>(scrape: &'a Scrape, name: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
    let mut found = scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|&(k, v)| s.labels.get(k) == Some(v)));
    let first = found.next();
    assert!(
        found.next().is_none(),
        "{name} {labels:?} is not one sample"
    );
    first
}

fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    match sample(scrape, name, labels).map(|s| &s.value) {
        Some(Value::Counter(v) | Value::Gauge(v)) => *v,
        other => panic!("{name} {labels:?}: {other:?}"),
    }
}

/// `value` for node `n`'s sample of `name`.
fn of(scrape: &Scrape, name: &str, n: u16) -> f64 {
    value(scrape, name, &[("node", &node(n).id)])
}

fn has(scrape: &Scrape, name: &str, n: u16) -> bool {
    sample(scrape, name, &[("node", &node(n).id)]).is_some()
}

/// The metric names `docs/metrics.md` lists for the coordinator, with
/// their documented types: the first two cells of each table row whose
/// first cell is `keycafe_…`, in the section "The coordinator's /metrics"
/// (a node's own are in another).
fn documented() -> BTreeMap<String, String> {
    let doc = include_str!("../../../../docs/metrics.md");
    let documented =
        keycafe_core::prometheus::documented_metrics(doc, "The coordinator's `/metrics`");
    assert!(
        !documented.is_empty(),
        "docs/metrics.md lists metrics under \"The coordinator's `/metrics`\""
    );
    documented
}

#[test]
fn the_metrics_parse_back_with_the_state_they_describe() {
    let h = a_cluster_with_one_of_everything();
    let view = h.coordinator.view(h.now);
    let m = scrape(&h);

    // Every family: its help, its type, and at least one sample here.
    for family in FAMILIES {
        assert_eq!(
            m.docs.get(family.name).map(String::as_str),
            Some(family.help)
        );
        let samples: Vec<&Sample> = m
            .samples
            .iter()
            .filter(|s| s.metric == family.name)
            .collect();
        assert!(!samples.is_empty(), "no sample of {}", family.name);
        for s in samples {
            let typed = matches!(
                (&s.value, family.kind),
                (Value::Counter(_), Kind::Counter) | (Value::Gauge(_), Kind::Gauge)
            );
            assert!(typed, "{} typed as {:?}", family.name, s.value);
        }
    }

    // The cluster.
    assert_eq!(
        value(&m, "keycafe_cluster_epoch", &[]),
        h.config().epoch as f64
    );
    assert_eq!(
        value(&m, "keycafe_cluster_nodes", &[("role", "primary")]),
        3.0
    );
    assert_eq!(
        value(&m, "keycafe_cluster_nodes", &[("role", "replica")]),
        2.0
    );
    assert_eq!(value(&m, "keycafe_cluster_slots_assigned", &[]), ALL as f64);
    let in_flight = h.config().migrations.len();
    assert_eq!(
        in_flight,
        Settings::default().max_migrations,
        "one full window"
    );
    assert_eq!(
        value(&m, "keycafe_cluster_migrations_in_flight", &[]),
        in_flight as f64
    );
    assert!(view.queued_moves > 0);
    assert_eq!(
        value(&m, "keycafe_cluster_migrations_queued", &[]),
        view.queued_moves as f64
    );
    let failovers = |reason| value(&m, "keycafe_cluster_failovers_total", &[("reason", reason)]);
    assert_eq!(
        [
            failovers("automatic"),
            failovers("manual"),
            failovers("restarted")
        ],
        [1.0, 0.0, 0.0]
    );

    // Every node's labels.
    for n in 1..=5 {
        let id = node(n).id;
        let info = sample(&m, "keycafe_node_info", &[("node", &id)]).expect("info");
        assert_eq!(info.labels.get("addr"), Some(node(n).client_addr.as_str()));
        assert_eq!(info.labels.get("bus_addr"), Some(node(n).bus_addr.as_str()));
        let replica = matches!(n, 1 | 3);
        let role = if replica { "replica" } else { "primary" };
        assert_eq!(info.labels.get("role"), Some(role));
        let primary = if replica { node(4).id } else { String::new() };
        assert_eq!(info.labels.get("primary"), Some(primary.as_str()));
        let slots = view
            .nodes
            .iter()
            .find(|v| v.id == id)
            .expect("a node")
            .slots;
        assert_eq!(of(&m, "keycafe_node_slots", n), slots as f64);
    }

    // Health: node 1 is silent and disconnected, node 5 has just joined.
    let up: Vec<f64> = (1..=5).map(|n| of(&m, "keycafe_node_up", n)).collect();
    assert_eq!(up, [0.0, 1.0, 1.0, 1.0, 1.0]);
    assert_eq!(of(&m, "keycafe_node_connected", 1), 0.0);
    assert_eq!(of(&m, "keycafe_node_connected", 5), 1.0);
    assert_eq!(of(&m, "keycafe_node_leaving", 2), 0.0);
    assert_eq!(of(&m, "keycafe_node_last_seen_seconds", 1), 8.0);
    assert_eq!(of(&m, "keycafe_node_last_seen_seconds", 2), 0.0);
    assert_eq!(
        of(&m, "keycafe_node_config_epoch", 2),
        view.nodes[1].reported_epoch.expect("reported") as f64
    );

    // Heartbeat figures, as the nodes last reported them.
    assert_eq!(of(&m, "keycafe_node_keys", 2), 25.0);
    assert_eq!(
        of(&m, "keycafe_node_keys", 1),
        10.0,
        "the last report of a silent node"
    );
    assert!(
        !has(&m, "keycafe_node_keys", 5),
        "nothing reported yet: no sample"
    );
    assert_eq!(of(&m, "keycafe_node_replication_offset_bytes", 4), 600.0);
    assert_eq!(of(&m, "keycafe_node_replication_lag_bytes", 3), 50.0);
    assert!(
        !has(&m, "keycafe_node_replication_lag_bytes", 4),
        "a primary"
    );
    assert_eq!(of(&m, "keycafe_node_replica_link_up", 3), 1.0);
    assert_eq!(of(&m, "keycafe_node_commands_processed_total", 2), 3_000.0);
    assert_eq!(of(&m, "keycafe_node_used_memory_bytes", 2), 1_002_500.0);
    assert!(!has(&m, "keycafe_node_used_memory_bytes", 5));

    // Rates over the last two seconds.
    assert_eq!(of(&m, "keycafe_node_ops_per_second", 2), 1_000.0);
    assert_eq!(of(&m, "keycafe_node_ops_per_second", 4), 250.0);
    assert_eq!(of(&m, "keycafe_node_ops_per_second", 3), 0.0);
    assert!(!has(&m, "keycafe_node_ops_per_second", 1), "failing: stale");
    assert!(
        !has(&m, "keycafe_node_ops_per_second", 5),
        "one count is no rate"
    );
}

#[test]
fn the_docs_list_exactly_the_metrics_emitted() {
    let emitted = scrape(&a_cluster_with_one_of_everything()).samples;
    let emitted = emitted.into_iter().map(|s| s.metric);
    let checked = keycafe_core::prometheus::check_documented(FAMILIES, emitted, &documented());
    assert_eq!(
        checked,
        Ok(()),
        "docs/metrics.md against the coordinator's /metrics"
    );
}

#[test]
fn an_empty_cluster_still_has_every_family() {
    let h = Harness::new(Settings::default());
    let text = encode(&h.coordinator.view(h.now));
    for family in FAMILIES {
        assert!(
            text.contains(&format!(
                "# TYPE {} {}\n",
                family.name,
                family.kind.as_str()
            )),
            "{}",
            family.name
        );
    }
    let m = scrape(&h);
    assert_eq!(value(&m, "keycafe_cluster_slots_assigned", &[]), 0.0);
    assert_eq!(
        value(&m, "keycafe_cluster_nodes", &[("role", "primary")]),
        0.0
    );
    assert!(
        m.samples
            .iter()
            .all(|s| !s.metric.starts_with("keycafe_node_"))
    );
}
