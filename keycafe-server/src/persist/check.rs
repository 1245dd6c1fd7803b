//! What `keycafe-check` finds in a snapshot or an append-only file, and how
//! it repairs one.
//!
//! [`inspect`] reads a file through the [`Reader`] and decodes each
//! payload with the native request parser, so it checks everything a node
//! checks when it loads the file: the container (header, block checksums,
//! the end marker) and that every payload is whole request frames.
//! [`repair`] cuts an append-only file at the end of its last good block,
//! after copying the original to `FILE.bak`. A torn tail is always cut;
//! damage in the middle only when asked, because cutting it drops writes
//! that were acknowledged. A snapshot is never repaired: it is whole or
//! useless, and the node that wrote it can take a new one.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use keycafe_core::{Limits, Protocol, RequestParser};

use super::format::{BLOCK_HEADER_LEN, Corruption, FormatError, Header, Kind, Reader};

/// Everything [`inspect`] learnt about one file.
#[derive(Debug)]
pub struct Report {
    pub path: PathBuf,
    /// The file's size.
    pub bytes: u64,
    /// `None` when the header could not be read.
    pub header: Option<Header>,
    /// Good blocks (a snapshot's end marker is not counted).
    pub blocks: u64,
    /// Request frames in the good blocks.
    pub records: u64,
    /// The offset just after the last good block.
    pub valid_len: u64,
    /// The first problem, if any.
    pub problem: Option<Problem>,
}

/// The first thing wrong with a file.
#[derive(Debug)]
pub enum Problem {
    /// The file could not be opened or its size read.
    Open(io::Error),
    /// The container is damaged.
    Format(FormatError),
    /// A block whose checksum holds but whose payload is not whole native
    /// request frames: written wrong, not damaged on the way.
    Records {
        offset: u64,
        payload_len: usize,
        reason: String,
    },
}

impl Problem {
    /// The torn tail a crash leaves, which loading cuts off by itself.
    pub fn is_truncated(&self) -> bool {
        matches!(self, Problem::Format(FormatError::Truncated { .. }))
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Open(err) => write!(f, "cannot read it: {err}"),
            Problem::Format(err) => write!(f, "{err}"),
            Problem::Records { offset, reason, .. } => write!(
                f,
                "corrupt at byte {offset}: the block's payload is not whole request frames: {reason}"
            ),
        }
    }
}

/// Reads and checks the file at `path` to its end or its first problem.
pub fn inspect(path: &Path) -> Report {
    let mut report = Report {
        path: path.to_path_buf(),
        bytes: 0,
        header: None,
        blocks: 0,
        records: 0,
        valid_len: 0,
        problem: None,
    };
    let file = match File::open(path).and_then(|file| Ok((file.metadata()?.len(), file))) {
        Ok((bytes, file)) => {
            report.bytes = bytes;
            file
        }
        Err(err) => {
            report.problem = Some(Problem::Open(err));
            return report;
        }
    };
    let mut reader = match Reader::new(file) {
        Ok(reader) => reader,
        Err(err) => {
            report.problem = Some(Problem::Format(err));
            return report;
        }
    };
    report.header = Some(*reader.header());
    let mut parser = RequestParser::new(Limits::default());
    loop {
        report.valid_len = reader.valid_len();
        match reader.next_block() {
            Ok(Some(block)) => match count_records(&mut parser, &block.payload) {
                Ok(records) => {
                    report.blocks += 1;
                    report.records += records;
                }
                Err(reason) => {
                    report.problem = Some(Problem::Records {
                        offset: block.offset,
                        payload_len: block.payload.len(),
                        reason,
                    });
                    return report;
                }
            },
            Ok(None) => {
                report.valid_len = reader.valid_len();
                return report;
            }
            Err(err) => {
                report.problem = Some(Problem::Format(err));
                return report;
            }
        }
    }
}

