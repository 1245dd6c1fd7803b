//! The append-only file: every change, appended as it happens and flushed
//! to disk as `appendfsync` says.
//!
//! **Parts.** As in Redis 7, the file is a set of parts in `appendonly/`,
//! named by a `manifest`: one *base*, a snapshot ([`super::snapshot`]), then
//! one or more *increments*, the changes after it. Loading applies them in
//! that order. Every record is a key's whole state, so applying an
//! increment that starts before its base's instant is harmless; only the
//! order of the records for one key matters, and the feed keeps it.
//!
//! **Appending.** [`AppendOnly`] subscribes to the store's change feed. It
//! encodes each change into a buffer in memory, under a lock of its own,
//! while the changed shard is locked (that is what orders the records). A
//! writer thread takes what has gathered, writes it as one block, and
//! syncs:
//!
//! - `always`: after every write. A reply is sent only once every change
//!   made before it is on disk ([`AppendOnly::durable_at`]), and the
//!   changes that gather during one `fsync` share the next one: group
//!   commit.
//! - `everysec`: at most once a second; a crash loses about the last second.
//! - `no`: never; the kernel writes when it likes.
//!
//! A transaction's records (`MULTI` … `EXEC`) are never split between two
//! blocks, so a torn last block loses all of a transaction or none of it.
//!
//! **Rewriting.** The increments grow without bound, so once they are
//! larger than the base by `auto-aof-rewrite-percentage` (and at least
//! `auto-aof-rewrite-min-size`), or on `BGREWRITEAOF`, the writer starts a
//! new increment at a record boundary and names it in the manifest beside
//! the old parts; a snapshot then becomes the new base, and only then does
//! the manifest drop the old parts. A crash at any step leaves a manifest
//! whose parts hold every change.
//!
//! **Errors.** A write that fails (a full disk) is retried every second;
//! until it succeeds the node refuses writes with `MISCONF` and replies
//! that wait for the disk keep waiting, so nothing is acknowledged that is
//! not on disk. A failed `fsync` stops the node: after one, Linux may have
//! dropped the unwritten pages, and nothing tells which.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::sync::watch;
use tracing::{error, info, warn};

use super::atomic::write_atomically;
use super::format::{self, FormatError, HeaderFields, Kind, Reader};
use super::snapshot::{self, LoadError, Recorder};
use crate::store::records;
use crate::store::{Change, Store, Subscriber, now_ms};

/// When the append-only file is synced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fsync {
    Always,
    #[default]
    Everysec,
    No,
}

impl Fsync {
    pub fn parse(text: &str) -> Option<Fsync> {
        match text.to_ascii_lowercase().as_str() {
            "always" => Some(Fsync::Always),
            "everysec" => Some(Fsync::Everysec),
            "no" => Some(Fsync::No),
            _ => None,
        }
    }

    fn from_u8(value: u8) -> Fsync {
        match value {
            0 => Fsync::Always,
            1 => Fsync::Everysec,
            _ => Fsync::No,
        }
    }

    fn as_u8(self) -> u8 {
        match self {
            Fsync::Always => 0,
            Fsync::Everysec => 1,
            Fsync::No => 2,
        }
    }
}

impl fmt::Display for Fsync {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Fsync::Always => "always",
            Fsync::Everysec => "everysec",
            Fsync::No => "no",
        })
    }
}

/// The manifest: the parts that make up the data, in loading order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The base's sequence number (`base.<n>.kcs`).
    pub base: u64,
    /// The increments' sequence numbers (`incr.<n>.kca`), oldest first.
    pub increments: Vec<u64>,
}

const MANIFEST: &str = "manifest";

impl Manifest {
    fn text(&self) -> String {
        let mut text = format!("base {}\n", base_name(self.base));
        for &n in &self.increments {
            text.push_str(&format!("incr {}\n", incr_name(n)));
        }
        text
    }

