//! One client connection: read requests, run them, write the replies.
//!
//! The loop is the node's hot path. Each turn it reads whatever the socket has
//! into one buffer, runs *every* complete request in it (so a pipelining
//! client gets its whole batch served from one read), encodes all replies into
//! one output buffer, and writes that buffer with one call. Requests are never
//! copied out of the read buffer: the parser hands commands borrowed argument
//! slices, and only what goes into the store is copied.
//!
//! The first byte a client sends picks the protocol: 0xCA opens a native
//! hello, for the connection's whole life; anything else is RESP, starting
//! in RESP2, which `HELLO 3` and `HELLO 2` switch between RESP2 and RESP3.
//! The switch takes effect from HELLO's own reply on: replies already
//! written in the same batch stay in the protocol they were written in.
//!
//! A protocol violation is answered with an error reply and the connection is
//! closed, because the stream can no longer be framed; other clients are not
//! affected.
//!
//! The loop is generic over its [`Stream`]: a TCP socket or TLS over one.
//! Each kind gets its own compiled copy, so the plain path pays nothing for
//! TLS existing (no dynamic dispatch, no branch per read).
//!
//! Each connection is listed in the node's registry ([`crate::clients`])
//! for as long as it runs, and publishes what CLIENT LIST shows of it at
//! the end of each batch. `CLIENT KILL` cancels the connection's own
//! token, a child of the node's shutdown token, so a killed connection
//! stops exactly as it would at shutdown. Per request the loop pays one
//! load for `CLIENT PAUSE` existing (and [`cmd::client::after_call`] one
//! for MONITOR) and one comparison for `CLIENT REPLY`.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use keycafe_core::{Frame, Limits, Protocol, Reply, RequestParser, native};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::clients::{Kind, Monitor, Peer};
use crate::cmd::client::{Before, Buffers, ReplyMode};
use crate::cmd::{self, ConnState, Ctx, Outcome, Takeover, Task};
use crate::state::Shared;

/// A bus connection must have authenticated within this.
const BUS_AUTH_TIMEOUT: Duration = Duration::from_secs(5);
/// Read in chunks of at least this size.
const READ_CHUNK: usize = 16 * 1024;
/// A wait for the append-only file this long is logged: the disk (or
/// whatever else writes to it) is slow, and so are this client's replies.
const SLOW_DISK: Duration = Duration::from_secs(1);
/// Write out replies mid-batch once this much is pending, so that a pipeline
/// of large GETs does not build one huge buffer.
const FLUSH_AT: usize = 1024 * 1024;
/// An empty input buffer larger than this (after a big request) is given
/// back rather than kept for the connection's life.
const SHRINK_INPUT_ABOVE: usize = 16 * READ_CHUNK;
/// The same for the output buffer (after a big reply); above the size a
/// pipeline of ordinary replies reaches, so that it is not reallocated
/// every batch.
const SHRINK_OUTPUT_ABOVE: usize = 2 * FLUSH_AT;

/// A connection's byte stream: a TCP socket, or TLS over one.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

/// A client connection: the socket, its buffers, its parser and its state.
pub struct Connection<S = TcpStream> {
    stream: S,
    shared: Arc<Shared>,
    input: BytesMut,
    output: BytesMut,
    parser: RequestParser,
    state: ConnState,
    /// When the request at the front of `input`, not yet whole, began to
    /// arrive (see `request_timeout_ms`).
    partial_since: Option<Instant>,
    /// The buffer capacity counted in the node's memory gauge for this
    /// connection (see [`Connection::account_buffers`]).
    accounted: usize,
    /// Where the client connected from, until the connection registers.
    peer: Peer,
}

/// The parser's limits for a connection: Redis's small ones until it has
/// authenticated (a stranger without the password cannot make the node
/// wait for, or reserve room for, big requests), the configured ones after.
fn limits_for(shared: &Shared, authenticated: bool) -> Limits {
    match authenticated {
        true => shared.config.limits(),
        false => shared.config.limits().unauthenticated(),
    }
}