/// The request frames in `payload`, which must be whole frames.
fn count_records(parser: &mut RequestParser, payload: &[u8]) -> Result<u64, String> {
    let mut records = 0;
    let mut pos = 0;
    while pos < payload.len() {
        match parser.parse(Protocol::Native, &payload[pos..]) {
            Ok(Some((_, used))) => {
                records += 1;
                pos += used;
            }
            Ok(None) => {
                return Err(format!(
                    "it ends inside a frame ({} bytes after the last whole one)",
                    payload.len() - pos
                ));
            }
            Err(err) => return Err(format!("frame {}: {err}", records + 1)),
        }
    }
    Ok(records)
}

/// What a repair did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repaired {
    /// The file's new length: where it was cut.
    pub cut_at: u64,
    pub dropped_bytes: u64,
    /// Readable blocks after the damaged one that were dropped with it;
    /// `None` where the damage hides where the next block starts.
    pub dropped_readable_blocks: Option<u64>,
    /// True for a torn tail, false for damage in the middle.
    pub torn: bool,
    /// The copy of the original.
    pub backup: PathBuf,
}

impl Repaired {
    /// What the cut dropped, for people.
    pub fn dropped(&self) -> String {
        match self.torn {
            true => "the torn block".to_string(),
            false => describe_drop(self.dropped_readable_blocks),
        }
    }
}

/// Why a file was not repaired.
#[derive(Debug, thiserror::Error)]
pub enum NotRepaired {
    #[error("nothing to repair")]
    Healthy,
    #[error("a snapshot is never repaired: take a new one (SAVE), or restore a copy")]
    Snapshot,
    #[error("the header itself is incomplete, so there is nothing to keep: remove the file")]
    NoHeader,
    #[error("the header is damaged, so what the file holds is unknown: it is not repaired")]
    BadHeader,
    #[error("the file cannot be read, so it is not repaired")]
    Unreadable,
    #[error(
        "the damage is in the middle of the file; --truncate-corrupt cuts it at byte {cut_at}, \
         dropping {dropped_bytes} bytes ({})",
        describe_drop(*.dropped_readable_blocks)
    )]
    Corrupt {
        cut_at: u64,
        dropped_bytes: u64,
        dropped_readable_blocks: Option<u64>,
    },
    #[error("{0} exists already: move it away first")]
    BackupExists(PathBuf),
    #[error("the file changed while it was checked: stop the node that writes it first")]
    Changed,
    #[error("{doing} {}: {source}", path.display())]
    Io {
        doing: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

/// "the damaged block and 3 readable blocks after it", for a repair message.
pub fn describe_drop(readable_after: Option<u64>) -> String {
    match readable_after {
        Some(0) => "the damaged block".to_string(),
        Some(1) => "the damaged block and 1 readable block after it".to_string(),
        Some(n) => format!("the damaged block and {n} readable blocks after it"),
        None => "the damaged block and whatever follows it".to_string(),
    }
}

/// Cuts the append-only file of `report` at its last good block, keeping a
/// copy of the original in `FILE.bak`. Damage in the middle is cut only
/// with `truncate_corrupt`.
pub fn repair(report: &Report, truncate_corrupt: bool) -> Result<Repaired, NotRepaired> {
    let Some(problem) = &report.problem else {
        return Err(NotRepaired::Healthy);
    };
    let header = match (&report.header, problem) {
        (_, Problem::Open(_)) | (_, Problem::Format(FormatError::Io { .. })) => {
            return Err(NotRepaired::Unreadable);
        }
        (None, _) if problem.is_truncated() => return Err(NotRepaired::NoHeader),
        (None, _) => return Err(NotRepaired::BadHeader),
        (Some(header), _) => header,
    };
    if header.kind == Kind::Snapshot {
        return Err(NotRepaired::Snapshot);
    }
    let cut_at = report.valid_len;
    let dropped_bytes = report.bytes.saturating_sub(cut_at);
    let dropped_readable_blocks = match problem.is_truncated() {
        true => Some(0),
        false => readable_blocks_after(report, header),
    };
    if !problem.is_truncated() && !truncate_corrupt {
        return Err(NotRepaired::Corrupt {
            cut_at,
            dropped_bytes,
            dropped_readable_blocks,
        });
    }
    let path = &report.path;
    let io_error = |doing, path: &Path| {
        let path = path.to_path_buf();
        move |source| NotRepaired::Io {
            doing,
            path,
            source,
        }
    };
    let mut backup = path.clone().into_os_string();
    backup.push(".bak");
    let backup = PathBuf::from(backup);
    if backup.exists() {
        return Err(NotRepaired::BackupExists(backup));
    }
    let size = fs::metadata(path)
        .map_err(io_error("reading the size of", path))?
        .len();
    if size != report.bytes {
        return Err(NotRepaired::Changed);
    }
    fs::copy(path, &backup).map_err(io_error("copying to", &backup))?;
    File::open(&backup)
        .and_then(|file| file.sync_all())
        .map_err(io_error("syncing", &backup))?;
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_error("opening", path))?;
    file.set_len(cut_at).map_err(io_error("truncating", path))?;
    file.sync_all().map_err(io_error("syncing", path))?;
    Ok(Repaired {
        cut_at,
        dropped_bytes,
        dropped_readable_blocks,
        torn: problem.is_truncated(),
        backup,
    })
}

