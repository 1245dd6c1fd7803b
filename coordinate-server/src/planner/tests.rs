use proptest::prelude::*;

use super::*;

const SLOTS: usize = SLOT_COUNT as usize;

/// A map from a per-slot owner table.
fn map_of(owners: &[Option<usize>]) -> SlotMap {
    let mut map = SlotMap::default();
    for (slot, &owner) in owners.iter().enumerate() {
        map.set_owner(slot as Slot, owner);
    }
    map
}

fn counts(map: &SlotMap, nodes: usize) -> Vec<usize> {
    let mut counts = vec![0; nodes];
    for slot in 0..SLOT_COUNT {
        if let Some(owner) = map.owner(slot) {
            counts[owner] += 1;
        }
    }
    counts
}

/// Applies a plan as the coordinator eventually does (every migration done).
fn apply(map: &SlotMap, plan: &Plan) -> SlotMap {
    let mut next = map.clone();
    for &(slot, to) in &plan.assign {
        assert_eq!(
            map.owner(slot),
            None,
            "slot {slot} is owned; it must migrate"
        );
        next.set_owner(slot, Some(to));
    }
    for &(slot, from, to) in &plan.moves {
        assert_eq!(
            map.owner(slot),
            Some(from),
            "slot {slot} moved from a non-owner"
        );
        assert_ne!(from, to, "slot {slot} moved to its own owner");
        next.set_owner(slot, Some(to));
    }
    next
}

/// The fewest owned slots any fair layout must move, computed the obvious
/// way: sort members by holding, the top `r` may keep `q + 1`.
fn lower_bound(map: &SlotMap, nodes: usize, members: &[usize]) -> usize {
    let counts = counts(map, nodes);
    let (base, extra) = (SLOTS / members.len(), SLOTS % members.len());
    let mut member_counts: Vec<usize> = members.iter().map(|&m| counts[m]).collect();
    member_counts.sort_unstable_by(|a, b| b.cmp(a));
    let members_surplus: usize = member_counts
        .iter()
        .enumerate()
        .map(|(rank, &c)| c.saturating_sub(base + usize::from(rank < extra)))
        .sum();
    let outsiders: usize = (0..nodes)
        .filter(|n| !members.contains(n))
        .map(|n| counts[n])
        .sum();
    members_surplus + outsiders
}

fn assert_each_slot_once(plan: &Plan) {
    let mut seen = vec![false; SLOTS];
    let slots = plan
        .assign
        .iter()
        .map(|&(s, _)| s)
        .chain(plan.moves.iter().map(|&(s, _, _)| s));
    for slot in slots {
        assert!(
            !std::mem::replace(&mut seen[usize::from(slot)], true),
            "slot {slot} planned twice"
        );
    }
}

#[test]
fn the_first_node_gets_every_slot_without_a_migration() {
    let plan = plan(&SlotMap::default(), &[0]);
    assert!(plan.moves.is_empty());
    assert_eq!(plan.assign.len(), SLOTS);
    assert!(plan.assign.iter().all(|&(_, to)| to == 0));
}

#[test]
fn no_members_no_plan() {
    let map = map_of(&vec![Some(0); SLOTS]);
    assert!(plan(&map, &[]).is_empty());
    assert!(!is_fair(&map, &[]));
}

#[test]
fn growing_from_one_to_ten_nodes_moves_only_to_the_newcomer() {
    let mut map = apply(&SlotMap::default(), &plan(&SlotMap::default(), &[0]));
    for n in 2..=10 {
        let members: Vec<usize> = (0..n).collect();
        let newcomer = n - 1;
        let plan = plan(&map, &members);
        assert!(plan.assign.is_empty());
        assert!(
            plan.moves.iter().all(|&(_, _, to)| to == newcomer),
            "{n} nodes"
        );
        // The newcomer gets exactly its fair share and nobody else changes
        // more than necessary.
        assert!(plan.moves.len() == SLOTS / n || plan.moves.len() == SLOTS / n + 1);
        assert_eq!(plan.moves.len(), lower_bound(&map, n, &members));
        assert_each_slot_once(&plan);
        map = apply(&map, &plan);
        assert!(is_fair(&map, &members), "{n} nodes: {:?}", counts(&map, n));
    }
    // Taking the top of each donor keeps ranges few: 10 nodes, at most a
    // handful of ranges each.
    let nodes: Vec<keycafe_core::cluster::NodeInfo> = (0..10)
        .map(|i| keycafe_core::cluster::NodeInfo {
            id: format!("n{i}"),
            client_addr: String::new(),
            bus_addr: String::new(),
            replica_of: None,
        })
        .collect();
    let ranges = map.to_ranges(&nodes).len();
    assert!(ranges <= 60, "{ranges} ranges");
}

