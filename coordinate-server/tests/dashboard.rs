//! The dashboard and the JSON API over HTTP.

mod common;

use std::time::Duration;

use common::{ADMIN_TOKEN, Coordinator, FakeNode, PATIENCE, node_info, settled};
use coordinate_server::state::events::{ClusterEvent, FailoverReason};
use coordinate_server::state::view::Role;
use keycafe_core::coord::{NodeMessage, NodeReport, ReplicationReport};
use prometheus_parse::{Scrape, Value};

#[tokio::test]
async fn the_dashboard_renders_and_the_api_parses() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(dir.path(), |_| {}).await;
    // Empty cluster first.
    let page = reqwest::get(coordinator.url("/")).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("No node has registered")
    );

    let mut a = FakeNode::start(coordinator.node_addr, node_info(1)).await;
    let b = FakeNode::start(coordinator.node_addr, node_info(2)).await;
    a.wait_for("two nodes", |s| s.latest().is_some_and(|c| settled(c, 2)))
        .await;

    let response = reqwest::get(coordinator.url("/")).await.unwrap();
    assert_eq!(response.status(), 200);
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("default-src 'none'"));
    let page = response.text().await.unwrap();
    assert!(
        page.contains("<svg") && page.contains("viewBox=\"0 0 16384"),
        "{page}"
    );
    assert!(page.contains(&b.info.client_addr));
    assert!(page.contains("healthy"));
    assert!(
        !page.contains("<script") && !page.contains("src=\"http"),
        "nothing loaded from elsewhere"
    );

    let view = coordinator.cluster().await;
    assert_eq!(view.nodes.len(), 2);
    assert_eq!(view.slots_assigned, 16384);
    let raw = coordinator.cluster_json().await;
    assert_eq!(raw["config"]["slots"].as_array().unwrap().len(), 2);
    assert_eq!(raw["nodes"][0]["state"], "healthy");

    let confirm = reqwest::get(coordinator.url(&format!("/nodes/{}/leave", b.info.id)))
        .await
        .unwrap();
    assert_eq!(confirm.status(), 200);
    assert!(confirm.text().await.unwrap().contains("method=\"post\""));
    let missing = reqwest::get(coordinator.url("/nodes/nobody/leave"))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    // The confirmation's button: refused from another site, then done.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = coordinator.url(&format!("/nodes/{}/leave", b.info.id));
    let forged = http
        .post(&form)
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    // Without the admin token (or with a wrong one) the page comes back
    // with a message, and nothing changes.
    for body in ["", "admin_token=not-the-token"] {
        let refused = http
            .post(&form)
            .header("sec-fetch-site", "same-origin")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 401, "{body:?}");
        let page = refused.text().await.unwrap();
        assert!(
            page.contains("not the admin token") && page.contains("type=\"password\""),
            "{page}"
        );
    }
    assert!(coordinator.cluster().await.nodes.iter().all(|n| !n.leaving));
    b.set_auto_done(false); // keep b "leaving" while we look
    let posted = http
        .post(&form)
        .header("sec-fetch-site", "same-origin")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("admin_token={ADMIN_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 303);
    assert_eq!(posted.headers()["location"], "/");
    let again = reqwest::get(&form).await.unwrap().text().await.unwrap();
    assert!(
        again.contains("already been asked to leave") && !again.contains("<form"),
        "{again}"
    );
    b.set_auto_done(true);
    a.wait_for("b gone", |s| s.latest().is_some_and(|c| settled(c, 1)))
        .await;
    let last = reqwest::get(coordinator.url(&format!("/nodes/{}/leave", a.info.id)))
        .await
        .unwrap();
    assert!(last.text().await.unwrap().contains("last primary"));
    coordinator.stop().await.unwrap();
}