impl<S: Stream> Connection<S> {
    /// A client connection from `peer`.
    pub fn new(stream: S, shared: Arc<Shared>, peer: Peer) -> Connection<S> {
        let state = ConnState {
            id: shared.next_client_id(),
            authenticated: shared.config.requirepass.is_none(),
            ..ConnState::default()
        };
        Connection {
            stream,
            parser: RequestParser::new(limits_for(&shared, state.authenticated)),
            shared,
            input: BytesMut::with_capacity(READ_CHUNK),
            output: BytesMut::with_capacity(READ_CHUNK),
            state,
            partial_since: None,
            accounted: 0,
            peer,
        }
    }

    /// The client's address, as SLOWLOG (and CLIENT LIST) show it.
    pub fn with_addr(mut self, addr: std::net::SocketAddr) -> Connection<S> {
        self.state.addr = Some(addr);
        self
    }

    /// A connection on the cluster bus port: only bus commands, and only
    /// once the peer has proved it holds the cluster secret (`KC.HELLO`,
    /// `KC.AUTH`).
    pub fn for_bus(stream: S, shared: Arc<Shared>, peer: Peer) -> Connection<S> {
        let mut connection = Connection::new(stream, shared, peer);
        connection.state.bus = true;
        connection.state.authenticated = false;
        connection
    }

    /// Serves the client until it disconnects, sends QUIT, breaks the
    /// protocol, or the node shuts down. A command that takes the
    /// connection over ([`Outcome::Takeover`]) gets the socket and runs
    /// here until it ends.
    pub async fn run(mut self, shutdown: CancellationToken) -> io::Result<()> {
        // Its own token, which CLIENT KILL cancels; shutdown cancels it too.
        let stop = shutdown.child_token();
        let kind = match self.state.bus {
            true => Kind::Bus,
            false => Kind::Normal,
        };
        let peer = std::mem::take(&mut self.peer);
        let clients = self.shared.clients.clone();
        // Listed until this function returns, a takeover's run included.
        let _registration = clients.register(self.state.id, peer, kind, stop.clone());
        self.state.client.record = Some(_registration.record().clone());
        self.publish(false);
        let ended = tokio::select! {
            ended = self.serve() => ended,
            _ = stop.cancelled() => Ok(Ended::Closed),
        };
        // The buffers are freed (or handed on) from here: stop counting them.
        self.shared
            .store
            .memory()
            .sub_client_buffers(self.accounted);
        self.accounted = 0;
        match ended? {
            Ended::Closed => Ok(()),
            Ended::TakenOver(takeover) => takeover(Box::new(self.stream), self.input, stop).await,
        }
    }

