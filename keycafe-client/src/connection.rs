//! One multiplexed, pipelined connection to one node.
//!
//! Any number of tasks share a [`Connection`] (it is a cheap clone). A
//! request is encoded by the task that makes it and handed, with a oneshot
//! channel for its reply, to the connection's **writer task**. The writer
//! drains everything queued while it was busy and writes it with one
//! `write_all`, so a thousand concurrent callers cost a handful of system
//! calls rather than a thousand. Before writing, it appends each request's
//! reply slot to a FIFO queue; the **reader task** decodes replies and hands
//! each to the slot at the front. The node answers requests on a connection
//! in order, so FIFO matching is all the bookkeeping needed.
//!
//! A connection is either open or closed, never half-way: any I/O error, a
//! protocol violation or a reply timeout closes it for good and fails every
//! request still waiting with the same error. The node layer opens a new
//! one lazily for the next request ([`crate::node`]).
//!
//! Failures come in two kinds ([`SendError`]), and the distinction decides
//! what may be retried: a request that never reached the socket can be sent
//! again anywhere; one that was written may already have been applied.
//!
//! Every request has a response timeout, counted by its caller. One kind of
//! request is late on purpose: `WAIT` makes the node hold its reply until
//! replicas catch up ([`Hold`]). Such a request gets its hold on top of the
//! timeout, and while it is the oldest request awaiting a reply, the
//! requests queued behind it do not time out either: their replies cannot
//! come before its reply, so their lateness says nothing about the node.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use keycafe_core::tls::ClientStream;
use keycafe_core::{Frame, Limits, Protocol, ProtocolError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, TimeoutKind};

/// Requests waiting for the writer; callers wait for room beyond this.
const QUEUE_DEPTH: usize = 4096;
/// The writer stops gathering a batch at this many bytes.
const MAX_BATCH_BYTES: usize = 1 << 20;

/// Why a request got no reply.
#[derive(Debug)]
pub(crate) enum SendError {
    /// The request never left this process: safe to send again.
    NotSent(Error),
    /// The request was, or may have been, written: sending it again could
    /// apply it twice.
    Lost(Error),
}

impl SendError {
    pub(crate) fn into_error(self) -> Error {
        match self {
            SendError::NotSent(e) | SendError::Lost(e) => e,
        }
    }
}

/// What a caller gets back: its reply (or replies), or why there is none.
pub(crate) type Reply<T> = Result<T, SendError>;

/// What a caller waits for: the reply to one request ([`One`]), or the
/// replies to several sent back to back ([`Batch`]).
pub(crate) trait Expect {
    /// What the caller gets: a [`Frame`], or a `Vec<Frame>` in order.
    type Output;
    /// How many replies to wait for.
    fn count(&self) -> usize;
    /// The answer at once, with nothing sent, when no reply is expected.
    fn nothing(&self) -> Option<Self::Output>;
    /// Where the replies go.
    fn responder(tx: oneshot::Sender<Reply<Self::Output>>) -> Responder;
}

/// One request: its reply is a [`Frame`].
pub(crate) struct One;

/// This many requests sent back to back (nothing from other callers comes
/// between them): their replies are a `Vec<Frame>`, in order.
pub(crate) struct Batch(pub(crate) usize);

impl Expect for One {
    type Output = Frame;

    fn count(&self) -> usize {
        1
    }

    fn nothing(&self) -> Option<Frame> {
        None
    }

    fn responder(tx: oneshot::Sender<Reply<Frame>>) -> Responder {
        Responder::One(tx)
    }
}

impl Expect for Batch {
    type Output = Vec<Frame>;

    fn count(&self) -> usize {
        self.0
    }

    fn nothing(&self) -> Option<Vec<Frame>> {
        (self.0 == 0).then(Vec::new)
    }

    fn responder(tx: oneshot::Sender<Reply<Vec<Frame>>>) -> Responder {
        Responder::Many(tx)
    }
}

/// How long a node may hold a request's reply back on purpose, as `WAIT`
/// does until enough replicas have caught up or its own timeout passes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Hold {
    /// Not at all: the reply is due within the response timeout.
    #[default]
    None,
    /// Up to this long, on top of the response timeout.
    For(Duration),
    /// With no limit (`WAIT n 0`): no response timeout applies.
    Indefinitely,
}

