//! The Raft log, hard state and snapshot of one coordinator, on disk.
//!
//! Raft is only as safe as its storage: a member that acknowledges an entry
//! or grants a vote and then forgets it after a crash can let two leaders
//! commit different entries at one index. So [`RaftLog::persist`] writes
//! what a `Ready` asks for and fsyncs it *before* the driver sends the
//! messages that depend on it, and everything read back at start-up is
//! checked.
//!
//! # Memory and disk
//!
//! Reads come from memory: `raft`'s own `MemStorage`, which answers the
//! [`Storage`] questions (`term`, `entries`, first and last index) the way
//! `raft` expects, is well tested upstream, and is kept small by
//! compaction. This module adds what `MemStorage` lacks: every change is
//! written and fsynced first, then made in memory, so memory never holds
//! what the disk could lose; and the latest snapshot is kept with its data,
//! to send to a member that is too far behind.
//!
//! # Files
//!
//! In the directory given to [`RaftLog::open`] (the coordinator's
//! `data_dir/raft/`):
//!
//! - `log`: a write-ahead log of checksummed records, each a hard state or
//!   an entry that replaces every entry from its index on (`log/record.rs`
//!   has the bytes). [`RaftLog::persist`] appends to it and fsyncs once per
//!   call.
//! - `snapshot`: the latest snapshot. It and every rewrite of `log` are
//!   written to a temporary file, fsynced, renamed into place, and the
//!   directory fsynced, so a crash leaves the old file or the new one.
//!
//! [`RaftLog::compact`] and [`RaftLog::apply_snapshot`] replace the snapshot
//! first and rewrite the log after it. A crash between the two leaves a new
//! snapshot beside the old log; loading reconciles them as Raft itself
//! would: entries up to the snapshot are dropped, and entries after it are
//! kept only if the log agrees with the snapshot about the snapshot's own
//! entry (a compaction that did not finish), or else dropped as a log the
//! snapshot replaced.
//!
//! # Starting a group
//!
//! A new group starts from a snapshot at index 1, term 1, whose metadata
//! names the first voters, and no entries: every founding member opens
//! with the same voters. A member that joins later starts empty, and since
//! the log before index 2 exists only as that snapshot, the leader has to
//! send it a snapshot, which tells it the voters. (Starting at index 0, as
//! `MemStorage::new_with_conf_state` does, the leader would send a joining
//! member the entries from 1 on instead, and it would never learn the
//! founding voters.) The bootstrap snapshot's data is empty: nothing has
//! been decided yet.
//!
//! # Failures
//!
//! A write that fails is cut back off the log so that the next one follows
//! a whole record, and an error is returned. If the disk may now hold
//! something memory does not (a failed fsync, a failed cut, a snapshot
//! installed on disk but not in memory), the log refuses every later write:
//! the member must restart and reload what the disk really holds.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use raft::prelude::{ConfState, Entry, HardState, Snapshot};
use raft::storage::MemStorage;
use raft::{GetEntriesContext, RaftState, Storage, StorageError};
use tracing::warn;

mod load;
mod record;
#[cfg(test)]
mod tests;

use load::Loaded;

const LOG_FILE: &str = "log";
const LOG_TEMP: &str = "log.tmp";
const SNAPSHOT_FILE: &str = "snapshot";
const SNAPSHOT_TEMP: &str = "snapshot.tmp";

/// The index and term of a new group's first snapshot (see the module
/// docs, "Starting a group").
const BOOTSTRAP_INDEX: u64 = 1;
const BOOTSTRAP_TERM: u64 = 1;

/// The Raft log, hard state and snapshot of one member, durable, and the
/// [`Storage`] that its `raft::RawNode` reads.
pub struct RaftLog {
    dir: PathBuf,
    /// The log file, opened for appending.
    file: File,
    /// The bytes of the log file that hold whole records.
    len: u64,
    /// What the disk holds, for reading.
    memory: MemStorage,
    /// The snapshot the log starts after, with its data (index 0: none).
    snapshot: Snapshot,
    /// Set when the disk may hold what memory does not: writes are refused.
    broken: bool,
}

/// What [`RaftLog::open`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    pub start: Start,
    /// The index of the snapshot the log starts after (0: none).
    pub snapshot_index: u64,
    pub last_index: u64,
    /// The term and commit index of the hard state.
    pub term: u64,
    pub commit: u64,
    /// The offset at which a torn last record was cut off (a crash in the
    /// middle of a write), if one was.
    pub torn_tail: Option<u64>,
}

/// How a member's log began at [`RaftLog::open`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The directory was empty; a new group was started with the given voters.
    Bootstrapped,
    /// The directory was empty; the member waits for a leader to send it
    /// a snapshot.
    Joining,
    /// An existing log was loaded.
    Restarted,
}

