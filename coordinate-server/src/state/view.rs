//! The cluster as people and scripts see it: the configuration plus what the
//! coordinator observes of each node (health, keys, replication, load) and
//! the recent events. Served as `/api/cluster`, rendered by the dashboard,
//! and exported to Prometheus as `/metrics`.

use std::time::{Duration, Instant};

use keycafe_core::Slot;
use keycafe_core::cluster::{ClusterConfig, NodeId, NodeInfo};
use serde::{Deserialize, Serialize};

use super::Coordinator;
use super::events::{ClusterEvent, FailoverReason};
use crate::planner;

/// A snapshot of the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterView {
    pub epoch: u64,
    /// The configuration last announced (what nodes hold).
    pub config: ClusterConfig,
    /// One entry per node, in configuration order.
    pub nodes: Vec<NodeView>,
    /// Migrations in flight, grouped by source and target.
    pub migrations: Vec<MigrationGroup>,
    /// Moves the planner will announce once the in-flight ones finish.
    pub queued_moves: usize,
    /// Slots with an owner (16384 once the first node has joined).
    pub slots_assigned: usize,
    pub node_timeout_ms: u64,
    /// The most recent events, newest first.
    pub events: Vec<EventView>,
    /// Failovers since the coordinator started, by reason.
    #[serde(default)]
    pub failovers: FailoverCounts,
    /// The coordinator group, as the member answering sees it.
    #[serde(default)]
    pub group: Option<crate::group::view::GroupView>,
}

/// Failovers counted by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailoverCounts {
    pub automatic: u64,
    pub manual: u64,
    pub restarted: u64,
}

impl FailoverCounts {
    pub(super) fn add(&mut self, reason: FailoverReason) {
        let count = match reason {
            FailoverReason::Automatic => &mut self.automatic,
            FailoverReason::Manual => &mut self.manual,
            FailoverReason::Restarted => &mut self.restarted,
        };
        *count = count.saturating_add(1);
    }

    /// Each reason with its count.
    pub fn by_reason(&self) -> [(FailoverReason, u64); 3] {
        [
            (FailoverReason::Automatic, self.automatic),
            (FailoverReason::Manual, self.manual),
            (FailoverReason::Restarted, self.restarted),
        ]
    }
}

/// What a node does for the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// May own slots.
    Primary,
    /// Copies its primary's data; owns nothing.
    Replica,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Replica => "replica",
        }
    }
}

/// One recent event and how long ago it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventView {
    pub ago_ms: u64,
    #[serde(flatten)]
    pub event: ClusterEvent,
}

/// How a node is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    Healthy,
    /// Asked to leave; its slots are being moved away.
    Leaving,
    /// No heartbeat for longer than the node timeout.
    Failing,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Healthy => "healthy",
            NodeState::Leaving => "leaving",
            NodeState::Failing => "failing",
        }
    }
}

/// One node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    pub id: NodeId,
    pub client_addr: String,
    pub bus_addr: String,
    /// `failing` wins over `leaving` (it needs attention first).
    pub state: NodeState,
    pub leaving: bool,
    pub failing: bool,
    /// Has a registered connection to the coordinator right now.
    pub connected: bool,
    pub slots: usize,
    /// Owned slot ranges, inclusive.
    pub ranges: Vec<(Slot, Slot)>,
    /// Keys held, from the latest heartbeat.
    pub keys: Option<u64>,
    /// Epoch of the configuration the node last reported holding.
    pub reported_epoch: Option<u64>,
    /// Milliseconds since the last heartbeat (or registration, or the
    /// coordinator's start, whichever is latest).
    pub last_seen_ms: u64,
    pub role: Role,
    /// The primary of a replica.
    pub replica_of: Option<NodeId>,
    /// Replication offset from the latest heartbeat: produced by a primary,
    /// applied by a replica.
    pub offset: Option<u64>,
    /// For a replica: bytes behind its primary (the primary's offset minus
    /// its own, each from its latest heartbeat).
    pub lag: Option<u64>,
    /// For a replica: its link to its primary is up, per its heartbeat.
    pub link_up: Option<bool>,
    /// For a replica: it holds a complete copy, per its heartbeat.
    pub synced: Option<bool>,
    /// Commands processed since the node started, from its latest
    /// heartbeat (`None` from a node too old to report it).
    #[serde(default)]
    pub commands_processed: Option<u64>,
    /// Commands per second, measured by the coordinator between heartbeats
    /// at least a second apart; `None` until it has two, and while the node
    /// is failing (the last rate would be stale).
    #[serde(default)]
    pub ops_per_sec: Option<f64>,
    /// Bytes of memory the node accounts for, from its latest heartbeat.
    #[serde(default)]
    pub used_memory: Option<u64>,
}

