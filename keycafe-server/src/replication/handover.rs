//! The replica's side of `CLUSTER FAILOVER [FORCE]`, as a deterministic
//! state machine.
//!
//! [`Handover`] decides each step of a manual failover and changes only in
//! [`Handover::step`]: an [`Event`] and the current time go in, a list of
//! [`Effect`]s comes out. [`super::failover`] is the shell: it talks to the
//! primary over the bus, watches the replication log and the adopted
//! configurations, sleeps until [`Handover::deadline`], and carries out the
//! effects in order.
//!
//! ```text
//!  Pausing ──PauseAnswered──▶ CatchingUp ──Applied ≥ target──▶ AwaitingPromotion ──promoted──▶ Done
//!     │                           │                                   │
//!     └─ failed / deadline ───────┴──────────── deadline ─────────────┴──────────────▶ Abandoned
//! ```
//!
//! Everything must happen within [`PAUSE`] of the start, the longest the
//! primary stops writes for:
//!
//! - **Pausing**: `KC.FAILOVER.PAUSE` asks the primary to stop writes and
//!   answer the offset its stream has reached. If it fails, nothing is
//!   paused and the failover is abandoned; if no answer comes in time, a
//!   `KC.FAILOVER.RESUME` follows in case the pause did take effect.
//! - **CatchingUp**: once this node has applied the stream up to that
//!   offset it holds every write the primary acknowledged. Past the
//!   deadline, the primary is resumed and the failover abandoned.
//! - **AwaitingPromotion**: the coordinator is asked to swap the roles; a
//!   configuration that makes this node a primary completes the failover.
//!   Past the deadline it is abandoned *without* resuming the primary: the
//!   coordinator may still act on the request, and the pause runs out on
//!   its own.
//!
//! `FORCE` starts at AwaitingPromotion: for a primary that cannot answer,
//! at the price of what the replica had not yet received.

use std::time::{Duration, Instant};

use keycafe_core::cluster::NodeId;
use keycafe_core::coord::NodeMessage;

/// How long the primary stops writes for, at most; the whole failover must
/// fit in it.
pub const PAUSE: Duration = Duration::from_secs(5);

/// Something that happened, fed to [`Handover::step`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The primary paused its writes; its stream ends at this offset.
    PauseAnswered(u64),
    /// `KC.FAILOVER.PAUSE` failed (connect, I/O, an error or odd answer).
    PauseFailed(String),
    /// This node's replication log ends at this offset.
    Applied(u64),
    /// A configuration was adopted; `primary`: it makes this node a primary.
    ConfigAdopted { primary: bool },
    /// Time passed (the deadline may be over).
    Tick,
}

/// Something the shell must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Send `KC.FAILOVER.PAUSE` for this long to the primary and report its
    /// answer (or, at the deadline, a [`Event::Tick`]).
    SendPause(Duration),
    /// Send `KC.FAILOVER.RESUME` to the primary, if it was reached.
    SendResume,
    /// Send this to the coordinator.
    TellCoordinator(NodeMessage),
    /// The failover is over.
    Finish(Outcome),
}

/// How a failover ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// This node is the primary.
    Done,
    /// It is not, for this reason.
    Abandoned(String),
}

/// Where the failover stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// `KC.FAILOVER.PAUSE` sent, no answer yet.
    Pausing,
    /// Applying the stream up to where the paused primary stopped.
    CatchingUp {
        target: u64,
    },
    /// The coordinator has been asked for the promotion.
    AwaitingPromotion,
    Done,
    Abandoned(String),
}

/// A manual failover in progress. See the module documentation.
#[derive(Debug)]
pub struct Handover {
    /// The primary being replaced.
    primary: NodeId,
    deadline: Instant,
    stage: Stage,
}

impl Handover {
    /// Starts taking over from `primary`: by pausing it, or with `force` by
    /// asking the coordinator at once.
    pub fn start(primary: NodeId, force: bool, now: Instant) -> (Handover, Vec<Effect>) {
        let mut handover = Handover {
            primary,
            deadline: now + PAUSE,
            stage: Stage::Pausing,
        };
        let mut effects = Vec::new();
        if force {
            handover.ask_coordinator(&mut effects);
        } else {
            effects.push(Effect::SendPause(PAUSE));
        }
        (handover, effects)
    }

    /// Where the failover stands.
    pub fn stage(&self) -> &Stage {
        &self.stage
    }

