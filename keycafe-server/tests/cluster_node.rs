//! Cluster mode of a node, driven by a scripted coordinator: registration,
//! epochs, redirects, and a live slot migration under a writing client.

mod common;

use std::collections::HashMap;

use common::RawClient;
use common::cluster::{FakeCoordinator, config, eventually, range};
use keycafe_core::auth::{self, Step};
use keycafe_core::cluster::Migration;
use keycafe_core::coord::NodeMessage;
use keycafe_core::{Frame, key_slot};
use keycafe_server::Config;
use keycafe_server::test_util::{TEST_CLUSTER_SECRET, TestServer, cluster_config};
use redis::AsyncCommands;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_epochs_and_a_live_migration() {
    let mut coordinator = FakeCoordinator::start().await;
    let (server_a, server_b) = (
        TestServer::start(cluster_config(&coordinator.addr)).await,
        TestServer::start(cluster_config(&coordinator.addr)).await,
    );
    let mut nodes = vec![
        coordinator.registered.recv().await.unwrap(),
        coordinator.registered.recv().await.unwrap(),
    ];
    nodes.sort_by_key(|n| n.client_addr != server_a.addr().to_string());
    let (a, b) = (nodes[0].clone(), nodes[1].clone());

    // Before any configuration a node serves nothing.
    let mut client_a = RawClient::resp(server_a.addr()).await;
    let mut client_b = RawClient::resp(server_b.addr()).await;
    assert_eq!(
        client_a.cmd("GET k").await,
        common::error("CLUSTERDOWN Hash slot not served")
    );

    // Epoch 1: A owns everything.
    coordinator
        .push(&config(1, &nodes, vec![range(0, 16383, &a)], vec![]))
        .await;
    eventually("A serves", async || {
        client_a.cmd("SET k v").await == common::simple("OK")
    })
    .await;
    let moved = format!("MOVED {} {}", key_slot(b"k"), a.client_addr);
    eventually("B redirects", async || {
        client_b.cmd("GET k").await == common::error(&moved)
    })
    .await;
    assert_eq!(
        client_a.cmd("MSET x 1 y 2").await,
        common::error("CROSSSLOT Keys in request don't hash to the same slot")
    );
    assert_eq!(
        client_a.cmd("MSET {t}x 1 {t}y 2").await,
        common::simple("OK")
    );

    // Load keys through a Redis cluster client, with TTLs on some.
    let url = format!("redis://{}/", server_a.addr());
    let redis = redis::cluster::ClusterClient::new(vec![url]).unwrap();
    let mut con = redis.get_async_connection().await.unwrap();
    for i in 0..3000 {
        let _: () = con.set(format!("key:{i}"), i).await.unwrap();
    }
    let ttls_set = std::time::Instant::now();
    for i in 0..100 {
        let _: () = con.set_ex(format!("ttl:{i}"), i, 1000).await.unwrap();
    }

    // Epoch 2: move the lower half of the slots to B while a writer writes.
    let moving: Vec<u16> = (0..8192).collect();
    let migrations = moving
        .iter()
        .map(|&slot| Migration {
            slot,
            from: a.id.clone(),
            to: b.id.clone(),
        })
        .collect();
    coordinator
        .push(&config(2, &nodes, vec![range(0, 16383, &a)], migrations))
        .await;
    let writer = tokio::spawn({
        let mut con = redis.get_async_connection().await.unwrap();
        async move {
            let mut last = HashMap::new();
            for round in 0..20 {
                for i in 0..150 {
                    let key = format!("key:{i}");
                    let _: () = con
                        .set(&key, round * 1000 + i)
                        .await
                        .expect("write acknowledged");
                    last.insert(key, round * 1000 + i);
                }
            }
            last
        }
    });
    coordinator.wait_done(moving.clone()).await;
    let last = writer.await.unwrap();

    // Epoch 3: B owns the lower half.
    let split = |epoch| {
        config(
            epoch,
            &nodes,
            vec![range(0, 8191, &b), range(8192, 16383, &a)],
            vec![],
        )
    };
    coordinator.push(&split(3)).await;
    reaches_epoch(&mut client_a, 3).await;

    // Every key has its last acknowledged value, and lives on exactly one node.
    let mut con = redis.get_async_connection().await.unwrap();
    for i in 0..3000 {
        let key = format!("key:{i}");
        let expected = last.get(&key).copied().unwrap_or(i);
        let value: i64 = con.get(&key).await.unwrap();
        assert_eq!(value, expected, "{key}");
    }
    // The TTL moved with the key: it counts down from when it was set, not
    // from the move (however slow this machine is today).
    let elapsed = ttls_set.elapsed().as_secs() as i64;
    for i in 0..100 {
        let ttl: i64 = con.ttl(format!("ttl:{i}")).await.unwrap();
        assert!(
            (1000 - elapsed - 1..=1000).contains(&ttl),
            "ttl:{i} kept its TTL, got {ttl} after {elapsed} s"
        );
    }
    for slot in [0u16, 100, 8191, 8192, 16383] {
        let command = format!("CLUSTER COUNTKEYSINSLOT {slot}");
        let (on_a, on_b) = (client_a.cmd(&command).await, client_b.cmd(&command).await);
        let (Frame::Integer(on_a), Frame::Integer(on_b)) = (on_a, on_b) else {
            panic!("integers")
        };
        if slot < 8192 {
            assert_eq!(on_a, 0, "slot {slot} left A");
        } else {
            assert_eq!(on_b, 0, "slot {slot} never reached B");
        }
    }

    // A delayed, older configuration is ignored: pushed before a newer one
    // on the same link, it has been dealt with once the newer one shows.
    coordinator
        .push(&config(2, &nodes, vec![range(0, 16383, &a)], vec![]))
        .await;
    coordinator.push(&split(4)).await;
    reaches_epoch(&mut client_a, 4).await;
    reaches_epoch(&mut client_b, 4).await;
    // Had either node taken epoch 2, B would have dropped its half as keys
    // of slots it no longer serves.
    for i in (0..3000).step_by(7) {
        let key = format!("key:{i}");
        let value: i64 = con.get(&key).await.unwrap();
        assert_eq!(value, last.get(&key).copied().unwrap_or(i), "{key}");
    }
    let slot = key_slot(b"key:1");
    let owner = if slot < 8192 { &b } else { &a };
    let other = if slot < 8192 {
        &mut client_a
    } else {
        &mut client_b
    };
    assert_eq!(
        other.cmd("GET key:1").await,
        common::error(&format!("MOVED {slot} {}", owner.client_addr))
    );

    server_a.stop().await;
    server_b.stop().await;
}

