//! The coordinator in-process on ephemeral ports, with fake nodes speaking
//! `keycafe_core::coord` over real TCP.

mod common;

use common::{Coordinator, FakeNode, Link, PATIENCE, node_info, settled};
use coordinate_server::state::view::NodeState;
use keycafe_core::coord::{CoordinatorMessage, NodeMessage};
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn three_nodes_share_the_slots_and_every_node_sees_every_config() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(dir.path(), |c| c.max_migrations = 1000).await;

    // The first node gets every slot directly.
    let mut a = FakeNode::start(coordinator.node_addr, node_info(1), None).await;
    let seen = a
        .wait_for("the first config", |s| !s.configs.is_empty())
        .await;
    let first = &seen.configs[0];
    assert_eq!(first.epoch, 1);
    assert!(settled(first, 1), "{first:?}");

    // The second triggers migrations (a window of 1000 at a time) and the
    // fake nodes answer until the split is fair.
    let mut b = FakeNode::start(coordinator.node_addr, node_info(2), None).await;
    let seen = b
        .wait_for("migrations to b", |s| {
            s.configs.iter().any(|c| !c.migrations.is_empty())
        })
        .await;
    let planned = seen
        .configs
        .iter()
        .find(|c| !c.migrations.is_empty())
        .unwrap();
    assert_eq!(planned.migrations.len(), 1000);
    assert!(
        planned
            .migrations
            .iter()
            .all(|m| m.from == a.info.id && m.to == b.info.id)
    );
    b.wait_for("a fair split of two", |s| {
        s.latest().is_some_and(|c| settled(c, 2))
    })
    .await;

    let mut c = FakeNode::start(coordinator.node_addr, node_info(3), None).await;
    let last = c
        .wait_for("a fair split of three", |s| {
            s.latest().is_some_and(|c| settled(c, 3))
        })
        .await;
    let final_epoch = last.latest().unwrap().epoch;

    for node in [&mut a, &mut b, &mut c] {
        let seen = node
            .wait_for("the final epoch", |s| {
                s.latest().is_some_and(|c| c.epoch == final_epoch)
            })
            .await;
        let epochs: Vec<u64> = seen.configs.iter().map(|c| c.epoch).collect();
        // Strictly increasing, and no epoch missing since the node joined.
        assert!(epochs.windows(2).all(|w| w[1] == w[0] + 1), "{epochs:?}");
        assert!(seen.errors.is_empty(), "{:?}", seen.errors);
    }

    let view = coordinator.cluster().await;
    assert_eq!(view.epoch, final_epoch);
    assert!(
        view.nodes
            .iter()
            .all(|n| n.state == NodeState::Healthy && n.connected)
    );
    assert_eq!(view.nodes.iter().map(|n| n.slots).sum::<usize>(), 16384);
    coordinator.stop().await.unwrap();
}

#[tokio::test]
async fn a_silent_node_is_shown_failing_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(dir.path(), |c| c.node_timeout_ms = 300).await;
    let mut a = FakeNode::start(coordinator.node_addr, node_info(1), None).await;
    let b = FakeNode::start(coordinator.node_addr, node_info(2), None).await;
    a.wait_for("two nodes", |s| s.latest().is_some_and(|c| settled(c, 2)))
        .await;

    b.set_heartbeat(false);
    let view = coordinator
        .wait_for("b failing", |v| {
            v.nodes
                .iter()
                .any(|n| n.id == b.info.id && n.state == NodeState::Failing)
        })
        .await;
    let a_view = view.nodes.iter().find(|n| n.id == a.info.id).unwrap();
    assert_eq!(a_view.state, NodeState::Healthy);
    assert_eq!(a_view.keys, Some(7));
    // Failing is only shown: the node keeps its slots.
    assert_eq!(
        view.nodes.iter().find(|n| n.id == b.info.id).unwrap().slots,
        8192
    );

    b.set_heartbeat(true);
    coordinator
        .wait_for("b healthy again", |v| {
            v.nodes.iter().all(|n| n.state == NodeState::Healthy)
        })
        .await;
    coordinator.stop().await.unwrap();
}