impl Hold {
    /// The hold of two requests sent back to back: the sum of both.
    pub(crate) fn then(self, next: Hold) -> Hold {
        match (self, next) {
            (Hold::Indefinitely, _) | (_, Hold::Indefinitely) => Hold::Indefinitely,
            (Hold::None, other) | (other, Hold::None) => other,
            (Hold::For(a), Hold::For(b)) => Hold::For(a.saturating_add(b)),
        }
    }

    /// How long to wait for the reply; `None` for as long as it takes.
    fn patience(self, response_timeout: Duration) -> Option<Duration> {
        match self {
            Hold::None => Some(response_timeout),
            Hold::For(hold) => Some(response_timeout.saturating_add(hold)),
            Hold::Indefinitely => None,
        }
    }
}

/// How long a request may delay the replies queued behind it.
#[derive(Debug, Clone, Copy)]
enum Excuse {
    /// Not at all: an ordinary request that is late means a stuck node.
    None,
    /// Until its own caller gives up on it (a held request).
    Until(Instant),
    /// As long as it takes (a request held indefinitely).
    Forever,
}

impl Excuse {
    fn covers(self, now: Instant) -> bool {
        match self {
            Excuse::None => false,
            Excuse::Until(deadline) => now < deadline,
            Excuse::Forever => true,
        }
    }
}

/// Where the reply (or replies) to one submission go.
pub(crate) enum Responder {
    One(oneshot::Sender<Reply<Frame>>),
    Many(oneshot::Sender<Reply<Vec<Frame>>>),
}

impl Responder {
    fn fail(self, error: SendError) {
        // A caller that gave up (timed out, was cancelled) dropped its end.
        match self {
            Responder::One(tx) => drop(tx.send(Err(error))),
            Responder::Many(tx) => drop(tx.send(Err(error))),
        }
    }
}

/// Encoded request frames and where their replies go.
struct Submission {
    /// Tells this submission apart from the others on the connection.
    id: u64,
    bytes: Bytes,
    replies: usize,
    excuse: Excuse,
    responder: Responder,
}

/// A submission that has been handed to the socket, awaiting its replies.
struct Pending {
    id: u64,
    remaining: usize,
    frames: Vec<Frame>,
    excuse: Excuse,
    responder: Responder,
}

struct Shared {
    addr: String,
    pending: Mutex<VecDeque<Pending>>,
    next_id: AtomicU64,
    /// When a held request last got its reply.
    held_answered: Mutex<Option<Instant>>,
    closed: CancellationToken,
    reason: OnceLock<Error>,
}

impl Shared {
    /// Closes the connection (once) and fails everything in flight.
    fn close(&self, reason: Error) {
        let reason = self.reason.get_or_init(|| reason).clone();
        self.closed.cancel();
        let in_flight =
            std::mem::take(&mut *self.pending.lock().expect("pending queue lock poisoned"));
        for pending in in_flight {
            pending.responder.fail(SendError::Lost(reason.clone()));
        }
    }

    /// How much longer the reply to `id` may take, once its own time is
    /// up, because a held request went ahead of it: while another caller's
    /// held request is the oldest awaiting its reply (so every reply behind
    /// it, this one included, is late because of it), a full response
    /// timeout at a time; after a held request was answered, what is left
    /// of a response timeout counted from then. `None`: no excuse, the
    /// node is not answering.
    fn excused_for(&self, id: u64, response_timeout: Duration) -> Option<Duration> {
        let now = Instant::now();
        let pending = self.pending.lock().expect("pending queue lock poisoned");
        if pending
            .front()
            .is_some_and(|front| front.id != id && front.excuse.covers(now))
        {
            return Some(response_timeout);
        }
        drop(pending);
        let answered = (*self.held_answered.lock().expect("held lock poisoned"))?;
        let Some(until) = answered.checked_add(response_timeout) else {
            return Some(response_timeout);
        };
        until
            .checked_duration_since(now)
            .filter(|left| !left.is_zero())
    }

    /// The error that closed the connection.
    fn reason(&self) -> Error {
        self.reason
            .get()
            .cloned()
            .unwrap_or_else(|| closed_error(&self.addr, "connection closed"))
    }
}

fn closed_error(addr: &str, why: &str) -> Error {
    Error::io(
        addr,
        std::io::Error::new(std::io::ErrorKind::ConnectionAborted, why.to_string()),
    )
}

/// A handle to one open connection; clones share it.
#[derive(Clone)]
pub(crate) struct Connection {
    tx: mpsc::Sender<Submission>,
    shared: Arc<Shared>,
}

