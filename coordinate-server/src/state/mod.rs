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
//! - **Plan on the tick, one plan at a time.** Joins, leaves and finished
//!   migrations only mark the layout for re-planning; the planner runs on the
//!   next [`Event::Tick`] (the driver ticks every 50 ms), and only while no
//!   migration is in flight. A joiner is in `nodes` at once, owning nothing;
//!   a join or leave during a rebalance is folded into the next plan, which
//!   is computed from scratch. Deferring to the tick means that nodes
//!   registering together are planned together (an empty cluster whose three
//!   nodes register within one tick is split three ways without a single
//!   migration), and a node that registers and leaves at once is never given
//!   slots.
//! - **Windows.** At most `max_migrations` migrations are announced at once,
//!   so a large rebalance runs in windows, each planned afresh; because the
//!   planner is minimal, the windows together move no more slots than one
//!   big plan would, and a join during a rebalance waits for one window at
//!   most.
//! - **Batched results.** `migration_done` messages are collected and applied
//!   together on the next tick, so a burst of finished slots costs one
//!   epoch, one write and one push.
//! - **Replicas own nothing.** A node is a primary or a replica of one
//!   primary (`replica_of` in the configuration); only primaries that are
//!   not leaving are planned slots. Who replicates whom is decided when a
//!   node joins and when its primary is removed (`replicas.rs`); a node the
//!   configuration knows keeps the role it gives it.
//! - **Liveness is observed; failover needs a second opinion.** A node
//!   silent for longer than `node_timeout` is reported failing. A failing
//!   primary keeps its slots, and migrations from it stall until it returns,
//!   unless it has a synced replica and every replica still reporting says
//!   it has lost that primary too: then, on the tick, the replica with the
//!   highest replication offset is promoted in one new epoch, taking the
//!   slots and the migrations, and the old primary becomes its replica
//!   (`failover.rs`). A replica may also ask for the promotion itself
//!   (`failover`, after a manual handover), and is promoted at once.
//!
//! [`view`] turns the state into the dashboard's and `/api/cluster`'s
//! picture, with the latest [`events`] (kept in memory only).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use keycafe_core::cluster::{ClusterConfig, Migration, NodeId};
use keycafe_core::coord::{CoordinatorMessage, NodeMessage, NodeReport, ReplicationReport};
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::error::Refusal;
use events::EventLog;
use load::CommandRate;
use register::Registration;
use view::FailoverCounts;

pub mod events;
mod failover;
mod load;
mod rebalance;
mod register;
mod replicas;
mod validate;
pub mod view;

pub use validate::validate;

/// Identifies one node connection; assigned by the listener.
pub type ConnId = u64;

/// What the state machine is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Silence after which a node is failing (and a primary may be failed
    /// over).
    pub node_timeout: Duration,
    /// Most migrations announced at once.
    pub max_migrations: usize,
    /// Replicas wanted per primary: a node that registers without a
    /// configured primary becomes a replica while some primary has fewer.
    pub replicas: usize,
}

impl Settings {
    /// How long a primary may acknowledge writes after a heartbeat: half the
    /// node timeout, so that a lease has run out well before a silent
    /// primary is failed over.
    pub fn lease(&self) -> Duration {
        self.node_timeout / 2
    }

    /// After a lease's recorded end, how much longer the coordinator waits
    /// before it treats the lease as over: room for a node clock that runs
    /// up to 20% slower than ours.
    pub fn lease_allowance(&self) -> Duration {
        self.lease() / 4
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            node_timeout: Duration::from_secs(5),
            max_migrations: 1024,
            replicas: 0,
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
    /// Time passed: apply finished migrations, notice silent nodes, fail
    /// over dead primaries.
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
    /// As of the last tick, for logging and recording transitions.
    failing: bool,
    /// The end of the last lease granted to this node, on our clock; no
    /// replica takes its slots before then (plus the allowance).
    lease_until: Option<Instant>,
    /// Commands per second, from the counts in its heartbeats.
    ops: CommandRate,
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
    /// Manual failovers waiting for the old primary's lease to run out:
    /// primary → the replica that asked.
    manual: BTreeMap<NodeId, NodeId>,
    /// Membership or ownership changed: plan on the next tick.
    replan: bool,
    /// Recent joins, leaves, health changes and failovers (not persisted).
    events: EventLog,
    /// Failovers since this coordinator started (not persisted: a counter
    /// that restarts at zero, as monitoring expects of a process).
    failovers: FailoverCounts,
}

impl Coordinator {
    /// Starts from scratch, or from the state a previous run persisted. A
    /// restored epoch is bumped by one (and persisted), so the first
    /// configuration this run announces is newer than anything announced
    /// before.
    pub fn new(settings: Settings, restored: Option<Durable>, now: Instant) -> (Self, Vec<Effect>) {
        let restoring = restored.is_some();
        let mut coordinator = Coordinator::observer(settings, restored, now);
        coordinator.replan = restoring;
        let mut effects = Vec::new();
        if restoring {
            coordinator.commit(&mut effects);
            info!(
                epoch = coordinator.config.epoch,
                "resumed the persisted cluster configuration"
            );
        }
        (coordinator, effects)
    }

