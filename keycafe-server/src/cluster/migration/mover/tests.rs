//! The mover, driven with plain values: no store, no sockets, no sleeps.
//!
//! Each test is a script: an event, then the effects expected from it.
//! [`Harness`] plays the shell (it answers the action the mover asked for,
//! keeps the set of open links) and checks every step: one action at a
//! time, batches only over open links to a slot's current target, a failed
//! link dropped, `migration_done` only for a moving slot and at most once a
//! [`DONE_REPEAT`], and foreign keys purged at most once per epoch.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use keycafe_core::Slot;
use keycafe_core::cluster::NodeId;

use super::*;
use crate::cluster::migration::BATCH;

fn id(n: u16) -> NodeId {
    format!("node-{n}")
}

fn target(n: u16) -> Target {
    Target {
        id: id(n),
        bus_addr: format!("127.0.0.1:{}", 17000 + n),
    }
}

const PURGE: Effect = Effect::PurgeForeignKeys;

fn connect(n: u16) -> Effect {
    Effect::Connect(target(n))
}

fn disconnect(n: u16) -> Effect {
    Effect::Disconnect(id(n))
}

fn send(slot: Slot, n: u16) -> Effect {
    Effect::SendBatch { slot, to: id(n) }
}

fn done(slot: Slot, n: u16) -> Effect {
    Effect::TellDone { slot, to: id(n) }
}

fn idle() -> Effect {
    Effect::Idle(IDLE)
}

/// The action the mover waits on, as the shell sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pending {
    Link(NodeId),
    Batch(Slot, NodeId),
    Rest,
}

/// A mover, a clock, and the shell's side of every step.
struct Harness {
    mover: Mover,
    now: Instant,
    pending: Option<Pending>,
    /// Links the shell holds.
    links: BTreeSet<NodeId>,
    /// The newest view's outgoing slots.
    outgoing: BTreeMap<Slot, NodeId>,
    epoch: u64,
    purged: BTreeSet<u64>,
    /// When `migration_done` was last told, per slot and target.
    told: BTreeMap<(Slot, NodeId), Instant>,
}

impl Harness {
    fn new() -> Harness {
        Harness {
            mover: Mover::new(),
            now: Instant::now(),
            pending: Some(Pending::Rest),
            links: BTreeSet::new(),
            outgoing: BTreeMap::new(),
            epoch: 0,
            purged: BTreeSet::new(),
            told: BTreeMap::new(),
        }
    }

    /// The node adopts a view in which `slots` move, each `(slot, target)`.
    fn adopt(&mut self, epoch: u64, slots: &[(Slot, u16)]) -> Vec<Effect> {
        let outgoing: BTreeMap<Slot, Target> =
            slots.iter().map(|&(slot, n)| (slot, target(n))).collect();
        if epoch >= self.epoch {
            self.epoch = epoch;
            self.outgoing = slots.iter().map(|&(slot, n)| (slot, id(n))).collect();
        }
        self.step(Event::ViewAdopted { epoch, outgoing })
    }

    fn link_up(&mut self, n: u16) -> Vec<Effect> {
        self.answer(Pending::Link(id(n)));
        self.links.insert(id(n));
        self.step(Event::LinkUp(id(n)))
    }

    fn link_failed(&mut self, n: u16) -> Vec<Effect> {
        self.answer(Pending::Link(id(n)));
        let reason = "connection refused".to_string();
        self.step(Event::LinkFailed {
            target: id(n),
            reason,
        })
    }

    fn moved(&mut self, slot: Slot, count: usize) -> Vec<Effect> {
        self.answer_batch(slot);
        self.step(Event::BatchMoved { slot, count })
    }

    fn failed(&mut self, slot: Slot) -> Vec<Effect> {
        let to = self.answer_batch(slot);
        let reason = "bus peer closed the connection".to_string();
        let effects = self.step(Event::BatchFailed { slot, reason });
        assert!(!self.links.contains(&to), "a failed link is dropped");
        effects
    }

