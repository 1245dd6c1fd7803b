//! Recent cluster events: the short story of what happened, for people.
//!
//! The log is the full record; this is the part an operator wants on the
//! dashboard after the fact: which nodes joined, left, went silent or came
//! back, and above all which failovers happened, why, and how far each
//! replica had got. The last [`EVENTS_KEPT`] are kept, in memory only: they
//! explain the configuration, they are not part of it, and a restarted
//! coordinator starts with an empty list.
//!
//! The state machine reads no clock, so an event carries the `Instant` that
//! [`Coordinator::step`](super::Coordinator::step) was given; the
//! [`view`](super::view) turns it into an age.

use std::collections::VecDeque;
use std::time::Instant;

use keycafe_core::cluster::NodeId;
use serde::{Deserialize, Serialize};

/// Events kept; older ones are dropped.
pub const EVENTS_KEPT: usize = 50;

/// Something that happened to the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClusterEvent {
    /// A new node joined: a primary (`replica_of` is `None`) or a replica.
    Joined {
        node: NodeId,
        replica_of: Option<NodeId>,
    },
    /// A new node took the address, and with it the place, of a
    /// disconnected one (a restarted process).
    Replaced { old: NodeId, new: NodeId },
    /// A node that was asked to leave owns nothing any more and is gone.
    Left { node: NodeId },
    /// A replica whose primary was removed follows another primary, or
    /// (`replica_of` is `None`) becomes a primary itself.
    Reassigned {
        node: NodeId,
        replica_of: Option<NodeId>,
    },
    /// No heartbeat for longer than the node timeout.
    Failing { node: NodeId },
    /// A failing node was heard from again.
    Healthy { node: NodeId },
    /// `new_primary`, a replica of `old_primary`, took over its slots.
    /// Offsets are from each node's latest heartbeat.
    Failover {
        reason: FailoverReason,
        old_primary: NodeId,
        new_primary: NodeId,
        old_offset: Option<u64>,
        new_offset: Option<u64>,
    },
}

/// Why a replica was promoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailoverReason {
    /// The primary went silent and its replicas lost it too.
    Automatic,
    /// The replica asked (`failover`), after a handover with its primary.
    Manual,
    /// The primary's process restarted empty under a new id.
    Restarted,
}

impl FailoverReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailoverReason::Automatic => "automatic",
            FailoverReason::Manual => "manual",
            FailoverReason::Restarted => "restarted",
        }
    }
}

/// The last [`EVENTS_KEPT`] events with the time each happened, oldest
/// first.
#[derive(Debug, Default)]
pub(super) struct EventLog {
    recent: VecDeque<(Instant, ClusterEvent)>,
}

impl EventLog {
    pub(super) fn record(&mut self, at: Instant, event: ClusterEvent) {
        if self.recent.len() == EVENTS_KEPT {
            self.recent.pop_front();
        }
        self.recent.push_back((at, event));
    }

    /// Newest first.
    pub(super) fn newest_first(&self) -> impl Iterator<Item = &(Instant, ClusterEvent)> {
        self.recent.iter().rev()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn only_the_newest_are_kept_newest_first() {
        let start = Instant::now();
        let mut log = EventLog::default();
        for n in 0..EVENTS_KEPT + 5 {
            let at = start + Duration::from_secs(n as u64);
            log.record(
                at,
                ClusterEvent::Left {
                    node: n.to_string(),
                },
            );
        }
        let nodes: Vec<String> = log
            .newest_first()
            .map(|(_, e)| match e {
                ClusterEvent::Left { node } => node.clone(),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(nodes.len(), EVENTS_KEPT);
        assert_eq!(nodes[0], (EVENTS_KEPT + 4).to_string());
        assert_eq!(nodes[EVENTS_KEPT - 1], "5");
    }

    #[test]
    fn json_is_tagged_by_type() {
        let event = ClusterEvent::Failover {
            reason: FailoverReason::Automatic,
            old_primary: "a".into(),
            new_primary: "b".into(),
            old_offset: Some(10),
            new_offset: Some(9),
        };
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(
            json,
            r#"{"type":"failover","reason":"automatic","old_primary":"a","new_primary":"b","old_offset":10,"new_offset":9}"#
        );
    }
}
