//! What one node believes about the cluster: an adopted configuration,
//! precomputed into a per-slot answer to "may I serve this slot?".

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use keycafe_core::cluster::{ClusterConfig, NodeInfo, SlotMap};
use keycafe_core::{SLOT_COUNT, Slot};

/// How this node relates to one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState {
    /// Nobody owns it: the cluster is incomplete for this slot.
    Unassigned,
    /// This node owns it and nothing is moving.
    Mine,
    /// Another node (index into the configuration's nodes) owns it.
    Other(usize),
    /// This node owns it and is moving its keys to the node at this index.
    MigratingTo(usize),
    /// The node at this index owns it and is moving its keys here.
    ImportingFrom(usize),
    /// This node is a replica of its owner (the node at this index) and
    /// holds a copy of its keys.
    Replicated(usize),
    /// The owner (the node at this index) is moving its keys to this
    /// node's primary: the copies that have arrived through the replication
    /// stream are kept, for when the slot becomes the primary's.
    PrimaryImportingFrom(usize),
}

/// A slot this node is giving away, shared by the migration driver and the
/// commands that touch the slot while it moves. Its mutex is what makes "copy
/// a batch, then delete it" atomic with respect to writes: a command on a
/// migrating slot holds it from the slot check to the end of the command, and
/// the driver holds it while it marks a batch in flight and while it removes
/// the batch after the target has it.
#[derive(Debug, Default)]
pub struct OutgoingSlot {
    /// Keys copied to the target and not yet removed here. Reads of them are
    /// still served here; writes get TRYAGAIN until the batch completes.
    pub in_flight: std::collections::HashSet<Vec<u8>>,
}

/// An immutable snapshot, swapped whole when a newer configuration arrives.
#[derive(Debug)]
pub struct ClusterView {
    pub config: ClusterConfig,
    pub map: SlotMap,
    /// This node's index in `config.nodes`, if it is a member.
    pub me: Option<usize>,
    /// For a replica, the index of the primary it follows.
    pub primary: Option<usize>,
    states: Box<[SlotState]>,
    /// Slots this node is migrating away, with their shared state.
    pub outgoing: HashMap<Slot, Arc<Mutex<OutgoingSlot>>>,
}

impl ClusterView {
    /// The view of a node that has not joined any configuration yet: it owns
    /// nothing, so every keyed command gets CLUSTERDOWN.
    pub fn empty() -> ClusterView {
        ClusterView::new(ClusterConfig::default(), "", None)
    }

    /// Builds the view of `config` for the node `my_id`, carrying over the
    /// state of migrations that continue from `previous`.
    pub fn new(config: ClusterConfig, my_id: &str, previous: Option<&ClusterView>) -> ClusterView {
        let map = config.slot_map();
        let me = config.nodes.iter().position(|n| n.id == my_id);
        let primary = me
            .and_then(|i| config.nodes[i].replica_of.as_deref())
            .and_then(|id| config.nodes.iter().position(|n| n.id == id));
        let mut states: Box<[SlotState]> = (0..SLOT_COUNT)
            .map(|slot| match (map.owner(slot), me) {
                (None, _) => SlotState::Unassigned,
                (Some(owner), Some(me)) if owner == me => SlotState::Mine,
                (Some(owner), _) if Some(owner) == primary => SlotState::Replicated(owner),
                (Some(owner), _) => SlotState::Other(owner),
            })
            .collect();
        let mut outgoing = HashMap::new();
        let index_of = |id: &str| config.nodes.iter().position(|n| n.id == id);
        for migration in &config.migrations {
            let (Some(from), Some(to)) = (index_of(&migration.from), index_of(&migration.to))
            else {
                continue;
            };
            let slot = usize::from(migration.slot);
            if slot >= states.len() || map.owner(migration.slot) != Some(from) {
                continue;
            }
            if Some(from) == me {
                states[slot] = SlotState::MigratingTo(to);
                let state = previous
                    .and_then(|p| p.outgoing.get(&migration.slot))
                    .cloned()
                    .unwrap_or_default();
                outgoing.insert(migration.slot, state);
            } else if Some(to) == me {
                states[slot] = SlotState::ImportingFrom(from);
            } else if Some(to) == primary {
                states[slot] = SlotState::PrimaryImportingFrom(from);
            }
        }
        ClusterView {
            config,
            map,
            me,
            primary,
            states,
            outgoing,
        }
    }

    pub fn epoch(&self) -> u64 {
        self.config.epoch
    }

    pub fn state(&self, slot: Slot) -> SlotState {
        self.states
            .get(usize::from(slot))
            .copied()
            .unwrap_or(SlotState::Unassigned)
    }

    pub fn node(&self, index: usize) -> Option<&NodeInfo> {
        self.config.nodes.get(index)
    }