/// Waits until the node behind `client` has adopted `epoch`.
async fn reaches_epoch(client: &mut RawClient, epoch: u64) {
    let wanted = format!("cluster_current_epoch:{epoch}");
    eventually(&format!("the node adopts epoch {epoch}"), async || {
        matches!(client.cmd("CLUSTER INFO").await, Frame::Bulk(info) if String::from_utf8_lossy(&info).contains(&wanted))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_secret_keeps_strangers_off_the_bus() {
    let mut coordinator = FakeCoordinator::start().await;
    let bus_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = TestServer::start(Config {
        cluster_port: Some(bus_port),
        requirepass: Some("client-password".into()),
        ..cluster_config(&coordinator.addr)
    })
    .await;
    let node = coordinator.registered.recv().await.unwrap();
    let slot = key_slot(b"k");
    coordinator
        .push(&config(
            1,
            std::slice::from_ref(&node),
            vec![range(0, 16383, &node)],
            vec![],
        ))
        .await;
    let bus: std::net::SocketAddr = node.bus_addr.parse().unwrap();
    let slot = slot.to_string();
    let import = [
        b"KC.IMPORT".as_slice(),
        slot.as_bytes(),
        b"k",
        b"stolen",
        b"-1",
    ];

    // A stranger on the bus: every bus command is refused, the client
    // password is no key to it, and a wrong proof is refused too.
    let mut stranger = RawClient::native(bus).await;
    let noauth = common::error("NOAUTH Authentication required.");
    let psync = [&b"KC.PSYNC"[..], b"me", b"?", b"-1", b"127.0.0.1:1"];
    for command in [
        &import[..],
        &[b"KC.CONFIG"],
        &psync,
        &[b"KC.FAILOVER.PAUSE", b"60000"],
    ] {
        assert_eq!(stranger.call(command).await, noauth);
    }
    assert!(matches!(
        stranger.cmd("AUTH client-password").await,
        Frame::Error(_)
    ));
    let nonce = auth::nonce().unwrap();
    let hello = stranger
        .call(&[b"KC.HELLO", b"stranger", nonce.as_bytes()])
        .await;
    assert!(
        matches!(hello, Frame::Array(ref items) if items.len() == 2),
        "{hello:?}"
    );
    let forged = auth::proof(
        b"a guess at the secret",
        Step::BusClient,
        "x",
        &nonce,
        "stranger",
    );
    assert!(matches!(
        stranger.call(&[b"KC.AUTH", forged.as_bytes()]).await,
        Frame::Error(e) if e.starts_with(b"WRONGPASS")
    ));
    assert_eq!(stranger.call(&import).await, noauth);
    let mut client = RawClient::resp(server.addr()).await;
    assert_eq!(
        client.cmd("AUTH client-password").await,
        common::simple("OK")
    );
    eventually("the node serves", async || {
        client.cmd("GET k").await == Frame::Null
    })
    .await;

    // A node that proves the secret may import; client commands stay off
    // the bus.
    let mut peer = RawClient::native(bus).await;
    let ours = auth::nonce().unwrap();
    let Frame::Array(answer) = peer.call(&[b"KC.HELLO", b"member", ours.as_bytes()]).await else {
        panic!("KC.HELLO answers an array");
    };
    let [Frame::Bulk(theirs), Frame::Bulk(proof)] = &answer[..] else {
        panic!("KC.HELLO answers a nonce and a proof: {answer:?}");
    };
    let (theirs, proof) = (
        std::str::from_utf8(theirs).unwrap(),
        std::str::from_utf8(proof).unwrap(),
    );
    let secret = TEST_CLUSTER_SECRET.as_bytes();
    assert!(
        auth::verify(secret, Step::BusServer, &ours, theirs, "", proof),
        "the node proves itself"
    );
    let mine = auth::proof(secret, Step::BusClient, theirs, &ours, "member");
    assert_eq!(
        peer.call(&[b"KC.AUTH", mine.as_bytes()]).await,
        common::simple("OK")
    );
    assert_eq!(peer.call(&import).await, Frame::Integer(1));
    assert!(
        matches!(peer.cmd("GET k").await, Frame::Error(e) if e.starts_with(b"ERR unknown command"))
    );
    assert_eq!(client.cmd("GET k").await, common::bulk("stolen"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_need_a_lease_from_the_coordinator() {
    let mut coordinator = FakeCoordinator::start().await;
    coordinator.set_lease(600);
    let server = TestServer::start(cluster_config(&coordinator.addr)).await;
    let a = coordinator.registered.recv().await.unwrap();
    coordinator
        .push(&config(
            1,
            std::slice::from_ref(&a),
            vec![range(0, 16383, &a)],
            vec![],
        ))
        .await;
    let mut client = RawClient::resp(server.addr()).await;
    eventually("writes are served under a lease", async || {
        client.cmd("SET k v1").await == common::simple("OK")
    })
    .await;
    assert_eq!(client.cmd("SET k v2").await, common::simple("OK"));

    // The coordinator stops renewing: within one lease, writes are refused
    // and reads go on, except for a connection that asked for fenced reads.
    coordinator.set_lease(0);
    eventually("writes are refused", async || {
        matches!(client.cmd("SET other x").await, Frame::Error(e) if e.starts_with(b"CLUSTERDOWN"))
    })
    .await;
    assert_eq!(client.cmd("GET k").await, Frame::Bulk("v2".into()));
    assert_eq!(
        client.cmd("CLIENT FENCED-READS ON").await,
        common::simple("OK")
    );
    assert!(matches!(client.cmd("GET k").await, Frame::Error(e) if e.starts_with(b"CLUSTERDOWN")));
    assert_eq!(
        client.cmd("CLIENT FENCED-READS OFF").await,
        common::simple("OK")
    );
    assert!(matches!(
        client.cmd("CLIENT FENCED-READS MAYBE").await,
        Frame::Error(_)
    ));

    // Leases again: writes resume.
    coordinator.set_lease(600);
    eventually("writes resume", async || {
        client.cmd("SET k v3").await == common::simple("OK")
    })
    .await;
    assert_eq!(client.cmd("GET k").await, Frame::Bulk("v3".into()));

    // Heartbeats come three times per lease, numbered in order.
    let mut seqs = Vec::new();
    while seqs.len() < 3 {
        if let Some((_, NodeMessage::Heartbeat(report))) = coordinator.messages.recv().await {
            seqs.push(report.seq);
        }
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_coordinator_link_is_given_up_and_reconnected() {
    use tokio::io::AsyncReadExt;
    // A coordinator whose host went silent: it accepts, then says nothing.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let config = Config {
        node_timeout_ms: 1000,
        ..cluster_config(&addr)
    };
    let server = TestServer::start(config).await;
    let within = std::time::Duration::from_secs(10);
    let (mut first, _) = tokio::time::timeout(within, listener.accept())
        .await
        .expect("the node connects")
        .unwrap();
    // The node registers and heartbeats; nothing answers. It gives the link
    // up (closing it) and connects again.
    let (_second, _) = tokio::time::timeout(within, listener.accept())
        .await
        .expect("the node reconnects")
        .unwrap();
    let mut sink = vec![0u8; 64 * 1024];
    let closed = tokio::time::timeout(within, async {
        while first.read(&mut sink).await.unwrap_or(0) > 0 {}
    });
    closed.await.expect("the old link is closed");
    server.stop().await;
}
