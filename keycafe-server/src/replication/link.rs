//! The replica's link to its primary, as a deterministic state machine.
//!
//! [`Link`] decides everything about following a primary — when to connect,
//! what to ask for, when to acknowledge, when to give up on a silent primary,
//! how long to wait before trying again, and what the node's role is — and
//! changes only in [`Link::step`]: an [`Event`] and the current time go in,
//! a list of [`Effect`]s comes out. It owns no socket, reads no clock and
//! touches neither the store nor the replication log, so its tests drive it
//! with plain values, no sockets and no sleeps. [`super::replica`] is the
//! shell around it: it owns the socket, applies the records, turns reads,
//! configuration changes and timers into events, and carries out effects in
//! order. [`Link::next_tick`] tells the shell when time alone would change
//! something, so that it sleeps exactly until then.
//!
//! # The life of a link
//!
//! ```text
//!            config names P              Connected           PsyncAnswered(FullSync)
//!   Idle ─────────────────────▶ Connecting ─────▶ Handshaking ────────▶ FullCopy
//!    ▲  config names nobody          ▲                 │ Continue          │ CopyLoaded
//!    └──── (from any state)          │ backoff over    ▼                   ▼
//!                                 Backoff ◀──────── Streaming ◀────────────┘
//!                                          broken, killed, silent (from any linked state)
//! ```
//!
//! # Rules
//!
//! - **Backoff**: a link that breaks (or cannot be made) is tried again after
//!   50 ms, doubling up to 1 s. A link that gets as far as streaming has
//!   proved the primary healthy, so the next failure starts again at 50 ms;
//!   so does a new primary.
//! - **Acknowledgements**: `KC.ACK offset` right after the handshake, after
//!   each read that empties the socket (a `WAIT` is answered without a
//!   timer's delay), at most one per millisecond while more is queued, and
//!   once a second when nothing arrives (the primary's liveness check).
//! - **Silence**: a primary from which nothing has arrived for the node
//!   timeout (at least 1 s) is given up on: the link is dropped and reported
//!   down, so that the coordinator may fail the primary over. Silence is
//!   measured from the last byte received — never from the last
//!   acknowledgement, which this side sends on its own clock. An idle
//!   primary puts a `PING` in the stream every second, so only a primary
//!   that is gone, stopped or cut off stays silent that long.
//! - **Roles**: a configuration that names a primary makes this node a
//!   replica (it stops recording and expiring, and a pause of its own writes
//!   for a manual failover ends); one that names none makes it a primary —
//!   a *promotion*, with a new history, if it was following someone and is
//!   a member of the configuration.
//! - **Status**: every change to what INFO, ROLE and the heartbeat say about
//!   the link ([`UpstreamStatus`]) is reported after the step's other
//!   effects.

use std::fmt;
use std::time::{Duration, Instant};

use keycafe_core::cluster::NodeInfo;

use super::UpstreamStatus;
use super::log::{NO_ID, Position};

/// The first wait before trying a broken link again.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// The longest wait before trying again.
pub const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// While more of the stream is queued, acknowledge at most once per this gap.
pub const ACK_GAP: Duration = Duration::from_millis(1);
/// An idle replica still acknowledges this often.
pub const ACK_EVERY: Duration = Duration::from_secs(1);
/// The shortest silence that gives up on a primary, whatever the node
/// timeout.
pub const MIN_SILENCE: Duration = Duration::from_secs(1);

/// Something that happened, fed to [`Link::step`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A configuration was adopted (or, at start, the current one): it
    /// names this node's primary, or none. `member` is false while this
    /// node is in no configuration.
    ConfigAdopted {
        primary: Option<NodeInfo>,
        member: bool,
    },
    /// The bus connection to the primary is up (hello and AUTH done);
    /// `history` is where our replication log stands.
    Connected { history: Position },
    /// The bus connection could not be made.
    ConnectFailed(String),
    /// The primary answered `KC.PSYNC`.
    PsyncAnswered(Answer),
    /// Bytes of the full copy arrived and were loaded (it is not over yet).
    Loading,
    /// The full copy's `KC.SYNCED` marker arrived: the copy is loaded.
    CopyLoaded,
    /// Stream bytes arrived and every complete record was applied; `offset`
    /// is the end of our log now. `emptied`: the read took everything the
    /// socket held.
    Received { offset: u64, emptied: bool },
    /// Time passed (see [`Link::next_tick`]).
    Tick,
    /// The link failed: an I/O error, a closed socket, a record we cannot
    /// apply.
    LinkBroken(String),
    /// `CLIENT KILL TYPE master`.
    Killed,
}

