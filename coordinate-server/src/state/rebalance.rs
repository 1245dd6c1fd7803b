//! Time and rebalancing: what happens on every tick, and how the next
//! window of migrations is planned.
//!
//! A tick notices nodes that have gone silent (or come back), applies every
//! `migration_done` that arrived since the last tick in one go, fails over
//! silent primaries whose replicas agree ([`super::failover`]), and then, if
//! anything changed membership or ownership since the last plan,
//! [`Coordinator::rebalance`]s: leavers that own nothing are removed (their
//! replicas reassigned), and if nothing is in flight the planner is asked
//! for the next window of moves. All of it is one new epoch at most.

use std::time::Instant;

use keycafe_core::cluster::{Migration, NodeId};
use tracing::{debug, info, warn};

use super::events::ClusterEvent;
use super::{Coordinator, Effect};
use crate::planner;

impl Coordinator {
    pub(super) fn tick(&mut self, now: Instant, effects: &mut Vec<Effect>) {
        self.observe_health(now);
        let applied = self.apply_done();
        let handed_over = self.complete_manual_failovers(now);
        let failed_over = self.fail_over_silent_primaries(now) || handed_over;
        let rebalanced = std::mem::take(&mut self.replan) && self.rebalance(now);
        if applied || failed_over || rebalanced {
            self.commit(effects);
            if applied && self.config.migrations.is_empty() {
                info!(epoch = self.config.epoch, "rebalance complete");
            }
        }
    }

    /// Logs and records nodes that went silent or came back, in node-list
    /// order.
    fn observe_health(&mut self, now: Instant) {
        let timeout = self.settings.node_timeout;
        for node in &self.config.nodes {
            let Some(health) = self.health.get_mut(&node.id) else {
                continue;
            };
            let failing = now.saturating_duration_since(health.last_seen) > timeout;
            if failing == health.failing {
                continue;
            }
            health.failing = failing;
            let node = node.id.clone();
            let event = if failing {
                warn!(%node, "no heartbeat for {timeout:?}: node is failing");
                ClusterEvent::Failing { node }
            } else {
                info!(%node, "node is healthy again");
                ClusterEvent::Healthy { node }
            };
            self.events.record(now, event);
        }
    }

    /// Applies the `migration_done` reports since the last tick. True if
    /// there were any.
    fn apply_done(&mut self) -> bool {
        let done = std::mem::take(&mut self.done);
        if done.is_empty() {
            return false;
        }
        let mut map = self.config.slot_map();
        for migration in &done {
            let Some(to) = self.config.nodes.iter().position(|n| n.id == migration.to) else {
                continue;
            };
            map.set_owner(migration.slot, Some(to));
        }
        self.config.slots = map.to_ranges(&self.config.nodes);
        self.config.migrations.retain(|m| !done.contains(m));
        debug!(
            slots = done.len(),
            left = self.config.migrations.len(),
            "migrations done"
        );
        self.replan = true;
        true
    }

    /// Removes leavers that own nothing and, when no migration is in flight,
    /// plans the next window of moves. True if the configuration changed.
    fn rebalance(&mut self, now: Instant) -> bool {
        let mut changed = false;
        let gone: Vec<NodeId> = self
            .leaving
            .iter()
            .filter(|id| {
                !self.config.slots.iter().any(|r| &r.owner == *id)
                    && !self
                        .config
                        .migrations
                        .iter()
                        .any(|m| &m.from == *id || &m.to == *id)
            })
            .cloned()
            .collect();
        for id in gone {
            info!(node = %id, "node has left the cluster");
            self.config.nodes.retain(|n| n.id != id);
            self.leaving.remove(&id);
            self.health.remove(&id);
            let left = ClusterEvent::Left { node: id.clone() };
            self.events.record(now, left);
            self.reassign_replicas_of(&id, now);
            changed = true;
        }
        if !self.config.migrations.is_empty() {
            return changed;
        }

        let mut map = self.config.slot_map();
        let members = self.members();
        let plan = planner::plan(&map, &members);
        if plan.is_empty() {
            return changed;
        }
        for &(slot, to) in &plan.assign {
            map.set_owner(slot, Some(to));
        }
        self.config.slots = map.to_ranges(&self.config.nodes);
        let node_id = |index: usize| self.config.nodes[index].id.clone();
        self.config.migrations = plan
            .moves
            .iter()
            .take(self.settings.max_migrations)
            .map(|&(slot, from, to)| Migration {
                slot,
                from: node_id(from),
                to: node_id(to),
            })
            .collect();
        info!(
            assigned = plan.assign.len(),
            migrating = self.config.migrations.len(),
            planned = plan.moves.len(),
            "planned a rebalance"
        );
        true
    }

    /// Indexes of the nodes that should share the slots: the primaries
    /// that are not leaving.
    pub(super) fn members(&self) -> Vec<usize> {
        let nodes = self.config.nodes.iter().enumerate();
        nodes
            .filter(|(_, n)| !n.is_replica() && !self.leaving.contains(&n.id))
            .map(|(i, _)| i)
            .collect()
    }
}