    /// The primary this node follows, if it is a replica.
    pub fn my_primary(&self) -> Option<&NodeInfo> {
        self.node(self.primary?)
    }

    /// True if this node follows a primary.
    pub fn is_replica(&self) -> bool {
        self.primary.is_some()
    }

    /// Slots this node owns (migrating ones included), ascending.
    pub fn my_slots(&self) -> Vec<Slot> {
        self.me.map(|me| self.map.slots_of(me)).unwrap_or_default()
    }

    /// The slots whose keys a primary must not keep: owned by another node,
    /// with nothing moving to this one. A primary restarted from its data
    /// directory drops their keys, as Redis does: they are what it held
    /// before it was replaced or left, and serving them again, should the
    /// slot come back, would bring back writes since overwritten or
    /// deleted. A replica keeps everything: its primary replaces or
    /// continues its data. Empty until this node is in a configuration.
    pub fn foreign_slots(&self) -> Vec<Slot> {
        if self.me.is_none() || self.is_replica() {
            return Vec::new();
        }
        (0..SLOT_COUNT)
            .filter(|&slot| matches!(self.state(slot), SlotState::Other(_)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use keycafe_core::cluster::{Migration, SlotRange};

    use super::*;

    fn node(id: &str) -> NodeInfo {
        NodeInfo {
            id: id.into(),
            client_addr: format!("127.0.0.1:{id}"),
            bus_addr: String::new(),
            replica_of: None,
        }
    }

    fn config() -> ClusterConfig {
        ClusterConfig {
            epoch: 2,
            nodes: vec![node("1"), node("2")],
            slots: vec![
                SlotRange {
                    start: 0,
                    end: 8191,
                    owner: "1".into(),
                },
                SlotRange {
                    start: 8192,
                    end: 16383,
                    owner: "2".into(),
                },
            ],
            migrations: vec![Migration {
                slot: 10,
                from: "1".into(),
                to: "2".into(),
            }],
        }
    }

    #[test]
    fn slot_states_from_each_side() {
        let one = ClusterView::new(config(), "1", None);
        assert_eq!(one.state(0), SlotState::Mine);
        assert_eq!(one.state(9000), SlotState::Other(1));
        assert_eq!(one.state(10), SlotState::MigratingTo(1));
        assert!(one.outgoing.contains_key(&10));
        let two = ClusterView::new(config(), "2", None);
        assert_eq!(two.state(10), SlotState::ImportingFrom(0));
        assert_eq!(two.state(9000), SlotState::Mine);
        let stranger = ClusterView::new(config(), "3", None);
        assert_eq!(stranger.state(0), SlotState::Other(0));
        assert_eq!(ClusterView::empty().state(0), SlotState::Unassigned);
    }

    #[test]
    fn a_replica_holds_its_primarys_slots() {
        let mut config = config();
        config.nodes.push(NodeInfo {
            replica_of: Some("2".into()),
            ..node("3")
        });
        let replica = ClusterView::new(config, "3", None);
        assert_eq!(replica.state(9000), SlotState::Replicated(1));
        assert_eq!(replica.state(0), SlotState::Other(0));
        // Slot 10 moves to its primary: what arrives of it is kept.
        assert_eq!(replica.state(10), SlotState::PrimaryImportingFrom(0));
        assert!(replica.my_slots().is_empty());
    }

    #[test]
    fn a_primary_drops_the_slots_others_own_and_a_replica_nothing() {
        let one = ClusterView::new(config(), "1", None);
        let foreign = one.foreign_slots();
        assert_eq!(foreign.len(), 8192, "the other half");
        assert_eq!((foreign[0], foreign[8191]), (8192, 16383));
        // Slot 10 is moving from here to 2: this node's until it has moved.
        let two = ClusterView::new(config(), "2", None);
        assert!(!two.foreign_slots().contains(&10), "importing: kept");
        assert_eq!(two.foreign_slots().len(), 8191);
        let mut with_replica = config();
        with_replica.nodes.push(NodeInfo {
            replica_of: Some("2".into()),
            ..node("3")
        });
        assert!(
            ClusterView::new(with_replica, "3", None)
                .foreign_slots()
                .is_empty()
        );
        assert!(
            ClusterView::new(config(), "stranger", None)
                .foreign_slots()
                .is_empty()
        );
        assert!(ClusterView::empty().foreign_slots().is_empty());
    }

    #[test]
    fn migration_state_survives_a_new_epoch() {
        let first = ClusterView::new(config(), "1", None);
        first.outgoing[&10]
            .lock()
            .unwrap()
            .in_flight
            .insert(b"k".to_vec());
        let mut next = config();
        next.epoch = 3;
        let second = ClusterView::new(next, "1", Some(&first));
        assert!(
            second.outgoing[&10]
                .lock()
                .unwrap()
                .in_flight
                .contains(b"k".as_slice())
        );
    }
}