impl RaftLog {
    /// Opens the log in `dir`, creating the directory if needed.
    ///
    /// An empty directory starts a new group with the voters of `bootstrap`,
    /// or, without it, an empty member that joins an existing group. An
    /// existing log is loaded whatever `bootstrap` says. A torn last record
    /// is cut off with a warning; any other damage is an error naming the
    /// file and the offset.
    pub fn open(dir: &Path, bootstrap: Option<ConfState>) -> anyhow::Result<(RaftLog, Recovery)> {
        fs::create_dir_all(dir)
            .with_context(|| format!("creating the raft directory {}", dir.display()))?;
        remove_leftover(dir, LOG_TEMP)?;
        remove_leftover(dir, SNAPSHOT_TEMP)?;
        let found_log = exists(&dir.join(LOG_FILE))?;
        let found_snapshot = exists(&dir.join(SNAPSHOT_FILE))?;
        let loaded = match (found_log, found_snapshot) {
            (false, false) => load::create(dir, bootstrap)?,
            _ => load::load(dir, found_log, found_snapshot)?,
        };
        RaftLog::from_loaded(dir, loaded)
    }

    /// Writes what a `Ready` asks to persist (entries, which replace any
    /// from the first one's index on, and the hard state), fsyncs once, then
    /// updates memory. An empty call does nothing.
    pub fn persist(&mut self, entries: &[Entry], hard_state: Option<&HardState>) -> io::Result<()> {
        if entries.is_empty() && hard_state.is_none() {
            return Ok(());
        }
        self.check_usable()?;
        self.check_append(entries, hard_state)?;
        let mut bytes = Vec::new();
        for entry in entries {
            record::push_entry(&mut bytes, entry)?;
        }
        if let Some(hard_state) = hard_state {
            record::push_hard_state(&mut bytes, hard_state)?;
        }
        self.append_durably(&bytes)?;
        let mut memory = self.memory.wl();
        memory.append(entries).map_err(raft_error)?;
        if let Some(hard_state) = hard_state {
            memory.set_hardstate(hard_state.clone());
        }
        Ok(())
    }

    /// Installs a snapshot from the leader: written durably, the log
    /// restarted after it (entries dropped, the commit index moved up to it).
    pub fn apply_snapshot(&mut self, snapshot: Snapshot) -> io::Result<()> {
        self.check_usable()?;
        let meta = snapshot.get_metadata();
        if snapshot.is_empty() || meta.index < self.first_index_now() {
            return Err(invalid(format!(
                "a snapshot at index {} is older than the log, which starts at {}",
                meta.index,
                self.first_index_now()
            )));
        }
        let mut hard_state = self.hard_state();
        hard_state.term = hard_state.term.max(meta.term);
        hard_state.commit = hard_state.commit.max(meta.index);
        // Until disk and memory both hold the snapshot, they may disagree.
        self.broken = true;
        self.write_snapshot(&snapshot)?;
        self.rewrite_log(&hard_state, &[])?;
        {
            let mut memory = self.memory.wl();
            memory
                .apply_snapshot(metadata_only(&snapshot))
                .map_err(raft_error)?;
            memory.set_hardstate(hard_state);
        }
        self.snapshot = snapshot;
        self.broken = false;
        Ok(())
    }

    /// Snapshots our own state at `applied` (which the caller has applied,
    /// with `data` its serialised state and `conf_state` the voters then):
    /// written durably, the entries up to it dropped, and the log file
    /// rewritten with only what follows, so that it does not grow for ever.
    /// Compacting at or below the current snapshot does nothing.
    pub fn compact(
        &mut self,
        applied: u64,
        data: Vec<u8>,
        conf_state: ConfState,
    ) -> io::Result<()> {
        self.check_usable()?;
        let snapshot_index = self.snapshot.get_metadata().index;
        if applied <= snapshot_index {
            return Ok(());
        }
        let last = self.last_index_now();
        if applied > last {
            return Err(invalid(format!(
                "cannot compact at {applied}: the log ends at {last}"
            )));
        }
        let term = self.memory.term(applied).map_err(raft_error)?;
        let kept = self.entries_after(applied)?;
        let mut hard_state = self.hard_state();
        hard_state.commit = hard_state.commit.max(applied);
        let mut snapshot = Snapshot {
            data: data.into(),
            ..Snapshot::default()
        };
        let meta = snapshot.mut_metadata();
        meta.index = applied;
        meta.term = term;
        meta.set_conf_state(conf_state);

        // Until the log is rewritten, the old one still holds the snapshot's
        // entry with its term: the new snapshot and the old log load as they
        // are (see the module docs), and appends may go on to the old log.
        self.write_snapshot(&snapshot)?;
        self.rewrite_log(&hard_state, &kept)?;
        {
            let mut memory = self.memory.wl();
            memory
                .apply_snapshot(metadata_only(&snapshot))
                .map_err(raft_error)?;
            memory.append(&kept).map_err(raft_error)?;
            memory.set_hardstate(hard_state);
        }
        self.snapshot = snapshot;
        Ok(())
    }

