//! Snapshots: every key with its deadline, as of one instant, taken while
//! the node keeps serving; and loading one back.
//!
//! A snapshot is written the way a replica's full copy is made (see
//! `replication/primary.rs`), plus a tail that makes it exact:
//!
//! 1. The [`Recorder`], a subscriber of the store's change feed, starts
//!    recording every change.
//! 2. Slot by slot, each slot's keys are copied as `SET` records, under its
//!    shard's lock only for as long as that slot takes; after each slot,
//!    the changes recorded so far are written too.
//! 3. The recorder stops; the changes it recorded since the last slot are
//!    written, then the end marker.
//!
//! Every record is a key's whole state and changes reach the recorder in
//! the order they were applied to each key, so for every key the last
//! record in the file is its state at the instant the recorder stopped:
//! either a change recorded after its slot was copied, or the copy itself.
//! Loading the file in order therefore rebuilds the keyspace as it was at
//! that instant, although no lock was held for more than one slot.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use bytes::{Buf, BytesMut};
use keycafe_core::{Limits, RequestParser, SLOT_COUNT};

use super::atomic::AtomicFile;
use super::format::{self, FormatError, HeaderFields, Kind, Reader};
use crate::store::records::{self, RecordError};
use crate::store::{Change, Store, Subscriber, now_ms};

/// Bytes of records gathered before they are written as one block.
const BLOCK_TARGET: usize = 1 << 20;

/// Hears the store's changes while a snapshot is being written.
#[derive(Default)]
pub struct Recorder {
    listening: AtomicBool,
    recorded: Mutex<BytesMut>,
}

impl Recorder {
    fn lock(&self) -> MutexGuard<'_, BytesMut> {
        self.recorded.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn start(&self) {
        let mut recorded = self.lock();
        recorded.clear();
        self.listening.store(true, Ordering::SeqCst);
    }

    /// Moves what was recorded so far to the end of `out`.
    fn drain_into(&self, out: &mut BytesMut) {
        let mut recorded = self.lock();
        out.extend_from_slice(&recorded);
        recorded.clear();
    }

    /// Stops recording: the instant the snapshot is of. What was recorded
    /// until then is moved to `out`.
    fn stop_into(&self, out: &mut BytesMut) {
        let mut recorded = self.lock();
        self.listening.store(false, Ordering::SeqCst);
        out.extend_from_slice(&recorded);
        *recorded = BytesMut::new();
    }
}

impl Subscriber for Recorder {
    fn is_listening(&self) -> bool {
        self.listening.load(Ordering::Relaxed)
    }

    fn on_change(&self, change: Change<'_>) {
        let mut recorded = self.lock();
        // A change can pass `is_listening` just before the recorder stops;
        // it happened after the snapshot's instant and is left out.
        if self.listening.load(Ordering::Relaxed) {
            records::encode(change, &mut recorded);
        }
    }
}

/// What writing a snapshot did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    pub keys: u64,
    pub bytes: u64,
    pub micros: u64,
}

/// Writes a snapshot of `store` to `path` (through a temporary file,
/// renamed into place once synced). `recorder` must be one of the store's
/// subscribers and not in use by another snapshot. `sequence` goes into the
/// header (the append-only file's base number; 0 for `dump.kcs`).
pub fn write(
    store: &Store,
    recorder: &Recorder,
    path: &Path,
    sequence: u64,
) -> io::Result<Written> {
    let started = Instant::now();
    let mut file = AtomicFile::create(path)?;
    let mut out = BytesMut::new();
    format::encode_header(
        Kind::Snapshot,
        HeaderFields {
            created_ms: now_ms(),
            sequence,
        },
        &mut out,
    );
    let mut writer = BlockWriter {
        file: &mut file,
        out,
        blocks: 0,
        bytes: 0,
    };
    let mut chunk = BytesMut::new();
    let mut keys = 0;
    recorder.start();
    let result = (|| {
        for slot in 0..SLOT_COUNT {
            let now = now_ms();
            store.for_each_in_slot(slot, |key, value, deadline| {
                // Already expired: gone, whether or not its DEL has come.
                if deadline.is_none_or(|ms| ms >= now) {
                    records::encode_set(key, value, deadline, &mut chunk);
                    keys += 1;
                }
            });
            recorder.drain_into(&mut chunk);
            if chunk.len() >= BLOCK_TARGET {
                writer.block(&chunk)?;
                chunk.clear();
            }
        }
        Ok::<_, io::Error>(())
    })();
    recorder.stop_into(&mut chunk);
    result?;
    writer.block(&chunk)?;
    writer.end()?;
    let bytes = writer.bytes;
    file.commit()?;
    Ok(Written {
        keys,
        bytes,
        micros: started.elapsed().as_micros() as u64,
    })
}

