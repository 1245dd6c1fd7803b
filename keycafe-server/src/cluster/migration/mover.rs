//! The migration driver's decisions, as a deterministic state machine.
//!
//! [`Mover`] decides which outgoing slot moves a batch next, when a link to a
//! target is opened or dropped, when the coordinator is told that a slot is
//! empty, when foreign keys are purged and when the driver rests. It changes
//! only in [`Mover::step`]: an [`Event`] and the current time go in, a list of
//! [`Effect`]s comes out. It touches no store, socket or clock, so its tests
//! drive it with plain values, and the shell in [`super`] only carries out
//! effects and reports what came of them. Moving a batch safely (the in-flight
//! marks under the slot's lock) is the shell's business; which batch, to whom
//! and when is decided here.
//!
//! # Rules
//!
//! - **One action at a time.** Opening a link ([`Effect::Connect`]), moving a
//!   batch ([`Effect::SendBatch`]) and resting ([`Effect::Idle`]) take time;
//!   the mover asks for at most one at once and waits for its answer
//!   ([`Event::LinkUp`] / [`Event::LinkFailed`], [`Event::BatchMoved`] /
//!   [`Event::BatchFailed`], [`Event::Tick`]) before it asks for the next.
//!   The other effects are instant and come before the action of a step.
//! - **Passes.** The driver works in passes over the outgoing slots, one
//!   batch per slot, in slot order, so that every slot makes progress. A pass
//!   that moved keys is followed at once by the next: a busy driver does not
//!   rest. A pass that moved nothing ends in [`Effect::Idle`] for [`IDLE`],
//!   cut short by a new view.
//! - **One link per target**, opened when a slot first needs it (even an
//!   empty slot is only reported done once its target answers) and kept
//!   across passes and views while some slot still moves there. A target that
//!   cannot be reached, or whose batch fails, loses its link and is skipped
//!   for the rest of the pass; the next pass tries it again. A failed batch
//!   leaves its keys here, unchanged.
//! - **Done, and done again.** A slot whose batch comes back empty is
//!   reported to the coordinator ([`Effect::TellDone`]), and reported again
//!   every [`DONE_REPEAT`] while the slot stays outgoing: a report can be lost
//!   with the coordinator's connection, and the coordinator ignores repeats.
//! - **A new view wins at once.** [`Event::ViewAdopted`] replaces the
//!   outgoing slots even mid-pass: a slot it drops gets no further batch, a
//!   slot it adds waits for the next pass, a slot whose target changed starts
//!   over (link, done report), and a link no slot needs any more is dropped.
//!   Each new epoch asks once for [`Effect::PurgeForeignKeys`]. A view older
//!   than the current one is ignored.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use keycafe_core::Slot;
use keycafe_core::cluster::NodeId;
use tracing::{debug, warn};

/// How often a finished slot's `migration_done` is repeated until the
/// coordinator acts on it (it is idempotent there).
pub const DONE_REPEAT: Duration = Duration::from_secs(1);
/// How long the driver rests after a pass that moved nothing.
pub const IDLE: Duration = Duration::from_millis(100);

/// The node a slot moves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub id: NodeId,
    /// Where its cluster bus listens.
    pub bus_addr: String,
}

/// Something that happened, fed to [`Mover::step`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The node adopted a view (also the first one, at start): these slots
    /// are moving away from here, each to its target.
    ViewAdopted {
        epoch: u64,
        outgoing: BTreeMap<Slot, Target>,
    },
    /// The link asked for with [`Effect::Connect`] is up.
    LinkUp(NodeId),
    /// The link asked for with [`Effect::Connect`] could not be opened.
    LinkFailed { target: NodeId, reason: String },
    /// The batch asked for with [`Effect::SendBatch`] is on the target and
    /// gone from here; `count` is 0 when the slot was already empty.
    BatchMoved { slot: Slot, count: usize },
    /// The batch asked for with [`Effect::SendBatch`] did not reach the
    /// target; its keys are still here.
    BatchFailed { slot: Slot, reason: String },
    /// The rest asked for with [`Effect::Idle`] is over (or was cut short).
    Tick,
}

