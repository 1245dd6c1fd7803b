//! The replication log: the ordered stream of every change to the keyspace,
//! and the backlog of its most recent bytes.
//!
//! The log subscribes to the store's change feed (`crate::store::Change`),
//! which tells it every change *while holding the lock of the key's shard*.
//! That is what orders the stream: two writes to one key take the same
//! lock, so they are recorded in the order they were applied, and writes to
//! different keys commute. Each record is the key's complete new state
//! (`SET key value [PXAT ms]` or `DEL key`), never a delta such as `INCR`,
//! so applying a record twice is harmless. That is what lets a full copy be
//! taken while the primary keeps serving (see `primary.rs`).
//!
//! Records are native-protocol request frames, so the stream reads like
//! commands in a packet capture. A position in the stream is an *offset*:
//! the number of stream bytes before it, as in Redis. A history is named by
//! a random *replication id*; a node promoted to primary starts a new id and
//! remembers the old one up to the offset where it took over (`replid2`,
//! `second_offset`, Redis's PSYNC2), so the other replicas of the old
//! primary, and the old primary itself, can continue from their offsets
//! instead of taking a full copy.
//!
//! The backlog is a ring of the last `capacity` bytes. A replica that
//! reconnects with an offset still in the ring resumes from there; one that
//! fell further behind needs a full copy.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::BytesMut;
use keycafe_core::Protocol;
use tokio::sync::Notify;

use crate::store::{Change, MemoryUse, Subscriber, records};

/// Where a history stands: its id and the offset of its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub replid: String,
    pub offset: u64,
}

/// The stream and its backlog. One per node, shared by the store (which
/// records) and the replication tasks (which ship and apply).
pub struct ReplicationLog {
    /// True while this node is a primary that has (had) replicas: only then
    /// does the store pay for recording.
    recording: AtomicBool,
    backlog: Mutex<Backlog>,
    /// Woken when the stream grows (see [`ReplicationLog::grown`]).
    grew: Notify,
    /// True while some task waits on `grew`, so that writers only pay for
    /// the wake-up when someone listens.
    listening: AtomicBool,
}

struct Backlog {
    replid: String,
    /// The previous history's id, valid up to `second_offset`.
    replid2: String,
    second_offset: u64,
    /// Offset of the end of the stream.
    end: u64,
    /// The first offset this history holds (a full copy starts a history
    /// part-way, at the primary's offset).
    start: u64,
    capacity: usize,
    /// The ring; empty until recording (or applying) starts.
    ring: Vec<u8>,
    /// Where one record is encoded before it is copied into the ring.
    scratch: BytesMut,
    /// The node's memory gauge, told of the ring when it is allocated.
    memory: Option<Arc<MemoryUse>>,
}

impl ReplicationLog {
    /// A log with a fresh history and a ring of `capacity` bytes (allocated
    /// when first used).
    pub fn new(capacity: usize) -> ReplicationLog {
        ReplicationLog {
            recording: AtomicBool::new(false),
            backlog: Mutex::new(Backlog {
                replid: random_replid(),
                replid2: NO_ID.to_string(),
                second_offset: 0,
                end: 0,
                start: 0,
                capacity: capacity.max(1024),
                ring: Vec::new(),
                scratch: BytesMut::new(),
                memory: None,
            }),
            grew: Notify::new(),
            listening: AtomicBool::new(false),
        }
    }

    /// This log, counting its ring in `memory` (the node's gauge, which
    /// `maxmemory` is checked against) once the ring is allocated.
    pub fn counting_in(self, memory: Arc<MemoryUse>) -> ReplicationLog {
        self.lock().memory = Some(memory);
        self
    }

    /// True if writes are being recorded. Read under a shard lock: a primary
    /// that turns recording on and then locks each shard (the full copy does)
    /// is sure every later write to that shard is recorded.
    pub fn is_recording(&self) -> bool {
        self.recording.load(Ordering::Relaxed)
    }

    /// Act as a replica: record nothing of our own (the stream from our
    /// primary is appended with [`ReplicationLog::append_raw`]).
    pub fn stop_recording(&self) {
        self.recording.store(false, Ordering::SeqCst);
    }

    /// Turns recording on (a replica is attaching) and returns where the
    /// stream stands: everything written from now on lies beyond it.
    pub fn start_recording(&self) -> Position {
        let mut backlog = self.lock();
        self.recording.store(true, Ordering::SeqCst);
        backlog.allocate();
        backlog.position()
    }

    /// The current end of the stream and its history's id.
    pub fn position(&self) -> Position {
        self.lock().position()
    }

    pub fn offset(&self) -> u64 {
        self.lock().end
    }

    /// `(replid, replid2, second_offset, first offset held, bytes held)`,
    /// for INFO.
    pub fn describe(&self) -> (String, String, u64, u64, u64) {
        let b = self.lock();
        (
            b.replid.clone(),
            b.replid2.clone(),
            b.second_offset,
            b.first(),
            b.end - b.first(),
        )
    }

    pub fn capacity(&self) -> usize {
        self.lock().capacity
    }

    /// Can a replica at `offset` of history `replid` continue from our
    /// backlog? True if `replid` is our history (or our previous one, up to
    /// where we took over) and the bytes after `offset` are all still held.
    pub fn can_continue(&self, replid: &str, offset: u64) -> bool {
        let b = self.lock();
        let known = (replid == b.replid && offset <= b.end)
            || (replid == b.replid2 && replid != NO_ID && offset <= b.second_offset);
        known && offset >= b.first() && !b.ring.is_empty()
    }