    fn parse(text: &str) -> Result<Manifest, String> {
        let mut base = None;
        let mut increments = Vec::new();
        for line in text.lines().filter(|line| !line.trim().is_empty()) {
            let (kind, name) = line
                .split_once(' ')
                .ok_or_else(|| format!("malformed line '{line}'"))?;
            let number = |prefix: &str, suffix: &str| {
                name.strip_prefix(prefix)
                    .and_then(|rest| rest.strip_suffix(suffix))
                    .and_then(|n| n.parse::<u64>().ok())
                    .ok_or_else(|| format!("malformed part name '{name}'"))
            };
            match kind {
                "base" if base.is_none() => base = Some(number("base.", ".kcs")?),
                "incr" => increments.push(number("incr.", ".kca")?),
                _ => return Err(format!("unexpected line '{line}'")),
            }
        }
        let base = base.ok_or("no base")?;
        if increments.is_empty() {
            return Err("no increment".to_string());
        }
        Ok(Manifest { base, increments })
    }

    fn last(&self) -> u64 {
        *self.increments.last().expect("a manifest has an increment")
    }
}

fn base_name(n: u64) -> String {
    format!("base.{n}.kcs")
}

fn incr_name(n: u64) -> String {
    format!("incr.{n}.kca")
}

/// Why the append-only file could not be opened or loaded.
#[derive(Debug, thiserror::Error)]
pub enum AofError {
    #[error("{path}: {doing}: {source}")]
    Io {
        path: PathBuf,
        doing: &'static str,
        source: io::Error,
    },
    #[error("{0}/manifest: {1}")]
    Manifest(PathBuf, String),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(
        "{path} is damaged at byte {offset} ({reason}); the node will not start on it. \
         Check it with keycafe-check, or start with aof-load-damaged yes to load \
         what comes before the damage"
    )]
    Damaged {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
}

fn io_error(path: &Path, doing: &'static str) -> impl FnOnce(io::Error) -> AofError + use<> {
    let path = path.to_path_buf();
    move |source| AofError::Io {
        path,
        doing,
        source,
    }
}

/// What loading tolerates in the last increment.
#[derive(Debug, Clone, Copy)]
pub struct LoadPolicy {
    /// A torn tail (a crash mid-write) is cut off with a warning: Redis's
    /// `aof-load-truncated`, on by default.
    pub truncated: bool,
    /// Damage a crash cannot explain is cut off too, losing what follows
    /// it: off by default, for when the alternative is no data at all.
    pub damaged: bool,
}

