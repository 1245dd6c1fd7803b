//! What the group has agreed on, and the effects waiting for it: the pure
//! half of the group's driver, tested without Raft or sockets.
//!
//! - [`Applied`] is what the committed log has made: the coordinator's
//!   latest [`Durable`] state and the group's members. Every member applies
//!   the same entries in the same order, so every member holds the same.
//! - [`Held`] keeps the leader's rule: an effect that the state machine
//!   made after a `Persist` goes out only once that state is committed.

use std::collections::{BTreeMap, VecDeque};

use raft::prelude::{ConfChangeSingle, ConfChangeType, ConfChangeV2, Entry, EntryType};

use super::{Member, MemberId, Proposal, SnapshotData};
use crate::state::{Durable, Effect};

/// What the committed log has made of the group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// The coordinator's latest committed state (none before the first
    /// decision).
    pub state: Option<Durable>,
    /// The members and their addresses.
    pub members: BTreeMap<MemberId, Member>,
    /// The index of the last entry applied.
    pub index: u64,
}

/// What applying an entry changed, for the driver to act on.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Nothing outside the applied state: a new leader's empty entry, or a
    /// new coordinator state.
    None,
    /// A membership change, to apply to Raft (`apply_conf_change`) and to
    /// the links; `added` says where a new member is.
    Members {
        change: ConfChangeV2,
        added: Vec<Member>,
        removed: Vec<MemberId>,
    },
}

impl Applied {
    /// Starts from a snapshot's contents.
    pub fn from_snapshot(data: SnapshotData, index: u64) -> Applied {
        Applied {
            state: data.state,
            members: data.members.into_iter().map(|m| (m.id, m)).collect(),
            index,
        }
    }

    /// What a snapshot at [`Applied::index`] carries.
    pub fn snapshot_data(&self) -> SnapshotData {
        SnapshotData {
            state: self.state.clone(),
            members: self.members.values().cloned().collect(),
        }
    }

    /// Applies one committed entry. An entry that does not parse is an
    /// error: every member wrote it, so it can only come from a different
    /// version of the coordinator, and skipping it would let members
    /// disagree.
    pub fn apply(&mut self, entry: &Entry) -> anyhow::Result<Change> {
        self.index = entry.index;
        match entry.get_entry_type() {
            EntryType::EntryNormal if entry.data.is_empty() => Ok(Change::None),
            EntryType::EntryNormal => {
                let proposal: Proposal = serde_json::from_slice(&entry.data).map_err(|err| {
                    anyhow::anyhow!("log entry {} is not a proposal: {err}", entry.index)
                })?;
                match proposal {
                    Proposal::State(state) => self.state = Some(state),
                }
                Ok(Change::None)
            }
            EntryType::EntryConfChange => {
                let mut change = raft::prelude::ConfChange::default();
                protobuf::Message::merge_from_bytes(&mut change, &entry.data).map_err(|err| {
                    anyhow::anyhow!(
                        "log entry {} is not a membership change: {err}",
                        entry.index
                    )
                })?;
                // The group proposes version 2 only; a version 1 entry is
                // one change of one member, as version 2 writes it.
                let mut v2 = ConfChangeV2::default();
                let mut single = ConfChangeSingle {
                    node_id: change.node_id,
                    ..ConfChangeSingle::default()
                };
                single.set_change_type(change.get_change_type());
                v2.mut_changes().push(single);
                v2.set_context(change.take_context());
                self.apply_members(v2)
            }
            EntryType::EntryConfChangeV2 => {
                let mut change = ConfChangeV2::default();
                protobuf::Message::merge_from_bytes(&mut change, &entry.data).map_err(|err| {
                    anyhow::anyhow!(
                        "log entry {} is not a membership change: {err}",
                        entry.index
                    )
                })?;
                self.apply_members(change)
            }
        }
    }

    /// Records who joined or left; the member's addresses travel in the
    /// change's context.
    fn apply_members(&mut self, change: ConfChangeV2) -> anyhow::Result<Change> {
        let context: Vec<Member> = match change.get_context() {
            [] => Vec::new(),
            bytes => serde_json::from_slice(bytes)
                .map_err(|err| anyhow::anyhow!("a membership change names no members: {err}"))?,
        };
        let (mut added, mut removed) = (Vec::new(), Vec::new());
        for single in change.get_changes() {
            let id = single.node_id;
            match single.get_change_type() {
                ConfChangeType::AddNode | ConfChangeType::AddLearnerNode => {
                    if let Some(member) = context.iter().find(|m| m.id == id) {
                        self.members.insert(id, member.clone());
                        added.push(member.clone());
                    }
                }
                ConfChangeType::RemoveNode => {
                    self.members.remove(&id);
                    removed.push(id);
                }
            }
        }
        Ok(Change::Members {
            change,
            added,
            removed,
        })
    }
}

