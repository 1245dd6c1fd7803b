//! A TLS cluster: the coordinator link, the bus (gossip, slot migration,
//! replication) and the client port all speak mutual TLS, every member
//! presenting a certificate from the cluster's CA. The cluster must do what
//! a plain one does — form, take writes, move slots to a joining pair,
//! replicate, fail over a killed primary without losing what its replica
//! had — and a peer that speaks plain TCP, or holds a certificate from
//! another CA, must get nothing from a bus port or the coordinator.

use std::time::Duration;

use bytes::BytesMut;
use cluster_tests::{
    Coordinator, CoordinatorOptions, MemberTls, Node, NodeOptions, RespClient, TempDir, eventually,
    is_fair_replicated, owner_of, primaries,
};
use keycafe_client::{ClientConfig, KeycafeCluster, TlsOptions};
use keycafe_core::coord::{self, CoordinatorMessage, NodeMessage};
use keycafe_core::tls::test_pki::TestPki;
use keycafe_core::tls::{self, ClientStream, Connector};
use keycafe_core::{Frame, auth};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NODE_TIMEOUT_MS: u64 = 2000;
/// Forming and rebalancing a cluster; generous for a loaded machine.
const SETTLE: Duration = Duration::from_secs(60);
const KEYS: usize = 2000;

fn node_options(member: &MemberTls) -> NodeOptions {
    NodeOptions {
        node_timeout_ms: Some(NODE_TIMEOUT_MS),
        tls: Some(member.clone()),
        ..NodeOptions::default()
    }
}

/// A client of the nodes' TLS client ports, with a client certificate.
fn client_connector(pki: &TestPki) -> Connector {
    let identity = Some((pki.client_cert.as_path(), pki.client_key.as_path()));
    Connector::new(tls::client_config(&pki.ca_cert, identity).unwrap())
}

async fn dbsize(addr: &str, tls: &Connector) -> anyhow::Result<i64> {
    let mut client = RespClient::connect_with(addr, Some(tls)).await?;
    match client.cmd(&["DBSIZE"]).await? {
        Frame::Integer(n) => Ok(n),
        other => anyhow::bail!("DBSIZE answered {other:?}"),
    }
}

