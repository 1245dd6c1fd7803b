//! The coordinator's decisions, as a deterministic state machine.
//!
//! [`Coordinator`] owns the cluster's layout and everything the coordinator
//! knows about its nodes, and changes only in [`Coordinator::step`] (and
//! [`Coordinator::request_leave`]): an [`Event`] and the current time go in,
//! a list of [`Effect`]s comes out. It does no I/O, reads no clock and spawns
//! nothing, so the tests drive it with plain values — no sockets, no sleeps —
//! and the networking around it ([`crate::driver`]) only carries out effects.
//! This is the shape of toydb's Raft node.
//!
//! # Rules
//!
//! - **Persist, then announce.** Every change to the configuration bumps the
//!   epoch and produces [`Effect::Persist`] before the [`Effect::Send`] that
//!   announces it; the driver executes effects in order and stops the
//!   coordinator if a write fails, so no node ever sees a configuration that
//!   a restart could forget.
//! - **One plan at a time.** The planner runs only while no migration is in
//!   flight. A join or leave during a rebalance is recorded (the joiner is in
//!   `nodes` at once, owning nothing) and folded into the next plan, which is
//!   computed from scratch when the in-flight migrations have finished. At
//!   most `max_migrations` migrations are announced at once, so a large
//!   rebalance runs in windows; because the planner is minimal, the windows
//!   together move no more slots than one big plan would.
//! - **Batched results.** `migration_done` messages are collected and applied
//!   together on the next [`Event::Tick`] (the driver ticks every 50 ms), so
//!   a burst of finished slots costs one epoch, one write and one push.
//! - **Liveness is observed, not acted on.** A node silent for longer than
//!   `node_timeout` is reported failing; it keeps its slots (failover is a
//!   later issue), and migrations from it stall until it returns.
//!
//! [`view`] turns the state into the dashboard's and `/api/cluster`'s picture.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use keycafe_core::cluster::{ClusterConfig, Migration, NodeId, NodeInfo};
use keycafe_core::coord::{CoordinatorMessage, NodeMessage, NodeReport};
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::error::Refusal;
use crate::planner;

mod register;
pub mod view;

/// Identifies one node connection; assigned by the listener.
pub type ConnId = u64;

/// What the state machine is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The secret nodes must present in `register`, if any.
    pub secret: Option<String>,
    /// Silence after which a node is shown as failing.
    pub node_timeout: Duration,
    /// Most migrations announced at once.
    pub max_migrations: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            secret: None,
            node_timeout: Duration::from_secs(5),
            max_migrations: 1024,
        }
    }
}

/// Everything that must survive a restart.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Durable {
    /// The newest configuration (nodes, slot map, epoch, migrations in flight).
    pub config: ClusterConfig,
    /// Nodes asked to leave that are still members.
    #[serde(default)]
    pub leaving: Vec<NodeId>,
}

/// Something that happened, fed to [`Coordinator::step`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A message arrived on a node connection.
    Received { conn: ConnId, message: NodeMessage },
    /// A node connection closed.
    Disconnected { conn: ConnId },
    /// Time passed: apply finished migrations, notice silent nodes.
    Tick,
}

/// Something the driver must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Write this state durably; nothing after it may happen until it has.
    Persist(Durable),
    /// Send one message to each of these connections.
    Send {
        to: Vec<ConnId>,
        message: CoordinatorMessage,
    },
    /// Close the connection (after sending what was queued for it).
    Close(ConnId),
}

/// What the coordinator knows about a node's health.
#[derive(Debug, Clone)]
struct Health {
    /// Last register or heartbeat (or the coordinator's start).
    last_seen: Instant,
    /// Latest heartbeat.
    report: Option<NodeReport>,
    /// As of the last tick, for logging transitions.
    failing: bool,
}

/// The coordinator's state machine. See the module documentation.
#[derive(Debug)]
pub struct Coordinator {
    settings: Settings,
    config: ClusterConfig,
    leaving: BTreeSet<NodeId>,
    /// Registered connections and the node each speaks for.
    sessions: BTreeMap<ConnId, NodeId>,
    health: HashMap<NodeId, Health>,
    /// `migration_done` reports waiting for the next tick.
    done: HashSet<Migration>,
}

