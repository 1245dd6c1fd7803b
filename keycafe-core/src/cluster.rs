//! Cluster configuration: who the nodes are, which node owns each slot, and
//! which slots are moving.
//!
//! The coordinator is the source of truth for a [`ClusterConfig`]. Every
//! configuration carries an epoch that only grows; a node adopts a
//! configuration only if its epoch is higher than the one it holds
//! ([`ClusterConfig::supersedes`]), so a delayed or replayed message can never
//! take the cluster back in time.
//!
//! On the wire slot ownership is a list of ranges (compact, readable in JSON);
//! in memory a [`SlotMap`] answers "who owns slot S" with one array index.

use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

use crate::slot::{SLOT_COUNT, Slot};

/// A node's identity: 40 lower-case hex characters, as in Redis Cluster.
pub type NodeId = String;

/// A member of the cluster and where to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub id: NodeId,
    /// `host:port` that clients connect to.
    pub client_addr: String,
    /// `host:port` of the node's cluster bus.
    pub bus_addr: String,
    /// For a replica, the primary whose data it copies. Replicas own no
    /// slots; a primary (`None`) may own some.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_of: Option<NodeId>,
}

impl NodeInfo {
    pub fn is_replica(&self) -> bool {
        self.replica_of.is_some()
    }
}

/// Slots `start..=end`, owned by `owner`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotRange {
    pub start: Slot,
    pub end: Slot,
    pub owner: NodeId,
}

/// A slot whose keys are moving from one node to another. Until the move
/// completes (and a new epoch names `to` as the owner) `from` still owns it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Migration {
    pub slot: Slot,
    pub from: NodeId,
    pub to: NodeId,
}

/// One version of the cluster's layout.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ClusterConfig {
    /// Grows with every change; never reused.
    pub epoch: u64,
    pub nodes: Vec<NodeInfo>,
    /// Every assigned slot exactly once, in ascending order.
    pub slots: Vec<SlotRange>,
    /// Slots being moved right now.
    pub migrations: Vec<Migration>,
}

impl ClusterConfig {
    /// True if a node holding `current` should adopt `self`.
    pub fn supersedes(&self, current: Option<&ClusterConfig>) -> bool {
        current.is_none_or(|current| self.epoch > current.epoch)
    }

    pub fn node(&self, id: &str) -> Option<&NodeInfo> {
        self.nodes.iter().find(|node| node.id == id)
    }

    /// The replicas of the primary `primary`, in node-list order.
    pub fn replicas_of<'a>(&'a self, primary: &'a str) -> impl Iterator<Item = &'a NodeInfo> + 'a {
        self.nodes
            .iter()
            .filter(move |node| node.replica_of.as_deref() == Some(primary))
    }

    /// The migration of `slot`, if it is moving.
    pub fn migration(&self, slot: Slot) -> Option<&Migration> {
        self.migrations.iter().find(|m| m.slot == slot)
    }

    /// Slot ownership as a per-slot table of indexes into `nodes`.
    pub fn slot_map(&self) -> SlotMap {
        SlotMap::from_ranges(&self.nodes, &self.slots)
    }
}

/// The owner of every slot, as an index into the configuration's node list.
#[derive(Clone, PartialEq, Eq)]
pub struct SlotMap {
    owners: Box<[Option<u16>]>,
}

impl std::fmt::Debug for SlotMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotMap")
            .field("assigned", &self.assigned())
            .finish()
    }
}

impl Default for SlotMap {
    fn default() -> Self {
        SlotMap {
            owners: vec![None; usize::from(SLOT_COUNT)].into_boxed_slice(),
        }
    }
}

impl SlotMap {
    /// Builds the table from ranges; ranges naming an unknown node, or slots
    /// out of range, are skipped.
    pub fn from_ranges(nodes: &[NodeInfo], ranges: &[SlotRange]) -> SlotMap {
        let mut map = SlotMap::default();
        for range in ranges {
            if let Some(index) = nodes.iter().position(|n| n.id == range.owner) {
                map.assign(range.start..=range.end, Some(index));
            }
        }
        map
    }

