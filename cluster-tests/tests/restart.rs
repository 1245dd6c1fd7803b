//! Restarts with the real binaries and data directories (issue 15,
//! `docs/persistence.md`, "Restarting a cluster"): every node keeps its
//! data in a directory of its own, with an append-only file synced before
//! each write is acknowledged (`appendfsync always`).
//!
//! - The whole cluster (coordinator, three primaries, three replicas)
//!   stopped, by SIGTERM or by kill -9, and started again in another order
//!   comes back as it was: the same nodes with the same slots and roles, an
//!   epoch no lower, every acknowledged key with its value and its deadline,
//!   and clients that work.
//! - A primary killed and restarted within the node timeout keeps its
//!   slots; one that stays down longer is replaced by its replica and comes
//!   back as that replica's replica, its own data replaced by a full copy.
//!
//! A write is *acknowledged* when `SET` answered OK: with `appendfsync
//! always` it was on the primary's disk by then.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use cluster_tests::replicated::{
    NODE_TIMEOUT, SETTLE, assert_same_data, replica_sets, slots_of, wait_caught_up,
    wait_replicas_synced,
};
use cluster_tests::resp::text;
use cluster_tests::{
    Coordinator, CoordinatorOptions, Node, NodeOptions, RespClient, TempDir, eventually,
    is_fair_replicated, node_at, owner_of,
};
use keycafe_client::{KeycafeCluster, Ttl};
use keycafe_core::cluster::ClusterConfig;

/// Time to live of the keys written with one: long enough to outlast the
/// test, so each must come back with a deadline.
const TTL: Duration = Duration::from_secs(600);
/// Keys written before a whole-cluster stop.
const KEYS: usize = 3000;
/// Concurrent writers (they share `appendfsync always`'s fsyncs).
const WRITERS: usize = 8;

/// A coordinator and its nodes, each node with a data directory of its
/// own under one temporary directory (the coordinator's too).
struct PersistentCluster {
    /// `None` while it is stopped.
    coordinator: Option<Coordinator>,
    coordinator_options: CoordinatorOptions,
    primaries: Vec<Node>,
    /// `replicas[i]` is configured to follow `primaries[i]`.
    replicas: Vec<Node>,
    dir: TempDir,
}

impl PersistentCluster {
    /// Starts `primaries` primaries, each with a replica, and waits until
    /// the slots are shared fairly and every replica has a full copy.
    async fn start(primaries: usize) -> PersistentCluster {
        let dir = TempDir::new();
        let coordinator_options = CoordinatorOptions {
            replicas: Some(1),
            node_timeout_ms: Some(NODE_TIMEOUT.as_millis() as u64),
            ..CoordinatorOptions::default()
        };
        let coordinator =
            Coordinator::start_with(dir.path.join("coordinator"), &coordinator_options)
                .await
                .expect("the coordinator starts");
        let mut cluster = PersistentCluster {
            coordinator: Some(coordinator),
            coordinator_options,
            primaries: Vec::new(),
            replicas: Vec::new(),
            dir,
        };
        // Each primary's replica before the next primary, so that with
        // `--replicas 1` the next one joins as a primary.
        for i in 0..primaries {
            let primary = cluster.start_node(&format!("primary-{i}"), None).await;
            let addr = primary.addr();
            cluster.primaries.push(primary);
            let replica = cluster
                .start_node(&format!("replica-{i}"), Some(addr))
                .await;
            cluster.replicas.push(replica);
        }
        cluster
            .coordinator()
            .wait_until("the cluster is fair", SETTLE, |c| {
                is_fair_replicated(c, primaries, 1)
            })
            .await
            .expect("the cluster forms");
        cluster.wait_whole().await;
        cluster
    }

    /// Starts a node with its data directory `name` and waits until it has
    /// registered.
    async fn start_node(&self, name: &str, replica_of: Option<String>) -> Node {
        let options = NodeOptions {
            replica_of,
            node_timeout_ms: Some(NODE_TIMEOUT.as_millis() as u64),
            dir: Some(self.dir.path.join(name)),
            appendfsync: Some("always"),
            ..NodeOptions::default()
        };
        let node = Node::start_with(&self.coordinator().addr(), &options)
            .await
            .expect("the node starts");
        let addr = node.addr();
        self.coordinator()
            .wait_until("the node registered", SETTLE, |c| {
                node_at(c, &addr).is_some()
            })
            .await
            .expect("the node registers");
        node
    }