#[tokio::test]
async fn a_dead_source_stalls_its_migrations_without_losing_the_plan() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(dir.path(), |c| c.node_timeout_ms = 300).await;
    let a = FakeNode::start(coordinator.node_addr, node_info(1), None).await;
    a.set_auto_done(false);
    let mut b = FakeNode::start(coordinator.node_addr, node_info(2), None).await;
    b.wait_for("migrations", |s| {
        s.latest().is_some_and(|c| !c.migrations.is_empty())
    })
    .await;
    a.kill();
    let view = coordinator
        .wait_for("a stalled migration", |v| {
            v.migrations.first().is_some_and(|g| g.stalled)
        })
        .await;
    assert_eq!(view.migrations[0].slots, view.config.migrations.len());
    assert_eq!(view.nodes[0].state, NodeState::Failing);
    assert!(!view.nodes[0].connected);
    let page = reqwest::get(coordinator.url("/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("stalled"), "{page}");

    // The node comes back (same id), re-registers and finishes the moves.
    let mut a = FakeNode::start(coordinator.node_addr, node_info(1), None).await;
    a.wait_for("a fair split", |s| {
        s.latest().is_some_and(|c| settled(c, 2))
    })
    .await;
    coordinator.stop().await.unwrap();
}

#[tokio::test]
async fn leaves_move_the_slots_away_then_remove_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(dir.path(), |_| {}).await;
    let mut a = FakeNode::start(coordinator.node_addr, node_info(1), None).await;
    let b = FakeNode::start(coordinator.node_addr, node_info(2), None).await;
    let c = FakeNode::start(coordinator.node_addr, node_info(3), None).await;
    a.wait_for("three nodes", |s| s.latest().is_some_and(|c| settled(c, 3)))
        .await;

    // A leave by message...
    let before = a.seen.borrow().configs.len();
    c.send(NodeMessage::Leave);
    let seen = a
        .wait_for("c removed", |s| {
            s.latest().is_some_and(|cfg| settled(cfg, 2))
        })
        .await;
    let last = seen.latest().unwrap();
    assert!(last.node(&c.info.id).is_none());
    let during = &seen.configs[before..];
    assert!(
        during
            .iter()
            .any(|cfg| cfg.migrations.iter().any(|m| m.from == c.info.id))
    );
    assert!(
        during
            .iter()
            .all(|cfg| cfg.migrations.iter().all(|m| m.from == c.info.id)),
        "only c's slots move"
    );

    // ...and one through the HTTP API.
    let http = reqwest::Client::new();
    let url = coordinator.url(&format!("/api/nodes/{}/leave", b.info.id));
    let response = http.post(&url).send().await.unwrap();
    assert_eq!(response.status(), 202);
    a.wait_for("b removed", |s| {
        s.latest().is_some_and(|cfg| settled(cfg, 1))
    })
    .await;

    // The last node cannot leave; unknown nodes are not found; other sites
    // cannot make a browser do it.
    let url = coordinator.url(&format!("/api/nodes/{}/leave", a.info.id));
    let response = http.post(&url).send().await.unwrap();
    assert_eq!(response.status(), 409);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("last"), "{body}");
    a.send(NodeMessage::Leave);
    a.wait_for("an error for the last node", |s| !s.errors.is_empty())
        .await;
    let response = http
        .post(coordinator.url("/api/nodes/nobody/leave"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let response = http
        .post(&url)
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(coordinator.cluster().await.nodes.len(), 1);
    coordinator.stop().await.unwrap();
}

#[tokio::test]
async fn a_restarted_coordinator_keeps_the_map_and_resumes_its_migrations() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(dir.path(), |_| {}).await;
    let mut a = FakeNode::start(coordinator.node_addr, node_info(1), None).await;
    let mut b = FakeNode::start(coordinator.node_addr, node_info(2), None).await;
    b.wait_for("two nodes", |s| s.latest().is_some_and(|c| settled(c, 2)))
        .await;
    // A third joins, but nobody moves anything: stop mid-rebalance.
    a.set_auto_done(false);
    b.set_auto_done(false);
    let c = FakeNode::start(coordinator.node_addr, node_info(3), None).await;
    let seen = a
        .wait_for("migrations to c", |s| {
            s.latest().is_some_and(|c| !c.migrations.is_empty())
        })
        .await;
    let before = seen.latest().unwrap().clone();
    coordinator.stop().await.unwrap();
    for node in [&mut a, &mut b] {
        node.wait_for("the connection to close", |s| s.closed).await;
    }
    drop((a, b, c));

    let coordinator = Coordinator::start(dir.path(), |_| {}).await;
    let view = coordinator.cluster().await;
    assert_eq!(
        view.epoch,
        before.epoch + 1,
        "a restart bumps the epoch once"
    );
    assert_eq!(view.config.slots, before.slots);
    assert_eq!(view.config.migrations, before.migrations);

    // The nodes re-register (reporting the epoch they hold): nothing changes
    // for them, and the plan carries on.
    let mut nodes = Vec::new();
    for n in 1..=3 {
        let node =
            FakeNode::start_with_epoch(coordinator.node_addr, node_info(n), None, before.epoch)
                .await;
        nodes.push(node);
    }
    for node in &mut nodes {
        let seen = node.wait_for("a config", |s| !s.configs.is_empty()).await;
        assert!(seen.configs[0].epoch > before.epoch);
        assert_eq!(seen.configs[0].nodes, before.nodes, "no node re-added");
    }
    nodes[0]
        .wait_for("a fair split of three", |s| {
            s.latest().is_some_and(|c| settled(c, 3))
        })
        .await;
    coordinator.stop().await.unwrap();

    // A third start sees the finished layout.
    let coordinator = Coordinator::start(dir.path(), |_| {}).await;
    assert!(settled(&coordinator.cluster().await.config, 3));
    coordinator.stop().await.unwrap();
}