    /// The term, vote and commit index last persisted.
    pub fn hard_state(&self) -> HardState {
        self.memory.rl().hard_state().clone()
    }

    /// The voters as of the latest snapshot: where a restart begins.
    /// `ConfChange` entries after it are the driver's to apply on top.
    pub fn conf_state(&self) -> ConfState {
        self.memory
            .initial_state()
            .map(|state| state.conf_state)
            .unwrap_or_default()
    }

    /// The snapshot the log starts after, with its data; index 0 if there is
    /// none (a member that has not joined yet). The driver restores its
    /// state from it at start-up.
    pub fn last_snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    fn from_loaded(dir: &Path, loaded: Loaded) -> anyhow::Result<(RaftLog, Recovery)> {
        let memory = MemStorage::new();
        {
            let mut core = memory.wl();
            if !loaded.snapshot.is_empty() {
                core.apply_snapshot(metadata_only(&loaded.snapshot))
                    .map_err(|err| anyhow!("restoring the raft snapshot in memory: {err}"))?;
            }
            core.append(&loaded.entries)
                .map_err(|err| anyhow!("restoring the raft log in memory: {err}"))?;
            core.set_hardstate(loaded.hard_state.clone());
        }
        let path = dir.join(LOG_FILE);
        let file = open_for_append(&path)
            .with_context(|| format!("opening the raft log {}", path.display()))?;
        let len = file
            .metadata()
            .with_context(|| format!("reading the size of {}", path.display()))?
            .len();
        let log = RaftLog {
            dir: dir.to_path_buf(),
            file,
            len,
            memory,
            snapshot: loaded.snapshot,
            broken: false,
        };
        let recovery = Recovery {
            start: loaded.start,
            snapshot_index: log.snapshot.get_metadata().index,
            last_index: log.last_index_now(),
            term: loaded.hard_state.term,
            commit: loaded.hard_state.commit,
            torn_tail: loaded.torn_at,
        };
        Ok((log, recovery))
    }

    fn check_usable(&self) -> io::Result<()> {
        if !self.broken {
            return Ok(());
        }
        Err(io::Error::other(format!(
            "the raft log in {} failed to write earlier and may differ from what is on disk; \
             restart the coordinator to reload it",
            self.dir.display()
        )))
    }

    /// Refuses what would make memory panic or the log unloadable: entries
    /// that leave a gap or reach below the snapshot, a commit past the end.
    fn check_append(&self, entries: &[Entry], hard_state: Option<&HardState>) -> io::Result<()> {
        let (first, last) = (self.first_index_now(), self.last_index_now());
        if let Some(start) = entries.first().map(|entry| entry.index)
            && (start < first || start > last + 1)
        {
            return Err(invalid(format!(
                "entries from {start} do not fit a log of entries {first} to {last}"
            )));
        }
        if let Some(pair) = entries.windows(2).find(|w| w[1].index != w[0].index + 1) {
            return Err(invalid(format!(
                "entry {} follows entry {}",
                pair[1].index, pair[0].index
            )));
        }
        let new_last = entries.last().map_or(last, |entry| entry.index);
        if let Some(hard_state) = hard_state
            && hard_state.commit > new_last
        {
            return Err(invalid(format!(
                "a commit index of {} is past the last entry, {new_last}",
                hard_state.commit
            )));
        }
        Ok(())
    }

    /// Appends `bytes` to the log file and fsyncs it. On failure the file is
    /// cut back to its whole records; if that, or the fsync, failed, the log
    /// is marked broken.
    fn append_durably(&mut self, bytes: &[u8]) -> io::Result<()> {
        let path = self.dir.join(LOG_FILE);
        let written = self.file.write_all(bytes).map_err(at("writing", &path));
        let synced = written.and_then(|()| {
            self.file.sync_data().map_err(|err| {
                // What reached the disk is unknown after a failed fsync.
                self.broken = true;
                at("syncing", &path)(err)
            })
        });
        match synced {
            Ok(()) => {
                self.len += bytes.len() as u64;
                Ok(())
            }
            Err(err) => {
                if self.file.set_len(self.len).is_err() {
                    self.broken = true;
                }
                Err(err)
            }
        }
    }

    fn write_snapshot(&self, snapshot: &Snapshot) -> io::Result<()> {
        let bytes = record::encode_snapshot(snapshot)?;
        write_atomically(&self.dir, SNAPSHOT_FILE, SNAPSHOT_TEMP, &bytes)
    }