/// Something the shell must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Delete the keys of slots this node neither owns nor imports, as the
    /// newest view has it.
    PurgeForeignKeys,
    /// Drop the link to this target.
    Disconnect(NodeId),
    /// Tell the coordinator `migration_done` for this slot.
    TellDone { slot: Slot, to: NodeId },
    /// Open a link to this target; answer with [`Event::LinkUp`] or
    /// [`Event::LinkFailed`].
    Connect(Target),
    /// Move one batch of the slot's keys over the open link to `to`; answer
    /// with [`Event::BatchMoved`] or [`Event::BatchFailed`].
    SendBatch { slot: Slot, to: NodeId },
    /// Rest this long, or until a new view arrives; answer with
    /// [`Event::Tick`].
    Idle(Duration),
}

/// A slot moving away.
#[derive(Debug)]
struct Outgoing {
    target: Target,
    /// When `migration_done` was last told for it.
    told_done: Option<Instant>,
}

/// The action the mover waits on.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Waiting {
    Link { slot: Slot, target: Target },
    Batch { slot: Slot, to: NodeId },
    Idle,
}

/// One round over the outgoing slots.
#[derive(Debug, Default)]
struct Pass {
    /// Slots still to visit in this pass.
    queue: VecDeque<Slot>,
    /// Some batch of this pass moved keys.
    moved: bool,
    /// Targets that failed in this pass, skipped until the next.
    failed: BTreeSet<NodeId>,
}

/// The migration driver's state machine. See the module documentation.
#[derive(Debug)]
pub struct Mover {
    /// The newest view's epoch.
    epoch: u64,
    /// The epoch whose foreign keys were last purged.
    purged: u64,
    slots: BTreeMap<Slot, Outgoing>,
    /// Targets with an open link.
    links: BTreeSet<NodeId>,
    pass: Pass,
    waiting: Waiting,
}

impl Default for Mover {
    fn default() -> Self {
        Mover::new()
    }
}

impl Mover {
    /// A mover that has seen no view yet and rests: the shell feeds it the
    /// current view first.
    pub fn new() -> Mover {
        Mover {
            epoch: 0,
            purged: 0,
            slots: BTreeMap::new(),
            links: BTreeSet::new(),
            pass: Pass::default(),
            waiting: Waiting::Idle,
        }
    }

    /// Applies one event.
    pub fn step(&mut self, event: Event, now: Instant) -> Vec<Effect> {
        let mut effects = Vec::new();
        match (event, self.waiting.clone()) {
            (Event::ViewAdopted { epoch, outgoing }, waiting) => {
                if self.adopt(epoch, outgoing, &mut effects) && waiting == Waiting::Idle {
                    self.start_pass(&mut effects);
                }
            }
            (Event::Tick, Waiting::Idle) => self.start_pass(&mut effects),
            // A tick that races the view which ended the rest finds the
            // mover busy, and changes nothing.
            (Event::Tick, _) => {}
            (Event::LinkUp(id), Waiting::Link { slot, target }) if target.id == id => {
                self.link_up(slot, id, &mut effects);
            }
            (Event::LinkFailed { target: id, reason }, Waiting::Link { slot, target })
                if target.id == id =>
            {
                warn!(slot, target = %id, addr = %target.bus_addr, %reason, "migration target unreachable; will retry");
                self.pass.failed.insert(id);
                self.next(&mut effects);
            }
            (Event::BatchMoved { slot, count }, Waiting::Batch { slot: asked, to })
                if asked == slot =>
            {
                self.batch_moved(slot, to, count, now, &mut effects);
            }
            (Event::BatchFailed { slot, reason }, Waiting::Batch { slot: asked, to })
                if asked == slot =>
            {
                warn!(slot, target = %to, %reason, "migration batch failed; will retry");
                if self.links.remove(&to) {
                    effects.push(Effect::Disconnect(to.clone()));
                }
                self.pass.failed.insert(to);
                self.next(&mut effects);
            }
            (event, waiting) => debug!(?event, ?waiting, "ignoring an answer to nothing asked"),
        }
        effects
    }

