//! Failover: a replica takes over its primary's slots.
//!
//! # When
//!
//! On every tick, a primary `P` is failed over when
//!
//! 1. `P` has been silent for longer than `node_timeout` (it is failing),
//! 2. every lease granted to `P` has certainly run out: its recorded end plus
//!    an allowance for clocks that run at different rates has passed (see
//!    `keycafe-server/src/cluster/lease.rs`; with the lease at half the node
//!    timeout, the silence of rule 1 normally covers it),
//! 3. it has a *candidate*: a replica that is healthy (heard from within
//!    `node_timeout`) whose latest heartbeat says it is `synced` and
//!    `following` `P`, and
//! 4. every healthy replica of `P` agrees that `P` is gone: its latest
//!    heartbeat says its link is down, or that it no longer follows `P`.
//!
//! The coordinator sees `P` only through one TCP connection. A primary that
//! lost that connection but still serves clients and streams to its
//! replicas is not dead. Its lease stops its writes before any promotion,
//! but promoting its replica would still take its slots away from a working
//! node and lose what it had not yet streamed. The replicas' links to `P` are a second
//! opinion from other machines; one replica still streaming from `P` is
//! enough to wait. A replica that never finished a full copy holds only part
//! of the data, so it is never promoted.
//!
//! # Who, and what everyone becomes
//!
//! The candidate with the highest replication `offset` has the most of
//! `P`'s writes (ties go to the first in the node list). Writes `P`
//! acknowledged that no replica received are lost, as in Redis; `WAIT` is
//! how a client makes sure a write is on replicas. In one new epoch:
//!
//! - the promoted node becomes a primary and owns every slot `P` owned;
//!   migrations from or to `P` continue from or to it (a failover does not
//!   wait for a rebalance);
//! - `P`'s other replicas follow the promoted node;
//! - `P` stays in the node list as a replica of the promoted node: if it
//!   comes back with the same id it follows the new primary instead of
//!   competing with it, and a new process at its address inherits that role
//!   (see [`super::register`]).
//!
//! # Other ways in
//!
//! - **Manual** (`failover` from a replica, as Redis's `CLUSTER FAILOVER`,
//!   honoured only from a replica whose latest heartbeat says it is synced
//!   and following that primary, on its own authenticated connection):
//!   the replica and its primary have handed over (the primary stopped
//!   writing, the replica caught up), so `P`'s health does not matter. Its
//!   lease does: `P`'s pause may end before it hears of the promotion (and
//!   with `FORCE` nothing paused it at all), so the coordinator stops
//!   renewing `P`'s lease and promotes on the first tick after it has run
//!   out (at once if `P` holds none). A request whose replica has
//!   meanwhile become unhealthy or stopped following `P` is dropped, and
//!   `P`'s leases resume.
//! - **Restarted**: a new id at the address of a disconnected primary is
//!   that primary's process restarted with empty memory. If a candidate has
//!   `P`'s data it is promoted rather than handing the slots to the empty
//!   newcomer, which becomes its replica instead.

use std::time::Instant;

use keycafe_core::cluster::{ClusterConfig, Migration, NodeId};
use tracing::{info, warn};

use super::events::{ClusterEvent, FailoverReason};
use super::{ConnId, Coordinator, Effect, decline};

impl Coordinator {
    /// Promotes a replica of every failing primary that qualifies (see the
    /// module documentation). True if any was failed over.
    pub(super) fn fail_over_silent_primaries(&mut self, now: Instant) -> bool {
        let due: Vec<(NodeId, NodeId)> = self
            .config
            .nodes
            .iter()
            .filter(|n| !n.is_replica() && !self.is_healthy(&n.id, now))
            .filter(|n| self.lease_over(&n.id, now))
            .filter(|n| self.replicas_lost(&n.id, now))
            .filter_map(|n| Some((n.id.clone(), self.candidate(&n.id, now)?)))
            .collect();
        for (primary, replica) in &due {
            self.promote(primary, replica, FailoverReason::Automatic, now);
        }
        !due.is_empty()
    }

    /// The replica of `primary` to promote: healthy, not leaving, synced and
    /// following `primary`, with the highest offset (the first such in the
    /// node list on a tie).
    pub(super) fn candidate(&self, primary: &str, now: Instant) -> Option<NodeId> {
        let mut best: Option<(&NodeId, u64)> = None;
        for replica in self.config.replicas_of(primary) {
            if !self.is_healthy(&replica.id, now) || self.leaving.contains(&replica.id) {
                continue;
            }
            let Some(report) = self.replication(&replica.id) else {
                continue;
            };
            let ready = report.synced && report.following.as_deref() == Some(primary);
            if ready && best.is_none_or(|(_, offset)| report.offset > offset) {
                best = Some((&replica.id, report.offset));
            }
        }
        best.map(|(id, _)| id.clone())
    }