    fn coordinator(&self) -> &Coordinator {
        self.coordinator.as_ref().expect("the coordinator runs")
    }

    fn nodes_mut(&mut self) -> impl Iterator<Item = &mut Node> {
        self.primaries.iter_mut().chain(self.replicas.iter_mut())
    }

    /// Waits until every node is connected to the coordinator, nothing is
    /// moving, and every replica has a full copy and a live link, as it
    /// says itself and as the coordinator has heard.
    async fn wait_whole(&self) {
        let addrs: Vec<String> = self
            .primaries
            .iter()
            .chain(&self.replicas)
            .map(Node::addr)
            .collect();
        eventually("every node is connected", SETTLE, async || {
            let api = self.coordinator().api().await?;
            let nodes = api["nodes"].as_array().cloned().unwrap_or_default();
            let connected = |addr: &String| {
                nodes
                    .iter()
                    .any(|n| n["client_addr"] == addr.as_str() && n["connected"] == true)
            };
            let moving = api["config"]["migrations"]
                .as_array()
                .is_none_or(|m| !m.is_empty());
            Ok(addrs.iter().all(connected) && !moving)
        })
        .await
        .unwrap();
        wait_replicas_synced(self.coordinator()).await;
    }

    /// Starts the coordinator again where it was, with its data directory.
    async fn restart_coordinator(&mut self, port: u16, http_port: u16) {
        let coordinator = Coordinator::start_on_with(
            port,
            http_port,
            self.dir.path.join("coordinator"),
            &self.coordinator_options,
        )
        .await
        .expect("the coordinator starts again");
        self.coordinator = Some(coordinator);
    }
}

/// What a writer did to one key.
#[derive(Debug, Clone)]
struct Written {
    value: String,
    /// Written with [`TTL`].
    expires: bool,
    /// `SET` answered OK.
    acked: bool,
    /// Why not, if it did not.
    error: Option<String>,
}

/// Keys of three kinds: plain, with a time to live, and hash-tagged into a
/// few slots (many keys per slot).
fn key(i: usize) -> String {
    match i % 3 {
        0 => format!("plain:{i}"),
        1 => format!("ttl:{i}"),
        _ => format!("{{tagged:{}}}:{i}", i % 7),
    }
}

/// Writes `count` keys through `kc` from [`WRITERS`] tasks; records each
/// write's outcome.
async fn write_keys(kc: &KeycafeCluster, count: usize, tag: &str) -> BTreeMap<String, Written> {
    let mut writers = Vec::new();
    for part in 0..WRITERS {
        let kc = kc.clone();
        let tag = tag.to_string();
        writers.push(tokio::spawn(async move {
            let mut written = Vec::new();
            for i in (part..count).step_by(WRITERS) {
                let (key, value) = (key(i), format!("{tag}-{i}"));
                let expires = key.starts_with("ttl:");
                let result = match expires {
                    true => kc.set_ex(&key, &value, TTL).await,
                    false => kc.set(&key, &value).await,
                };
                let error = result.err().map(|e| e.to_string());
                let acked = error.is_none();
                written.push((
                    key,
                    Written {
                        value,
                        expires,
                        acked,
                        error,
                    },
                ));
            }
            written
        }));
    }
    let mut all = BTreeMap::new();
    for writer in writers {
        all.extend(writer.await.expect("a writer finishes"));
    }
    all
}

/// The remaining time to live of every key written with one.
async fn deadlines(
    kc: &KeycafeCluster,
    written: &BTreeMap<String, Written>,
) -> HashMap<String, Duration> {
    let mut left = HashMap::new();
    for (key, _) in written.iter().filter(|(_, w)| w.expires && w.acked) {
        match kc.pttl(key).await.expect("PTTL") {
            Ttl::ExpiresIn(d) => {
                left.insert(key.clone(), d);
            }
            other => panic!("{key} was written with a TTL and has {other:?}"),
        }
    }
    left
}