#[test]
fn shrinking_from_ten_to_one_moves_only_the_leavers_slots() {
    let mut members: Vec<usize> = (0..10).collect();
    let mut map = SlotMap::default();
    map = apply(&map, &plan(&map, &members));
    assert!(is_fair(&map, &members));
    // Leave in an arbitrary order: middle, first, last, ...
    for leaver in [4, 0, 9, 2, 7, 1, 8, 5, 3] {
        members.retain(|&m| m != leaver);
        let held = counts(&map, 10)[leaver];
        let plan = plan(&map, &members);
        assert!(
            plan.moves.iter().all(|&(_, from, _)| from == leaver),
            "leaver {leaver}"
        );
        assert_eq!(plan.moves.len(), held);
        assert_eq!(plan.moves.len(), lower_bound(&map, 10, &members));
        assert_each_slot_once(&plan);
        map = apply(&map, &plan);
        assert!(
            is_fair(&map, &members),
            "after {leaver} left: {:?}",
            counts(&map, 10)
        );
        assert_eq!(counts(&map, 10)[leaver], 0);
    }
    assert_eq!(members, vec![6]);
    assert_eq!(counts(&map, 10)[6], SLOTS);
}

#[test]
fn already_fair_maps_move_nothing() {
    for n in 1..=12 {
        let members: Vec<usize> = (0..n).collect();
        // Interleaved ownership: fair, but not in ranges.
        let owners: Vec<Option<usize>> = (0..SLOTS).map(|s| Some(s % n)).collect();
        let map = map_of(&owners);
        assert!(is_fair(&map, &members));
        assert!(plan(&map, &members).is_empty(), "{n} nodes");
    }
}

#[test]
fn a_node_outside_the_members_is_emptied() {
    // 0 and 2 are members; 1 holds slots but is leaving.
    let owners: Vec<Option<usize>> = (0..SLOTS).map(|s| Some(s % 3)).collect();
    let map = map_of(&owners);
    let plan = plan(&map, &[0, 2]);
    let next = apply(&map, &plan);
    assert_eq!(counts(&next, 3)[1], 0);
    assert!(is_fair(&next, &[0, 2]));
}

/// A random layout: up to 8 nodes, about one slot in nine unowned, and a
/// non-empty member subset. The owner table comes from a seeded generator
/// (generating 16384 values through proptest is needlessly slow).
fn layout() -> impl Strategy<Value = (Vec<Option<usize>>, Vec<usize>)> {
    (1usize..=8, any::<u64>()).prop_flat_map(|(nodes, seed)| {
        let mut state = seed;
        let owners: Vec<Option<usize>> = (0..SLOTS)
            .map(|_| {
                // splitmix64
                state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = state;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^= z >> 31;
                let pick = (z % (nodes as u64 * 9 / 8 + 1)) as usize;
                (pick < nodes).then_some(pick)
            })
            .collect();
        let members = proptest::sample::subsequence((0..nodes).collect::<Vec<_>>(), 1..=nodes);
        (Just(owners), members)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any layout, any non-empty member set: the plan makes it fair and moves
    /// exactly the lower bound of owned slots.
    #[test]
    fn any_layout_becomes_fair_with_the_fewest_moves((owners, members) in layout()) {
        let nodes = 8;
        let map = map_of(&owners);
        let plan = plan(&map, &members);
        assert_each_slot_once(&plan);
        prop_assert_eq!(plan.assign.len(), SLOTS - map.assigned());
        prop_assert_eq!(plan.moves.len(), lower_bound(&map, nodes, &members));
        let next = apply(&map, &plan);
        prop_assert!(is_fair(&next, &members));
        // Planning again changes nothing.
        prop_assert!(super::plan(&next, &members).is_empty());
    }
}
