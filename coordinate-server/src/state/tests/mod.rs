//! The state machine, driven with plain values: no sockets, no sleeps.
//!
//! [`Harness`] checks the invariants of every batch of effects; the tests
//! are in [`rebalance`] (planning, migrations, time), [`membership`]
//! (registration, leaving, refusals), [`replicas`] (roles), [`failover`],
//! [`restart`] (a coordinator or nodes coming back with their state) and
//! [`metrics`] (what `/metrics` says of a known state).

use std::time::{Duration, Instant};

use keycafe_core::SLOT_COUNT;
use keycafe_core::cluster::{ClusterConfig, NodeInfo};
use keycafe_core::coord::{CoordinatorMessage, NodeMessage, NodeReport, ReplicationReport};

use super::view::NodeState;
use super::*;

const ALL: usize = SLOT_COUNT as usize;

fn node(n: u16) -> NodeInfo {
    NodeInfo {
        id: format!("{n:040x}"),
        client_addr: format!("127.0.0.1:{}", 7000 + n),
        bus_addr: format!("127.0.0.1:{}", 17000 + n),
        replica_of: None,
    }
}

/// A coordinator, a clock, and checks on every batch of effects.
struct Harness {
    coordinator: Coordinator,
    now: Instant,
    last_epoch: u64,
    /// The configuration last persisted.
    persisted: Option<ClusterConfig>,
    /// Every configuration sent, per connection.
    received: BTreeMap<ConnId, Vec<ClusterConfig>>,
    closed: Vec<ConnId>,
    errors: Vec<(ConnId, String)>,
    /// The end of the last lease granted to each node, and how many.
    leases: BTreeMap<NodeId, (Instant, usize)>,
}

impl Harness {
    fn new(settings: Settings) -> Harness {
        Harness::restore(settings, None)
    }

    fn restore(settings: Settings, state: Option<Durable>) -> Harness {
        let now = Instant::now();
        let (coordinator, effects) = Coordinator::new(settings, state, now);
        let mut harness = Harness {
            coordinator,
            now,
            last_epoch: 0,
            persisted: None,
            received: BTreeMap::new(),
            closed: Vec::new(),
            errors: Vec::new(),
            leases: BTreeMap::new(),
        };
        harness.check(effects);
        harness
    }

    fn config(&self) -> &ClusterConfig {
        self.coordinator.config()
    }

    fn step(&mut self, event: Event) -> Vec<Effect> {
        let effects = self.coordinator.step(event, self.now);
        self.check(effects.clone());
        effects
    }

    fn send(&mut self, conn: ConnId, message: NodeMessage) -> Vec<Effect> {
        self.step(Event::Received { conn, message })
    }

    /// `register`, as the node sends it; planning waits for a tick.
    fn register_only(&mut self, conn: ConnId, node: NodeInfo) -> Vec<Effect> {
        self.register_with_primary(conn, node, None)
    }

    /// `register` from a node configured to replicate the node at client
    /// address `primary` (or, with `None`, leaving its role to the
    /// coordinator).
    fn register_with_primary(
        &mut self,
        conn: ConnId,
        node: NodeInfo,
        primary: Option<&str>,
    ) -> Vec<Effect> {
        let register = NodeMessage::Register {
            node,
            epoch: 0,
            proof: String::new(),
            primary: primary.map(str::to_string),
        };
        self.send(conn, register)
    }

    /// `register` and the tick after it.
    fn register(&mut self, conn: ConnId, node: NodeInfo) -> Vec<Effect> {
        let mut effects = self.register_only(conn, node);
        effects.extend(self.tick());
        effects
    }

    /// `register` from a node configured to replicate the node at client
    /// address `primary`.
    fn register_replica_only(
        &mut self,
        conn: ConnId,
        node: NodeInfo,
        primary: &str,
    ) -> Vec<Effect> {
        self.register_with_primary(conn, node, Some(primary))
    }

    /// A heartbeat carrying `replication`.
    fn report(&mut self, conn: ConnId, replication: ReplicationReport) -> Vec<Effect> {
        let report = NodeReport {
            epoch: self.config().epoch,
            replication,
            ..NodeReport::default()
        };
        self.send(conn, NodeMessage::Heartbeat(report))
    }

    /// The primary node `n` replicates, as a node number.
    fn primary_of(&self, n: u16) -> Option<u16> {
        let node = self.config().node(&node(n).id).expect("a member");
        node.replica_of.as_deref().map(number)
    }

    fn tick(&mut self) -> Vec<Effect> {
        self.step(Event::Tick)
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
    }

    /// Every node answers `migration_done` for every migration, then a tick,
    /// until nothing is in flight. Returns the number of slots moved.
    fn finish_migrations(&mut self, conns: &BTreeMap<NodeId, ConnId>) -> usize {
        let mut moved = 0;
        for _ in 0..1000 {
            self.tick();
            let migrations = self.config().migrations.clone();
            if migrations.is_empty() {
                return moved;
            }
            for m in migrations {
                moved += 1;
                self.send(
                    conns[&m.from],
                    NodeMessage::MigrationDone {
                        slot: m.slot,
                        to: m.to,
                    },
                );
            }
            self.tick();
        }
        panic!("migrations never finished");
    }

