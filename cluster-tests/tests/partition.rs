//! Network partitions with the real binaries: each process in a network
//! namespace of its own, a primary's links silently dropped by iptables
//! while the test's client still reaches it (see `cluster_tests::netns`).
//!
//! Two [`Writer`]s write the keys of one primary and keep a history of every
//! operation: which node, when it was sent, and what came back (OK at some
//! instant, an error, or nothing within [`OP_TIMEOUT`]), and whether a
//! `WAIT 1` after an OK counted a replica. The properties are read from that
//! history:
//!
//! - a write is *acknowledged* when SET answered OK; it is *durable* when
//!   `WAIT 1` then counted a replica, and a durable write must never be
//!   lost;
//! - two nodes must never acknowledge writes for one slot at overlapping
//!   times: every OK of the old primary after the cut comes before the
//!   first write the new primary acknowledged was even sent.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cluster_tests::netns::{self, Lab};
use cluster_tests::replicated::{
    AUTO, NODE_TIMEOUT, ReplicatedCluster, assert_same_data, keys_owned_by, replica_sets, slots_of,
    wait_caught_up,
};
use cluster_tests::resp::text;
use cluster_tests::{Host, Node, RespClient, eventually, node_at, owner_of};
use keycafe_core::cluster::ClusterConfig;
use keycafe_core::{Frame, Slot, key_slot};
use tokio::task::JoinHandle;

/// The coordinator and four nodes (two primaries with a replica each).
const HOSTS: usize = 5;
/// The whole inner run of a test, set-up and checks included.
const TEST_TIMEOUT: Duration = Duration::from_secs(90);
/// How long the writer waits for any one reply (or connection).
const OP_TIMEOUT: Duration = Duration::from_millis(500);
/// The writer's `WAIT 1 <ms>` after each OK.
const WAIT_MS: &str = "200";
/// A bounded wait for things that take a moment on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(20);
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

/// Reads every key the history wrote from `owner` and checks that no
/// durable write was lost: each key holds its last durable value or a
/// later one the writer sent.
async fn assert_nothing_durable_lost(history: &[Op], owner: &str) {
    let mut durable: HashMap<&str, u64> = HashMap::new();
    let mut sent: HashMap<&str, Vec<u64>> = HashMap::new();
    for op in history {
        sent.entry(&op.key).or_default().push(op.seq);
        if op.durable {
            let last = durable.entry(&op.key).or_default();
            *last = (*last).max(op.seq);
        }
    }
    assert!(!durable.is_empty(), "no write was durable");
    let mut client = RespClient::connect(owner).await.unwrap();
    let keys: Vec<&str> = sent.keys().copied().collect();
    let gets: Vec<[&str; 2]> = keys.iter().map(|k| ["GET", *k]).collect();
    let values = client.pipeline(&gets).await.unwrap();
    let mut lost = Vec::new();
    for (key, value) in keys.iter().zip(&values) {
        let value = text(value).map(|v| {
            v.parse::<u64>()
                .unwrap_or_else(|_| panic!("{key} holds {v:?}, which the writer never wrote"))
        });
        if let Some(seq) = value {
            assert!(
                sent[key].contains(&seq),
                "{key} holds {seq}, which the writer never sent to it"
            );
        }
        if let Some(&last) = durable.get(key)
            && value.is_none_or(|seq| seq < last)
        {
            lost.push(format!("{key}: durable {last}, now {value:?}"));
        }
    }
    assert!(
        lost.is_empty(),
        "{} durable writes lost: {lost:?}",
        lost.len()
    );
    println!(
        "{} keys read back from {owner}: no durable write lost ({} durable writes in all)",
        keys.len(),
        history.iter().filter(|op| op.durable).count()
    );
}