/// Migrations in flight from one node to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationGroup {
    pub from: NodeId,
    pub to: NodeId,
    pub slots: usize,
    /// Keys still to move, as the source last reported.
    pub keys_left: Option<u64>,
    /// The source (or target) is failing: nothing moves until it is back.
    pub stalled: bool,
}

impl Coordinator {
    /// The cluster as of `now`.
    pub fn view(&self, now: Instant) -> ClusterView {
        let config = &self.config;
        let timeout = self.settings.node_timeout;
        let map = config.slot_map();
        let nodes: Vec<NodeView> = config
            .nodes
            .iter()
            .map(|node| self.node_view(node, now))
            .collect();

        let failing = |id: &str| nodes.iter().any(|n| n.id == id && n.failing);
        let mut migrations: Vec<MigrationGroup> = Vec::new();
        for m in &config.migrations {
            let keys_left = self
                .health
                .get(&m.from)
                .and_then(|h| h.report.as_ref())
                .and_then(|r| r.migrating.iter().find(|&&(slot, _)| slot == m.slot))
                .map(|&(_, keys)| keys);
            match migrations
                .iter_mut()
                .find(|g| g.from == m.from && g.to == m.to)
            {
                Some(group) => {
                    group.slots += 1;
                    group.keys_left = sum(group.keys_left, keys_left);
                }
                None => migrations.push(MigrationGroup {
                    from: m.from.clone(),
                    to: m.to.clone(),
                    slots: 1,
                    keys_left,
                    stalled: failing(&m.from) || failing(&m.to),
                }),
            }
        }

        // What the planner will want once the in-flight moves are done.
        let mut projected = map.clone();
        for m in &config.migrations {
            projected.set_owner(m.slot, self.node_index(&m.to));
        }
        let queued_moves = planner::plan(&projected, &self.members()).moves.len();

        ClusterView {
            epoch: config.epoch,
            config: config.clone(),
            nodes,
            migrations,
            queued_moves,
            slots_assigned: map.assigned(),
            node_timeout_ms: millis(timeout),
            events: self
                .events
                .newest_first()
                .map(|(at, event)| EventView {
                    ago_ms: millis(now.saturating_duration_since(*at)),
                    event: event.clone(),
                })
                .collect(),
            failovers: self.failovers,
            group: None,
        }
    }

    fn node_view(&self, node: &NodeInfo, now: Instant) -> NodeView {
        let timeout = self.settings.node_timeout;
        let health = self.health.get(&node.id);
        let age = health.map_or(timeout, |h| now.saturating_duration_since(h.last_seen));
        let failing = age > timeout;
        let leaving = self.leaving.contains(&node.id);
        let report = health.and_then(|h| h.report.as_ref());
        let ranges: Vec<(Slot, Slot)> = self
            .config
            .slots
            .iter()
            .filter(|r| r.owner == node.id)
            .map(|r| (r.start, r.end))
            .collect();
        let replication = report.map(|r| &r.replication);
        let offset = replication.map(|r| r.offset);
        let for_replica = |value: Option<bool>| value.filter(|_| node.is_replica());
        let lag = node
            .replica_of
            .as_deref()
            .and_then(|primary| self.replication(primary))
            .zip(offset)
            .map(|(primary, own)| primary.offset.saturating_sub(own));
        NodeView {
            id: node.id.clone(),
            client_addr: node.client_addr.clone(),
            bus_addr: node.bus_addr.clone(),
            state: match (failing, leaving) {
                (true, _) => NodeState::Failing,
                (false, true) => NodeState::Leaving,
                (false, false) => NodeState::Healthy,
            },
            leaving,
            failing,
            connected: self.has_session(&node.id),
            slots: ranges.iter().map(|&(s, e)| usize::from(e - s) + 1).sum(),
            ranges,
            keys: report.map(|r| r.keys),
            reported_epoch: report.map(|r| r.epoch),
            last_seen_ms: millis(age),
            role: if node.is_replica() {
                Role::Replica
            } else {
                Role::Primary
            },
            replica_of: node.replica_of.clone(),
            offset,
            lag,
            link_up: for_replica(replication.map(|r| r.link_up)),
            synced: for_replica(replication.map(|r| r.synced)),
            commands_processed: report.and_then(|r| r.commands_processed),
            ops_per_sec: health.and_then(|h| h.ops.per_sec()).filter(|_| !failing),
            used_memory: report.and_then(|r| r.used_memory),
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn sum(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.saturating_add(b)),
        (a, b) => a.or(b),
    }
}
