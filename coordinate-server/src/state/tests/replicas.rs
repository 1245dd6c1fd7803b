//! Roles: who becomes a replica of whom, on joining and when a primary goes.

use std::collections::BTreeMap;

use super::*;
use crate::state::events::ClusterEvent;

#[test]
fn the_replicas_setting_pairs_nodes_that_register_in_one_tick() {
    let mut h = Harness::new(Settings {
        replicas: 1,
        ..Settings::default()
    });
    for n in 1..=6 {
        h.register_only(ConnId::from(n), node(n));
    }
    h.tick();
    let roles: Vec<Option<u16>> = (1..=6).map(|n| h.primary_of(n)).collect();
    assert_eq!(roles, [None, Some(1), None, Some(3), None, Some(5)]);
    // The slots are split over the three primaries only, without a move.
    assert!(h.config().migrations.is_empty());
    let counts = h.counts();
    assert_eq!([counts[1], counts[3], counts[5]], [0, 0, 0]);
    assert!(is_fair(&[counts[0], counts[2], counts[4]]), "{counts:?}");

    // Every primary has its replica: the next node is a primary, and the
    // one after it replicates the primary with the fewest (the new one).
    h.register(7, node(7));
    h.register(8, node(8));
    assert_eq!((h.primary_of(7), h.primary_of(8)), (None, Some(7)));
}

#[test]
fn a_configured_primary_is_followed_and_an_unknown_one_refused() {
    let mut h = two_primaries();
    h.register_replica_only(3, node(3), &node(1).client_addr);
    // Configured against a replica: follows that replica's primary.
    h.register_replica_only(4, node(4), &node(3).client_addr);
    h.tick();
    assert_eq!((h.primary_of(3), h.primary_of(4)), (Some(1), Some(1)));
    assert!(h.config().migrations.is_empty(), "replicas are not planned");
    assert_eq!(h.counts(), vec![ALL / 2, ALL / 2, 0, 0]);

    // A known node keeps its role, whatever it is configured with now.
    let epoch = h.config().epoch;
    h.step(Event::Disconnected { conn: 3 });
    h.register_replica_only(9, node(3), &node(2).client_addr);
    assert_eq!(h.primary_of(3), Some(1));
    assert_eq!(h.config().epoch, epoch);

    // A primary nobody has registered yet: refused until it has.
    h.register_replica_only(5, node(5), "127.0.0.1:1");
    assert!(h.closed.contains(&5));
    assert!(
        h.errors
            .contains(&(5, "unknown primary 127.0.0.1:1".to_string()))
    );
    assert!(h.config().node(&node(5).id).is_none());
}

#[test]
fn a_replica_may_leave_at_once_the_last_primary_may_not() {
    let mut h = Harness::new(Settings::default());
    h.register(1, node(1));
    h.register_replica_only(2, node(2), &node(1).client_addr);
    h.tick();
    assert_eq!(
        h.coordinator.request_leave(&node(1).id, h.now),
        Err(Refusal::LastNode(node(1).id))
    );
    let epoch = h.config().epoch;
    h.send(2, NodeMessage::Leave);
    h.tick();
    assert!(h.config().node(&node(2).id).is_none());
    assert_eq!(h.config().epoch, epoch + 1);
    assert_eq!(h.counts(), vec![ALL]);
}

#[test]
fn the_replicas_of_a_primary_that_left_are_reassigned() {
    let mut h = Harness::new(Settings {
        replicas: 1,
        ..wide()
    });
    let conns: BTreeMap<NodeId, ConnId> = (1..=5).map(|n| (node(n).id, ConnId::from(n))).collect();
    for n in 1..=4 {
        h.register_only(ConnId::from(n), node(n));
    }
    h.tick();
    assert_eq!(h.primary_of(4), Some(3));
    // Replica 4 leaves; 5 joins and takes its place as 3's replica.
    h.send(4, NodeMessage::Leave);
    h.tick();
    h.register(5, node(5));
    assert_eq!(h.primary_of(5), Some(3));

    // Primary 3 leaves. Primary 1 has its replica, so 5 has no primary to
    // follow and becomes one, and is planned slots.
    h.send(3, NodeMessage::Leave);
    h.finish_migrations(&conns);
    assert!(h.config().node(&node(3).id).is_none());
    assert_eq!(h.primary_of(5), None);
    let counts = h.counts();
    assert_eq!(counts[1], 0, "node 2 is still a replica");
    assert!(is_fair(&[counts[0], counts[2]]), "{counts:?}");
    let events: Vec<ClusterEvent> = h
        .coordinator
        .view(h.now)
        .events
        .into_iter()
        .map(|e| e.event)
        .collect();
    let reassigned = ClusterEvent::Reassigned {
        node: node(5).id,
        replica_of: None,
    };
    let left = ClusterEvent::Left { node: node(3).id };
    let position = |wanted: &ClusterEvent| events.iter().position(|e| e == wanted);
    // Newest first: 3 left, then 5 was reassigned.
    assert_eq!(position(&reassigned).map(|p| p + 1), position(&left));
    assert!(events.contains(&ClusterEvent::Left { node: node(4).id }));
}
