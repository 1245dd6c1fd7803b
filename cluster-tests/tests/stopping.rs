//! SIGTERM stops a cluster member without leaving the cluster
//! (`docs/protocol.md`, "Stopping and leaving"): the process exits cleanly
//! and at once, the coordinator keeps it as a member owning its slots, and
//! a process restarted at its address takes them back. Leaving is
//! `CLUSTER LEAVE` (tested in `cluster.rs`).

use std::time::Duration;

use cluster_tests::{Coordinator, Node, TempDir, eventually, is_fair, node_at};
use keycafe_core::cluster::ClusterConfig;

const SETTLE: Duration = Duration::from_secs(60);

/// The slots the node at `client_addr` owns, with its id.
fn owned(config: &ClusterConfig, client_addr: &str) -> (String, usize) {
    let node = node_at(config, client_addr).expect("a member");
    let slots = config
        .slots
        .iter()
        .filter(|r| r.owner == node.id)
        .map(|r| usize::from(r.end - r.start) + 1)
        .sum();
    (node.id.clone(), slots)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_member_which_keeps_its_slots() {
    let dir = TempDir::new();
    let coordinator = Coordinator::start(dir.path.clone()).await.unwrap();
    let _a = Node::start(&coordinator.addr()).await.unwrap();
    let mut b = Node::start(&coordinator.addr()).await.unwrap();
    let before = coordinator
        .wait_until("the cluster is fair", SETTLE, |c| is_fair(c, 2))
        .await
        .unwrap();
    let (id, slots) = owned(&before, &b.addr());
    assert!(slots > 0);

    b.terminate().unwrap();
    let status = b.wait_exit(Duration::from_secs(10)).await.unwrap();
    assert!(status.success(), "a clean exit: {status}");
    // The coordinator has seen the connection go...
    eventually("the coordinator sees b disconnected", SETTLE, async || {
        Ok(coordinator.node_view(&b.addr()).await?["connected"] == false)
    })
    .await
    .unwrap();
    // ...and b is still a member with its slots: stopping is not leaving.
    let after = coordinator.config().await.unwrap();
    assert_eq!(owned(&after, &b.addr()), (id.clone(), slots));
    assert_eq!(after.nodes.len(), 2);

    // A process restarted at b's address (a new id, empty memory) takes
    // b's place and its slots.
    b.restart().await.unwrap();
    let restarted = coordinator
        .wait_until("the restarted node owns b's slots", SETTLE, |c| {
            let (new_id, owns) = owned(c, &b.addr());
            new_id != id && owns == slots && c.nodes.len() == 2
        })
        .await
        .unwrap();
    assert!(restarted.node(&id).is_none(), "the old id is gone");
}
