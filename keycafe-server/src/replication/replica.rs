//! The replica's side: following whatever primary the configuration names.
//!
//! While this node's entry says `replica_of: P`, it keeps a link to P's
//! cluster bus: `KC.PSYNC` with its history id and offset, then either a
//! full copy (flush, load every record up to `KC.SYNCED`) or nothing, then
//! the stream, applying each record and keeping its bytes in its own backlog
//! at the same offsets, and acknowledging the offset it has applied
//! (`KC.ACK`). When a configuration makes this node a primary, it is
//! promoted: a new history id (remembering the old one up to here),
//! recording on, expiry on. A demoted primary keeps its data until the new
//! primary's answer says whether it can continue or must take a full copy.
//!
//! Every decision — when to connect, acknowledge, give up on a silent
//! primary, back off, promote — is [`super::link::Link`]'s, a state machine
//! whose module documentation states the rules. [`run`] is its shell: it
//! owns the socket, applies records to the store and the replication log,
//! turns configuration changes, `CLIENT KILL TYPE master`, reads and timers
//! into events, and carries out the effects the machine returns, in order.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use keycafe_core::tls::ClientStream;
use keycafe_core::{Frame, Limits, Protocol, RequestParser};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::Parts;
use super::link::{Answer, Effect, Event, Link, Reason};
use super::log::NO_ID;
use crate::cluster::ClusterState;
use crate::cluster::bus::BusClient;
use crate::store::{MAX_STRING_LEN, Role, Store, records};

/// Room made in the input buffer before each read.
const READ_CHUNK: usize = 64 * 1024;

/// Frames a primary may send: one key and value, a handful of arguments.
const STREAM_LIMITS: Limits = Limits {
    max_bulk_len: MAX_STRING_LEN,
    max_args: 16,
    max_inline_len: 0,
    max_frame_len: 2 * MAX_STRING_LEN,
    unauthenticated: false,
};

/// Follows the configuration's idea of this node's role until shutdown.
pub async fn run(node: Parts, stop: CancellationToken) {
    let cluster = &*node.cluster;
    let mut changed = cluster.subscribe();
    let mut kills = node.replication.upstream_kills();
    kills.borrow_and_update();
    let mut shell = Shell {
        node: &node,
        cluster,
        link: Link::new(node.node_timeout),
        wire: Wire::Closed,
    };
    shell.handle(adopted(cluster)).await;
    // Yielded once since the timer last fired.
    let mut yielded = false;
    loop {
        let wake = shell.link.next_tick();
        // Only polled when `wake` is set.
        let at = wake.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        // Bytes waiting on the socket must be heard before a timer can call
        // the primary silent: hence the order of the branches, and the
        // yield before a tick. After this process was stopped or starved,
        // the timer can fire before the runtime knows that the socket holds
        // what arrived meanwhile; `yield_now` resumes only after the
        // runtime has polled for I/O, and the select then sees both.
        let io = tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            changed = changed.changed() => {
                if changed.is_err() {
                    return;
                }
                Io::Event(adopted(cluster))
            }
            Ok(()) = kills.changed() => Io::Event(Event::Killed),
            io = shell.wire.next() => io,
            _ = tokio::time::sleep_until(at.into()), if wake.is_some() => {
                if !yielded {
                    yielded = true;
                    tokio::task::yield_now().await;
                    continue;
                }
                Io::Event(Event::Tick)
            }
        };
        yielded = false;
        shell.on(io).await;
    }
}

/// The adopted configuration, as the link sees it.
fn adopted(cluster: &ClusterState) -> Event {
    let view = cluster.view();
    Event::ConfigAdopted {
        primary: view.my_primary().cloned(),
        member: view.me.is_some(),
    }
}

type Pending<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The connection to the primary, in whatever stage the link is.
enum Wire {
    Closed,
    /// Connecting to the bus (hello, AUTH).
    Connecting(Pending<anyhow::Result<BusClient>>),
    /// Connected; `KC.PSYNC` not sent yet.
    Connected(BusClient),
    /// `KC.PSYNC` sent; the future answers it.
    Handshaking(Pending<(BusClient, anyhow::Result<Frame>)>),
    /// The copy or the stream flows in; acknowledgements flow out.
    Open(Stream),
}

struct Stream {
    /// Read in [`Wire::next`], written (acknowledgements) between reads.
    socket: ClientStream,
    /// Read and not yet applied.
    input: BytesMut,
    parser: RequestParser,
    /// Loading a full copy, until `KC.SYNCED` (else applying the stream).
    copying: bool,
    /// Keys the full copy has loaded so far.
    keys: u64,
}

/// What woke the shell.
enum Io {
    Event(Event),
    Connected(anyhow::Result<BusClient>),
    Answered(BusClient, anyhow::Result<Frame>),
    /// A read finished; `room` is what the buffer had space for.
    Read(std::io::Result<usize>, usize),
}

