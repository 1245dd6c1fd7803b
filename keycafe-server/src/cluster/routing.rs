//! May this node run this command? The slot check of cluster mode.
//!
//! Every command with keys is checked before it runs, with Redis Cluster's
//! answers so that cluster clients know what to do:
//!
//! - keys in different slots: `CROSSSLOT`;
//! - a slot another node owns: `MOVED slot host:port` (update your map);
//! - a slot nobody owns: `CLUSTERDOWN`;
//! - a slot this node is migrating away: served if the keys are still here,
//!   `ASK slot host:port` (ask the target, once) if none are, `TRYAGAIN` if
//!   some are, or if a write touches a key whose copy is in flight;
//! - a slot being imported here: served only right after `ASKING`, otherwise
//!   `MOVED` to the owner;
//! - a slot of this replica's primary: reads served to connections that sent
//!   `READONLY`, everything else `MOVED` to the primary.

use std::sync::{Arc, Mutex};

use keycafe_core::{Args, Slot, key_slot};

use super::view::{ClusterView, OutgoingSlot, SlotState};
use crate::cmd::CommandSpec;
use crate::connection::ConnState;
use crate::store::Store;

/// The outcome of the slot check.
pub enum Decision {
    /// Run the command.
    Serve,
    /// The slot is migrating away: run the command only after
    /// [`check_migrating`] passes, holding this lock throughout.
    Migrating {
        slot: Slot,
        target: String,
        outgoing: Arc<Mutex<OutgoingSlot>>,
    },
    /// Answer with this error instead.
    Refuse(String),
}

/// The key arguments of a request, from the command table's positions.
pub fn keys<'a>(spec: &CommandSpec, args: Args<'a>) -> impl Iterator<Item = &'a [u8]> + 'a {
    let (first, step) = (spec.first_key.max(0) as usize, spec.step.max(1) as usize);
    let last = match spec.last_key {
        n if n < 0 => args.len().saturating_sub(n.unsigned_abs() as usize),
        n => n as usize,
    };
    let count = if first == 0 || last < first {
        0
    } else {
        (last - first) / step + 1
    };
    (0..count).filter_map(move |i| args.get(first + i * step))
}

/// Decides whether this node may run `args` now.
pub fn check(view: &ClusterView, spec: &CommandSpec, args: Args<'_>, conn: &ConnState) -> Decision {
    let mut slots = keys(spec, args).map(key_slot);
    let Some(slot) = slots.next() else {
        return Decision::Serve;
    };
    if slots.any(|other| other != slot) {
        return Decision::Refuse("CROSSSLOT Keys in request don't hash to the same slot".into());
    }
    let address = |index: usize| {
        view.node(index)
            .map_or("?", |n| n.client_addr.as_str())
            .to_string()
    };
    match view.state(slot) {
        SlotState::Mine => Decision::Serve,
        SlotState::ImportingFrom(_) if conn.asking => Decision::Serve,
        SlotState::Replicated(_) if conn.readonly && !spec.is_write() => Decision::Serve,
        SlotState::Other(owner)
        | SlotState::ImportingFrom(owner)
        | SlotState::Replicated(owner) => {
            Decision::Refuse(format!("MOVED {slot} {}", address(owner)))
        }
        SlotState::Unassigned => Decision::Refuse("CLUSTERDOWN Hash slot not served".into()),
        SlotState::MigratingTo(target) => match view.outgoing.get(&slot) {
            Some(outgoing) => Decision::Migrating {
                slot,
                target: address(target),
                outgoing: outgoing.clone(),
            },
            None => Decision::Serve,
        },
    }
}

/// The second half of the check for a migrating slot, run while holding the
/// slot's lock: which of the keys are still here decides.
pub fn check_migrating(
    outgoing: &OutgoingSlot,
    store: &Store,
    spec: &CommandSpec,
    args: Args<'_>,
    slot: Slot,
    target: &str,
) -> Result<(), String> {
    let write = spec.flags.contains(&"write");
    let now = crate::store::now_ms();
    let (mut here, mut missing) = (0, 0);
    for key in keys(spec, args) {
        if write && outgoing.in_flight.contains(key) {
            return Err(format!(
                "TRYAGAIN Slot {slot} is being migrated; retry shortly"
            ));
        }
        if store.get_with(key, now, |value| value.is_some()) {
            here += 1;
        } else {
            missing += 1;
        }
    }
    match (here, missing) {
        (_, 0) => Ok(()),
        (0, _) => Err(format!("ASK {slot} {target}")),
        _ => Err("TRYAGAIN Multiple keys request during rehashing of slot".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::lookup;

    fn key_list(command: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut source = Vec::new();
        let mut spans = Vec::new();
        for arg in command {
            spans.push(source.len()..source.len() + arg.len());
            source.extend_from_slice(arg);
        }
        let spec = lookup(command[0]).expect("known command");
        keys(spec, Args::new(&source, &spans))
            .map(<[u8]>::to_vec)
            .collect()
    }

    #[test]
    fn key_positions_follow_the_table() {
        assert_eq!(key_list(&[b"GET", b"a"]), vec![b"a".to_vec()]);
        assert_eq!(
            key_list(&[b"SET", b"a", b"v", b"EX", b"10"]),
            vec![b"a".to_vec()]
        );
        assert_eq!(
            key_list(&[b"MSET", b"a", b"1", b"b", b"2"]),
            vec![b"a".to_vec(), b"b".to_vec()]
        );
        assert_eq!(key_list(&[b"DEL", b"a", b"b", b"c"]).len(), 3);
        assert!(key_list(&[b"PING"]).is_empty());
        assert!(key_list(&[b"DBSIZE"]).is_empty());
    }
}