    /// Takes the view's outgoing slots; false if the view is older than
    /// the current one, and ignored.
    fn adopt(
        &mut self,
        epoch: u64,
        outgoing: BTreeMap<Slot, Target>,
        effects: &mut Vec<Effect>,
    ) -> bool {
        if epoch < self.epoch {
            debug!(epoch, current = self.epoch, "ignoring an older view");
            return false;
        }
        self.epoch = epoch;
        if epoch != self.purged {
            self.purged = epoch;
            effects.push(Effect::PurgeForeignKeys);
        }
        let mut previous = std::mem::take(&mut self.slots);
        self.slots = outgoing
            .into_iter()
            .map(|(slot, target)| {
                let told_done = previous
                    .remove(&slot)
                    .filter(|old| old.target == target)
                    .and_then(|old| old.told_done);
                (slot, Outgoing { target, told_done })
            })
            .collect();
        let unused: Vec<NodeId> = self
            .links
            .iter()
            .filter(|id| !self.is_target(id))
            .cloned()
            .collect();
        for id in unused {
            self.links.remove(&id);
            effects.push(Effect::Disconnect(id));
        }
        true
    }

    fn link_up(&mut self, slot: Slot, id: NodeId, effects: &mut Vec<Effect>) {
        if self.is_target(&id) {
            self.links.insert(id);
        } else {
            // A newer view sent every slot elsewhere while it was opening.
            effects.push(Effect::Disconnect(id));
        }
        // The slot takes its turn now, over this link or, if a newer view
        // changed its target meanwhile, over the new target's.
        if self.slots.contains_key(&slot) {
            self.pass.queue.push_front(slot);
        }
        self.next(effects);
    }

    fn batch_moved(
        &mut self,
        slot: Slot,
        to: NodeId,
        count: usize,
        now: Instant,
        effects: &mut Vec<Effect>,
    ) {
        if count > 0 {
            self.pass.moved = true;
        } else if let Some(outgoing) = self.slots.get_mut(&slot)
            && outgoing.target.id == to
        {
            let due = outgoing
                .told_done
                .is_none_or(|at| now.saturating_duration_since(at) >= DONE_REPEAT);
            if due {
                debug!(slot, %to, "slot empty; telling the coordinator");
                outgoing.told_done = Some(now);
                effects.push(Effect::TellDone { slot, to });
            }
        }
        self.next(effects);
    }

    fn is_target(&self, id: &str) -> bool {
        self.slots.values().any(|o| o.target.id == id)
    }

    fn start_pass(&mut self, effects: &mut Vec<Effect>) {
        self.pass = Pass {
            queue: self.slots.keys().copied().collect(),
            ..Pass::default()
        };
        self.next(effects);
    }

    /// Asks for the next action of the pass: a batch, the link it needs, a
    /// new pass if this one moved keys, or rest.
    fn next(&mut self, effects: &mut Vec<Effect>) {
        loop {
            let Some(slot) = self.pass.queue.pop_front() else {
                if self.pass.moved {
                    self.start_pass(effects);
                } else {
                    self.waiting = Waiting::Idle;
                    effects.push(Effect::Idle(IDLE));
                }
                return;
            };
            // A slot a newer view dropped is no longer in `slots`.
            let Some(outgoing) = self.slots.get(&slot) else {
                continue;
            };
            let target = &outgoing.target;
            if self.pass.failed.contains(&target.id) {
                continue;
            }
            if self.links.contains(&target.id) {
                let to = target.id.clone();
                self.waiting = Waiting::Batch {
                    slot,
                    to: to.clone(),
                };
                effects.push(Effect::SendBatch { slot, to });
            } else {
                self.waiting = Waiting::Link {
                    slot,
                    target: target.clone(),
                };
                effects.push(Effect::Connect(target.clone()));
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests;
