//! One client connection: read requests, run them, write the replies.
//!
//! The loop is the node's hot path. Each turn it reads whatever the socket has
//! into one buffer, runs *every* complete request in it (so a pipelining
//! client gets its whole batch served from one read), encodes all replies into
//! one output buffer, and writes that buffer with one call. Requests are never
//! copied out of the read buffer: the parser hands commands borrowed argument
//! slices, and only what goes into the store is copied.
//!
//! The first byte a client sends picks the protocol for the connection's whole
//! life: 0xCA opens a native hello, anything else is RESP2.
//!
//! A protocol violation is answered with an error reply and the connection is
//! closed, because the stream can no longer be framed; other clients are not
//! affected.
//!
//! The loop is generic over its [`Stream`]: a TCP socket or TLS over one.
//! Each kind gets its own compiled copy, so the plain path pays nothing for
//! TLS existing (no dynamic dispatch, no branch per read).

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Buf, BytesMut};
use keycafe_core::{Frame, Protocol, Reply, RequestParser, native};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::cmd::{self, ConnState, Ctx, Outcome, Takeover, Task};
use crate::state::Shared;

/// A bus connection must have authenticated within this.
const BUS_AUTH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// Read in chunks of at least this size.
const READ_CHUNK: usize = 16 * 1024;
/// Write out replies mid-batch once this much is pending, so that a pipeline
/// of large GETs does not build one huge buffer.
const FLUSH_AT: usize = 1024 * 1024;

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
}

impl<S: Stream> Connection<S> {
    pub fn new(stream: S, shared: Arc<Shared>) -> Connection<S> {
        let state = ConnState {
            id: shared.next_client_id(),
            authenticated: shared.config.requirepass.is_none(),
            ..ConnState::default()
        };
        Connection {
            stream,
            parser: RequestParser::new(shared.config.limits()),
            shared,
            input: BytesMut::with_capacity(READ_CHUNK),
            output: BytesMut::with_capacity(READ_CHUNK),
            state,
        }
    }

    /// A connection on the cluster bus port: only bus commands, and only
    /// once the peer has proved it holds the cluster secret (`KC.HELLO`,
    /// `KC.AUTH`).
    pub fn for_bus(stream: S, shared: Arc<Shared>) -> Connection<S> {
        let mut connection = Connection::new(stream, shared);
        connection.state.bus = true;
        connection.state.authenticated = false;
        connection
    }

    /// Serves the client until it disconnects, sends QUIT, breaks the
    /// protocol, or the node shuts down. A command that takes the
    /// connection over ([`Outcome::Takeover`]) gets the socket and runs
    /// here until it ends.
    pub async fn run(mut self, shutdown: CancellationToken) -> io::Result<()> {
        let ended = tokio::select! {
            ended = self.serve() => ended,
            _ = shutdown.cancelled() => return Ok(()),
        };
        match ended? {
            Ended::Closed => Ok(()),
            Ended::TakenOver(takeover) => {
                takeover(Box::new(self.stream), self.input, shutdown).await
            }
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
        if !self.state.bus && self.over_client_limit() {
            self.write_error("ERR max number of clients reached")
                .await?;
            return Ok(Ended::Closed);
        }
        loop {
            let more = self.run_pending_requests();
            self.add_command_stats();
            if !self.lease_still_holds() {
                debug!(
                    client = self.state.id,
                    "lease ran out before the replies were sent; closing"
                );
                return Ok(Ended::Closed);
            }
            if !self.output.is_empty() {
                self.stream.write_all(&self.output).await?;
                // TLS may hold the tail of a write back when the socket is
                // full; TCP's flush costs nothing.
                self.stream.flush().await?;
                self.output.clear();
            }
            match more {
                Batch::Blocked(answer) => {
                    if !self.finish_blocked(answer).await {
                        return Ok(Ended::Closed);
                    }
                }
                Batch::TakenOver(takeover) => return Ok(Ended::TakenOver(takeover)),
                Batch::Done if self.state.quit => return Ok(Ended::Closed),
                Batch::Done => {
                    if !self.read_more().await? {
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
        let protocol = self.state.protocol;
        let mut used = 0;
        let outcome = loop {
            if self.state.quit {
                break Batch::Done;
            }
            if self.output.len() >= FLUSH_AT {
                break Batch::OutputFull;
            }
            let (args, len) = match self.parser.parse(protocol, &self.input[used..]) {
                Ok(Some(request)) => request,
                Ok(None) => break Batch::Done,
                Err(err) => break Batch::ProtocolError(err.reply_text()),
            };
            used += len;
            if args.is_empty() {
                continue;
            }
            let mut ctx = Ctx {
                shared: &self.shared,
                conn: &mut self.state,
            };
            let mut reply = Reply::start(protocol, &mut self.output);
            let outcome = cmd::execute(&mut ctx, args, &mut reply);
            reply.finish();
            self.state.commands += 1;
            match outcome {
                Outcome::Done => {}
                Outcome::Block(answer) => break Batch::Blocked(answer),
                Outcome::Takeover(takeover) => break Batch::TakenOver(takeover),
            }
        };
        self.input.advance(used);
        outcome
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

    /// Waits for a blocked command's answer and writes it. Returns false if
    /// the client left meanwhile.
    async fn finish_blocked(&mut self, answer: Task<Frame>) -> bool {
        let Some(answer) = self.unless_client_leaves(answer).await else {
            return false;
        };
        self.state.protocol.encode_frame(&answer, &mut self.output);
        true
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

    /// Reads more bytes from the client. Returns false on a clean close.
    async fn read_more(&mut self) -> io::Result<bool> {
        if self.input.capacity() - self.input.len() < READ_CHUNK / 4 {
            self.input.reserve(READ_CHUNK);
        }
        let read = self.stream.read_buf(&mut self.input);
        if self.state.bus && !self.state.authenticated {
            // A bus peer proves itself at once or is dropped, so strangers
            // cannot sit on the bus's connection slots.
            return match tokio::time::timeout(BUS_AUTH_TIMEOUT, read).await {
                Ok(read) => Ok(read? > 0),
                Err(_) => Ok(false),
            };
        }
        Ok(read.await? > 0)
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

    fn over_client_limit(&self) -> bool {
        let limit = self.shared.config.maxclients;
        if self.shared.stats.connected_clients.load(Ordering::Relaxed) > limit {
            self.shared
                .stats
                .rejected_connections
                .fetch_add(1, Ordering::Relaxed);
            return true;
        }
        false
    }

    fn add_command_stats(&mut self) {
        if self.state.commands > 0 {
            let stats = &self.shared.stats;
            stats
                .commands_processed
                .fetch_add(self.state.commands, Ordering::Relaxed);
            self.state.commands = 0;
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
    /// requests.
    Blocked(Task<Frame>),
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
