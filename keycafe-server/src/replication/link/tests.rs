//! The link machine, driven with plain values: no sockets, no sleeps.
//!
//! Each test reads as a script: an event at some instant, then the effects
//! it must produce. [`Harness`] keeps the clock and checks what every step
//! must satisfy.

use super::*;

const TIMEOUT: Duration = Duration::from_secs(2);

fn node(n: u16) -> NodeInfo {
    NodeInfo {
        id: format!("{n:040x}"),
        client_addr: format!("127.0.0.1:{}", 7000 + n),
        bus_addr: format!("127.0.0.1:{}", 17000 + n),
        replica_of: None,
    }
}

fn history(replid: &str, offset: u64) -> Position {
    Position {
        replid: replid.to_string(),
        offset,
    }
}

/// A link, a clock, and checks on every step.
struct Harness {
    link: Link,
    now: Instant,
    /// The status as the shell would have it, from the reports.
    status: UpstreamStatus,
}

impl Harness {
    fn new(node_timeout: Duration) -> Harness {
        Harness {
            link: Link::new(node_timeout),
            now: Instant::now(),
            status: UpstreamStatus::default(),
        }
    }

    fn step(&mut self, event: Event) -> Vec<Effect> {
        let tick = event == Event::Tick;
        let effects = self.link.step(event, self.now);
        // A report comes last, once, and only when something changed.
        let reports: Vec<usize> = (0..effects.len())
            .filter(|&i| matches!(effects[i], Effect::Report(_)))
            .collect();
        assert!(reports.len() <= 1, "one report per step: {effects:?}");
        if let Some(&i) = reports.first() {
            assert_eq!(i, effects.len() - 1, "the report comes last: {effects:?}");
            let Effect::Report(status) = &effects[i] else {
                unreachable!()
            };
            assert_ne!(status, &self.status, "a report changes something");
            self.status = status.clone();
        }
        assert_eq!(self.link.status(), &self.status);
        if tick {
            // A tick leaves nothing that is already due.
            if let Some(next) = self.link.next_tick() {
                assert!(next > self.now, "a tick left work due at {next:?}");
            }
        }
        effects
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
    }

    fn tick(&mut self) -> Vec<Effect> {
        self.step(Event::Tick)
    }

    /// Moves the clock to the link's next tick and ticks.
    fn wake(&mut self) -> Vec<Effect> {
        self.now = self.link.next_tick().expect("something is due");
        self.tick()
    }

    fn adopt(&mut self, primary: Option<NodeInfo>) -> Vec<Effect> {
        self.step(Event::ConfigAdopted {
            primary,
            member: true,
        })
    }

    /// Follows `primary` and continues our history at `offset`: streaming.
    fn streaming(&mut self, primary: NodeInfo, offset: u64) {
        self.adopt(Some(primary));
        self.step(Event::Connected {
            history: history("ours", offset),
        });
        self.step(Event::PsyncAnswered(Answer::Continue {
            replid: "theirs".into(),
            offset,
        }));
        assert_eq!(self.link.phase(), Phase::Streaming);
    }

    fn received(&mut self, offset: u64, emptied: bool) -> Vec<Effect> {
        self.step(Event::Received { offset, emptied })
    }

    /// The status of a link to `primary`.
    fn status_of(&self, primary: &NodeInfo, link_up: bool) -> UpstreamStatus {
        UpstreamStatus {
            primary: Some(primary.id.clone()),
            primary_addr: Some(primary.client_addr.clone()),
            link_up,
            ..self.status.clone()
        }
    }
}

fn ack(offset: u64) -> Effect {
    Effect::SendAck(offset)
}

fn is_ack(effect: &Effect) -> bool {
    matches!(effect, Effect::SendAck(_))
}

fn connect(primary: &NodeInfo) -> Effect {
    Effect::Connect {
        bus_addr: primary.bus_addr.clone(),
    }
}

#[test]
fn a_primary_has_no_link() {
    let mut h = Harness::new(TIMEOUT);
    let effects = h.step(Event::ConfigAdopted {
        primary: None,
        member: false,
    });
    assert_eq!(effects, [Effect::BecomePrimary]);
    assert_eq!(h.link.phase(), Phase::Idle);
    assert_eq!(h.link.next_tick(), None);
    assert!(h.step(Event::Killed).is_empty(), "no link to kill");
    h.advance(Duration::from_secs(60));
    assert!(h.tick().is_empty());
    assert_eq!(h.adopt(None), [Effect::BecomePrimary]);
}

