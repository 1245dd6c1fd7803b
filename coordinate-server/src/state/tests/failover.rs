//! Failover: automatic, manual, and on a restart under a new id.

use std::collections::BTreeMap;
use std::time::Duration;

use keycafe_core::cluster::Migration;

use super::*;
use crate::state::events::{ClusterEvent, FailoverReason};
use crate::state::view::Role;

/// Primaries 1 and 2 sharing the slots, replicas 3 and 4 of node 1, each
/// having reported once: 1 at offset 500, 3 at 400 and 4 at 450, both
/// streaming and synced.
fn primary_with_two_replicas() -> Harness {
    let mut h = two_primaries();
    h.register_replica_only(3, node(3), &node(1).client_addr);
    h.register_replica_only(4, node(4), &node(1).client_addr);
    h.tick();
    h.report(1, primary_report(500));
    h.report(2, primary_report(0));
    h.report(3, replica_report(1, 400, true, true));
    h.report(4, replica_report(1, 450, true, true));
    h
}

fn primary_report(offset: u64) -> ReplicationReport {
    ReplicationReport {
        offset,
        ..ReplicationReport::default()
    }
}

/// Node 1 silent for 6 s (the timeout is 5), everyone else reporting, its
/// replicas with the link down.
fn silence_node_1(h: &mut Harness) {
    h.advance(Duration::from_secs(6));
    h.report(2, primary_report(0));
    h.report(3, replica_report(1, 400, false, true));
    h.report(4, replica_report(1, 450, false, true));
}

fn persists(effects: &[Effect]) -> usize {
    effects
        .iter()
        .filter(|e| matches!(e, Effect::Persist(_)))
        .count()
}

fn latest_event(h: &Harness) -> ClusterEvent {
    h.coordinator.view(h.now).events[0].event.clone()
}

#[test]
fn a_silent_primary_fails_over_once_every_replica_has_lost_it() {
    let mut h = primary_with_two_replicas();
    let owned = h.counts()[0];
    let epoch = h.config().epoch;
    h.advance(Duration::from_secs(6));
    h.report(2, primary_report(0));
    h.report(3, replica_report(1, 400, true, true));
    h.report(4, replica_report(1, 450, true, true));
    h.tick();
    assert_eq!(h.coordinator.view(h.now).nodes[0].state, NodeState::Failing);
    assert_eq!(latest_event(&h), ClusterEvent::Failing { node: node(1).id });
    assert_eq!(h.config().epoch, epoch, "its replicas still stream from it");

    h.report(3, replica_report(1, 400, false, true));
    h.tick();
    assert_eq!(h.config().epoch, epoch, "replica 4 still has its link up");

    h.report(4, replica_report(1, 450, false, true));
    let effects = h.tick();
    assert_eq!(persists(&effects), 1);
    assert_eq!(h.config().epoch, epoch + 1);
    // The highest offset wins; everyone else follows it, node 1 included.
    let roles: Vec<Option<u16>> = (1..=4).map(|n| h.primary_of(n)).collect();
    assert_eq!(roles, [Some(4), None, Some(4), None]);
    assert_eq!(h.counts(), vec![0, ALL - owned, 0, owned]);
    assert_eq!(
        latest_event(&h),
        ClusterEvent::Failover {
            reason: FailoverReason::Automatic,
            old_primary: node(1).id,
            new_primary: node(4).id,
            old_offset: Some(500),
            new_offset: Some(450),
        }
    );
    let view = h.coordinator.view(h.now);
    assert_eq!(view.nodes[3].role, Role::Primary);
    assert_eq!(
        (view.nodes[2].role, view.nodes[2].lag),
        (Role::Replica, Some(50))
    );
    assert_eq!(view.nodes[2].link_up, Some(false));
    assert!(h.tick().is_empty(), "done once");

    // Node 1 comes back with its id: it is a replica of the new primary.
    h.step(Event::Disconnected { conn: 1 });
    h.register(11, node(1));
    assert_eq!(h.primary_of(1), Some(4));
    assert_eq!(h.config().epoch, epoch + 1);
}

#[test]
fn no_failover_without_a_synced_replica_following_the_primary() {
    let mut h = primary_with_two_replicas();
    let epoch = h.config().epoch;
    h.advance(Duration::from_secs(6));
    h.report(2, primary_report(0));
    h.report(3, replica_report(1, 400, false, false));
    h.report(4, replica_report(1, 450, false, false));
    h.tick();
    assert_eq!(h.config().epoch, epoch, "no replica has a full copy");
    // Synced, but no longer following node 1: not a copy of its data.
    h.report(4, replica_report(0, 450, false, true));
    h.tick();
    assert_eq!(h.config().epoch, epoch);
    assert_eq!(h.primary_of(1), None);
}