impl Connection {
    /// Opens a connection (connect, hello, AUTH under the connect timeout)
    /// and starts its reader and writer tasks.
    pub(crate) async fn open(
        addr: &str,
        config: &crate::ClientConfig,
    ) -> Result<Connection, Error> {
        let (stream, leftover) = crate::handshake::open(addr, config).await?;
        tracing::debug!(addr, tls = config.tls.is_some(), "connected");
        Ok(match stream {
            // A TCP socket splits into halves without a lock between them.
            ClientStream::Plain(tcp) => {
                let (read_half, write_half) = tcp.into_split();
                Connection::start(read_half, write_half, leftover, addr, config.limits)
            }
            ClientStream::Tls(tls) => {
                let (read_half, write_half) = tokio::io::split(*tls);
                Connection::start(read_half, write_half, leftover, addr, config.limits)
            }
        })
    }

    /// Starts the reader and writer tasks over a connection that has
    /// completed its handshake.
    fn start<R, W>(
        read_half: R,
        write_half: W,
        leftover: BytesMut,
        addr: &str,
        limits: Limits,
    ) -> Connection
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let shared = Arc::new(Shared {
            addr: addr.to_string(),
            pending: Mutex::new(VecDeque::new()),
            next_id: AtomicU64::new(0),
            held_answered: Mutex::new(None),
            closed: CancellationToken::new(),
            reason: OnceLock::new(),
        });
        tokio::spawn(write_loop(write_half, rx, shared.clone()));
        tokio::spawn(read_loop(read_half, leftover, limits, shared.clone()));
        Connection { tx, shared }
    }

    /// False once the connection has failed or been closed.
    pub(crate) fn is_open(&self) -> bool {
        !self.shared.closed.is_cancelled()
    }

    /// Closes the connection; requests in flight fail with an I/O error.
    pub(crate) fn close(&self, why: &str) {
        self.shared.close(closed_error(&self.shared.addr, why));
    }

    /// Sends encoded requests, as many as `expect` says, and waits for
    /// their replies: up to `response_timeout` plus what `hold` allows (for
    /// a batch, what its requests may hold back together).
    pub(crate) async fn request<E: Expect>(
        &self,
        bytes: Bytes,
        expect: E,
        hold: Hold,
        response_timeout: Duration,
    ) -> Reply<E::Output> {
        if let Some(nothing) = expect.nothing() {
            return Ok(nothing);
        }
        let (tx, rx) = oneshot::channel();
        let (replies, responder) = (expect.count(), E::responder(tx));
        if !self.is_open() {
            return Err(SendError::NotSent(self.shared.reason()));
        }
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let patience = hold.patience(response_timeout);
        let excuse = match (hold, patience) {
            (Hold::None, _) => Excuse::None,
            (_, Some(patience)) => Instant::now()
                .checked_add(patience)
                .map_or(Excuse::Forever, Excuse::Until),
            (_, None) => Excuse::Forever,
        };
        let submission = Submission {
            id,
            bytes,
            replies,
            excuse,
            responder,
        };
        let exchange = async {
            if self.tx.send(submission).await.is_err() {
                return Err(SendError::NotSent(self.shared.reason()));
            }
            // A dropped responder means the writer discarded the submission
            // unsent while shutting down.
            rx.await
                .unwrap_or_else(|_| Err(SendError::NotSent(self.shared.reason())))
        };
        let mut exchange = std::pin::pin!(exchange);
        let Some(patience) = patience else {
            return exchange.await;
        };
        let mut wait = patience;
        loop {
            if let Ok(reply) = tokio::time::timeout(wait, exchange.as_mut()).await {
                return reply;
            }
            // Late because a WAIT went ahead, which the node holds on purpose?
            if let Some(more) = self.shared.excused_for(id, response_timeout) {
                wait = more;
                continue;
            }
            // Replies come in order, so everything behind the missing one is
            // stuck too: close, and let the next request reconnect.
            self.close("closed after a reply timed out");
            return Err(SendError::Lost(Error::Timeout {
                during: TimeoutKind::Response,
                addr: self.shared.addr.clone(),
                after: patience,
            }));
        }
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut socket: W,
    mut rx: mpsc::Receiver<Submission>,
    shared: Arc<Shared>,
) {
    let mut batch = Vec::new();
    let mut out = BytesMut::with_capacity(64 * 1024);
    loop {
        let first = tokio::select! {
            biased;
            _ = shared.closed.cancelled() => break,
            next = rx.recv() => match next {
                Some(submission) => submission,
                // Every handle is gone: nobody can send on this connection again.
                None => {
                    shared.close(closed_error(&shared.addr, "connection dropped by the client"));
                    break;
                }
            },
        };
        let mut batch_bytes = first.bytes.len();
        batch.push(first);
        while batch_bytes < MAX_BATCH_BYTES {
            let Ok(next) = rx.try_recv() else { break };
            batch_bytes += next.bytes.len();
            batch.push(next);
        }

        // Register the reply slots before writing, so that a reply can never
        // arrive ahead of its slot.
        let single = (batch.len() == 1).then(|| batch[0].bytes.clone());
        {
            let mut pending = shared.pending.lock().expect("pending queue lock poisoned");
            if shared.closed.is_cancelled() {
                drop(pending);
                for submission in batch.drain(..) {
                    submission
                        .responder
                        .fail(SendError::NotSent(shared.reason()));
                }
                break;
            }
            for submission in batch.drain(..) {
                if single.is_none() {
                    out.extend_from_slice(&submission.bytes);
                }
                let frames = match submission.responder {
                    Responder::Many(_) => Vec::with_capacity(submission.replies),
                    Responder::One(_) => Vec::new(),
                };
                pending.push_back(Pending {
                    id: submission.id,
                    remaining: submission.replies,
                    frames,
                    excuse: submission.excuse,
                    responder: submission.responder,
                });
            }
        }
        let bytes = single.as_deref().unwrap_or(&out);
        // A node that stops reading must not pin this task once the
        // connection has been given up on (e.g. after a reply timeout).
        let written = tokio::select! {
            _ = shared.closed.cancelled() => break,
            // Flushed: over TLS the tail of a write can otherwise wait in
            // the session until the next one.
            written = async {
                socket.write_all(bytes).await?;
                socket.flush().await
            } => written,
        };
        out.clear();
        if let Err(e) = written {
            shared.close(Error::io(&shared.addr, e));
            break;
        }
    }
    // Whatever is still queued was never written.
    rx.close();
    while let Ok(submission) = rx.try_recv() {
        submission
            .responder
            .fail(SendError::NotSent(shared.reason()));
    }
    let _ = socket.shutdown().await;
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut socket: R,
    mut buf: BytesMut,
    limits: Limits,
    shared: Arc<Shared>,
) {
    loop {
        loop {
            match Protocol::Native.decode_frame(&mut buf, &limits) {
                Ok(Some(frame)) => {
                    if !deliver(&shared, frame) {
                        let source = ProtocolError::Malformed("reply without a request");
                        shared.close(Error::Protocol {
                            addr: shared.addr.clone(),
                            source,
                        });
                        return;
                    }
                }
                Ok(None) => break,
                Err(source) => {
                    shared.close(Error::Protocol {
                        addr: shared.addr.clone(),
                        source,
                    });
                    return;
                }
            }
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(64 * 1024);
        }
        tokio::select! {
            _ = shared.closed.cancelled() => return,
            read = socket.read_buf(&mut buf) => match read {
                Ok(0) => {
                    let eof = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "node closed the connection");
                    shared.close(Error::io(&shared.addr, eof));
                    return;
                }
                Ok(_) => {}
                Err(e) => {
                    shared.close(Error::io(&shared.addr, e));
                    return;
                }
            },
        }
    }
}