    /// When the failover is abandoned if it has not completed.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Applies one event.
    pub fn step(&mut self, event: Event, now: Instant) -> Vec<Effect> {
        let mut effects = Vec::new();
        let late = now >= self.deadline;
        match (&self.stage, event) {
            (Stage::Done | Stage::Abandoned(_), _) => {}
            (_, Event::ConfigAdopted { primary: true }) => {
                self.finish(Outcome::Done, &mut effects);
            }
            (Stage::Pausing, Event::PauseAnswered(target)) => {
                // Whether we are late is for the first `Applied` to say: a
                // replica that already holds everything goes on.
                self.stage = Stage::CatchingUp { target };
            }
            (Stage::Pausing, Event::PauseFailed(err)) => {
                self.finish(Outcome::Abandoned(err), &mut effects);
            }
            (Stage::Pausing, Event::Tick) if late => {
                effects.push(Effect::SendResume);
                let reason =
                    format!("the primary did not answer KC.FAILOVER.PAUSE within {PAUSE:?}");
                self.finish(Outcome::Abandoned(reason), &mut effects);
            }
            (&Stage::CatchingUp { target }, Event::Applied(offset)) if offset >= target => {
                self.ask_coordinator(&mut effects);
            }
            (Stage::CatchingUp { .. }, Event::Applied(_) | Event::Tick) if late => {
                effects.push(Effect::SendResume);
                let reason = format!("could not catch up with the primary in {PAUSE:?}");
                self.finish(Outcome::Abandoned(reason), &mut effects);
            }
            (Stage::AwaitingPromotion, Event::Tick) if late => {
                let reason = format!("the coordinator did not promote this node within {PAUSE:?}");
                self.finish(Outcome::Abandoned(reason), &mut effects);
            }
            _ => {}
        }
        effects
    }

    fn ask_coordinator(&mut self, effects: &mut Vec<Effect>) {
        self.stage = Stage::AwaitingPromotion;
        effects.push(Effect::TellCoordinator(NodeMessage::Failover {
            primary: self.primary.clone(),
        }));
    }