/// The primary's answer to `KC.PSYNC`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Our history continues: the stream follows from our `offset`, under
    /// the primary's id `replid`.
    Continue { replid: String, offset: u64 },
    /// A full copy follows; afterwards the stream continues from `offset`
    /// of history `replid`.
    FullSync { replid: String, offset: u64 },
}

/// Something the shell must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Open a bus connection to the primary (hello, AUTH).
    Connect { bus_addr: String },
    /// Send `KC.PSYNC` asking to continue history `replid` from `offset`
    /// (`None`: we hold no history; sent as `-1`).
    SendPsync { replid: String, offset: Option<u64> },
    /// A full copy follows: forget our history and our data, then load the
    /// copy's records until `KC.SYNCED`.
    BeginCopy,
    /// The copy is loaded: our history is now `replid`, ending at `offset`;
    /// what follows on the link is the stream.
    AdoptHistory { replid: String, offset: u64 },
    /// Our history continues under the primary's id `replid`; what follows
    /// on the link is the stream.
    ContinueHistory { replid: String },
    /// Send `KC.ACK offset`.
    SendAck(u64),
    /// Close the link (or give up the attempt to make it).
    DropLink(Reason),
    /// Become a primary with a new history that remembers the one followed
    /// so far.
    Promote,
    /// Act as a primary: the store expires keys itself (and the log
    /// records once a replica attaches).
    BecomePrimary,
    /// Act as a replica: record nothing of our own, let the store expire
    /// nothing (the primary's `DEL`s do), end any write pause.
    BecomeReplica,
    /// What INFO, ROLE and heartbeats say about the link from now on.
    Report(UpstreamStatus),
}

/// Why a link ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The configuration names another primary, or none: not a failure.
    Reconfigured,
    /// `CLIENT KILL TYPE master`.
    Killed,
    /// Nothing arrived for this long.
    Silent(Duration),
    /// An error on the link.
    Broken(String),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Reconfigured => f.write_str("the configuration names another primary"),
            Reason::Killed => f.write_str("link killed (CLIENT KILL TYPE master)"),
            Reason::Silent(silence) => write!(f, "primary silent for {silence:?}"),
            Reason::Broken(err) => f.write_str(err),
        }
    }
}

/// Where the link stands, for the shell's and the tests' eyes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// This node is a primary (or in no configuration): no link.
    Idle,
    Connecting,
    /// `KC.PSYNC` sent, no answer yet.
    Handshaking,
    FullCopy,
    Streaming,
    /// Waiting to try again.
    Backoff,
}

#[derive(Debug)]
enum State {
    Idle,
    Connecting,
    Handshaking {
        since: Instant,
    },
    FullCopy {
        replid: String,
        offset: u64,
        heard: Instant,
    },
    Streaming(Stream),
    Backoff {
        until: Instant,
    },
}

#[derive(Debug)]
struct Stream {
    /// The end of our log, as last reported.
    offset: u64,
    /// When the last byte arrived.
    heard: Instant,
    /// When the last acknowledgement went out.
    acked_at: Instant,
    /// Something arrived since the last acknowledgement.
    owed: bool,
}

/// The replica's link state machine. See the module documentation.
#[derive(Debug)]
pub struct Link {
    /// Silence after which the primary is given up on.
    silence: Duration,
    state: State,
    /// The primary the configuration last named (kept, without a link,
    /// while this node is in no configuration).
    following: Option<NodeInfo>,
    /// The wait before the next attempt, should this one fail.
    backoff: Duration,
    status: UpstreamStatus,
    /// `status` as last reported, to report only changes.
    reported: UpstreamStatus,
}

