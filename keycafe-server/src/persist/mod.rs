//! Persistence: the node's data directory, snapshots and the append-only
//! file. `docs/persistence.md` tells what is guaranteed, under which
//! faults, and why.
//!
//! - [`dir`]: the data directory: its lock, its files, the node's identity.
//! - [`snapshot`]: a point-in-time copy of the keyspace, taken while the
//!   node serves, and loading one.
//! - [`aof`]: the append-only file: appending, syncing, group commit,
//!   rewriting, loading.
//! - [`rules`]: when `save` rules ask for a snapshot.
//! - [`format`](mod@format): the container both kinds of file share: a
//!   header, then checksummed blocks, and a snapshot's end marker; a
//!   streaming reader that tells a torn tail from corruption.
//! - [`atomic`]: writing a file under a temporary name and renaming it into
//!   place, durably.
//! - [`check`]: what `keycafe-check` reports about a file, and its repair.
//!
//! [`Persistence`] ties them together for the node: it is made before the
//! store (its recorders and the append-only file subscribe to the store's
//! change feed), loads the data at start, runs the save rules and
//! background saves, and is stopped last at shutdown.

pub mod aof;
pub mod atomic;
pub mod check;
pub mod dir;
pub mod format;
pub mod rules;
pub mod snapshot;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tracing::{error, info, warn};

use self::aof::{AppendOnly, Fsync, LoadPolicy};
use self::dir::{DataDir, Identity, Source, StoppedAt};
use self::rules::{SaveRules, Schedule};
use self::snapshot::Recorder;
use crate::store::{ChangeFeed, Store, now_ms};

/// A point of the replication history (the log's position at a stop).
pub struct Position {
    pub replid: String,
    pub offset: u64,
}

/// How often the save rules and the rewrite threshold are looked at.
pub const CRON: Duration = Duration::from_millis(100);

/// The settings persistence starts with (`config.rs` reads them).
#[derive(Debug, Clone)]
pub struct Settings {
    pub save: SaveRules,
    pub appendonly: bool,
    pub appendfsync: Fsync,
    pub load: LoadPolicy,
    pub auto_rewrite: AutoRewrite,
}

/// When the append-only file is rewritten without being asked: once its
/// increments are `percentage`% of its base or more, and at least
/// `min_size` bytes (Redis's `auto-aof-rewrite-percentage` and
/// `auto-aof-rewrite-min-size`). A percentage of 0 never.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AutoRewrite {
    pub percentage: u64,
    pub min_size: u64,
}

impl AutoRewrite {
    /// Whether a file of these sizes is due for a rewrite.
    pub fn due(&self, base_size: u64, increments_size: u64) -> bool {
        self.percentage > 0
            && increments_size >= self.min_size
            && increments_size.saturating_mul(100)
                >= base_size.max(1).saturating_mul(self.percentage)
    }
}

/// A node's persistence: everything under its data directory.
pub struct Persistence {
    dir: DataDir,
    /// Records the tail of `BGSAVE`'s snapshots.
    recorder: Arc<Recorder>,
    /// Records the tail of the append-only file's rewrites.
    rewrite_recorder: Arc<Recorder>,
    aof: Arc<AppendOnly>,
    aof_on: AtomicBool,
    /// `CONFIG SET appendonly yes` is making the first base.
    aof_starting: AtomicBool,
    snapshots: Mutex<Snapshots>,
    /// Bumped each time a background save ends, for `SAVE` to wait on.
    saves_done: watch::Sender<u64>,
    /// Refuse writes while the last snapshot failed (Redis's
    /// `stop-writes-on-bgsave-error`).
    snapshot_failing: AtomicBool,
    identity: Mutex<Identity>,
    auto_rewrite: Mutex<AutoRewrite>,
    /// Where [`Persistence::load`] found the data.
    loaded_from: Mutex<Option<Source>>,
}

/// What INFO persistence and LASTSAVE tell of snapshots.
#[derive(Debug, Clone)]
pub struct Snapshots {
    pub rules: SaveRules,
    pub schedule: Schedule,
    /// A background save is under way: the change count it started at.
    pub in_progress: Option<u64>,
    pub started_ms: Option<u64>,
    pub last_ok: bool,
    pub last_secs: Option<u64>,
    pub saves: u64,
    pub last_error: Option<String>,
    /// `BGSAVE SCHEDULE` came during a save: another follows it.
    pub scheduled: bool,
}

