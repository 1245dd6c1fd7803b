//! Network partitions with the real binaries: each process in a network
//! namespace of its own, a primary's links silently dropped by iptables
//! while the test's client still reaches it (see `cluster_tests::netns`).
//!
//! Two writers record a history of every write to one primary's keys
//! (`cluster_tests::history`); from it the tests check that no durable
//! write is lost and that no two nodes acknowledged writes for one slot at
//! overlapping times.

use std::time::{Duration, Instant};

use cluster_tests::history::{
    Answers, Op, Overlap, PATIENCE, Writers, assert_nothing_durable_lost, ok_time,
};
use cluster_tests::netns::{self, Lab};
use cluster_tests::replicated::{
    AUTO, NODE_TIMEOUT, ReplicatedCluster, assert_same_data, keys_owned_by, replica_sets, slots_of,
    wait_caught_up,
};
use cluster_tests::{Host, Node, RespClient, eventually, node_at, owner_of};
use keycafe_core::Frame;
use keycafe_core::cluster::ClusterConfig;

/// The coordinator and four nodes (two primaries with a replica each).
const HOSTS: usize = 5;
/// The whole inner run of a test, set-up and checks included.
const TEST_TIMEOUT: Duration = Duration::from_secs(90);
/// A cut-off primary's slots must be served again this long after the cut.
const SERVED_BOUND: Duration = NODE_TIMEOUT.saturating_add(Duration::from_secs(2));

#[test]
fn a_cut_off_primary_stops_acknowledging_before_its_replica_takes_over() {
    netns::run(
        "a_cut_off_primary_stops_acknowledging_before_its_replica_takes_over",
        HOSTS,
        TEST_TIMEOUT,
        cut_off_primary,
    );
}

#[test]
fn a_primary_cut_off_only_from_the_coordinator_is_not_replaced() {
    netns::run(
        "a_primary_cut_off_only_from_the_coordinator_is_not_replaced",
        HOSTS,
        TEST_TIMEOUT,
        cut_off_from_coordinator,
    );
}

/// P is cut off from the coordinator and every other node for 8 s under
/// writes, then healed.
async fn cut_off_primary(lab: Lab) {
    const CUT: Duration = Duration::from_secs(8);
    let cluster = start_cluster(&lab).await;
    let config = cluster.config().await;
    let sets = replica_sets(&config);
    let (p, r) = (sets[0].0.clone(), sets[0].1[0].clone());
    let r_id = node_at(&config, &r).unwrap().id.clone();
    let keys = keys_owned_by(&config, &p, "cut:", 100);
    let writers = Writers::start(&cluster, &keys).await;

    let mut peers: Vec<String> = cluster.nodes.iter().map(Node::addr).collect();
    peers.retain(|a| *a != p);
    peers.push(cluster.coordinator.addr());
    lab.cut(&p, &peers).unwrap();
    let cut = Instant::now();
    println!("cut {p} off from {peers:?}");
    tokio::time::sleep(CUT).await;
    lab.heal(&p).unwrap();
    let healed = Instant::now();
    println!("healed after {:?}", healed - cut);

    // The old primary learns the new configuration and follows its former
    // replica, without a restart.
    let rejoined = cluster
        .coordinator
        .wait_until(
            "the old primary follows its former replica",
            PATIENCE,
            |c| {
                let new = node_at(c, &r).is_some_and(|n| !n.is_replica());
                let old =
                    node_at(c, &p).and_then(|n| n.replica_of.as_deref()) == Some(r_id.as_str());
                new && old
            },
        )
        .await;
    rejoined.unwrap();
    wait_follows(&p, &r).await;
    println!("{p} follows {r} {:?} after the heal", healed.elapsed());
    // Writes are made durable again (the old primary is the new one's
    // replica) before the writer stops.
    writers
        .wait_for_more("durable writes after the heal", 20)
        .await;
    let history = writers.stop().await;

    let summary = Overlap::of(&history, &p, &r, cut);
    summary.print(&history, &p, &r, healed);
    let first_r = summary
        .first_r
        .expect("the replica acknowledged no write: never promoted?");
    let served = ok_time(first_r) - cut;
    assert!(
        served <= SERVED_BOUND,
        "{r} acknowledged its first write for {p}'s slots {served:?} after the cut \
         (bound {SERVED_BOUND:?})"
    );

    assert_nothing_durable_lost(&history, &r).await;
    let config = cluster.config().await;
    assert_replicas_equal_primaries(&config, &keys).await;

    // Last, so that a failure here comes after every other property held.
    summary.assert_none();
}