#[tokio::test]
async fn a_wrong_secret_is_refused_and_the_connection_closed() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator =
        Coordinator::start(dir.path(), |c| c.secret = Some("open sesame".into())).await;
    for secret in [None, Some("guess".to_string())] {
        let mut link = Link::connect(coordinator.node_addr).await;
        link.send(&NodeMessage::Register {
            node: node_info(1),
            epoch: 0,
            secret,
        })
        .await;
        assert!(matches!(
            link.recv().await,
            Some(CoordinatorMessage::Error { .. })
        ));
        assert_eq!(link.recv().await, None, "closed after the error");
    }
    let mut a = FakeNode::start(coordinator.node_addr, node_info(1), Some("open sesame")).await;
    a.wait_for("admission", |s| s.latest().is_some_and(|c| settled(c, 1)))
        .await;
    coordinator.stop().await.unwrap();
}

#[tokio::test]
async fn garbage_closes_the_connection_and_the_coordinator_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(dir.path(), |_| {}).await;
    let garbage: [&[u8]; 4] = [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", // a length prefix of ~1.2 GB
        b"\x00\x00\x00\x05$\x00\x00\x00\x01", // a frame that is too short
        b"\x00\x00\x00\x0a$\x00\x00\x00\x05{not}", // not JSON
        b"\x00\x00\x00\x09:\x00\x00\x00\x00\x00\x00\x00\x01", // not a bulk
    ];
    for bytes in garbage {
        let mut link = Link::connect(coordinator.node_addr).await;
        link.stream.write_all(bytes).await.unwrap();
        match link.recv().await {
            Some(CoordinatorMessage::Error { message }) => {
                assert!(message.contains("malformed"), "{message}")
            }
            other => panic!("expected an error, got {other:?}"),
        }
        assert_eq!(link.recv().await, None);
    }
    // A connection that never registers is dropped too, with a message: a
    // valid message that is not `register` first.
    let mut link = Link::connect(coordinator.node_addr).await;
    link.send(&NodeMessage::Leave).await;
    assert!(matches!(
        link.recv().await,
        Some(CoordinatorMessage::Error { .. })
    ));
    assert_eq!(link.recv().await, None);
    // A peer that hangs up mid-frame costs nothing.
    let mut half = tokio::net::TcpStream::connect(coordinator.node_addr)
        .await
        .unwrap();
    half.write_all(b"\x00\x00\x10\x00$").await.unwrap();
    drop(half);

    let mut a = FakeNode::start(coordinator.node_addr, node_info(1), None).await;
    a.wait_for("a config", |s| s.latest().is_some_and(|c| settled(c, 1)))
        .await;
    coordinator.stop().await.unwrap();
}

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

    let mut a = FakeNode::start(coordinator.node_addr, node_info(1), None).await;
    let b = FakeNode::start(coordinator.node_addr, node_info(2), None).await;
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
    let raw: serde_json::Value = reqwest::get(coordinator.url("/api/cluster"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
    coordinator.stop().await.unwrap();
}

#[tokio::test]
async fn a_second_coordinator_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = Coordinator::start(dir.path(), |_| {}).await;
    // Let the first take the lock.
    first.cluster().await;
    let second = Coordinator::start(dir.path(), |_| {}).await;
    let err = tokio::time::timeout(PATIENCE, second.stop())
        .await
        .unwrap()
        .unwrap_err();
    assert!(format!("{err:#}").contains("in use"), "{err:#}");
    first.stop().await.unwrap();
}
