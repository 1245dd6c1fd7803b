//! The bytes of the Raft log's two files, and how damage in them is told
//! apart from a crash in the middle of a write.
//!
//! Both files are a magic value of eight bytes followed by records. A record
//! is framed as
//!
//! ```text
//! [u32 payload length][u32 CRC-32C of the payload][payload]
//! ```
//!
//! (big-endian), and a payload is a kind byte followed by the protobuf bytes
//! of one Raft message:
//!
//! | kind | message | meaning |
//! |---|---|---|
//! | 1 | `HardState` | the term, vote and commit index from now on |
//! | 2 | `Entry` | this entry, replacing every entry from its index on |
//! | 3 | `Snapshot` | the snapshot (only in the snapshot file, alone) |
//!
//! One entry per record keeps a record as small as the entry it carries and
//! needs no framing inside the payload; the replacing rule is what lets Raft
//! overwrite a conflicting suffix by appending.
//!
//! # Torn or damaged
//!
//! The log is only ever appended to, and fsynced after each append, so a
//! crash can damage only its end: a record cut short, or one whose checksum
//! fails because only some of its bytes reached the disk (possibly followed
//! by zero bytes, when the file system grew the file before writing it).
//! Nothing there was acknowledged, so [`read_log`] reports it as a torn tail
//! to cut off. A damaged record followed by anything but zeros cannot come
//! from a crash mid-write: dropping it would drop what a majority may count
//! on, so that is [`Damage`], with the record's offset. A record whose
//! checksum holds but whose payload does not decode was written that way
//! and is damage wherever it is.
//!
//! What a checksum over the payload cannot tell: a length field damaged so
//! that its record seems to run past the end of the file reads as a torn
//! tail, and the records after it are cut. Such damage is never read as
//! *other* records, though: what is kept is always a prefix of what was
//! written.
//!
//! The snapshot file is written whole and renamed into place, so any damage
//! at all is [`Damage`].

use std::fmt;
use std::io;

use protobuf::Message;
use raft::prelude::{Entry, HardState, Snapshot};

/// The first bytes of the log file ("Keycafe raft log, format 1").
pub(super) const LOG_MAGIC: [u8; 8] = *b"KCRAFTL1";
/// The first bytes of the snapshot file ("Keycafe raft snapshot, format 1").
pub(super) const SNAPSHOT_MAGIC: [u8; 8] = *b"KCRAFTS1";
/// Bytes before a record's payload: its length and its checksum.
pub(super) const FRAME_HEADER_LEN: usize = 8;
/// The longest payload written or read: 1 GiB. A longer length field is
/// damage, not a claim to honour (files are read whole, so a length never
/// sizes an allocation; this only says what no writer produces).
pub(super) const MAX_PAYLOAD_LEN: usize = 1 << 30;

const HARD_STATE: u8 = 1;
const ENTRY: u8 = 2;
const SNAPSHOT: u8 = 3;

/// One record of the log file.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Record {
    HardState(HardState),
    Entry(Entry),
}

/// What the log file holds: its records with their offsets, and where a
/// torn tail starts, if the last write did not finish.
#[derive(Debug, Default)]
pub(super) struct LogFile {
    pub records: Vec<(u64, Record)>,
    pub torn_at: Option<u64>,
}

/// Damage that is not a torn tail: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Damage {
    pub offset: u64,
    pub reason: String,
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {}: {}", self.offset, self.reason)
    }
}

/// A whole log file: the magic, the hard state, then the entries.
pub(super) fn encode_log(hard_state: &HardState, entries: &[Entry]) -> io::Result<Vec<u8>> {
    let mut out = LOG_MAGIC.to_vec();
    push_hard_state(&mut out, hard_state)?;
    for entry in entries {
        push_entry(&mut out, entry)?;
    }
    Ok(out)
}

/// A whole snapshot file.
pub(super) fn encode_snapshot(snapshot: &Snapshot) -> io::Result<Vec<u8>> {
    let mut out = SNAPSHOT_MAGIC.to_vec();
    push_record(&mut out, SNAPSHOT, snapshot)?;
    Ok(out)
}

/// Appends a hard-state record to `out`.
pub(super) fn push_hard_state(out: &mut Vec<u8>, hard_state: &HardState) -> io::Result<()> {
    push_record(out, HARD_STATE, hard_state)
}

/// Appends an entry record to `out`.
pub(super) fn push_entry(out: &mut Vec<u8>, entry: &Entry) -> io::Result<()> {
    push_record(out, ENTRY, entry)
}

/// Frames `message` after its kind byte; on error `out` is left as it was.
fn push_record(out: &mut Vec<u8>, kind: u8, message: &impl Message) -> io::Result<()> {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER_LEN]);
    out.push(kind);
    let payload_start = start + FRAME_HEADER_LEN;
    let encoded = message
        .write_to_vec(out)
        .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err));
    let len = out.len() - payload_start;
    if let Err(err) = encoded {
        out.truncate(start);
        return Err(err);
    }
    if len > MAX_PAYLOAD_LEN {
        out.truncate(start);
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a raft log record of {len} bytes is over the limit of {MAX_PAYLOAD_LEN}"),
        ));
    }
    let crc = crc32c::crc32c(&out[payload_start..]);
    let len = u32::try_from(len).expect("the length was checked against a limit below u32::MAX");
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    out[start + 4..payload_start].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