/// A client of the cluster, as a real application would write it: it
/// sends each write to the node it believes owns the slot, follows MOVED,
/// and on any other error or a timeout re-reads the slot map from the node
/// with the highest epoch among those it can reach. Each write is followed
/// by `WAIT 1` on the same connection.
///
/// Two such clients run side by side, on keys of their own (so that each
/// key's writes are sequential) and with one history:
/// [`Client::Unaware`] only ever learns of a change from an error, so it
/// keeps writing to a cut-off primary as long as that primary answers OK;
/// [`Client::Careful`] also re-reads the slot map when `WAIT 1` counted no
/// replica, so it moves to a promoted replica soon after the promotion.
/// Together they show whether two nodes acknowledged writes at the same
/// time.
struct Writer {
    client: Client,
    /// Every node's client address (where slot maps are read from).
    nodes: Vec<String>,
    connections: HashMap<String, RespClient>,
    /// The slots of this client's keys.
    slots: Vec<Slot>,
    /// The owner this client believes each of them has.
    belief: HashMap<Slot, String>,
    history: Vec<Op>,
    progress: Arc<Progress>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    Unaware,
    Careful,
}

/// What became of one SET.
#[derive(Debug, Clone)]
enum Outcome {
    /// `+OK`, received at this instant.
    Ok(Instant),
    /// An error reply: the write was refused.
    Error(String),
    /// No reply (timeout, connection lost): it may or may not have applied.
    Unknown(String),
}

/// One SET in the history.
#[derive(Debug, Clone)]
struct Op {
    client: Client,
    node: String,
    key: String,
    /// Unique and increasing over the whole run, across both clients.
    seq: u64,
    invoked: Instant,
    outcome: Outcome,
    /// `WAIT 1` after the OK counted a replica.
    durable: bool,
}

/// The instant of an acknowledged write's OK.
fn ok_time(op: &Op) -> Instant {
    match op.outcome {
        Outcome::Ok(at) => at,
        _ => panic!("{op:?} was not acknowledged"),
    }
}

/// Shared between the test and the running clients.
#[derive(Default)]
struct Progress {
    /// The last seq handed out.
    seq: AtomicU64,
    durable: AtomicUsize,
    stop: AtomicBool,
}

/// The two clients of a [`Writer`] pair, running.
struct Writers {
    progress: Arc<Progress>,
    tasks: Vec<JoinHandle<Vec<Op>>>,
}

impl Writers {
    /// Starts both clients on `keys` (alternate keys each), and returns
    /// once 50 writes are durable.
    async fn start(cluster: &ReplicatedCluster, keys: &[String]) -> Writers {
        let progress = Arc::new(Progress::default());
        let nodes: Vec<String> = cluster.nodes.iter().map(Node::addr).collect();
        let mut tasks = Vec::new();
        for (client, parity) in [(Client::Unaware, 0), (Client::Careful, 1)] {
            let keys: Vec<String> = keys.iter().skip(parity).step_by(2).cloned().collect();
            let mut writer = Writer {
                client,
                nodes: nodes.clone(),
                connections: HashMap::new(),
                slots: keys.iter().map(|k| key_slot(k.as_bytes())).collect(),
                belief: HashMap::new(),
                history: Vec::new(),
                progress: progress.clone(),
            };
            writer.refresh().await;
            tasks.push(tokio::spawn(writer.run(keys)));
        }
        let writers = Writers { progress, tasks };
        writers.wait_for_more("writes are durable", 50).await;
        writers
    }

    /// Waits (bounded) until `by` more writes are durable than now.
    async fn wait_for_more(&self, what: &str, by: usize) {
        let durable = &self.progress.durable;
        let from = durable.load(Ordering::Relaxed);
        eventually(what, PATIENCE, async || {
            Ok(durable.load(Ordering::Relaxed) >= from + by)
        })
        .await
        .unwrap();
    }

    /// Stops both clients; their history, in the order the writes were
    /// sent.
    async fn stop(self) -> Vec<Op> {
        self.progress.stop.store(true, Ordering::Relaxed);
        let mut history = Vec::new();
        for task in self.tasks {
            let ops = tokio::time::timeout(PATIENCE, task)
                .await
                .expect("the writer stops")
                .expect("the writer does not panic");
            history.extend(ops);
        }
        history.sort_by_key(|op| op.invoked);
        history
    }
}