/// Every acknowledged key is back with its value and, if it had one, a
/// deadline no later than before (`ttls`); an unacknowledged one is either
/// absent or holds what was sent.
async fn assert_all_back(
    kc: &KeycafeCluster,
    written: &BTreeMap<String, Written>,
    ttls: &HashMap<String, Duration>,
) {
    for (key, write) in written {
        let value = kc.get_string(key).await.expect("GET");
        if write.acked {
            assert_eq!(
                value.as_deref(),
                Some(write.value.as_str()),
                "{key}: acknowledged write lost"
            );
        } else {
            assert!(
                value.as_ref().is_none_or(|v| *v == write.value),
                "{key}: a value never written"
            );
        }
        if value.is_none() {
            continue;
        }
        match (kc.pttl(key).await.expect("PTTL"), ttls.get(key)) {
            (Ttl::ExpiresIn(left), Some(before)) => assert!(
                !left.is_zero() && left <= *before,
                "{key}: {left:?} to live after the restart, {before:?} before"
            ),
            (Ttl::Persistent, None) if !write.expires => {}
            (Ttl::ExpiresIn(_), None) if !write.acked => {}
            (ttl, before) => panic!("{key}: TTL {ttl:?} after the restart, {before:?} before"),
        }
    }
}

/// One node as the configuration lists it: id, client address, primary.
type Member = (String, String, Option<String>);
/// One range of slots: first, last, owner's id.
type Range = (u16, u16, String);

/// The layout as ids see it: each node's (id, address, primary), sorted,
/// and the slot ranges with their owners.
fn layout(config: &ClusterConfig) -> (Vec<Member>, Vec<Range>) {
    let mut nodes: Vec<_> = config
        .nodes
        .iter()
        .map(|n| (n.id.clone(), n.client_addr.clone(), n.replica_of.clone()))
        .collect();
    nodes.sort();
    let slots = config
        .slots
        .iter()
        .map(|r| (r.start, r.end, r.owner.clone()))
        .collect();
    (nodes, slots)
}

/// Each replica follows, by its own account, the primary the configuration
/// gives it, and holds exactly that primary's data.
async fn assert_replicas_follow(config: &ClusterConfig, written: &BTreeMap<String, Written>) {
    for (primary, replicas) in replica_sets(config) {
        let keys: Vec<String> = written
            .keys()
            .filter(|k| owner_of(config, k).as_deref() == Some(primary.as_str()))
            .cloned()
            .collect();
        assert!(!keys.is_empty(), "{primary} owns some of the keys");
        for replica in replicas {
            let info = RespClient::connect(&replica)
                .await
                .unwrap()
                .info("replication")
                .await
                .unwrap();
            let follows = format!("{}:{}", info["master_host"], info["master_port"]);
            assert_eq!(follows, primary, "{replica} follows its primary");
            assert_same_data(&primary, &replica, &keys).await;
        }
    }
}

/// How the whole cluster is stopped.
#[derive(Debug, Clone, Copy)]
enum Stop {
    /// SIGTERM: the coordinator first, then every node; each exits cleanly.
    Term,
    /// kill -9: every node, then the coordinator.
    Kill,
}

