//! Addresses as a cluster announces them. On IPv6 every address is written
//! as Redis writes it, without brackets (`::1:7000` in `MOVED`, `::1` with
//! the port apart in `CLUSTER SLOTS`), and clients split it at its last
//! colon. (A cluster bound to every address, announcing each host's own,
//! is `multi_host.rs`.)

use std::time::Duration;

use cluster_tests::{
    Coordinator, CoordinatorOptions, Host, Node, NodeOptions, TempDir, assert_redirected_to_owner,
    is_fair, node_at,
};
use keycafe_client::KeycafeCluster;
use keycafe_core::Frame;

const SETTLE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_on_ipv6_writes_its_addresses_as_redis_does() {
    let dir = TempDir::new();
    let host = Host::ipv6_loopback();
    let options = CoordinatorOptions {
        host: host.clone(),
        ..CoordinatorOptions::default()
    };
    let coordinator = Coordinator::start_with(dir.path.clone(), &options)
        .await
        .expect("a coordinator on ::1");
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let options = NodeOptions {
            host: host.clone(),
            ..NodeOptions::default()
        };
        let node = Node::start_with(&coordinator.addr(), &options).await;
        nodes.push(node.expect("a node on ::1"));
    }
    let config = coordinator
        .wait_until("two primaries share the slots", SETTLE, |c| is_fair(c, 2))
        .await
        .expect("the cluster forms on IPv6");
    for node in &nodes {
        let addr = format!("::1:{}", node.port);
        let info = node_at(&config, &addr).expect("registered as ::1:<port>");
        assert_eq!(info.bus_addr, format!("::1:{}", node.bus_port));
    }

    let mut direct = nodes[0].client().await.unwrap();
    let Frame::Array(ranges) = direct.cmd(&["CLUSTER", "SLOTS"]).await.unwrap() else {
        panic!("CLUSTER SLOTS answers an array");
    };
    for range in &ranges {
        let Frame::Array(parts) = range else {
            panic!("a range is an array: {range:?}");
        };
        let Frame::Array(owner) = &parts[2] else {
            panic!("a range names its owner: {range:?}");
        };
        assert_eq!(
            owner[0],
            Frame::Bulk("::1".into()),
            "the host alone, no brackets"
        );
        let port = u16::try_from(match owner[1] {
            Frame::Integer(port) => port,
            _ => panic!("a port is an integer: {owner:?}"),
        })
        .unwrap();
        assert!(
            nodes.iter().any(|n| n.port == port),
            "{port} is a node's port"
        );
    }

    let owner = assert_redirected_to_owner(&mut direct, &config).await;
    assert_eq!(owner, format!("::1:{}", nodes[1].port));

    // A client given `[::1]:port` follows `::1:port` redirects.
    let client = KeycafeCluster::connect(format!("[::1]:{}", nodes[0].port))
        .await
        .expect("the client connects over IPv6");
    for i in 0..100 {
        client
            .set(format!("v6:{i}"), format!("{i}"))
            .await
            .expect("SET over IPv6");
    }
    for i in 0..100 {
        let value = client.get_string(format!("v6:{i}")).await.unwrap();
        assert_eq!(value, Some(i.to_string()));
    }
}
