//! Moving a slot's keys to its new owner, without losing a write.
//!
//! When a configuration says this node is migrating slot S to node T, this
//! driver moves S's keys in batches over the bus (`KC.IMPORT`), each with its
//! remaining TTL, until S is empty here, and then tells the coordinator
//! (`migration_done`), which makes T the owner in a new epoch.
//!
//! The invariant is that every key is readable on exactly one side and no
//! acknowledged write is lost. One batch goes like this, and the slot's
//! [`OutgoingSlot`] lock (also held by every command on S, see
//! [`super::routing`]) makes each step atomic with respect to clients:
//!
//! 1. under the lock: copy up to [`BATCH`] keys and mark them *in flight*;
//!    from now on a write to one of them gets TRYAGAIN (reads are still served
//!    here, where the keys still are);
//! 2. without the lock: send the copies to T and wait for its OK;
//! 3. under the lock: delete the batch here. Those keys are now only on T, and
//!    a client asking here for them is sent there with ASK.
//!
//! If T does not answer, the marks are cleared and the keys stay here,
//! unchanged; the batch is sent again later (T replaces what it already had).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use keycafe_core::Slot;
use keycafe_core::cluster::NodeId;
use keycafe_core::coord::NodeMessage;
use tokio::sync::broadcast;
use tracing::{debug, info, warn};

use super::bus::BusClient;
use super::view::{ClusterView, OutgoingSlot, SlotState};
use crate::state::Shared;
use crate::store::{Ttl, now_ms};

/// Keys per `KC.IMPORT`.
pub const BATCH: usize = 1000;
/// How often a finished slot's `migration_done` is repeated until the
/// coordinator acts on it (it is idempotent there).
const DONE_REPEAT: Duration = Duration::from_secs(1);
const IDLE: Duration = Duration::from_millis(100);

/// Runs the migration driver until shutdown.
pub async fn run(shared: Arc<Shared>, mut shutdown: broadcast::Receiver<()>) {
    let Some(cluster) = shared.cluster.as_ref() else {
        return;
    };
    let mut changed = cluster.subscribe();
    let mut links: HashMap<NodeId, BusClient> = HashMap::new();
    let mut done_sent: HashMap<Slot, Instant> = HashMap::new();
    let mut purged_epoch = 0;
    loop {
        let view = cluster.view();
        if view.epoch() != purged_epoch {
            purge_foreign_keys(&shared, &view);
            purged_epoch = view.epoch();
        }
        done_sent.retain(|slot, _| view.outgoing.contains_key(slot));
        let mut moved_any = false;
        for (&slot, outgoing) in &view.outgoing {
            let Some(target) = view
                .config
                .migration(slot)
                .and_then(|m| view.config.node(&m.to))
            else {
                continue;
            };
            let link = match links.get_mut(&target.id) {
                Some(link) => link,
                None => match BusClient::connect(&target.bus_addr, cluster.secret.as_deref()).await
                {
                    Ok(link) => links.entry(target.id.clone()).or_insert(link),
                    Err(err) => {
                        warn!(slot, target = %target.bus_addr, %err, "migration target unreachable");
                        continue;
                    }
                },
            };
            let moved = tokio::select! {
                moved = move_batch(&shared, slot, outgoing, link) => moved,
                _ = shutdown.recv() => return,
            };
            match moved {
                Ok(0) => {
                    let due = done_sent
                        .get(&slot)
                        .is_none_or(|at| at.elapsed() >= DONE_REPEAT);
                    if due {
                        debug!(slot, to = %target.id, "slot empty; telling the coordinator");
                        cluster.tell_coordinator(NodeMessage::MigrationDone {
                            slot,
                            to: target.id.clone(),
                        });
                        done_sent.insert(slot, Instant::now());
                    }
                }
                Ok(_) => moved_any = true,
                Err(err) => {
                    warn!(slot, target = %target.bus_addr, %err, "migration batch failed; will retry");
                    links.remove(&target.id);
                }
            }
        }
        if moved_any {
            if shutdown.try_recv().is_ok() {
                return;
            }
            continue;
        }
        tokio::select! {
            _ = changed.changed() => {}
            _ = tokio::time::sleep(IDLE) => {}
            _ = shutdown.recv() => return,
        }
    }
}

/// Moves one batch of `slot`'s keys to the target. Returns how many moved
/// (0 when the slot is empty here).
async fn move_batch(
    shared: &Shared,
    slot: Slot,
    outgoing: &Mutex<OutgoingSlot>,
    link: &mut BusClient,
) -> anyhow::Result<usize> {
    let store = &shared.store;
    let mut request: Vec<Vec<u8>> = vec![b"KC.IMPORT".to_vec(), slot.to_string().into_bytes()];
    {
        let mut state = outgoing.lock().unwrap_or_else(PoisonError::into_inner);
        let now = now_ms();
        for key in store.keys_in_slot(slot, BATCH) {
            let copy = store.entry(&key, now, |entry| {
                let value = entry.value()?.to_vec();
                let ttl = match entry.ttl() {
                    Ttl::Remaining(ms) => ms.max(1).to_string(),
                    Ttl::Persistent | Ttl::Missing => "-1".to_string(),
                };
                Some((value, ttl))
            });
            if let Some((value, ttl)) = copy {
                request.extend([key.clone(), value, ttl.into_bytes()]);
                state.in_flight.insert(key);
            }
        }
    }
    let moved = (request.len() - 2) / 3;
    if moved == 0 {
        return Ok(0);
    }
    let sent = link.call(&request).await;
    let mut state = outgoing.lock().unwrap_or_else(PoisonError::into_inner);
    let keys = std::mem::take(&mut state.in_flight);
    sent?;
    let now = now_ms();
    for key in keys {
        store.remove(&key, now);
    }
    Ok(moved)
}

/// Deletes keys of slots this node neither owns nor imports: leftovers of a
/// migration that finished or was abandoned. They are unreachable (clients get
/// MOVED) and, if the slot ever came back, would be stale.
fn purge_foreign_keys(shared: &Shared, view: &ClusterView) {
    if view.me.is_none() {
        return;
    }
    let store = &shared.store;
    let now = now_ms();
    let mut purged = 0;
    for slot in 0..keycafe_core::SLOT_COUNT {
        if matches!(
            view.state(slot),
            SlotState::Other(_) | SlotState::Unassigned
        ) {
            loop {
                let keys = store.keys_in_slot(slot, BATCH);
                if keys.is_empty() {
                    break;
                }
                let removed = keys.iter().filter(|key| store.remove(key, now)).count();
                if removed == 0 {
                    break; // only expired keys were listed, and they are gone now
                }
                purged += removed;
            }
        }
    }
    if purged > 0 {
        info!(
            purged,
            epoch = view.epoch(),
            "removed keys of slots this node no longer serves"
        );
    }
}