impl Coordinator {
    /// Starts from scratch, or from the state a previous run persisted. A
    /// restored epoch is bumped by one (and persisted), so the first
    /// configuration this run announces is newer than anything announced
    /// before.
    pub fn new(settings: Settings, restored: Option<Durable>, now: Instant) -> (Self, Vec<Effect>) {
        let restoring = restored.is_some();
        let Durable { config, leaving } = restored.unwrap_or_default();
        let health = config
            .nodes
            .iter()
            .map(|n| {
                (
                    n.id.clone(),
                    Health {
                        last_seen: now,
                        report: None,
                        failing: false,
                    },
                )
            })
            .collect();
        let mut coordinator = Coordinator {
            settings,
            config,
            leaving: leaving.into_iter().collect(),
            sessions: BTreeMap::new(),
            health,
            done: HashSet::new(),
        };
        let mut effects = Vec::new();
        if restoring {
            coordinator.rebalance();
            coordinator.commit(&mut effects);
            info!(
                epoch = coordinator.config.epoch,
                "resumed the persisted cluster configuration"
            );
        }
        (coordinator, effects)
    }

    /// The newest configuration.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// The state to persist.
    pub fn durable(&self) -> Durable {
        Durable {
            config: self.config.clone(),
            leaving: self.leaving.iter().cloned().collect(),
        }
    }

    /// Applies one event.
    pub fn step(&mut self, event: Event, now: Instant) -> Vec<Effect> {
        let mut effects = Vec::new();
        match event {
            Event::Received { conn, message } => self.received(conn, message, now, &mut effects),
            Event::Disconnected { conn } => {
                if let Some(node) = self.sessions.remove(&conn) {
                    debug!(%node, conn, "node disconnected");
                }
            }
            Event::Tick => self.tick(now, &mut effects),
        }
        effects
    }

    /// Asks `node` to leave: its slots are planned away, and once it owns
    /// nothing it is removed. Refused for an unknown node and for the last
    /// one (its slots would have nowhere to go). Asking twice is harmless.
    pub fn request_leave(&mut self, node: &str, _now: Instant) -> Result<Vec<Effect>, Refusal> {
        if self.config.node(node).is_none() {
            return Err(Refusal::UnknownNode(node.to_string()));
        }
        if self.leaving.contains(node) {
            return Ok(Vec::new());
        }
        let others = self
            .config
            .nodes
            .iter()
            .filter(|n| n.id != node && !self.leaving.contains(&n.id));
        if others.count() == 0 {
            return Err(Refusal::LastNode(node.to_string()));
        }
        info!(%node, "node asked to leave");
        self.leaving.insert(node.to_string());
        let mut effects = Vec::new();
        if self.rebalance() {
            self.commit(&mut effects);
        } else {
            // Nothing to announce yet (a rebalance is in flight), but the
            // request must survive a restart.
            effects.push(Effect::Persist(self.durable()));
        }
        Ok(effects)
    }

    fn received(
        &mut self,
        conn: ConnId,
        message: NodeMessage,
        now: Instant,
        effects: &mut Vec<Effect>,
    ) {
        if let NodeMessage::Register {
            node,
            epoch,
            secret,
        } = message
        {
            self.register(conn, node, epoch, secret, now, effects);
            return;
        }
        let Some(node) = self.sessions.get(&conn).cloned() else {
            refuse(conn, "register first", effects);
            return;
        };
        match message {
            NodeMessage::Register { .. } => unreachable!("handled above"),
            NodeMessage::Heartbeat(report) => self.heartbeat(&node, report, now, effects),
            NodeMessage::MigrationDone { slot, to } => {
                let migration = Migration {
                    slot,
                    from: node,
                    to,
                };
                if self.config.migration(slot) == Some(&migration) {
                    self.done.insert(migration);
                } else {
                    // Nodes repeat `migration_done` until a configuration
                    // shows the flip, so stale reports are normal.
                    debug!(
                        ?migration,
                        "ignoring migration_done for no current migration"
                    );
                }
            }
            NodeMessage::Leave => {
                if let Err(refusal) = self.request_leave(&node, now).map(|e| effects.extend(e)) {
                    warn!(%node, %refusal, "leave refused");
                    effects.push(Effect::Send {
                        to: vec![conn],
                        message: CoordinatorMessage::Error {
                            message: refusal.to_string(),
                        },
                    });
                }
            }
        }
    }

    fn heartbeat(
        &mut self,
        node: &str,
        report: NodeReport,
        now: Instant,
        effects: &mut Vec<Effect>,
    ) {
        let Some(health) = self.health.get_mut(node) else {
            return; // a node that has left and is still connected
        };
        health.last_seen = now;
        let reported = report.epoch;
        health.report = Some(report);
        if reported > self.config.epoch {
            self.overtake_epoch(node, reported);
            self.commit(effects);
        }
    }

    /// A node holds a newer epoch than ours (our data directory was lost or
    /// replaced): jump past it, or the node would ignore everything we send.
    fn overtake_epoch(&mut self, node: &str, reported: u64) {
        warn!(%node, reported, ours = self.config.epoch, "a node holds a newer epoch; moving past it");
        self.config.epoch = reported;
    }

