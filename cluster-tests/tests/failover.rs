//! Failover with the real binaries: a primary killed with SIGKILL, or
//! frozen with SIGSTOP, is replaced by its replica, `CLUSTER FAILOVER` hands a primary's slots to
//! its replica, and a client rides both out.
//!
//! A write is *acknowledged* when the test is entitled to expect it to
//! survive: after a `WAIT` that counted a replica (a killed primary may take
//! unreplicated writes with it), or as soon as `SET` answered (a manual
//! failover loses nothing).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cluster_tests::history::{Overlap, Writers, assert_nothing_durable_lost};
use cluster_tests::replicated::{
    AUTO, NODE_TIMEOUT, ReplicatedCluster, SETTLE, assert_same_data, keys_owned_by, replica_sets,
    slots_of, wait_caught_up,
};
use cluster_tests::resp::{SlotsEntry, text};
use cluster_tests::{Node, RespClient, eventually, node_at};
use keycafe_client::{Frame, KeycafeCluster};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// A failover must be complete this long after the primary died.
const FAILOVER_BOUND: Duration = NODE_TIMEOUT.saturating_add(Duration::from_secs(5));
/// A client operation held up longer than this was retried through an
/// outage.
const SLOW: Duration = Duration::from_secs(1);

/// What a writer did to each key. Values are `seq` numbers, increasing
/// over the whole run, so a later write to a key has a higher one.
#[derive(Debug, Default)]
struct Ledger {
    /// The last acknowledged value of each key.
    acked: HashMap<String, u64>,
    /// The last value sent for each key, acknowledged or not.
    sent: HashMap<String, u64>,
}

impl Ledger {
    /// Checks the value read back for `key`: an acknowledged write may only
    /// have been replaced by a later write, never lost.
    fn check(&self, key: &str, value: Option<&str>) {
        let Some(&sent) = self.sent.get(key) else {
            return;
        };
        let seq = value.map(|v| {
            v.parse::<u64>()
                .unwrap_or_else(|_| panic!("{key} holds {v:?}, not a value the writer wrote"))
        });
        if let Some(&acked) = self.acked.get(key) {
            let seq =
                seq.unwrap_or_else(|| panic!("{key}: acknowledged write {acked} lost (key gone)"));
            assert!(
                seq >= acked,
                "{key}: acknowledged write {acked} lost, an older value {seq} is back"
            );
        }
        if let Some(seq) = seq {
            assert!(
                seq <= sent,
                "{key} holds {seq}, never written (last {sent})"
            );
        }
    }
}

/// Progress a writer reports while it runs.
#[derive(Default)]
struct Progress {
    /// SETs that succeeded.
    written: AtomicUsize,
    acknowledged: AtomicUsize,
    stop: AtomicBool,
}

/// Sets `keys` round and round through `kc`. With `wait` a write is
/// acknowledged when a `WAIT 1 wait` after it counts a replica; without, as
/// soon as SET succeeds. Errors are expected and not counted.
fn spawn_writer(
    kc: KeycafeCluster,
    keys: Vec<String>,
    wait: Option<Duration>,
    progress: Arc<Progress>,
) -> JoinHandle<Ledger> {
    tokio::spawn(async move {
        let mut ledger = Ledger::default();
        let mut seq = 0u64;
        for key in keys.iter().cycle() {
            if progress.stop.load(Ordering::Relaxed) {
                break;
            }
            seq += 1;
            ledger.sent.insert(key.clone(), seq);
            if kc.set(key, seq.to_string()).await.is_err() {
                continue;
            }
            progress.written.fetch_add(1, Ordering::Relaxed);
            let acked = match wait {
                None => true,
                Some(timeout) => kc.wait(key, 1, timeout).await.is_ok_and(|n| n >= 1),
            };
            if acked {
                ledger.acked.insert(key.clone(), seq);
                progress.acknowledged.fetch_add(1, Ordering::Relaxed);
            }
        }
        ledger
    })
}

/// Waits until `counter` has grown by `by` from where it is now.
async fn wait_progress(what: &str, counter: &AtomicUsize, by: usize) {
    let from = counter.load(Ordering::Relaxed);
    eventually(what, SETTLE, async || {
        Ok(counter.load(Ordering::Relaxed) >= from + by)
    })
    .await
    .unwrap();
}

/// Reads every key the writer touched and checks it against the ledger.
async fn assert_ledger(kc: &KeycafeCluster, ledger: &Ledger) {
    assert!(!ledger.acked.is_empty(), "no write was acknowledged");
    for key in ledger.sent.keys() {
        let value = kc.get_string(key).await.expect("read after the failover");
        ledger.check(key, value.as_deref());
    }
}

