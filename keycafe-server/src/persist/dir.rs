//! The node's data directory: what lives where, who may use it, and the
//! node's identity.
//!
//! ```text
//! <dir>/
//!   node.lock          held (flock) while a node uses the directory
//!   node.json          the node's identity: id, last configuration epoch,
//!                      and after a clean stop its replication position
//!   dump.kcs           the last snapshot (SAVE, BGSAVE, save rules, stop)
//!   appendonly/        the append-only file (see `aof.rs`):
//!     manifest         which files make up the data, in order
//!     base.<n>.kcs     a snapshot the increments apply to
//!     incr.<n>.kca     changes after it
//! ```
//!
//! Every file but the lock and the increments is replaced whole, through a
//! temporary file and a rename ([`super::atomic`]), so a crash leaves the
//! old version or the new one. Leftover temporary files are removed when the
//! directory is opened.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::atomic::write_atomically;

const LOCK_FILE: &str = "node.lock";
const IDENTITY_FILE: &str = "node.json";
const SNAPSHOT_FILE: &str = "dump.kcs";
const AOF_DIR: &str = "appendonly";

/// A data directory, locked for this process.
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    _lock: File,
}

/// Why a data directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    #[error("data directory {path}: {doing}: {source}")]
    Io {
        path: PathBuf,
        doing: &'static str,
        source: io::Error,
    },
    #[error("data directory {0} is in use by another keycafe-server")]
    Locked(PathBuf),
    #[error("data directory {path}: node.json is not valid: {reason}")]
    BadIdentity { path: PathBuf, reason: String },
}

fn io_error(path: &Path, doing: &'static str) -> impl FnOnce(io::Error) -> DirError + use<> {
    let path = path.to_path_buf();
    move |source| DirError::Io {
        path,
        doing,
        source,
    }
}

/// Who this node is, kept across restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The node id it registers with: the same node after a restart.
    pub id: String,
    /// The newest configuration epoch it adopted.
    #[serde(default)]
    pub epoch: u64,
    /// Written by a clean stop only, when the data on disk is exactly the
    /// replication history up to this point: a restarted replica (or
    /// primary) can then continue from here instead of copying everything.
    /// Cleared as soon as the node starts changing data again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<StoppedAt>,
}

/// A new node id: 40 random hex characters, as in Redis Cluster.
pub fn new_node_id() -> String {
    let bytes: [u8; 20] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A replication history and the offset in it the data corresponds to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoppedAt {
    pub replid: String,
    pub offset: u64,
    /// The files that hold exactly that data: a start that loads others
    /// (the append-only file was turned on or off meanwhile) does not
    /// resume from here.
    pub source: Source,
}

/// Which files a node's data was loaded from, or written to at a stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Snapshot,
    AppendOnly,
}

impl DataDir {
    /// Creates the directory if it is missing, checks that it can be written,
    /// locks it, and removes temporary files a crash left behind.
    pub fn open(path: &Path) -> Result<DataDir, DirError> {
        fs::create_dir_all(path).map_err(io_error(path, "creating"))?;
        let lock_path = path.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_error(&lock_path, "opening"))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(DirError::Locked(path.to_path_buf())),
            Err(fs::TryLockError::Error(err)) => return Err(io_error(&lock_path, "locking")(err)),
        }
        let dir = DataDir {
            path: path.to_path_buf(),
            _lock: lock,
        };
        fs::create_dir_all(dir.aof_dir()).map_err(io_error(path, "creating appendonly/"))?;
        remove_temporary_files(path)?;
        remove_temporary_files(&dir.aof_dir())?;
        Ok(dir)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where snapshots are kept.
    pub fn snapshot_path(&self) -> PathBuf {
        self.path.join(SNAPSHOT_FILE)
    }

    /// The folder of the append-only file's parts.
    pub fn aof_dir(&self) -> PathBuf {
        self.path.join(AOF_DIR)
    }

    /// The identity a previous run left, if any.
    pub fn identity(&self) -> Result<Option<Identity>, DirError> {
        let path = self.path.join(IDENTITY_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(io_error(&path, "reading")(err)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|err| DirError::BadIdentity {
                path: self.path.clone(),
                reason: err.to_string(),
            })
    }

    /// Replaces the identity on disk, durably.
    pub fn save_identity(&self, identity: &Identity) -> Result<(), DirError> {
        let path = self.path.join(IDENTITY_FILE);
        let mut text = serde_json::to_vec_pretty(identity).expect("an identity serializes");
        text.push(b'\n');
        write_atomically(&path, &text).map_err(io_error(&path, "writing"))
    }
}

/// Removes `*.tmp` files in `dir`: writes a crash interrupted.
fn remove_temporary_files(dir: &Path) -> Result<(), DirError> {
    let entries = fs::read_dir(dir).map_err(io_error(dir, "listing"))?;
    for entry in entries {
        let entry = entry.map_err(io_error(dir, "listing"))?;
        let path = entry.path();
        if path.extension().is_some_and(|ext| ext == "tmp") {
            tracing::warn!(path = %path.display(), "removing a file an interrupted write left");
            fs::remove_file(&path).map_err(io_error(&path, "removing"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_created_locked_and_keeps_an_identity() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("node");
        let dir = DataDir::open(&path).unwrap();
        assert!(dir.aof_dir().is_dir());
        assert_eq!(dir.identity().unwrap(), None);
        assert!(matches!(DataDir::open(&path), Err(DirError::Locked(_))));

        let identity = Identity {
            id: "a".repeat(40),
            epoch: 7,
            stopped_at: Some(StoppedAt {
                replid: "b".repeat(40),
                offset: 12,
                source: Source::AppendOnly,
            }),
        };
        dir.save_identity(&identity).unwrap();
        drop(dir);
        let dir = DataDir::open(&path).unwrap();
        assert_eq!(dir.identity().unwrap(), Some(identity));
    }

    #[test]
    fn leftover_temporary_files_go_and_a_bad_identity_is_named() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("appendonly")).unwrap();
        fs::write(root.path().join("dump.kcs.tmp"), b"half").unwrap();
        fs::write(root.path().join("appendonly/base.2.kcs.tmp"), b"half").unwrap();
        fs::write(root.path().join("node.json"), b"{not json").unwrap();
        let dir = DataDir::open(root.path()).unwrap();
        assert!(!root.path().join("dump.kcs.tmp").exists());
        assert!(!root.path().join("appendonly/base.2.kcs.tmp").exists());
        let err = dir.identity().unwrap_err().to_string();
        assert!(err.contains("node.json is not valid"), "{err}");
    }
}