thread_local! {
    /// Where the last change made on this thread ends in the file: what
    /// the batch of replies being made on this thread waits for (see
    /// [`AppendOnly::durable_at`]).
    static APPENDED_HERE: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// The appending side, shared by the store's feed, the writer thread and the
/// connections that wait for the disk.
pub struct AppendOnly {
    listening: AtomicBool,
    pending: Mutex<Pending>,
    /// Wakes the writer when there is something to write.
    wake: Condvar,
    /// Bytes appended to the buffer since start: the offset a batch of
    /// replies waits for.
    appended: AtomicU64,
    /// Bytes on disk (and synced, under `always`).
    durable: watch::Sender<u64>,
    fsync: AtomicU8,
    /// A write error not yet overcome: writes are refused meanwhile.
    failing: AtomicBool,
    status: Mutex<Status>,
    dir: PathBuf,
    /// The writer thread, joined by [`AppendOnly::stop`].
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

#[derive(Default)]
struct Pending {
    buf: BytesMut,
    /// `buf[..whole]` ends outside any transaction: what may be written.
    whole: usize,
    in_transaction: bool,
    /// The writer sleeps and must be woken for new bytes.
    writer_idle: bool,
    /// `BGREWRITEAOF` asked for, not yet started.
    rewrite: bool,
    stop: bool,
}

/// For INFO persistence.
#[derive(Debug, Clone, Default)]
pub struct Status {
    pub manifest: Option<Manifest>,
    pub base_size: u64,
    /// Bytes in the increments.
    pub increments_size: u64,
    pub last_write_error: Option<String>,
    pub rewrite_in_progress: bool,
    pub rewrites: u64,
    pub last_rewrite_ok: bool,
    pub last_rewrite_secs: Option<u64>,
    /// Syncs that took a second or more.
    pub slow_syncs: u64,
}

impl AppendOnly {
    /// Opens (or creates) the append-only file in `dir`, loading its parts
    /// into `store` first if there are any. A new file starts with a base
    /// holding what `store` has now (what a snapshot loaded, say). Then
    /// starts the writer thread, appending every change from now on.
    pub fn start(
        dir: &Path,
        store: Arc<Store>,
        recorder: Arc<Recorder>,
        aof: Arc<AppendOnly>,
        policy: LoadPolicy,
    ) -> Result<(), AofError> {
        let opened = match read_manifest(dir)? {
            Some(manifest) => {
                let (file, len) = load(dir, &manifest, &store, policy)?;
                aof.listen();
                (manifest, file, len)
            }
            // Listening before the base is taken: a change made while it is
            // written is in the increment too.
            None => {
                aof.listen();
                create(dir, &store, &recorder).inspect_err(|_| aof.deafen())?
            }
        };
        aof.run_writer(dir, opened, store, recorder)
    }

    /// Starts a new append-only file from what `store` holds now, while the
    /// node serves (`CONFIG SET appendonly yes`): the parts of an earlier
    /// one are removed first, since they miss the changes made while it was
    /// off.
    pub fn start_fresh(
        dir: &Path,
        store: Arc<Store>,
        recorder: Arc<Recorder>,
        aof: Arc<AppendOnly>,
    ) -> Result<(), AofError> {
        aof.listen();
        let opened = remove_parts(dir)
            .and_then(|()| create(dir, &store, &recorder))
            .inspect_err(|_| aof.deafen())?;
        aof.run_writer(dir, opened, store, recorder)
    }

    /// Starts hearing changes, with an empty buffer.
    fn listen(&self) {
        *self.lock() = Pending::default();
        self.listening.store(true, Ordering::SeqCst);
    }

    fn deafen(&self) {
        self.listening.store(false, Ordering::SeqCst);
    }

    /// Starts the writer thread on the last increment of `manifest`.
    fn run_writer(
        self: Arc<Self>,
        dir: &Path,
        (manifest, file, len): (Manifest, File, u64),
        store: Arc<Store>,
        recorder: Arc<Recorder>,
    ) -> Result<(), AofError> {
        let aof = self;
        let base_size = size_of(&dir.join(base_name(manifest.base)));
        let increments_size = manifest
            .increments
            .iter()
            .map(|&n| size_of(&dir.join(incr_name(n))))
            .sum();
        {
            let mut status = aof.status();
            status.manifest = Some(manifest.clone());
            status.base_size = base_size;
            status.increments_size = increments_size;
            status.last_rewrite_ok = true;
        }
        let writer = Writer {
            aof: aof.clone(),
            store,
            recorder,
            manifest,
            file,
            len,
            last_sync: Instant::now(),
            written: 0,
            synced: 0,
            busy: false,
            rewriting: None,
        };
        let handle = std::thread::Builder::new()
            .name("aof-writer".to_string())
            .spawn(move || writer.run())
            .inspect_err(|_| aof.deafen())
            .map_err(io_error(dir, "starting the writer thread"))?;
        *aof.writer.lock().unwrap_or_else(PoisonError::into_inner) = Some(handle);
        Ok(())
    }

    /// A subscriber that listens once [`AppendOnly::start`] has run.
    pub fn new(dir: PathBuf, fsync: Fsync) -> AppendOnly {
        AppendOnly {
            listening: AtomicBool::new(false),
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            appended: AtomicU64::new(0),
            durable: watch::Sender::new(0),
            fsync: AtomicU8::new(fsync.as_u8()),
            failing: AtomicBool::new(false),
            status: Mutex::new(Status::default()),
            dir,
            writer: Mutex::new(None),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn status(&self) -> MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn fsync(&self) -> Fsync {
        Fsync::from_u8(self.fsync.load(Ordering::Relaxed))
    }

    pub fn set_fsync(&self, fsync: Fsync) {
        self.fsync.store(fsync.as_u8(), Ordering::Relaxed);
        self.nudge();
    }

    /// True while a write error keeps the node from persisting changes.
    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    /// Under `always`, the offset the replies of a batch that ended now
    /// (on this thread) must wait for, if the disk is not there yet.
    ///
    /// A batch that changed nothing waits too if another connection's
    /// change is still on its way to disk: it may have read that change.
    /// Except while the disk refuses writes: then only a batch's own
    /// changes hold its replies back, so that reads and refusals are
    /// answered (and may show a change whose writer is still waiting).
    pub fn durable_at(&self) -> Option<u64> {
        let own = APPENDED_HERE.replace(0);
        if self.fsync() != Fsync::Always || !self.listening.load(Ordering::Relaxed) {
            return None;
        }
        let target = match self.is_failing() {
            true => own,
            false => self.appended.load(Ordering::Acquire),
        };
        (*self.durable.borrow() < target).then_some(target)
    }

    /// Waits until `offset` bytes are on disk. The future holds nothing
    /// borrowed, so a connection can await it while it watches its socket.
    pub fn wait_durable(&self, offset: u64) -> impl Future<Output = ()> + Send + 'static {
        let mut durable = self.durable.subscribe();
        async move {
            // Ends early only if the writer is gone: the node is stopping.
            let _ = durable.wait_for(|&on_disk| on_disk >= offset).await;
        }
    }

    /// Asks the writer for a rewrite; false if one is under way already.
    pub fn request_rewrite(&self) -> bool {
        if self.status().rewrite_in_progress {
            return false;
        }
        self.lock().rewrite = true;
        self.nudge();
        true
    }

    /// Writes and syncs what is pending, then stops the writer and waits
    /// for it (shutdown). Changes made after this are not appended.
    pub fn stop(&self) {
        self.listening.store(false, Ordering::SeqCst);
        self.lock().stop = true;
        self.nudge();
        let writer = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(writer) = writer {
            let _ = writer.join();
        }
    }

    /// Wakes the writer (a setting changed, or a request came).
    fn nudge(&self) {
        self.wake.notify_all();
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Subscriber for AppendOnly {
    fn is_listening(&self) -> bool {
        self.listening.load(Ordering::Relaxed)
    }

    fn on_change(&self, change: Change<'_>) {
        let mut pending = self.lock();
        let before = pending.buf.len();
        records::encode(change, &mut pending.buf);
        match change {
            Change::Begin => pending.in_transaction = true,
            Change::Commit => pending.in_transaction = false,
            _ => {}
        }
        if !pending.in_transaction {
            pending.whole = pending.buf.len();
        }
        let added = (pending.buf.len() - before) as u64;
        let appended = self.appended.fetch_add(added, Ordering::Release) + added;
        APPENDED_HERE.set(appended);
        let wake = std::mem::take(&mut pending.writer_idle) && pending.whole > 0;
        drop(pending);
        if wake {
            self.wake.notify_one();
        }
    }
}

/// The writer thread's state.
struct Writer {
    aof: Arc<AppendOnly>,
    store: Arc<Store>,
    recorder: Arc<Recorder>,
    manifest: Manifest,
    /// The last increment, open for appending.
    file: File,
    /// Its length up to the end of the last block written whole.
    len: u64,
    last_sync: Instant,
    /// The offset written to the file so far, and synced so far.
    written: u64,
    synced: u64,
    /// The last look found something to write.
    busy: bool,
    /// The base being written by a rewrite, and its thread.
    rewriting: Option<std::thread::JoinHandle<io::Result<u64>>>,
}

/// How long the writer sleeps with nothing to do.
const IDLE: Duration = Duration::from_millis(100);
/// How often the writer looks in on a rewrite.
const REWRITE_POLL: Duration = Duration::from_millis(10);
/// A sync that takes this long is logged (and counted in INFO as
/// `aof_delayed_fsync`).
const SLOW_SYNC: Duration = Duration::from_secs(1);
/// How long a writer that just wrote waits before it writes again, under
/// `everysec` and `no`.
const NAP: Duration = Duration::from_millis(1);

impl Writer {
    fn run(mut self) {
        let mut unwritten = BytesMut::new();
        loop {
            let (stop, rewrite, taken) = self.take(&mut unwritten);
            if !unwritten.is_empty() && self.write(&mut unwritten) {
                self.written = taken;
            }
            self.sync_as_asked();
            if rewrite && unwritten.is_empty() {
                self.start_rewrite();
            }
            self.finish_rewrite_if_done();
            if stop {
                if !unwritten.is_empty() {
                    error!(
                        bytes = unwritten.len(),
                        "stopping with changes the append-only file could not take"
                    );
                }
                self.sync_now();
                info!("append-only file synced and closed");
                return;
            }
        }
    }

    /// Waits for something to do, then moves the bytes that may be written
    /// to `out`. Returns whether to stop, whether to start a rewrite, and
    /// the offset that will be written once `out` is.
    fn take(&mut self, out: &mut BytesMut) -> (bool, bool, u64) {
        let aof = &self.aof;
        // Under `everysec` and `no`, a writer that just wrote naps a moment
        // before it looks again, unwoken, so that a stream of small batches
        // becomes a few larger writes (as Redis writes once per turn of its
        // event loop). Under `always` the next write starts at once: its
        // clients are waiting for it.
        let nap = self.busy && aof.fsync() != Fsync::Always;
        let wait = match (&self.rewriting, nap) {
            // While a rewrite runs, look in on it often.
            (Some(_), _) => REWRITE_POLL,
            (None, true) => NAP,
            (None, false) => IDLE,
        };
        let deadline = Instant::now() + wait;
        let mut pending = aof.lock();
        while (nap || pending.whole == 0) && !pending.stop && !pending.rewrite && out.is_empty() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            pending.writer_idle = !nap;
            pending = aof
                .wake
                .wait_timeout(pending, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        pending.writer_idle = false;
        let whole = std::mem::take(&mut pending.whole);
        out.extend_from_slice(&pending.buf.split_to(whole));
        // Every byte appended and no longer in the buffer is in `out` or on
        // disk: once `out` is written, this much is.
        let taken = aof.appended.load(Ordering::Acquire) - pending.buf.len() as u64;
        let rewrite = std::mem::take(&mut pending.rewrite);
        self.busy = !out.is_empty();
        (pending.stop, rewrite, taken)
    }

    /// Writes `bytes` as one block; on success empties it, on failure keeps
    /// it for the next try, cuts the file back to its last whole block and
    /// waits a second. True if it was written.
    fn write(&mut self, bytes: &mut BytesMut) -> bool {
        let mut block = Vec::with_capacity(bytes.len() + format::BLOCK_HEADER_LEN);
        // Blocks are at most 1 GiB; what gathers between two writes of a
        // thread that writes all the time never comes near that.
        let encoded = format::encode_block(bytes, &mut block);
        let result = encoded
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err.to_string()))
            .and_then(|()| self.file.write_all(&block));
        match result {
            Ok(()) => {
                self.len += block.len() as u64;
                self.aof.status().increments_size += block.len() as u64;
                bytes.clear();
                if self.aof.failing.swap(false, Ordering::Relaxed) {
                    info!("the append-only file can be written again; writes are accepted");
                    self.aof.status().last_write_error = None;
                }
                true
            }
            Err(err) => {
                if !self.aof.failing.swap(true, Ordering::Relaxed) {
                    error!(%err, "writing the append-only file failed; refusing writes until it works again");
                }
                self.aof.status().last_write_error = Some(err.to_string());
                // Cut off whatever part of the block reached the file.
                if let Err(err) = self.file.set_len(self.len) {
                    warn!(%err, "could not cut the append-only file back to its last whole block");
                }
                std::thread::sleep(Duration::from_secs(1));
                false
            }
        }
    }

    /// Syncs what is written if `appendfsync` asks for it now: under
    /// `always` whenever something is unsynced, under `everysec` once a
    /// second.
    fn sync_as_asked(&mut self) {
        let due = match self.aof.fsync() {
            Fsync::Always => true,
            Fsync::Everysec => self.last_sync.elapsed() >= Duration::from_secs(1),
            Fsync::No => false,
        };
        if due && self.synced < self.written {
            self.sync_now();
        }
    }

    /// Syncs the file and tells waiting replies; a failure stops the node
    /// (see the module docs).
    fn sync_now(&mut self) {
        let started = Instant::now();
        let synced = self.file.sync_data();
        let took = started.elapsed();
        if took >= SLOW_SYNC {
            // A sync waits for whatever else the file system must write
            // first (another program's writes, on ext4): replies waiting
            // under `always` wait that long too.
            warn!(
                ms = took.as_millis() as u64,
                written = self.written,
                "syncing the append-only file was slow"
            );
            self.aof.status().slow_syncs += 1;
        }
        if let Err(err) = synced {
            error!(%err, "syncing the append-only file failed; stopping, since the kernel may have dropped unwritten data");
            std::process::exit(1);
        }
        self.last_sync = Instant::now();
        self.synced = self.written;
        self.aof.durable.send_replace(self.synced);
    }

    /// Starts a new increment, names it in the manifest beside the old
    /// parts, and writes a new base in another thread.
    fn start_rewrite(&mut self) {
        if self.rewriting.is_some() {
            return;
        }
        self.sync_now();
        let dir = self.aof.dir.clone();
        let next = self.manifest.last().max(self.manifest.base) + 1;
        let file = match new_increment(&dir, next) {
            Ok(file) => file,
            Err(err) => {
                error!(%err, "could not start an append-only file rewrite");
                let mut status = self.aof.status();
                status.last_rewrite_ok = false;
                return;
            }
        };
        let mut manifest = self.manifest.clone();
        manifest.increments.push(next);
        if let Err(err) = write_manifest(&dir, &manifest) {
            error!(%err, "could not start an append-only file rewrite");
            let _ = fs::remove_file(dir.join(incr_name(next)));
            self.aof.status().last_rewrite_ok = false;
            return;
        }
        self.manifest = manifest;
        self.file = file;
        self.len = format::HEADER_LEN as u64;
        {
            let mut status = self.aof.status();
            status.rewrite_in_progress = true;
            status.manifest = Some(self.manifest.clone());
        }
        info!(base = next, "append-only file rewrite started");
        let (store, recorder) = (self.store.clone(), self.recorder.clone());
        let path = dir.join(base_name(next));
        let spawned = std::thread::Builder::new()
            .name("aof-rewrite".to_string())
            .spawn(move || {
                snapshot::background_priority();
                snapshot::write(&store, &recorder, &path, next).map(|w| w.bytes)
            });
        match spawned {
            Ok(handle) => self.rewriting = Some(handle),
            Err(err) => {
                error!(%err, "could not start the rewrite thread");
                self.aof.status().rewrite_in_progress = false;
            }
        }
    }

    /// Once the new base is written: the manifest names it and the newest
    /// increment only, and the old parts go.
    fn finish_rewrite_if_done(&mut self) {
        if !self.rewriting.as_ref().is_some_and(|h| h.is_finished()) {
            return;
        }
        let handle = self.rewriting.take().expect("checked above");
        let next = self.manifest.last();
        let dir = self.aof.dir.clone();
        let result = handle
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the rewrite thread panicked")));
        let mut status = self.aof.status();
        status.rewrite_in_progress = false;
        status.rewrites += 1;
        let base_size = match result {
            Ok(size) => size,
            Err(err) => {
                error!(%err, "append-only file rewrite failed; the old parts stay");
                status.last_rewrite_ok = false;
                return;
            }
        };
        let old = self.manifest.clone();
        let manifest = Manifest {
            base: next,
            increments: vec![next],
        };
        if let Err(err) = write_manifest(&dir, &manifest) {
            error!(%err, "could not switch to the rewritten append-only file");
            status.last_rewrite_ok = false;
            return;
        }
        for part in std::iter::once(base_name(old.base)).chain(
            old.increments
                .iter()
                .filter(|&&n| n != next)
                .map(|&n| incr_name(n)),
        ) {
            if let Err(err) = fs::remove_file(dir.join(&part)) {
                warn!(%err, part, "could not remove an old append-only part");
            }
        }
        self.manifest = manifest.clone();
        status.manifest = Some(manifest);
        status.base_size = base_size;
        status.increments_size = self.len;
        status.last_rewrite_ok = true;
        info!(
            base = next,
            bytes = base_size,
            "append-only file rewrite done"
        );
    }
}

fn size_of(path: &Path) -> u64 {
    fs::metadata(path).map_or(0, |m| m.len())
}

/// The manifest in `dir`, if there is one.
fn read_manifest(dir: &Path) -> Result<Option<Manifest>, AofError> {
    let path = dir.join(MANIFEST);
    match fs::read_to_string(&path) {
        Ok(text) => Manifest::parse(&text)
            .map(Some)
            .map_err(|reason| AofError::Manifest(dir.to_path_buf(), reason)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(io_error(&path, "reading")(err)),
    }
}

/// Removes the manifest, then every part: what an earlier append-only
/// file left.
fn remove_parts(dir: &Path) -> Result<(), AofError> {
    let manifest = dir.join(MANIFEST);
    match fs::remove_file(&manifest) {
        Ok(()) => super::atomic::sync_parent(&manifest).map_err(io_error(dir, "syncing"))?,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(io_error(&manifest, "removing")(err)),
    }
    let entries = fs::read_dir(dir).map_err(io_error(dir, "listing"))?;
    for entry in entries {
        let path = entry.map_err(io_error(dir, "listing"))?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with("base.") || name.starts_with("incr.") {
            fs::remove_file(&path).map_err(io_error(&path, "removing"))?;
        }
    }
    Ok(())
}

fn write_manifest(dir: &Path, manifest: &Manifest) -> io::Result<()> {
    write_atomically(dir.join(MANIFEST), manifest.text().as_bytes())
}

/// Creates `incr.<n>.kca` with its header, synced, and opens it for
/// appending.
fn new_increment(dir: &Path, n: u64) -> io::Result<File> {
    let path = dir.join(incr_name(n));
    let mut file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)?;
    let mut header = Vec::new();
    format::encode_header(
        Kind::AppendOnly,
        HeaderFields {
            created_ms: now_ms(),
            sequence: n,
        },
        &mut header,
    );
    file.write_all(&header)?;
    file.sync_all()?;
    super::atomic::sync_parent(&path)?;
    Ok(file)
}

/// A new append-only file: a base of what `store` holds now, an empty
/// increment, then the manifest naming them (the last step: until it
/// exists, a crash leaves no append-only file at all).
fn create(
    dir: &Path,
    store: &Store,
    recorder: &Recorder,
) -> Result<(Manifest, File, u64), AofError> {
    let base = dir.join(base_name(1));
    snapshot::write(store, recorder, &base, 1).map_err(io_error(&base, "writing the base"))?;
    let incr = dir.join(incr_name(1));
    // A leftover increment without a manifest holds nothing the base lacks.
    if let Err(err) = fs::remove_file(&incr)
        && err.kind() != io::ErrorKind::NotFound
    {
        return Err(io_error(&incr, "removing")(err));
    }
    let file = new_increment(dir, 1).map_err(io_error(&incr, "creating"))?;
    let manifest = Manifest {
        base: 1,
        increments: vec![1],
    };
    write_manifest(dir, &manifest).map_err(io_error(dir, "writing the manifest"))?;
    info!(dir = %dir.display(), "append-only file created");
    Ok((manifest, file, format::HEADER_LEN as u64))
}

/// Loads the parts `manifest` names into `store`. Returns the last
/// increment opened for appending, and its length (cut back to its last
/// whole block if its tail was torn).
fn load(
    dir: &Path,
    manifest: &Manifest,
    store: &Store,
    policy: LoadPolicy,
) -> Result<(File, u64), AofError> {
    let base = dir.join(base_name(manifest.base));
    let loaded = snapshot::load(store, &base)?;
    info!(path = %base.display(), bytes = loaded.bytes, "loaded the append-only file's base");
    let last = manifest.last();
    for &n in &manifest.increments {
        let path = dir.join(incr_name(n));
        let file = File::open(&path).map_err(io_error(&path, "opening"))?;
        let mut reader =
            Reader::of_kind(file, Kind::AppendOnly).map_err(|source| LoadError::Format {
                path: path.display().to_string(),
                source,
            })?;
        let (loaded, result) = snapshot::apply_blocks(store, &mut reader, &path);
        let valid = reader.valid_len();
        match result {
            Ok(()) => {}
            Err(LoadError::Format {
                source: FormatError::Truncated { offset },
                ..
            }) if n == last && policy.truncated => {
                warn!(path = %path.display(), offset, "the append-only file's last block was torn (a crash while writing); cutting it off");
                cut(&path, valid)?;
            }
            Err(err) if n == last && policy.damaged => {
                warn!(path = %path.display(), %err, offset = valid, "the append-only file is damaged; loading what comes before the damage, as aof-load-damaged asks");
                cut(&path, valid)?;
            }
            Err(err) => {
                let offset = match &err {
                    LoadError::Format { source, .. } => source.offset(),
                    LoadError::Record { offset, .. } => *offset,
                    _ => valid,
                };
                return Err(AofError::Damaged {
                    path,
                    offset,
                    reason: err.to_string(),
                });
            }
        }
        info!(path = %path.display(), blocks = loaded.blocks, "loaded an append-only increment");
    }
    let path = dir.join(incr_name(last));
    let file = OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(io_error(&path, "opening for appending"))?;
    let len = size_of(&path);
    Ok((file, len))
}

/// Cuts the file at `path` to `len` bytes, durably.
fn cut(path: &Path, len: u64) -> Result<(), AofError> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_error(path, "opening to cut"))?;
    file.set_len(len).map_err(io_error(path, "cutting"))?;
    file.sync_all().map_err(io_error(path, "syncing"))
}

#[cfg(test)]
mod tests;
