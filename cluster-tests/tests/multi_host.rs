//! A cluster across hosts: each process in a network namespace of its own
//! (`cluster_tests::netns`), listening on every address (`bind 0.0.0.0`)
//! and announcing the one others reach it at, as in containers. The
//! cluster runs as it should across machines: protected (a password on
//! every node, the cluster secret, the coordinator's admin token) and on
//! TLS everywhere (client ports, bus, coordinator link).
//!
//! The coordinator is on host 0, three primaries on hosts 1–3, a replica of
//! each on hosts 4–6, and the client in the lab's hub, a host of its own.
//! The test checks that nothing announces `0.0.0.0`, that keys route from
//! the client by `MOVED` and `CLUSTER SLOTS`, and that when a primary's
//! host is unplugged its replica takes over with every write that was
//! acknowledged with `WAIT 1` before.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cluster_tests::netns::{self, Lab};
use cluster_tests::{
    Coordinator, CoordinatorOptions, MemberTls, Node, NodeOptions, RespClient, TempDir,
    assert_redirected_to_owner, eventually, is_fair_replicated, node_at, owner_of,
};
use keycafe_client::{ClientConfig, KeycafeCluster, TlsOptions};
use keycafe_core::Frame;
use keycafe_core::tls::test_pki::TestPki;
use keycafe_core::tls::{self, Connector};

/// The coordinator, three primaries and three replicas.
const HOSTS: usize = 7;
const PRIMARIES: usize = 3;
const NODE_TIMEOUT_MS: u64 = 2000;
/// The whole inner run, set-up and checks included.
const TEST_TIMEOUT: Duration = Duration::from_secs(150);
/// Forming the cluster; generous for a loaded machine.
const SETTLE: Duration = Duration::from_secs(60);
/// An unplugged primary's replica must be promoted within this.
const FAILOVER_BOUND: Duration = Duration::from_millis(NODE_TIMEOUT_MS + 6000);
const PASSWORD: &str = "a password for every node";

#[test]
fn a_cluster_across_hosts_announces_its_addresses_and_fails_over_an_unplugged_host() {
    netns::run(
        "a_cluster_across_hosts_announces_its_addresses_and_fails_over_an_unplugged_host",
        HOSTS,
        TEST_TIMEOUT,
        across_hosts,
    );
}

