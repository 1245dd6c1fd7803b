//! Replication between two in-process nodes, roles given by a scripted
//! coordinator: the full copy and the stream, TTLs, READONLY and MOVED on a
//! replica, WAIT, resuming after a dropped link, promotion by a new
//! configuration, and the manual failover's pause and hand-over.

mod common;

use std::time::Duration;

use common::cluster::{FakeCoordinator, config, eventually, range};
use common::{RawClient, bulk, simple};
use keycafe_core::Frame;
use keycafe_core::cluster::NodeInfo;
use keycafe_core::coord::NodeMessage;
use keycafe_server::Config;
use keycafe_server::test_util::{TestServer, cluster_config};

async fn node(coordinator: &str) -> TestServer {
    TestServer::start(Config {
        node_timeout_ms: 2000,
        ..cluster_config(coordinator)
    })
    .await
}

/// Starts two nodes and waits for both to register.
async fn two_nodes(
    coordinator: &mut FakeCoordinator,
) -> (TestServer, NodeInfo, TestServer, NodeInfo) {
    let first = node(&coordinator.addr).await;
    let first_info = coordinator.registered.recv().await.unwrap();
    let second = node(&coordinator.addr).await;
    let second_info = coordinator.registered.recv().await.unwrap();
    (first, first_info, second, second_info)
}

/// `primary` owns every slot and `replica` follows it, in `epoch`.
async fn push_roles(
    coordinator: &FakeCoordinator,
    epoch: u64,
    primary: &NodeInfo,
    replica: &NodeInfo,
) {
    let mut follower = replica.clone();
    follower.replica_of = Some(primary.id.clone());
    let mut leader = primary.clone();
    leader.replica_of = None;
    let nodes = [leader.clone(), follower];
    coordinator
        .push(&config(
            epoch,
            &nodes,
            vec![range(0, 16383, &leader)],
            vec![],
        ))
        .await;
}

fn info_field(info: &Frame, field: &str) -> Option<String> {
    let Frame::Bulk(text) = info else {
        return None;
    };
    String::from_utf8_lossy(text)
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")).map(str::to_string))
}

async fn info(client: &mut RawClient, field: &str) -> String {
    let frame = client.cmd("INFO").await;
    info_field(&frame, field).unwrap_or_else(|| panic!("INFO has no {field}: {frame:?}"))
}