/// The leader's effects, each held until every state proposed before it is
/// committed, and a lease until the group has confirmed, after the lease
/// was made, that this member still leads.
///
/// Why leases wait for a confirmation (Raft's read index: a round of
/// heartbeats answered by a majority in this leader's term): a leader that
/// was paused, or cut off, may not know yet that another was elected. A
/// lease it granted after a majority confirmed it still led was granted
/// before any new leader could be elected (that election needs a vote from
/// someone in the confirming majority, given after it confirmed), so it
/// ends before a new leader's first lease assumption: `now + lease` when
/// the new leader starts. A deposed leader's leases never get confirmed.
#[derive(Debug, Default)]
pub struct Held {
    /// Effects in the order they were made, with what each waits for.
    queue: VecDeque<(Barrier, Effect)>,
    /// The index of the last state proposed.
    proposed: u64,
}

/// What an effect waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Barrier {
    /// This log index applied.
    index: u64,
    /// This leadership confirmation (0: none).
    confirmation: u64,
}

impl Held {
    /// A state was proposed at `index`: what follows waits for it.
    pub fn proposed(&mut self, index: u64) {
        self.proposed = self.proposed.max(index);
    }

    /// `effect` goes out now if nothing it must wait for is pending
    /// (`applied` is the last index applied), else it waits.
    pub fn hold_or_release(&mut self, effect: Effect, applied: u64) -> Option<Effect> {
        if self.proposed <= applied && self.queue.is_empty() {
            return Some(effect);
        }
        self.hold(effect, 0);
        None
    }

    /// `effect` waits for the leadership confirmation `confirmation` (and
    /// what was proposed before it).
    pub fn hold_for_confirmation(&mut self, effect: Effect, confirmation: u64) {
        self.hold(effect, confirmation);
    }

    fn hold(&mut self, effect: Effect, confirmation: u64) {
        let barrier = Barrier {
            index: self.proposed,
            confirmation,
        };
        self.queue.push_back((barrier, effect));
    }

    /// The effects whose states are applied (`applied`) and whose
    /// confirmations have come (`confirmed`, the latest), in order.
    pub fn released(&mut self, applied: u64, confirmed: u64) -> Vec<Effect> {
        let mut out = Vec::new();
        while let Some((barrier, _)) = self.queue.front() {
            if barrier.index > applied || barrier.confirmation > confirmed {
                break;
            }
            if let Some((_, effect)) = self.queue.pop_front() {
                out.push(effect);
            }
        }
        out
    }

    /// Forgets everything held: leadership was lost, and what was proposed
    /// may never commit. Nothing held was seen by anyone.
    pub fn clear(&mut self) {
        self.queue.clear();
        self.proposed = 0;
    }

    /// How many effects wait.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use keycafe_core::cluster::ClusterConfig;
    use keycafe_core::coord::CoordinatorMessage;

    use super::*;

    fn state(epoch: u64) -> Durable {
        Durable {
            config: ClusterConfig {
                epoch,
                ..ClusterConfig::default()
            },
            leaving: Vec::new(),
        }
    }

    fn entry(index: u64, proposal: Option<Proposal>) -> Entry {
        let mut entry = Entry {
            index,
            term: 1,
            ..Entry::default()
        };
        if let Some(proposal) = proposal {
            entry.data = serde_json::to_vec(&proposal).unwrap().into();
        }
        entry
    }

    fn member(id: MemberId) -> Member {
        Member {
            id,
            group_addr: format!("10.0.0.{id}:9900"),
            node_addr: format!("10.0.0.{id}:9800"),
            http_addr: None,
        }
    }

    fn send(epoch: u64) -> Effect {
        Effect::Send {
            to: vec![1],
            message: CoordinatorMessage::Config(state(epoch).config),
        }
    }