/// True when `slots` covers 0..=16383 with no gap and every range's
/// primary is in `live`.
fn covers_all_slots(slots: &[SlotsEntry], live: &[String]) -> bool {
    let mut ranges: Vec<_> = slots.iter().collect();
    ranges.sort_by_key(|r| r.start);
    let mut next = 0u32;
    for range in ranges {
        let primary_live = range.addrs.first().is_some_and(|a| live.contains(a));
        if u32::from(range.start) != next || !primary_live {
            return false;
        }
        next = u32::from(range.end) + 1;
    }
    next == 16384
}

/// Starts writing `keys` through a client of `via`, each write followed by
/// `WAIT 1`, and returns once 300 writes are acknowledged.
async fn start_waited_writes(
    via: &str,
    keys: Vec<String>,
) -> (KeycafeCluster, Arc<Progress>, JoinHandle<Ledger>) {
    let kc = KeycafeCluster::connect(via.to_string()).await.unwrap();
    let progress = Arc::new(Progress::default());
    let wait = Some(Duration::from_millis(300));
    let writer = spawn_writer(kc.clone(), keys, wait, progress.clone());
    wait_progress("writes are acknowledged", &progress.acknowledged, 300).await;
    (kc, progress, writer)
}

/// Sends one RESP request without waiting for the answer.
async fn send(stream: &mut TcpStream, args: &[&str]) {
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    stream.write_all(request.as_bytes()).await.unwrap();
}

/// The next answer on `stream` (one read; the answers here are short).
async fn answer(stream: &mut TcpStream) -> String {
    let mut buf = vec![0u8; 4096];
    let read = tokio::time::timeout(SETTLE, stream.read(&mut buf)).await;
    let n = read.expect("an answer").expect("the connection stays open");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// After `fault` hit `victim`: every slot is served again by the other
/// nodes, as `survivor` sees it, within [`FAILOVER_BOUND`].
async fn assert_replaced(
    cluster: &ReplicatedCluster,
    victim: &str,
    survivor: &str,
    probe: &str,
    fault: &str,
) {
    let live: Vec<String> = cluster
        .nodes
        .iter()
        .map(Node::addr)
        .filter(|a| a != victim)
        .collect();
    let took = wait_slots_served(survivor, &live, probe).await;
    println!("failover after {fault}: every slot served again after {took:?}");
    assert!(
        took < FAILOVER_BOUND,
        "failover after {fault} took {took:?} (bound {FAILOVER_BOUND:?})"
    );
}

/// The addresses CLUSTER NODES flags `fail?` (silent for the node timeout).
async fn unreachable_peers(client: &mut RespClient) -> anyhow::Result<Vec<String>> {
    let nodes = client.cmd(&["CLUSTER", "NODES"]).await?;
    let text = text(&nodes).unwrap_or_default();
    Ok(text
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let addr = fields.get(1)?.split('@').next()?;
            fields.get(2)?.contains("fail").then(|| addr.to_string())
        })
        .collect())
}

