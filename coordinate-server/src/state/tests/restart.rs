//! Restarts of the coordinator and of nodes that keep their identity (a
//! data directory): who owns what while the nodes come back.

use std::time::Duration;

use super::*;

/// Primaries 1 and 2 sharing the slots, and 3 replicating 1, each having
/// reported as streaming and synced.
fn primary_with_a_replica() -> Harness {
    let mut h = two_primaries();
    h.register_replica_only(3, node(3), &node(1).client_addr);
    h.tick();
    h.report(3, replica_report(1, 400, true, true));
    h
}

/// The same cluster under a coordinator restarted from what `h` persisted,
/// with no node connected yet.
fn restarted(h: &Harness) -> Harness {
    let durable = h.coordinator.durable();
    let before = durable.config.epoch;
    let restored = Harness::restore(wide(), Some(durable));
    assert_eq!(restored.config().epoch, before + 1, "resumed one epoch on");
    restored
}

#[test]
fn a_primary_slow_to_come_back_keeps_its_slots_while_its_replica_has_no_copy() {
    let before = primary_with_a_replica();
    let owned = before.counts();
    let mut h = restarted(&before);
    let epoch = h.config().epoch;
    // The replica and the other primary are back (a restarted replica has
    // no complete copy until it has synced again); primary 1 is not.
    h.register_only(12, node(2));
    h.register_only(13, node(3));
    h.advance(Duration::from_secs(6));
    h.report(12, ReplicationReport::default());
    h.report(13, replica_report(1, 0, false, false));
    h.tick();
    assert_eq!(h.counts(), owned, "nothing moved");
    assert_eq!(h.primary_of(3), Some(1));
    assert_eq!(h.config().epoch, epoch, "no new configuration");
    let view = h.coordinator.view(h.now);
    assert_eq!(view.nodes[0].state, NodeState::Failing);

    // Back under its id, at its addresses: as it was, without a new epoch.
    let effects = h.register_only(11, node(1));
    assert!(!effects.iter().any(|e| matches!(e, Effect::Persist(_))));
    h.tick();
    assert_eq!(h.counts(), owned);
    assert_eq!((h.primary_of(1), h.primary_of(3)), (None, Some(1)));
    assert_eq!(h.config().epoch, epoch);
}

#[test]
fn a_primary_that_stays_away_is_failed_over_to_a_replica_that_kept_its_copy() {
    // Only the coordinator restarted: the replica still holds a whole copy
    // and says it lost its primary, so the usual failover applies.
    let before = primary_with_a_replica();
    let owned = before.counts();
    let mut h = restarted(&before);
    h.register_only(12, node(2));
    h.register_only(13, node(3));
    h.advance(Duration::from_secs(6));
    h.report(12, ReplicationReport::default());
    h.report(13, replica_report(1, 400, false, true));
    h.tick();
    assert_eq!((h.primary_of(3), h.primary_of(1)), (None, Some(3)));
    assert_eq!(h.counts()[2], owned[0], "the replica took the slots");

    // The old primary, back under its id, is the new primary's replica.
    h.register(11, node(1));
    assert_eq!(h.primary_of(1), Some(3));
    assert_eq!(h.counts()[0], 0);
}

#[test]
fn a_known_node_back_at_other_addresses_keeps_its_slots_and_role() {
    let mut h = primary_with_a_replica();
    let owned = h.counts();
    h.step(Event::Disconnected { conn: 1 });
    h.step(Event::Disconnected { conn: 3 });
    let moved = |n: u16| NodeInfo {
        client_addr: format!("127.0.0.1:{}", 8000 + n),
        bus_addr: format!("127.0.0.1:{}", 18000 + n),
        ..node(n)
    };
    let epoch = h.config().epoch;
    h.register(21, moved(1));
    h.register(23, moved(3));
    assert_eq!(h.config().epoch, epoch + 2, "one epoch per new address");
    assert_eq!(h.counts(), owned);
    assert_eq!((h.primary_of(1), h.primary_of(3)), (None, Some(1)));
    let config = h.config();
    assert_eq!(
        config.node(&node(1).id).unwrap().client_addr,
        moved(1).client_addr
    );
    assert_eq!(
        config.node(&node(3).id).unwrap().bus_addr,
        moved(3).bus_addr
    );
}
