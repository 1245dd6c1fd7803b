//! A replicated coordinator (`docs/coordinator-group.md`): three
//! coordinate-server processes in one Raft group, with real nodes. The
//! leader is killed, paused and restarted; the cluster's decisions go on,
//! none is made twice or lost, and epochs never go back.

use std::time::{Duration, Instant};

use cluster_tests::group::CoordinatorGroup;
use cluster_tests::history::{Overlap, Writers, assert_nothing_durable_lost};
use cluster_tests::netns::{self, Lab};
use cluster_tests::replicated::{keys_owned_by, replica_sets};
use cluster_tests::resp::text;
use cluster_tests::{
    CoordinatorOptions, Host, MemberTls, Node, NodeOptions, RespClient, TempDir,
    is_fair_replicated, node_at,
};
use keycafe_core::cluster::ClusterConfig;
use keycafe_core::tls::test_pki::TestPki;

const MEMBERS: usize = 3;
const ELECTION_TIMEOUT: Duration = Duration::from_millis(500);
const NODE_TIMEOUT_MS: u64 = 2000;
/// Forming the cluster, and anything that waits for a machine under load.
const SETTLE: Duration = Duration::from_secs(60);
/// A primary killed while the leader coordinator is down is failed over
/// within the node timeout, an election (up to two election timeouts),
/// the leases a deposed leader may have granted (two election timeouts
/// more) and slack for a loaded machine.
const FAILOVER_BOUND: Duration = Duration::from_millis(NODE_TIMEOUT_MS + 4 * 500 + 4000);

fn options() -> CoordinatorOptions {
    CoordinatorOptions {
        replicas: Some(1),
        node_timeout_ms: Some(NODE_TIMEOUT_MS),
        ..CoordinatorOptions::default()
    }
}

/// Three coordinators, and `primaries` primaries with a replica each,
/// every node given every coordinator's address.
async fn start(dir: &TempDir, primaries: usize) -> (CoordinatorGroup, Vec<Node>) {
    let group = CoordinatorGroup::start(MEMBERS, &dir.path, options(), ELECTION_TIMEOUT)
        .await
        .expect("three coordinators start");
    group
        .wait_for_leader(&[], SETTLE)
        .await
        .expect("the group elects a leader");
    let mut nodes = Vec::new();
    for _ in 0..2 * primaries {
        let options = NodeOptions {
            node_timeout_ms: Some(NODE_TIMEOUT_MS),
            ..NodeOptions::default()
        };
        let node = Node::start_with(&group.node_addrs(), &options).await;
        nodes.push(node.expect("a node starts"));
    }
    group
        .wait_until("the cluster forms", SETTLE, |c| {
            is_fair_replicated(c, primaries, 1)
        })
        .await
        .expect("the cluster forms under the group");
    (group, nodes)
}

