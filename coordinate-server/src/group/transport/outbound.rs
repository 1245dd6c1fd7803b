//! The link to one peer: a task that dials it, authenticates, and writes
//! what is queued for it, redialling with backoff when the link fails.
//!
//! What was queued when a dial fails is dropped rather than kept for the
//! next one: Raft sends again, and newer messages are worth more than a
//! backlog of old heartbeats (or of several copies of a snapshot). A link
//! that breaks may have lost what it had written; both are reported to the
//! driver as [`Inbound::Dropped`].

use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use keycafe_core::tls::ClientStream;
use raft::eraftpb::Message;
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::handshake::{self, Handshake};
use super::{
    CONNECT_TIMEOUT, Context, HANDSHAKE_TIMEOUT, Inbound, LinkStatus, MAX_BACKOFF, MIN_BACKOFF,
    encode_raft, is_snapshot, lock, write_watched,
};
use crate::group::MemberId;

/// Queued messages are written together up to about this many bytes.
const BATCH_BYTES: usize = 256 * 1024;

/// The task's state: what it dials, what it sends, where it reports.
pub(super) struct Link {
    pub(super) context: Arc<Context>,
    pub(super) peer: MemberId,
    pub(super) queue: mpsc::Receiver<Message>,
    pub(super) addr: watch::Receiver<String>,
    pub(super) status: Arc<Mutex<LinkStatus>>,
}

/// How one connection ended.
enum Ended {
    /// The peer moved: dial its new address at once.
    Moved,
    /// The peer was removed, or the transport stopped.
    Stopped,
    /// The dial or the link failed.
    Failed {
        reason: String,
        /// The link had passed the handshake (so messages may have been
        /// lost in flight).
        was_up: bool,
        /// A snapshot was written on it.
        snapshot: bool,
    },
}

