//! Test fixtures: scripted fake nodes, and settings for clients of them. The
//! real node is `keycafe_server::test_util::TestServer`.
#![allow(dead_code)] // each test binary uses its own subset

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use keycafe_core::{Frame, Limits, Protocol, native};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Every test future is bounded: a hang is a failure, not a stuck suite.
pub async fn bounded<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), future)
        .await
        .expect("test finished within 30 s")
}

/// Short timeouts and backoff, so that failure paths finish quickly.
pub fn config(seed: &str) -> keycafe_client::ClientConfig {
    keycafe_client::ClientConfig::new([seed])
        .connect_timeout(Duration::from_millis(300))
        .response_timeout(Duration::from_millis(300))
        .backoff(Duration::from_millis(2), Duration::from_millis(20))
        .max_retries(3)
}

/// A `MOVED` reply sending `key` to `to`.
pub fn moved(key: &str, to: &str) -> Action {
    Action::Reply(Frame::error(format!(
        "MOVED {} {to}",
        keycafe_core::key_slot(key.as_bytes())
    )))
}

/// Two fake nodes answering from one script, which is also given both
/// nodes' addresses `(a, b)`, so that it can name either one in a slot map
/// or a redirect.
pub async fn two_nodes(
    script: impl Fn(&Seen<'_>, &str, &str) -> Action + Send + Sync + 'static,
) -> (FakeNode, FakeNode) {
    let addrs = Arc::new(std::sync::OnceLock::<(String, String)>::new());
    let script = Arc::new({
        let addrs = addrs.clone();
        move |seen: &Seen<'_>| -> Action {
            let (a, b) = addrs.get().expect("both nodes started");
            script(seen, a, b)
        }
    });
    let a = {
        let script = script.clone();
        FakeNode::start(move |seen: &Seen<'_>| script(seen)).await
    };
    let b = FakeNode::start(move |seen: &Seen<'_>| script(seen)).await;
    addrs
        .set((a.address(), b.address()))
        .expect("addresses set once");
    (a, b)
}

// ---------------------------------------------------------------------------
// Scripted fake nodes
// ---------------------------------------------------------------------------

/// What a fake node does with one request.
pub enum Action {
    Reply(Frame),
    /// Reply after this long, holding up the connection's later replies
    /// meanwhile (as a node blocked in WAIT does).
    After(Duration, Frame),
    /// Read the request and say nothing.
    Silence,
    /// Write these bytes as they are (garbage) and carry on.
    Raw(Vec<u8>),
    /// Write these bytes as they are (half a frame) and close.
    WriteAndClose(Vec<u8>),
}

/// How a fake node answers the hello.
#[derive(Clone)]
enum Hello {
    Answer,
    /// Accept the connection and never send a byte.
    Mute,
    /// Refuse with this error frame.
    Reject(String),
}

/// One request as a fake node saw it.
pub struct Seen<'a> {
    pub args: &'a [Bytes],
    /// The request before it on the same connection.
    pub previous: Option<&'a [Bytes]>,
    /// Requests this node has received so far, this one excluded.
    pub count: usize,
    /// This node's own address.
    pub me: &'a str,
}

impl Seen<'_> {
    pub fn is(&self, name: &str) -> bool {
        self.args
            .first()
            .is_some_and(|a| a.eq_ignore_ascii_case(name.as_bytes()))
    }
}