/// Every member's configuration, once they agree: the same on each.
async fn agreed(group: &CoordinatorGroup, running: &[usize]) -> ClusterConfig {
    let deadline = Instant::now() + SETTLE;
    loop {
        let mut configs = Vec::new();
        for &i in running {
            if let Ok(config) = group.member(i).config().await {
                configs.push(config);
            }
        }
        if configs.len() == running.len() && configs.windows(2).all(|w| w[0] == w[1]) {
            return configs.remove(0);
        }
        assert!(
            Instant::now() < deadline,
            "the members never agreed: {configs:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_leader_coordinator_killed_a_dead_primary_is_still_failed_over() {
    let dir = TempDir::new();
    let (mut group, mut nodes) = start(&dir, 3).await;
    let config = group.config().await.unwrap();
    let (primary, replicas) = replica_sets(&config)[0].clone();
    let replica = replicas[0].clone();
    let keys = keys_owned_by(&config, &primary, "group:", 60);
    let addrs: Vec<String> = nodes.iter().map(Node::addr).collect();
    let writers = Writers::start_on(addrs, &keys).await;

    let (leader, _) = group.wait_for_leader(&[], SETTLE).await.unwrap();
    let epoch = config.epoch;
    group.kill(leader).await;
    let killed = Instant::now();
    let victim = nodes.iter_mut().find(|n| n.addr() == primary).unwrap();
    victim.kill().await.unwrap();
    println!("killed coordinator {} and primary {primary}", leader + 1);

    let promoted = group
        .wait_until(
            "the dead primary's replica is promoted",
            FAILOVER_BOUND,
            |c| node_at(c, &replica).is_some_and(|n| !n.is_replica()),
        )
        .await
        .expect("the primary is failed over without the old leader");
    println!("failed over {:?} after the kills", killed.elapsed());
    assert!(promoted.epoch > epoch, "the epoch went back");
    // The killed node comes back empty, as the new primary's replica, and
    // writes are made durable again.
    let victim = nodes.iter_mut().find(|n| n.addr() == primary).unwrap();
    victim.restart().await.unwrap();
    writers
        .wait_for_more("durable writes on the new primary", 20)
        .await;
    let history = writers.stop().await;
    assert_nothing_durable_lost(&history, &replica).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_is_replaced_and_decides_nothing_when_it_returns() {
    let dir = TempDir::new();
    let (group, mut nodes) = start(&dir, 1).await;
    let (leader, _) = group.wait_for_leader(&[], SETTLE).await.unwrap();
    let before = group.config().await.unwrap();
    group.member(leader).pause().unwrap();
    let (new, took) = group
        .wait_for_leader(&[leader], SETTLE)
        .await
        .expect("another member takes over");
    println!("coordinator {} leads {took:?} after the pause", new + 1);
    // The new leader decides: a node joins and is given slots.
    let options = NodeOptions {
        node_timeout_ms: Some(NODE_TIMEOUT_MS),
        ..NodeOptions::default()
    };
    nodes.push(
        Node::start_with(&group.node_addrs(), &options)
            .await
            .unwrap(),
    );
    nodes.push(
        Node::start_with(&group.node_addrs(), &options)
            .await
            .unwrap(),
    );
    let grown = group
        .wait_until("the joiners are primaries with replicas", SETTLE, |c| {
            is_fair_replicated(c, 2, 1)
        })
        .await
        .unwrap();
    assert!(grown.epoch > before.epoch);

    // Back, the old leader follows: it holds what the group decided and
    // decides nothing of its own.
    group.member(leader).resume().unwrap();
    let all: Vec<usize> = (0..MEMBERS).collect();
    let agreed = agreed(&group, &all).await;
    assert!(agreed.epoch >= grown.epoch);
    let old = group.group_of(leader).await.unwrap();
    assert_ne!(old["role"], "leader", "the old leader stepped down: {old}");
    // Nodes hold the group's epoch, never one from the old leader alone.
    for node in &nodes {
        let mut client = RespClient::connect(&node.addr()).await.unwrap();
        let reply = client.cmd(&["CLUSTER", "INFO"]).await.unwrap();
        let info = text(&reply).expect("CLUSTER INFO answers text");
        let epoch: u64 = info
            .lines()
            .find_map(|line| line.strip_prefix("cluster_current_epoch:"))
            .and_then(|epoch| epoch.trim().parse().ok())
            .expect("CLUSTER INFO has cluster_current_epoch");
        assert!(
            epoch <= agreed.epoch,
            "{} holds epoch {epoch}, beyond the group's {}",
            node.addr(),
            agreed.epoch
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_every_coordinator_keeps_the_configuration() {
    let dir = TempDir::new();
    let (mut group, _nodes) = start(&dir, 2).await;
    let before = agreed(&group, &[0, 1, 2]).await;
    for i in 0..MEMBERS {
        group.kill(i).await;
    }
    for i in (0..MEMBERS).rev() {
        group.restart(i).await.expect("a coordinator restarts");
    }
    group.wait_for_leader(&[], SETTLE).await.unwrap();
    let after = agreed(&group, &[0, 1, 2]).await;
    assert!(after.epoch >= before.epoch, "the epoch went back");
    assert_eq!(after.nodes, before.nodes);
    assert_eq!(after.slots, before.slots);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_and_its_rebalance_complete_while_the_leader_changes() {
    let dir = TempDir::new();
    let (mut group, mut nodes) = start(&dir, 2).await;
    let options = NodeOptions {
        node_timeout_ms: Some(NODE_TIMEOUT_MS),
        ..NodeOptions::default()
    };
    for _ in 0..2 {
        nodes.push(
            Node::start_with(&group.node_addrs(), &options)
                .await
                .unwrap(),
        );
    }
    // Mid-way: the rebalance has begun when the leader dies.
    group
        .wait_until("migrations are under way", SETTLE, |c| {
            !c.migrations.is_empty()
        })
        .await
        .unwrap();
    let (leader, _) = group.wait_for_leader(&[], SETTLE).await.unwrap();
    group.kill(leader).await;
    group
        .wait_for_leader(&[leader], SETTLE)
        .await
        .expect("another member takes over");
    let done = group
        .wait_until("three primaries share the slots", SETTLE, |c| {
            is_fair_replicated(c, 3, 1)
        })
        .await
        .expect("the rebalance completes under the new leader");
    assert!(done.migrations.is_empty());
    group.restart(leader).await.unwrap();
    let running: Vec<usize> = (0..MEMBERS).collect();
    assert_eq!(agreed(&group, &running).await.slots, done.slots);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_is_added_and_another_removed_through_raft() {
    let dir = TempDir::new();
    let (mut group, _nodes) = start(&dir, 1).await;
    let (leader, _) = group.wait_for_leader(&[], SETTLE).await.unwrap();
    let joiner = group
        .start_joiner()
        .await
        .expect("a fourth coordinator starts");
    group
        .add_member(leader, joiner)
        .await
        .expect("the leader adds it");
    // The new member catches up: it holds what the others hold.
    let all: Vec<usize> = (0..group.size()).collect();
    let before = agreed(&group, &all).await;
    let view = group.group_of(joiner).await.unwrap();
    assert_eq!(view["members"].as_array().map(Vec::len), Some(4), "{view}");
    // Replace one: remove a member that does not lead, then stop it.
    let gone = (0..MEMBERS).find(|&i| i != leader).unwrap();
    group
        .remove_member(leader, gone)
        .await
        .expect("the leader removes it");
    let deadline = Instant::now() + SETTLE;
    loop {
        let view = group.group_of(leader).await.unwrap();
        if view["members"].as_array().map(Vec::len) == Some(3) {
            break;
        }
        assert!(Instant::now() < deadline, "never removed: {view}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    group.kill(gone).await;
    // The group of three, the new member among them, still decides: the
    // leader dies and another takes over with the same configuration.
    group.kill(leader).await;
    let (next, _) = group
        .wait_for_leader(&[leader, gone], SETTLE)
        .await
        .expect("the remaining two elect a leader");
    let after = group.member(next).config().await.unwrap();
    assert_eq!(after.slots, before.slots);
    assert!(after.epoch >= before.epoch);
}

/// Hosts of the partition test: three coordinators, then two primaries
/// with a replica each.
const LAB_HOSTS: usize = 7;

#[test]
fn a_leader_coordinator_cut_off_with_a_primary_grants_it_no_lease() {
    netns::run(
        "a_leader_coordinator_cut_off_with_a_primary_grants_it_no_lease",
        LAB_HOSTS,
        Duration::from_secs(120),
        cut_off_with_a_primary,
    );
}

/// The leader coordinator L and a primary P (connected to L, as every node
/// is) are cut off together from everyone else, for longer than the node
/// timeout; they still reach each other. The other two coordinators elect a
/// leader, which fails P over to its replica R. L, deposed without knowing
/// it, still hears P's heartbeats: a lease it granted would let P go on
/// acknowledging writes after R took over. None may: no two nodes
/// acknowledge writes for P's slots at overlapping times, and no durable
/// write is lost.
async fn cut_off_with_a_primary(lab: Lab) {
    const CUT: Duration = Duration::from_secs(8);
    let dir = TempDir::new();
    let hosts: Vec<Host> = (0..MEMBERS).map(|i| lab.host(i)).collect();
    let group = CoordinatorGroup::start_on(&hosts, &dir.path, options(), ELECTION_TIMEOUT)
        .await
        .expect("three coordinators start in the lab");
    let (leader, _) = group.wait_for_leader(&[], SETTLE).await.unwrap();
    let mut nodes = Vec::new();
    for i in MEMBERS..LAB_HOSTS {
        let options = NodeOptions {
            host: lab.host(i),
            node_timeout_ms: Some(NODE_TIMEOUT_MS),
            ..NodeOptions::default()
        };
        let node = Node::start_with(&group.node_addrs(), &options).await;
        nodes.push(node.expect("a node starts in the lab"));
    }
    let config = group
        .wait_until("two primaries with a replica each", SETTLE, |c| {
            is_fair_replicated(c, 2, 1)
        })
        .await
        .unwrap();
    let (p, r) = {
        let sets = replica_sets(&config);
        (sets[0].0.clone(), sets[0].1[0].clone())
    };
    let r_id = node_at(&config, &r).unwrap().id.clone();
    let keys = keys_owned_by(&config, &p, "fence:", 100);
    let addrs: Vec<String> = nodes.iter().map(Node::addr).collect();
    let writers = Writers::start_on(addrs.clone(), &keys).await;

    let l = group.member(leader).addr();
    let others: Vec<String> = (0..MEMBERS)
        .filter(|&i| i != leader)
        .map(|i| group.member(i).addr())
        .chain(addrs.iter().filter(|a| **a != p).cloned())
        .collect();
    lab.cut(&l, &others).unwrap();
    lab.cut(&p, &others).unwrap();
    let cut = Instant::now();
    println!("cut coordinator {l} and primary {p} off from {others:?}");
    let promoted = group
        .wait_until("R is promoted by a new leader", SETTLE, |c| {
            node_at(c, &r).is_some_and(|n| !n.is_replica())
        })
        .await
        .expect("the majority fails P over");
    println!(
        "{r} promoted {:?} after the cut (epoch {})",
        cut.elapsed(),
        promoted.epoch
    );
    tokio::time::sleep(CUT.saturating_sub(cut.elapsed())).await;
    lab.heal(&l).unwrap();
    lab.heal(&p).unwrap();
    let healed = Instant::now();
    group
        .wait_until("P follows R", SETTLE, |c| {
            node_at(c, &p).and_then(|n| n.replica_of.as_deref()) == Some(r_id.as_str())
        })
        .await
        .unwrap();
    writers
        .wait_for_more("durable writes after the heal", 20)
        .await;
    let history = writers.stop().await;

    let summary = Overlap::of(&history, &p, &r, cut);
    summary.print(&history, &p, &r, healed);
    assert_nothing_durable_lost(&history, &r).await;
    summary.assert_none();
}

/// With the coordinators' TLS files set, the group's links are mutual TLS
/// like the nodes' links: the group forms, the cluster forms under it, and
/// a new leader takes over when the first dies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_on_tls_elects_and_takes_over() {
    let dir = TempDir::new();
    let pki = TestPki::generate(&dir.path);
    let member = MemberTls::from_pki(&pki);
    let options = CoordinatorOptions {
        tls: Some(member.clone()),
        ..options()
    };
    let mut group =
        CoordinatorGroup::start(MEMBERS, &dir.path.join("group"), options, ELECTION_TIMEOUT)
            .await
            .expect("three coordinators start on TLS");
    let (leader, _) = group
        .wait_for_leader(&[], SETTLE)
        .await
        .expect("a leader over TLS links");
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let options = NodeOptions {
            node_timeout_ms: Some(NODE_TIMEOUT_MS),
            tls: Some(member.clone()),
            ..NodeOptions::default()
        };
        nodes.push(
            Node::start_with(&group.node_addrs(), &options)
                .await
                .unwrap(),
        );
    }
    let formed = group
        .wait_until("a primary with its replica", SETTLE, |c| {
            is_fair_replicated(c, 1, 1)
        })
        .await
        .expect("the cluster forms under a TLS group");
    group.kill(leader).await;
    let (next, _) = group
        .wait_for_leader(&[leader], SETTLE)
        .await
        .expect("the others elect a leader over TLS");
    let after = group.member(next).config().await.unwrap();
    assert_eq!(after.slots, formed.slots);
    assert!(
        after.epoch > formed.epoch,
        "the new leader's takeover is a new epoch"
    );
}
