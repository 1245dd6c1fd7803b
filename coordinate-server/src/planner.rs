//! Slot planning: who should own which slot, and the fewest moves to get there.
//!
//! [`plan`] is a pure function of the current ownership and the set of nodes
//! that should share the slots (the *members*: every node except those
//! leaving). It answers with two lists:
//!
//! - **assignments** of slots nobody owns (the very first node gets all 16384
//!   this way): there are no keys to move, so the coordinator hands them out
//!   directly;
//! - **moves** of owned slots, which the coordinator turns into migrations.
//!
//! # Fairness
//!
//! With `N` members, `q = 16384 / N` and `r = 16384 % N`, a fair layout gives
//! `r` members `q + 1` slots and the others `q`. Non-members get nothing.
//!
//! # Fewest moves
//!
//! For given targets, the slots that must move are exactly each node's surplus
//! over its target, so the plan moves `Σ max(0, held − target)` slots and not
//! one more. The only choice left is *which* members get the `r` extra slots;
//! giving them to the members that already hold the most minimises the
//! surplus (ties go to the member listed first, so the plan is
//! deterministic). A layout that is already fair therefore moves nothing, a
//! join moves slots only to the newcomer, and a leave moves only the leaver's
//! slots.
//!
//! Which slots move: free slots first (they cost nothing), then each donor's
//! highest-numbered surplus slots, handed to receivers in member order. Taking
//! from the top keeps each node's slots in few, long ranges.

use keycafe_core::cluster::SlotMap;
use keycafe_core::{SLOT_COUNT, Slot};

/// The outcome of planning: what to assign directly and what to migrate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Unowned slots and the member (node index) that should own each.
    pub assign: Vec<(Slot, usize)>,
    /// Owned slots to migrate: `(slot, from, to)` as node indexes.
    pub moves: Vec<(Slot, usize, usize)>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.assign.is_empty() && self.moves.is_empty()
    }
}

/// Plans a fair layout of all slots over `members` (indexes into the node
/// list that `map` refers to), moving as few owned slots as possible.
///
/// Slots owned by a node that is not a member are all moved away. With no
/// members there is nowhere to put anything, and the plan is empty.
pub fn plan(map: &SlotMap, members: &[usize]) -> Plan {
    let mut plan = Plan::default();
    if members.is_empty() {
        return plan;
    }
    let held = holdings(map);
    let targets = targets(&held, members);

    // Slots that must change hands: free slots first, then every node's
    // surplus (its highest slots), in node-index order.
    let mut pool: Vec<(Slot, Option<usize>)> = (0..SLOT_COUNT)
        .filter(|&slot| map.owner(slot).is_none())
        .map(|slot| (slot, None))
        .collect();
    for (node, slots) in held.iter().enumerate() {
        let target = target_of(&targets, node);
        if slots.len() > target {
            let surplus = &slots[target..];
            pool.extend(surplus.iter().map(|&slot| (slot, Some(node))));
        }
    }

    // Receivers in member order, each filled up to its target.
    let mut pool = pool.into_iter();
    for &(member, target) in &targets {
        let have = held.get(member).map_or(0, Vec::len);
        for (slot, from) in pool.by_ref().take(target.saturating_sub(have)) {
            match from {
                None => plan.assign.push((slot, member)),
                Some(from) => plan.moves.push((slot, from, member)),
            }
        }
    }
    plan.assign.sort_unstable();
    plan.moves.sort_unstable();
    plan
}

/// Each node's slots (by node index), ascending: a surplus `slots[target..]`
/// is the node's highest slots.
fn holdings(map: &SlotMap) -> Vec<Vec<Slot>> {
    let mut held: Vec<Vec<Slot>> = Vec::new();
    for slot in 0..SLOT_COUNT {
        if let Some(owner) = map.owner(slot) {
            if held.len() <= owner {
                held.resize_with(owner + 1, Vec::new);
            }
            held[owner].push(slot);
        }
    }
    held
}

/// `(member, target)` for every member, in the order given: the `r` members
/// holding the most get `q + 1`.
fn targets(held: &[Vec<Slot>], members: &[usize]) -> Vec<(usize, usize)> {
    let total = usize::from(SLOT_COUNT);
    let (base, extra) = (total / members.len(), total % members.len());
    let count = |node: usize| held.get(node).map_or(0, Vec::len);
    let mut by_holding: Vec<(usize, usize)> = members.iter().copied().enumerate().collect();
    // Most held first; ties keep member order (stable sort).
    by_holding.sort_by_key(|&(_, node)| std::cmp::Reverse(count(node)));
    let mut targets: Vec<(usize, usize, usize)> = by_holding
        .into_iter()
        .enumerate()
        .map(|(rank, (order, node))| (order, node, base + usize::from(rank < extra)))
        .collect();
    targets.sort_by_key(|&(order, _, _)| order);
    targets
        .into_iter()
        .map(|(_, node, target)| (node, target))
        .collect()
}

fn target_of(targets: &[(usize, usize)], node: usize) -> usize {
    targets
        .iter()
        .find(|&&(member, _)| member == node)
        .map_or(0, |&(_, target)| target)
}

/// True if `map` gives every slot to a member and splits them fairly.
pub fn is_fair(map: &SlotMap, members: &[usize]) -> bool {
    if members.is_empty() || map.assigned() != usize::from(SLOT_COUNT) {
        return false;
    }
    let held = holdings(map);
    let (base, extra) = (
        usize::from(SLOT_COUNT) / members.len(),
        usize::from(SLOT_COUNT) % members.len(),
    );
    let counts: Vec<usize> = members
        .iter()
        .map(|&m| held.get(m).map_or(0, Vec::len))
        .collect();
    let held_by_members: usize = counts.iter().sum();
    held_by_members == usize::from(SLOT_COUNT)
        && counts.iter().all(|&c| c == base || c == base + 1)
        && counts.iter().filter(|&&c| c == base + 1).count() == extra
}

#[cfg(test)]
mod tests;