async fn wait_role(client: &mut RawClient, role: &str) {
    eventually(&format!("the node is a {role}"), async || {
        info(client, "role").await == role
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_copies_follows_and_serves_readonly_reads() {
    let mut coordinator = FakeCoordinator::start().await;
    let (primary, p, replica, r) = two_nodes(&mut coordinator).await;
    let mut to_primary = RawClient::resp(primary.addr()).await;
    let mut to_replica = RawClient::resp(replica.addr()).await;

    // Data before the replica attaches (the full copy carries it)...
    let nodes_alone = [p.clone()];
    coordinator
        .push(&config(1, &nodes_alone, vec![range(0, 16383, &p)], vec![]))
        .await;
    eventually("the primary serves", async || {
        to_primary.cmd("SET before 1").await == simple("OK")
    })
    .await;
    for i in 0..500 {
        to_primary
            .cmd(&format!("SET copy:{i} v{i} PX 600000"))
            .await;
    }
    to_primary.cmd("SET gone soon").await;
    push_roles(&coordinator, 2, &p, &r).await;
    wait_role(&mut to_replica, "slave").await;

    // ...and after (the stream carries it).
    for i in 0..500 {
        to_primary.cmd(&format!("SET stream:{i} v{i}")).await;
    }
    to_primary.cmd("INCR counter").await;
    to_primary.cmd("DEL gone").await;
    to_primary.cmd("SET short lived PX 300").await;
    assert_eq!(to_primary.cmd("WAIT 1 5000").await, Frame::Integer(1));

    // A replica redirects clients that did not opt in to replica reads.
    let moved = to_replica.cmd("GET before").await;
    assert!(
        matches!(&moved, Frame::Error(e) if e.starts_with(b"MOVED")),
        "{moved:?}"
    );
    assert_eq!(to_replica.cmd("READONLY").await, simple("OK"));
    assert_eq!(to_replica.cmd("GET before").await, bulk("1"));
    assert_eq!(to_replica.cmd("GET copy:499").await, bulk("v499"));
    assert_eq!(to_replica.cmd("GET stream:499").await, bulk("v499"));
    assert_eq!(to_replica.cmd("GET counter").await, bulk("1"));
    assert_eq!(to_replica.cmd("GET gone").await, Frame::Null);
    let Frame::Integer(ttl) = to_replica.cmd("PTTL copy:0").await else {
        panic!("PTTL is an integer");
    };
    assert!((590_000..=600_000).contains(&ttl), "ttl {ttl}");
    // Writes still go to the primary, READONLY or not.
    let moved = to_replica.cmd("SET x 1").await;
    assert!(
        matches!(&moved, Frame::Error(e) if e.starts_with(b"MOVED")),
        "{moved:?}"
    );
    assert!(matches!(
        to_replica.cmd("WAIT 1 10").await,
        Frame::Error(e) if e.starts_with(b"ERR WAIT cannot be used with replica")
    ));

    // Expiry follows the primary: hidden at once, removed by its DEL.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(to_replica.cmd("GET short").await, Frame::Null);
    eventually("the replica holds exactly the primary's keys", async || {
        to_replica.cmd("DBSIZE").await == to_primary.cmd("DBSIZE").await
    })
    .await;
    assert_eq!(to_primary.cmd("DBSIZE").await, Frame::Integer(1002));

    assert_eq!(info(&mut to_primary, "connected_slaves").await, "1");
    assert_eq!(info(&mut to_replica, "master_link_status").await, "up");
    assert_eq!(
        info(&mut to_replica, "master_port").await,
        primary.port().to_string()
    );
    let role = to_replica.cmd("ROLE").await;
    assert!(
        matches!(&role, Frame::Array(items) if items[0] == bulk("slave")),
        "{role:?}"
    );

    // CLUSTER SLOTS lists the replica after the primary.
    let Frame::Array(ranges) = to_replica.cmd("CLUSTER SLOTS").await else {
        panic!("CLUSTER SLOTS is an array");
    };
    let Frame::Array(entry) = &ranges[0] else {
        panic!("a range is an array");
    };
    assert_eq!(entry.len(), 4, "start, end, primary, replica: {entry:?}");
    let nodes = to_primary.cmd("CLUSTER NODES").await;
    let Frame::Bulk(nodes) = nodes else {
        panic!("CLUSTER NODES is a bulk string");
    };
    let nodes = String::from_utf8_lossy(&nodes).into_owned();
    assert!(
        nodes.contains(&format!(" slave {} ", p.id)),
        "replica line names its primary: {nodes}"
    );

    // A dropped link resumes from its offset: no second full copy.
    assert_eq!(info(&mut to_primary, "sync_full").await, "1");
    assert_eq!(
        to_primary.cmd("CLIENT KILL TYPE replica").await,
        Frame::Integer(1)
    );
    to_primary.cmd("SET after-kill yes").await;
    eventually("the replica resumed", async || {
        info(&mut to_primary, "sync_partial_ok").await == "1"
    })
    .await;
    assert_eq!(to_primary.cmd("WAIT 1 5000").await, Frame::Integer(1));
    assert_eq!(to_replica.cmd("GET after-kill").await, bulk("yes"));
    assert_eq!(info(&mut to_primary, "sync_full").await, "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotion_and_a_manual_failover_keep_every_write() {
    let mut coordinator = FakeCoordinator::start().await;
    let (first, a, second, b) = two_nodes(&mut coordinator).await;
    let mut to_a = RawClient::resp(first.addr()).await;
    let mut to_b = RawClient::resp(second.addr()).await;
    push_roles(&coordinator, 1, &a, &b).await;
    wait_role(&mut to_b, "slave").await;
    eventually("a serves", async || {
        to_a.cmd("SET k0 0").await == simple("OK")
    })
    .await;
    for i in 1..300 {
        to_a.cmd(&format!("SET k{i} {i}")).await;
    }
    assert_eq!(to_a.cmd("WAIT 1 5000").await, Frame::Integer(1));

    // The coordinator promotes b (as after a's failure): b takes the slots,
    // a follows b, and nothing acknowledged is lost.
    push_roles(&coordinator, 2, &b, &a).await;
    wait_role(&mut to_b, "master").await;
    wait_role(&mut to_a, "slave").await;
    for i in 0..300 {
        assert_eq!(to_b.cmd(&format!("GET k{i}")).await, bulk(i.to_string()));
    }
    assert!(matches!(to_a.cmd("SET k0 x").await, Frame::Error(e) if e.starts_with(b"MOVED")));
    eventually("a follows b", async || {
        to_b.cmd("SET k300 300").await == simple("OK")
            && to_b.cmd("WAIT 1 1000").await == Frame::Integer(1)
    })
    .await;

    // CLUSTER FAILOVER on a: b pauses writes, a catches up and asks the
    // coordinator to promote it.
    assert_eq!(to_a.cmd("CLUSTER FAILOVER").await, simple("OK"));
    let request = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let (from, message) = coordinator.messages.recv().await.unwrap();
            if let NodeMessage::Failover { primary } = message {
                return (from, primary);
            }
        }
    })
    .await
    .expect("the replica asks for the failover");
    assert_eq!(request, (a.id.clone(), b.id.clone()));
    let paused = to_b.cmd("SET k301 301").await;
    assert!(
        matches!(&paused, Frame::Error(e) if e.starts_with(b"TRYAGAIN")),
        "writes pause during the hand-over: {paused:?}"
    );
    push_roles(&coordinator, 3, &a, &b).await;
    wait_role(&mut to_a, "master").await;
    for i in 0..=300 {
        assert_eq!(to_a.cmd(&format!("GET k{i}")).await, bulk(i.to_string()));
    }
    assert_eq!(to_a.cmd("SET k301 301").await, simple("OK"));
    // b stopped exactly where a took over, so it continues a's stream
    // without a full copy (a served one full copy, to b, in epoch 1).
    eventually("b continues from its offset", async || {
        info(&mut to_a, "sync_partial_ok").await == "1"
    })
    .await;
    assert_eq!(info(&mut to_a, "sync_full").await, "1");
    assert_eq!(to_a.cmd("WAIT 1 5000").await, Frame::Integer(1));
    assert!(matches!(to_b.cmd("SET k302 x").await, Frame::Error(e) if e.starts_with(b"MOVED")));
    assert!(matches!(
        to_a.cmd("CLUSTER FAILOVER").await,
        Frame::Error(e) if e.starts_with(b"ERR You should send CLUSTER FAILOVER to a replica")
    ));
}

#[tokio::test]
async fn a_blocked_wait_keeps_what_follows_and_notices_a_client_leaving() {
    let server = TestServer::standalone().await;
    let mut client = RawClient::resp(server.addr()).await;
    // What is pipelined behind a WAIT runs after it, in order.
    client.send_raw(b"WAIT 1 50\r\nPING\r\n").await;
    assert_eq!(client.read_frame().await, Some(Frame::Integer(0)));
    assert_eq!(client.read_frame().await, Some(simple("PONG")));

    // A client that leaves while blocked for good is let go.
    let mut leaver = RawClient::resp(server.addr()).await;
    leaver.send_raw(b"WAIT 1 0\r\n").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(info(&mut client, "connected_clients").await, "2");
    drop(leaver);
    eventually("the node noticed the client left", async || {
        info(&mut client, "connected_clients").await == "1"
    })
    .await;
}