impl Link {
    /// A link that follows nobody yet; a primary silent for `node_timeout`
    /// (at least [`MIN_SILENCE`]) will be given up on.
    pub fn new(node_timeout: Duration) -> Link {
        Link {
            silence: node_timeout.max(MIN_SILENCE),
            state: State::Idle,
            following: None,
            backoff: FIRST_BACKOFF,
            status: UpstreamStatus::default(),
            reported: UpstreamStatus::default(),
        }
    }

    /// Where the link stands.
    pub fn phase(&self) -> Phase {
        match self.state {
            State::Idle => Phase::Idle,
            State::Connecting => Phase::Connecting,
            State::Handshaking { .. } => Phase::Handshaking,
            State::FullCopy { .. } => Phase::FullCopy,
            State::Streaming(_) => Phase::Streaming,
            State::Backoff { .. } => Phase::Backoff,
        }
    }

    /// The primary the configuration names, if any.
    pub fn following(&self) -> Option<&NodeInfo> {
        self.following.as_ref()
    }

    /// The link's status (between steps, the one last reported).
    pub fn status(&self) -> &UpstreamStatus {
        &self.status
    }

    /// The earliest instant at which a [`Event::Tick`] would do something:
    /// the end of a backoff, an acknowledgement falling due, the primary's
    /// silence running out. `None`: only an event can change anything.
    pub fn next_tick(&self) -> Option<Instant> {
        match &self.state {
            State::Idle | State::Connecting => None,
            State::Backoff { until } => Some(*until),
            State::Handshaking { since } => Some(*since + self.silence),
            State::FullCopy { heard, .. } => Some(*heard + self.silence),
            State::Streaming(stream) => {
                let ack = match stream.owed {
                    true => stream.acked_at + ACK_GAP,
                    false => stream.acked_at + ACK_EVERY,
                };
                Some(ack.min(stream.heard + self.silence))
            }
        }
    }

    /// Applies one event.
    pub fn step(&mut self, event: Event, now: Instant) -> Vec<Effect> {
        let mut effects = Vec::new();
        match event {
            Event::ConfigAdopted { primary, member } => {
                self.adopt(primary, member, &mut effects);
            }
            Event::Connected { history } => {
                if let State::Connecting = self.state {
                    self.state = State::Handshaking { since: now };
                    // An empty history (offset 0) has nothing to continue.
                    // Any other — our primary's, or our own as a demoted
                    // primary — the primary decides whether it can continue.
                    let (replid, offset) = match history.offset {
                        0 => (NO_ID.to_string(), None),
                        offset => (history.replid, Some(offset)),
                    };
                    effects.push(Effect::SendPsync { replid, offset });
                }
            }
            Event::ConnectFailed(err) => {
                if let State::Connecting = self.state {
                    self.broken(Reason::Broken(err), now, &mut effects);
                }
            }
            Event::PsyncAnswered(answer) => {
                if let State::Handshaking { .. } = self.state {
                    self.answered(answer, now, &mut effects);
                }
            }
            Event::Loading => {
                if let State::FullCopy { heard, .. } = &mut self.state {
                    *heard = now;
                }
            }
            Event::CopyLoaded => {
                if let State::FullCopy { replid, offset, .. } = &mut self.state {
                    let (replid, offset) = (std::mem::take(replid), *offset);
                    effects.push(Effect::AdoptHistory { replid, offset });
                    self.stream(offset, now, &mut effects);
                }
            }
            Event::Received { offset, emptied } => {
                if let State::Streaming(stream) = &mut self.state {
                    stream.heard = now;
                    stream.offset = offset;
                    stream.owed = true;
                    self.status.last_io = Some(now);
                    // Held back only while more is on its way.
                    if emptied || now >= stream.acked_at + ACK_GAP {
                        ack(stream, now, &mut effects);
                    }
                }
            }
            Event::Tick => self.tick(now, &mut effects),
            Event::LinkBroken(err) => {
                if self.is_linked() {
                    self.broken(Reason::Broken(err), now, &mut effects);
                }
            }
            Event::Killed => {
                if self.is_linked() {
                    self.broken(Reason::Killed, now, &mut effects);
                }
            }
        }
        if self.status != self.reported {
            self.reported = self.status.clone();
            effects.push(Effect::Report(self.status.clone()));
        }
        effects
    }

