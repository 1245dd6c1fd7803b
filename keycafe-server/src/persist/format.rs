//! The container format shared by snapshots and append-only files.
//!
//! A node writes two kinds of file, and both are the same container: a
//! fixed-size [header](encode_header), then a sequence of
//! [blocks](encode_block), each an opaque payload with its length and its
//! CRC-32C. What a payload holds is the business of the layers above (whole
//! native-protocol request frames such as `SET key value PXAT ms`, never a
//! frame split between two blocks); this module only guarantees that what
//! comes back is exactly what was written, or says precisely where and how a
//! file stopped being so. `docs/persistence.md` ("Files on disk") has the
//! layout byte by byte, with an example that a test keeps in step with the
//! encoder.
//!
//! # Two ways a file goes wrong
//!
//! A crash while appending leaves the *end* of a file short or half-written:
//! the length prefix or the payload of the last block runs past the end of
//! the file, or the last block's checksum fails because only part of it
//! reached the disk. Nothing after such a block was ever acknowledged as
//! durable, so the layers above cut an append-only file there and start:
//! that is [`FormatError::Truncated`]. Some file systems extend a file before
//! they write its data, so a crash can also leave a tail of zero bytes; a
//! damaged block followed only by zeros counts as truncated too.
//!
//! Damage anywhere else cannot come from a crash in the middle of a write: a
//! bad magic, a header whose checksum fails, a block whose checksum fails
//! with more data after it, a length no writer produces. Cutting the file
//! there would silently drop acknowledged writes, so that is
//! [`FormatError::Corrupt`], and the node refuses to start until someone
//! decides (`keycafe-check --repair --truncate-corrupt`, or a backup).
//!
//! A snapshot is written to a temporary file and renamed into place only
//! once it is complete ([`super::atomic`]), so it always ends with an
//! [end marker](encode_end) carrying the number of blocks before it. A
//! snapshot whose blocks are whole but that has no end marker is
//! [`FormatError::Incomplete`]; any damage to a snapshot means it cannot be
//! loaded, whatever the error.
//!
//! # Limits
//!
//! A length field is only a claim. The [`Reader`] refuses a length over
//! [`MAX_BLOCK_LEN`] outright, and reads a payload in pieces as its bytes
//! arrive, so a corrupt or truncated length costs no more memory than the
//! bytes that are really in the file. It never holds more than one block.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read};

use bytes::BufMut;

/// Bytes in a header.
pub const HEADER_LEN: usize = 32;
/// Bytes in a block's length and checksum, before its payload.
pub const BLOCK_HEADER_LEN: usize = 8;
/// Bytes in a snapshot's end marker.
pub const END_LEN: usize = 16;
/// The format version this build writes and reads.
pub const VERSION: u16 = 1;
/// The longest payload a block may carry: 1 GiB, the largest request frame a
/// node accepts by default ([`keycafe_core::Limits::DEFAULT`]), so any record
/// of a key within the default limits fits in one block.
pub const MAX_BLOCK_LEN: u32 = 1 << 30;

/// The magic bytes before the kind byte: every file a node writes starts with
/// "KEYCAFE".
pub const MAGIC: [u8; 7] = *b"KEYCAFE";

/// Which of the two kinds of file this is; the byte after [`MAGIC`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A point-in-time copy of the keyspace, ending with an end marker.
    Snapshot,
    /// Changes appended as they happen; it has no end.
    AppendOnly,
}

impl Kind {
    /// The byte that follows [`MAGIC`]: `S` or `A`.
    pub fn byte(self) -> u8 {
        match self {
            Kind::Snapshot => b'S',
            Kind::AppendOnly => b'A',
        }
    }

    /// The kind named by `byte`, if any.
    pub fn from_byte(byte: u8) -> Option<Kind> {
        match byte {
            b'S' => Some(Kind::Snapshot),
            b'A' => Some(Kind::AppendOnly),
            _ => None,
        }
    }
}

impl Kind {
    /// "a snapshot", "an append-only file".
    pub fn with_article(self) -> &'static str {
        match self {
            Kind::Snapshot => "a snapshot",
            Kind::AppendOnly => "an append-only file",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Snapshot => "snapshot",
            Kind::AppendOnly => "append-only file",
        })
    }
}