    /// Records `PING`: keeps an idle link's offset moving so that a replica
    /// can tell a silent primary from an idle one.
    pub fn record_ping(&self) {
        if self.is_recording() {
            self.record(|out| Protocol::Native.encode_request(&[b"PING"], out));
        }
    }

    /// Appends the record `encode` writes, under the backlog's lock.
    fn record(&self, encode: impl FnOnce(&mut BytesMut)) {
        {
            let mut backlog = self.lock();
            let mut scratch = std::mem::take(&mut backlog.scratch);
            scratch.clear();
            encode(&mut scratch);
            backlog.write(&scratch);
            backlog.scratch = scratch;
        }
        self.wake();
    }

    /// Appends stream bytes received from our primary (a replica keeps the
    /// same bytes at the same offsets, so that it can serve them once it is
    /// promoted).
    pub fn append_raw(&self, bytes: &[u8]) {
        self.lock().write(bytes);
        self.wake();
    }

    /// Starts the history of a full copy: id `replid`, at `offset`, with an
    /// empty backlog.
    pub fn reset(&self, replid: &str, offset: u64) {
        let mut b = self.lock();
        b.replid = replid.to_string();
        b.replid2 = NO_ID.to_string();
        b.second_offset = 0;
        b.end = offset;
        b.start = offset;
        b.allocate();
    }

    /// Continues our history under the primary's id (it may have been
    /// promoted since we last followed it).
    pub fn follow(&self, replid: &str) {
        let mut b = self.lock();
        if b.replid != replid {
            b.replid2 = std::mem::replace(&mut b.replid, replid.to_string());
            b.second_offset = b.end;
        }
        b.allocate();
    }

    /// Becomes a primary's log: a new history id, the old one remembered up
    /// to here, recording on from now.
    pub fn promote(&self) -> Position {
        let mut b = self.lock();
        b.replid2 = std::mem::replace(&mut b.replid, random_replid());
        b.second_offset = b.end;
        b.allocate();
        self.recording.store(true, Ordering::SeqCst);
        b.position()
    }

    /// Copies stream bytes from `offset` on (at most `max`) into `out`.
    /// `Err` if the bytes at `offset` are no longer held.
    pub fn read_from(&self, offset: u64, max: usize, out: &mut BytesMut) -> Result<usize, Gone> {
        self.lock().read(offset, max, out)
    }

    /// Waits until the stream's end is beyond `offset`.
    pub async fn grown(&self, offset: u64) {
        loop {
            let notified = self.grew.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            self.listening.store(true, Ordering::SeqCst);
            if self.offset() > offset {
                return;
            }
            notified.await;
        }
    }

    fn wake(&self) {
        if self.listening.load(Ordering::SeqCst) && self.listening.swap(false, Ordering::SeqCst) {
            self.grew.notify_waiters();
        }
    }

    fn lock(&self) -> MutexGuard<'_, Backlog> {
        self.backlog.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The log hears the store's changes while recording.
impl Subscriber for ReplicationLog {
    fn is_listening(&self) -> bool {
        self.is_recording()
    }

    fn on_change(&self, change: Change<'_>) {
        self.record(|out| records::encode(change, out));
    }
}

/// The bytes a replica asked for have been overwritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the backlog no longer holds that offset")]
pub struct Gone;

/// The id of "no history" (Redis sends 40 zeros).
pub const NO_ID: &str = "0000000000000000000000000000000000000000";

impl Backlog {
    fn position(&self) -> Position {
        Position {
            replid: self.replid.clone(),
            offset: self.end,
        }
    }

    fn allocate(&mut self) {
        if self.ring.is_empty() {
            self.ring = vec![0; self.capacity];
            if let Some(memory) = &self.memory {
                memory.add_backlog(self.capacity);
            }
        }
    }

    /// The first offset still held.
    fn first(&self) -> u64 {
        self.start
            .max(self.end.saturating_sub(self.ring.len() as u64))
    }

    fn write(&mut self, mut bytes: &[u8]) {
        self.allocate();
        let cap = self.ring.len();
        self.end += bytes.len() as u64;
        if bytes.len() > cap {
            bytes = &bytes[bytes.len() - cap..];
        }
        // The bytes now end at `end`; place them just before it.
        let mut at = ((self.end - bytes.len() as u64) % cap as u64) as usize;
        while !bytes.is_empty() {
            let n = bytes.len().min(cap - at);
            self.ring[at..at + n].copy_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            at = (at + n) % cap;
        }
    }

    fn read(&self, offset: u64, max: usize, out: &mut BytesMut) -> Result<usize, Gone> {
        if offset < self.first() || offset > self.end || self.ring.is_empty() {
            return Err(Gone);
        }
        let cap = self.ring.len();
        let mut left = ((self.end - offset) as usize).min(max);
        let total = left;
        let mut at = (offset % cap as u64) as usize;
        while left > 0 {
            let n = left.min(cap - at);
            out.extend_from_slice(&self.ring[at..at + n]);
            left -= n;
            at = (at + n) % cap;
        }
        Ok(total)
    }
}

fn random_replid() -> String {
    let bytes: [u8; 20] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
