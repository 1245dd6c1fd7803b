//! What the coordinator refuses: wrong secrets, garbage, a second
//! coordinator on the same data directory. It keeps serving everyone else.

mod common;

use common::{Coordinator, FakeNode, Link, PATIENCE, node_info, settled};
use keycafe_core::coord::{CoordinatorMessage, NodeMessage};
use tokio::io::AsyncWriteExt;

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
            primary: None,
        })
        .await;
        // More already on its way (as a node that leaves sends): the error
        // must still arrive, not be lost to a reset.
        link.send(&NodeMessage::Leave).await;
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