/// The header's fields that the layers above choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HeaderFields {
    /// When the file was started, in milliseconds since the Unix epoch (wall
    /// clock; for people and for choosing between files, not for ordering).
    pub created_ms: u64,
    /// For a snapshot, the point of the node's change feed it copies; for an
    /// append-only file, the sequence of the snapshot it continues (its
    /// base), so that loading can tell the two belong together.
    pub sequence: u64,
}

/// A header as read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kind: Kind,
    pub version: u16,
    pub fields: HeaderFields,
}

/// One block as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// Where the block (its length prefix) starts in the file.
    pub offset: u64,
    pub payload: Vec<u8>,
}

impl Block {
    /// The offset just after this block.
    pub fn end(&self) -> u64 {
        self.offset + (BLOCK_HEADER_LEN + self.payload.len()) as u64
    }
}

/// Why a file is corrupt: damage that a crash while writing cannot explain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Corruption {
    #[error("not a Keycafe file (bad magic bytes)")]
    BadMagic,
    #[error("unknown file kind {0:#04x}")]
    UnknownKind(u8),
    #[error("{} where {} was expected", .found.with_article(), .expected.with_article())]
    WrongKind { expected: Kind, found: Kind },
    #[error("format version {0}, but this build reads only version {VERSION}")]
    UnknownVersion(u16),
    #[error("unknown header flags {0:#06x}")]
    UnknownFlags(u16),
    #[error("header checksum mismatch")]
    HeaderChecksum,
    #[error("block length {0} is over the maximum of {MAX_BLOCK_LEN}")]
    BlockTooLong(u32),
    #[error("block checksum mismatch (a {0}-byte block with more data after it)")]
    BlockChecksum(u32),
    #[error("a zero-length block (an end marker) in an append-only file")]
    EmptyBlock,
    #[error("end marker checksum mismatch")]
    EndChecksum,
    #[error("the end marker counts {counted} blocks, but {read} came before it")]
    EndCount { counted: u64, read: u64 },
    #[error("data after the snapshot's end marker")]
    AfterEnd,
}

/// What is wrong with a file, and at which byte offset of the file.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The file ends inside its last block, or the last block is damaged
    /// and only zero bytes (or nothing) follow it: a write torn by a crash.
    /// `offset` is where that block starts, which is also
    /// [`Reader::valid_len`]. At offset 0, the header itself is incomplete.
    #[error("truncated at byte {offset}: the {} was not completely written", torn_part(*.offset))]
    Truncated { offset: u64 },
    /// Damage a crash cannot explain; `offset` is where the damaged field or
    /// block starts.
    #[error("corrupt at byte {offset}: {reason}")]
    Corrupt { offset: u64, reason: Corruption },
    /// A snapshot that ends after a whole block without its end marker.
    #[error(
        "incomplete snapshot: it ends at byte {offset} after {blocks} blocks, without an end marker"
    )]
    Incomplete { offset: u64, blocks: u64 },
    /// Reading failed.
    #[error("I/O error at byte {offset}: {source}")]
    Io {
        offset: u64,
        #[source]
        source: io::Error,
    },
}

impl FormatError {
    /// The byte offset the error is about.
    pub fn offset(&self) -> u64 {
        match self {
            FormatError::Truncated { offset }
            | FormatError::Corrupt { offset, .. }
            | FormatError::Incomplete { offset, .. }
            | FormatError::Io { offset, .. } => *offset,
        }
    }

    /// The same error again, for a reader asked to go on after it failed
    /// (an I/O error keeps its kind and message).
    fn again(&self) -> FormatError {
        match self {
            FormatError::Truncated { offset } => FormatError::Truncated { offset: *offset },
            FormatError::Corrupt { offset, reason } => FormatError::Corrupt {
                offset: *offset,
                reason: reason.clone(),
            },
            FormatError::Incomplete { offset, blocks } => FormatError::Incomplete {
                offset: *offset,
                blocks: *blocks,
            },
            FormatError::Io { offset, source } => FormatError::Io {
                offset: *offset,
                source: io::Error::new(source.kind(), source.to_string()),
            },
        }
    }
}

/// What a truncation at `offset` tore: the header, or the last block.
fn torn_part(offset: u64) -> &'static str {
    match offset {
        0 => "header",
        _ => "last block",
    }
}