    /// A state machine holding `state` that decides nothing: what a member
    /// of a coordinator group that does not lead shows of the cluster.
    pub fn observer(settings: Settings, state: Option<Durable>, now: Instant) -> Coordinator {
        let Durable { config, leaving } = state.unwrap_or_default();
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
                        // A previous run (or the group's previous leader)
                        // may have granted a lease just before it stopped;
                        // a leader's leases are confirmed by the group
                        // before they go out, so none outlives this.
                        lease_until: Some(now + settings.lease()),
                        ops: CommandRate::default(),
                    },
                )
            })
            .collect();
        Coordinator {
            settings,
            config,
            leaving: leaving.into_iter().collect(),
            sessions: BTreeMap::new(),
            health,
            done: HashSet::new(),
            manual: BTreeMap::new(),
            replan: false,
            events: EventLog::default(),
            failovers: FailoverCounts::default(),
        }
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

    /// Asks `node` to leave: its slots are planned away (from the next tick),
    /// and once it owns nothing (a replica at once) it is removed. Refused
    /// for an unknown node and for the last primary (its slots would have
    /// nowhere to go). Asking twice is harmless. The request is persisted
    /// before this returns effects, so it survives a restart.
    pub fn request_leave(&mut self, node: &str, _now: Instant) -> Result<Vec<Effect>, Refusal> {
        let Some(info) = self.config.node(node) else {
            return Err(Refusal::UnknownNode(node.to_string()));
        };
        if self.leaving.contains(node) {
            return Ok(Vec::new());
        }
        let other_primaries = self
            .config
            .nodes
            .iter()
            .filter(|n| n.id != node && !n.is_replica() && !self.leaving.contains(&n.id));
        if !info.is_replica() && other_primaries.count() == 0 {
            return Err(Refusal::LastNode(node.to_string()));
        }
        info!(%node, "node asked to leave");
        self.leaving.insert(node.to_string());
        self.replan = true;
        // Not part of the configuration (no new epoch), but must survive a
        // restart.
        Ok(vec![Effect::Persist(self.durable())])
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
            primary,
            ..
        } = message
        {
            let registration = Registration {
                node,
                epoch,
                primary,
            };
            self.register(conn, registration, now, effects);
            return;
        }
        let Some(node) = self.sessions.get(&conn).cloned() else {
            refuse(conn, "register first", effects);
            return;
        };
        match message {
            NodeMessage::Register { .. } => unreachable!("handled above"),
            // The connection task answers hello itself, before registering.
            NodeMessage::Hello { .. } => refuse(conn, "hello comes first, once", effects),
            NodeMessage::Heartbeat(report) => self.heartbeat(conn, &node, report, now, effects),
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
            NodeMessage::Failover { primary } => {
                self.manual_failover(conn, &node, &primary, now, effects);
            }
            NodeMessage::Leave => {
                if let Err(refusal) = self.request_leave(&node, now).map(|e| effects.extend(e)) {
                    warn!(%node, %refusal, "leave refused");
                    decline(conn, &refusal.to_string(), effects);
                }
            }
        }
    }

    /// Records a heartbeat and answers it with a lease: of
    /// [`Settings::lease`] for a primary, of nothing (0 ms) for a replica or
    /// a primary handing over, so that every node hears from the
    /// coordinator as often as it heartbeats and can tell a silent link.
    fn heartbeat(
        &mut self,
        conn: ConnId,
        node: &str,
        report: NodeReport,
        now: Instant,
        effects: &mut Vec<Effect>,
    ) {
        // A primary handing over to a replica gets no new lease, so that
        // the one it has runs out.
        let is_primary = self.config.node(node).is_some_and(|n| !n.is_replica())
            && !self.manual.contains_key(node);
        let lease = match is_primary {
            true => self.settings.lease(),
            false => Duration::ZERO,
        };
        let Some(health) = self.health.get_mut(node) else {
            return; // a node that has left and is still connected
        };
        health.last_seen = now;
        let (seq, reported) = (report.seq, report.epoch);
        health.ops.observe(now, report.commands_processed);
        health.report = Some(report);
        if is_primary {
            health.lease_until = Some(now + lease);
        }
        effects.push(Effect::Send {
            to: vec![conn],
            message: CoordinatorMessage::Lease {
                seq,
                ms: u64::try_from(lease.as_millis()).unwrap_or(u64::MAX),
            },
        });
        if reported > self.config.epoch {
            // Only the coordinator makes epochs (see `register`).
            warn!(%node, reported, ours = self.config.epoch, "a node reports a newer epoch than ours; ignored");
        }
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
        // Debug, not info: a rebalance makes one per tick. The events that
        // matter to an operator (joins, plans, completion) log at info.
        debug!(
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

    /// Heard from within `node_timeout` (a node never heard from is not).
    fn is_healthy(&self, id: &str, now: Instant) -> bool {
        self.health.get(id).is_some_and(|h| {
            now.saturating_duration_since(h.last_seen) <= self.settings.node_timeout
        })
    }

    /// True once every lease granted to `id` has certainly run out, on
    /// the node's clock too.
    fn lease_over(&self, id: &str, now: Instant) -> bool {
        let allowance = self.settings.lease_allowance();
        self.health
            .get(id)
            .and_then(|h| h.lease_until)
            .is_none_or(|until| now >= until + allowance)
    }

    /// The replication part of the node's latest heartbeat.
    fn replication(&self, id: &str) -> Option<&ReplicationReport> {
        let report = self.health.get(id)?.report.as_ref()?;
        Some(&report.replication)
    }
}

/// Answers with an error and keeps the connection: for a request that was
/// understood and declined.
fn decline(conn: ConnId, message: &str, effects: &mut Vec<Effect>) {
    effects.push(Effect::Send {
        to: vec![conn],
        message: CoordinatorMessage::Error {
            message: message.to_string(),
        },
    });
}

/// Sends an error and closes: for a peer that broke the rules.
fn refuse(conn: ConnId, message: &str, effects: &mut Vec<Effect>) {
    decline(conn, message, effects);
    effects.push(Effect::Close(conn));
}

#[cfg(test)]
mod tests;