    /// Index (into the node list) of the owner of `slot`.
    pub fn owner(&self, slot: Slot) -> Option<usize> {
        self.owners
            .get(usize::from(slot))
            .copied()
            .flatten()
            .map(usize::from)
    }

    pub fn set_owner(&mut self, slot: Slot, owner: Option<usize>) {
        self.assign(slot..=slot, owner);
    }

    /// Gives every slot of `slots` to `owner` (or to nobody). Slots past the
    /// last one are ignored.
    pub fn assign(&mut self, slots: RangeInclusive<Slot>, owner: Option<usize>) {
        let owner = owner.and_then(|o| u16::try_from(o).ok());
        let (start, end) = (usize::from(*slots.start()), usize::from(*slots.end()));
        if let Some(entries) = self.owners.get_mut(start..=end.min(self.owners.len() - 1)) {
            entries.fill(owner);
        }
    }

    /// Number of slots that have an owner.
    pub fn assigned(&self) -> usize {
        self.owners.iter().filter(|o| o.is_some()).count()
    }

    /// Slots owned by node `index`, ascending.
    pub fn slots_of(&self, index: usize) -> Vec<Slot> {
        (0..SLOT_COUNT)
            .filter(|&s| self.owner(s) == Some(index))
            .collect()
    }

    /// Maximal runs of slots with one owner, ascending, with that owner's
    /// index; slots without an owner are left out.
    pub fn runs(&self) -> impl Iterator<Item = (RangeInclusive<Slot>, usize)> + '_ {
        let mut start = 0;
        std::iter::from_fn(move || {
            while let Some(&owner) = self.owners.get(start) {
                let len = self.owners[start..]
                    .iter()
                    .take_while(|&&o| o == owner)
                    .count();
                let run = start..start + len;
                start = run.end;
                if let Some(owner) = owner {
                    // The table has SLOT_COUNT entries, so indexes fit in a Slot.
                    let slots = run.start as Slot..=(run.end - 1) as Slot;
                    return Some((slots, usize::from(owner)));
                }
            }
            None
        })
    }

    /// Renumbers the owners that still own a slot as 0, 1, 2, ... in their
    /// old order, and returns the old index of each: a caller whose node list
    /// the indexes point into keeps `list[old]` for every `old` returned, in
    /// that order, and so forgets the nodes that own nothing any more.
    pub fn compact(&mut self) -> Vec<usize> {
        let mut used: Vec<bool> = Vec::new();
        for &owner in self.owners.iter().flatten() {
            let owner = usize::from(owner);
            if owner >= used.len() {
                used.resize(owner + 1, false);
            }
            used[owner] = true;
        }
        let kept: Vec<usize> = (0..used.len()).filter(|&old| used[old]).collect();
        if kept.len() < used.len() {
            let mut renumber = vec![0u16; used.len()];
            for (new, &old) in kept.iter().enumerate() {
                // No more owners than slots, so the new index fits.
                renumber[old] = new as u16;
            }
            for owner in self.owners.iter_mut().flatten() {
                *owner = renumber[usize::from(*owner)];
            }
        }
        kept
    }

    /// Back to ranges (maximal runs of one owner), ascending.
    pub fn to_ranges(&self, nodes: &[NodeInfo]) -> Vec<SlotRange> {
        let mut ranges: Vec<SlotRange> = Vec::new();
        for (slots, index) in self.runs() {
            let Some(owner) = nodes.get(index) else {
                continue;
            };
            let (start, end) = (*slots.start(), *slots.end());
            match ranges.last_mut() {
                Some(last) if last.owner == owner.id && last.end + 1 == start => last.end = end,
                _ => ranges.push(SlotRange {
                    start,
                    end,
                    owner: owner.id.clone(),
                }),
            }
        }
        ranges
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str) -> NodeInfo {
        NodeInfo {
            id: id.into(),
            client_addr: format!("{id}:1"),
            bus_addr: format!("{id}:2"),
            replica_of: None,
        }
    }

    #[test]
    fn ranges_round_trip_through_the_slot_map() {
        let nodes = vec![node("a"), node("b")];
        let ranges = vec![
            SlotRange {
                start: 0,
                end: 99,
                owner: "a".into(),
            },
            SlotRange {
                start: 100,
                end: 16383,
                owner: "b".into(),
            },
        ];
        let map = SlotMap::from_ranges(&nodes, &ranges);
        assert_eq!(map.owner(0), Some(0));
        assert_eq!(map.owner(100), Some(1));
        assert_eq!(map.assigned(), 16384);
        assert_eq!(map.to_ranges(&nodes), ranges);
    }

    #[test]
    fn runs_assign_and_compact() {
        let mut map = SlotMap::default();
        assert_eq!(map.runs().count(), 0);
        map.assign(0..=SLOT_COUNT - 1, Some(0));
        map.assign(10..=19, Some(2));
        map.assign(15..=15, None);
        map.assign(16380..=u16::MAX, Some(1));
        let (start, end) = (20, 10);
        map.assign(start..=end, Some(3)); // empty: nothing changes
        let runs: Vec<_> = map.runs().collect();
        assert_eq!(
            runs,
            [
                (0..=9, 0),
                (10..=14, 2),
                (16..=19, 2),
                (20..=16379, 0),
                (16380..=16383, 1)
            ]
        );
        assert_eq!(map.assigned(), 16383);

        // Node 0 loses its slots: 1 and 2 become 0 and 1.
        map.assign(0..=16379, Some(2));
        assert_eq!(map.compact(), [1, 2]);
        assert_eq!(
            map.runs().collect::<Vec<_>>(),
            [(0..=16379, 1), (16380..=16383, 0)]
        );
        assert_eq!(map.compact(), [0, 1], "nothing more to drop");
    }

    #[test]
    fn replicas_are_listed_by_primary() {
        let mut replica = node("r");
        replica.replica_of = Some("a".into());
        let config = ClusterConfig {
            nodes: vec![node("a"), replica, node("b")],
            ..ClusterConfig::default()
        };
        let ids: Vec<&str> = config.replicas_of("a").map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["r"]);
        assert_eq!(config.replicas_of("b").count(), 0);
        assert!(config.node("r").is_some_and(NodeInfo::is_replica));
        let json = serde_json::to_string(&config.nodes[1]).unwrap();
        assert_eq!(
            json,
            r#"{"id":"r","client_addr":"r:1","bus_addr":"r:2","replica_of":"a"}"#
        );
    }

    #[test]
    fn only_newer_epochs_supersede() {
        let old = ClusterConfig {
            epoch: 5,
            ..ClusterConfig::default()
        };
        let new = ClusterConfig {
            epoch: 6,
            ..ClusterConfig::default()
        };
        assert!(new.supersedes(Some(&old)));
        assert!(!old.supersedes(Some(&new)));
        assert!(!old.supersedes(Some(&old)));
        assert!(old.supersedes(None));
    }

    #[test]
    fn json_shape_is_stable() {
        let config = ClusterConfig {
            epoch: 3,
            nodes: vec![node("a")],
            slots: vec![SlotRange {
                start: 0,
                end: 16383,
                owner: "a".into(),
            }],
            migrations: vec![],
        };
        let json = serde_json::to_string(&config).unwrap();
        assert_eq!(
            json,
            r#"{"epoch":3,"nodes":[{"id":"a","client_addr":"a:1","bus_addr":"a:2"}],"slots":[{"start":0,"end":16383,"owner":"a"}],"migrations":[]}"#
        );
        assert_eq!(
            serde_json::from_str::<ClusterConfig>(&json).unwrap(),
            config
        );
    }
}