    async fn serve(&mut self) -> io::Result<Ended> {
        if !self.read_more().await? {
            return Ok(Ended::Closed);
        }
        self.state.protocol = Protocol::detect(self.input[0]);
        if self.state.protocol == Protocol::Native && !self.native_hello().await? {
            return Ok(Ended::Closed);
        }
        loop {
            let more = self.run_pending_requests();
            self.add_command_stats();
            self.publish(matches!(more, Batch::Blocked(..) | Batch::Paused(_)));
            if !self.wait_for_the_disk().await {
                return Ok(Ended::Closed);
            }
            if !self.lease_still_holds() {
                debug!(
                    client = self.state.id,
                    "lease ran out before the replies were sent; closing"
                );
                return Ok(Ended::Closed);
            }
            if !self.output.is_empty() {
                let requests_waiting = matches!(more, Batch::OutputFull) && !self.input.is_empty();
                if !self.write_output(requests_waiting).await? {
                    debug!(
                        client = self.state.id,
                        "replies left untaken beyond the output buffer limit or timeout; closing"
                    );
                    return Ok(Ended::Closed);
                }
                self.output.clear();
                if self.output.capacity() > SHRINK_OUTPUT_ABOVE {
                    self.output = BytesMut::with_capacity(READ_CHUNK);
                }
            }
            if !self.account_buffers() {
                debug!(
                    client = self.state.id,
                    "client buffers over maxmemory-clients; closing"
                );
                return Ok(Ended::Closed);
            }
            match more {
                Batch::Blocked(answer, dropped) => {
                    let _blocked = self.shared.clients.block();
                    if !self.finish_blocked(answer, dropped).await {
                        return Ok(Ended::Closed);
                    }
                }
                Batch::Paused(wait) => {
                    let _blocked = self.shared.clients.block();
                    if self.unless_client_leaves(wait).await.is_none() {
                        return Ok(Ended::Closed);
                    }
                }
                Batch::TakenOver(takeover) => return Ok(Ended::TakenOver(takeover)),
                Batch::Done if self.state.quit => return Ok(Ended::Closed),
                Batch::Done => {
                    self.note_partial_request();
                    let more = match self.state.client.monitor.clone() {
                        None => self.read_more().await?,
                        Some(monitor) => self.read_or_monitor(&monitor).await?,
                    };
                    if !more {
                        return Ok(Ended::Closed);
                    }
                }
                Batch::OutputFull => {}
                Batch::ProtocolError(text) => {
                    debug!(client = self.state.id, %text, "closing after protocol error");
                    self.write_error(&text).await?;
                    return Ok(Ended::Closed);
                }
            }
        }
    }

    /// Runs every complete request in the input buffer, appending replies to
    /// the output buffer.
    fn run_pending_requests(&mut self) -> Batch {
        let mut used = 0;
        let outcome = loop {
            if self.state.quit {
                break Batch::Done;
            }
            if self.output.len() >= FLUSH_AT {
                break Batch::OutputFull;
            }
            // Read per request, not per batch: a HELLO in the batch changes
            // the protocol of its own reply and of every one after it.
            let protocol = self.state.protocol;
            let (args, len) = match self.parser.parse(protocol, &self.input[used..]) {
                Ok(Some(request)) => request,
                Ok(None) => break Batch::Done,
                Err(err) => break Batch::ProtocolError(err.reply_text()),
            };
            if args.is_empty() {
                used += len;
                continue;
            }
            let mut ctx = Ctx {
                shared: &self.shared,
                conn: &mut self.state,
            };
            // Only for a monitor, or while a CLIENT PAUSE may hold it.
            if ctx.conn.client.monitor.is_some() || ctx.shared.clients.pause_active() {
                let mut reply = Reply::start(protocol, &mut self.output);
                let before = cmd::client::before_command(&mut ctx, args, &mut reply);
                reply.finish();
                match before {
                    Before::Run => {}
                    Before::Answered => {
                        used += len;
                        self.state.commands += 1;
                        continue;
                    }
                    // Left unread: it runs once the pause lets it.
                    Before::Wait(wait) => break Batch::Paused(wait),
                }
            }
            used += len;
            let mark = self.output.len();
            let mut reply = Reply::start(protocol, &mut self.output);
            let outcome = cmd::execute(&mut ctx, args, &mut reply);
            reply.finish();
            self.state.commands += 1;
            // CLIENT REPLY OFF or SKIP: the reply is not sent.
            let dropped =
                self.state.client.reply != ReplyMode::On && self.state.client.reply_dropped();
            if dropped {
                self.output.truncate(mark);
            }
            if self.state.authenticated == self.parser.limits().unauthenticated {
                let limits = limits_for(&self.shared, self.state.authenticated);
                self.parser.set_limits(limits);
            }
            match outcome {
                Outcome::Done => {}
                Outcome::Block(answer) => break Batch::Blocked(answer, dropped),
                Outcome::Takeover(takeover) => break Batch::TakenOver(takeover),
            }
        };
        self.input.advance(used);
        outcome
    }