/// A payload over [`MAX_BLOCK_LEN`] (or empty), which no reader would accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a block payload of {0} bytes is not between 1 and {MAX_BLOCK_LEN} bytes")]
pub struct BadBlockLen(pub usize);

// ---------------------------------------------------------------------------
// Encoding: into a `Vec<u8>` or a `BytesMut` alike, with no I/O.
// ---------------------------------------------------------------------------

/// Appends a header: magic and kind, version, flags (0), `created_ms`,
/// `sequence`, and the CRC-32C of the 28 bytes before it.
pub fn encode_header(kind: Kind, fields: HeaderFields, out: &mut impl BufMut) {
    let mut header = [0u8; HEADER_LEN];
    header[..7].copy_from_slice(&MAGIC);
    header[7] = kind.byte();
    header[8..10].copy_from_slice(&VERSION.to_be_bytes());
    // Bytes 10 and 11, the flags, stay 0.
    header[12..20].copy_from_slice(&fields.created_ms.to_be_bytes());
    header[20..28].copy_from_slice(&fields.sequence.to_be_bytes());
    let crc = crc32c::crc32c(&header[..28]);
    header[28..].copy_from_slice(&crc.to_be_bytes());
    out.put_slice(&header);
}

/// Appends one block: the payload's length and CRC-32C (both u32 BE), then
/// the payload. A payload must hold between 1 and [`MAX_BLOCK_LEN`] bytes:
/// length 0 is the end marker's.
pub fn encode_block(payload: &[u8], out: &mut impl BufMut) -> Result<(), BadBlockLen> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|len| (1..=MAX_BLOCK_LEN).contains(len))
        .ok_or(BadBlockLen(payload.len()))?;
    out.put_u32(len);
    out.put_u32(crc32c::crc32c(payload));
    out.put_slice(payload);
    Ok(())
}

/// Appends a snapshot's end marker: a length of 0, the CRC-32C of the 8
/// bytes that follow, and `blocks`, the number of blocks before it (u64 BE).
pub fn encode_end(blocks: u64, out: &mut impl BufMut) {
    let count = blocks.to_be_bytes();
    out.put_u32(0);
    out.put_u32(crc32c::crc32c(&count));
    out.put_slice(&count);
}

// ---------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------

/// Reads a file block by block, checking everything, never holding more
/// than one block in memory.
///
/// [`Reader::next_block`] yields blocks until the end (`Ok(None)`: the end
/// of an append-only file, or a snapshot's verified end marker) or the first
/// problem. After an error the reader is spent: it returns the same error
/// again. It buffers its input itself; pass a plain [`std::fs::File`].
#[derive(Debug)]
pub struct Reader<R> {
    input: BufReader<R>,
    header: Header,
    /// Bytes consumed from the input so far.
    offset: u64,
    /// The offset just after the last good block (or the header).
    valid_len: u64,
    blocks: u64,
    state: State,
}

#[derive(Debug)]
enum State {
    Blocks,
    /// A snapshot's end marker has been read and checked.
    Ended,
    Failed(FormatError),
}

const BUFFER: usize = 64 * 1024;

impl<R: Read> Reader<R> {
    /// Reads and checks the header, of either kind.
    pub fn new(input: R) -> Result<Reader<R>, FormatError> {
        let mut input = BufReader::with_capacity(BUFFER, input);
        let header = read_header(&mut input)?;
        Ok(Reader::buffered(input, header, HEADER_LEN as u64))
    }

    /// Reads and checks the header, refusing a file of another kind.
    pub fn of_kind(input: R, expected: Kind) -> Result<Reader<R>, FormatError> {
        let reader = Reader::new(input)?;
        match reader.header.kind {
            found if found == expected => Ok(reader),
            found => Err(FormatError::Corrupt {
                offset: MAGIC.len() as u64,
                reason: Corruption::WrongKind { expected, found },
            }),
        }
    }

    /// A reader of the blocks of a file described by `header`, whose input
    /// is positioned at `offset`, the start of a block. For tools that look
    /// past damage: `keycafe-check` counts what a repair would drop.
    pub fn at_block(input: R, header: Header, offset: u64) -> Reader<R> {
        Reader::buffered(BufReader::with_capacity(BUFFER, input), header, offset)
    }