impl Link {
    /// Keeps the link up until `stop` is cancelled or the peer is removed.
    pub(super) async fn run(mut self, stop: CancellationToken) {
        let mut backoff = MIN_BACKOFF;
        loop {
            let addr = self.addr.borrow_and_update().clone();
            let ended = tokio::select! {
                ended = self.connection(&addr) => ended,
                () = stop.cancelled() => return,
            };
            let (reason, was_up, mut snapshot) = match ended {
                Ended::Moved => {
                    self.set_down(None);
                    backoff = MIN_BACKOFF;
                    continue;
                }
                Ended::Stopped => return,
                Ended::Failed {
                    reason,
                    was_up,
                    snapshot,
                } => (reason, was_up, snapshot),
            };
            if was_up {
                backoff = MIN_BACKOFF;
            }
            let (dropped, queued_snapshot) = self.discard_queued();
            snapshot |= queued_snapshot;
            self.log_failure(&addr, &reason, dropped);
            self.set_down(Some(reason));
            if was_up || dropped > 0 {
                let report = self.context.inbox.send(Inbound::Dropped {
                    to: self.peer,
                    snapshot,
                });
                tokio::select! {
                    _ = report => {}
                    () = stop.cancelled() => return,
                }
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                moved = self.addr.changed() => if moved.is_err() { return },
                () = stop.cancelled() => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// One connection: dial, authenticate, then write the queue until
    /// something ends it.
    async fn connection(&mut self, addr: &str) -> Ended {
        let (stream, mut input) = match self.open(addr).await {
            Ok(opened) => opened,
            Err(reason) => {
                return Ended::Failed {
                    reason,
                    was_up: false,
                    snapshot: false,
                };
            }
        };
        self.set_up(addr);
        let (mut reader, mut writer) = tokio::io::split(stream);
        let mut out = BytesMut::new();
        let mut snapshot = false;
        loop {
            tokio::select! {
                moved = self.addr.changed() => {
                    return if moved.is_ok() { Ended::Moved } else { Ended::Stopped };
                }
                first = self.queue.recv() => {
                    let Some(first) = first else { return Ended::Stopped };
                    snapshot |= self.batch(first, &mut out);
                    if let Err(reason) = write_watched(&mut writer, &out).await {
                        return Ended::Failed { reason, was_up: true, snapshot };
                    }
                    out.clear();
                }
                read = reader.read_buf(&mut input) => {
                    let reason = match read {
                        Ok(0) => "the member closed the link".to_string(),
                        Ok(_) => match handshake::parse(&mut input) {
                            Ok(None) => continue,
                            Ok(Some(Handshake::Error { message })) => {
                                format!("the member closed the link: {message}")
                            }
                            Ok(Some(_)) => "the member sent a message on a link it only reads".into(),
                            Err(reason) => reason,
                        },
                        Err(err) => format!("read failed: {err}"),
                    };
                    return Ended::Failed { reason, was_up: true, snapshot };
                }
            }
        }
    }

    /// Connects to `addr` (with TLS if configured) and runs the dialler's
    /// handshake, each within its time limit. Returns the stream and what
    /// was read past the handshake.
    async fn open(&self, addr: &str) -> Result<(ClientStream, BytesMut), String> {
        let connector = self.context.tls.as_ref().map(|(_, connector)| connector);
        let connect = ClientStream::connect(addr, connector);
        let mut stream = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => return Err(format!("cannot connect: {err}")),
            Err(_) => return Err(format!("no answer to connect within {CONNECT_TIMEOUT:?}")),
        };
        let mut buf = BytesMut::new();
        let context = &self.context;
        let handshake = handshake::dial(
            &mut stream,
            &mut buf,
            &context.me,
            self.peer,
            &context.secret,
        );
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
            Ok(Ok(())) => Ok((stream, buf)),
            Ok(Err(reason)) => Err(reason),
            Err(_) => Err(format!("no handshake within {HANDSHAKE_TIMEOUT:?}")),
        }
    }

    /// Encodes `first` and whatever else is queued, up to [`BATCH_BYTES`],
    /// into `out`. Returns whether a snapshot is among them.
    fn batch(&mut self, first: Message, out: &mut BytesMut) -> bool {
        let mut snapshot = false;
        let mut next = Some(first);
        while let Some(message) = next {
            match encode_raft(&message, out) {
                Ok(()) => snapshot |= is_snapshot(&message),
                Err(reason) => {
                    warn!(peer = self.peer, %reason, "Raft message dropped");
                    let dropped = Inbound::Dropped {
                        to: self.peer,
                        snapshot: is_snapshot(&message),
                    };
                    let _ = self.context.inbox.try_send(dropped);
                }
            }
            next = match out.len() < BATCH_BYTES {
                true => self.queue.try_recv().ok(),
                false => None,
            };
        }
        snapshot
    }

    /// Drops what is queued. Returns how many messages, and whether a
    /// snapshot was among them.
    fn discard_queued(&mut self) -> (usize, bool) {
        let (mut dropped, mut snapshot) = (0, false);
        while let Ok(message) = self.queue.try_recv() {
            dropped += 1;
            snapshot |= is_snapshot(&message);
        }
        (dropped, snapshot)
    }

    fn set_up(&self, addr: &str) {
        let mut status = lock(&self.status);
        status.connected = true;
        status.last_error = None;
        info!(peer = self.peer, %addr, "group link up");
    }

    fn set_down(&self, reason: Option<String>) {
        let mut status = lock(&self.status);
        status.connected = false;
        status.last_error = reason;
    }

    /// Warns once per new reason: a peer that stays down is not worth a
    /// warning per dial.
    fn log_failure(&self, addr: &str, reason: &str, dropped: usize) {
        let repeated = lock(&self.status).last_error.as_deref() == Some(reason);
        if repeated {
            debug!(peer = self.peer, %addr, %reason, dropped, "group link still down");
        } else {
            warn!(peer = self.peer, %addr, %reason, dropped, "group link down; redialling");
        }
    }
}
