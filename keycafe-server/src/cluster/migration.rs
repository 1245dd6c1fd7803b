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
//!
//! # Decisions and actions
//!
//! Which slot moves next, over which link, when to tell the coordinator and
//! when to rest is decided by [`mover::Mover`], a state machine with the
//! clock passed in. [`run`] is its shell: it feeds the mover the adopted
//! views and the answers to its requests, and carries out what the mover
//! asks for — open a bus link, move a batch (as above, with the
//! lock and the marks), send `migration_done`, purge foreign keys, rest.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use keycafe_core::Slot;
use keycafe_core::cluster::NodeId;
use keycafe_core::coord::NodeMessage;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::ClusterState;
use super::bus::BusClient;
use super::view::{ClusterView, OutgoingSlot, SlotState};
use crate::store::{Store, Ttl, now_ms};

pub mod mover;

use mover::{Effect, Event, Mover, Target};

/// Keys per `KC.IMPORT`.
pub const BATCH: usize = 1000;

/// Runs the migration driver until shutdown.
pub async fn run(cluster: Arc<ClusterState>, store: Arc<Store>, stop: CancellationToken) {
    let cluster = &*cluster;
    let mut changed = cluster.subscribe();
    changed.borrow_and_update();
    let mut view = cluster.view();
    let mut mover = Mover::new();
    let mut links: HashMap<NodeId, BusClient> = HashMap::new();
    let mut effects = mover.step(adopted(&view), Instant::now());
    loop {
        let answer = tokio::select! {
            answer = carry_out(effects, &store, cluster, &view, &mut links, &mut changed) => answer,
            _ = stop.cancelled() => return,
        };
        // A view adopted meanwhile goes in before the answer, so that the
        // next action is chosen from the newest view.
        changed.borrow_and_update();
        let newest = cluster.view();
        let now = Instant::now();
        effects = Vec::new();
        if !Arc::ptr_eq(&newest, &view) {
            view = newest;
            effects = mover.step(adopted(&view), now);
        }
        if let Some(answer) = answer {
            effects.extend(mover.step(answer, now));
        }
    }
}

/// What the mover needs to know of a view: the slots moving away and where.
fn adopted(view: &ClusterView) -> Event {
    let outgoing = view
        .outgoing
        .keys()
        .filter_map(|&slot| {
            let SlotState::MigratingTo(to) = view.state(slot) else {
                return None;
            };
            let node = view.node(to)?;
            let target = Target {
                id: node.id.clone(),
                bus_addr: node.bus_addr.clone(),
            };
            Some((slot, target))
        })
        .collect();
    Event::ViewAdopted {
        epoch: view.epoch(),
        outgoing,
    }
}

/// Carries out the effects of the mover's latest steps, in order, and
/// returns the answer to the one action among them.
async fn carry_out(
    effects: Vec<Effect>,
    store: &Store,
    cluster: &ClusterState,
    view: &ClusterView,
    links: &mut HashMap<NodeId, BusClient>,
    changed: &mut watch::Receiver<u64>,
) -> Option<Event> {
    let mut answer = None;
    for effect in effects {
        match effect {
            Effect::PurgeForeignKeys => purge_foreign_keys(store, view),
            Effect::Disconnect(target) => {
                links.remove(&target);
            }
            Effect::TellDone { slot, to } => {
                cluster.tell_coordinator(NodeMessage::MigrationDone { slot, to });
            }
            Effect::Connect(target) => {
                answer = Some(match BusClient::connect(&target.bus_addr, cluster).await {
                    Ok(link) => {
                        links.insert(target.id.clone(), link);
                        Event::LinkUp(target.id)
                    }
                    Err(err) => Event::LinkFailed {
                        target: target.id,
                        reason: format!("{err:#}"),
                    },
                });
            }
            Effect::SendBatch { slot, to } => {
                let (Some(outgoing), Some(link)) = (view.outgoing.get(&slot), links.get_mut(&to))
                else {
                    let reason = "no link or slot not moving".to_string();
                    answer = Some(Event::BatchFailed { slot, reason });
                    continue;
                };
                answer = Some(match move_batch(store, slot, outgoing, link).await {
                    Ok(count) => Event::BatchMoved { slot, count },
                    Err(err) => Event::BatchFailed {
                        slot,
                        reason: format!("{err:#}"),
                    },
                });
            }
            Effect::Idle(period) => {
                tokio::select! {
                    _ = changed.changed() => {}
                    _ = tokio::time::sleep(period) => {}
                }
                answer = Some(Event::Tick);
            }
        }
    }
    if answer.is_none() {
        // The mover always asks for an action; were it ever not to, resting
        // here keeps the driver from spinning.
        warn!("the migration driver was asked for nothing");
        tokio::time::sleep(mover::IDLE).await;
    }
    answer
}

/// Moves one batch of `slot`'s keys to the target. Returns how many moved
/// (0 when the slot is empty here).
async fn move_batch(
    store: &Store,
    slot: Slot,
    outgoing: &Mutex<OutgoingSlot>,
    link: &mut BusClient,
) -> anyhow::Result<usize> {
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
fn purge_foreign_keys(store: &Store, view: &ClusterView) {
    if view.me.is_none() {
        return;
    }
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