    /// The rest is over.
    fn tick(&mut self) -> Vec<Effect> {
        self.answer(Pending::Rest);
        self.step(Event::Tick)
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
    }

    fn answer(&mut self, expected: Pending) {
        assert_eq!(self.pending, Some(expected), "answering what was not asked");
        self.pending = None;
    }

    fn answer_batch(&mut self, slot: Slot) -> NodeId {
        match self.pending.take() {
            Some(Pending::Batch(asked, to)) if asked == slot => to,
            other => panic!("a batch of slot {slot} was not asked for: {other:?}"),
        }
    }

    fn step(&mut self, event: Event) -> Vec<Effect> {
        let is_view = matches!(event, Event::ViewAdopted { .. });
        let effects = self.mover.step(event, self.now);
        self.check(&effects, is_view);
        effects
    }

    /// The shell's side of one step, and the rules it relies on.
    fn check(&mut self, effects: &[Effect], is_view: bool) {
        for (i, effect) in effects.iter().enumerate() {
            let action = match effect {
                Effect::PurgeForeignKeys => {
                    assert!(is_view, "a purge without a new view");
                    assert!(self.purged.insert(self.epoch), "purged twice in one epoch");
                    None
                }
                Effect::Disconnect(to) => {
                    assert!(self.links.remove(to), "dropped a link that is not open");
                    None
                }
                Effect::TellDone { slot, to } => {
                    assert_eq!(self.outgoing.get(slot), Some(to), "done for no migration");
                    let told = (*slot, to.clone());
                    if let Some(&last) = self.told.get(&told) {
                        assert!(self.now - last >= DONE_REPEAT, "done repeated too soon");
                    }
                    self.told.insert(told, self.now);
                    None
                }
                Effect::Connect(target) => {
                    assert!(!self.links.contains(&target.id), "a second link");
                    assert!(
                        self.outgoing.values().any(|to| *to == target.id),
                        "a link no slot needs"
                    );
                    Some(Pending::Link(target.id.clone()))
                }
                Effect::SendBatch { slot, to } => {
                    assert!(self.links.contains(to), "a batch without a link");
                    assert_eq!(
                        self.outgoing.get(slot),
                        Some(to),
                        "a batch to the wrong node"
                    );
                    Some(Pending::Batch(*slot, to.clone()))
                }
                Effect::Idle(_) => Some(Pending::Rest),
            };
            if let Some(action) = action {
                assert_eq!(i, effects.len() - 1, "the action comes last: {effects:?}");
                // A new view ends a rest; otherwise an action waits for the
                // answer to the one before.
                let ends_rest = is_view && self.pending == Some(Pending::Rest);
                assert!(
                    self.pending.is_none() || ends_rest,
                    "two actions at once: {:?} and {action:?}",
                    self.pending
                );
                self.pending = Some(action);
            }
        }
        assert!(
            self.pending.is_some(),
            "the mover stalled, waiting on nothing"
        );
    }
}

#[test]
fn a_slot_moves_in_batches_then_is_reported_done() {
    let mut h = Harness::new();
    assert_eq!(h.adopt(0, &[]), [idle()], "no configuration yet: rest");
    assert_eq!(h.adopt(2, &[(10, 1)]), [PURGE, connect(1)]);
    assert_eq!(h.link_up(1), [send(10, 1)]);
    // A pass that moved keys is followed by the next at once: no rest.
    assert_eq!(h.moved(10, BATCH), [send(10, 1)]);
    assert_eq!(h.moved(10, BATCH), [send(10, 1)]);
    assert_eq!(h.moved(10, 17), [send(10, 1)]);
    assert_eq!(h.moved(10, 0), [done(10, 1), idle()]);
}

