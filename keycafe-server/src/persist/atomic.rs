//! Replacing a file atomically and durably.
//!
//! A snapshot or `node.json` must never be seen half-written: after a crash
//! at any moment, the path holds either the old file or the whole new one.
//! So the new contents go to `<name>.tmp` in the same directory, which is
//! flushed and fsynced, then renamed over the final path (a rename within
//! one file system is atomic), and then the directory is fsynced so that the
//! rename itself survives a power cut. A `.tmp` file found later is only
//! ever a write that did not finish; the next write of the same path
//! truncates it.
//!
//! One writer per path at a time: two [`AtomicFile`]s for the same path
//! would share the temporary file. A node holds its data directory alone.
//!
//! Every error names the path and what was being done ("syncing",
//! "renaming"), since an `io::Error` by itself says neither.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// A file being written under a temporary name, to replace `final_path` on
/// [`AtomicFile::commit`]. Dropped without a commit, it removes the
/// temporary file and leaves the final path as it was.
///
/// Writes are buffered; [`AtomicFile::commit`] flushes them.
#[derive(Debug)]
pub struct AtomicFile {
    /// `None` once committed.
    file: Option<BufWriter<File>>,
    temp: PathBuf,
    path: PathBuf,
}

/// The temporary file [`AtomicFile`] writes before it renames it to
/// `final_path`: the same name with `.tmp` added, in the same directory.
pub fn temp_path(final_path: &Path) -> PathBuf {
    let mut name = OsString::from(final_path.as_os_str());
    name.push(".tmp");
    PathBuf::from(name)
}

impl AtomicFile {
    /// Creates (or truncates) the temporary file next to `final_path`.
    pub fn create(final_path: impl AsRef<Path>) -> io::Result<AtomicFile> {
        let path = final_path.as_ref().to_path_buf();
        let temp = temp_path(&path);
        let file = File::create(&temp).map_err(context("creating", &temp))?;
        Ok(AtomicFile {
            file: Some(BufWriter::with_capacity(64 * 1024, file)),
            temp,
            path,
        })
    }

    /// The path the file will have once committed.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes, fsyncs the file, renames it over the final path and fsyncs
    /// the directory. On an error the temporary file is removed, unless the
    /// rename had already happened.
    pub fn commit(mut self) -> io::Result<()> {
        let Some(writer) = self.file.take() else {
            return Ok(());
        };
        let file = writer
            .into_inner()
            .map_err(|err| context("writing", &self.temp)(err.into_error()))?;
        file.sync_all().map_err(context("syncing", &self.temp))?;
        drop(file);
        if let Err(err) = fs::rename(&self.temp, &self.path) {
            let _ = fs::remove_file(&self.temp);
            return Err(context("renaming into place", &self.path)(err));
        }
        sync_parent(&self.path)
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer()?
            .write(buf)
            .map_err(context("writing", &self.temp))
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.writer()?
            .write_all(buf)
            .map_err(context("writing", &self.temp))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer()?
            .flush()
            .map_err(context("writing", &self.temp))
    }
}

impl AtomicFile {
    fn writer(&mut self) -> io::Result<&mut BufWriter<File>> {
        // `commit` takes `self`, so a live `AtomicFile` always has its file.
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("the file is already committed"))
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if let Some(writer) = self.file.take() {
            // Whatever was buffered is abandoned with the file.
            let (file, _) = writer.into_parts();
            drop(file);
            let _ = fs::remove_file(&self.temp);
        }
    }
}

/// Replaces `path` with `bytes` atomically and durably (for small files such
/// as `node.json`).
pub fn write_atomically(path: impl AsRef<Path>, bytes: &[u8]) -> io::Result<()> {
    let mut file = AtomicFile::create(path)?;
    file.write_all(bytes)?;
    file.commit()
}

/// Fsyncs the directory holding `path`, so that a rename into it is durable.
pub fn sync_parent(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    sync_dir(dir)
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(context("syncing directory", dir))
}

/// Other systems cannot open a directory to sync it; their renames are as
/// durable as they make them.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// Wraps an error with what was being done to which path, keeping its kind.
fn context<'a>(doing: &'a str, path: &'a Path) -> impl FnOnce(io::Error) -> io::Error + 'a {
    move |err| io::Error::new(err.kind(), format!("{doing} {}: {err}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_replaces_the_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.json");
        fs::write(&path, b"old").unwrap();
        let mut file = AtomicFile::create(&path).unwrap();
        file.write_all(b"new contents").unwrap();
        assert_eq!(
            fs::read(&path).unwrap(),
            b"old",
            "not replaced before commit"
        );
        assert!(temp_path(&path).exists());
        file.commit().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new contents");
        assert!(!temp_path(&path).exists());
    }

    #[test]
    fn dropping_without_commit_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snapshot.kcs");
        fs::write(&path, b"old").unwrap();
        let mut file = AtomicFile::create(&path).unwrap();
        file.write_all(&[7; 100_000]).unwrap();
        drop(file);
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert!(!temp_path(&path).exists());
    }

    #[test]
    fn write_atomically_creates_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.json");
        write_atomically(&path, b"{\"a\":1}").unwrap();
        write_atomically(&path, b"{\"a\":2}").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"{\"a\":2}");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "only the final file is left");
    }

    #[test]
    fn a_leftover_temp_file_is_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.json");
        fs::write(temp_path(&path), b"an unfinished earlier write, longer").unwrap();
        write_atomically(&path, b"x").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"x");
    }

    #[test]
    fn errors_name_the_path_and_the_step() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("node.json");
        let err = write_atomically(&path, b"x").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let text = err.to_string();
        assert!(text.starts_with("creating "), "{text}");
        assert!(text.contains("missing-dir/node.json.tmp"), "{text}");

        // Renaming over a directory fails after the data was written.
        let blocker = dir.path().join("taken");
        fs::create_dir(&blocker).unwrap();
        fs::write(blocker.join("inside"), b"keep").unwrap();
        let err = write_atomically(&blocker, b"x").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("renaming into place "), "{text}");
        assert!(!temp_path(&blocker).exists(), "the temp file is removed");
        assert!(blocker.join("inside").exists());
    }
}