    /// Under `appendfsync always`, waits until every change made before
    /// these replies is on disk (see `persist::aof`); one load otherwise.
    /// False if the client left meanwhile.
    async fn wait_for_the_disk(&mut self) -> bool {
        let aof = self.shared.persistence.as_ref().and_then(|p| p.aof());
        let Some((offset, durable)) =
            aof.and_then(|aof| aof.durable_at().map(|at| (at, aof.wait_durable(at))))
        else {
            return true;
        };
        let started = std::time::Instant::now();
        let stayed = self.unless_client_leaves(durable).await.is_some();
        let waited = started.elapsed();
        if waited >= SLOW_DISK {
            warn!(
                client = self.state.id,
                ms = waited.as_millis() as u64,
                offset,
                "replies waited long for the append-only file"
            );
        }
        stayed
    }

    /// False if replies in the output buffer were served under this
    /// primary's lease and it has run out since: sending them could
    /// acknowledge a write after a replacement took over, so the connection
    /// is closed instead (the client sees an unknown outcome, as if the
    /// node had died). See `cluster::lease`.
    fn lease_still_holds(&mut self) -> bool {
        if !std::mem::take(&mut self.state.under_lease) {
            return true;
        }
        let Some(cluster) = self.shared.cluster.as_ref() else {
            return true;
        };
        cluster.lease.holds(crate::cluster::lease::now_ms())
    }

    /// Waits for a blocked command's answer and writes it (unless CLIENT
    /// REPLY `dropped` it). Returns false if the client left meanwhile.
    async fn finish_blocked(&mut self, answer: Task<Frame>, dropped: bool) -> bool {
        let Some(answer) = self.unless_client_leaves(answer).await else {
            return false;
        };
        if !dropped {
            self.state.protocol.encode_frame(&answer, &mut self.output);
        }
        true
    }

    /// For a monitor: reads more requests, or takes the lines waiting for
    /// it into the output buffer, whichever comes first.
    async fn read_or_monitor(&mut self, monitor: &Monitor) -> io::Result<bool> {
        let read = tokio::select! {
            read = self.read_more() => Some(read),
            _ = monitor.ready() => None,
        };
        match read {
            Some(read) => read,
            None => {
                monitor.take(&mut self.output);
                Ok(true)
            }
        }
    }

    /// Publishes what CLIENT LIST shows of this connection (see
    /// [`crate::clients`]): a few stores, no lock.
    fn publish(&mut self, blocked: bool) {
        let buffers = Buffers {
            input_len: self.input.len(),
            input_capacity: self.input.capacity(),
            output_len: self.output.len(),
            output_capacity: self.output.capacity(),
        };
        let now = self.shared.clients.now_ms();
        cmd::client::publish(&mut self.state, buffers, now, blocked);
    }

    /// Runs `work` (a blocked command), watching the socket meanwhile:
    /// `None` if the client disconnects first, so that a `WAIT 0` from a
    /// client that went away does not wait forever. Requests that arrive
    /// meanwhile are kept for later (up to [`FLUSH_AT`] bytes; beyond that
    /// the socket is left alone until `work` is done).
    async fn unless_client_leaves<T>(&mut self, work: impl Future<Output = T>) -> Option<T> {
        tokio::pin!(work);
        loop {
            if self.input.len() >= FLUSH_AT {
                return Some(work.await);
            }
            tokio::select! {
                done = &mut work => return Some(done),
                read = self.stream.read_buf(&mut self.input) => {
                    if matches!(read, Ok(0) | Err(_)) {
                        return None;
                    }
                }
            }
        }
    }