    fn buffered(input: BufReader<R>, header: Header, offset: u64) -> Reader<R> {
        Reader {
            input,
            header,
            offset,
            valid_len: offset,
            blocks: 0,
            state: State::Blocks,
        }
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The offset just after the last good block: where a repair cuts the
    /// file, and where an append-only file goes on after loading.
    pub fn valid_len(&self) -> u64 {
        self.valid_len
    }

    /// Good blocks read so far (the end marker is not a block).
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    /// True once a snapshot's end marker has been read and checked.
    pub fn is_complete(&self) -> bool {
        matches!(self.state, State::Ended)
    }

    /// The next block; `Ok(None)` at the end of a whole file.
    pub fn next_block(&mut self) -> Result<Option<Block>, FormatError> {
        match &self.state {
            State::Blocks => {}
            State::Ended => return Ok(None),
            State::Failed(err) => return Err(err.again()),
        }
        match self.read_block() {
            Ok(Some(block)) => {
                self.blocks += 1;
                self.valid_len = block.end();
                Ok(Some(block))
            }
            Ok(None) => Ok(None),
            Err(err) => {
                self.state = State::Failed(err.again());
                Err(err)
            }
        }
    }

    fn read_block(&mut self) -> Result<Option<Block>, FormatError> {
        let start = self.offset;
        let mut prefix = [0u8; BLOCK_HEADER_LEN];
        match self.read_up_to(&mut prefix)? {
            0 => {
                return match self.header.kind {
                    Kind::AppendOnly => Ok(None),
                    Kind::Snapshot => Err(FormatError::Incomplete {
                        offset: start,
                        blocks: self.blocks,
                    }),
                };
            }
            BLOCK_HEADER_LEN => {}
            _ => return Err(FormatError::Truncated { offset: start }),
        }
        let [l0, l1, l2, l3, c0, c1, c2, c3] = prefix;
        let len = u32::from_be_bytes([l0, l1, l2, l3]);
        let crc = u32::from_be_bytes([c0, c1, c2, c3]);
        if len == 0 {
            return match self.header.kind {
                Kind::Snapshot => self.read_end(start, crc).map(|()| None),
                Kind::AppendOnly => Err(self.damaged(start, Corruption::EmptyBlock)?),
            };
        }
        if len > MAX_BLOCK_LEN {
            return Err(self.damaged(start, Corruption::BlockTooLong(len))?);
        }
        // Grows with the bytes that really arrive, not with what `len` claims.
        let mut payload = Vec::with_capacity((len as usize).min(BUFFER));
        let got = (&mut self.input)
            .take(u64::from(len))
            .read_to_end(&mut payload)
            .map_err(|source| FormatError::Io {
                offset: self.offset,
                source,
            })?;
        self.offset += got as u64;
        if got < len as usize {
            return Err(FormatError::Truncated { offset: start });
        }
        if crc32c::crc32c(&payload) != crc {
            return Err(self.damaged(start, Corruption::BlockChecksum(len))?);
        }
        Ok(Some(Block {
            offset: start,
            payload,
        }))
    }

    /// Checks the rest of an end marker whose length field (0) and checksum
    /// have been read, and that nothing follows it.
    fn read_end(&mut self, start: u64, crc: u32) -> Result<(), FormatError> {
        let mut count = [0u8; 8];
        if self.read_up_to(&mut count)? < count.len() {
            return Err(FormatError::Truncated { offset: start });
        }
        if crc32c::crc32c(&count) != crc {
            return Err(self.damaged(start, Corruption::EndChecksum)?);
        }
        let counted = u64::from_be_bytes(count);
        if counted != self.blocks {
            return Err(FormatError::Corrupt {
                offset: start,
                reason: Corruption::EndCount {
                    counted,
                    read: self.blocks,
                },
            });
        }
        let after = self.offset;
        if !self.at_eof()? {
            return Err(FormatError::Corrupt {
                offset: after,
                reason: Corruption::AfterEnd,
            });
        }
        self.valid_len = after;
        self.state = State::Ended;
        Ok(())
    }

    /// The error for a damaged block at `start` whose bytes have been read:
    /// a torn tail if nothing but zero bytes follow it, else corruption.
    /// (The outer `Result` carries an I/O error met while looking.)
    fn damaged(&mut self, start: u64, reason: Corruption) -> Result<FormatError, FormatError> {
        Ok(match rest_is_zeros(&mut self.input, self.offset)? {
            true => FormatError::Truncated { offset: start },
            false => FormatError::Corrupt {
                offset: start,
                reason,
            },
        })
    }

    /// Reads until `buf` is full or the input ends; the bytes read.
    fn read_up_to(&mut self, buf: &mut [u8]) -> Result<usize, FormatError> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.input.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => {
                    filled += n;
                    self.offset += n as u64;
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(FormatError::Io {
                        offset: self.offset,
                        source,
                    });
                }
            }
        }
        Ok(filled)
    }

    fn at_eof(&mut self) -> Result<bool, FormatError> {
        loop {
            match self.input.fill_buf() {
                Ok(buf) => return Ok(buf.is_empty()),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(FormatError::Io {
                        offset: self.offset,
                        source,
                    });
                }
            }
        }
    }
}