async fn across_hosts(lab: Lab) {
    let dir = TempDir::new();
    let ips: Vec<String> = (0..HOSTS).map(|i| lab.ip(i)).collect();
    let names: Vec<&str> = ips.iter().map(String::as_str).collect();
    let pki = TestPki::generate_for(&dir.path, &names);
    let member = MemberTls::from_pki(&pki);
    let coordinator = Coordinator::start_with(
        dir.path.join("coordinator"),
        &CoordinatorOptions {
            host: lab.host(0),
            tls: Some(member.clone()),
            // Each replica names its primary.
            replicas: Some(0),
            node_timeout_ms: Some(NODE_TIMEOUT_MS),
            listen_everywhere: true,
            ..CoordinatorOptions::default()
        },
    )
    .await
    .expect("the coordinator starts on 0.0.0.0");
    let mut nodes: Vec<Node> = Vec::new();
    for i in 1..HOSTS {
        let replica_of = (i > PRIMARIES).then(|| nodes[i - 1 - PRIMARIES].addr());
        let options = NodeOptions {
            host: lab.host(i),
            tls: Some(member.clone()),
            node_timeout_ms: Some(NODE_TIMEOUT_MS),
            listen_everywhere: true,
            requirepass: Some(PASSWORD.to_string()),
            replica_of,
            ..NodeOptions::default()
        };
        let node = Node::start_with(&coordinator.addr(), &options).await;
        nodes.push(node.expect("a node starts on 0.0.0.0"));
    }
    let config = coordinator
        .wait_until("three primaries with a replica each", SETTLE, |c| {
            is_fair_replicated(c, PRIMARIES, 1)
        })
        .await
        .expect("the cluster forms across hosts");

    // Registration: every node under the address of its host.
    for node in &nodes {
        let info = node_at(&config, &node.addr()).expect("registered under its host's address");
        assert_eq!(
            info.bus_addr,
            format!("{}:{}", node.host().ip(), node.bus_port)
        );
    }
    let api = coordinator.api().await.expect("/api/cluster").to_string();
    assert!(
        !api.contains("0.0.0.0"),
        "the coordinator shows 0.0.0.0: {api}"
    );

    let connector = client_connector(&pki);
    let primary = nodes[0].addr();
    let mut direct = authenticated(&primary, &connector)
        .await
        .expect("a TLS connection across hosts, authenticated");
    // CLUSTER SLOTS: each range at its owner's announced address.
    let slots = direct.cluster_slots().await.expect("CLUSTER SLOTS");
    assert!(!slots.is_empty());
    for entry in &slots {
        for addr in &entry.addrs {
            assert!(
                nodes.iter().any(|n| n.addr() == *addr),
                "CLUSTER SLOTS names {addr}, which is no node's host address"
            );
        }
    }
    // MOVED: a key of another primary's, redirected to that host.
    assert_redirected_to_owner(&mut direct, &config).await;

    // Keys route from a client on another host.
    let client = cluster_client(&pki, [primary.clone()]).await;
    for i in 0..300 {
        let (key, value) = (format!("routed:{i}"), format!("v{i}"));
        client.set(&key, &value).await.expect("SET across hosts");
    }
    for i in 0..300 {
        let value = client.get_string(format!("routed:{i}")).await.unwrap();
        assert_eq!(value.as_deref(), Some(format!("v{i}").as_str()));
    }

    // Writes to one primary, each acknowledged only once a replica has it.
    let mut acknowledged = BTreeMap::new();
    let mut outcomes = BTreeMap::<&str, usize>::new();
    for i in 0..200 {
        let key = format!("durable:{{{i}}}");
        if owner_of(&config, &key).as_deref() != Some(primary.as_str()) {
            continue;
        }
        let value = format!("w{i}");
        let outcome = match direct
            .pipeline(&[["SET", &key, &value], ["WAIT", "1", "2000"]])
            .await
        {
            Ok(replies) if replies[1] == Frame::Integer(1) => {
                acknowledged.insert(key, value);
                "acknowledged"
            }
            Ok(_) => "not replicated",
            Err(_) => "unknown",
        };
        *outcomes.entry(outcome).or_default() += 1;
    }
    println!("writes before the unplug: {outcomes:?}");
    assert!(
        acknowledged.len() >= 20,
        "too few acknowledged writes to check: {outcomes:?}"
    );

    // The primary's host goes off the network.
    let replica = nodes[PRIMARIES].addr();
    let replica_id = node_at(&config, &replica).unwrap().id.clone();
    lab.unplug(&primary).unwrap();
    let unplugged = Instant::now();
    let promoted = coordinator
        .wait_until("the replica is promoted", FAILOVER_BOUND, |c| {
            node_at(c, &replica).is_some_and(|n| !n.is_replica())
                && owner_of(c, &acknowledged_key(&acknowledged)).as_deref()
                    == Some(replica.as_str())
        })
        .await;
    let config = promoted.expect("the unplugged primary's replica takes over");
    println!("promoted {:?} after the unplug", unplugged.elapsed());
    assert_eq!(
        owner_of(&config, &acknowledged_key(&acknowledged)),
        Some(replica.clone())
    );

    // Every acknowledged write is there, and the slots take writes again,
    // for a client that starts from the surviving hosts.
    let survivors: Vec<String> = nodes.iter().skip(1).map(Node::addr).collect();
    let client = cluster_client(&pki, survivors).await;
    for (key, value) in &acknowledged {
        let got = client
            .get_string(key)
            .await
            .expect("GET after the failover");
        assert_eq!(got.as_ref(), Some(value), "{key} was acknowledged");
    }
    for key in acknowledged.keys() {
        client
            .set(key, "after")
            .await
            .expect("SET after the failover");
    }

    // Plugged back in, the old primary follows its former replica.
    lab.plug(&primary).unwrap();
    coordinator
        .wait_until(
            "the old primary is a replica in the configuration",
            SETTLE,
            |c| {
                node_at(c, &primary).and_then(|n| n.replica_of.as_deref())
                    == Some(replica_id.as_str())
            },
        )
        .await
        .expect("the old primary rejoins");
    let (host, port) = keycafe_core::addr::split(&replica).unwrap();
    let follows = eventually(
        "the old primary follows its former replica",
        SETTLE,
        async || {
            let mut client = authenticated(&primary, &connector).await?;
            let info = client.info("replication").await?;
            Ok(info["role"] == "slave"
                && info["master_host"] == host
                && info["master_port"] == port.to_string()
                && info["master_link_status"] == "up")
        },
    );
    follows
        .await
        .expect("the old primary replicates from the new one");
}

/// One key of the acknowledged writes (they share the unplugged
/// primary's slots).
fn acknowledged_key(acknowledged: &BTreeMap<String, String>) -> String {
    acknowledged.keys().next().cloned().unwrap_or_default()
}

/// A client of the nodes' TLS client ports, with a client certificate.
fn client_connector(pki: &TestPki) -> Connector {
    let identity = Some((pki.client_cert.as_path(), pki.client_key.as_path()));
    Connector::new(tls::client_config(&pki.ca_cert, identity).unwrap())
}

/// A RESP connection to `addr` over TLS, authenticated.
async fn authenticated(addr: &str, connector: &Connector) -> anyhow::Result<RespClient> {
    let mut client = RespClient::connect_with(addr, Some(connector)).await?;
    let auth = client.cmd(&["AUTH", PASSWORD]).await?;
    anyhow::ensure!(auth == Frame::Simple("OK".into()), "AUTH answered {auth:?}");
    Ok(client)
}

/// The cluster client as an application on the hub's host uses it.
async fn cluster_client(pki: &TestPki, seeds: impl IntoIterator<Item = String>) -> KeycafeCluster {
    let tls = TlsOptions::new(&pki.ca_cert).identity(&pki.client_cert, &pki.client_key);
    ClientConfig::new(seeds)
        .tls(tls)
        .password(PASSWORD)
        .connect_timeout(Duration::from_secs(1))
        .response_timeout(Duration::from_secs(2))
        .connect()
        .await
        .expect("a TLS client with a password connects across hosts")
}