#[test]
fn no_failover_before_the_node_timeout_then_a_tie_goes_to_the_first_replica() {
    let mut h = primary_with_two_replicas();
    let epoch = h.config().epoch;
    let others_report = |h: &mut Harness| {
        h.report(2, primary_report(0));
        h.report(3, replica_report(1, 450, false, true));
        h.report(4, replica_report(1, 450, false, true));
    };
    others_report(&mut h);
    h.advance(Duration::from_secs(4));
    others_report(&mut h);
    h.tick();
    assert_eq!(h.config().epoch, epoch, "silent for 4 s of 5");
    h.advance(Duration::from_secs(2));
    others_report(&mut h);
    h.tick();
    assert_eq!((h.primary_of(3), h.primary_of(4)), (None, Some(3)));
    assert_eq!(h.primary_of(1), Some(3));
}

#[test]
fn a_new_process_at_a_failed_over_primarys_address_is_a_replica() {
    let mut h = primary_with_two_replicas();
    silence_node_1(&mut h);
    h.tick();
    let counts = h.counts();
    h.step(Event::Disconnected { conn: 1 });
    let newcomer = NodeInfo {
        id: "f".repeat(40),
        ..node(1)
    };
    h.register(12, newcomer.clone());
    assert!(h.config().node(&node(1).id).is_none());
    let new = h.config().node(&newcomer.id).expect("a member");
    assert_eq!(new.replica_of, Some(node(4).id));
    assert_eq!(h.counts(), counts);
    assert_eq!(
        latest_event(&h),
        ClusterEvent::Replaced {
            old: node(1).id,
            new: newcomer.id
        }
    );
}

#[test]
fn a_primary_restarted_under_a_new_id_is_replaced_by_its_synced_replica() {
    let mut h = primary_with_two_replicas();
    let owned = h.counts()[0];
    h.report(3, replica_report(1, 400, false, true));
    h.report(4, replica_report(1, 450, false, false));
    h.step(Event::Disconnected { conn: 1 });
    let newcomer = NodeInfo {
        id: "f".repeat(40),
        ..node(1)
    };
    let epoch = h.config().epoch;
    let effects = h.register_only(12, newcomer.clone());
    assert_eq!(persists(&effects), 1);
    assert_eq!(h.config().epoch, epoch + 1);
    // Replica 3 has the data (4 does not, despite its offset): it takes the
    // slots, and the empty newcomer follows it.
    assert!(h.config().node(&node(1).id).is_none());
    assert_eq!(h.counts()[2], owned);
    let new = h.config().node(&newcomer.id).expect("a member");
    assert_eq!(new.replica_of, Some(node(3).id));
    assert_eq!((h.primary_of(3), h.primary_of(4)), (None, Some(3)));
    let events: Vec<ClusterEvent> = h
        .coordinator
        .view(h.now)
        .events
        .into_iter()
        .take(2)
        .map(|e| e.event)
        .collect();
    assert_eq!(
        events,
        [
            ClusterEvent::Replaced {
                old: node(1).id,
                new: newcomer.id,
            },
            ClusterEvent::Failover {
                reason: FailoverReason::Restarted,
                old_primary: node(1).id,
                new_primary: node(3).id,
                old_offset: Some(500),
                new_offset: Some(400),
            },
        ]
    );
}

#[test]
fn a_primary_restarted_without_a_synced_replica_hands_the_newcomer_its_slots() {
    let mut h = primary_with_two_replicas();
    let owned = h.counts()[0];
    h.report(3, replica_report(1, 400, false, false));
    h.report(4, replica_report(1, 450, false, false));
    h.step(Event::Disconnected { conn: 1 });
    let newcomer = NodeInfo {
        id: "f".repeat(40),
        ..node(1)
    };
    h.register(12, newcomer.clone());
    assert_eq!(h.counts()[0], owned, "the newcomer is in node 1's place");
    let new = h.config().node(&newcomer.id).expect("a member");
    assert_eq!(new.replica_of, None);
    // The replicas follow the process at their primary's address.
    for n in [3, 4] {
        let replica = h.config().node(&node(n).id).expect("a member");
        assert_eq!(replica.replica_of.as_ref(), Some(&newcomer.id));
    }
}

#[test]
fn a_manual_failover_swaps_roles_in_one_epoch() {
    let mut h = primary_with_two_replicas();
    let owned = h.counts()[0];
    let epoch = h.config().epoch;
    let effects = h.send(
        3,
        NodeMessage::Failover {
            primary: node(1).id,
        },
    );
    // Node 1 is healthy, but it holds a lease (granted with its report):
    // no new ones, and the promotion waits until that one has run out.
    assert!(effects.is_empty());
    let leases = h.leases_of(1);
    h.advance(Duration::from_secs(2));
    h.report(1, primary_report(500));
    h.report(3, replica_report(1, 500, true, true));
    assert_eq!(h.leases_of(1), leases, "no lease while handing over");
    assert!(h.tick().is_empty(), "the lease may still run");
    h.advance(Duration::from_millis(1200));
    let effects = h.tick();
    assert!(matches!(
        &effects[..],
        [Effect::Persist(_), Effect::Send { message: CoordinatorMessage::Config(c), .. }]
            if c.epoch == epoch + 1
    ));
    let roles: Vec<Option<u16>> = (1..=4).map(|n| h.primary_of(n)).collect();
    assert_eq!(roles, [Some(3), None, None, Some(3)]);
    assert_eq!(h.counts()[2], owned);
    assert!(matches!(
        latest_event(&h),
        ClusterEvent::Failover {
            reason: FailoverReason::Manual,
            ..
        }
    ));

    // From a primary, or naming another primary than its own: refused, and
    // the connection stays open.
    let epoch = h.config().epoch;
    for (conn, primary) in [(2, node(3).id), (4, node(2).id), (4, node(1).id)] {
        let effects = h.send(conn, NodeMessage::Failover { primary });
        assert!(matches!(
            &effects[..],
            [Effect::Send {
                message: CoordinatorMessage::Error { .. },
                ..
            }]
        ));
    }
    assert!(h.closed.is_empty());
    assert_eq!(h.config().epoch, epoch);
}

