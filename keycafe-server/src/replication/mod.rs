//! Replication: replicas that hold a copy of a primary's data, and the
//! hand-over of a primary's slots to one of them.
//!
//! - [`log`]: the ordered stream of changes the store records, and its
//!   backlog.
//! - [`primary`]: serving a replica: a full copy or a resumption, then the
//!   stream; acknowledgements and `WAIT`.
//! - [`replica`]: following a primary: connect, copy, apply, acknowledge;
//!   the shell around [`link`], the state machine that decides all that.
//! - [`failover`]: `CLUSTER FAILOVER`, the safe manual hand-over; the shell
//!   around [`handover`], its state machine.
//!
//! Roles come from the cluster configuration (`replica_of` in a node's
//! entry): the coordinator decides who follows whom and whom to promote, and
//! [`replica::run`] turns each newly adopted configuration into the node's
//! behaviour. A replica connects to its primary's cluster bus and sends
//! `KC.PSYNC`; the bus connection then becomes a one-way stream of records,
//! with `KC.ACK offset` flowing back. `docs/replication.md` tells the whole
//! story, including what a failover can lose.

pub mod failover;
pub mod handover;
pub mod link;
pub mod log;
pub mod primary;
pub mod replica;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use keycafe_core::cluster::NodeId;
use keycafe_core::coord::ReplicationReport;
use tokio::sync::{Notify, watch};

use self::log::ReplicationLog;
use crate::cluster::ClusterState;
use crate::store::Store;

/// The parts of a node that following a primary and handing over its
/// slots work with (cluster mode only).
#[derive(Clone)]
pub struct Parts {
    pub store: Arc<Store>,
    pub replication: Arc<Replication>,
    pub cluster: Arc<ClusterState>,
    /// A primary silent for this long is given up on.
    pub node_timeout: Duration,
}

/// A replica as its primary sees it.
#[derive(Debug, Clone)]
pub struct ReplicaLink {
    pub node: NodeId,
    /// The replica's client address, for INFO and ROLE.
    pub addr: String,
    /// Still receiving its full copy.
    pub syncing: bool,
    /// The offset the replica has acknowledged applying.
    pub acked: u64,
    pub last_ack: Instant,
}

/// This node's side of a link to its primary, for INFO and heartbeats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamStatus {
    pub primary: Option<NodeId>,
    /// The primary's client address.
    pub primary_addr: Option<String>,
    pub link_up: bool,
    pub syncing: bool,
    /// A full copy has completed: the data is a whole copy of the primary's.
    pub synced: bool,
    pub last_io: Option<Instant>,
}

/// Counters of syncs served, as Redis's INFO names them.
#[derive(Debug, Default)]
pub struct SyncStats {
    pub full: AtomicU64,
    pub partial_ok: AtomicU64,
    pub partial_err: AtomicU64,
}

/// Replication's share of the node's state.
pub struct Replication {
    pub log: Arc<ReplicationLog>,
    /// Replicas attached to this node, by connection id.
    replicas: Mutex<HashMap<u64, ReplicaLink>>,
    /// Woken on every acknowledgement (WAIT listens).
    acked: Notify,
    /// WAITs in progress: while there are any, the stream goes out at once
    /// instead of in millisecond batches.
    waiting: AtomicUsize,
    /// Woken when a WAIT starts, to cut a batching pause short.
    wait_started: Notify,
    /// Ticks to close every replica link (`CLIENT KILL TYPE replica`).
    kill_replicas: watch::Sender<u64>,
    /// Ticks to drop the link to our primary (`CLIENT KILL TYPE master`).
    kill_upstream: watch::Sender<u64>,
    upstream: Mutex<UpstreamStatus>,
    /// Whether the link to our primary is up, for those who must hear of a
    /// change at once (the coordinator link sends a heartbeat).
    link_up: watch::Sender<bool>,
    pub stats: SyncStats,
    pub gate: WriteGate,
}

impl Replication {
    pub fn new(log: Arc<ReplicationLog>) -> Replication {
        Replication {
            log,
            replicas: Mutex::new(HashMap::new()),
            acked: Notify::new(),
            waiting: AtomicUsize::new(0),
            wait_started: Notify::new(),
            kill_replicas: watch::Sender::new(0),
            kill_upstream: watch::Sender::new(0),
            upstream: Mutex::new(UpstreamStatus::default()),
            link_up: watch::Sender::new(false),
            stats: SyncStats::default(),
            gate: WriteGate::default(),
        }
    }

    /// Attached replicas.
    pub fn replicas(&self) -> Vec<ReplicaLink> {
        let mut links: Vec<ReplicaLink> = lock(&self.replicas).values().cloned().collect();
        links.sort_by(|a, b| a.addr.cmp(&b.addr));
        links
    }

    pub(crate) fn attach(&self, conn: u64, link: ReplicaLink) {
        lock(&self.replicas).insert(conn, link);
    }

    pub(crate) fn detach(&self, conn: u64) {
        lock(&self.replicas).remove(&conn);
        self.acked.notify_waiters();
    }

    pub(crate) fn update(&self, conn: u64, change: impl FnOnce(&mut ReplicaLink)) {
        if let Some(link) = lock(&self.replicas).get_mut(&conn) {
            change(link);
        }
        self.acked.notify_waiters();
    }

