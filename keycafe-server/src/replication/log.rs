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

use crate::store::{Change, MemoryUse, Subscriber};

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

    /// Records `SET key value [PXAT deadline]`.
    pub fn record_set(&self, key: &[u8], value: &[u8], deadline: Option<u64>) {
        self.record(|out| encode_set(key, value, deadline, out));
    }

    /// Records `DEL key`.
    pub fn record_del(&self, key: &[u8]) {
        self.record(|out| Protocol::Native.encode_request(&[b"DEL", key], out));
    }

    /// Records `FLUSHALL`.
    pub fn record_flush(&self) {
        self.record(|out| Protocol::Native.encode_request(&[b"FLUSHALL"], out));
    }

    /// Records `MULTI` or `EXEC`, around a transaction's changes.
    pub fn record_bracket(&self, word: &[u8]) {
        self.record(|out| Protocol::Native.encode_request(&[word], out));
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
        match change {
            Change::Set {
                key,
                value,
                deadline,
            } => self.record_set(key, value, deadline),
            Change::Del { key } => self.record_del(key),
            Change::FlushAll => self.record_flush(),
            Change::Begin => self.record_bracket(b"MULTI"),
            Change::Commit => self.record_bracket(b"EXEC"),
        }
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

/// Appends the record `SET key value [PXAT deadline]`: a key's whole state,
/// in the stream and in a full copy alike.
pub fn encode_set(key: &[u8], value: &[u8], deadline: Option<u64>, out: &mut BytesMut) {
    match deadline {
        None => Protocol::Native.encode_request(&[b"SET", key, value], out),
        Some(ms) => {
            let mut digits = itoa::Buffer::new();
            let ms = digits.format(ms).as_bytes();
            Protocol::Native.encode_request(&[b"SET", key, value, b"PXAT", ms], out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(log: &ReplicationLog, offset: u64) -> Result<Vec<u8>, Gone> {
        let mut out = BytesMut::new();
        log.read_from(offset, usize::MAX, &mut out)?;
        Ok(out.to_vec())
    }

    #[test]
    fn records_are_native_requests_at_growing_offsets() {
        let log = ReplicationLog::new(1024);
        let start = log.start_recording();
        assert_eq!(start.offset, 0);
        log.record_set(b"k", b"v", Some(1_700_000_000_000));
        log.record_del(b"k");
        let bytes = read_all(&log, 0).unwrap();
        assert_eq!(bytes.len() as u64, log.offset());
        let mut expected = BytesMut::new();
        Protocol::Native.encode_request(
            &[&b"SET"[..], b"k", b"v", b"PXAT", b"1700000000000"],
            &mut expected,
        );
        Protocol::Native.encode_request(&[&b"DEL"[..], b"k"], &mut expected);
        assert_eq!(bytes, expected.to_vec());
    }

    #[test]
    fn a_del_record_is_the_frame_in_the_protocol_doc() {
        let log = ReplicationLog::new(1024);
        log.start_recording();
        log.record_del(b"k");
        let hex: Vec<String> = read_all(&log, 0)
            .unwrap()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex.join(" "),
            "00 00 00 13 2a 00 00 00 02 24 00 00 00 03 44 45 4c 24 00 00 00 01 6b"
        );
        assert_eq!(log.offset(), 23);
    }

    #[test]
    fn the_ring_keeps_only_the_newest_bytes() {
        let log = ReplicationLog::new(1024);
        log.start_recording();
        for i in 0..200u32 {
            log.record_set(format!("key{i}").as_bytes(), b"value", None);
        }
        let end = log.offset();
        assert!(end > 1024);
        assert_eq!(read_all(&log, 0), Err(Gone));
        let tail = read_all(&log, end - 1024).unwrap();
        assert_eq!(tail.len(), 1024);
        let mut last = BytesMut::new();
        Protocol::Native.encode_request(&[&b"SET"[..], b"key199", b"value"], &mut last);
        assert!(tail.ends_with(&last));
        assert_eq!(read_all(&log, end).unwrap(), Vec::<u8>::new());
        assert_eq!(read_all(&log, end + 1), Err(Gone));
    }

    #[test]
    fn continuing_needs_the_history_and_the_bytes() {
        let log = ReplicationLog::new(1024);
        let start = log.start_recording();
        log.record_del(b"a");
        assert!(log.can_continue(&start.replid, 0));
        assert!(log.can_continue(&start.replid, log.offset()));
        assert!(!log.can_continue(&start.replid, log.offset() + 1));
        assert!(!log.can_continue("someone else", 0));
        assert!(!log.can_continue(NO_ID, 0));
    }

    #[test]
    fn a_promoted_replica_serves_its_old_history() {
        let replica = ReplicationLog::new(4096);
        replica.stop_recording();
        replica.reset("old-primary", 100);
        let mut frame = BytesMut::new();
        Protocol::Native.encode_request(&[&b"DEL"[..], b"x"], &mut frame);
        replica.append_raw(&frame);
        let took_over = replica.offset();
        let new = replica.promote();
        assert_ne!(new.replid, "old-primary");
        assert!(replica.is_recording());
        // Another replica of the old primary, at or behind us: continues.
        assert!(replica.can_continue("old-primary", 100));
        assert!(replica.can_continue("old-primary", took_over));
        // The old primary, which wrote on after we took over: full copy.
        assert!(!replica.can_continue("old-primary", took_over + 10));
        assert!(
            !replica.can_continue("old-primary", 99),
            "before our history"
        );
    }
}