#[tokio::test]
async fn roles_lag_and_a_failover_are_shown() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(dir.path(), |c| c.node_timeout_ms = 1000).await;
    let mut a = FakeNode::start(coordinator.node_addr, node_info(1)).await;
    a.set_replication(ReplicationReport {
        offset: 1000,
        replicas_connected: 1,
        ..ReplicationReport::default()
    });
    let mut r =
        FakeNode::start_replica(coordinator.node_addr, node_info(2), &a.info.client_addr).await;
    let streaming = ReplicationReport {
        offset: 990,
        following: Some(a.info.id.clone()),
        link_up: true,
        synced: true,
        ..ReplicationReport::default()
    };
    r.set_replication(streaming.clone());
    coordinator
        .wait_for("the slots assigned and the replica's lag", |v| {
            v.slots_assigned == 16384 && v.nodes.get(1).is_some_and(|n| n.lag == Some(10))
        })
        .await;

    // The primary's heartbeats are answered with leases of half the node
    // timeout; the replica's with empty ones.
    let seen = a.wait_for("leases", |s| s.leases.len() >= 2).await;
    assert!(seen.leases.iter().all(|&(seq, ms)| seq > 0 && ms == 500));
    assert!(seen.leases.windows(2).all(|w| w[0].0 < w[1].0));
    let seen = r.wait_for("answers", |s| s.leases.len() >= 2).await;
    assert!(
        seen.leases.iter().all(|&(_, ms)| ms == 0),
        "{:?}",
        seen.leases
    );

    let raw = coordinator.cluster_json().await;
    let (primary, replica) = (&raw["nodes"][0], &raw["nodes"][1]);
    assert_eq!(primary["role"], "primary");
    assert_eq!(primary["replica_of"], serde_json::Value::Null);
    assert_eq!(primary["offset"], 1000);
    assert_eq!(primary["slots"], 16384);
    assert_eq!(replica["role"], "replica");
    assert_eq!(replica["replica_of"], a.info.id.as_str());
    assert_eq!(
        (replica["offset"].clone(), replica["lag"].clone()),
        (990.into(), 10.into())
    );
    assert_eq!(
        (replica["link_up"].clone(), replica["synced"].clone()),
        (true.into(), true.into())
    );
    assert_eq!(raw["config"]["nodes"][1]["replica_of"], a.info.id.as_str());
    let events = raw["events"].as_array().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "joined" && e["replica_of"] == a.info.id.as_str()),
        "{events:?}"
    );
    let page = coordinator.page().await;
    assert!(
        page.contains(&format!("replica of {}", a.info.id)),
        "{page}"
    );
    assert!(
        page.contains("10 B") && page.contains("Recent events"),
        "{page}"
    );

    // The primary dies; the replica loses its link too and is promoted.
    let (old, new) = (a.info.id.clone(), r.info.id.clone());
    a.kill();
    r.set_replication(ReplicationReport {
        link_up: false,
        ..streaming
    });
    let view = coordinator
        .wait_for("a failover", |v| v.nodes[1].role == Role::Primary)
        .await;
    assert_eq!(view.nodes[1].slots, 16384);
    assert_eq!(view.nodes[0].replica_of.as_ref(), Some(&new));
    let failover = ClusterEvent::Failover {
        reason: FailoverReason::Automatic,
        old_primary: old,
        new_primary: new.clone(),
        old_offset: Some(1000),
        new_offset: Some(990),
    };
    assert!(
        view.events.iter().any(|e| e.event == failover),
        "{:?}",
        view.events
    );
    r.wait_for("the slots", |s| {
        s.latest()
            .is_some_and(|c| c.slots.iter().all(|range| range.owner == new))
    })
    .await;
    r.wait_for("a lease for the new primary", |s| {
        s.leases.iter().any(|&(_, ms)| ms > 0)
    })
    .await;
    let page = coordinator.page().await;
    assert!(page.contains("failover (automatic)"), "{page}");
    coordinator.stop().await.unwrap();
}

/// `GET /metrics`, parsed; panics unless it is a 200 in the text format.
async fn scrape(coordinator: &Coordinator) -> Scrape {
    let response = reqwest::get(coordinator.url("/metrics")).await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
}

/// The gauge or counter `name` of node `id`, if there is one.
fn node_value(scrape: &Scrape, name: &str, id: &str) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && s.labels.get("node") == Some(id))
        .and_then(|s| match s.value {
            Value::Gauge(v) | Value::Counter(v) => Some(v),
            _ => None,
        })
}