type Script = dyn Fn(&Seen<'_>) -> Action + Send + Sync;

/// A listener that speaks the native protocol and answers from a script.
pub struct FakeNode {
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<Vec<Bytes>>>>,
    reads: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl FakeNode {
    /// A node that completes the hello and answers every request with `script`.
    pub async fn start(script: impl Fn(&Seen<'_>) -> Action + Send + Sync + 'static) -> FakeNode {
        FakeNode::start_with(Hello::Answer, Arc::new(script)).await
    }

    /// A node that accepts connections and never sends a byte.
    pub async fn mute() -> FakeNode {
        FakeNode::start_with(Hello::Mute, Arc::new(|_: &Seen<'_>| Action::Silence)).await
    }

    /// A node that refuses the hello with an error frame.
    pub async fn rejecting(text: &str) -> FakeNode {
        FakeNode::start_with(
            Hello::Reject(text.to_string()),
            Arc::new(|_: &Seen<'_>| Action::Silence),
        )
        .await
    }

    async fn start_with(hello: Hello, script: Arc<Script>) -> FakeNode {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let reads = Arc::new(AtomicUsize::new(0));
        let peer = Peer {
            hello,
            script,
            log: log.clone(),
            reads: reads.clone(),
            me: addr.to_string(),
        };
        let task = tokio::spawn(accept_loop(listener, Arc::new(peer)));
        FakeNode {
            addr,
            log,
            reads,
            task,
        }
    }

    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Every request received, in order, as text (`GET k`).
    pub fn received(&self) -> Vec<String> {
        let log = self.log.lock().expect("log lock");
        log.iter()
            .map(|args| {
                args.iter()
                    .map(|a| String::from_utf8_lossy(a))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    /// How many requests named `name` arrived.
    pub fn count(&self, name: &str) -> usize {
        let log = self.log.lock().expect("log lock");
        log.iter()
            .filter(|args| {
                args.first()
                    .is_some_and(|a| a.eq_ignore_ascii_case(name.as_bytes()))
            })
            .count()
    }

    /// How many reads delivered request bytes (after the hello).
    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }

    /// Stops listening and drops every connection, like a crashed process.
    pub fn kill(&self) {
        self.task.abort();
    }
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What every connection of one fake node shares.
struct Peer {
    hello: Hello,
    script: Arc<Script>,
    log: Arc<Mutex<Vec<Vec<Bytes>>>>,
    reads: Arc<AtomicUsize>,
    me: String,
}

async fn accept_loop(listener: TcpListener, peer: Arc<Peer>) {
    // Connections live in this set, so aborting the accept task closes them all.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { return };
                connections.spawn(serve(stream, peer.clone()));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve(mut stream: TcpStream, peer: Arc<Peer>) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    while buf.len() < native::HELLO_LEN {
        if !matches!(stream.read_buf(&mut buf).await, Ok(n) if n > 0) {
            return;
        }
    }
    let _ = buf.split_to(native::HELLO_LEN);
    let mut out = BytesMut::new();
    match &peer.hello {
        Hello::Answer => native::encode_hello(native::VERSION, &mut out),
        // Hold the connection open without a word until the test ends.
        Hello::Mute => std::future::pending::<()>().await,
        Hello::Reject(text) => {
            Protocol::Native.encode_frame(&Frame::error(text.clone()), &mut out);
            let _ = stream.write_all(&out).await;
            return;
        }
    }
    if stream.write_all(&out).await.is_err() {
        return;
    }
    let mut previous: Option<Vec<Bytes>> = None;
    loop {
        let frame = match Protocol::Native.decode_frame(&mut buf, &Limits::DEFAULT) {
            Ok(Some(frame)) => frame,
            Ok(None) => match stream.read_buf(&mut buf).await {
                Ok(n) if n > 0 => {
                    peer.reads.fetch_add(1, Ordering::SeqCst);
                    continue;
                }
                _ => return,
            },
            Err(_) => return,
        };
        let Frame::Array(items) = frame else { return };
        let args: Vec<Bytes> = items
            .into_iter()
            .filter_map(|item| match item {
                Frame::Bulk(arg) => Some(arg),
                _ => None,
            })
            .collect();
        let count = {
            let mut log = peer.log.lock().expect("log lock");
            log.push(args.clone());
            log.len() - 1
        };
        let action = (peer.script)(&Seen {
            args: &args,
            previous: previous.as_deref(),
            count,
            me: &peer.me,
        });
        previous = Some(args);
        match action {
            Action::Reply(reply) => {
                let mut out = BytesMut::new();
                Protocol::Native.encode_frame(&reply, &mut out);
                if stream.write_all(&out).await.is_err() {
                    return;
                }
            }
            Action::After(delay, reply) => {
                tokio::time::sleep(delay).await;
                let mut out = BytesMut::new();
                Protocol::Native.encode_frame(&reply, &mut out);
                if stream.write_all(&out).await.is_err() {
                    return;
                }
            }
            Action::Silence => {}
            Action::Raw(bytes) => {
                if stream.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            Action::WriteAndClose(bytes) => {
                let _ = stream.write_all(&bytes).await;
                return;
            }
        }
    }
}

/// A `CLUSTER SLOTS` answer: `(start, end, addr)` per range.
pub fn cluster_slots(ranges: &[(i64, i64, &str)]) -> Frame {
    Frame::Array(
        ranges
            .iter()
            .map(|(start, end, addr)| {
                Frame::Array(vec![
                    Frame::Integer(*start),
                    Frame::Integer(*end),
                    node_entry(addr),
                ])
            })
            .collect(),
    )
}

/// A one-node answer: `addr` serves every slot.
pub fn all_slots(addr: &str) -> Frame {
    cluster_slots(&[(0, 16383, addr)])
}

/// `primary` serves every slot, and `replicas` follow it in the entry, as a
/// node with replicas answers `CLUSTER SLOTS`.
pub fn all_slots_with_replicas(primary: &str, replicas: &[&str]) -> Frame {
    let mut entry = vec![
        Frame::Integer(0),
        Frame::Integer(16383),
        node_entry(primary),
    ];
    entry.extend(replicas.iter().map(|replica| node_entry(replica)));
    Frame::Array(vec![Frame::Array(entry)])
}

/// `[host, port, id]` for a node of a `CLUSTER SLOTS` entry.
fn node_entry(addr: &str) -> Frame {
    let (host, port) = addr.rsplit_once(':').expect("host:port");
    let port: i64 = port.parse().expect("numeric port");
    Frame::Array(vec![
        Frame::bulk(host.to_string()),
        Frame::Integer(port),
        Frame::bulk(format!("id-of-{addr}")),
    ])
}

pub fn bulk(text: &str) -> Frame {
    Frame::bulk(text.to_string())
}