/// P is cut off from the coordinator only (it still reaches its replica
/// and its peers) for twice the node timeout.
async fn cut_off_from_coordinator(lab: Lab) {
    let cut_for = NODE_TIMEOUT * 2;
    let cluster = start_cluster(&lab).await;
    let config = cluster.config().await;
    let sets = replica_sets(&config);
    let (p, r) = (sets[0].0.clone(), sets[0].1[0].clone());
    let p_id = node_at(&config, &p).unwrap().id.clone();
    let owned = slots_of(&config, &p_id);
    let keys = keys_owned_by(&config, &p, "coord:", 100);
    let probe = keys_owned_by(&config, &p, "probe:", 1).remove(0);
    let writers = Writers::start(&cluster, &keys).await;

    lab.cut(&p, &[cluster.coordinator.addr()]).unwrap();
    let cut = Instant::now();
    println!("cut {p} off from the coordinator (not from its replica {r})");
    // For the whole cut, the coordinator keeps P as the owner of its slots,
    // although it stops hearing from it (which shows the cut is real).
    let (mut failing_seen, mut checks) = (None, 0);
    while cut.elapsed() < cut_for {
        let config = cluster.coordinator.config().await.unwrap();
        checks += 1;
        let p_node = node_at(&config, &p).expect("P is still a member");
        assert!(
            !p_node.is_replica() && slots_of(&config, &p_id) == owned,
            "{:?} after the cut, without a partition between {p} and its replica, the \
             coordinator replaced it: {config:?}",
            cut.elapsed()
        );
        let view = cluster.coordinator.node_view(&p).await.unwrap();
        if failing_seen.is_none() && view["state"] == "failing" {
            failing_seen = Some(cut.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    lab.heal(&p).unwrap();
    let healed = Instant::now();
    let failing_after = failing_seen.unwrap_or_else(|| {
        panic!("the coordinator never marked {p} failing during a {cut_for:?} cut: was it cut?")
    });
    println!(
        "the coordinator marked {p} failing {failing_after:?} after the cut and kept it as \
         the owner through {checks} checks; healed after {:?}",
        healed - cut
    );

    // Writes to P succeed again, and reach its replica.
    let mut client = RespClient::connect(&p).await.unwrap();
    let took = eventually("a write to P is durable again", PATIENCE, async || {
        let set = client.cmd(&["SET", &probe, "after-the-heal"]).await?;
        let wait = client.cmd(&["WAIT", "1", "500"]).await?;
        Ok(set == Frame::ok() && matches!(wait, Frame::Integer(n) if n >= 1))
    })
    .await
    .unwrap();
    println!("a write to {p} was durable again {took:?} after the heal");
    writers
        .wait_for_more("durable writes after the heal", 20)
        .await;
    let history = writers.stop().await;

    let during: Vec<&Op> = history
        .iter()
        .filter(|op| op.node == p && op.invoked >= cut && op.invoked < healed)
        .collect();
    let answers = Answers::of(&during);
    println!("what {p} answered to writes during the cut: {answers}");
    assert!(
        answers.others.is_empty(),
        "during the cut {p} answered writes with errors other than CLUSTERDOWN: {:?}",
        answers.others
    );

    assert_nothing_durable_lost(&history, &p).await;
    let config = cluster.config().await;
    assert_eq!(
        slots_of(&config, &p_id),
        owned,
        "{p} still owns its slots after the heal"
    );
    assert_replicas_equal_primaries(&config, &keys).await;
}

/// The coordinator on host 0, four nodes on hosts 1 to 4, settled into two
/// primaries with a replica each; every node advertises the address it is
/// bound to.
async fn start_cluster(lab: &Lab) -> ReplicatedCluster {
    let started = Instant::now();
    let hosts: Vec<Host> = (1..HOSTS).map(|i| lab.host(i)).collect();
    let cluster = ReplicatedCluster::start_on(&lab.host(0), &hosts, 1, &[AUTO; 4], 2, 1).await;
    let config = cluster.config().await;
    for node in &cluster.nodes {
        let info = node_at(&config, &node.addr()).expect("registered under its own address");
        let bus = format!("{}:{}", node.host().ip(), node.bus_port);
        assert_eq!(
            info.bus_addr,
            bus,
            "the bus address {} advertises",
            node.addr()
        );
    }
    println!("cluster formed in {:?}", started.elapsed());
    cluster
}

/// Waits until `replica` says it follows `primary` with a live, synced link.
async fn wait_follows(replica: &str, primary: &str) {
    let (host, port) = primary.rsplit_once(':').unwrap();
    eventually(
        &format!("{replica} follows {primary}"),
        PATIENCE,
        async || {
            let info = RespClient::connect(replica)
                .await?
                .info("replication")
                .await?;
            Ok(info["role"] == "slave"
                && info["master_host"] == host
                && info["master_port"] == port
                && info["master_link_status"] == "up"
                && info["master_sync_in_progress"] == "0")
        },
    )
    .await
    .unwrap();
}

/// Every replica has caught up with its primary (same offset) and holds
/// the same data (DBSIZE, and those of `keys` the primary owns, value by
/// value).
async fn assert_replicas_equal_primaries(config: &ClusterConfig, keys: &[String]) {
    for (primary, replicas) in replica_sets(config) {
        let owned: Vec<String> = keys
            .iter()
            .filter(|k| owner_of(config, k).as_deref() == Some(primary.as_str()))
            .cloned()
            .collect();
        for replica in replicas {
            let offset = wait_caught_up(&primary, &replica).await;
            assert_same_data(&primary, &replica, &owned).await;
            println!("{replica} equals its primary {primary} (offset {offset})");
        }
    }
}