#[test]
fn a_replica_continues_its_history() {
    let mut h = Harness::new(TIMEOUT);
    let p = node(1);
    let effects = h.adopt(Some(p.clone()));
    assert_eq!(
        effects,
        [
            Effect::BecomeReplica,
            connect(&p),
            Effect::Report(h.status_of(&p, false)),
        ]
    );
    assert_eq!(h.link.phase(), Phase::Connecting);

    let effects = h.step(Event::Connected {
        history: history("old", 1234),
    });
    assert_eq!(
        effects,
        [Effect::SendPsync {
            replid: "old".into(),
            offset: Some(1234),
        }]
    );
    assert_eq!(h.link.phase(), Phase::Handshaking);

    h.advance(Duration::from_millis(3));
    let effects = h.step(Event::PsyncAnswered(Answer::Continue {
        replid: "new".into(),
        offset: 1234,
    }));
    let up = UpstreamStatus {
        link_up: true,
        synced: true,
        last_io: Some(h.now),
        ..h.status_of(&p, true)
    };
    assert_eq!(
        effects,
        [
            Effect::ContinueHistory {
                replid: "new".into()
            },
            ack(1234),
            Effect::Report(up),
        ]
    );
    assert_eq!(h.link.phase(), Phase::Streaming);
}

#[test]
fn an_empty_replica_loads_a_full_copy() {
    let mut h = Harness::new(TIMEOUT);
    let p = node(1);
    h.adopt(Some(p.clone()));
    let effects = h.step(Event::Connected {
        history: history("fresh", 0),
    });
    assert_eq!(
        effects,
        [Effect::SendPsync {
            replid: NO_ID.into(),
            offset: None,
        }],
        "nothing to continue"
    );
    let effects = h.step(Event::PsyncAnswered(Answer::FullSync {
        replid: "primary".into(),
        offset: 500,
    }));
    let syncing = UpstreamStatus {
        syncing: true,
        synced: false,
        ..h.status_of(&p, false)
    };
    assert_eq!(effects, [Effect::BeginCopy, Effect::Report(syncing)]);
    assert_eq!(h.link.phase(), Phase::FullCopy);

    // No acknowledgements while the copy loads.
    h.advance(Duration::from_millis(1500));
    assert!(h.step(Event::Loading).is_empty());
    assert!(h.tick().is_empty());

    h.advance(Duration::from_millis(1500));
    let effects = h.step(Event::CopyLoaded);
    let synced = UpstreamStatus {
        syncing: false,
        synced: true,
        last_io: Some(h.now),
        ..h.status_of(&p, true)
    };
    assert_eq!(
        effects,
        [
            Effect::AdoptHistory {
                replid: "primary".into(),
                offset: 500,
            },
            ack(500),
            Effect::Report(synced),
        ]
    );
    assert_eq!(h.link.phase(), Phase::Streaming);
}

#[test]
fn a_read_that_empties_the_socket_is_acknowledged_at_once() {
    let mut h = Harness::new(TIMEOUT);
    h.streaming(node(1), 100);
    h.advance(Duration::from_micros(100));
    let effects = h.received(150, true);
    assert_eq!(effects[0], ack(150), "a WAIT waits for this one");
    h.advance(Duration::from_micros(100));
    assert_eq!(
        h.received(180, true)[0],
        ack(180),
        "no gap for an emptied socket"
    );
}

#[test]
fn while_more_is_queued_acknowledgements_are_a_millisecond_apart() {
    let mut h = Harness::new(TIMEOUT);
    h.streaming(node(1), 100);
    let start = h.now;
    h.advance(Duration::from_micros(200));
    assert!(!h.received(200, false).iter().any(is_ack), "held back");
    h.advance(Duration::from_micros(200));
    assert!(!h.received(300, false).iter().any(is_ack), "held back");
    assert_eq!(h.link.next_tick(), Some(start + ACK_GAP));
    h.advance(Duration::from_micros(100));
    assert!(h.tick().is_empty(), "not yet due");
    assert_eq!(
        h.wake()[0],
        ack(300),
        "the owed acknowledgement, newest offset"
    );
    assert_eq!(h.now, start + ACK_GAP);

    // More than a gap after the last one: at once, even with more queued.
    h.advance(Duration::from_millis(2));
    assert_eq!(h.received(400, false)[0], ack(400));
}

#[test]
fn an_idle_link_acknowledges_every_second() {
    let mut h = Harness::new(Duration::from_secs(5));
    h.streaming(node(1), 100);
    let start = h.now;
    for second in 1..=3u32 {
        // The primary's PING arrives just before each idle acknowledgement.
        h.advance(Duration::from_millis(990));
        let effects = h.received(100 + u64::from(second), true);
        assert_eq!(effects[0], ack(100 + u64::from(second)));
    }
    // Nothing arrives for a while: still one acknowledgement a second.
    let last = h.now;
    assert_eq!(h.wake()[0], ack(103));
    assert_eq!(h.now, last + ACK_EVERY);
    assert_eq!(h.wake()[0], ack(103));
    assert_eq!(h.now, last + 2 * ACK_EVERY);
    assert!(h.now > start);
}