    fn tick(&mut self, now: Instant, effects: &mut Vec<Effect>) {
        let timeout = self.settings.node_timeout;
        for (node, health) in &mut self.health {
            let failing = now.saturating_duration_since(health.last_seen) > timeout;
            if failing != health.failing {
                health.failing = failing;
                if failing {
                    warn!(%node, "no heartbeat for {timeout:?}: node is failing");
                } else {
                    info!(%node, "node is healthy again");
                }
            }
        }

        let done = std::mem::take(&mut self.done);
        let mut changed = false;
        if !done.is_empty() {
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
            changed = true;
        }
        let rebalanced = self.rebalance();
        if changed || rebalanced {
            self.commit(effects);
        }
    }

    /// Removes leavers that own nothing and, when no migration is in flight,
    /// plans the next window of moves. True if the configuration changed.
    fn rebalance(&mut self) -> bool {
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

    /// Indexes of the nodes that should share the slots.
    fn members(&self) -> Vec<usize> {
        let nodes = self.config.nodes.iter().enumerate();
        nodes
            .filter(|(_, n)| !self.leaving.contains(&n.id))
            .map(|(i, _)| i)
            .collect()
    }

    /// Makes the changed configuration official: a new epoch, persisted,
    /// then pushed to every registered connection.
    fn commit(&mut self, effects: &mut Vec<Effect>) {
        self.config.epoch = self.config.epoch.saturating_add(1);
        effects.push(Effect::Persist(self.durable()));
        let to: Vec<ConnId> = self.sessions.keys().copied().collect();
        if !to.is_empty() {
            effects.push(Effect::Send {
                to,
                message: CoordinatorMessage::Config(self.config.clone()),
            });
        }
        info!(
            epoch = self.config.epoch,
            nodes = self.config.nodes.len(),
            migrations = self.config.migrations.len(),
            "new cluster configuration"
        );
    }

    fn node_index(&self, id: &str) -> Option<usize> {
        self.config.nodes.iter().position(|n| n.id == id)
    }

    fn has_session(&self, id: &str) -> bool {
        self.sessions.values().any(|n| n == id)
    }
}

/// Sends an error and closes: for a peer that broke the rules.
fn refuse(conn: ConnId, message: &str, effects: &mut Vec<Effect>) {
    effects.push(Effect::Send {
        to: vec![conn],
        message: CoordinatorMessage::Error {
            message: message.to_string(),
        },
    });
    effects.push(Effect::Close(conn));
}

/// Checks a persisted (or otherwise untrusted) state against the invariants
/// the coordinator keeps: unique nodes, ranges in order over known owners,
/// migrations of owned slots to other known nodes, leavers that are members.
pub fn validate(state: &Durable) -> Result<(), String> {
    let config = &state.config;
    let mut ids = BTreeSet::new();
    for node in &config.nodes {
        if !ids.insert(node.id.as_str()) {
            return Err(format!("node {} is listed twice", node.id));
        }
    }
    let mut next = 0u32;
    for range in &config.slots {
        if u32::from(range.start) < next
            || range.start > range.end
            || range.end >= keycafe_core::SLOT_COUNT
        {
            return Err(format!(
                "slot range {}-{} is out of order or out of bounds",
                range.start, range.end
            ));
        }
        if !ids.contains(range.owner.as_str()) {
            return Err(format!(
                "slot range {}-{} names unknown node {}",
                range.start, range.end, range.owner
            ));
        }
        next = u32::from(range.end) + 1;
    }
    let map = config.slot_map();
    let mut moving = BTreeSet::new();
    for m in &config.migrations {
        let owner = map.owner(m.slot).map(|i| config.nodes[i].id.as_str());
        if owner != Some(m.from.as_str()) || !ids.contains(m.to.as_str()) || m.from == m.to {
            return Err(format!(
                "migration of slot {} from {} to {} does not fit the slot map",
                m.slot, m.from, m.to
            ));
        }
        if !moving.insert(m.slot) {
            return Err(format!("slot {} migrates twice", m.slot));
        }
    }
    if let Some(stranger) = state.leaving.iter().find(|id| !ids.contains(id.as_str())) {
        return Err(format!("leaving node {stranger} is not a member"));
    }
    Ok(())
}

/// The node list of `config` with `node` in place of the node at `index`.
fn replace_node(config: &mut ClusterConfig, index: usize, node: NodeInfo) {
    let old = std::mem::replace(&mut config.nodes[index], node);
    let new = &config.nodes[index].id;
    for range in &mut config.slots {
        if range.owner == old.id {
            range.owner = new.clone();
        }
    }
    for m in &mut config.migrations {
        if m.from == old.id {
            m.from = new.clone();
        }
        if m.to == old.id {
            m.to = new.clone();
        }
    }
}

#[cfg(test)]
mod tests;