    /// Writes the output buffer out. False if the client is to be closed:
    /// it left more of its replies untaken than its output buffer limit
    /// allows (`client_output_buffer_limit`, normal class), or took nothing
    /// for `timeout` seconds.
    ///
    /// `requests_waiting`: requests of the client's own wait to run behind
    /// these replies. Redis would have run them and buffered their replies
    /// too, so such a client counts as over the soft limit however little
    /// of this batch is left; without that, a client that pipelines and
    /// never reads could stall with a remainder under the soft limit and
    /// hold its connection for ever.
    async fn write_output(&mut self, requests_waiting: bool) -> io::Result<bool> {
        let limit = self.shared.runtime.normal_output_limit();
        // As in Redis, a monitor is not expected to interact.
        let idle = match self.state.client.monitor {
            None => self.shared.runtime.idle_timeout(),
            Some(_) => None,
        };
        if (limit.is_off() && idle.is_none()) || self.state.bus {
            self.stream.write_all(&self.output).await?;
            // TLS may hold the tail of a write back when the socket is
            // full; TCP's flush costs nothing.
            self.stream.flush().await?;
            return Ok(true);
        }
        let mut sent = 0;
        let mut over_soft_since: Option<Instant> = None;
        while sent < self.output.len() {
            let unsent = &self.output[sent..];
            let stream = &mut self.stream;
            // What the socket takes right now, without waiting.
            let now =
                std::future::poll_fn(|cx| match Pin::new(&mut *stream).poll_write(cx, unsent) {
                    Poll::Ready(written) => Poll::Ready(Some(written)),
                    Poll::Pending => Poll::Ready(None),
                })
                .await;
            let written = match now {
                Some(written) => written?,
                None => {
                    // The client is not taking its replies: are they over
                    // its limit?
                    let mut pending = unsent.len();
                    if requests_waiting {
                        pending = pending.max(limit.soft.saturating_add(1));
                    }
                    let over_for = over_soft_since.map(|since| since.elapsed());
                    let left = match limit.check(pending, over_for) {
                        Ok(left) => left,
                        Err(_) => return Ok(false),
                    };
                    if left.is_some() {
                        over_soft_since.get_or_insert_with(Instant::now);
                    } else {
                        over_soft_since = None;
                    }
                    let write = self.stream.write(unsent);
                    let wait = match (left, idle) {
                        (Some(left), Some(idle)) => Some(left.min(idle)),
                        (left, idle) => left.or(idle),
                    };
                    match wait {
                        None => write.await?,
                        Some(wait) => match tokio::time::timeout(wait, write).await {
                            Ok(written) => written?,
                            Err(_) => return Ok(false),
                        },
                    }
                }
            };
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            sent += written;
        }
        self.stream.flush().await?;
        Ok(true)
    }

    /// Brings this connection's buffers up to date in the node's memory
    /// gauge (one comparison per batch; an atomic only when a buffer grew or
    /// shrank). False if it grew while all client buffers together are over
    /// `maxmemory-clients`: the connection that grows is the one closed.
    fn account_buffers(&mut self) -> bool {
        if self.state.bus {
            return true; // bus links are bounded by bus_maxclients instead
        }
        let now = self.input.capacity() + self.output.capacity();
        if now == self.accounted {
            return true;
        }
        let memory = self.shared.store.memory();
        if now > self.accounted {
            memory.add_client_buffers(now - self.accounted);
        } else {
            memory.sub_client_buffers(self.accounted - now);
        }
        let grew = now > self.accounted;
        self.accounted = now;
        let cap = self.shared.runtime.maxmemory_clients();
        // CLIENT NO-EVICT ON: this one is never the client closed.
        !(grew && cap > 0 && memory.client_buffers() > cap && !self.state.client.no_evict)
    }

    /// Keeps track of a request that has begun to arrive but is not whole,
    /// and gives back the input buffer of a big request once it is done.
    fn note_partial_request(&mut self) {
        if !self.input.is_empty() {
            self.partial_since.get_or_insert_with(Instant::now);
            return;
        }
        self.partial_since = None;
        if self.input.capacity() > SHRINK_INPUT_ABOVE {
            self.input = BytesMut::with_capacity(READ_CHUNK);
        }
    }