    /// Invariants of every effect list: what is announced is exactly what
    /// was persisted before, epochs only grow (a persist without a new epoch
    /// changes nothing but `leaving`), every registered connection gets
    /// every new configuration, leases go only to primaries, and no primary
    /// is demoted while a lease granted to it may still run.
    fn check(&mut self, effects: Vec<Effect>) {
        let mut new_epoch: Option<u64> = None;
        for effect in effects {
            match effect {
                Effect::Persist(state) => {
                    validate(&state).expect("persisted state is valid");
                    self.check_demotions(&state.config);
                    let epoch = state.config.epoch;
                    assert!(epoch >= self.last_epoch, "epoch went back");
                    if epoch == self.last_epoch {
                        assert_eq!(
                            self.persisted.as_ref(),
                            Some(&state.config),
                            "same epoch, other config"
                        );
                    } else {
                        new_epoch = Some(epoch);
                    }
                    self.last_epoch = epoch;
                    self.persisted = Some(state.config);
                }
                Effect::Send {
                    to,
                    message: CoordinatorMessage::Config(config),
                } => {
                    assert_eq!(
                        self.persisted.as_ref(),
                        Some(&config),
                        "announced what is not on disk"
                    );
                    if new_epoch == Some(config.epoch) {
                        let sessions: Vec<ConnId> =
                            self.coordinator.sessions.keys().copied().collect();
                        assert_eq!(to, sessions, "a new configuration goes to every session");
                    }
                    for conn in to {
                        self.received.entry(conn).or_default().push(config.clone());
                    }
                }
                Effect::Send {
                    to,
                    message: CoordinatorMessage::Error { message },
                } => {
                    self.errors
                        .extend(to.into_iter().map(|c| (c, message.clone())));
                }
                Effect::Send {
                    to,
                    message: CoordinatorMessage::Lease { ms, .. },
                } => {
                    for conn in to.into_iter().filter(|_| ms > 0) {
                        let node = self.coordinator.sessions[&conn].clone();
                        let info = self.config().node(&node).expect("a member");
                        assert!(!info.is_replica(), "lease granted to a replica");
                        let granted = self.leases.get(&node).map_or(0, |&(_, n)| n);
                        let until = self.now + Duration::from_millis(ms);
                        self.leases.insert(node, (until, granted + 1));
                    }
                }
                Effect::Send {
                    message: CoordinatorMessage::Challenge { .. },
                    ..
                } => panic!("challenges are the connection task's, not the state machine's"),
                Effect::Send {
                    message: CoordinatorMessage::NotLeader { .. },
                    ..
                } => panic!("the state machine runs on the leader only"),
                Effect::Close(conn) => self.closed.push(conn),
            }
        }
    }

    /// A node that was a primary and is a replica in `config` must hold no
    /// lease any more: its last one ended, plus the allowance for clocks.
    fn check_demotions(&self, config: &ClusterConfig) {
        let Some(previous) = &self.persisted else {
            return;
        };
        let allowance = self.coordinator.settings.lease_allowance();
        for node in config.nodes.iter().filter(|n| n.is_replica()) {
            let was_primary = previous.node(&node.id).is_some_and(|n| !n.is_replica());
            if let (true, Some(&(until, _))) = (was_primary, self.leases.get(&node.id)) {
                assert!(
                    self.now >= until + allowance,
                    "{} demoted while its lease may still run",
                    node.id
                );
            }
        }
    }

    /// Leases granted to node `n` so far.
    fn leases_of(&self, n: u16) -> usize {
        self.leases.get(&node(n).id).map_or(0, |&(_, count)| count)
    }

    fn counts(&self) -> Vec<usize> {
        let map = self.config().slot_map();
        (0..self.config().nodes.len())
            .map(|i| map.slots_of(i).len())
            .collect()
    }
}

/// The number of a node made by [`node`].
fn number(id: &str) -> u16 {
    u16::from_str_radix(id, 16).expect("a test node id")
}

/// A replica's report: following node `of` (or nobody if 0).
fn replica_report(of: u16, offset: u64, link_up: bool, synced: bool) -> ReplicationReport {
    ReplicationReport {
        offset,
        following: (of > 0).then(|| node(of).id),
        link_up,
        synced,
        ..ReplicationReport::default()
    }
}

/// Nodes 1 and 2 (on connections 1 and 2) sharing every slot, nothing
/// moving.
fn two_primaries() -> Harness {
    let mut h = Harness::new(wide());
    let conns = BTreeMap::from([(node(1).id, 1), (node(2).id, 2)]);
    h.register(1, node(1));
    h.register(2, node(2));
    h.finish_migrations(&conns);
    h
}

fn wide() -> Settings {
    Settings {
        max_migrations: usize::MAX,
        ..Settings::default()
    }
}

fn is_fair(counts: &[usize]) -> bool {
    let n = counts.len();
    counts.iter().sum::<usize>() == ALL && counts.iter().all(|&c| c == ALL / n || c == ALL / n + 1)
}

mod failover;
mod membership;
mod metrics;
mod rebalance;
mod replicas;
mod restart;