/// Hands one reply to the oldest waiting request. False if none is waiting.
fn deliver(shared: &Shared, frame: Frame) -> bool {
    let mut pending = shared.pending.lock().expect("pending queue lock poisoned");
    let Some(front) = pending.front_mut() else {
        return false;
    };
    front.remaining -= 1;
    if front.remaining > 0 {
        front.frames.push(frame);
        return true;
    }
    let done = pending.pop_front().expect("the front entry was just seen");
    drop(pending);
    if !matches!(done.excuse, Excuse::None) {
        *shared.held_answered.lock().expect("held lock poisoned") = Some(Instant::now());
    }
    // A caller that gave up dropped its end; the reply is discarded.
    match done.responder {
        Responder::One(tx) => drop(tx.send(Ok(frame))),
        Responder::Many(tx) => {
            let mut frames = done.frames;
            frames.push(frame);
            drop(tx.send(Ok(frames)));
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll};

    use tokio::io::DuplexStream;

    use super::*;

    /// Counts the writes that reach the transport.
    struct CountingWriter<W> {
        inner: W,
        writes: Arc<AtomicUsize>,
    }

    impl<W: AsyncWrite + Unpin> AsyncWrite for CountingWriter<W> {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
            if matches!(polled, Poll::Ready(Ok(_))) {
                self.writes.fetch_add(1, Ordering::SeqCst);
            }
            polled
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }

        fn poll_shutdown(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    /// A connection over an in-memory pipe; returns the node's end too.
    fn pipe() -> (Connection, DuplexStream, Arc<AtomicUsize>) {
        let (client, node) = tokio::io::duplex(1 << 20);
        let (read_half, write_half) = tokio::io::split(client);
        let writes = Arc::new(AtomicUsize::new(0));
        let writer = CountingWriter {
            inner: write_half,
            writes: writes.clone(),
        };
        let connection = Connection::start(
            read_half,
            writer,
            BytesMut::new(),
            "pipe:1",
            Limits::DEFAULT,
        );
        (connection, node, writes)
    }

    fn encode(args: &[&str]) -> Bytes {
        let mut out = BytesMut::new();
        Protocol::Native.encode_request(args, &mut out);
        out.freeze()
    }

    /// Reads the next request from the node's end of the pipe.
    async fn next_request(node: &mut DuplexStream, buf: &mut BytesMut) -> Option<Vec<Bytes>> {
        loop {
            if let Some(Frame::Array(items)) =
                Protocol::Native.decode_frame(buf, &Limits::DEFAULT).ok()?
            {
                return Some(
                    items
                        .into_iter()
                        .filter_map(|item| item.as_bytes().map(Bytes::copy_from_slice))
                        .collect(),
                );
            }
            if node.read_buf(buf).await.ok()? == 0 {
                return None;
            }
        }
    }

    /// Answers every request with its last argument, as a bulk string.
    async fn echo(mut node: DuplexStream) {
        let mut buf = BytesMut::new();
        while let Some(args) = next_request(&mut node, &mut buf).await {
            let mut out = BytesMut::new();
            Protocol::Native.encode_frame(
                &Frame::Bulk(args.last().cloned().unwrap_or_default()),
                &mut out,
            );
            if node.write_all(&out).await.is_err() {
                return;
            }
        }
    }

    const PATIENCE: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn requests_from_many_tasks_share_few_writes() {
        let (connection, node, writes) = pipe();
        tokio::spawn(echo(node));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..1000 {
            let connection = connection.clone();
            tasks.spawn(async move {
                let key = format!("key:{i}");
                let reply = connection
                    .request(encode(&["GET", &key]), One, Hold::None, PATIENCE)
                    .await;
                assert_eq!(
                    reply.ok(),
                    Some(Frame::Bulk(key.into())),
                    "request {i} got another's reply"
                );
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.expect("task succeeded");
        }
        let writes = writes.load(Ordering::SeqCst);
        assert!(writes <= 10, "1000 requests took {writes} writes");
    }

    #[tokio::test]
    async fn a_batch_is_answered_together_and_in_order() {
        let (connection, node, _) = pipe();
        tokio::spawn(echo(node));
        let both = [
            encode(&["GET", "a"]),
            encode(&["GET", "b"]),
            encode(&["GET", "c"]),
        ]
        .concat();
        let replies = connection
            .request(both.into(), Batch(3), Hold::None, PATIENCE)
            .await
            .ok();
        assert_eq!(
            replies,
            Some(vec![Frame::bulk("a"), Frame::bulk("b"), Frame::bulk("c")])
        );
        assert!(
            connection
                .request(Bytes::new(), Batch(0), Hold::None, PATIENCE)
                .await
                .is_ok_and(|r| r.is_empty())
        );
    }

    #[tokio::test]
    async fn a_dropped_connection_fails_what_was_sent_and_refuses_the_rest() {
        let (connection, mut node, _) = pipe();
        tokio::spawn(async move {
            // Take the request, then vanish without answering.
            next_request(&mut node, &mut BytesMut::new()).await;
        });
        match connection
            .request(encode(&["INCR", "n"]), One, Hold::None, PATIENCE)
            .await
        {
            Err(SendError::Lost(Error::Io { .. })) => {}
            other => panic!("expected the in-flight request to be lost, got {other:?}"),
        }
        assert!(!connection.is_open());
        match connection
            .request(encode(&["GET", "n"]), One, Hold::None, PATIENCE)
            .await
        {
            Err(SendError::NotSent(Error::Io { .. })) => {}
            other => panic!("expected a refusal to send, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_reply_nobody_asked_for_is_a_protocol_error() {
        let (connection, mut node, _) = pipe();
        let mut out = BytesMut::new();
        Protocol::Native.encode_frame(&Frame::ok(), &mut out);
        node.write_all(&out).await.expect("pipe open");
        while connection.is_open() {
            tokio::task::yield_now().await;
        }
        match connection
            .request(encode(&["GET", "k"]), One, Hold::None, PATIENCE)
            .await
        {
            Err(SendError::NotSent(Error::Protocol { .. })) => {}
            other => panic!("expected a protocol error, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_reply_timeout_closes_the_connection() {
        let (connection, mut node, _) = pipe();
        tokio::spawn(async move {
            let mut buf = BytesMut::new();
            // Read requests forever, answer none.
            while next_request(&mut node, &mut buf).await.is_some() {}
        });
        match connection
            .request(
                encode(&["GET", "k"]),
                One,
                Hold::None,
                Duration::from_secs(1),
            )
            .await
        {
            Err(SendError::Lost(Error::Timeout {
                during: TimeoutKind::Response,
                ..
            })) => {}
            other => panic!("expected a response timeout, got {other:?}"),
        }
        assert!(
            !connection.is_open(),
            "later replies would queue behind the lost one"
        );
    }

    /// Answers `WAIT` after three seconds and anything else at once, in order.
    async fn slow_wait(mut node: DuplexStream) {
        let mut buf = BytesMut::new();
        while let Some(args) = next_request(&mut node, &mut buf).await {
            let reply = if args[0] == "WAIT" {
                tokio::time::sleep(Duration::from_secs(3)).await;
                Frame::Integer(1)
            } else {
                Frame::Bulk(args.last().cloned().unwrap_or_default())
            };
            let mut out = BytesMut::new();
            Protocol::Native.encode_frame(&reply, &mut out);
            if node.write_all(&out).await.is_err() {
                return;
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_held_request_gets_its_hold_and_spares_the_requests_behind_it() {
        let (connection, node, _) = pipe();
        tokio::spawn(slow_wait(node));
        let timeout = Duration::from_secs(1);
        // Polled in this order, so WAIT is queued first and GET behind it.
        let (wait, get) = tokio::join!(
            connection.request(
                encode(&["WAIT", "1", "5000"]),
                One,
                Hold::For(Duration::from_secs(5)),
                timeout
            ),
            connection.request(encode(&["GET", "k"]), One, Hold::None, timeout),
        );
        assert_eq!(wait.ok(), Some(Frame::Integer(1)));
        assert_eq!(
            get.ok(),
            Some(Frame::bulk("k")),
            "not timed out behind WAIT"
        );
        assert!(connection.is_open());

        let forever = connection
            .request(
                encode(&["WAIT", "1", "0"]),
                One,
                Hold::Indefinitely,
                timeout,
            )
            .await;
        assert_eq!(forever.ok(), Some(Frame::Integer(1)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_held_request_that_never_returns_still_times_out() {
        let (connection, mut node, _) = pipe();
        tokio::spawn(async move {
            let mut buf = BytesMut::new();
            while next_request(&mut node, &mut buf).await.is_some() {}
        });
        let start = Instant::now();
        let timeout = Duration::from_secs(1);
        let (wait, get) = tokio::join!(
            connection.request(
                encode(&["WAIT", "1", "2000"]),
                One,
                Hold::For(Duration::from_secs(2)),
                timeout
            ),
            connection.request(encode(&["GET", "k"]), One, Hold::None, timeout),
        );
        assert!(matches!(wait, Err(SendError::Lost(_))), "{wait:?}");
        assert!(matches!(get, Err(SendError::Lost(_))), "{get:?}");
        assert!(
            start.elapsed() >= Duration::from_secs(3),
            "nothing gave up before WAIT's own timeout and hold had passed"
        );
        assert!(!connection.is_open());
    }

    #[test]
    fn holds_add_up() {
        let second = Duration::from_secs(1);
        assert_eq!(Hold::None.then(Hold::None), Hold::None);
        assert_eq!(Hold::None.then(Hold::For(second)), Hold::For(second));
        assert_eq!(
            Hold::For(second).then(Hold::For(second)),
            Hold::For(2 * second)
        );
        assert_eq!(
            Hold::For(second).then(Hold::Indefinitely),
            Hold::Indefinitely
        );
        assert_eq!(Hold::For(second).patience(second), Some(2 * second));
        assert_eq!(Hold::Indefinitely.patience(second), None);
    }
}