/// Lowers the calling thread's scheduling priority (nice 10), for a
/// thread that writes a snapshot: it then gives way to the threads that
/// serve clients when the machine's cores are all busy, and uses what is
/// left otherwise.
pub fn background_priority() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: setpriority only changes the scheduling priority of the
    // thread whose id gettid returns: this one.
    unsafe {
        let thread = libc::gettid() as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, thread, 10);
    }
}

/// Frames records into blocks and writes them.
struct BlockWriter<'f> {
    file: &'f mut AtomicFile,
    /// Encoded bytes not yet written.
    out: BytesMut,
    blocks: u64,
    bytes: u64,
}

impl BlockWriter<'_> {
    fn block(&mut self, payload: &[u8]) -> io::Result<()> {
        if payload.is_empty() {
            return Ok(());
        }
        format::encode_block(payload, &mut self.out)
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err.to_string()))?;
        self.blocks += 1;
        self.flush()
    }

    fn end(&mut self) -> io::Result<()> {
        format::encode_end(self.blocks, &mut self.out);
        self.flush()
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.write_all(&self.out)?;
        self.bytes += self.out.len() as u64;
        self.out.clear();
        Ok(())
    }
}

/// Why a file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("{path}: {source}")]
    Format { path: String, source: FormatError },
    #[error("{path}: a record at or before byte {offset}: {source}")]
    Record {
        path: String,
        offset: u64,
        source: RecordError,
    },
    #[error("{path}: the file ends inside a record or a transaction")]
    Unfinished { path: String },
}

/// What loading a file did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Loaded {
    pub blocks: u64,
    /// Bytes of the file that were read and applied.
    pub bytes: u64,
    pub header: Option<HeaderFields>,
}

/// Applies the records of `reader`'s blocks to `store`, in order, judging
/// expiry by the clock. Stops at the first error, returning it with what was
/// applied until then (an append-only file's torn tail is cut there).
pub fn apply_blocks<R: io::Read>(
    store: &Store,
    reader: &mut Reader<R>,
    path: &Path,
) -> (Loaded, Result<(), LoadError>) {
    let path_text = path.display().to_string();
    let mut parser = RequestParser::new(Limits::default());
    let mut pending = BytesMut::new();
    let mut loaded = Loaded {
        header: Some(reader.header().fields),
        ..Loaded::default()
    };
    let now = now_ms();
    loop {
        let block = match reader.next_block() {
            Ok(Some(block)) => block,
            Ok(None) => break,
            Err(source) => {
                let err = LoadError::Format {
                    path: path_text,
                    source,
                };
                return (loaded, Err(err));
            }
        };
        pending.extend_from_slice(&block.payload);
        match records::apply_stream(store, &mut parser, &pending, now) {
            Ok(used) => pending.advance(used),
            Err(source) => {
                let err = LoadError::Record {
                    path: path_text,
                    offset: block.end(),
                    source,
                };
                return (loaded, Err(err));
            }
        }
        loaded.blocks += 1;
        loaded.bytes = block.end();
    }
    if !pending.is_empty() {
        return (loaded, Err(LoadError::Unfinished { path: path_text }));
    }
    (loaded, Ok(()))
}