    /// Replaces the log file with one holding `hard_state` and `entries`,
    /// and appends to the new file from then on.
    fn rewrite_log(&mut self, hard_state: &HardState, entries: &[Entry]) -> io::Result<()> {
        let bytes = record::encode_log(hard_state, entries)?;
        write_temp(&self.dir, LOG_TEMP, &bytes)?;
        // From the rename on, `self.file` may be a replaced file until it is
        // reopened. (Put back after: a caller may hold `broken` set longer.)
        let was_broken = std::mem::replace(&mut self.broken, true);
        install(&self.dir, LOG_TEMP, LOG_FILE)?;
        let path = self.dir.join(LOG_FILE);
        self.file = open_for_append(&path).map_err(at("opening", &path))?;
        self.len = bytes.len() as u64;
        self.broken = was_broken;
        Ok(())
    }

    fn entries_after(&self, index: u64) -> io::Result<Vec<Entry>> {
        let last = self.last_index_now();
        if index >= last {
            return Ok(Vec::new());
        }
        self.memory
            .entries(index + 1, last + 1, None, GetEntriesContext::empty(false))
            .map_err(raft_error)
    }

    fn first_index_now(&self) -> u64 {
        Storage::first_index(&self.memory).unwrap_or(1)
    }

    fn last_index_now(&self) -> u64 {
        Storage::last_index(&self.memory).unwrap_or(0)
    }
}

/// `raft` reads through this. Everything but the snapshot comes from memory.
impl Storage for RaftLog {
    fn initial_state(&self) -> raft::Result<RaftState> {
        self.memory.initial_state()
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.memory.entries(low, high, max_size, context)
    }

    fn term(&self, index: u64) -> raft::Result<u64> {
        self.memory.term(index)
    }

    fn first_index(&self) -> raft::Result<u64> {
        self.memory.first_index()
    }

    fn last_index(&self) -> raft::Result<u64> {
        self.memory.last_index()
    }

    /// The latest snapshot, with its data. (`MemStorage` would make one of
    /// metadata only.) None yet, or one older than asked for: "try later",
    /// which `raft` handles by not sending one now.
    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        let index = self.snapshot.get_metadata().index;
        if index == 0 || index < request_index {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(self.snapshot.clone())
    }
}

/// A snapshot's metadata without its data: what `MemStorage` keeps.
fn metadata_only(snapshot: &Snapshot) -> Snapshot {
    let mut copy = Snapshot::default();
    copy.set_metadata(snapshot.get_metadata().clone());
    copy
}

/// Writes `name` in `dir` so that a crash leaves the old file or the new
/// one: [`write_temp`], then [`install`].
fn write_atomically(dir: &Path, name: &str, temp_name: &str, bytes: &[u8]) -> io::Result<()> {
    write_temp(dir, temp_name, bytes)?;
    install(dir, temp_name, name)
}

/// The first half of an atomic write: the new content in a temporary file,
/// fsynced. A failure leaves the file it is to replace untouched.
fn write_temp(dir: &Path, temp_name: &str, bytes: &[u8]) -> io::Result<()> {
    let temp = dir.join(temp_name);
    let written = File::create(&temp)
        .and_then(|mut file| file.write_all(bytes).and_then(|()| file.sync_all()))
        .map_err(at("writing", &temp));
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written
}

/// The second half: the temporary file renamed over `name`, then the
/// directory fsynced so that the rename lasts. After a failure, which of
/// the two files a crash would leave is unknown.
fn install(dir: &Path, temp_name: &str, name: &str) -> io::Result<()> {
    let path = dir.join(name);
    fs::rename(dir.join(temp_name), &path).map_err(at("renaming into place", &path))?;
    sync_dir(dir)
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(at("syncing directory", dir))
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    // Directories cannot be opened as files here; the rename is as durable
    // as the platform makes it.
    Ok(())
}

fn open_for_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().append(true).open(path)
}

/// Removes a temporary file left by a write that did not finish.
fn remove_leftover(dir: &Path, name: &str) -> anyhow::Result<()> {
    let path = dir.join(name);
    match fs::remove_file(&path) {
        Ok(()) => {
            warn!(path = %path.display(), "removed an unfinished write from an earlier run");
            Ok(())
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err).with_context(|| format!("removing {}", path.display())),
    }
}

fn exists(path: &Path) -> anyhow::Result<bool> {
    path.try_exists()
        .with_context(|| format!("looking for {}", path.display()))
}

/// An I/O error that names what was being done to which file.
fn at(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> io::Error + use<> {
    let path = path.to_path_buf();
    move |err| io::Error::new(err.kind(), format!("{what} {}: {err}", path.display()))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// `MemStorage`'s errors, for callers that speak `io`.
fn raft_error(err: raft::Error) -> io::Error {
    io::Error::other(format!("raft log in memory: {err}"))
}
