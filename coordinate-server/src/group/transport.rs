//! The links between coordinators: every member listens on its group port
//! and dials every other member to send it Raft messages.
//!
//! Each member opens **one outbound connection per peer** and writes on it
//! only; the connections it accepts only deliver. So each direction of a
//! pair has exactly one writer, no rule is needed to pick between two
//! members dialling each other at once, and a member needs a peer's address
//! only to send to it (a peer that dials us says where it is in its hello,
//! and the driver decides whether to adopt it: [`Inbound::Hello`]).
//!
//! **Sending never waits and never fails.** Raft sends again whatever is
//! lost (heartbeats, appends, votes), so a message for an unknown peer, for
//! a peer whose queue is full ([`QUEUE`]) or whose link is down is dropped,
//! and the driver is told ([`Inbound::Dropped`]) so that it can tell Raft:
//! a leader that believes a follower is streaming keeps sending from where
//! it thinks the follower is, and one that sent a snapshot waits for it
//! until it hears that the snapshot was lost.
//!
//! **Every connection is authenticated** with the cluster secret in both
//! directions before a Raft message crosses it (`handshake`); with the
//! coordinator's TLS files, it is mutual TLS first. After the handshake the
//! dialler sends one native frame per Raft message, a bulk string holding
//! the message's protobuf bytes, of at most [`MAX_MESSAGE_LEN`] (snapshots
//! travel this way too). `docs/protocol.md` ("Between coordinators")
//! specifies the bytes.
//!
//! Nothing a socket sends can panic the coordinator: a peer that fails the
//! handshake, takes longer than [`HANDSHAKE_TIMEOUT`] over it, or sends a
//! frame that is not a Raft message is logged and closed.
//!
//! # Layout
//!
//! - this file: [`Transport`], the handle the driver holds, and the
//!   framing of Raft messages;
//! - `handshake`: the challenge-response both sides run first;
//! - `outbound`: the task that keeps the link to one peer and writes its
//!   queue to it;
//! - `inbound`: the listener and the connections it accepts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use keycafe_core::tls::{Connector, TlsAcceptor};
use keycafe_core::{Frame, Limits, Protocol};
use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;
use tracing::{debug, info};

use super::{Member, MemberId};

mod handshake;
mod inbound;
mod outbound;

/// Messages queued for one peer; more are dropped until the link catches
/// up.
pub const QUEUE: usize = 4096;
/// Longest wait for a peer to accept a connection (and to finish the TLS
/// handshake, with TLS): a connect into a partition would otherwise wait
/// out the kernel's retries, minutes.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// A new connection must have finished the handshake within this, in
/// either direction, or it is closed.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);
/// A write that makes no progress for this long means the peer stopped
/// reading: the link is closed and dialled again. (Progress, not the whole
/// write: a large snapshot may take longer on a slow network.)
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest Raft message, in protobuf bytes.
pub const MAX_MESSAGE_LEN: usize = 64 * 1024 * 1024;
/// First wait before dialling a peer again after a failure; it doubles up
/// to [`MAX_BACKOFF`], and starts again once a link is up.
pub const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between two dials of a peer.
pub const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// The frames a link carries after its handshake: one bulk string each.
const RAFT_LIMITS: Limits = Limits {
    max_bulk_len: MAX_MESSAGE_LEN,
    max_args: 1,
    max_inline_len: 0,
    // A bulk's tag and length take 5 bytes.
    max_frame_len: MAX_MESSAGE_LEN + 16,
    unauthenticated: false,
};

/// What the transport hands the driver.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// A Raft message from a peer, addressed to this member.
    Message(Message),
    /// A peer proved that it holds the cluster secret, and says this is who
    /// and where it is. The driver decides whether to [`Transport::set_peer`]
    /// it (a member it did not know of yet, or one that moved).
    Hello(Member),
    /// Messages for `to` were dropped (a full queue, a link that failed) or
    /// may have been lost with a broken link: the driver tells Raft that
    /// `to` is unreachable and, if `snapshot`, that the snapshot sent to it
    /// failed, so that the leader probes the peer again instead of waiting.
    Dropped { to: MemberId, snapshot: bool },
}

/// How the link to one peer stands, for the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    pub id: MemberId,
    /// Where this member dials it (its group port).
    pub addr: String,
    /// The outbound link is up: it passed the handshake and has not failed
    /// since.
    pub connected: bool,
    /// Why the outbound link is down, if it is and has failed.
    pub last_error: Option<String>,
    /// When the last Raft message from this peer arrived (on a link it
    /// dialled), if one has since this transport started.
    pub last_received: Option<Instant>,
}

/// The links between this coordinator and the others of its group. Cheap
/// to clone: every clone is a handle on the same links. It stops when the
/// `stop` token given to [`Transport::start`] is cancelled, or when the last
/// handle is dropped.
#[derive(Clone)]
pub struct Transport {
    shared: Arc<Shared>,
}