#[test]
fn an_empty_slot_is_reported_done_once_its_target_answers() {
    let mut h = Harness::new();
    assert_eq!(h.adopt(2, &[(10, 1)]), [PURGE, connect(1)]);
    assert_eq!(
        h.link_failed(1),
        [idle()],
        "not done while the target is away"
    );
    assert_eq!(h.tick(), [connect(1)]);
    assert_eq!(h.link_up(1), [send(10, 1)]);
    assert_eq!(h.moved(10, 0), [done(10, 1), idle()]);
}

#[test]
fn a_failing_target_loses_its_link_and_is_tried_again_next_pass() {
    let mut h = Harness::new();
    assert_eq!(h.adopt(2, &[(10, 1), (11, 1)]), [PURGE, connect(1)]);
    // Slot 11 goes to the same target: skipped for the rest of the pass.
    assert_eq!(h.link_failed(1), [idle()]);
    assert_eq!(h.tick(), [connect(1)]);
    assert_eq!(h.link_up(1), [send(10, 1)]);
    assert_eq!(h.failed(10), [disconnect(1), idle()]);
    // The target is back.
    assert_eq!(h.tick(), [connect(1)]);
    assert_eq!(h.link_up(1), [send(10, 1)]);
    assert_eq!(h.moved(10, 5), [send(11, 1)]);
    assert_eq!(h.moved(11, 0), [done(11, 1), send(10, 1)]);
    assert_eq!(h.moved(10, 0), [done(10, 1), send(11, 1)]);
    assert_eq!(h.moved(11, 0), [idle()], "told less than a second ago");
}

#[test]
fn a_failing_target_does_not_hold_up_another() {
    let mut h = Harness::new();
    assert_eq!(
        h.adopt(2, &[(10, 1), (11, 2), (12, 1)]),
        [PURGE, connect(1)]
    );
    assert_eq!(h.link_failed(1), [connect(2)]);
    assert_eq!(h.link_up(2), [send(11, 2)]);
    // Slot 12 is skipped; keys moved, so the next pass begins at once and
    // tries node 1 again.
    assert_eq!(h.moved(11, 3), [connect(1)]);
    assert_eq!(h.link_up(1), [send(10, 1)]);
    assert_eq!(h.moved(10, 0), [done(10, 1), send(11, 2)]);
    assert_eq!(h.moved(11, 0), [done(11, 2), send(12, 1)]);
    assert_eq!(h.moved(12, 0), [done(12, 1), idle()]);
}

#[test]
fn done_is_repeated_once_a_second_until_the_slot_stops_moving() {
    let mut h = Harness::new();
    h.adopt(2, &[(10, 1)]);
    h.link_up(1);
    assert_eq!(h.moved(10, 0), [done(10, 1), idle()]);
    for _ in 0..9 {
        h.advance(IDLE);
        assert_eq!(h.tick(), [send(10, 1)]);
        assert_eq!(h.moved(10, 0), [idle()]);
    }
    h.advance(IDLE);
    assert_eq!(h.tick(), [send(10, 1)]);
    assert_eq!(h.moved(10, 0), [done(10, 1), idle()], "a second later");
    // The coordinator gives the slot to node 1: nothing more to tell, and
    // no slot needs the link.
    assert_eq!(h.adopt(3, &[]), [PURGE, disconnect(1), idle()]);
    h.advance(DONE_REPEAT * 2);
    assert_eq!(h.tick(), [idle()]);
}

#[test]
fn a_new_view_drops_a_slot_mid_pass() {
    let mut h = Harness::new();
    assert_eq!(
        h.adopt(2, &[(10, 1), (11, 1), (12, 1)]),
        [PURGE, connect(1)]
    );
    assert_eq!(h.link_up(1), [send(10, 1)]);
    // While slot 10's batch is out, epoch 3 stops slot 11's migration and
    // starts slot 13's. The mover waits for the batch before anything else.
    assert_eq!(h.adopt(3, &[(10, 1), (12, 1), (13, 1)]), [PURGE]);
    assert_eq!(h.moved(10, 4), [send(12, 1)], "slot 11 is skipped");
    // Slot 13 joins with the next pass.
    assert_eq!(h.moved(12, 4), [send(10, 1)]);
    assert_eq!(h.moved(10, 0), [done(10, 1), send(12, 1)]);
    assert_eq!(h.adopt(4, &[(12, 1), (13, 1)]), [PURGE]);
    assert_eq!(h.moved(12, 0), [done(12, 1), send(13, 1)]);
    // Every migration ends while a batch is out: the link goes, and the
    // batch's answer is not reported done.
    assert_eq!(h.adopt(5, &[]), [PURGE, disconnect(1)]);
    assert_eq!(h.moved(13, 0), [idle()]);
}