#[test]
fn a_silent_primary_is_given_up_although_acknowledgements_keep_going() {
    let mut h = Harness::new(TIMEOUT);
    let p = node(1);
    h.streaming(p.clone(), 100);
    let heard = h.now;
    // The primary sends nothing; this side keeps acknowledging on its own
    // clock. That must not count as hearing from the primary.
    let mut acks = 0;
    loop {
        let effects = h.wake();
        if effects.iter().any(|e| matches!(e, Effect::DropLink(_))) {
            let mut down = h.status_of(&p, false);
            down.last_io = Some(heard);
            assert_eq!(
                effects,
                [
                    Effect::DropLink(Reason::Silent(TIMEOUT)),
                    Effect::Report(down),
                ]
            );
            break;
        }
        assert_eq!(effects, [ack(100)]);
        acks += 1;
    }
    assert_eq!(h.now, heard + TIMEOUT, "given up exactly on time");
    assert_eq!(acks, 1, "acknowledged each second until then");
    assert!(!h.link.status().link_up, "reported down");
    assert_eq!(h.link.phase(), Phase::Backoff);
    assert_eq!(
        Reason::Silent(TIMEOUT).to_string(),
        "primary silent for 2s",
        "the reason as logged"
    );
}

#[test]
fn a_primary_that_keeps_sending_is_never_silent() {
    let mut h = Harness::new(TIMEOUT);
    h.streaming(node(1), 100);
    for i in 1..=100 {
        h.advance(Duration::from_millis(900));
        h.received(100 + i, true);
        assert_eq!(h.link.phase(), Phase::Streaming);
    }
}

#[test]
fn silence_counts_during_the_handshake_and_the_copy() {
    let mut h = Harness::new(TIMEOUT);
    let p = node(1);
    h.adopt(Some(p.clone()));
    h.step(Event::Connected {
        history: history("x", 0),
    });
    let asked = h.now;
    let effects = h.wake();
    assert_eq!(effects[0], Effect::DropLink(Reason::Silent(TIMEOUT)));
    assert_eq!(h.now, asked + TIMEOUT, "no answer to KC.PSYNC");

    h.wake(); // backoff over
    h.step(Event::Connected {
        history: history("x", 0),
    });
    h.step(Event::PsyncAnswered(Answer::FullSync {
        replid: "p".into(),
        offset: 0,
    }));
    h.advance(Duration::from_millis(1500));
    h.step(Event::Loading);
    let loading = h.now;
    let effects = h.wake();
    assert_eq!(effects[0], Effect::DropLink(Reason::Silent(TIMEOUT)));
    assert_eq!(
        h.now,
        loading + TIMEOUT,
        "measured from the last copy bytes"
    );
    assert!(h.link.status().syncing, "the copy never completed");
    assert!(!h.link.status().synced);
}

#[test]
fn silence_is_at_least_a_second() {
    let mut h = Harness::new(Duration::from_millis(100));
    h.streaming(node(1), 7);
    let heard = h.now;
    let effects = h.wake();
    assert_eq!(effects[0], Effect::DropLink(Reason::Silent(MIN_SILENCE)));
    assert_eq!(h.now, heard + MIN_SILENCE);
}

#[test]
fn a_failing_link_backs_off_doubling_to_a_second() {
    let mut h = Harness::new(TIMEOUT);
    let p = node(1);
    h.adopt(Some(p.clone()));
    let mut waits = Vec::new();
    for _ in 0..7 {
        let failed = h.now;
        let effects = h.step(Event::ConnectFailed("refused".into()));
        assert_eq!(
            effects[0],
            Effect::DropLink(Reason::Broken("refused".into()))
        );
        assert_eq!(h.link.phase(), Phase::Backoff);
        assert!(h.tick().is_empty(), "too early");
        assert_eq!(h.wake(), [connect(&p)]);
        waits.push(h.now - failed);
    }
    let ms: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
    assert_eq!(ms, [50, 100, 200, 400, 800, 1000, 1000]);

    // A link that streams was clean: the next failure waits 50 ms again.
    h.step(Event::Connected {
        history: history("x", 9),
    });
    h.step(Event::PsyncAnswered(Answer::Continue {
        replid: "x".into(),
        offset: 9,
    }));
    let broke = h.now;
    let effects = h.step(Event::LinkBroken("primary closed the link".into()));
    assert_eq!(
        effects,
        [
            Effect::DropLink(Reason::Broken("primary closed the link".into())),
            Effect::Report(UpstreamStatus {
                last_io: Some(broke),
                synced: true,
                ..h.status_of(&p, false)
            }),
        ]
    );
    assert_eq!(h.link.next_tick(), Some(broke + FIRST_BACKOFF));
}