struct Shared {
    /// What every link needs to dial and authenticate.
    context: Arc<Context>,
    peers: Mutex<HashMap<MemberId, Peer>>,
    /// Cancelled on `stop` or when the last handle is dropped.
    token: CancellationToken,
    tasks: TaskTracker,
}

/// What the tasks share: who this member is and how it proves it.
struct Context {
    me: Member,
    secret: Arc<str>,
    tls: Option<(TlsAcceptor, Connector)>,
    inbox: mpsc::Sender<Inbound>,
    /// When each peer's last message arrived, written by the connections
    /// it dialled.
    received: Mutex<HashMap<MemberId, Instant>>,
}

/// This member's handle on the outbound link to one peer. Dropping it ends
/// the link's task.
struct Peer {
    member: Member,
    queue: mpsc::Sender<Message>,
    /// Where the task dials; changing it makes the task dial again.
    addr: watch::Sender<String>,
    status: Arc<Mutex<LinkStatus>>,
    /// Set when a full queue was reported to the driver, so that an
    /// overflow is reported once rather than once per message.
    overflow_reported: AtomicBool,
    _stop: DropGuard,
}

/// What the link's task records for [`Transport::peers`].
#[derive(Debug, Default)]
struct LinkStatus {
    connected: bool,
    last_error: Option<String>,
}

impl Transport {
    /// Starts accepting connections from peers on `listener`, each one
    /// authenticated with `secret` (and, with `tls`, mutual TLS with these
    /// settings) and delivering to `inbox`. Peers to send to are added with
    /// [`Transport::set_peer`]. Call it inside a tokio runtime: it spawns
    /// its tasks there.
    pub fn start(
        me: Member,
        listener: TcpListener,
        secret: String,
        tls: Option<(TlsAcceptor, Connector)>,
        inbox: mpsc::Sender<Inbound>,
        stop: CancellationToken,
    ) -> Transport {
        let context = Arc::new(Context {
            me,
            secret: secret.into(),
            tls,
            inbox,
            received: Mutex::new(HashMap::new()),
        });
        let shared = Shared {
            context,
            peers: Mutex::new(HashMap::new()),
            token: stop.child_token(),
            tasks: TaskTracker::new(),
        };
        let accept = inbound::accept_loop(
            listener,
            shared.context.clone(),
            shared.token.clone(),
            shared.tasks.clone(),
        );
        shared.tasks.spawn(accept);
        Transport {
            shared: Arc::new(shared),
        }
    }

    /// Adds a peer to send to, or records where it is now: a link to a
    /// member whose address changed is dialled again at the new address.
    /// This member itself is ignored.
    pub fn set_peer(&self, member: Member) {
        let context = &self.shared.context;
        if member.id == context.me.id {
            debug!(id = member.id, "no link to this member itself");
            return;
        }
        let mut peers = self.links();
        if let Some(peer) = peers.get_mut(&member.id) {
            if peer.member.group_addr != member.group_addr {
                info!(id = member.id, from = %peer.member.group_addr, to = %member.group_addr, "group member moved; dialling its new address");
                peer.addr.send_replace(member.group_addr.clone());
            }
            peer.member = member;
            return;
        }
        let peer = self.spawn_link(member);
        peers.insert(peer.member.id, peer);
    }

    /// Stops sending to a peer and closes the link to it. What was queued
    /// for it is dropped.
    pub fn remove_peer(&self, id: MemberId) {
        if self.links().remove(&id).is_some() {
            info!(id, "group member removed; link closed");
        }
    }

