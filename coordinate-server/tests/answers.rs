//! What the coordinator answers to each message, and the exact texts of its
//! `error` messages, as `docs/protocol.md` ("Answers and errors") lists
//! them: a `lease` for every heartbeat, nothing for `migration_done` and an
//! accepted `leave`, an `error` (connection kept) for a `leave` or
//! `failover` it declines, an `error` and a close for a peer that breaks the
//! conversation.

mod common;

use common::{Coordinator, Link, SECRET, node_info};
use keycafe_core::coord::{CoordinatorMessage, NodeMessage, NodeReport};

/// The next message that is not a pushed configuration.
async fn next_answer(link: &mut Link) -> Option<CoordinatorMessage> {
    loop {
        match link.recv().await {
            Some(CoordinatorMessage::Config(_)) => continue,
            other => return other,
        }
    }
}

fn heartbeat(seq: u64) -> NodeMessage {
    NodeMessage::Heartbeat(NodeReport {
        seq,
        ..NodeReport::default()
    })
}

fn error(message: &str) -> Option<CoordinatorMessage> {
    Some(CoordinatorMessage::Error {
        message: message.to_string(),
    })
}

#[tokio::test]
async fn each_message_gets_its_documented_answer() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(dir.path(), |_| {}).await;
    let a = node_info(1);
    let mut link = Link::connect(coordinator.node_addr).await;
    link.register(a.clone(), 0, None).await;
    assert!(matches!(
        link.recv().await,
        Some(CoordinatorMessage::Config(_))
    ));

    // A heartbeat: a lease with its seq.
    link.send(&heartbeat(7)).await;
    assert!(matches!(
        next_answer(&mut link).await,
        Some(CoordinatorMessage::Lease { seq: 7, ms }) if ms > 0
    ));
    // migration_done: no answer (the next one is the heartbeat's).
    let done = NodeMessage::MigrationDone {
        slot: 1,
        to: node_info(2).id,
    };
    link.send(&done).await;
    link.send(&heartbeat(8)).await;
    assert!(matches!(
        next_answer(&mut link).await,
        Some(CoordinatorMessage::Lease { seq: 8, .. })
    ));
    // leave from the last primary, failover from a node that is no
    // replica: declined, and the connection stays open.
    link.send(&NodeMessage::Leave).await;
    assert_eq!(
        next_answer(&mut link).await,
        error(&format!(
            "node {} is the last member of the cluster; its slots would have nowhere to go",
            a.id
        ))
    );
    let other = node_info(9).id;
    link.send(&NodeMessage::Failover {
        primary: other.clone(),
    })
    .await;
    assert_eq!(
        next_answer(&mut link).await,
        error(&format!(
            "failover refused: {} is not a replica of {other}",
            a.id
        ))
    );
    link.send(&heartbeat(9)).await;
    assert!(matches!(
        next_answer(&mut link).await,
        Some(CoordinatorMessage::Lease { seq: 9, .. })
    ));

    // A leave that is accepted gets no answer of its own: configurations
    // move the node's slots away (a replica has none) and then leave it out.
    let b = node_info(2);
    let mut second = Link::connect(coordinator.node_addr).await;
    second
        .register(b.clone(), 0, Some(a.client_addr.clone()))
        .await;
    loop {
        match second.recv().await {
            Some(CoordinatorMessage::Config(config)) if config.node(&b.id).is_some() => break,
            Some(CoordinatorMessage::Config(_)) => {}
            other => panic!("a configuration answers register: {other:?}"),
        }
    }
    second.send(&NodeMessage::Leave).await;
    loop {
        match second.recv().await {
            Some(CoordinatorMessage::Config(config)) if config.node(&b.id).is_none() => break,
            Some(CoordinatorMessage::Config(_)) => {}
            other => panic!("only configurations answer an accepted leave: {other:?}"),
        }
    }
    coordinator.stop().await.unwrap();
}

#[tokio::test]
async fn a_peer_that_breaks_the_conversation_gets_the_documented_error_and_a_close() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(dir.path(), |_| {}).await;

    let mut link = Link::connect(coordinator.node_addr).await;
    link.send(&heartbeat(1)).await;
    assert_eq!(link.recv().await, error("the first message must be hello"));
    assert_eq!(link.recv().await, None);

    let mut link = Link::connect(coordinator.node_addr).await;
    link.send(&NodeMessage::Hello {
        node: "a".into(),
        nonce: "00".into(),
    })
    .await;
    assert_eq!(
        link.recv().await,
        error("hello needs a nonce of 64 hex digits")
    );
    assert_eq!(link.recv().await, None);

    let mut link = Link::connect(coordinator.node_addr).await;
    link.hello("a", SECRET).await.unwrap();
    link.send(&NodeMessage::Leave).await;
    assert_eq!(link.recv().await, error("after hello, register"));
    assert_eq!(link.recv().await, None);

    let mut link = Link::connect(coordinator.node_addr).await;
    let a = node_info(1);
    let proof = link.hello(&a.id, "not the cluster secret").await.unwrap();
    link.send(&NodeMessage::Register {
        node: a.clone(),
        epoch: 0,
        proof,
        primary: None,
    })
    .await;
    assert_eq!(
        link.recv().await,
        error("authentication failed: wrong cluster secret")
    );
    assert_eq!(link.recv().await, None);

    let mut link = Link::connect(coordinator.node_addr).await;
    link.register(a.clone(), 0, None).await;
    link.send(&NodeMessage::Hello {
        node: a.id.clone(),
        nonce: "00".repeat(32),
    })
    .await;
    assert_eq!(
        next_answer(&mut link).await,
        error("hello is only the first message")
    );
    assert_eq!(next_answer(&mut link).await, None);

    let mut link = Link::connect(coordinator.node_addr).await;
    let mut bad = node_info(2);
    bad.bus_addr = bad.client_addr.clone();
    link.register(bad, 0, None).await;
    assert_eq!(
        next_answer(&mut link).await,
        error("client_addr and bus_addr must differ")
    );
    assert_eq!(next_answer(&mut link).await, None);
    coordinator.stop().await.unwrap();
}
