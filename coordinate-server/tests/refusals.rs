//! What the coordinator refuses: wrong secrets, garbage, a second
//! coordinator on the same data directory. It keeps serving everyone else.

mod common;

use common::{Coordinator, FakeNode, Link, PATIENCE, node_info, settled};
use keycafe_core::coord::{CoordinatorMessage, NodeMessage};
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn a_stranger_without_the_secret_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(dir.path(), |_| {}).await;
    let mut a = FakeNode::start(coordinator.node_addr, node_info(1)).await;
    a.wait_for("admission", |s| s.latest().is_some_and(|c| settled(c, 1)))
        .await;
    let before = coordinator.cluster().await.config;

    // A wrong proof, the old clear-text register, a register with no hello,
    // and a proof for another id than the hello's: each refused and closed.
    let stranger = node_info(2);
    let mut link = Link::connect(coordinator.node_addr).await;
    let proof = link
        .hello(&stranger.id, "not the cluster secret")
        .await
        .unwrap();
    let register = |proof: String| NodeMessage::Register {
        node: stranger.clone(),
        epoch: u64::MAX,
        proof,
        primary: None,
    };
    link.send(&register(proof)).await;
    // More already on its way (as a node that leaves sends): the error
    // must still arrive, not be lost to a reset.
    link.send(&NodeMessage::Leave).await;
    assert!(
        matches!(link.recv().await, Some(CoordinatorMessage::Error { message }) if message.contains("authentication"))
    );
    assert_eq!(link.recv().await, None, "closed after the error");

    let mut link = Link::connect(coordinator.node_addr).await;
    link.send(&register("00".repeat(32))).await;
    assert!(matches!(
        link.recv().await,
        Some(CoordinatorMessage::Error { .. })
    ));
    assert_eq!(link.recv().await, None);

    let mut link = Link::connect(coordinator.node_addr).await;
    let proof = link.hello(&node_info(3).id, common::SECRET).await.unwrap();
    link.send(&register(proof)).await;
    assert!(matches!(
        link.recv().await,
        Some(CoordinatorMessage::Error { .. })
    ));
    assert_eq!(link.recv().await, None);

    // Nothing changed: no new member, and the epoch did not move.
    let after = coordinator.cluster().await.config;
    assert_eq!(after, before);
    coordinator.stop().await.unwrap();
}

#[tokio::test]
async fn a_member_cannot_raise_the_epoch_or_take_another_members_id() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(dir.path(), |_| {}).await;
    let mut a = FakeNode::start(coordinator.node_addr, node_info(1)).await;
    a.wait_for("admission", |s| s.latest().is_some_and(|c| settled(c, 1)))
        .await;
    let before = coordinator.cluster().await.config;

    // A huge epoch in register: refused, and nothing moves.
    let mut link = Link::connect(coordinator.node_addr).await;
    link.register(node_info(2), u64::MAX, None).await;
    match link.recv().await {
        Some(CoordinatorMessage::Error { message }) => {
            assert!(message.contains("epoch"), "{message}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // In a heartbeat: ignored.
    let report = keycafe_core::coord::NodeReport {
        epoch: u64::MAX,
        ..Default::default()
    };
    a.send(NodeMessage::Heartbeat(report));
    // Another process claiming node 1's id from other addresses, while node
    // 1 is connected: refused.
    let mut impostor = node_info(1);
    impostor.client_addr = "127.0.0.1:6999".into();
    impostor.bus_addr = "127.0.0.1:16999".into();
    let mut link = Link::connect(coordinator.node_addr).await;
    link.register(impostor, 0, None).await;
    match link.recv().await {
        Some(CoordinatorMessage::Error { message }) => {
            assert!(message.contains("connected"), "{message}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let after = coordinator.cluster().await.config;
    assert_eq!(after, before, "the epoch and the members are unchanged");
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
    // A connection that does not say hello first is dropped too, with a
    // message.
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

    let mut a = FakeNode::start(coordinator.node_addr, node_info(1)).await;
    a.wait_for("a config", |s| s.latest().is_some_and(|c| settled(c, 1)))
        .await;
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