#[test]
fn client_kill_type_master_drops_the_link_and_it_comes_back() {
    let mut h = Harness::new(TIMEOUT);
    let p = node(1);
    h.streaming(p.clone(), 100);
    let effects = h.step(Event::Killed);
    assert_eq!(effects[0], Effect::DropLink(Reason::Killed));
    assert!(!h.link.status().link_up);
    assert!(h.step(Event::Killed).is_empty(), "nothing left to kill");
    assert_eq!(h.wake(), [connect(&p)]);
    assert_eq!(
        Reason::Killed.to_string(),
        "link killed (CLIENT KILL TYPE master)"
    );
}

#[test]
fn a_new_primary_replaces_the_link_and_the_same_one_keeps_it() {
    let mut h = Harness::new(TIMEOUT);
    let (one, two) = (node(1), node(2));
    h.streaming(one.clone(), 100);
    assert!(
        h.adopt(Some(one.clone())).is_empty(),
        "same primary: no change"
    );
    assert_eq!(h.link.phase(), Phase::Streaming);

    let effects = h.adopt(Some(two.clone()));
    assert_eq!(
        effects,
        [
            Effect::DropLink(Reason::Reconfigured),
            Effect::BecomeReplica,
            connect(&two),
            Effect::Report(h.status_of(&two, false)),
        ]
    );
    assert_eq!(h.link.following(), Some(&two));
}

#[test]
fn a_new_primary_during_the_backoff_is_tried_at_once() {
    let mut h = Harness::new(TIMEOUT);
    let (one, two) = (node(1), node(2));
    h.adopt(Some(one.clone()));
    h.step(Event::ConnectFailed("refused".into()));
    assert!(h.adopt(Some(one)).is_empty(), "the same one waits its turn");
    assert_eq!(h.link.phase(), Phase::Backoff);
    let effects = h.adopt(Some(two.clone()));
    assert_eq!(effects[..2], [Effect::BecomeReplica, connect(&two)]);
    assert_eq!(h.link.phase(), Phase::Connecting);
}

#[test]
fn a_replica_named_primary_is_promoted() {
    let mut h = Harness::new(TIMEOUT);
    h.streaming(node(1), 100);
    let effects = h.adopt(None);
    assert_eq!(
        effects,
        [
            Effect::DropLink(Reason::Reconfigured),
            Effect::Promote,
            Effect::Report(UpstreamStatus::default()),
        ]
    );
    assert_eq!(h.link.phase(), Phase::Idle);
    assert_eq!(h.link.following(), None);
    assert_eq!(h.adopt(None), [Effect::BecomePrimary], "promoted once");
}

#[test]
fn a_replica_outside_every_configuration_is_not_promoted() {
    let mut h = Harness::new(TIMEOUT);
    let p = node(1);
    h.streaming(p.clone(), 100);
    let effects = h.step(Event::ConfigAdopted {
        primary: None,
        member: false,
    });
    assert_eq!(
        effects[..2],
        [
            Effect::DropLink(Reason::Reconfigured),
            Effect::BecomePrimary
        ]
    );
    assert_eq!(
        h.link.status().primary.as_ref(),
        Some(&p.id),
        "still its data"
    );
    assert!(!h.link.status().link_up);

    // Back in a configuration, following the same primary: a new link.
    let effects = h.adopt(Some(p.clone()));
    assert_eq!(effects, [Effect::BecomeReplica, connect(&p)]);

    // Or named a primary: a promotion after all.
    h.step(Event::ConfigAdopted {
        primary: None,
        member: false,
    });
    assert_eq!(h.adopt(None)[0], Effect::Promote);
}

#[test]
fn events_that_arrive_too_late_change_nothing() {
    let mut h = Harness::new(TIMEOUT);
    let p = node(1);
    h.adopt(None);
    let stale = [
        Event::Connected {
            history: history("x", 1),
        },
        Event::ConnectFailed("refused".into()),
        Event::PsyncAnswered(Answer::Continue {
            replid: "x".into(),
            offset: 1,
        }),
        Event::Loading,
        Event::CopyLoaded,
        Event::Received {
            offset: 1,
            emptied: true,
        },
        Event::LinkBroken("gone".into()),
    ];
    for event in stale.clone() {
        assert!(h.step(event).is_empty(), "idle");
    }
    h.adopt(Some(p));
    h.step(Event::ConnectFailed("refused".into()));
    for event in stale {
        assert!(h.step(event).is_empty(), "backing off");
    }
    assert_eq!(h.link.phase(), Phase::Backoff);
}