/// Time from now until `survivor`'s CLUSTER SLOTS names live primaries for
/// every slot and a write to `probe_key` succeeds on the primary it names.
async fn wait_slots_served(survivor: &str, live: &[String], probe_key: &str) -> Duration {
    eventually(
        "every slot is served by live nodes",
        FAILOVER_BOUND * 3,
        async || {
            let slots = RespClient::connect(survivor).await?.cluster_slots().await?;
            if !covers_all_slots(&slots, live) {
                return Ok(false);
            }
            let slot = keycafe_core::key_slot(probe_key.as_bytes());
            let owner = slots
                .iter()
                .find(|r| (r.start..=r.end).contains(&slot))
                .and_then(|r| r.addrs.first())
                .expect("covered");
            let reply = RespClient::connect(owner)
                .await?
                .cmd(&["SET", probe_key, "after-failover"])
                .await?;
            Ok(reply == Frame::Simple("OK".into()))
        },
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_is_replaced_without_losing_acknowledged_writes() {
    let mut cluster = ReplicatedCluster::start(1, &[AUTO; 6], 3, 1).await;
    let config = cluster.config().await;
    let sets = replica_sets(&config);
    let (victim, promoted) = (sets[0].0.clone(), sets[0].1[0].clone());
    let survivor = sets[1].0.clone();
    let keys = keys_owned_by(&config, &victim, "acked:", 200);
    let probe = keys_owned_by(&config, &victim, "probe:", 1).remove(0);

    // Writes to the victim's slots, each followed by WAIT 1.
    let (kc, progress, writer) = start_waited_writes(&survivor, keys.clone()).await;

    cluster.node_mut(&victim).kill().await.unwrap();
    assert_replaced(&cluster, &victim, &survivor, &probe, "kill -9").await;

    // The writer carries on against the promoted replica (which has no
    // replica yet: its WAITs time out).
    wait_progress("writes go on after the failover", &progress.written, 5).await;
    progress.stop.store(true, Ordering::Relaxed);
    let ledger = writer.await.unwrap();
    assert_ledger(&kc, &ledger).await;
    let config = cluster.config().await;
    let new_primary = node_at(&config, &promoted).expect("the replica is still there");
    assert!(!new_primary.is_replica(), "the replica was promoted");
    assert_eq!(
        node_at(&config, &victim).and_then(|n| n.replica_of.clone()),
        Some(new_primary.id.clone()),
        "the dead primary's entry follows the promoted replica"
    );

    // The old primary's binary, restarted in place, comes back as a replica
    // and copies the new primary's data.
    cluster.node_mut(&victim).restart().await.unwrap();
    let restarted = cluster.node(&victim);
    eventually("the restarted node follows", SETTLE, async || {
        let info = restarted.client().await?.info("replication").await?;
        Ok(info["role"] == "slave"
            && info["master_link_status"] == "up"
            && info["master_sync_in_progress"] == "0"
            && info["master_port"] == promoted.rsplit(':').next().unwrap())
    })
    .await
    .unwrap();
    let role = restarted.client().await.unwrap().cmd(&["ROLE"]).await;
    assert!(
        matches!(&role, Ok(Frame::Array(items)) if text(&items[0]).as_deref() == Some("slave")),
        "ROLE {role:?}"
    );
    wait_caught_up(&promoted, &victim).await;
    let mut all: Vec<String> = ledger.sent.keys().cloned().collect();
    all.push(probe);
    let values = assert_same_data(&promoted, &victim, &all).await;
    for (key, value) in &values {
        ledger.check(key, value.as_deref());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_primary_is_replaced_and_rejoins_as_a_replica() {
    let cluster = ReplicatedCluster::start(1, &[AUTO; 4], 2, 1).await;
    let config = cluster.config().await;
    let sets = replica_sets(&config);
    let (victim, promoted) = (sets[0].0.clone(), sets[0].1[0].clone());
    let survivor = sets[1].0.clone();
    let keys = keys_owned_by(&config, &victim, "paused:", 200);
    let probe = keys_owned_by(&config, &victim, "probe:", 1).remove(0);
    let queued_key = keys_owned_by(&config, &victim, "queued:", 1).remove(0);

    let (kc, progress, writer) = start_waited_writes(&survivor, keys).await;
    // Writers that record which node acknowledged what, and when.
    let history_keys = keys_owned_by(&config, &victim, "history:", 100);
    let writers = Writers::start(&cluster, &history_keys).await;
    // Two connections to the victim, used while it is paused: their
    // requests wait in its socket buffers until it resumes.
    let mut queued_write = TcpStream::connect(&victim).await.unwrap();
    let mut queued_read = TcpStream::connect(&victim).await.unwrap();
    send(&mut queued_read, &["CLIENT", "FENCED-READS", "ON"]).await;
    assert_eq!(answer(&mut queued_read).await, "+OK\r\n");

    // SIGSTOP: the primary's sockets stay open, nothing answers. Only
    // application-level silence can tell: the replica's link gives up
    // after the node timeout and says so in its heartbeat.
    cluster.node(&victim).pause().unwrap();
    let paused = Instant::now();
    send(&mut queued_write, &["SET", &queued_key, "queued"]).await;
    let key = keys_owned_by(&config, &victim, "paused:", 1).remove(0);
    send(&mut queued_read, &["GET", &key]).await;
    let mut early = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(200), queued_write.read(&mut early));
    assert!(
        early.await.is_err(),
        "the paused node answered: it was not paused"
    );
    assert_replaced(&cluster, &victim, &survivor, &probe, "SIGSTOP").await;
    wait_progress("writes go on after the failover", &progress.written, 5).await;

    // Gossip: the silent node is flagged, and it does not make the live
    // ones look silent by holding up their pings.
    let mut client = RespClient::connect(&survivor).await.unwrap();
    eventually("the paused node is flagged", SETTLE, async || {
        Ok(unreachable_peers(&mut client).await? == [victim.clone()])
    })
    .await
    .unwrap();
    for _ in 0..40 {
        let flagged = unreachable_peers(&mut client).await.unwrap();
        assert_eq!(
            flagged,
            std::slice::from_ref(&victim),
            "only the paused node is flagged"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // SIGCONT: the old primary learns the newer configuration and follows
    // the promoted replica.
    cluster.node(&victim).resume().unwrap();
    let resumed_at = Instant::now();
    let config = cluster
        .coordinator
        .wait_until("the paused primary is demoted", SETTLE, |c| {
            let new = node_at(c, &promoted).is_some_and(|n| !n.is_replica());
            let old = node_at(c, &victim).is_some_and(|n| n.is_replica());
            new && old
        })
        .await
        .unwrap();
    assert!(node_at(&config, &promoted).is_some_and(|n| !n.is_replica()));

    // What was queued during the pause is not acknowledged on resuming: the
    // old primary's lease ran out before its replica was promoted.
    let write = answer(&mut queued_write).await;
    println!("a write queued during the pause got {write:?}");
    assert!(
        write.starts_with("-CLUSTERDOWN") || write.starts_with("-MOVED"),
        "the resumed primary answered a write queued while it was paused with {write:?}"
    );
    let read = answer(&mut queued_read).await;
    println!("a fenced read queued during the pause got {read:?}");
    assert!(
        read.starts_with("-CLUSTERDOWN") || read.starts_with("-MOVED"),
        "the resumed primary answered a fenced read queued while it was paused with {read:?}"
    );
    let mut new_primary = RespClient::connect(&promoted).await.unwrap();
    let value = new_primary.cmd(&["GET", &queued_key]).await.unwrap();
    assert_eq!(value, Frame::Null, "the refused write is nowhere");

    // From the recorded history: nothing durable lost, and no OK from the
    // resumed primary once its replica had begun acknowledging writes.
    writers
        .wait_for_more("durable writes after the failover", 20)
        .await;
    let history = writers.stop().await;
    assert_nothing_durable_lost(&history, &promoted).await;
    let overlap = Overlap::of(&history, &victim, &promoted, paused);
    overlap.print(&history, &victim, &promoted, resumed_at);
    overlap.assert_none();

    progress.stop.store(true, Ordering::Relaxed);
    let ledger = writer.await.unwrap();
    assert_ledger(&kc, &ledger).await;
    let resumed = cluster.node(&victim);
    eventually("the resumed node follows", SETTLE, async || {
        let info = resumed.client().await?.info("replication").await?;
        Ok(info["role"] == "slave"
            && info["master_link_status"] == "up"
            && info["master_port"] == promoted.rsplit(':').next().unwrap())
    })
    .await
    .unwrap();
    wait_caught_up(&promoted, &victim).await;
    let all: Vec<String> = ledger.sent.keys().cloned().collect();
    assert_same_data(&promoted, &victim, &all).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_failover_swaps_roles_without_losing_a_write() {
    let cluster = ReplicatedCluster::start(1, &[AUTO; 4], 2, 1).await;
    let config = cluster.config().await;
    let sets = replica_sets(&config);
    let (primary, replica) = (sets[0].0.clone(), sets[0].1[0].clone());
    let primary_id = node_at(&config, &primary).unwrap().id.clone();
    let replica_id = node_at(&config, &replica).unwrap().id.clone();
    let owned = slots_of(&config, &primary_id);
    assert!(!owned.is_empty());
    let keys = keys_owned_by(&config, &primary, "manual:", 200);

    let kc = KeycafeCluster::connect(sets[1].0.clone()).await.unwrap();
    let progress = Arc::new(Progress::default());
    let writer = spawn_writer(kc.clone(), keys, None, progress.clone());
    wait_progress("writes flow", &progress.acknowledged, 300).await;

    let started = Instant::now();
    let answer = RespClient::connect(&replica)
        .await
        .unwrap()
        .cmd(&["CLUSTER", "FAILOVER"])
        .await
        .unwrap();
    assert_eq!(answer, Frame::Simple("OK".into()));
    let config = cluster
        .coordinator
        .wait_until("the roles are swapped", SETTLE, |c| {
            let new = node_at(c, &replica).is_some_and(|n| !n.is_replica());
            let old = node_at(c, &primary).and_then(|n| n.replica_of.as_deref())
                == Some(replica_id.as_str());
            new && old
        })
        .await
        .unwrap();
    println!(
        "CLUSTER FAILOVER: roles swapped after {:?}",
        started.elapsed()
    );
    assert_eq!(
        slots_of(&config, &replica_id),
        owned,
        "the former replica owns the slots"
    );

    wait_progress(
        "writes go on after the hand-over",
        &progress.acknowledged,
        300,
    )
    .await;
    progress.stop.store(true, Ordering::Relaxed);
    let ledger = writer.await.unwrap();
    assert_ledger(&kc, &ledger).await;

    for (addr, role) in [(&replica, "master"), (&primary, "slave")] {
        eventually(&format!("{addr} is a {role}"), SETTLE, async || {
            Ok(cluster.node(addr).client().await?.role().await? == role)
        })
        .await
        .unwrap();
    }
    wait_caught_up(&replica, &primary).await;
    let keys: Vec<String> = ledger.sent.keys().cloned().collect();
    assert_same_data(&replica, &primary, &keys).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_keeps_working_across_a_failover() {
    let mut cluster = ReplicatedCluster::start(1, &[AUTO; 4], 2, 1).await;
    let config = cluster.config().await;
    let sets = replica_sets(&config);
    let (victim, promoted) = (sets[0].0.clone(), sets[0].1[0].clone());
    let promoted_id = node_at(&config, &promoted).unwrap().id.clone();
    let kc = KeycafeCluster::connect(sets[1].0.clone()).await.unwrap();

    // Set then get, over keys of every slot range, noting when each
    // operation started and ended and whether it (and the read-back)
    // succeeded.
    // `streak` counts the operations since the last failed or slow one.
    let stop = Arc::new(AtomicBool::new(false));
    let streak = Arc::new(AtomicUsize::new(0));
    let ops = tokio::spawn({
        let (kc, stop, streak) = (kc.clone(), stop.clone(), streak.clone());
        async move {
            let mut outcomes: Vec<(Instant, Instant, Result<(), String>)> = Vec::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let (key, value) = (format!("loop:{}", n % 500), n.to_string());
                let start = Instant::now();
                let result = match kc.set(&key, &value).await {
                    Err(err) => Err(format!("SET {key}: {err}")),
                    Ok(()) => match kc.get_string(&key).await {
                        Ok(Some(v)) if v == value => Ok(()),
                        other => Err(format!("GET {key} after SET {value}: {other:?}")),
                    },
                };
                let end = Instant::now();
                if result.is_ok() && end - start <= SLOW {
                    streak.fetch_add(1, Ordering::Relaxed);
                } else {
                    streak.store(0, Ordering::Relaxed);
                }
                outcomes.push((start, end, result));
            }
            outcomes
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    let killed_at = Instant::now();
    cluster.node_mut(&victim).kill().await.unwrap();
    cluster
        .coordinator
        .wait_until("the replica is promoted", SETTLE, |c| {
            c.slots.iter().any(|r| r.owner == promoted_id)
        })
        .await
        .unwrap();
    let promoted_after = killed_at.elapsed();
    // Run on until a good number of operations in a row have gone well.
    streak.store(0, Ordering::Relaxed);
    wait_progress("the client works again", &streak, 500).await;
    stop.store(true, Ordering::Relaxed);
    let outcomes = ops.await.unwrap();

    let errors_before: Vec<_> = outcomes
        .iter()
        .filter(|(_, end, r)| *end < killed_at && r.is_err())
        .collect();
    assert!(
        errors_before.is_empty(),
        "before the kill: {errors_before:?}"
    );
    // The disruption lasts until the end of the last operation that failed
    // or was held up (retried) for more than a second.
    let disrupted: Vec<_> = outcomes
        .iter()
        .filter(|(start, end, r)| *end > killed_at && (r.is_err() || *end - *start > SLOW))
        .collect();
    let window = disrupted
        .last()
        .map_or(Duration::ZERO, |(_, end, _)| *end - killed_at);
    let after = outcomes
        .iter()
        .filter(|(start, _, _)| *start > killed_at + window)
        .count();
    let failures = disrupted.iter().filter(|(_, _, r)| r.is_err()).count();
    println!(
        "client across a failover: promoted after {promoted_after:?}; {failures} failed and \
         {} slow operations, disruption window {window:?}, {after} operations after it",
        disrupted.len() - failures,
    );
    for (start, end, result) in &disrupted {
        println!(
            "  {:?} after the kill, for {:?}: {result:?}",
            *start - killed_at.min(*start),
            *end - *start
        );
    }
    assert!(
        window < FAILOVER_BOUND,
        "disrupted for {window:?}: {disrupted:?}"
    );
    assert!(after >= 500, "the client kept operating after the failover");
}