    fn finish(&mut self, outcome: Outcome, effects: &mut Vec<Effect>) {
        self.stage = match &outcome {
            Outcome::Done => Stage::Done,
            Outcome::Abandoned(reason) => Stage::Abandoned(reason.clone()),
        };
        effects.push(Effect::Finish(outcome));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIMARY: &str = "primary";

    /// A handover and a clock.
    struct Harness {
        handover: Handover,
        now: Instant,
        started: Instant,
    }

    impl Harness {
        fn start(force: bool) -> (Harness, Vec<Effect>) {
            let now = Instant::now();
            let (handover, effects) = Handover::start(PRIMARY.into(), force, now);
            let harness = Harness {
                handover,
                now,
                started: now,
            };
            (harness, effects)
        }

        fn step(&mut self, event: Event) -> Vec<Effect> {
            let effects = self.handover.step(event, self.now);
            let finished = matches!(self.handover.stage(), Stage::Done | Stage::Abandoned(_));
            let finishes = effects.iter().filter(|e| matches!(e, Effect::Finish(_)));
            assert!(finishes.count() <= 1, "one finish: {effects:?}");
            if matches!(effects.last(), Some(Effect::Finish(_))) {
                assert!(finished, "finished when it says so");
            }
            effects
        }

        fn at(&mut self, ms: u64) -> &mut Harness {
            self.now = self.started + Duration::from_millis(ms);
            self
        }

        fn stage(&self) -> &Stage {
            self.handover.stage()
        }
    }

    fn tell() -> Effect {
        Effect::TellCoordinator(NodeMessage::Failover {
            primary: PRIMARY.into(),
        })
    }

    fn abandoned(reason: &str) -> Effect {
        Effect::Finish(Outcome::Abandoned(reason.into()))
    }

    #[test]
    fn pause_catch_up_ask_and_be_promoted() {
        let (mut h, effects) = Harness::start(false);
        assert_eq!(effects, [Effect::SendPause(PAUSE)]);
        assert_eq!(h.stage(), &Stage::Pausing);

        assert!(h.at(10).step(Event::PauseAnswered(1000)).is_empty());
        assert_eq!(h.stage(), &Stage::CatchingUp { target: 1000 });
        assert!(h.step(Event::Applied(900)).is_empty(), "not there yet");
        assert!(h.at(20).step(Event::Tick).is_empty(), "still in time");
        assert_eq!(h.at(30).step(Event::Applied(1000)), [tell()]);
        assert_eq!(h.stage(), &Stage::AwaitingPromotion);

        assert!(
            h.step(Event::ConfigAdopted { primary: false }).is_empty(),
            "another configuration, not ours yet"
        );
        let effects = h.at(40).step(Event::ConfigAdopted { primary: true });
        assert_eq!(effects, [Effect::Finish(Outcome::Done)]);
        assert_eq!(h.stage(), &Stage::Done);
        assert!(h.at(9000).step(Event::Tick).is_empty(), "over is over");
    }

    #[test]
    fn a_replica_already_caught_up_asks_at_once() {
        let (mut h, _) = Harness::start(false);
        h.at(5).step(Event::PauseAnswered(700));
        assert_eq!(h.step(Event::Applied(700)), [tell()]);
    }

    #[test]
    fn force_skips_the_pause_and_the_catching_up() {
        let (mut h, effects) = Harness::start(true);
        assert_eq!(effects, [tell()]);
        assert_eq!(h.stage(), &Stage::AwaitingPromotion);
        assert!(h.step(Event::Applied(5)).is_empty());
        let effects = h.at(100).step(Event::ConfigAdopted { primary: true });
        assert_eq!(effects, [Effect::Finish(Outcome::Done)]);
    }

    #[test]
    fn not_catching_up_in_time_resumes_the_primary() {
        let (mut h, _) = Harness::start(false);
        h.at(10).step(Event::PauseAnswered(1000));
        h.step(Event::Applied(10));
        assert!(h.at(4999).step(Event::Tick).is_empty());
        assert!(h.step(Event::Applied(999)).is_empty());
        let effects = h.at(5000).step(Event::Tick);
        assert_eq!(
            effects,
            [
                Effect::SendResume,
                abandoned("could not catch up with the primary in 5s"),
            ]
        );
        assert!(matches!(h.stage(), Stage::Abandoned(_)));
        assert!(h.step(Event::Applied(1000)).is_empty(), "too late");
    }

    #[test]
    fn a_late_answer_is_undone_unless_already_caught_up() {
        let (mut h, _) = Harness::start(false);
        h.at(6000).step(Event::PauseAnswered(1000));
        let effects = h.step(Event::Applied(10));
        assert_eq!(effects[0], Effect::SendResume);

        let (mut h, _) = Harness::start(false);
        h.at(6000).step(Event::PauseAnswered(1000));
        assert_eq!(h.step(Event::Applied(1000)), [tell()]);
    }

    #[test]
    fn a_primary_that_never_answers_is_resumed_just_in_case() {
        let (mut h, _) = Harness::start(false);
        assert!(h.at(4000).step(Event::Tick).is_empty());
        let effects = h.at(5000).step(Event::Tick);
        assert_eq!(
            effects,
            [
                Effect::SendResume,
                abandoned("the primary did not answer KC.FAILOVER.PAUSE within 5s"),
            ]
        );
    }

    #[test]
    fn a_failed_pause_has_nothing_to_undo() {
        let (mut h, _) = Harness::start(false);
        let effects = h
            .at(3)
            .step(Event::PauseFailed("connection refused".into()));
        assert_eq!(effects, [abandoned("connection refused")]);
        assert_eq!(h.stage(), &Stage::Abandoned("connection refused".into()));
    }

    #[test]
    fn a_coordinator_that_never_promotes_leaves_the_pause_to_run_out() {
        let (mut h, _) = Harness::start(false);
        h.at(10).step(Event::PauseAnswered(1000));
        h.step(Event::Applied(1000));
        assert!(h.at(4999).step(Event::Tick).is_empty());
        assert!(h.step(Event::ConfigAdopted { primary: false }).is_empty());
        let effects = h.at(5000).step(Event::Tick);
        assert_eq!(
            effects,
            [abandoned(
                "the coordinator did not promote this node within 5s"
            )],
            "no RESUME: the coordinator may still act on the request"
        );
        assert!(
            h.step(Event::ConfigAdopted { primary: true }).is_empty(),
            "finished once"
        );
    }

    #[test]
    fn a_promotion_while_catching_up_completes_it() {
        let (mut h, _) = Harness::start(false);
        h.at(10).step(Event::PauseAnswered(1000));
        let effects = h.at(20).step(Event::ConfigAdopted { primary: true });
        assert_eq!(effects, [Effect::Finish(Outcome::Done)]);
    }
}
