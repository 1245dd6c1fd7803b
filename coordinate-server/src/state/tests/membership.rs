//! Registration, leaving, refusals.

use std::collections::BTreeMap;

use keycafe_core::cluster::NodeInfo;
use keycafe_core::coord::{CoordinatorMessage, NodeMessage, NodeReport};

use super::*;

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
fn garbage_registrations_are_refused_and_closed() {
    // (Proofs of the cluster secret are checked by the connection task,
    // before a registration reaches the state machine: tests/refusals.rs.)
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
        // Every address is no address: nobody can reach a node by it.
        NodeInfo {
            client_addr: "0.0.0.0:7001".into(),
            ..node(1)
        },
        NodeInfo {
            bus_addr: ":::17001".into(),
            ..node(1)
        },
    ];
    for (conn, info) in (1..).zip(bad) {
        h.register(conn, info);
    }
    assert_eq!(h.closed, vec![1, 2, 3, 4, 5, 6, 7, 8]);
    assert!(h.config().nodes.is_empty());
    // Anything before `register` is refused too.
    h.send(9, NodeMessage::Leave);
    h.send(10, NodeMessage::Heartbeat(NodeReport::default()));
    assert_eq!(h.closed[8..], [9, 10]);
    assert!(
        h.errors
            .iter()
            .any(|(c, m)| *c == 9 && m == "register first")
    );
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
fn no_node_can_move_the_epoch() {
    let mut h = Harness::new(Settings::default());
    h.register(1, node(1));
    let epoch = h.config().epoch;
    // A registration from a node holding a newer epoch than ours is refused
    // (its configuration is not this coordinator's), whatever the number.
    for (conn, reported) in [(2, epoch + 1), (3, u64::MAX)] {
        h.send(
            conn,
            NodeMessage::Register {
                node: node(2),
                epoch: reported,
                proof: String::new(),
                primary: None,
            },
        );
        assert!(h.closed.contains(&conn));
    }
    // A heartbeat that says so is ignored.
    h.send(
        1,
        NodeMessage::Heartbeat(NodeReport {
            epoch: u64::MAX,
            ..NodeReport::default()
        }),
    );
    assert_eq!(h.config().epoch, epoch);
    assert_eq!(h.config().nodes.len(), 1);
}

#[test]
fn another_process_cannot_take_a_connected_nodes_id() {
    let mut h = Harness::new(Settings::default());
    h.register(1, node(1));
    let impostor = NodeInfo {
        client_addr: "127.0.0.1:6999".into(),
        bus_addr: "127.0.0.1:16999".into(),
        ..node(1)
    };
    h.register(2, impostor.clone());
    assert_eq!(h.closed, vec![2]);
    assert_eq!(h.config().nodes[0], node(1));
    // The node itself reconnecting (same addresses) replaces its old
    // connection; once it is gone, new addresses are taken too.
    h.register(3, node(1));
    assert!(h.closed.contains(&1));
    h.step(Event::Disconnected { conn: 3 });
    h.advance(std::time::Duration::from_secs(6));
    h.register(4, impostor.clone());
    assert_eq!(h.config().nodes[0], impostor);
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