/// A failure to set up persistence at start: the node does not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Dir(#[from] dir::DirError),
    #[error("loading {0}")]
    Snapshot(#[from] snapshot::LoadError),
    #[error(transparent)]
    Aof(#[from] aof::AofError),
}

impl Persistence {
    /// Opens the data directory and makes the subscribers; `feed` gains
    /// them. Nothing is loaded yet: see [`Persistence::load`].
    pub fn open(
        path: &Path,
        settings: &Settings,
        feed: ChangeFeed,
    ) -> Result<(Persistence, ChangeFeed, Identity), StartError> {
        let dir = DataDir::open(path)?;
        let identity = match dir.identity()? {
            Some(identity) => identity,
            None => {
                let identity = Identity {
                    id: dir::new_node_id(),
                    epoch: 0,
                    stopped_at: None,
                };
                dir.save_identity(&identity)?;
                identity
            }
        };
        let recorder = Arc::new(Recorder::default());
        let rewrite_recorder = Arc::new(Recorder::default());
        let aof = Arc::new(AppendOnly::new(dir.aof_dir(), settings.appendfsync));
        let feed = feed
            .with(recorder.clone())
            .with(rewrite_recorder.clone())
            .with(aof.clone());
        let persistence = Persistence {
            dir,
            recorder,
            rewrite_recorder,
            aof,
            aof_on: AtomicBool::new(false),
            aof_starting: AtomicBool::new(false),
            snapshots: Mutex::new(Snapshots {
                rules: settings.save.clone(),
                schedule: Schedule::new(now_ms(), 0),
                in_progress: None,
                started_ms: None,
                last_ok: true,
                last_secs: None,
                saves: 0,
                last_error: None,
                scheduled: false,
            }),
            saves_done: watch::Sender::new(0),
            snapshot_failing: AtomicBool::new(false),
            identity: Mutex::new(identity.clone()),
            loaded_from: Mutex::new(None),
            auto_rewrite: Mutex::new(settings.auto_rewrite),
        };
        Ok((persistence, feed, identity))
    }

    /// Loads the data into `store` (the append-only file if it is on, the
    /// snapshot otherwise) and starts the append-only file if it is on.
    /// Blocking: called before the node serves.
    pub fn load(&self, store: &Arc<Store>, settings: &Settings) -> Result<(), StartError> {
        let aof_dir = self.dir.aof_dir();
        let has_aof = aof_dir.join("manifest").exists();
        let mut source = None;
        if !(settings.appendonly && has_aof) {
            let path = self.dir.snapshot_path();
            if path.exists() {
                let loaded = snapshot::load(store, &path)?;
                info!(path = %path.display(), bytes = loaded.bytes, keys = store.len(now_ms()), "loaded the snapshot");
                source = Some(Source::Snapshot);
            }
        }
        if settings.appendonly && has_aof {
            source = Some(Source::AppendOnly);
        }
        *self
            .loaded_from
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = source;
        if settings.appendonly {
            AppendOnly::start(
                &aof_dir,
                store.clone(),
                self.rewrite_recorder.clone(),
                self.aof.clone(),
                settings.load,
            )?;
            self.aof_on.store(true, Ordering::SeqCst);
            info!(keys = store.len(now_ms()), "append-only file on");
        }
        let changes = store.stats().changes;
        self.snapshots().schedule = Schedule::new(now_ms(), changes);
        Ok(())
    }

    pub fn snapshots(&self) -> MutexGuard<'_, Snapshots> {
        self.snapshots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub fn aof(&self) -> Option<&AppendOnly> {
        self.aof_on.load(Ordering::Relaxed).then_some(&*self.aof)
    }

    pub fn dir(&self) -> &DataDir {
        &self.dir
    }

    /// Why writes must be refused now, if they must: the disk cannot take
    /// them (Redis's `MISCONF`). One or two loads.
    pub fn refuses_writes(&self) -> Option<String> {
        if self.aof_on.load(Ordering::Relaxed) && self.aof.is_failing() {
            let error = self.aof.status().last_write_error.clone();
            return Some(format!(
                "MISCONF Errors writing to the AOF file: {}",
                error.unwrap_or_default()
            ));
        }
        if self.snapshot_failing.load(Ordering::Relaxed) {
            return Some(
                "MISCONF Keycafe is configured to save snapshots, but the last one failed. \
                 Commands that may modify the data set are disabled until a snapshot \
                 succeeds (stop-writes-on-bgsave-error). See the node's log for the error."
                    .to_string(),
            );
        }
        None
    }

    /// Starts a background save; an error says why not.
    pub fn bgsave(self: &Arc<Self>, store: &Arc<Store>) -> Result<(), &'static str> {
        let changes = store.stats().changes;
        {
            let mut snapshots = self.snapshots();
            if snapshots.in_progress.is_some() {
                return Err("ERR Background save already in progress");
            }
            snapshots.in_progress = Some(changes);
            snapshots.started_ms = Some(now_ms());
        }
        let (this, store) = (self.clone(), store.clone());
        let spawned = std::thread::Builder::new()
            .name("bgsave".to_string())
            .spawn(move || {
                snapshot::background_priority();
                this.save_now(&store, changes);
            });
        if spawned.is_err() {
            self.snapshots().in_progress = None;
            return Err("ERR could not start a background save thread");
        }
        Ok(())
    }

    /// Writes the snapshot (blocking) and records the outcome.
    fn save_now(&self, store: &Store, changes: u64) {
        let path = self.dir.snapshot_path();
        let result = snapshot::write(store, &self.recorder, &path, 0);
        let now = now_ms();
        let mut snapshots = self.snapshots();
        let started = snapshots.started_ms.take().unwrap_or(now);
        snapshots.in_progress = None;
        snapshots.last_secs = Some(now.saturating_sub(started) / 1000);
        match result {
            Ok(written) => {
                info!(
                    keys = written.keys,
                    bytes = written.bytes,
                    ms = written.micros / 1000,
                    "snapshot saved"
                );
                snapshots.schedule.saved(now, changes);
                snapshots.last_ok = true;
                snapshots.saves += 1;
                snapshots.last_error = None;
                if self.snapshot_failing.swap(false, Ordering::Relaxed) {
                    info!("a snapshot succeeded again; writes are accepted");
                }
            }
            Err(err) => {
                error!(%err, path = %path.display(), "snapshot failed");
                snapshots.schedule.failed(now);
                snapshots.last_ok = false;
                snapshots.last_error = Some(err.to_string());
                if !snapshots.rules.is_empty() {
                    self.snapshot_failing.store(true, Ordering::Relaxed);
                }
            }
        }
        drop(snapshots);
        self.saves_done.send_modify(|n| *n += 1);
    }

    /// `SAVE`: a snapshot now, waiting for it. Returns the error text if it
    /// failed.
    pub async fn save(self: &Arc<Self>, store: &Arc<Store>) -> Result<(), String> {
        let mut done = self.saves_done.subscribe();
        // Wait out a background save already under way, then take ours.
        loop {
            done.borrow_and_update();
            match self.bgsave(store) {
                Ok(()) => break,
                Err(_) => {
                    let _ = done.changed().await;
                }
            }
        }
        let _ = done.changed().await;
        let snapshots = self.snapshots();
        match snapshots.last_ok {
            true => Ok(()),
            false => Err(snapshots.last_error.clone().unwrap_or_default()),
        }
    }

    /// One look at the save rules and the rewrite threshold (every
    /// [`CRON`]).
    pub fn cron(self: &Arc<Self>, store: &Arc<Store>) {
        let changes = store.stats().changes;
        let due = {
            let mut snapshots = self.snapshots();
            let idle = snapshots.in_progress.is_none();
            let scheduled = idle && std::mem::take(&mut snapshots.scheduled);
            idle && (scheduled || snapshots.schedule.due(&snapshots.rules, now_ms(), changes))
        };
        if due {
            info!("save rules (or BGSAVE SCHEDULE) ask for a snapshot");
            let _ = self.bgsave(store);
        }
        if let Some(aof) = self.aof() {
            let (base, increments, busy) = {
                let status = aof.status();
                (
                    status.base_size,
                    status.increments_size,
                    status.rewrite_in_progress,
                )
            };
            if !busy && self.auto_rewrite().due(base, increments) {
                info!(
                    base,
                    increments, "the append-only file has grown; rewriting it"
                );
                aof.request_rewrite();
            }
        }
    }

    /// `CONFIG SET appendonly`: off stops the writer after it has synced
    /// what it holds; on starts a new file from the data as it is, in the
    /// background (the node serves meanwhile, its changes buffered).
    pub fn set_appendonly(self: &Arc<Self>, on: bool, store: &Arc<Store>) -> Result<(), String> {
        if self.aof_starting.load(Ordering::SeqCst) {
            return Err("the append-only file is being started; try again shortly".to_string());
        }
        if on == self.aof_on.load(Ordering::SeqCst) {
            return Ok(());
        }
        if !on {
            self.aof_on.store(false, Ordering::SeqCst);
            self.aof.stop();
            info!("append-only file off");
            return Ok(());
        }
        self.aof_starting.store(true, Ordering::SeqCst);
        let (this, store) = (self.clone(), store.clone());
        let spawned = std::thread::Builder::new()
            .name("aof-start".to_string())
            .spawn(move || {
                let dir = this.dir.aof_dir();
                let recorder = this.rewrite_recorder.clone();
                match AppendOnly::start_fresh(&dir, store, recorder, this.aof.clone()) {
                    Ok(()) => {
                        this.aof_on.store(true, Ordering::SeqCst);
                        info!("append-only file on");
                    }
                    Err(err) => error!(%err, "could not start the append-only file"),
                }
                this.aof_starting.store(false, Ordering::SeqCst);
            });
        if spawned.is_err() {
            self.aof_starting.store(false, Ordering::SeqCst);
            return Err("could not start a thread".to_string());
        }
        Ok(())
    }

    /// Whether the append-only file is on (or being started).
    pub fn appendonly(&self) -> bool {
        self.aof_on.load(Ordering::SeqCst) || self.aof_starting.load(Ordering::SeqCst)
    }

    /// `appendfsync`, whether or not the file is on.
    pub fn appendfsync(&self) -> Fsync {
        self.aof.fsync()
    }

    pub fn set_appendfsync(&self, fsync: Fsync) {
        self.aof.set_fsync(fsync);
    }

    pub fn auto_rewrite(&self) -> AutoRewrite {
        *self
            .auto_rewrite
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub fn set_auto_rewrite(&self, auto_rewrite: AutoRewrite) {
        *self
            .auto_rewrite
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = auto_rewrite;
    }

    /// Records a newly adopted configuration epoch in the identity.
    pub fn note_epoch(&self, epoch: u64) {
        let mut identity = self.identity.lock().unwrap_or_else(PoisonError::into_inner);
        if identity.epoch >= epoch {
            return;
        }
        identity.epoch = epoch;
        if let Err(err) = self.dir.save_identity(&identity) {
            warn!(%err, "could not record the configuration epoch");
        }
    }

    /// At a clean stop: the append-only file synced and closed, a last
    /// snapshot if save rules are set (as Redis does), and the identity
    /// with the replication position the data on disk ends at.
    pub async fn shutdown(self: &Arc<Self>, store: &Arc<Store>, position: Position) {
        let aof_on = self.aof().is_some();
        if let Some(aof) = self.aof() {
            aof.stop();
        }
        let rules = !self.snapshots().rules.is_empty();
        let saved = match rules {
            true => match self.save(store).await {
                Ok(()) => true,
                Err(err) => {
                    error!(%err, "the snapshot at shutdown failed");
                    false
                }
            },
            false => false,
        };
        let source = match (aof_on, saved) {
            (true, _) => Some(Source::AppendOnly),
            (false, true) => Some(Source::Snapshot),
            (false, false) => None,
        };
        if let Some(source) = source {
            let mut identity = self.identity.lock().unwrap_or_else(PoisonError::into_inner);
            identity.stopped_at = Some(StoppedAt {
                replid: position.replid,
                offset: position.offset,
                source,
            });
            if let Err(err) = self.dir.save_identity(&identity) {
                warn!(%err, "could not record where the data stops");
            }
        }
    }

    /// The replication position a clean stop recorded, if the data on disk
    /// is exactly what it says; forgotten on disk from now on, since the
    /// data is about to change.
    pub fn take_stopped_at(&self) -> Option<StoppedAt> {
        let loaded_from = *self
            .loaded_from
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut identity = self.identity.lock().unwrap_or_else(PoisonError::into_inner);
        let stopped = identity.stopped_at.take()?;
        let stopped = (Some(stopped.source) == loaded_from).then_some(stopped);
        if let Err(err) = self.dir.save_identity(&identity) {
            warn!(%err, "could not clear the recorded stop position; not resuming from it");
            return None;
        }
        stopped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewrite_is_due_once_the_increments_outgrow_the_base() {
        let auto = AutoRewrite {
            percentage: 100,
            min_size: 1000,
        };
        assert!(!auto.due(5000, 999), "under the minimum");
        assert!(!auto.due(5000, 4999), "not yet as large as the base");
        assert!(auto.due(5000, 5000));
        assert!(auto.due(10, 1000), "a tiny base: the minimum decides");
        let off = AutoRewrite {
            percentage: 0,
            ..auto
        };
        assert!(!off.due(0, u64::MAX));
    }
}