    /// Reads more bytes from the client. Returns false on a clean close, and
    /// when the client has used up the time it has (see [`Self::read_limit`]).
    async fn read_more(&mut self) -> io::Result<bool> {
        if self.input.capacity() - self.input.len() < READ_CHUNK / 4 {
            self.input.reserve(READ_CHUNK);
        }
        let limit = self.read_limit();
        let read = self.stream.read_buf(&mut self.input);
        let Some(limit) = limit else {
            return Ok(read.await? > 0);
        };
        match tokio::time::timeout(limit, read).await {
            Ok(read) => Ok(read? > 0),
            Err(_) => {
                debug!(client = self.state.id, "time is up; closing");
                Ok(false)
            }
        }
    }

    /// How long the next read may wait, if not for ever:
    ///
    /// - a bus peer proves itself at once or is dropped, so that strangers
    ///   cannot sit on the bus's connection slots;
    /// - a request that has begun must be whole within `request_timeout_ms`
    ///   of its first byte, so that trickling one byte at a time does not
    ///   hold a connection open;
    /// - between requests, a client may be idle for `timeout` seconds
    ///   (not a monitor: as in Redis, it is not expected to send anything).
    fn read_limit(&self) -> Option<Duration> {
        if self.state.bus {
            return (!self.state.authenticated).then_some(BUS_AUTH_TIMEOUT);
        }
        let runtime = &self.shared.runtime;
        match self.partial_since {
            Some(since) => Some(runtime.request_timeout()?.saturating_sub(since.elapsed())),
            None if self.state.client.monitor.is_some() => None,
            None => runtime.idle_timeout(),
        }
    }

    /// Completes the native hello. Returns false if the client went away or
    /// asked for a version this node does not speak.
    async fn native_hello(&mut self) -> io::Result<bool> {
        loop {
            match native::decode_hello(&self.input) {
                Ok(Some(native::VERSION)) => break,
                Ok(Some(version)) => {
                    let text = format!(
                        "ERR unsupported protocol version {version}; this node speaks {}",
                        native::VERSION
                    );
                    self.write_error(&text).await?;
                    return Ok(false);
                }
                Ok(None) => {
                    self.note_partial_request();
                    if !self.read_more().await? {
                        return Ok(false);
                    }
                }
                Err(err) => {
                    self.write_error(&err.reply_text()).await?;
                    return Ok(false);
                }
            }
        }
        self.input.advance(native::HELLO_LEN);
        native::encode_hello(native::VERSION, &mut self.output);
        Ok(true)
    }

    fn add_command_stats(&mut self) {
        if self.state.commands > 0 {
            let stats = &self.shared.stats;
            stats
                .commands_processed
                .fetch_add(self.state.commands, Ordering::Relaxed);
            self.state.commands = 0;
            self.state.stats.end_batch(&self.shared.command_stats);
        }
    }

    /// Writes pending replies and then one error.
    async fn write_error(&mut self, text: &str) -> io::Result<()> {
        self.state
            .protocol
            .encode_frame(&Frame::error(text.to_string()), &mut self.output);
        self.stream.write_all(&self.output).await?;
        self.output.clear();
        self.stream.shutdown().await
    }
}

/// How a batch of requests ended.
enum Batch {
    /// Every complete request was run; read more.
    Done,
    /// The output buffer is full: write it, then keep running requests.
    OutputFull,
    /// A command's answer takes time: wait for it, then keep running
    /// requests (and drop the answer if CLIENT REPLY says so).
    Blocked(Task<Frame>, bool),
    /// A CLIENT PAUSE holds the next request: wait for this, then run it.
    Paused(Task<()>),
    /// A command took the connection over.
    TakenOver(Takeover),
    /// The client broke the protocol: send this error and close.
    ProtocolError(String),
}