impl Writer {
    async fn run(mut self, keys: Vec<String>) -> Vec<Op> {
        for key in keys.iter().cycle() {
            if self.progress.stop.load(Ordering::Relaxed) {
                break;
            }
            if self.write(key).await {
                self.progress.durable.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.history
    }

    /// One SET (and WAIT after an OK); returns whether it became durable.
    async fn write(&mut self, key: &str) -> bool {
        let client = self.client;
        let slot = key_slot(key.as_bytes());
        let node = match self.belief.get(&slot) {
            Some(node) => node.clone(),
            None => self.nodes[0].clone(),
        };
        let seq = self.progress.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let invoked = Instant::now();
        let reply = self.call(&node, &["SET", key, &seq.to_string()]).await;
        let answered = Instant::now();
        let (outcome, durable) = match reply {
            Ok(frame) if frame == Frame::ok() => {
                let wait = self.call(&node, &["WAIT", "1", WAIT_MS]).await;
                let durable = matches!(wait, Ok(Frame::Integer(n)) if n >= 1);
                (Outcome::Ok(answered), durable)
            }
            Ok(Frame::Error(error)) => (
                Outcome::Error(String::from_utf8_lossy(&error).into_owned()),
                false,
            ),
            Ok(other) => (Outcome::Error(format!("{other:?}")), false),
            Err(error) => (Outcome::Unknown(error), false),
        };
        let moved = match &outcome {
            Outcome::Error(error) => moved_to(error),
            _ => None,
        };
        let refresh = match &outcome {
            Outcome::Ok(_) => client == Client::Careful && !durable,
            Outcome::Error(_) => moved.is_none(),
            Outcome::Unknown(_) => true,
        };
        let failed = !matches!(outcome, Outcome::Ok(_));
        self.history.push(Op {
            client,
            node,
            key: key.to_string(),
            seq,
            invoked,
            outcome,
            durable,
        });
        if let Some(target) = moved {
            self.belief.insert(slot, target);
        } else if refresh {
            self.refresh().await;
        }
        if failed {
            // No hot loop against nodes that refuse at once.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        durable
    }

    /// Re-reads the slot map from the reachable node with the highest
    /// `cluster_current_epoch`; keeps the old map if none answers.
    async fn refresh(&mut self) {
        let mut best: Option<(u64, String)> = None;
        for node in self.nodes.clone() {
            let Ok(Frame::Bulk(info)) = self.call(&node, &["CLUSTER", "INFO"]).await else {
                continue;
            };
            let epoch = String::from_utf8_lossy(&info)
                .lines()
                .find_map(|l| l.strip_prefix("cluster_current_epoch:"))
                .and_then(|e| e.trim().parse::<u64>().ok());
            if let Some(epoch) = epoch
                && best.as_ref().is_none_or(|(b, _)| epoch > *b)
            {
                best = Some((epoch, node));
            }
        }
        let Some((_, node)) = best else {
            return;
        };
        let Ok(conn) = self.connection(&node).await else {
            return;
        };
        let Ok(Ok(ranges)) = tokio::time::timeout(OP_TIMEOUT, conn.cluster_slots()).await else {
            self.connections.remove(&node);
            return;
        };
        for &slot in &self.slots {
            let owner = ranges
                .iter()
                .find(|r| (r.start..=r.end).contains(&slot))
                .and_then(|r| r.addrs.first());
            if let Some(owner) = owner {
                self.belief.insert(slot, owner.clone());
            }
        }
    }

    /// The connection to `node`, opened (within [`OP_TIMEOUT`]) if need be.
    async fn connection(&mut self, node: &str) -> Result<&mut RespClient, String> {
        if !self.connections.contains_key(node) {
            let client = match tokio::time::timeout(OP_TIMEOUT, RespClient::connect(node)).await {
                Ok(Ok(client)) => client,
                Ok(Err(error)) => return Err(format!("{error:#}")),
                Err(_) => return Err(format!("no connection within {OP_TIMEOUT:?}")),
            };
            self.connections.insert(node.to_string(), client);
        }
        Ok(self.connections.get_mut(node).expect("inserted above"))
    }

    /// One command with [`OP_TIMEOUT`]; a connection that failed or timed
    /// out is dropped (a late reply would be taken for the next one).
    async fn call(&mut self, node: &str, args: &[&str]) -> Result<Frame, String> {
        let conn = self.connection(node).await?;
        let error = match tokio::time::timeout(OP_TIMEOUT, conn.cmd(args)).await {
            Ok(Ok(frame)) => return Ok(frame),
            Ok(Err(error)) => format!("{error:#}"),
            Err(_) => format!("no answer within {OP_TIMEOUT:?}"),
        };
        self.connections.remove(node);
        Err(error)
    }
}

/// The address in a `MOVED <slot> <addr>` error.
fn moved_to(error: &str) -> Option<String> {
    let mut words = error.split_whitespace();
    (words.next() == Some("MOVED"))
        .then(|| words.nth(1).map(str::to_string))
        .flatten()
}

/// Writes the old primary P acknowledged after the cut, against the first
/// write the promoted replica R acknowledged.
struct Overlap<'a> {
    cut: Instant,
    /// P's OKs received after the cut.
    p_after_cut: Vec<&'a Op>,
    /// R's first acknowledged write.
    first_r: Option<&'a Op>,
    /// P's OKs received at or after the moment R's first acknowledged
    /// write was sent.
    overlapping: Vec<&'a Op>,
}

impl<'a> Overlap<'a> {
    fn of(history: &'a [Op], p: &str, r: &str, cut: Instant) -> Overlap<'a> {
        let acked = history
            .iter()
            .filter(|op| matches!(op.outcome, Outcome::Ok(_)));
        let p_after_cut: Vec<&Op> = acked
            .clone()
            .filter(|op| op.node == p && ok_time(op) > cut)
            .collect();
        let first_r = acked.filter(|op| op.node == r).min_by_key(|op| op.invoked);
        let overlapping = match first_r {
            Some(first) => p_after_cut
                .iter()
                .copied()
                .filter(|op| ok_time(op) >= first.invoked)
                .collect(),
            None => Vec::new(),
        };
        Overlap {
            cut,
            p_after_cut,
            first_r,
            overlapping,
        }
    }

    fn print(&self, history: &[Op], p: &str, r: &str, healed: Instant) {
        let cut = self.cut;
        let last_p = self.p_after_cut.iter().map(|op| ok_time(op)).max();
        println!(
            "relative to the cut: {p} acknowledged {} writes after it, the last at {}; \
             {r}'s first acknowledged write was sent at {} and acknowledged at {}; healed at {}",
            self.p_after_cut.len(),
            relative(last_p, cut),
            relative(self.first_r.map(|op| op.invoked), cut),
            relative(self.first_r.map(ok_time), cut),
            relative(Some(healed), cut),
        );
        let during: Vec<&Op> = history
            .iter()
            .filter(|op| op.node == p && op.invoked >= cut && op.invoked < healed)
            .collect();
        println!(
            "what {p} answered to writes during the cut: {}",
            Answers::of(&during)
        );
        let durable_after: usize = history
            .iter()
            .filter(|op| op.durable && op.invoked > cut)
            .count();
        println!(
            "{} operations in all, {durable_after} durable after the cut; unaware client's \
             writes to {r}: {}",
            history.len(),
            history
                .iter()
                .filter(|op| op.client == Client::Unaware && op.node == r)
                .count()
        );
    }

    /// No write acknowledged by P after R started acknowledging.
    fn assert_none(&self) {
        let (Some(first), Some(last)) = (self.first_r, self.overlapping.last()) else {
            return;
        };
        let window = ok_time(last) - first.invoked;
        panic!(
            "two primaries acknowledged writes for the same slots: the cut-off primary {} \
             acknowledged {} writes after {} had begun to (relative to the cut: {}'s first \
             acknowledged write was sent at {}, {}'s last OK came at {}); overlap window \
             {window:?}; the first overlapping writes: {:?}",
            last.node,
            self.overlapping.len(),
            first.node,
            first.node,
            relative(Some(first.invoked), self.cut),
            last.node,
            relative(Some(ok_time(last)), self.cut),
            self.overlapping
                .iter()
                .take(10)
                .map(|op| format!(
                    "SET {} {} OK at {}",
                    op.key,
                    op.seq,
                    relative(Some(ok_time(op)), self.cut)
                ))
                .collect::<Vec<_>>()
        );
    }
}

/// `+1.234 s` (or `-...`, or `never`) of `at` relative to `zero`.
fn relative(at: Option<Instant>, zero: Instant) -> String {
    match at {
        None => "never".to_string(),
        Some(at) if at >= zero => format!("+{:.3} s", (at - zero).as_secs_f64()),
        Some(at) => format!("-{:.3} s", (zero - at).as_secs_f64()),
    }
}

/// What a node answered to a run of writes.
#[derive(Debug, Default)]
struct Answers {
    ok: usize,
    durable: usize,
    clusterdown: usize,
    /// Timeouts and lost connections.
    unknown: Vec<String>,
    /// Any other error.
    others: Vec<String>,
}

impl Answers {
    fn of(ops: &[&Op]) -> Answers {
        let mut answers = Answers::default();
        for op in ops {
            match &op.outcome {
                Outcome::Ok(_) => {
                    answers.ok += 1;
                    answers.durable += usize::from(op.durable);
                }
                Outcome::Error(error) if error.starts_with("CLUSTERDOWN") => {
                    answers.clusterdown += 1;
                }
                Outcome::Error(error) => answers.others.push(error.clone()),
                Outcome::Unknown(why) => answers.unknown.push(why.clone()),
            }
        }
        answers
    }
}

impl std::fmt::Display for Answers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} OK ({} counted by WAIT 1), {} CLUSTERDOWN, {} without an answer {:?}, {} other \
             errors {:?}",
            self.ok,
            self.durable,
            self.clusterdown,
            self.unknown.len(),
            self.unknown,
            self.others.len(),
            self.others
        )
    }
}