/// Reads a log file's records, stopping at a torn tail.
pub(super) fn read_log(bytes: &[u8]) -> Result<LogFile, Damage> {
    check_magic(bytes, LOG_MAGIC, "a raft log")?;
    let mut file = LogFile::default();
    let mut at = LOG_MAGIC.len();
    while at < bytes.len() {
        let offset = at as u64;
        match read_frame(bytes, at) {
            Frame::Whole { kind, message, end } => {
                let record = match kind {
                    HARD_STATE => Record::HardState(decode(message, offset, "hard state")?),
                    ENTRY => Record::Entry(decode(message, offset, "entry")?),
                    other => return Err(unknown_kind(offset, other)),
                };
                file.records.push((offset, record));
                at = end;
            }
            Frame::Short => {
                file.torn_at = Some(offset);
                break;
            }
            Frame::Bad { reason, end } => {
                if bytes[end..].iter().any(|&byte| byte != 0) {
                    return Err(Damage {
                        offset,
                        reason: format!("{reason}, with more data after it"),
                    });
                }
                file.torn_at = Some(offset);
                break;
            }
        }
    }
    Ok(file)
}

/// Reads a snapshot file: the magic, one snapshot record, nothing after.
pub(super) fn read_snapshot(bytes: &[u8]) -> Result<Snapshot, Damage> {
    check_magic(bytes, SNAPSHOT_MAGIC, "a raft snapshot")?;
    let at = SNAPSHOT_MAGIC.len();
    let offset = at as u64;
    match read_frame(bytes, at) {
        Frame::Whole { kind, message, end } => {
            if kind != SNAPSHOT {
                return Err(unknown_kind(offset, kind));
            }
            if end != bytes.len() {
                return Err(Damage {
                    offset: end as u64,
                    reason: "data after the snapshot".into(),
                });
            }
            decode(message, offset, "snapshot")
        }
        Frame::Short => Err(Damage {
            offset,
            reason: "the snapshot is cut short".into(),
        }),
        Frame::Bad { reason, .. } => Err(Damage { offset, reason }),
    }
}

/// One record's frame, as far as its bytes go.
enum Frame<'a> {
    /// A record whose checksum holds: its kind, message bytes and end.
    Whole {
        kind: u8,
        message: &'a [u8],
        end: usize,
    },
    /// The file ends inside the record.
    Short,
    /// The record is wrong; `end` is where it would end.
    Bad { reason: String, end: usize },
}

fn read_frame(bytes: &[u8], at: usize) -> Frame<'_> {
    let Some(&header) = bytes
        .get(at..)
        .and_then(<[u8]>::first_chunk::<FRAME_HEADER_LEN>)
    else {
        return Frame::Short;
    };
    let [l0, l1, l2, l3, c0, c1, c2, c3] = header;
    let len = u32::from_be_bytes([l0, l1, l2, l3]) as usize;
    let crc = u32::from_be_bytes([c0, c1, c2, c3]);
    let payload_start = at + FRAME_HEADER_LEN;
    if len == 0 || len > MAX_PAYLOAD_LEN {
        return Frame::Bad {
            reason: format!("a record length of {len} bytes, which no writer produces"),
            end: payload_start,
        };
    }
    let end = payload_start + len;
    let Some(payload) = bytes.get(payload_start..end) else {
        return Frame::Short;
    };
    if crc32c::crc32c(payload) != crc {
        return Frame::Bad {
            reason: "a record whose checksum does not match".into(),
            end,
        };
    }
    // Never empty (the length was checked above), but a file is not trusted.
    let Some((&kind, message)) = payload.split_first() else {
        return Frame::Bad {
            reason: "an empty record".into(),
            end,
        };
    };
    Frame::Whole { kind, message, end }
}

fn check_magic(bytes: &[u8], magic: [u8; 8], what: &str) -> Result<(), Damage> {
    if bytes.starts_with(&magic) {
        return Ok(());
    }
    Err(Damage {
        offset: 0,
        reason: format!(
            "not {what} file (it does not start with {:?})",
            String::from_utf8_lossy(&magic)
        ),
    })
}

fn decode<M: Message>(bytes: &[u8], offset: u64, what: &str) -> Result<M, Damage> {
    M::parse_from_bytes(bytes).map_err(|err| Damage {
        offset,
        reason: format!("a {what} record that does not decode ({err})"),
    })
}

fn unknown_kind(offset: u64, kind: u8) -> Damage {
    Damage {
        offset,
        reason: format!("a record of unknown kind {kind}"),
    }
}