async fn stop_and_restart_everything(stop: Stop) {
    let mut cluster = PersistentCluster::start(3).await;
    let kc = KeycafeCluster::connect(cluster.primaries[0].addr())
        .await
        .unwrap();
    let (written, ttls) = write_acknowledged(&kc, KEYS).await;
    let before = cluster.coordinator().config().await.unwrap();
    drop(kc);

    let coordinator = cluster.coordinator.take().expect("the coordinator runs");
    let (port, http_port) = (coordinator.port, coordinator.http_port);
    match stop {
        Stop::Term => {
            let status = coordinator
                .terminate(Duration::from_secs(10))
                .await
                .unwrap();
            assert!(status.success(), "the coordinator exits cleanly: {status}");
            for node in cluster.nodes_mut() {
                node.terminate().unwrap();
            }
            for node in cluster.nodes_mut() {
                let status = node.wait_exit(Duration::from_secs(10)).await.unwrap();
                assert!(
                    status.success(),
                    "node {} exits cleanly: {status}",
                    node.addr()
                );
            }
        }
        Stop::Kill => {
            for node in cluster.nodes_mut() {
                node.kill().await.unwrap();
            }
            coordinator.kill().await;
        }
    }

    // Another order than the start's: after SIGTERM the nodes first
    // (replicas before their primaries) and the coordinator last; after
    // kill -9 the coordinator first, then the primaries from the last.
    match stop {
        Stop::Term => {
            for node in cluster
                .replicas
                .iter_mut()
                .chain(cluster.primaries.iter_mut())
            {
                node.restart().await.unwrap();
            }
            cluster.restart_coordinator(port, http_port).await;
        }
        Stop::Kill => {
            cluster.restart_coordinator(port, http_port).await;
            for node in cluster
                .primaries
                .iter_mut()
                .rev()
                .chain(cluster.replicas.iter_mut())
            {
                node.restart().await.unwrap();
            }
        }
    }
    cluster.wait_whole().await;

    let after = cluster.coordinator().config().await.unwrap();
    assert_eq!(
        layout(&after),
        layout(&before),
        "the same nodes, roles and slots"
    );
    assert!(
        after.epoch >= before.epoch,
        "epoch {} after, {} before",
        after.epoch,
        before.epoch
    );

    let kc = KeycafeCluster::connect(cluster.primaries[1].addr())
        .await
        .unwrap();
    assert_all_back(&kc, &written, &ttls).await;
    assert_replicas_follow(&after, &written).await;
    kc.set("after:restart", "works").await.unwrap();
    assert_eq!(
        kc.get_string("after:restart").await.unwrap().as_deref(),
        Some("works")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_stopped_by_sigterm_restarts_as_it_was() {
    stop_and_restart_everything(Stop::Term).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_killed_by_sigkill_restarts_as_it_was() {
    stop_and_restart_everything(Stop::Kill).await;
}

/// Writes keys, checks that nearly all are acknowledged, and notes the
/// deadlines of those that are. (On a loaded machine a reply may take
/// longer than the client waits; such a write's outcome is unknown, and the
/// checks allow for either.)
async fn write_acknowledged(
    kc: &KeycafeCluster,
    count: usize,
) -> (BTreeMap<String, Written>, HashMap<String, Duration>) {
    let written = write_keys(kc, count, "v").await;
    let failed: Vec<(&String, &Option<String>)> = written
        .iter()
        .filter(|(_, w)| !w.acked)
        .map(|(k, w)| (k, &w.error))
        .collect();
    if !failed.is_empty() {
        eprintln!("writes with an unknown outcome: {failed:?}");
    }
    assert!(
        failed.len() <= count / 20,
        "too many writes failed on a healthy cluster: {failed:?}"
    );
    let ttls = deadlines(kc, &written).await;
    (written, ttls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_back_within_the_node_timeout_keeps_its_slots() {
    let mut cluster = PersistentCluster::start(2).await;
    let kc = KeycafeCluster::connect(cluster.primaries[1].addr())
        .await
        .unwrap();
    let (written, ttls) = write_acknowledged(&kc, 600).await;
    let before = cluster.coordinator().config().await.unwrap();

    let primary = &mut cluster.primaries[0];
    let killed = tokio::time::Instant::now();
    primary.kill().await.unwrap();
    primary.restart().await.unwrap();
    let back = killed.elapsed();
    assert!(
        back < NODE_TIMEOUT,
        "the restart took {back:?}, longer than the node timeout: the test cannot tell \
         a primary that kept its slots from one that was replaced"
    );
    cluster.wait_whole().await;

    // Known to the coordinator by its id, at its addresses: nothing about
    // the cluster changed, not even the epoch.
    let after = cluster.coordinator().config().await.unwrap();
    assert_eq!(
        layout(&after),
        layout(&before),
        "the same nodes, roles and slots"
    );
    assert_eq!(after.epoch, before.epoch, "no new configuration");
    assert_all_back(&kc, &written, &ttls).await;
    assert_replicas_follow(&after, &written).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_down_longer_than_the_node_timeout_comes_back_as_a_replica() {
    let mut cluster = PersistentCluster::start(2).await;
    let kc = KeycafeCluster::connect(cluster.primaries[1].addr())
        .await
        .unwrap();
    let (written, ttls) = write_acknowledged(&kc, 600).await;
    let before = cluster.coordinator().config().await.unwrap();
    let (old, replica) = (cluster.primaries[0].addr(), cluster.replicas[0].addr());
    let old_id = node_at(&before, &old).unwrap().id.clone();
    let replica_id = node_at(&before, &replica).unwrap().id.clone();
    // Everything the primary acknowledged is on its replica: a failover
    // loses nothing.
    wait_caught_up(&old, &replica).await;

    cluster.primaries[0].kill().await.unwrap();
    let promoted = cluster
        .coordinator()
        .wait_until("the replica is promoted", SETTLE, |c| {
            c.node(&old_id).and_then(|n| n.replica_of.as_deref()) == Some(replica_id.as_str())
        })
        .await
        .unwrap();
    assert_eq!(
        slots_of(&promoted, &replica_id),
        slots_of(&before, &old_id),
        "the replica took the primary's slots"
    );

    // While the old primary is away, its data goes stale: a key it holds
    // on disk is deleted, another is written.
    let gone = written
        .keys()
        .find(|k| owner_of(&before, k).as_deref() == Some(old.as_str()))
        .unwrap()
        .clone();
    eventually(
        "the client writes to the promoted replica",
        SETTLE,
        async || Ok(kc.delete(&gone).await.is_ok() && kc.set("{gone}:new", "after").await.is_ok()),
    )
    .await
    .unwrap();

    // It comes back with its data directory, as the same node: a replica
    // of the promoted one, with a full copy in place of what it had.
    cluster.primaries[0].restart().await.unwrap();
    cluster.wait_whole().await;
    let after = cluster.coordinator().config().await.unwrap();
    assert_eq!(
        after.node(&old_id).and_then(|n| n.replica_of.clone()),
        Some(replica_id.clone())
    );
    let info = RespClient::connect(&old)
        .await
        .unwrap()
        .info("replication")
        .await
        .unwrap();
    assert_eq!(
        format!("{}:{}", info["master_host"], info["master_port"]),
        replica
    );
    let mut on_old = RespClient::connect(&old).await.unwrap();
    on_old.ok(&["READONLY"]).await.unwrap();
    let value = on_old.cmd(&["GET", gone.as_str()]).await.unwrap();
    assert_eq!(
        text(&value),
        None,
        "{gone}, deleted meanwhile, is gone from the old primary"
    );

    let mut keys: Vec<String> = written.keys().cloned().collect();
    keys.push("{gone}:new".to_string());
    let mut expected = written.clone();
    expected.remove(&gone);
    assert_all_back(&kc, &expected, &ttls).await;
    assert_replicas_follow(&after, &expected).await;
    let owned: Vec<String> = keys
        .into_iter()
        .filter(|k| owner_of(&after, k).as_deref() == Some(replica.as_str()))
        .collect();
    assert_same_data(&replica, &old, &owned).await;
}

/// A primary and its replica stopped cleanly (SIGTERM: the primary first,
/// which lets its replica catch up before it goes) and started again from
/// their data directories stand at the same offset of one history: the
/// replica continues it, with no full copy, and holds the same data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_clean_stop_a_replica_continues_its_primarys_history() {
    let mut cluster = PersistentCluster::start(1).await;
    let kc = KeycafeCluster::connect(cluster.primaries[0].addr())
        .await
        .unwrap();
    let (written, _) = write_acknowledged(&kc, 600).await;
    drop(kc);
    wait_caught_up(&cluster.primaries[0].addr(), &cluster.replicas[0].addr()).await;

    for node in cluster
        .primaries
        .iter_mut()
        .chain(cluster.replicas.iter_mut())
    {
        node.terminate().unwrap();
        let status = node.wait_exit(Duration::from_secs(15)).await.unwrap();
        assert!(
            status.success(),
            "node {} exits cleanly: {status}",
            node.addr()
        );
    }
    for node in cluster
        .replicas
        .iter_mut()
        .chain(cluster.primaries.iter_mut())
    {
        node.restart().await.unwrap();
    }
    cluster.wait_whole().await;

    let mut primary = RespClient::connect(&cluster.primaries[0].addr())
        .await
        .unwrap();
    let stats = primary.info("stats").await.unwrap();
    assert_eq!(
        (
            stats["sync_full"].as_str(),
            stats["sync_partial_ok"].as_str()
        ),
        ("0", "1"),
        "the replica continued instead of copying: {stats:?}"
    );
    let config = cluster.coordinator().config().await.unwrap();
    assert_replicas_follow(&config, &written).await;
}
