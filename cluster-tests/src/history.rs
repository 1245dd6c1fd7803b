//! A history of writes and the properties read from it, for fault tests.
//!
//! [`Writers`] runs two clients that write the keys of one primary and
//! record every operation: which node, when it was sent, and what came back
//! (OK at some instant, an error, or nothing within [`OP_TIMEOUT`]), and
//! whether a `WAIT 1` after an OK counted a replica. From that history:
//!
//! - a write is *acknowledged* when SET answered OK; it is *durable* when
//!   `WAIT 1` then counted a replica, and a durable write must never be
//!   lost ([`assert_nothing_durable_lost`]);
//! - two nodes must never acknowledge writes for one slot at overlapping
//!   times ([`Overlap`]): every OK of the old primary after the fault comes
//!   before the first write the new primary acknowledged was even sent.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use keycafe_core::{Frame, Slot, key_slot};
use tokio::task::JoinHandle;

use crate::replicated::ReplicatedCluster;
use crate::resp::text;
use crate::{Node, RespClient, eventually};

/// How long a writer waits for any one reply (or connection).
pub const OP_TIMEOUT: Duration = Duration::from_millis(500);
/// The writer's `WAIT 1 <ms>` after each OK.
const WAIT_MS: &str = "200";
/// A bounded wait for things that take a moment on a loaded machine.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Reads every key the history wrote from `owner` and checks that no
/// durable write was lost: each key holds its last durable value or a
/// later one the writer sent.
pub async fn assert_nothing_durable_lost(history: &[Op], owner: &str) {
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
pub enum Client {
    Unaware,
    Careful,
}

/// What became of one SET.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// `+OK`, received at this instant.
    Ok(Instant),
    /// An error reply: the write was refused.
    Error(String),
    /// No reply (timeout, connection lost): it may or may not have applied.
    Unknown(String),
}

/// One SET in the history.
#[derive(Debug, Clone)]
pub struct Op {
    pub client: Client,
    pub node: String,
    pub key: String,
    /// Unique and increasing over the whole run, across both clients.
    pub seq: u64,
    pub invoked: Instant,
    pub outcome: Outcome,
    /// `WAIT 1` after the OK counted a replica.
    pub durable: bool,
}

/// The instant of an acknowledged write's OK.
pub fn ok_time(op: &Op) -> Instant {
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

/// The two writing clients (an unaware one and a careful one), running.
pub struct Writers {
    progress: Arc<Progress>,
    tasks: Vec<JoinHandle<Vec<Op>>>,
}

impl Writers {
    /// Starts both clients on `keys` (alternate keys each), and returns
    /// once 50 writes are durable.
    pub async fn start(cluster: &ReplicatedCluster, keys: &[String]) -> Writers {
        let nodes: Vec<String> = cluster.nodes.iter().map(Node::addr).collect();
        Writers::start_on(nodes, keys).await
    }

    /// [`Writers::start`] for a cluster whose nodes are at `nodes`.
    pub async fn start_on(nodes: Vec<String>, keys: &[String]) -> Writers {
        let progress = Arc::new(Progress::default());
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
    pub async fn wait_for_more(&self, what: &str, by: usize) {
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
    pub async fn stop(self) -> Vec<Op> {
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

/// Writes the old primary P acknowledged after the fault (a cut, a pause)
/// began, against the first write the promoted replica R acknowledged.
pub struct Overlap<'a> {
    cut: Instant,
    /// P's OKs received after the fault began.
    p_after_cut: Vec<&'a Op>,
    /// R's first acknowledged write.
    pub first_r: Option<&'a Op>,
    /// P's OKs received at or after the moment R's first acknowledged
    /// write was sent.
    overlapping: Vec<&'a Op>,
}

impl<'a> Overlap<'a> {
    pub fn of(history: &'a [Op], p: &str, r: &str, cut: Instant) -> Overlap<'a> {
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

    pub fn print(&self, history: &[Op], p: &str, r: &str, healed: Instant) {
        let cut = self.cut;
        let last_p = self.p_after_cut.iter().map(|op| ok_time(op)).max();
        println!(
            "relative to the fault: {p} acknowledged {} writes after it, the last at {}; \
             {r}'s first acknowledged write was sent at {} and acknowledged at {}; the fault ended at {}",
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
            "what {p} answered to writes during the fault: {}",
            Answers::of(&during)
        );
        let durable_after: usize = history
            .iter()
            .filter(|op| op.durable && op.invoked > cut)
            .count();
        println!(
            "{} operations in all, {durable_after} durable after the fault began; unaware client's \
             writes to {r}: {}",
            history.len(),
            history
                .iter()
                .filter(|op| op.client == Client::Unaware && op.node == r)
                .count()
        );
    }

    /// No write acknowledged by P after R started acknowledging.
    pub fn assert_none(&self) {
        let (Some(first), Some(last)) = (self.first_r, self.overlapping.last()) else {
            return;
        };
        let window = ok_time(last) - first.invoked;
        panic!(
            "two primaries acknowledged writes for the same slots: the old primary {} \
             acknowledged {} writes after {} had begun to (relative to the fault: {}'s first \
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
pub struct Answers {
    pub ok: usize,
    pub durable: usize,
    pub clusterdown: usize,
    /// Timeouts and lost connections.
    pub unknown: Vec<String>,
    /// Any other error.
    pub others: Vec<String>,
}

impl Answers {
    pub fn of(ops: &[&Op]) -> Answers {
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let failure = std::panic::catch_unwind(|| overlap.assert_none())
            .expect_err("an overlap fails the check");
        let message = failure
            .downcast_ref::<String>()
            .expect("a formatted message");
        assert!(
            message.contains("acknowledged 1 writes after r"),
            "{message}"
        );
        assert!(message.contains("SET k3 3 OK at +2.110 s"), "{message}");
    }
}