    /// True if every healthy replica of `primary` says it lost `primary`:
    /// its link is down, or it follows someone else. A replica that has
    /// not reported yet has not said so.
    fn replicas_lost(&self, primary: &str, now: Instant) -> bool {
        self.config
            .replicas_of(primary)
            .filter(|r| self.is_healthy(&r.id, now))
            .all(|r| {
                self.replication(&r.id).is_some_and(|report| {
                    !report.link_up || report.following.as_deref() != Some(primary)
                })
            })
    }

    /// `failover` from the node of connection `conn`: promotes it at once if
    /// it is a replica of `primary`; otherwise answers an error and keeps
    /// the connection.
    pub(super) fn manual_failover(
        &mut self,
        conn: ConnId,
        node: &str,
        primary: &str,
        now: Instant,
        effects: &mut Vec<Effect>,
    ) {
        let replicates = self
            .config
            .node(node)
            .is_some_and(|n| n.replica_of.as_deref() == Some(primary));
        if !replicates {
            warn!(%node, %primary, "failover refused: not a replica of that primary");
            decline(
                conn,
                &format!("failover refused: {node} is not a replica of {primary}"),
                effects,
            );
            return;
        }
        // Only a replica with a whole copy of the primary's data may take
        // its slots: one that is still copying (or follows someone else)
        // would lose what it lacks.
        let synced = self
            .replication(node)
            .is_some_and(|r| r.synced && r.following.as_deref() == Some(primary));
        if !synced {
            warn!(%node, %primary, "failover refused: the replica has not reported a complete copy");
            decline(
                conn,
                &format!("failover refused: {node} has not reported a complete copy of {primary}"),
                effects,
            );
            return;
        }
        if self.lease_over(primary, now) {
            self.promote(primary, node, FailoverReason::Manual, now);
            self.commit(effects);
        } else {
            info!(%node, %primary, "failover requested; promoting when the primary's lease has run out");
            self.manual.insert(primary.to_string(), node.to_string());
        }
    }

    /// Promotes the replicas of manual failovers whose primary's lease has
    /// run out; drops requests that no longer hold. True if any was
    /// promoted.
    pub(super) fn complete_manual_failovers(&mut self, now: Instant) -> bool {
        let mut promoted = false;
        for (primary, replica) in std::mem::take(&mut self.manual) {
            let still_replica = self
                .config
                .node(&replica)
                .is_some_and(|n| n.replica_of.as_deref() == Some(primary.as_str()));
            if !still_replica || !self.is_healthy(&replica, now) {
                warn!(%replica, %primary, "failover request dropped: the replica is gone or follows another primary");
            } else if self.lease_over(&primary, now) {
                self.promote(&primary, &replica, FailoverReason::Manual, now);
                promoted = true;
            } else {
                self.manual.insert(primary, replica);
            }
        }
        promoted
    }

    /// Makes `replica` the primary in place of `primary`: it takes the
    /// slots and the migrations, and `primary` and its other replicas
    /// follow it. The caller commits.
    pub(super) fn promote(
        &mut self,
        primary: &str,
        replica: &str,
        reason: FailoverReason,
        now: Instant,
    ) {
        let old_offset = self.replication(primary).map(|r| r.offset);
        let new_offset = self.replication(replica).map(|r| r.offset);
        warn!(
            reason = reason.as_str(), old = %primary, new = %replica, ?old_offset, ?new_offset,
            "failover: promoting a replica in place of its primary"
        );
        for node in &mut self.config.nodes {
            if node.id == replica {
                node.replica_of = None;
            } else if node.id == primary || node.replica_of.as_deref() == Some(primary) {
                node.replica_of = Some(replica.to_string());
            }
        }
        hand_over(&mut self.config, primary, replica);
        // Results that arrived for `primary`'s migrations since the last
        // tick still hold: the keys did move.
        let done = std::mem::take(&mut self.done);
        self.done = done
            .into_iter()
            .filter_map(|m| repoint(m, primary, replica))
            .collect();
        self.replan = true;
        self.failovers.add(reason);
        let event = ClusterEvent::Failover {
            reason,
            old_primary: primary.to_string(),
            new_primary: replica.to_string(),
            old_offset,
            new_offset,
        };
        self.events.record(now, event);
    }
}

/// Gives everything `from` owns, and its part in every migration, to `to`.
/// A migration that would go from `to` to itself is dropped.
pub(super) fn hand_over(config: &mut ClusterConfig, from: &str, to: &str) {
    for range in &mut config.slots {
        if range.owner == from {
            range.owner = to.to_string();
        }
    }
    let migrations = std::mem::take(&mut config.migrations);
    config.migrations = migrations
        .into_iter()
        .filter_map(|m| repoint(m, from, to))
        .collect();
}

/// `migration` with `from` replaced by `to`; `None` if it would then move a
/// slot from a node to itself.
fn repoint(mut migration: Migration, from: &str, to: &str) -> Option<Migration> {
    if migration.from == from {
        migration.from = to.to_string();
    }
    if migration.to == from {
        migration.to = to.to_string();
    }
    (migration.from != migration.to).then_some(migration)
}