#[test]
fn migrations_follow_the_promoted_nodes() {
    let mut h = Harness::new(wide());
    h.register(1, node(1));
    h.register_only(2, node(2));
    h.register_replica_only(3, node(3), &node(2).client_addr);
    h.register_replica_only(4, node(4), &node(1).client_addr);
    h.tick();
    let planned = h.config().migrations.clone();
    assert_eq!(planned.len(), ALL / 2);
    assert!(
        planned
            .iter()
            .all(|m| m.from == node(1).id && m.to == node(2).id)
    );
    h.report(4, replica_report(1, 0, true, true));
    h.report(3, replica_report(2, 0, true, true));
    // Node 1 reports one slot moved; then both ends fail over before the
    // tick that would apply it.
    let first = planned[0].clone();
    h.send(
        1,
        NodeMessage::MigrationDone {
            slot: first.slot,
            to: first.to,
        },
    );
    h.send(
        4,
        NodeMessage::Failover {
            primary: node(1).id,
        },
    );
    h.send(
        3,
        NodeMessage::Failover {
            primary: node(2).id,
        },
    );
    let expected: Vec<Migration> = planned
        .iter()
        .map(|m| Migration {
            slot: m.slot,
            from: node(4).id,
            to: node(3).id,
        })
        .collect();
    assert_eq!(h.config().migrations, expected);
    h.tick();
    let map = h.config().slot_map();
    assert_eq!(map.owner(first.slot), Some(2), "the reported move holds");
    let conns = BTreeMap::from([(node(4).id, 4), (node(3).id, 3)]);
    h.finish_migrations(&conns);
    assert_eq!(h.counts(), vec![0, 0, ALL / 2, ALL / 2]);
}

#[test]
fn validate_rejects_bad_replica_configurations() {
    let mut h = Harness::new(wide());
    h.register(1, node(1));
    h.register_only(2, node(2));
    h.register_replica_only(3, node(3), &node(1).client_addr);
    h.tick();
    let good = h.coordinator.durable();
    assert_eq!(validate(&good), Ok(()));
    // nodes[2] is node 3, a replica of node 1.
    let breakages: [fn(&mut Durable); 5] = [
        |s| s.config.nodes[2].replica_of = Some("stranger".into()),
        |s| s.config.nodes[2].replica_of = Some(node(3).id),
        |s| {
            // A replica of a replica.
            let mut chained = node(4);
            chained.replica_of = Some(node(3).id);
            s.config.nodes.push(chained);
        },
        |s| s.config.slots[0].owner = node(3).id,
        |s| s.config.migrations[0].to = node(3).id,
    ];
    for (i, breakage) in breakages.iter().enumerate() {
        let mut bad = good.clone();
        breakage(&mut bad);
        assert!(validate(&bad).is_err(), "breakage {i} passed");
    }
}

#[test]
fn a_manual_failover_whose_replica_leaves_is_dropped_and_leases_resume() {
    let mut h = primary_with_two_replicas();
    h.send(
        3,
        NodeMessage::Failover {
            primary: node(1).id,
        },
    );
    let leases = h.leases_of(1);
    h.report(1, primary_report(500));
    assert_eq!(h.leases_of(1), leases, "no lease while handing over");
    // Node 3 leaves before node 1's lease has run out.
    h.send(3, NodeMessage::Leave);
    h.advance(Duration::from_secs(1));
    h.tick();
    assert!(h.config().node(&node(3).id).is_none(), "node 3 is gone");
    h.advance(Duration::from_secs(3));
    h.report(4, replica_report(1, 500, true, true));
    h.tick();
    assert_eq!(h.primary_of(1), None, "node 1 is still the primary");
    h.report(1, primary_report(500));
    assert_eq!(h.leases_of(1), leases + 1, "the request is gone");
}

#[test]
fn a_manual_failover_needs_a_replica_with_a_complete_copy() {
    let mut h = primary_with_two_replicas();
    let epoch = h.config().epoch;
    h.report(3, replica_report(1, 400, true, false));
    let effects = h.send(
        3,
        NodeMessage::Failover {
            primary: node(1).id,
        },
    );
    assert!(matches!(
        &effects[..],
        [Effect::Send { message: CoordinatorMessage::Error { message }, .. }]
            if message.contains("complete copy")
    ));
    h.advance(Duration::from_secs(4));
    h.tick();
    assert_eq!(h.config().epoch, epoch, "nothing promoted");
    assert_eq!(h.primary_of(3), Some(1));
}
