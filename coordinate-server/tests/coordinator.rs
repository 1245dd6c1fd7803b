//! The coordinator in-process on ephemeral ports, with fake nodes speaking
//! `keycafe_core::coord` over real TCP: joins, failures, leaves, restarts.

mod common;

use common::{ADMIN_TOKEN, Coordinator, FakeNode, node_info, settled};
use coordinate_server::state::view::{ClusterView, NodeState};
use keycafe_core::coord::NodeMessage;

#[tokio::test]
async fn three_nodes_share_the_slots_and_every_node_sees_every_config() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(dir.path(), |c| c.max_migrations = 1000).await;

    // The first node gets every slot directly: no migration.
    let mut a = FakeNode::start(coordinator.node_addr, node_info(1)).await;
    let seen = a
        .wait_for("all slots", |s| s.latest().is_some_and(|c| settled(c, 1)))
        .await;
    assert!(seen.configs.iter().all(|c| c.migrations.is_empty()));

    // The second triggers migrations (a window of 1000 at a time) and the
    // fake nodes answer until the split is fair.
    let mut b = FakeNode::start(coordinator.node_addr, node_info(2)).await;
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

    let mut c = FakeNode::start(coordinator.node_addr, node_info(3)).await;
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
    let coordinator = Coordinator::start(dir.path(), |c| c.node_timeout_ms = 1000).await;
    let mut a = FakeNode::start(coordinator.node_addr, node_info(1)).await;
    let b = FakeNode::start(coordinator.node_addr, node_info(2)).await;
    a.wait_for("two nodes", |s| s.latest().is_some_and(|c| settled(c, 2)))
        .await;

    b.set_heartbeat(false);
    let state = |v: &ClusterView, id: &str| v.nodes.iter().find(|n| n.id == id).map(|n| n.state);
    let view = coordinator
        .wait_for("b failing, a healthy", |v| {
            state(v, &b.info.id) == Some(NodeState::Failing)
                && state(v, &a.info.id) == Some(NodeState::Healthy)
        })
        .await;
    let a_view = view.nodes.iter().find(|n| n.id == a.info.id).unwrap();
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
    let coordinator = Coordinator::start(dir.path(), |c| c.node_timeout_ms = 1000).await;
    let mut a = FakeNode::start(coordinator.node_addr, node_info(1)).await;
    a.set_auto_done(false);
    a.wait_for("all slots", |s| s.latest().is_some_and(|c| settled(c, 1)))
        .await;
    let mut b = FakeNode::start(coordinator.node_addr, node_info(2)).await;
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
    let page = coordinator.page().await;
    assert!(page.contains("stalled"), "{page}");

    // The node comes back (same id), re-registers and finishes the moves.
    let mut a = FakeNode::start(coordinator.node_addr, node_info(1)).await;
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
    let mut a = FakeNode::start(coordinator.node_addr, node_info(1)).await;
    let b = FakeNode::start(coordinator.node_addr, node_info(2)).await;
    let c = FakeNode::start(coordinator.node_addr, node_info(3)).await;
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
    let response = http
        .post(&url)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    a.wait_for("b removed", |s| {
        s.latest().is_some_and(|cfg| settled(cfg, 1))
    })
    .await;

    // The last node cannot leave; unknown nodes are not found; other sites
    // cannot make a browser do it.
    let url = coordinator.url(&format!("/api/nodes/{}/leave", a.info.id));
    let response = http
        .post(&url)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("last"), "{body}");
    a.send(NodeMessage::Leave);
    a.wait_for("an error for the last node", |s| !s.errors.is_empty())
        .await;
    let response = http
        .post(coordinator.url("/api/nodes/nobody/leave"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let response = http
        .post(&url)
        .bearer_auth(ADMIN_TOKEN)
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
    let mut a = FakeNode::start(coordinator.node_addr, node_info(1)).await;
    let mut b = FakeNode::start(coordinator.node_addr, node_info(2)).await;
    b.wait_for("two nodes", |s| s.latest().is_some_and(|c| settled(c, 2)))
        .await;
    // A third joins, but nobody moves anything: stop mid-rebalance.
    a.set_auto_done(false);
    b.set_auto_done(false);
    let c = FakeNode::start(coordinator.node_addr, node_info(3)).await;
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
            FakeNode::start_with_epoch(coordinator.node_addr, node_info(n), before.epoch).await;
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

/// A data directory from before coordinator groups (only `cluster.json`)
/// starts a group of one whose first state is that file's; the Raft log
/// is the truth from then on.
#[tokio::test]
async fn a_lone_coordinators_state_from_before_groups_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(dir.path(), |_| {}).await;
    let mut a = FakeNode::start(coordinator.node_addr, node_info(1)).await;
    let seen = a
        .wait_for("a config", |s| s.latest().is_some_and(|c| settled(c, 1)))
        .await;
    let before = seen.latest().unwrap().clone();
    coordinator.stop().await.unwrap();
    drop(a);
    // What an older coordinator left: cluster.json alone.
    std::fs::remove_dir_all(dir.path().join("raft")).unwrap();
    assert!(dir.path().join("cluster.json").exists());

    // As a member of a new group of two it is refused: the other could
    // lead first and begin an empty cluster.
    let member = |id: u64| coordinate_server::group::Member {
        id,
        group_addr: format!("127.0.0.1:{}", 7900 + id),
        node_addr: format!("127.0.0.1:{}", 7800 + id),
        http_addr: None,
    };
    let config = coordinate_server::Config {
        data_dir: dir.path().to_path_buf(),
        secret: Some(common::SECRET.into()),
        admin_token: Some(ADMIN_TOKEN.into()),
        group_port: 0,
        members: vec![member(1), member(2)],
        ..coordinate_server::Config::default()
    };
    let listen = || tokio::net::TcpListener::bind("127.0.0.1:0");
    let (nodes, http) = (listen().await.unwrap(), listen().await.unwrap());
    let refused = coordinate_server::run(config, nodes, http, std::future::pending())
        .await
        .unwrap_err();
    assert!(
        format!("{refused:#}").contains("cluster.json"),
        "{refused:#}"
    );
    assert!(!dir.path().join("raft").exists(), "refused before writing");

    let coordinator = Coordinator::start(dir.path(), |_| {}).await;
    let view = coordinator.cluster().await;
    assert_eq!(view.config.nodes, before.nodes);
    assert_eq!(view.config.slots, before.slots);
    assert!(
        view.epoch > before.epoch,
        "the epoch goes on from the file's"
    );
    coordinator.stop().await.unwrap();
    assert!(dir.path().join("raft").exists(), "a log was started");
}
