//! Who replicates whom.
//!
//! A replica names its primary in `replica_of`, copies that primary's data
//! over the cluster bus, and owns no slots; the planner shares the slots
//! among primaries only. Roles change at three moments:
//!
//! - **A node joins.** If it was configured to replicate a primary (the
//!   `primary` address in `register`), it becomes a replica of the member at
//!   that client address, or of that member's primary if the member is a
//!   replica itself: replicas of replicas are not a thing here, and a node
//!   configured against a primary that has since failed over follows the
//!   new one. An address no member has is refused; the node retries until
//!   its primary has registered. A node without a configured primary fills
//!   the `replicas` setting: it becomes a replica of the primary that has
//!   the fewest while some have fewer than wanted, and a primary otherwise.
//!   Deciding at admission, in registration order, makes nodes that
//!   register within one tick come out the same every time.
//! - **Its primary is removed** (it left): the replica is reassigned the
//!   same way, to the primary lacking replicas most, or becomes a primary
//!   and is given slots by the next plan.
//! - **A failover** ([`super::failover`]) swaps a primary and a replica.
//!
//! A node the configuration already knows keeps the role the configuration
//! gives it, whatever it was configured with: it may have been promoted or
//! demoted while it was away.

use std::time::Instant;

use keycafe_core::cluster::{NodeId, NodeInfo};
use tracing::info;

use super::Coordinator;
use super::events::ClusterEvent;

impl Coordinator {
    /// The primary a joining node replicates (`None`: it is a primary),
    /// given the client address it was configured to replicate, if any. An
    /// error says why it may not join.
    pub(super) fn role_for_new_node(
        &self,
        primary: Option<&str>,
    ) -> Result<Option<NodeId>, String> {
        match primary {
            Some(addr) => match self.config.nodes.iter().find(|n| n.client_addr == addr) {
                Some(member) => Ok(Some(
                    member
                        .replica_of
                        .clone()
                        .unwrap_or_else(|| member.id.clone()),
                )),
                None => Err(format!("unknown primary {addr}")),
            },
            None => Ok(self.primary_lacking_replicas()),
        }
    }

    /// The primary (not leaving) with the fewest replicas, if it has fewer
    /// than `settings.replicas`; ties go to the first in the node list.
    fn primary_lacking_replicas(&self) -> Option<NodeId> {
        let wanted = self.settings.replicas;
        let mut best: Option<(&NodeInfo, usize)> = None;
        let primaries = self.config.nodes.iter();
        for primary in primaries.filter(|n| !n.is_replica() && !self.leaving.contains(&n.id)) {
            let have = self.config.replicas_of(&primary.id).count();
            if have < wanted && best.is_none_or(|(_, fewest)| have < fewest) {
                best = Some((primary, have));
            }
        }
        best.map(|(primary, _)| primary.id.clone())
    }

    /// `removed` has left the node list: each of its replicas follows the
    /// primary lacking replicas most, or becomes a primary.
    pub(super) fn reassign_replicas_of(&mut self, removed: &str, now: Instant) {
        let orphans: Vec<NodeId> = self
            .config
            .replicas_of(removed)
            .map(|n| n.id.clone())
            .collect();
        for orphan in orphans {
            let primary = self.primary_lacking_replicas();
            info!(node = %orphan, replica_of = ?primary, "the node's primary left; reassigned");
            if let Some(node) = self.config.nodes.iter_mut().find(|n| n.id == orphan) {
                node.replica_of = primary.clone();
            }
            let event = ClusterEvent::Reassigned {
                node: orphan,
                replica_of: primary,
            };
            self.events.record(now, event);
            self.replan = true;
        }
    }
}
