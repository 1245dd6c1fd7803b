//! The coordinator's state on disk.
//!
//! One file, `cluster.json` in the data directory, holds the [`Durable`]
//! state (the newest configuration and the nodes asked to leave), wrapped
//! with a format number:
//!
//! ```json
//! {"format": 1, "state": {"config": {"epoch": 7, "nodes": [...], "slots": [...], "migrations": [...]}, "leaving": []}}
//! ```
//!
//! # Atomic replacement
//!
//! [`DataDir::save`] writes `cluster.json.tmp` in the same directory, fsyncs
//! it, renames it over `cluster.json`, and fsyncs the directory so the rename
//! itself is durable. A crash at any point leaves either the old file or the
//! new one, never a mix; a leftover temporary file is only ever a save that
//! did not finish, and is ignored (and removed) on start.
//!
//! A file that exists but does not parse, or breaks the coordinator's
//! invariants ([`crate::state::validate`]), stops the start-up with an error
//! naming the file: starting empty instead would hand every slot out afresh
//! and contradict what the nodes hold.
//!
//! # One coordinator per directory
//!
//! [`DataDir::open`] takes an exclusive lock on `coordinator.lock` for as long
//! as the [`DataDir`] lives (the OS drops it if the process dies), so two
//! coordinators can never write over each other's state.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::error::{Error, Result};
use crate::state::{self, Durable};

const STATE_FILE: &str = "cluster.json";
const TEMP_FILE: &str = "cluster.json.tmp";
const LOCK_FILE: &str = "coordinator.lock";
const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    format: u32,
    state: Durable,
}

/// The coordinator's data directory, locked for this process.
#[derive(Debug)]
pub struct DataDir {
    dir: PathBuf,
    _lock: File,
}

impl DataDir {
    /// Creates the directory if needed and locks it.
    pub fn open(dir: &Path) -> Result<DataDir> {
        fs::create_dir_all(dir).map_err(io("creating data directory", dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io("opening", &lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(Error::Locked {
                    path: dir.to_path_buf(),
                });
            }
            Err(fs::TryLockError::Error(err)) => return Err(io("locking", &lock_path)(err)),
        }
        Ok(DataDir {
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The state file's path.
    pub fn state_path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// Reads the saved state; `None` if nothing was ever saved here.
    pub fn load(&self) -> Result<Option<Durable>> {
        let temp = self.dir.join(TEMP_FILE);
        if temp.exists() {
            warn!(path = %temp.display(), "removing an unfinished save from an earlier run");
            fs::remove_file(&temp).map_err(io("removing", &temp))?;
        }
        let path = self.state_path();
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(io("reading", &path)(err)),
        };
        let corrupt = |reason: String| Error::Corrupt {
            path: path.clone(),
            reason,
        };
        let file: StateFile =
            serde_json::from_slice(&bytes).map_err(|err| corrupt(err.to_string()))?;
        if file.format != FORMAT {
            return Err(corrupt(format!(
                "format {} is not the supported {FORMAT}",
                file.format
            )));
        }
        state::validate(&file.state).map_err(corrupt)?;
        Ok(Some(file.state))
    }

    /// Replaces the saved state atomically and durably. Blocking: call it
    /// from a blocking-capable thread.
    pub fn save(&self, state: &Durable) -> Result<()> {
        let temp = self.dir.join(TEMP_FILE);
        let json = serde_json::to_vec_pretty(&StateFileRef {
            format: FORMAT,
            state,
        })
        .expect("the coordinator's state always serialises");
        let mut file = File::create(&temp).map_err(io("creating", &temp))?;
        file.write_all(&json).map_err(io("writing", &temp))?;
        file.sync_all().map_err(io("syncing", &temp))?;
        drop(file);
        let path = self.state_path();
        fs::rename(&temp, &path).map_err(io("renaming into place", &path))?;
        sync_dir(&self.dir)
    }
}

/// [`StateFile`] by reference, so saving does not clone the state.
#[derive(Serialize)]
struct StateFileRef<'a> {
    format: u32,
    state: &'a Durable,
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("syncing directory", dir))
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<()> {
    // Directories cannot be opened as files here; the rename is as durable
    // as the platform makes it.
    Ok(())
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error + use<> {
    let path = path.to_path_buf();
    move |source| Error::Io { what, path, source }
}

#[cfg(test)]
mod tests {
    use keycafe_core::cluster::{ClusterConfig, Migration, NodeInfo, SlotRange};

    use super::*;

    fn sample() -> Durable {
        let node = |id: &str| NodeInfo {
            id: id.into(),
            client_addr: format!("{id}:1"),
            bus_addr: format!("{id}:2"),
            replica_of: None,
        };
        Durable {
            config: ClusterConfig {
                epoch: 9,
                nodes: vec![node("a"), node("b")],
                slots: vec![
                    SlotRange {
                        start: 0,
                        end: 8191,
                        owner: "a".into(),
                    },
                    SlotRange {
                        start: 8192,
                        end: 16383,
                        owner: "b".into(),
                    },
                ],
                migrations: vec![Migration {
                    slot: 1,
                    from: "a".into(),
                    to: "b".into(),
                }],
            },
            leaving: vec!["a".into()],
        }
    }

    #[test]
    fn a_saved_state_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        assert_eq!(data.load().unwrap(), None);
        data.save(&sample()).unwrap();
        let mut newer = sample();
        newer.config.epoch = 10;
        data.save(&newer).unwrap();
        assert_eq!(data.load().unwrap(), Some(newer));
        assert!(!dir.path().join(TEMP_FILE).exists());
    }

    #[test]
    fn a_leftover_temp_file_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        data.save(&sample()).unwrap();
        // A save that crashed half-way through writing.
        fs::write(dir.path().join(TEMP_FILE), b"{\"format\": 1, \"sta").unwrap();
        assert_eq!(data.load().unwrap(), Some(sample()));
        assert!(!dir.path().join(TEMP_FILE).exists());
        data.save(&sample()).unwrap();
    }

    #[test]
    fn a_corrupt_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        let path = dir.path().join(STATE_FILE);
        for content in [
            &b"\x00\xffnot json"[..],
            b"{\"format\": 2, \"state\": {\"config\": {\"epoch\": 1, \"nodes\": [], \"slots\": [], \"migrations\": []}}}",
            b"{\"format\": 1, \"state\": {\"config\": {\"epoch\": 1, \"nodes\": [], \"slots\": [{\"start\": 0, \"end\": 5, \"owner\": \"x\"}], \"migrations\": []}}}",
        ] {
            fs::write(&path, content).unwrap();
            let err = data.load().unwrap_err();
            assert!(matches!(err, Error::Corrupt { .. }), "{err}");
            let message = err.to_string();
            assert!(message.contains("cluster.json") && message.contains("corrupt"), "{message}");
        }
    }

    #[test]
    fn one_coordinator_per_directory() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDir::open(dir.path()).unwrap();
        assert!(matches!(
            DataDir::open(dir.path()),
            Err(Error::Locked { .. })
        ));
        drop(first);
        DataDir::open(dir.path()).unwrap();
    }
}
