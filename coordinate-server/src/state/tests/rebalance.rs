//! Planning, migrations and time.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use keycafe_core::coord::{NodeMessage, NodeReport};

use super::*;

#[test]
fn the_first_node_gets_every_slot_at_once() {
    let mut h = Harness::new(Settings::default());
    // The node is in the configuration at once; planning waits for the tick.
    let effects = h.register_only(1, node(1));
    assert!(
        matches!(&effects[0], Effect::Persist(s) if s.config.epoch == 1 && s.config.slots.is_empty())
    );
    let effects = h.tick();
    assert!(matches!(&effects[0], Effect::Persist(s) if s.config.epoch == 2));
    assert_eq!(h.config().slots.len(), 1);
    assert_eq!(h.config().slots[0].owner, node(1).id);
    assert!(h.config().migrations.is_empty());
    assert_eq!(h.received[&1].len(), 2);
}

#[test]
fn nodes_registering_within_one_tick_are_planned_together() {
    // An empty cluster: nothing to move, every slot assigned directly.
    let mut h = Harness::new(Settings::default());
    for n in 1..=3 {
        h.register_only(ConnId::from(n), node(n));
    }
    h.tick();
    assert!(h.config().migrations.is_empty());
    assert!(is_fair(&h.counts()), "{:?}", h.counts());

    // A node that registers and leaves at once is never given a slot.
    let epoch = h.config().epoch;
    h.register_only(4, node(4));
    h.send(4, NodeMessage::Leave);
    h.tick();
    assert!(h.config().node(&node(4).id).is_none());
    assert!(h.config().migrations.is_empty());
    assert_eq!(h.config().epoch, epoch + 2, "joined, then removed");
}

#[test]
fn joins_are_planned_as_migrations_and_done_flips_ownership_in_one_epoch() {
    let mut h = Harness::new(wide());
    h.register(1, node(1));
    h.register(2, node(2));
    let config = h.config().clone();
    let epoch = config.epoch;
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
    assert_eq!(h.config().epoch, epoch, "results wait for the tick");
    let effects = h.tick();
    assert_eq!(
        effects
            .iter()
            .filter(|e| matches!(e, Effect::Persist(_)))
            .count(),
        1
    );
    assert_eq!(h.config().epoch, epoch + 1);
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