#[test]
fn two_slots_to_two_targets_take_turns_over_one_link_each() {
    let mut h = Harness::new();
    assert_eq!(h.adopt(2, &[(10, 1), (20, 2)]), [PURGE, connect(1)]);
    assert_eq!(h.link_up(1), [send(10, 1)]);
    assert_eq!(h.moved(10, BATCH), [connect(2)]);
    assert_eq!(h.link_up(2), [send(20, 2)]);
    // The links stay open across passes.
    assert_eq!(h.moved(20, BATCH), [send(10, 1)]);
    assert_eq!(h.moved(10, 0), [done(10, 1), send(20, 2)]);
    assert_eq!(h.moved(20, 3), [send(10, 1)]);
    assert_eq!(h.moved(10, 0), [send(20, 2)]);
    assert_eq!(h.moved(20, 0), [done(20, 2), idle()]);
    // Slot 10 is node 1's now; slot 20 still moves to node 2.
    assert_eq!(h.adopt(3, &[(20, 2)]), [PURGE, disconnect(1), send(20, 2)]);
}

#[test]
fn foreign_keys_are_purged_once_per_new_epoch() {
    let mut h = Harness::new();
    // The empty view a node starts with has nothing to purge.
    assert_eq!(h.adopt(0, &[]), [idle()]);
    assert_eq!(h.adopt(1, &[]), [PURGE, idle()]);
    // The same epoch again, or an older one, purges nothing.
    assert_eq!(h.adopt(1, &[]), [idle()]);
    assert_eq!(h.adopt(0, &[(10, 1)]), [], "an older view is ignored");
    assert_eq!(h.tick(), [idle()]);
    assert_eq!(h.adopt(3, &[(10, 1)]), [PURGE, connect(1)]);
    assert_eq!(h.adopt(4, &[(10, 1)]), [PURGE], "also while busy");
    assert_eq!(h.link_up(1), [send(10, 1)]);
}

#[test]
fn a_slot_whose_target_changes_starts_over() {
    let mut h = Harness::new();
    h.adopt(2, &[(10, 1)]);
    h.link_up(1);
    assert_eq!(h.moved(10, 0), [done(10, 1), idle()]);
    // Node 1 went away before taking the slot; the coordinator sends it to
    // node 2 instead, which is told at once.
    assert_eq!(h.adopt(3, &[(10, 2)]), [PURGE, disconnect(1), connect(2)]);
    assert_eq!(h.link_up(2), [send(10, 2)]);
    assert_eq!(h.moved(10, 0), [done(10, 2), idle()]);
}

#[test]
fn a_link_that_opens_too_late_is_dropped() {
    let mut h = Harness::new();
    assert_eq!(h.adopt(2, &[(10, 1)]), [PURGE, connect(1)]);
    assert_eq!(h.adopt(3, &[(10, 2)]), [PURGE]);
    assert_eq!(h.link_up(1), [disconnect(1), connect(2)]);
}

#[test]
fn a_tick_that_races_a_view_changes_nothing() {
    let mut h = Harness::new();
    assert_eq!(h.adopt(2, &[]), [PURGE, idle()]);
    // The view ends the rest; the shell's tick arrives after it.
    assert_eq!(h.adopt(3, &[(10, 1)]), [PURGE, connect(1)]);
    assert_eq!(h.step(Event::Tick), []);
    assert_eq!(h.link_up(1), [send(10, 1)]);
}