/// Loads the snapshot at `path` into `store`. A snapshot is whole or
/// refused: any damage, or a missing end marker, is an error.
pub fn load(store: &Store, path: &Path) -> Result<Loaded, LoadError> {
    let open_error = |source| LoadError::Io {
        path: path.display().to_string(),
        source,
    };
    let file = File::open(path).map_err(open_error)?;
    let mut reader = Reader::of_kind(file, Kind::Snapshot).map_err(|source| LoadError::Format {
        path: path.display().to_string(),
        source,
    })?;
    let (loaded, result) = apply_blocks(store, &mut reader, path);
    result.map(|()| loaded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ChangeFeed, Expiry};
    use std::sync::Arc;

    fn store_with_recorder() -> (Arc<Store>, Arc<Recorder>) {
        let recorder = Arc::new(Recorder::default());
        let feed = ChangeFeed::new().with(recorder.clone());
        (Arc::new(Store::with_feed(4, feed)), recorder)
    }

    fn value(store: &Store, key: &[u8]) -> Option<Vec<u8>> {
        store.get_with(key, now_ms(), |v| v.map(<[u8]>::to_vec))
    }

    #[test]
    fn a_snapshot_loads_back_every_live_key_with_its_deadline() {
        let (store, recorder) = store_with_recorder();
        let later = now_ms() + 60_000;
        for i in 0..2_000 {
            let key = format!("key:{i}");
            store.set(key.as_bytes(), b"v", 0, Expiry::Persist).unwrap();
        }
        store.set(b"timed", b"t", 0, Expiry::At(later)).unwrap();
        store.set(b"gone", b"g", 0, Expiry::At(1)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dump.kcs");
        let written = write(&store, &recorder, &path, 0).unwrap();
        assert_eq!(written.keys, 2_001, "the expired key is left out");
        assert!(!recorder.is_listening());

        let loaded_into = Store::with_shards(4);
        let loaded = load(&loaded_into, &path).unwrap();
        assert_eq!(loaded.bytes + format::END_LEN as u64, written.bytes);
        assert_eq!(loaded_into.len(now_ms()), 2_001);
        assert_eq!(
            value(&loaded_into, b"key:1999").as_deref(),
            Some(b"v".as_slice())
        );
        let deadline = loaded_into.read(b"timed", now_ms(), |entry| entry.deadline());
        assert_eq!(deadline, Some(later));
    }

    #[test]
    fn a_damaged_snapshot_is_refused() {
        let (store, recorder) = store_with_recorder();
        store.set(b"k", b"v", 0, Expiry::Persist).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dump.kcs");
        write(&store, &recorder, &path, 0).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        let err = load(&Store::new(), &path).unwrap_err().to_string();
        assert!(err.contains("dump.kcs"), "{err}");
    }

    /// Writers keep bumping their own counters while a snapshot is taken;
    /// the snapshot must hold, for every writer, one value it really had at
    /// one instant: since writer `w` writes `w:a` then `w:b` with the same
    /// number, `w:b` can lag `w:a` by at most one, never lead it.
    #[test]
    fn a_snapshot_taken_under_writes_is_of_one_instant() {
        let (store, recorder) = store_with_recorder();
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..3)
            .map(|w| {
                let (store, stop) = (store.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) && n < 2_000_000 {
                        n += 1;
                        let value = n.to_string();
                        let a = format!("{w}:a");
                        let b = format!("{w}:b");
                        store
                            .set(a.as_bytes(), value.as_bytes(), 0, Expiry::Persist)
                            .unwrap();
                        store
                            .set(b.as_bytes(), value.as_bytes(), 0, Expiry::Persist)
                            .unwrap();
                    }
                })
            })
            .collect();
        for i in 0..20_000 {
            let key = format!("filler:{i}");
            store.set(key.as_bytes(), b"x", 0, Expiry::Persist).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dump.kcs");
        write(&store, &recorder, &path, 0).unwrap();
        stop.store(true, Ordering::Relaxed);
        writers.into_iter().for_each(|w| w.join().unwrap());

        let loaded = Store::new();
        load(&loaded, &path).unwrap();
        let number = |key: String| -> u64 {
            value(&loaded, key.as_bytes())
                .map_or(0, |v| String::from_utf8(v).unwrap().parse().unwrap())
        };
        for w in 0..3 {
            let (a, b) = (number(format!("{w}:a")), number(format!("{w}:b")));
            assert!(a == b || a == b + 1, "writer {w}: a = {a}, b = {b}");
        }
    }
}