/// How serving requests ended.
enum Ended {
    /// The client left, quit or broke the protocol.
    Closed,
    /// A command took the connection over; it runs this next.
    TakenOver(Takeover),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// A connection over an in-memory pipe, and the client's end.
    fn connection() -> (Connection<tokio::io::DuplexStream>, tokio::io::DuplexStream) {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let shared = Arc::new(Shared::new(Config::default()).unwrap());
        let mut connection = Connection::new(server, shared, Peer::unknown());
        connection.state.protocol = Protocol::Resp2;
        (connection, client)
    }

    #[tokio::test]
    async fn the_input_buffer_of_a_big_request_is_given_back() {
        let (mut connection, mut client) = connection();
        let value = vec![b'v'; 4 * 1024 * 1024];
        let mut request = BytesMut::new();
        Protocol::Resp2.encode_request(&[b"SET".as_slice(), b"k", &value], &mut request);
        let send = tokio::spawn(async move {
            client.write_all(&request).await.unwrap();
            client
        });
        let mut ran = false;
        while !ran {
            assert!(connection.read_more().await.unwrap(), "the client stays");
            ran = matches!(connection.run_pending_requests(), Batch::Done)
                && connection.input.is_empty();
            connection.note_partial_request();
        }
        let _client = send.await.unwrap();
        assert!(connection.partial_since.is_none());
        assert!(
            connection.input.capacity() <= SHRINK_INPUT_ABOVE,
            "{} bytes kept after a 4 MiB request",
            connection.input.capacity()
        );
    }

    /// In one pipelined batch, replies before HELLO 3 stay RESP2; HELLO's
    /// own reply and the ones after it are RESP3, until HELLO 2.
    #[tokio::test]
    async fn hello_switches_the_protocol_mid_batch() {
        let (mut connection, mut client) = connection();
        let batch = b"GET k\r\nHELLO 3\r\nGET k\r\nHELLO 2\r\nGET k\r\n";
        client.write_all(batch).await.unwrap();
        while connection.input.len() < batch.len() {
            assert!(connection.read_more().await.unwrap());
        }
        assert!(matches!(connection.run_pending_requests(), Batch::Done));
        let output = String::from_utf8_lossy(&connection.output).into_owned();
        // `$-1` is RESP2's null and `_` RESP3's; HELLO 3 answers a map
        // (`%7`) saying proto 3, HELLO 2 an array (`*14`) saying 2.
        let hello3 = output.find("%7\r\n").expect("HELLO 3 answers a map");
        let hello2 = output.find("*14\r\n").expect("HELLO 2 answers an array");
        assert!(output.starts_with("$-1\r\n%7\r\n"), "{output:?}");
        let resp3 = &output[hello3..hello2];
        assert!(resp3.contains("proto\r\n:3\r\n"), "{output:?}");
        assert!(resp3.ends_with("*0\r\n_\r\n"), "{output:?}");
        let resp2 = &output[hello2..];
        assert!(resp2.contains("proto\r\n:2\r\n"), "{output:?}");
        assert!(resp2.ends_with("*0\r\n$-1\r\n"), "{output:?}");
        assert_eq!(connection.state.protocol, Protocol::Resp2);
    }

    #[tokio::test]
    async fn a_partial_request_starts_the_request_clock() {
        let (mut connection, mut client) = connection();
        client.write_all(b"*2\r\n$3\r\nGET\r\n").await.unwrap();
        assert!(connection.read_more().await.unwrap());
        assert!(matches!(connection.run_pending_requests(), Batch::Done));
        connection.note_partial_request();
        let since = connection.partial_since.expect("a request is arriving");
        let limit = connection.read_limit().expect("its time is limited");
        assert!(limit <= connection.shared.runtime.request_timeout().unwrap());
        client.write_all(b"$1\r\nk\r\n").await.unwrap();
        assert!(connection.read_more().await.unwrap());
        assert!(matches!(connection.run_pending_requests(), Batch::Done));
        connection.note_partial_request();
        assert!(
            connection.partial_since.is_none(),
            "whole: {since:?} cleared"
        );
        // Between requests the default is Redis's: no idle limit.
        assert_eq!(connection.read_limit(), None);
    }
}