    /// Queues `message` for `message.to`. Never waits: a message for a
    /// peer that is not set, or whose queue is full, is dropped (with a
    /// debug log; a full queue is also reported as [`Inbound::Dropped`]).
    pub fn send(&self, message: Message) {
        let to = message.to;
        let peers = self.links();
        let Some(peer) = peers.get(&to) else {
            debug!(to, "no link to this member; Raft message dropped");
            return;
        };
        match peer.queue.try_send(message) {
            Ok(()) => peer.overflow_reported.store(false, Ordering::Relaxed),
            Err(mpsc::error::TrySendError::Full(message)) => {
                debug!(to, "queue for this member is full; Raft message dropped");
                let snapshot = is_snapshot(&message);
                if snapshot || !peer.overflow_reported.swap(true, Ordering::Relaxed) {
                    // The driver may be busy; then it hears of the next
                    // overflow instead.
                    let _ = self
                        .shared
                        .context
                        .inbox
                        .try_send(Inbound::Dropped { to, snapshot });
                }
            }
            // The link's task has ended: the transport is stopping.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// How the link to each peer stands, by id.
    pub fn peers(&self) -> Vec<PeerStatus> {
        let received = lock(&self.shared.context.received).clone();
        let mut all: Vec<PeerStatus> = self
            .links()
            .values()
            .map(|peer| {
                let status = lock(&peer.status);
                PeerStatus {
                    id: peer.member.id,
                    addr: peer.member.group_addr.clone(),
                    connected: status.connected,
                    last_error: status.last_error.clone(),
                    last_received: received.get(&peer.member.id).copied(),
                }
            })
            .collect();
        all.sort_by_key(|peer| peer.id);
        all
    }

    /// Waits until every task of this transport has ended, once it was
    /// stopped (its `stop` token cancelled): then its port is free and no
    /// connection of it is left open.
    pub async fn stopped(&self) {
        self.shared.tasks.close();
        self.shared.tasks.wait().await;
    }

    fn links(&self) -> MutexGuard<'_, HashMap<MemberId, Peer>> {
        lock(&self.shared.peers)
    }

    /// Starts the task that keeps the link to `member`.
    fn spawn_link(&self, member: Member) -> Peer {
        let (queue, queued) = mpsc::channel(QUEUE);
        let (addr, addr_changes) = watch::channel(member.group_addr.clone());
        let status = Arc::new(Mutex::new(LinkStatus::default()));
        let stop = self.shared.token.child_token();
        let link = outbound::Link {
            context: self.shared.context.clone(),
            peer: member.id,
            queue: queued,
            addr: addr_changes,
            status: status.clone(),
        };
        self.shared.tasks.spawn(link.run(stop.clone()));
        Peer {
            member,
            queue,
            addr,
            status,
            overflow_reported: AtomicBool::new(false),
            _stop: stop.drop_guard(),
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("me", &self.shared.context.me.id)
            .finish_non_exhaustive()
    }
}

/// Locks a mutex whose holders never panic while holding it; if one did,
/// the data (statuses and times) is still good to read.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn is_snapshot(message: &Message) -> bool {
    message.get_msg_type() == MessageType::MsgSnapshot
}

/// Appends `message` as one native frame: a bulk string of its protobuf
/// bytes. `Err` (with the reason) for a message over [`MAX_MESSAGE_LEN`],
/// which the peer would refuse.
fn encode_raft(message: &Message, out: &mut BytesMut) -> Result<(), String> {
    let bytes = message
        .write_to_bytes()
        .map_err(|err| format!("cannot encode a Raft message: {err}"))?;
    if bytes.len() > MAX_MESSAGE_LEN {
        return Err(format!(
            "a Raft message of {} bytes is over the limit of {MAX_MESSAGE_LEN}",
            bytes.len()
        ));
    }
    Protocol::Native.encode_frame(&Frame::Bulk(bytes.into()), out);
    Ok(())
}

/// Takes one Raft message from the front of `buf`, or `None` if it has not
/// fully arrived.
fn decode_raft(buf: &mut BytesMut) -> Result<Option<Message>, String> {
    let frame = Protocol::Native
        .decode_frame(buf, &RAFT_LIMITS)
        .map_err(|err| format!("malformed frame: {err}"))?;
    match frame {
        None => Ok(None),
        Some(Frame::Bulk(bytes)) => Message::parse_from_carllerche_bytes(&bytes)
            .map(Some)
            .map_err(|err| format!("not a Raft message: {err}")),
        Some(_) => Err("a frame that is not a bulk string".into()),
    }
}

/// Makes room in `buf` for the whole frame whose length prefix is at its
/// front, so that a large message is read without growing the buffer step
/// by step. Only for authenticated peers, and within the frame limit.
fn reserve_frame(buf: &mut BytesMut) {
    if let Some(prefix) = buf.get(..4) {
        let body = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        if body <= RAFT_LIMITS.max_frame_len {
            buf.reserve((4 + body).saturating_sub(buf.len()));
        }
    }
}

/// Writes all of `bytes` and flushes, failing if the peer accepts nothing
/// for [`WRITE_STALL_TIMEOUT`].
async fn write_watched(writer: &mut (impl AsyncWrite + Unpin), bytes: &[u8]) -> Result<(), String> {
    let stalled =
        || format!("the member stopped reading: nothing written for {WRITE_STALL_TIMEOUT:?}");
    let mut rest = bytes;
    while !rest.is_empty() {
        match tokio::time::timeout(WRITE_STALL_TIMEOUT, writer.write(rest)).await {
            Err(_) => return Err(stalled()),
            Ok(Err(err)) => return Err(format!("write failed: {err}")),
            Ok(Ok(0)) => return Err("write failed: the connection accepts no more".into()),
            Ok(Ok(written)) => rest = rest.get(written..).unwrap_or_default(),
        }
    }
    // Over TLS the tail of a write can otherwise wait in the session.
    match tokio::time::timeout(WRITE_STALL_TIMEOUT, writer.flush()).await {
        Err(_) => Err(stalled()),
        Ok(Err(err)) => Err(format!("write failed: {err}")),
        Ok(Ok(())) => Ok(()),
    }
}

#[cfg(test)]
mod tests;