impl Wire {
    /// Completes when the connection has something to say; never while
    /// closed. Cancel-safe: the pending futures stay in `self`, and a read
    /// that does not complete takes nothing.
    async fn next(&mut self) -> Io {
        match self {
            Wire::Closed | Wire::Connected(_) => std::future::pending().await,
            Wire::Connecting(connect) => Io::Connected(connect.await),
            Wire::Handshaking(call) => {
                let (client, answer) = call.await;
                Io::Answered(client, answer)
            }
            Wire::Open(stream) => {
                stream.input.reserve(READ_CHUNK);
                let room = stream.input.capacity() - stream.input.len();
                Io::Read(stream.socket.read_buf(&mut stream.input).await, room)
            }
        }
    }
}

/// The link machine and the I/O around it.
struct Shell<'a> {
    node: &'a Parts,
    cluster: &'a ClusterState,
    link: Link,
    wire: Wire,
}

impl Shell<'_> {
    /// Turns what happened on the connection into events.
    async fn on(&mut self, io: Io) {
        match io {
            Io::Event(event) => self.handle(event).await,
            Io::Connected(Ok(client)) => {
                self.wire = Wire::Connected(client);
                let history = self.node.replication.log.position();
                self.handle(Event::Connected { history }).await;
            }
            Io::Connected(Err(err)) => {
                self.wire = Wire::Closed;
                self.handle(Event::ConnectFailed(err.to_string())).await;
            }
            Io::Answered(client, answer) => {
                match answer.and_then(|frame| parse_psync_answer(&frame)) {
                    Ok(answer) => {
                        let primary = self.primary_addr();
                        match &answer {
                            Answer::Continue { offset, .. } => {
                                info!(%primary, offset, "continuing from our offset");
                            }
                            Answer::FullSync { offset, .. } => {
                                info!(%primary, offset, "receiving a full copy");
                            }
                        }
                        let (socket, input) = client.into_parts();
                        self.wire = Wire::Open(Stream {
                            socket,
                            input,
                            parser: RequestParser::new(STREAM_LIMITS),
                            copying: false,
                            keys: 0,
                        });
                        self.handle(Event::PsyncAnswered(answer)).await;
                        // What came with the answer.
                        self.take_input(true, false).await;
                    }
                    Err(err) => {
                        self.wire = Wire::Closed;
                        self.handle(Event::LinkBroken(err.to_string())).await;
                    }
                }
            }
            Io::Read(read, room) => {
                let copying = matches!(&self.wire, Wire::Open(s) if s.copying);
                match read {
                    Ok(0) if copying => {
                        let err = "primary closed the link during the full copy";
                        self.handle(Event::LinkBroken(err.into())).await;
                    }
                    Ok(0) => {
                        let err = "primary closed the link";
                        self.handle(Event::LinkBroken(err.into())).await;
                    }
                    Ok(read) => self.take_input(read < room, true).await,
                    Err(err) => self.handle(Event::LinkBroken(err.to_string())).await,
                }
            }
        }
    }

    /// Loads or applies what the input holds. `emptied`: the read that
    /// brought it took everything the socket held; `unheard`: no event has
    /// told the link of that read yet.
    async fn take_input(&mut self, emptied: bool, mut unheard: bool) {
        loop {
            let Wire::Open(stream) = &mut self.wire else {
                return;
            };
            if stream.copying {
                let loaded = match load_copy(&self.node.store, stream) {
                    Ok(true) => {
                        info!(keys = stream.keys, "full copy loaded");
                        true
                    }
                    Ok(false) => false,
                    Err(err) => {
                        self.handle(Event::LinkBroken(err.to_string())).await;
                        return;
                    }
                };
                unheard = false;
                if !loaded {
                    self.handle(Event::Loading).await;
                    return;
                }
                // The rest of the input is stream.
                self.handle(Event::CopyLoaded).await;
                continue;
            }
            let log = &self.node.replication.log;
            let event =
                match records::apply_stream(&self.node.store, &mut stream.parser, &stream.input, 0)
                {
                    Ok(used) => {
                        log.append_raw(&stream.input[..used]);
                        stream.input.advance(used);
                        (used > 0 || unheard).then(|| Event::Received {
                            offset: log.offset(),
                            emptied,
                        })
                    }
                    Err(err) => Some(Event::LinkBroken(err.to_string())),
                };
            if let Some(event) = event {
                self.handle(event).await;
            }
            return;
        }
    }

    /// Steps the machine with `event`, and with whatever carrying out its
    /// effects gives rise to.
    async fn handle(&mut self, event: Event) {
        let mut events = VecDeque::from([event]);
        while let Some(event) = events.pop_front() {
            for effect in self.link.step(event, Instant::now()) {
                if let Some(next) = self.carry_out(effect).await {
                    events.push_back(next);
                }
            }
        }
    }

    /// Does what the machine decided. The node's role changes here and
    /// nowhere else.
    async fn carry_out(&mut self, effect: Effect) -> Option<Event> {
        let replication = &self.node.replication;
        let log = &replication.log;
        match effect {
            Effect::Connect { bus_addr } => {
                let cluster = self.node.cluster.clone();
                self.wire = Wire::Connecting(Box::pin(async move {
                    BusClient::connect(&bus_addr, &cluster).await
                }));
            }
            Effect::SendPsync { replid, offset } => {
                let Wire::Connected(mut client) = std::mem::replace(&mut self.wire, Wire::Closed)
                else {
                    return None;
                };
                let me = &self.cluster.me;
                let (id, addr) = (me.id.clone(), me.client_addr.clone());
                let offset = offset.map_or_else(|| "-1".to_string(), |o| o.to_string());
                self.wire = Wire::Handshaking(Box::pin(async move {
                    let args = [
                        b"KC.PSYNC".as_slice(),
                        id.as_bytes(),
                        replid.as_bytes(),
                        offset.as_bytes(),
                        addr.as_bytes(),
                    ];
                    let answer = client.call(&args).await;
                    (client, answer)
                }));
            }
            Effect::BeginCopy => {
                // Until the copy is complete we hold no history anyone can
                // continue.
                log.reset(NO_ID, 0);
                self.node.store.flush_all();
                self.set_copying(true);
            }
            Effect::AdoptHistory { replid, offset } => {
                log.reset(&replid, offset);
                self.set_copying(false);
            }
            Effect::ContinueHistory { replid } => {
                log.follow(&replid);
                self.set_copying(false);
            }
            Effect::SendAck(offset) => {
                if let Wire::Open(stream) = &mut self.wire
                    && let Err(err) = send_ack(&mut stream.socket, offset).await
                {
                    return Some(Event::LinkBroken(err.to_string()));
                }
            }
            Effect::DropLink(reason) => {
                self.wire = Wire::Closed;
                if reason != Reason::Reconfigured {
                    let primary = self.primary_addr();
                    warn!(%primary, err = %reason, "replication link down");
                }
            }
            Effect::Promote => {
                let position = log.promote();
                self.node.store.set_role(Role::Primary);
                info!(replid = %position.replid, offset = position.offset, "promoted to primary");
            }
            Effect::BecomePrimary => self.node.store.set_role(Role::Primary),
            Effect::BecomeReplica => {
                log.stop_recording();
                self.node.store.set_role(Role::Replica);
                // A primary demoted during a manual failover: its pause is
                // over (writes get MOVED now).
                replication.gate.resume();
            }
            Effect::Report(status) => replication.set_upstream(|up| *up = status),
        }
        None
    }

    /// The client address of the primary we follow, for logs.
    fn primary_addr(&self) -> String {
        self.link
            .following()
            .map_or_else(String::new, |p| p.client_addr.clone())
    }

    fn set_copying(&mut self, copying: bool) {
        if let Wire::Open(stream) = &mut self.wire {
            stream.copying = copying;
            stream.keys = 0;
        }
    }
}