    #[test]
    fn states_apply_in_order_and_empty_entries_change_nothing() {
        let mut applied = Applied::default();
        assert_eq!(applied.apply(&entry(1, None)).unwrap(), Change::None);
        assert_eq!(applied.state, None);
        applied
            .apply(&entry(2, Some(Proposal::State(state(4)))))
            .unwrap();
        applied
            .apply(&entry(3, Some(Proposal::State(state(5)))))
            .unwrap();
        assert_eq!(applied.state, Some(state(5)));
        assert_eq!(applied.index, 3);
        let mut garbage = entry(4, None);
        garbage.data = b"{not json".to_vec().into();
        assert!(applied.apply(&garbage).is_err());
    }

    #[test]
    fn membership_changes_carry_the_members_addresses() {
        let mut applied = Applied::default();
        let mut change = ConfChangeV2::default();
        let mut add = ConfChangeSingle {
            node_id: 4,
            ..ConfChangeSingle::default()
        };
        add.set_change_type(ConfChangeType::AddNode);
        change.mut_changes().push(add);
        change.set_context(serde_json::to_vec(&[member(4)]).unwrap().into());
        let mut entry = Entry {
            index: 7,
            ..Entry::default()
        };
        entry.set_entry_type(EntryType::EntryConfChangeV2);
        entry.data = protobuf::Message::write_to_bytes(&change).unwrap().into();
        let Change::Members { added, removed, .. } = applied.apply(&entry).unwrap() else {
            panic!("a membership change");
        };
        assert_eq!((added, removed), (vec![member(4)], vec![]));
        assert_eq!(applied.members[&4], member(4));

        let mut change = ConfChangeV2::default();
        let mut remove = ConfChangeSingle {
            node_id: 4,
            ..ConfChangeSingle::default()
        };
        remove.set_change_type(ConfChangeType::RemoveNode);
        change.mut_changes().push(remove);
        entry.index = 8;
        entry.data = protobuf::Message::write_to_bytes(&change).unwrap().into();
        let Change::Members { removed, .. } = applied.apply(&entry).unwrap() else {
            panic!("a membership change");
        };
        assert_eq!(removed, vec![4]);
        assert!(applied.members.is_empty());
    }

    #[test]
    fn a_snapshot_holds_what_was_applied() {
        let mut applied = Applied::default();
        applied
            .apply(&entry(5, Some(Proposal::State(state(9)))))
            .unwrap();
        applied.members.insert(1, member(1));
        let copy = Applied::from_snapshot(applied.snapshot_data(), applied.index);
        assert_eq!(copy, applied);
    }

    #[test]
    fn effects_wait_for_the_states_proposed_before_them() {
        let mut held = Held::default();
        // Nothing proposed: out at once.
        assert_eq!(held.hold_or_release(send(1), 0), Some(send(1)));
        held.proposed(10);
        assert_eq!(held.hold_or_release(send(2), 9), None);
        held.proposed(11);
        assert_eq!(held.hold_or_release(send(3), 9), None);
        // Later effects keep their place behind earlier ones.
        assert_eq!(held.released(9, 0), vec![]);
        assert_eq!(held.released(10, 0), vec![send(2)]);
        assert_eq!(held.hold_or_release(send(4), 10), None);
        assert_eq!(held.released(11, 0), vec![send(3), send(4)]);
        assert!(held.is_empty());
        assert_eq!(held.hold_or_release(send(5), 11), Some(send(5)));
        // Leadership lost: what was held is dropped, never sent.
        held.proposed(12);
        assert_eq!(held.hold_or_release(send(6), 11), None);
        held.clear();
        assert_eq!(held.released(20, 0), vec![]);
    }

    #[test]
    fn leases_wait_for_a_confirmation_made_after_them() {
        let lease = |seq| Effect::Send {
            to: vec![1],
            message: CoordinatorMessage::Lease { seq, ms: 1000 },
        };
        let mut held = Held::default();
        held.hold_for_confirmation(lease(1), 1);
        // What comes after a lease waits behind it.
        assert_eq!(held.hold_or_release(send(1), 0), None);
        assert_eq!(held.released(0, 0), vec![]);
        assert_eq!(held.released(0, 1), vec![lease(1), send(1)]);
        held.hold_for_confirmation(lease(2), 2);
        held.hold_for_confirmation(lease(3), 3);
        assert_eq!(held.released(0, 2), vec![lease(2)]);
        // A deposed leader's confirmations never come.
        held.clear();
        assert_eq!(held.released(0, 9), vec![]);
    }
}