    /// Replicas that have acknowledged `offset`.
    pub fn acked_at_least(&self, offset: u64) -> usize {
        lock(&self.replicas)
            .values()
            .filter(|link| !link.syncing && link.acked >= offset)
            .count()
    }

    /// WAIT: until `wanted` replicas acknowledge everything written so far,
    /// or `timeout` passes (`None`: no limit). Returns how many did.
    pub async fn wait_for_acks(&self, wanted: usize, timeout: Option<Duration>) -> usize {
        let target = self.log.offset();
        if self.acked_at_least(target) >= wanted {
            return self.acked_at_least(target);
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        self.wait_started.notify_waiters();
        let count = self.wait_for(target, wanted, timeout).await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        count
    }

    /// True while some WAIT is in progress.
    pub(crate) fn anyone_waiting(&self) -> bool {
        self.waiting.load(Ordering::SeqCst) > 0
    }

    /// Completes when a WAIT starts.
    pub(crate) async fn a_wait_started(&self) {
        self.wait_started.notified().await;
    }

    async fn wait_for(&self, target: u64, wanted: usize, timeout: Option<Duration>) -> usize {
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        loop {
            let notified = self.acked.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let count = self.acked_at_least(target);
            if count >= wanted {
                return count;
            }
            match deadline {
                Some(deadline) => {
                    if tokio::time::timeout_at(deadline, notified).await.is_err() {
                        return self.acked_at_least(target);
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Closes every replica link; returns how many there were.
    pub fn kill_replicas(&self) -> usize {
        let count = lock(&self.replicas).len();
        self.kill_replicas.send_modify(|n| *n += 1);
        count
    }

    pub(crate) fn replica_kills(&self) -> watch::Receiver<u64> {
        self.kill_replicas.subscribe()
    }

    /// Drops the link to our primary (it reconnects); true if there was one.
    pub fn kill_upstream(&self) -> bool {
        let up = self.upstream().link_up;
        self.kill_upstream.send_modify(|n| *n += 1);
        up
    }

    pub(crate) fn upstream_kills(&self) -> watch::Receiver<u64> {
        self.kill_upstream.subscribe()
    }

    pub fn upstream(&self) -> UpstreamStatus {
        lock(&self.upstream).clone()
    }

    pub(crate) fn set_upstream(&self, change: impl FnOnce(&mut UpstreamStatus)) {
        let link_up = {
            let mut upstream = lock(&self.upstream);
            change(&mut upstream);
            upstream.link_up
        };
        self.link_up
            .send_if_modified(|up| std::mem::replace(up, link_up) != link_up);
    }

    /// Sees every change of whether the link to our primary is up.
    pub fn link_changes(&self) -> watch::Receiver<bool> {
        self.link_up.subscribe()
    }

    /// The replication part of this node's heartbeat.
    pub fn report(&self) -> ReplicationReport {
        let up = self.upstream();
        let replicas = lock(&self.replicas);
        ReplicationReport {
            offset: self.log.offset(),
            following: up.primary.clone(),
            link_up: up.link_up,
            synced: up.synced,
            last_io_ms: up
                .last_io
                .map_or(u64::MAX, |t| t.elapsed().as_millis() as u64),
            replicas_connected: replicas.values().filter(|l| !l.syncing).count() as u32,
        }
    }
}

/// Stops writes for a manual failover. Every write command passes
/// [`WriteGate::enter`], which counts it as in flight; [`WriteGate::pause`]
/// closes the gate and then waits for the writes already inside to finish,
/// so that once it returns the replication stream no longer grows by
/// command.
#[derive(Debug, Default)]
pub struct WriteGate {
    /// Paused until this instant (ms since the Unix epoch; 0: open).
    paused_until: AtomicU64,
    in_flight: AtomicUsize,
}

/// Holds a write inside the gate; leaving drops the count.
pub struct GatePass<'a>(&'a WriteGate);

impl Drop for GatePass<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl WriteGate {
    /// Lets a write in, or `None` while paused. (Counting first and checking
    /// second is what makes `pause` exact: a write either sees the pause or
    /// is counted before `pause` looks at the count.)
    pub fn enter(&self) -> Option<GatePass<'_>> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let pass = GatePass(self);
        if self.is_paused() {
            return None;
        }
        Some(pass)
    }

    pub fn is_paused(&self) -> bool {
        let until = self.paused_until.load(Ordering::SeqCst);
        until != 0 && crate::store::now_ms() < until
    }

    /// Closes the gate for `duration` and waits until no write is inside.
    pub async fn pause(&self, duration: Duration) {
        let until = crate::store::now_ms() + duration.as_millis() as u64;
        self.paused_until.store(until, Ordering::SeqCst);
        while self.in_flight.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    pub fn resume(&self) {
        self.paused_until.store(0, Ordering::SeqCst);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_of_the_link_is_announced_once() {
        let replication = Replication::new(Arc::new(ReplicationLog::new(1024)));
        let mut changes = replication.link_changes();
        replication.set_upstream(|up| up.synced = true);
        assert!(!changes.has_changed().unwrap(), "the link did not change");
        replication.set_upstream(|up| up.link_up = true);
        assert!(changes.has_changed().unwrap());
        assert!(*changes.borrow_and_update());
        replication.set_upstream(|up| up.link_up = true);
        assert!(!changes.has_changed().unwrap(), "still up: nothing to say");
        replication.set_upstream(|up| up.link_up = false);
        assert!(!*changes.borrow_and_update());
    }
}