/// `[FULLSYNC|CONTINUE, replid, offset]`.
fn parse_psync_answer(answer: &Frame) -> anyhow::Result<Answer> {
    let Frame::Array(items) = answer else {
        anyhow::bail!("unexpected KC.PSYNC answer {answer:?}");
    };
    let text = |i: usize| -> anyhow::Result<String> {
        let bytes = items
            .get(i)
            .and_then(Frame::as_bytes)
            .ok_or_else(|| anyhow::anyhow!("short KC.PSYNC answer"))?;
        Ok(String::from_utf8_lossy(bytes).into_owned())
    };
    let kind = text(0)?;
    anyhow::ensure!(
        kind == "FULLSYNC" || kind == "CONTINUE",
        "unexpected KC.PSYNC answer {kind}"
    );
    let (replid, offset) = (text(1)?, text(2)?.parse()?);
    Ok(match kind.as_str() {
        "FULLSYNC" => Answer::FullSync { replid, offset },
        _ => Answer::Continue { replid, offset },
    })
}

/// Loads the full-copy records in the input; true once `KC.SYNCED` has
/// been read (what follows it is stream).
fn load_copy(store: &Store, stream: &mut Stream) -> anyhow::Result<bool> {
    while let Some((args, used)) = stream.parser.parse(Protocol::Native, &stream.input)? {
        if args.get(0) == Some(b"KC.SYNCED".as_slice()) {
            stream.input.advance(used);
            return Ok(true);
        }
        records::apply(store, args, 0)?;
        stream.keys += 1;
        stream.input.advance(used);
    }
    Ok(false)
}

async fn send_ack(socket: &mut ClientStream, offset: u64) -> anyhow::Result<()> {
    let mut out = BytesMut::new();
    Protocol::Native.encode_request(
        &[b"KC.ACK".as_slice(), offset.to_string().as_bytes()],
        &mut out,
    );
    socket.write_all(&out).await?;
    socket.flush().await?; // over TLS the ack may otherwise wait in the session
    Ok(())
}