    fn adopt(&mut self, primary: Option<NodeInfo>, member: bool, effects: &mut Vec<Effect>) {
        let Some(primary) = primary else {
            self.drop_link(effects);
            self.state = State::Idle;
            self.backoff = FIRST_BACKOFF;
            if self.following.is_some() && member {
                self.following = None;
                self.status = UpstreamStatus::default();
                effects.push(Effect::Promote);
            } else {
                effects.push(Effect::BecomePrimary);
            }
            return;
        };
        let same = self.following.as_ref().is_some_and(|p| p.id == primary.id);
        if same && !matches!(self.state, State::Idle) {
            return; // nothing changed for us
        }
        self.drop_link(effects);
        effects.push(Effect::BecomeReplica);
        if !same {
            self.status.primary = Some(primary.id.clone());
            self.status.primary_addr = Some(primary.client_addr.clone());
        }
        self.backoff = FIRST_BACKOFF;
        effects.push(Effect::Connect {
            bus_addr: primary.bus_addr.clone(),
        });
        self.following = Some(primary);
        self.state = State::Connecting;
    }

    fn answered(&mut self, answer: Answer, now: Instant, effects: &mut Vec<Effect>) {
        match answer {
            Answer::Continue { replid, offset } => {
                effects.push(Effect::ContinueHistory { replid });
                self.stream(offset, now, effects);
            }
            Answer::FullSync { replid, offset } => {
                self.status.syncing = true;
                self.status.synced = false;
                effects.push(Effect::BeginCopy);
                self.state = State::FullCopy {
                    replid,
                    offset,
                    heard: now,
                };
            }
        }
    }

    /// The handshake is over: the stream follows from `offset`.
    fn stream(&mut self, offset: u64, now: Instant, effects: &mut Vec<Effect>) {
        self.status.syncing = false;
        self.status.synced = true;
        self.status.link_up = true;
        self.status.last_io = Some(now);
        // A clean link: the next failure starts the backoff afresh.
        self.backoff = FIRST_BACKOFF;
        effects.push(Effect::SendAck(offset));
        self.state = State::Streaming(Stream {
            offset,
            heard: now,
            acked_at: now,
            owed: false,
        });
    }

    fn tick(&mut self, now: Instant, effects: &mut Vec<Effect>) {
        let heard = match &mut self.state {
            State::Idle | State::Connecting => return,
            State::Backoff { until } => {
                if now >= *until
                    && let Some(primary) = &self.following
                {
                    effects.push(Effect::Connect {
                        bus_addr: primary.bus_addr.clone(),
                    });
                    self.state = State::Connecting;
                }
                return;
            }
            State::Handshaking { since } => *since,
            State::FullCopy { heard, .. } => *heard,
            State::Streaming(stream) => {
                let due = match stream.owed {
                    true => stream.acked_at + ACK_GAP,
                    false => stream.acked_at + ACK_EVERY,
                };
                if now >= due && now < stream.heard + self.silence {
                    ack(stream, now, effects);
                }
                stream.heard
            }
        };
        if now.saturating_duration_since(heard) >= self.silence {
            self.broken(Reason::Silent(self.silence), now, effects);
        }
    }

    /// The link failed: drop it, report it down, try again after the
    /// backoff.
    fn broken(&mut self, reason: Reason, now: Instant, effects: &mut Vec<Effect>) {
        effects.push(Effect::DropLink(reason));
        self.status.link_up = false;
        self.state = State::Backoff {
            until: now + self.backoff,
        };
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    /// Drops the link, if there is one, because the configuration changed.
    fn drop_link(&mut self, effects: &mut Vec<Effect>) {
        if self.is_linked() {
            effects.push(Effect::DropLink(Reason::Reconfigured));
        }
        self.status.link_up = false;
    }

    /// True from the first connection attempt until the link ends.
    fn is_linked(&self) -> bool {
        matches!(
            self.state,
            State::Connecting
                | State::Handshaking { .. }
                | State::FullCopy { .. }
                | State::Streaming(_)
        )
    }
}

fn ack(stream: &mut Stream, now: Instant, effects: &mut Vec<Effect>) {
    effects.push(Effect::SendAck(stream.offset));
    stream.acked_at = now;
    stream.owed = false;
}

#[cfg(test)]
mod tests;