impl<R: Read> Iterator for Reader<R> {
    type Item = Result<Block, FormatError>;

    /// Blocks, then `None`; after an error, `None` (unlike
    /// [`Reader::next_block`], which repeats it).
    fn next(&mut self) -> Option<Self::Item> {
        if matches!(self.state, State::Failed(_)) {
            return None;
        }
        self.next_block().transpose()
    }
}

/// Reads and checks a header. Its fields are checked in byte order, so a
/// short file that already shows a wrong byte is corrupt, not truncated.
fn read_header(input: &mut impl Read) -> Result<Header, FormatError> {
    let mut buf = [0u8; HEADER_LEN];
    let mut filled = 0;
    while filled < HEADER_LEN {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(FormatError::Io {
                    offset: filled as u64,
                    source,
                });
            }
        }
    }
    let got = &buf[..filled];
    let corrupt = |offset: usize, reason| FormatError::Corrupt {
        offset: offset as u64,
        reason,
    };
    let magic_seen = got.len().min(MAGIC.len());
    if got[..magic_seen] != MAGIC[..magic_seen] {
        // A file the file system extended but whose first bytes never
        // reached the disk: a crash while it was being created.
        if got.iter().all(|&byte| byte == 0) && rest_is_zeros(input, filled as u64)? {
            return Err(FormatError::Truncated { offset: 0 });
        }
        return Err(corrupt(0, Corruption::BadMagic));
    }
    let kind = match got.get(7) {
        Some(&byte) => {
            Some(Kind::from_byte(byte).ok_or(corrupt(7, Corruption::UnknownKind(byte)))?)
        }
        None => None,
    };
    if let Some(version) = got.get(8..10) {
        let version = u16::from_be_bytes([version[0], version[1]]);
        if version != VERSION {
            return Err(corrupt(8, Corruption::UnknownVersion(version)));
        }
    }
    if let Some(flags) = got.get(10..12) {
        let flags = u16::from_be_bytes([flags[0], flags[1]]);
        if flags != 0 {
            return Err(corrupt(10, Corruption::UnknownFlags(flags)));
        }
    }
    let Some(kind) = kind.filter(|_| filled == HEADER_LEN) else {
        return Err(FormatError::Truncated { offset: 0 });
    };
    let u64_at = |at: usize| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&buf[at..at + 8]);
        u64::from_be_bytes(bytes)
    };
    let crc = u32::from_be_bytes([buf[28], buf[29], buf[30], buf[31]]);
    if crc32c::crc32c(&buf[..28]) != crc {
        return Err(corrupt(28, Corruption::HeaderChecksum));
    }
    Ok(Header {
        kind,
        version: VERSION,
        fields: HeaderFields {
            created_ms: u64_at(12),
            sequence: u64_at(20),
        },
    })
}

/// Consumes the rest of `input`, which starts at `offset`; true if it is all
/// zero bytes.
fn rest_is_zeros(input: &mut impl Read, mut offset: u64) -> Result<bool, FormatError> {
    let mut chunk = [0u8; 4096];
    loop {
        match input.read(&mut chunk) {
            Ok(0) => return Ok(true),
            Ok(n) if chunk[..n].iter().any(|&byte| byte != 0) => return Ok(false),
            Ok(n) => offset += n as u64,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => return Err(FormatError::Io { offset, source }),
        }
    }
}

#[cfg(test)]
mod tests;
