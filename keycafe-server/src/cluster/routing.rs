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
//!
//! A write that passes (and a read, for connections that asked for fenced
//! reads) must then pass [`check_lease`]: a primary whose lease has run out
//! may have been replaced, so it answers `CLUSTERDOWN` until the
//! coordinator renews the lease or tells it who owns the slots now.

use std::sync::{Arc, Mutex};

use keycafe_core::{Slot, key_slot};

use super::lease::Lease;
use super::view::{ClusterView, OutgoingSlot, SlotState};
use crate::store::Store;

/// What the slot check needs to know about a request besides its keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Access {
    /// The command changes data.
    pub write: bool,
    /// The connection sent ASKING just before it.
    pub asking: bool,
    /// The connection sent READONLY (a replica may serve its reads).
    pub readonly: bool,
}

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

/// Decides whether this node may run a request with these keys now.
pub fn check<'k>(
    view: &ClusterView,
    keys: impl Iterator<Item = &'k [u8]>,
    access: Access,
) -> Decision {
    let mut slots = keys.map(key_slot);
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
        SlotState::ImportingFrom(_) if access.asking => Decision::Serve,
        SlotState::Replicated(_) if access.readonly && !access.write => Decision::Serve,
        SlotState::Other(owner)
        | SlotState::ImportingFrom(owner)
        | SlotState::PrimaryImportingFrom(owner)
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

/// May this node acknowledge a write (or serve a fenced read) now? Only
/// while its lease holds (see [`super::lease`]). A replica never holds one.
pub fn check_lease(
    lease: &Lease,
    view: &ClusterView,
    now_ms: u64,
    write: bool,
) -> Result<(), String> {
    if lease.holds(now_ms) {
        Ok(())
    } else if view.is_replica() && write {
        Err("READONLY You can't write against a read only replica.".into())
    } else if view.is_replica() {
        Err("CLUSTERDOWN A replica cannot serve fenced reads".into())
    } else {
        Err(
            "CLUSTERDOWN This primary has no lease from the coordinator: it cannot \
             confirm it still owns its slots"
                .into(),
        )
    }
}

/// The second half of the check for a migrating slot, run while holding the
/// slot's lock: which of the keys are still here decides.
pub fn check_migrating<'k>(
    outgoing: &OutgoingSlot,
    store: &Store,
    keys: impl Iterator<Item = &'k [u8]>,
    write: bool,
    slot: Slot,
    target: &str,
) -> Result<(), String> {
    let now = crate::store::now_ms();
    let (mut here, mut missing) = (0, 0);
    for key in keys {
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

    #[test]
    fn keys_in_different_slots_are_refused() {
        let view = ClusterView::empty();
        let keys = [&b"a"[..], b"b"];
        assert!(matches!(
            check(&view, keys.into_iter(), Access::default()),
            Decision::Refuse(text) if text.starts_with("CROSSSLOT")
        ));
        let tagged = [&b"{user}a"[..], b"{user}b"];
        assert!(matches!(
            check(&view, tagged.into_iter(), Access::default()),
            Decision::Refuse(text) if text.starts_with("CLUSTERDOWN")
        ));
    }

    #[test]
    fn writes_need_the_lease() {
        let (lease, view) = (Lease::default(), ClusterView::empty());
        let refused = check_lease(&lease, &view, 1_000, true).unwrap_err();
        assert!(refused.starts_with("CLUSTERDOWN"), "{refused}");
        lease.extend(2_000);
        assert_eq!(check_lease(&lease, &view, 1_999, true), Ok(()));
        let expired = check_lease(&lease, &view, 2_000, false).unwrap_err();
        assert!(expired.starts_with("CLUSTERDOWN"), "{expired}");
    }

    #[test]
    fn a_request_without_keys_is_served() {
        let view = ClusterView::empty();
        assert!(matches!(
            check(&view, std::iter::empty(), Access::default()),
            Decision::Serve
        ));
    }
}
