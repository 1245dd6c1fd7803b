//! The invariants of a coordinator state, checked on every load from disk
//! (and by the tests on every persisted state).

use std::collections::BTreeSet;

use keycafe_core::SLOT_COUNT;

use super::Durable;

/// Checks a persisted (or otherwise untrusted) state against the invariants
/// the coordinator keeps: unique nodes, replicas of other known primaries,
/// ranges in order over known primaries, migrations of owned slots between
/// primaries, leavers that are members.
pub fn validate(state: &Durable) -> Result<(), String> {
    let config = &state.config;
    let mut ids = BTreeSet::new();
    for node in &config.nodes {
        if !ids.insert(node.id.as_str()) {
            return Err(format!("node {} is listed twice", node.id));
        }
    }
    let mut replicas = BTreeSet::new();
    for node in &config.nodes {
        let Some(primary) = &node.replica_of else {
            continue;
        };
        let is_primary = config.node(primary).is_some_and(|p| !p.is_replica());
        if *primary == node.id || !is_primary {
            return Err(format!(
                "node {} is a replica of {primary}, which is not another known primary",
                node.id
            ));
        }
        replicas.insert(node.id.as_str());
    }
    let mut next = 0u32;
    for range in &config.slots {
        if u32::from(range.start) < next || range.start > range.end || range.end >= SLOT_COUNT {
            return Err(format!(
                "slot range {}-{} is out of order or out of bounds",
                range.start, range.end
            ));
        }
        if !ids.contains(range.owner.as_str()) {
            return Err(format!(
                "slot range {}-{} names unknown node {}",
                range.start, range.end, range.owner
            ));
        }
        if replicas.contains(range.owner.as_str()) {
            return Err(format!(
                "slot range {}-{} is owned by replica {}",
                range.start, range.end, range.owner
            ));
        }
        next = u32::from(range.end) + 1;
    }
    let map = config.slot_map();
    let mut moving = BTreeSet::new();
    for m in &config.migrations {
        let owner = map.owner(m.slot).map(|i| config.nodes[i].id.as_str());
        if owner != Some(m.from.as_str()) || !ids.contains(m.to.as_str()) || m.from == m.to {
            return Err(format!(
                "migration of slot {} from {} to {} does not fit the slot map",
                m.slot, m.from, m.to
            ));
        }
        if replicas.contains(m.to.as_str()) {
            return Err(format!(
                "migration of slot {} goes to replica {}",
                m.slot, m.to
            ));
        }
        if !moving.insert(m.slot) {
            return Err(format!("slot {} migrates twice", m.slot));
        }
    }
    if let Some(stranger) = state.leaving.iter().find(|id| !ids.contains(id.as_str())) {
        return Err(format!("leaving node {stranger} is not a member"));
    }
    Ok(())
}