#[tokio::test]
async fn metrics_are_served_as_prometheus_text_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(dir.path(), |_| {}).await;
    let empty = scrape(&coordinator).await;
    assert!(
        empty.docs.contains_key("keycafe_node_up"),
        "every family, nodes or not"
    );

    let mut a = FakeNode::start(coordinator.node_addr, node_info(1)).await;
    a.wait_for("the slots", |s| s.latest().is_some_and(|c| settled(c, 1)))
        .await;
    // This node's own heartbeats, with its load.
    a.set_heartbeat(false);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut commands = 0;
    let metrics = loop {
        commands += 100;
        a.send(NodeMessage::Heartbeat(NodeReport {
            seq: 1_000_000 + commands,
            keys: 42,
            commands_processed: Some(commands),
            used_memory: Some(1 << 20),
            ..NodeReport::default()
        }));
        let metrics = scrape(&coordinator).await;
        if node_value(
            &metrics,
            "keycafe_node_commands_processed_total",
            &a.info.id,
        ) == Some(commands as f64)
        {
            break metrics;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the heartbeat never showed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let id = a.info.id.as_str();
    let cluster = |name: &str| {
        metrics
            .samples
            .iter()
            .find(|s| s.metric == name && s.labels.get("role") != Some("replica"))
            .map(|s| s.value.clone())
    };
    assert_eq!(
        cluster("keycafe_cluster_slots_assigned"),
        Some(Value::Gauge(16384.0))
    );
    assert_eq!(cluster("keycafe_cluster_nodes"), Some(Value::Gauge(1.0)));
    assert_eq!(node_value(&metrics, "keycafe_node_up", id), Some(1.0));
    assert_eq!(node_value(&metrics, "keycafe_node_keys", id), Some(42.0));
    assert_eq!(
        node_value(&metrics, "keycafe_node_slots", id),
        Some(16384.0)
    );
    assert_eq!(
        node_value(&metrics, "keycafe_node_used_memory_bytes", id),
        Some(1_048_576.0)
    );
    let info = metrics
        .samples
        .iter()
        .find(|s| s.metric == "keycafe_node_info")
        .expect("the node's info");
    assert_eq!(info.labels.get("addr"), Some(a.info.client_addr.as_str()));
    assert_eq!(info.labels.get("role"), Some("primary"));
    coordinator.stop().await.unwrap();
}

/// The numeric cells of node `id`'s row on the dashboard, in order: slots,
/// keys, ops/s, memory, offset, lag, epoch.
fn number_cells(page: &str, id: &str) -> Vec<String> {
    let start = page
        .find(&format!("title=\"{id}\""))
        .unwrap_or_else(|| panic!("no row for {id}: {page}"));
    let row = &page[start..];
    let row = &row[..row.find("</tr>").expect("the row ends")];
    row.split("<td class=\"num\">")
        .skip(1)
        .map(|cell| cell[..cell.find("</td>").expect("the cell ends")].to_string())
        .collect()
}

#[tokio::test]
async fn the_dashboard_shows_each_nodes_ops_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    // Long enough that the node, once it stops its heartbeats, is not
    // failing (which would hide its rate) before the page is read.
    let coordinator = Coordinator::start(dir.path(), |c| c.node_timeout_ms = 30_000).await;
    let mut a = FakeNode::start(coordinator.node_addr, node_info(1)).await;
    a.wait_for("the slots", |s| s.latest().is_some_and(|c| settled(c, 1)))
        .await;
    // Its own heartbeats say nothing of its load: nothing to show.
    coordinator
        .wait_for("a heartbeat", |v| v.nodes[0].keys.is_some())
        .await;
    let cells = number_cells(&coordinator.page().await, &a.info.id);
    assert_eq!((cells[2].as_str(), cells[3].as_str()), ("—", "—"));

    // Now with its load: two counts more than a second apart.
    a.set_heartbeat(false);
    let beat = |seq: u64, commands: u64| {
        NodeMessage::Heartbeat(NodeReport {
            seq,
            keys: 7,
            commands_processed: Some(commands),
            used_memory: Some(3 << 20),
            ..NodeReport::default()
        })
    };
    a.send(beat(1_000_000, 1_000));
    coordinator
        .wait_for("the first count", |v| {
            v.nodes[0].commands_processed == Some(1_000)
        })
        .await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    a.send(beat(1_000_001, 6_000));
    let view = coordinator
        .wait_for("a rate", |v| v.nodes[0].ops_per_sec.is_some())
        .await;
    let rate = view.nodes[0].ops_per_sec.expect("measured");
    assert!(rate > 100.0 && rate <= 5_000.0 / 1.1, "{rate}");
    let cells = number_cells(&coordinator.page().await, &a.info.id);
    assert_eq!(cells[2], format!("{rate:.0}"), "{cells:?}");
    assert_eq!(cells[3], "3.0 MiB", "{cells:?}");
    coordinator.stop().await.unwrap();
}