/// The overlap check on made-up histories: it passes when the old
/// primary's last OK comes before the new one's first write was sent, and
/// fails, naming the writes, when it comes after.
#[test]
fn the_overlap_check_tells_handover_from_overlap() {
    let cut = Instant::now();
    let at = |ms: u64| cut + Duration::from_millis(ms);
    let op = |node: &str, seq: u64, invoked: u64, ok: u64| Op {
        client: Client::Unaware,
        node: node.to_string(),
        key: format!("k{seq}"),
        seq,
        invoked: at(invoked),
        outcome: Outcome::Ok(at(ok)),
        durable: false,
    };
    let handover = [op("p", 1, 100, 110), op("r", 2, 2000, 2010)];
    let overlap = Overlap::of(&handover, "p", "r", cut);
    assert_eq!(overlap.p_after_cut.len(), 1);
    assert!(overlap.overlapping.is_empty());
    overlap.assert_none();

    let both = [
        op("p", 1, 100, 110),
        op("r", 2, 2000, 2010),
        op("p", 3, 2100, 2110),
    ];
    let overlap = Overlap::of(&both, "p", "r", cut);
    assert_eq!(overlap.overlapping.len(), 1);
    let failure =
        std::panic::catch_unwind(|| overlap.assert_none()).expect_err("an overlap fails the check");
    let message = failure
        .downcast_ref::<String>()
        .expect("a formatted message");
    assert!(
        message.contains("acknowledged 1 writes after r"),
        "{message}"
    );
    assert!(message.contains("SET k3 3 OK at +2.110 s"), "{message}");
}