async fn assert_every_key(kc: &KeycafeCluster, what: &str) {
    for i in 0..KEYS {
        let key = format!("key:{i}");
        let value = kc
            .get(&key)
            .await
            .unwrap_or_else(|e| panic!("{what}: GET {key}: {e}"));
        assert_eq!(
            value.as_deref(),
            Some(format!("v{i}").as_bytes()),
            "{what}: {key}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_forms_moves_slots_replicates_and_fails_over() {
    let dir = TempDir::new();
    let pki = TestPki::generate(&dir.path);
    let member = MemberTls::from_pki(&pki);
    let coordinator = Coordinator::start_with(
        dir.path.join("coordinator"),
        &CoordinatorOptions {
            replicas: Some(1),
            node_timeout_ms: Some(NODE_TIMEOUT_MS),
            tls: Some(member.clone()),
            ..CoordinatorOptions::default()
        },
    )
    .await
    .expect("the coordinator starts");

    // A primary and its replica: registration, configuration and the first
    // full sync all go over TLS.
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let node = Node::start_with(&coordinator.addr(), &node_options(&member)).await;
        nodes.push(node.expect("a node starts"));
    }
    coordinator
        .wait_until("one primary with its replica", SETTLE, |c| {
            is_fair_replicated(c, 1, 1)
        })
        .await
        .unwrap();

    let tls = TlsOptions::new(&pki.ca_cert).identity(&pki.client_cert, &pki.client_key);
    let kc = ClientConfig::new([nodes[0].addr()])
        .tls(tls)
        .connect()
        .await
        .expect("a TLS client connects");
    let pairs: Vec<(String, String)> = (0..KEYS)
        .map(|i| (format!("key:{i}"), format!("v{i}")))
        .collect();
    for chunk in pairs.chunks(200) {
        kc.mset(chunk.iter().cloned()).await.expect("MSET");
    }

    // A second pair joins: half the slots move over the TLS bus, and the
    // new primary's replica syncs from it.
    for _ in 0..2 {
        let node = Node::start_with(&coordinator.addr(), &node_options(&member)).await;
        nodes.push(node.expect("a node starts"));
    }
    let config = coordinator
        .wait_until("two primaries with a replica each", SETTLE, |c| {
            is_fair_replicated(c, 2, 1)
        })
        .await
        .unwrap();
    assert_every_key(&kc, "after the join").await;

    // Every replica holds what its primary holds.
    let clients = client_connector(&pki);
    for primary in primaries(&config) {
        let replica = config.replicas_of(&primary.id).next().expect("a replica");
        let what = format!("{} has {}'s keys", replica.client_addr, primary.client_addr);
        eventually(&what, SETTLE, async || {
            let (p, r) = (
                dbsize(&primary.client_addr, &clients).await?,
                dbsize(&replica.client_addr, &clients).await?,
            );
            anyhow::ensure!(
                p > 0 && p == r,
                "{p} keys on the primary, {r} on the replica"
            );
            Ok(true)
        })
        .await
        .unwrap();
    }

    // The primary of key:0 dies; its replica takes over with every key.
    let victim = owner_of(&config, "key:0").expect("key:0 has an owner");
    let index = nodes.iter().position(|n| n.addr() == victim).unwrap();
    nodes[index].kill().await.unwrap();
    coordinator
        .wait_until("key:0 has a new owner", SETTLE, |c| {
            owner_of(c, "key:0").is_some_and(|o| o != victim)
        })
        .await
        .unwrap();
    eventually("the promoted replica serves", SETTLE, async || {
        Ok(kc.get("key:0").await.is_ok())
    })
    .await
    .unwrap();
    assert_every_key(&kc, "after the failover").await;

    // Strangers get nothing: not from a bus port, not from the coordinator.
    let survivor = nodes.iter().find(|n| n.addr() != victim).unwrap();
    let bus = format!("127.0.0.1:{}", survivor.bus_port);
    assert_plain_tcp_gets_no_answer(&bus, b"*1\r\n$4\r\nPING\r\n").await;
    let mut hello = BytesMut::new();
    let nonce = auth::nonce().unwrap();
    let message = NodeMessage::Hello {
        node: "stranger".into(),
        nonce,
    };
    coord::encode_message(&message, &mut hello);
    assert_plain_tcp_gets_no_answer(&coordinator.addr(), &hello).await;
    let untrusted = (
        pki.other_client_cert.as_path(),
        pki.other_client_key.as_path(),
    );
    let foreign = Connector::new(tls::client_config(&pki.ca_cert, Some(untrusted)).unwrap());
    let mut stranger = RespClient::connect_with(&bus, Some(&foreign)).await;
    if let Ok(stranger) = &mut stranger {
        // TLS 1.3: the server refuses the certificate after the client
        // thinks the handshake is done, so the refusal shows on first use.
        let answer = stranger.cmd(&["PING"]).await;
        assert!(
            answer.is_err(),
            "a foreign certificate was served: {answer:?}"
        );
    }
}

/// Sends `request` over plain TCP and checks that no answer of the plain
/// protocols comes back (a TLS listener closes, or sends a TLS alert).
async fn assert_plain_tcp_gets_no_answer(addr: &str, request: &[u8]) {
    let mut stream = ClientStream::connect(addr, None).await.unwrap();
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer));
    let _ = read.await;
    assert!(
        !answer.starts_with(b"+") && !answer.starts_with(b"-") && !answer.starts_with(b"*"),
        "{addr} answered plain text: {:?}",
        String::from_utf8_lossy(&answer)
    );
    let mut buf = BytesMut::from(&answer[..]);
    assert!(
        !matches!(
            coord::decode_message::<CoordinatorMessage>(&mut buf),
            Ok(Some(_))
        ),
        "{addr} answered a coordination message"
    );
}