/// Readable blocks after the damaged one that a cut would drop too, where
/// the damage leaves its end known.
fn readable_blocks_after(report: &Report, header: &Header) -> Option<u64> {
    let damaged_end = match report.problem.as_ref()? {
        Problem::Records {
            offset,
            payload_len,
            ..
        } => offset + (BLOCK_HEADER_LEN + payload_len) as u64,
        Problem::Format(FormatError::Corrupt {
            offset,
            reason: Corruption::BlockChecksum(len),
        }) => offset + BLOCK_HEADER_LEN as u64 + u64::from(*len),
        _ => return None,
    };
    let mut file = File::open(&report.path).ok()?;
    io::Seek::seek(&mut file, io::SeekFrom::Start(damaged_end)).ok()?;
    let mut reader = Reader::at_block(file, *header, damaged_end);
    Some(reader.by_ref().take_while(Result::is_ok).count() as u64)
}

/// `ms` since the Unix epoch as a UTC date and time, for people.
pub fn utc(ms: u64) -> String {
    let days = ms / 86_400_000;
    let in_day = ms % 86_400_000;
    // Days since 1970-01-01 to a proleptic Gregorian date, counted in
    // 400-year eras from 0000-03-01 so leap days fall at the end of a year.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:03} UTC",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    )
}

/// The header's fields on one line.
pub fn describe_header(header: &Header) -> String {
    format!(
        "{}, version {}, created_ms {} ({}), sequence {}",
        header.kind,
        header.version,
        header.fields.created_ms,
        utc(header.fields.created_ms),
        header.fields.sequence
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00.000 UTC");
        assert_eq!(utc(1_767_225_600_000), "2026-01-01 00:00:00.000 UTC");
        assert_eq!(utc(951_782_400_000 + 1), "2000-02-29 00:00:00.001 UTC");
        assert_eq!(utc(4_102_444_799_999), "2099-12-31 23:59:59.999 UTC");
    }

    #[test]
    fn records_must_be_whole_frames() {
        let mut parser = RequestParser::new(Limits::default());
        let mut frames = bytes::BytesMut::new();
        keycafe_core::native::encode_request(&["SET", "k", "v"], &mut frames);
        keycafe_core::native::encode_request(&["DEL", "k"], &mut frames);
        assert_eq!(count_records(&mut parser, &frames), Ok(2));
        let cut = &frames[..frames.len() - 1];
        assert!(
            count_records(&mut parser, cut)
                .unwrap_err()
                .contains("ends inside a frame")
        );
        let mut parser = RequestParser::new(Limits::default());
        assert!(count_records(&mut parser, b"\0\0\0\x02+x").is_err());
    }
}
