//! The state machine, driven with plain values: no sockets, no sleeps.

use std::time::{Duration, Instant};

use keycafe_core::SLOT_COUNT;
use keycafe_core::cluster::{ClusterConfig, NodeInfo};
use keycafe_core::coord::{CoordinatorMessage, NodeMessage, NodeReport};

use super::view::NodeState;
use super::*;

const ALL: usize = SLOT_COUNT as usize;

fn node(n: u16) -> NodeInfo {
    NodeInfo {
        id: format!("{n:040x}"),
        client_addr: format!("127.0.0.1:{}", 7000 + n),
        bus_addr: format!("127.0.0.1:{}", 17000 + n),
    }
}

/// A coordinator, a clock, and checks on every batch of effects.
struct Harness {
    coordinator: Coordinator,
    now: Instant,
    last_epoch: u64,
    /// Every configuration sent, per connection.
    received: BTreeMap<ConnId, Vec<ClusterConfig>>,
    closed: Vec<ConnId>,
    errors: Vec<(ConnId, String)>,
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
            received: BTreeMap::new(),
            closed: Vec::new(),
            errors: Vec::new(),
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

    fn register(&mut self, conn: ConnId, node: NodeInfo) -> Vec<Effect> {
        self.send(
            conn,
            NodeMessage::Register {
                node,
                epoch: 0,
                secret: None,
            },
        )
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

    /// Invariants of every effect list: a valid state is persisted before
    /// it is announced, epochs only grow, and every registered connection
    /// gets every configuration.
    fn check(&mut self, effects: Vec<Effect>) {
        let mut persisted: Option<u64> = None;
        for effect in effects {
            match effect {
                Effect::Persist(state) => {
                    validate(&state).expect("persisted state is valid");
                    assert!(state.config.epoch > self.last_epoch, "epoch did not grow");
                    self.last_epoch = state.config.epoch;
                    persisted = Some(state.config.epoch);
                }
                Effect::Send {
                    to,
                    message: CoordinatorMessage::Config(config),
                } => {
                    assert!(
                        config.epoch <= self.last_epoch,
                        "announced before persisted"
                    );
                    if persisted == Some(config.epoch) {
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
                Effect::Close(conn) => self.closed.push(conn),
            }
        }
    }

    fn counts(&self) -> Vec<usize> {
        let map = self.config().slot_map();
        (0..self.config().nodes.len())
            .map(|i| map.slots_of(i).len())
            .collect()
    }
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

#[test]
fn the_first_node_gets_every_slot_at_once() {
    let mut h = Harness::new(Settings::default());
    let effects = h.register(1, node(1));
    assert!(matches!(&effects[0], Effect::Persist(state) if state.config.epoch == 1));
    assert_eq!(h.config().slots.len(), 1);
    assert_eq!(h.config().slots[0].owner, node(1).id);
    assert!(h.config().migrations.is_empty());
    assert_eq!(h.received[&1].len(), 1);
}

#[test]
fn joins_are_planned_as_migrations_and_done_flips_ownership_in_one_epoch() {
    let mut h = Harness::new(wide());
    h.register(1, node(1));
    h.register(2, node(2));
    let config = h.config().clone();
    assert_eq!(config.epoch, 2);
    assert_eq!(config.migrations.len(), ALL / 2);
    assert!(
        config
            .migrations
            .iter()
            .all(|m| m.from == node(1).id && m.to == node(2).id)
    );
    // Until the moves are done, node 1 still owns everything.
    assert_eq!(h.counts(), vec![ALL, 0]);

    // A burst of results (with a duplicate and a stale one) costs one epoch.
    for m in &config.migrations {
        h.send(
            1,
            NodeMessage::MigrationDone {
                slot: m.slot,
                to: m.to.clone(),
            },
        );
    }
    let first = &config.migrations[0];
    h.send(
        1,
        NodeMessage::MigrationDone {
            slot: first.slot,
            to: first.to.clone(),
        },
    );
    h.send(
        2,
        NodeMessage::MigrationDone {
            slot: 0,
            to: node(1).id,
        },
    );
    assert_eq!(h.config().epoch, 2, "results wait for the tick");
    let effects = h.tick();
    assert_eq!(
        effects
            .iter()
            .filter(|e| matches!(e, Effect::Persist(_)))
            .count(),
        1
    );
    assert_eq!(h.config().epoch, 3);
    assert!(h.config().migrations.is_empty());
    assert_eq!(h.counts(), vec![ALL / 2, ALL / 2]);
    assert!(h.tick().is_empty(), "a quiet tick changes nothing");
}

#[test]
fn one_to_ten_nodes_and_back_every_node_sees_every_config() {
    let mut h = Harness::new(Settings {
        max_migrations: 700,
        ..Settings::default()
    });
    let mut conns = BTreeMap::new();
    for n in 1..=10u16 {
        let conn = ConnId::from(n);
        conns.insert(node(n).id, conn);
        h.register(conn, node(n));
        let moved = h.finish_migrations(&conns);
        let share = ALL / usize::from(n);
        assert!(
            n == 1 || moved == share || moved == share + 1,
            "{n} nodes: moved {moved}"
        );
        assert!(is_fair(&h.counts()), "{n} nodes: {:?}", h.counts());
    }
    for n in [3u16, 10, 1, 7, 5, 2, 9, 4, 8] {
        let before = h.counts()[h.coordinator.node_index(&node(n).id).unwrap()];
        h.send(conns[&node(n).id], NodeMessage::Leave);
        let moved = h.finish_migrations(&conns);
        assert_eq!(moved, before, "only the leaver's slots move");
        assert!(h.config().node(&node(n).id).is_none(), "node {n} removed");
        assert!(is_fair(&h.counts()), "{:?}", h.counts());
    }
    assert_eq!(h.counts(), vec![ALL]);
    // Every session saw every epoch from its registration on, in order.
    for (conn, configs) in &h.received {
        let epochs: Vec<u64> = configs.iter().map(|c| c.epoch).collect();
        assert!(
            epochs.windows(2).all(|w| w[0] < w[1]),
            "conn {conn}: {epochs:?}"
        );
        let first = epochs[0];
        assert_eq!(*epochs.last().unwrap(), h.config().epoch);
        assert_eq!(
            epochs.len() as u64,
            h.config().epoch - first + 1,
            "conn {conn} missed one"
        );
    }
}

#[test]
fn large_rebalances_run_in_windows_without_extra_moves() {
    let mut h = Harness::new(Settings {
        max_migrations: 100,
        ..Settings::default()
    });
    let conns = BTreeMap::from([(node(1).id, 1), (node(2).id, 2), (node(3).id, 3)]);
    h.register(1, node(1));
    h.register(2, node(2));
    assert_eq!(h.config().migrations.len(), 100);
    assert_eq!(h.coordinator.view(h.now).queued_moves, ALL / 2 - 100);
    assert_eq!(h.finish_migrations(&conns), ALL / 2);
    h.register(3, node(3));
    assert_eq!(h.finish_migrations(&conns), ALL / 3);
    assert!(is_fair(&h.counts()));
}

#[test]
fn a_join_during_a_rebalance_waits_for_it() {
    let mut h = Harness::new(wide());
    let conns = BTreeMap::from([(node(1).id, 1), (node(2).id, 2), (node(3).id, 3)]);
    h.register(1, node(1));
    h.register(2, node(2));
    let in_flight = h.config().migrations.clone();
    h.register(3, node(3));
    assert!(
        h.config().node(&node(3).id).is_some(),
        "the joiner is known at once"
    );
    assert_eq!(
        h.config().migrations,
        in_flight,
        "no second plan over the first"
    );
    assert_eq!(h.counts()[2], 0);
    // Node 3 got the configuration naming it.
    assert_eq!(h.received[&3].last().unwrap().epoch, h.config().epoch);
    h.finish_migrations(&conns);
    assert!(is_fair(&h.counts()), "{:?}", h.counts());
}

#[test]
fn a_known_node_re_registering_changes_nothing() {
    let mut h = Harness::new(Settings::default());
    h.register(1, node(1));
    h.register(2, node(2));
    let before = h.config().clone();
    h.step(Event::Disconnected { conn: 2 });
    let effects = h.register(5, node(2));
    assert_eq!(h.config(), &before);
    assert_eq!(
        effects,
        vec![Effect::Send {
            to: vec![5],
            message: CoordinatorMessage::Config(before)
        }]
    );
}

#[test]
fn a_second_connection_for_a_node_replaces_the_first() {
    let mut h = Harness::new(Settings::default());
    h.register(1, node(1));
    let effects = h.register(2, node(1));
    assert!(effects.contains(&Effect::Close(1)));
    assert_eq!(h.coordinator.sessions.len(), 1);
}

#[test]
fn a_restart_resumes_with_a_newer_epoch_and_the_migrations_in_flight() {
    let mut h = Harness::new(wide());
    h.register(1, node(1));
    h.register(2, node(2));
    let saved = h.coordinator.durable();
    let (restarted, effects) = Coordinator::new(wide(), Some(saved.clone()), Instant::now());
    assert_eq!(restarted.config().epoch, saved.config.epoch + 1);
    assert_eq!(restarted.config().slots, saved.config.slots);
    assert_eq!(restarted.config().migrations, saved.config.migrations);
    assert!(
        matches!(effects.as_slice(), [Effect::Persist(s)] if s.config.epoch == saved.config.epoch + 1)
    );

    let mut h = Harness::restore(wide(), Some(saved));
    let epoch = h.config().epoch;
    let effects = h.register(7, node(1));
    assert!(matches!(&effects[..], [Effect::Send { to, .. }] if to == &vec![7]));
    h.register(8, node(2));
    assert_eq!(
        h.config().epoch,
        epoch,
        "known nodes re-register without a change"
    );
    // The plan carries on.
    let conns = BTreeMap::from([(node(1).id, 7), (node(2).id, 8)]);
    assert_eq!(h.finish_migrations(&conns), ALL / 2);
    assert!(is_fair(&h.counts()));
}

#[test]
fn secrets_and_garbage_registrations_are_refused_and_closed() {
    let settings = Settings {
        secret: Some("s3cret".into()),
        ..Settings::default()
    };
    let mut h = Harness::new(settings);
    for (conn, secret) in [
        (1, None),
        (2, Some("wrong".to_string())),
        (3, Some("s3cre".to_string())),
    ] {
        h.send(
            conn,
            NodeMessage::Register {
                node: node(1),
                epoch: 0,
                secret,
            },
        );
    }
    assert_eq!(h.closed, vec![1, 2, 3]);
    assert!(h.config().nodes.is_empty());
    h.send(
        4,
        NodeMessage::Register {
            node: node(1),
            epoch: 0,
            secret: Some("s3cret".into()),
        },
    );
    assert_eq!(h.config().nodes.len(), 1);

    let mut h = Harness::new(Settings::default());
    let bad = [
        NodeInfo {
            id: String::new(),
            ..node(1)
        },
        NodeInfo {
            id: "x".repeat(65),
            ..node(1)
        },
        NodeInfo {
            id: "a b".into(),
            ..node(1)
        },
        NodeInfo {
            client_addr: "nowhere".into(),
            ..node(1)
        },
        NodeInfo {
            bus_addr: "host:99999".into(),
            ..node(1)
        },
        NodeInfo {
            bus_addr: node(1).client_addr,
            ..node(1)
        },
    ];
    for (conn, info) in (1..).zip(bad) {
        h.register(conn, info);
    }
    assert_eq!(h.closed, vec![1, 2, 3, 4, 5, 6]);
    assert!(h.config().nodes.is_empty());
    // Anything before `register` is refused too.
    h.send(9, NodeMessage::Leave);
    h.send(10, NodeMessage::Heartbeat(NodeReport::default()));
    assert_eq!(h.closed[6..], [9, 10]);
    assert!(
        h.errors
            .iter()
            .any(|(c, m)| *c == 9 && m == "register first")
    );
}

#[test]
fn a_silent_node_is_failing_until_it_speaks_again() {
    let settings = Settings {
        node_timeout: Duration::from_secs(5),
        ..Settings::default()
    };
    let mut h = Harness::new(settings);
    h.register(1, node(1));
    h.register(2, node(2));
    let state = |h: &Harness, n: usize| h.coordinator.view(h.now).nodes[n].state;
    h.advance(Duration::from_secs(3));
    h.send(
        1,
        NodeMessage::Heartbeat(NodeReport {
            epoch: 2,
            keys: 42,
            ..NodeReport::default()
        }),
    );
    h.advance(Duration::from_secs(3));
    h.tick();
    assert_eq!(state(&h, 0), NodeState::Healthy);
    assert_eq!(state(&h, 1), NodeState::Failing);
    // The plan survives; the migrations from... node 1 are fine, but node 2
    // is their target, so they are stalled.
    let view = h.coordinator.view(h.now);
    assert_eq!(view.nodes[0].keys, Some(42));
    assert!(view.migrations.iter().all(|g| g.stalled));
    assert!(!h.config().migrations.is_empty());
    h.send(2, NodeMessage::Heartbeat(NodeReport::default()));
    assert_eq!(state(&h, 1), NodeState::Healthy);
    assert!(!h.coordinator.view(h.now).migrations[0].stalled);
}

#[test]
fn migration_progress_comes_from_the_sources_heartbeat() {
    let mut h = Harness::new(wide());
    h.register(1, node(1));
    h.register(2, node(2));
    let slots: Vec<u16> = h
        .config()
        .migrations
        .iter()
        .take(2)
        .map(|m| m.slot)
        .collect();
    let report = NodeReport {
        epoch: 2,
        keys: 100,
        migrating: vec![(slots[0], 5), (slots[1], 7)],
        ..Default::default()
    };
    h.send(1, NodeMessage::Heartbeat(report));
    let view = h.coordinator.view(h.now);
    assert_eq!(view.migrations.len(), 1);
    assert_eq!(view.migrations[0].slots, ALL / 2);
    assert_eq!(view.migrations[0].keys_left, Some(12));
}

#[test]
fn leaving_moves_the_slots_away_then_removes_the_node() {
    let mut h = Harness::new(wide());
    let conns = BTreeMap::from([(node(1).id, 1), (node(2).id, 2), (node(3).id, 3)]);
    for n in 1..=3 {
        h.register(ConnId::from(n), node(n));
        h.finish_migrations(&conns);
    }
    h.send(2, NodeMessage::Leave);
    assert_eq!(h.coordinator.view(h.now).nodes[1].state, NodeState::Leaving);
    assert!(h.config().migrations.iter().all(|m| m.from == node(2).id));
    h.finish_migrations(&conns);
    assert!(h.config().node(&node(2).id).is_none());
    assert!(is_fair(&h.counts()));
    // The removed node heard of its removal.
    assert!(h.received[&2].last().unwrap().node(&node(2).id).is_none());
    // A heartbeat from it afterwards is ignored, not an error.
    assert!(
        h.send(2, NodeMessage::Heartbeat(NodeReport::default()))
            .is_empty()
    );

    // Leaves of unknown and last nodes are refused.
    assert_eq!(
        h.coordinator.request_leave("nobody", h.now),
        Err(Refusal::UnknownNode("nobody".into()))
    );
    h.send(1, NodeMessage::Leave);
    h.finish_migrations(&conns);
    let effects = h.send(3, NodeMessage::Leave);
    assert!(matches!(
        &effects[..],
        [Effect::Send {
            message: CoordinatorMessage::Error { .. },
            ..
        }]
    ));
    assert!(
        !h.closed.contains(&3),
        "a refused leave keeps the connection"
    );
    assert_eq!(h.counts(), vec![ALL]);
}

#[test]
fn a_leave_during_a_rebalance_is_persisted_and_planned_after_it() {
    let mut h = Harness::new(wide());
    let conns = BTreeMap::from([(node(1).id, 1), (node(2).id, 2), (node(3).id, 3)]);
    h.register(1, node(1));
    h.register(2, node(2));
    h.finish_migrations(&conns);
    h.register(3, node(3));
    let epoch = h.config().epoch;
    let effects = h.coordinator.request_leave(&node(1).id, h.now).unwrap();
    assert!(
        matches!(&effects[..], [Effect::Persist(s)] if s.leaving == vec![node(1).id] && s.config.epoch == epoch)
    );
    assert_eq!(h.coordinator.request_leave(&node(1).id, h.now), Ok(vec![]));
    h.finish_migrations(&conns);
    assert!(h.config().node(&node(1).id).is_none());
    assert!(is_fair(&h.counts()));
}

#[test]
fn a_node_with_a_newer_epoch_makes_the_coordinator_jump_past_it() {
    let mut h = Harness::new(Settings::default());
    h.send(
        1,
        NodeMessage::Register {
            node: node(1),
            epoch: 41,
            secret: None,
        },
    );
    assert_eq!(h.config().epoch, 42);
    h.send(
        1,
        NodeMessage::Heartbeat(NodeReport {
            epoch: 50,
            ..NodeReport::default()
        }),
    );
    assert_eq!(h.config().epoch, 51);
}

#[test]
fn a_restarted_node_with_a_new_id_takes_its_old_place() {
    let mut h = Harness::new(wide());
    h.register(1, node(1));
    h.register(2, node(2));
    let newcomer = NodeInfo {
        id: "f".repeat(40),
        ..node(2)
    };
    // While node 2 is connected its address is taken.
    h.register(3, newcomer.clone());
    assert_eq!(h.closed, vec![3]);
    h.step(Event::Disconnected { conn: 2 });
    h.register(4, newcomer.clone());
    assert_eq!(h.config().nodes.len(), 2);
    assert!(h.config().node(&node(2).id).is_none());
    assert!(h.config().migrations.iter().all(|m| m.to == newcomer.id));
}

#[test]
fn validate_rejects_inconsistent_states() {
    let mut h = Harness::new(wide());
    h.register(1, node(1));
    h.register(2, node(2));
    let good = h.coordinator.durable();
    assert_eq!(validate(&good), Ok(()));
    let mut bad = good.clone();
    bad.config.nodes.push(node(1));
    assert!(validate(&bad).is_err());
    let mut bad = good.clone();
    bad.config.slots[0].owner = "stranger".into();
    assert!(validate(&bad).is_err());
    let mut bad = good.clone();
    bad.config.migrations[0].from = node(2).id;
    assert!(validate(&bad).is_err());
    let mut bad = good.clone();
    bad.leaving.push("stranger".into());
    assert!(validate(&bad).is_err());
    let mut bad = good;
    bad.config.slots[0].end = SLOT_COUNT;
    assert!(validate(&bad).is_err());
}
