//! Keycafe's native binary protocol.
//!
//! Every frame is a 4-byte big-endian length followed by exactly that many
//! bytes holding one typed value, so a reader knows whether a frame is
//! complete from its first four bytes alone, and can never be fooled into
//! scanning for delimiters inside binary data. Values are:
//!
//! | tag | type    | payload                               |
//! |-----|---------|---------------------------------------|
//! | `+` | simple  | u32 length, bytes                     |
//! | `-` | error   | u32 length, bytes                     |
//! | `:` | integer | i64, big-endian                       |
//! | `$` | bulk    | u32 length, bytes                     |
//! | `_` | null    | nothing                               |
//! | `*` | array   | u32 count, that many values           |
//!
//! A request is an array of bulk strings, command name first. A connection
//! opens with a [`HELLO_LEN`]-byte hello: the [`MAGIC`] bytes and the client's
//! protocol version; the server answers with the same magic and the version it
//! will speak, or with an error frame and a close. The first magic byte, 0xCA,
//! is not ASCII, which is how a server tells this protocol from RESP on the
//! same port. `docs/protocol.md` is the full specification.

use std::ops::Range;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::{Frame, Limits, ProtocolError};

type Result<T> = std::result::Result<T, ProtocolError>;

/// The four bytes that open a native connection: 0xCA 0xFE, then "KC".
pub const MAGIC: [u8; 4] = [0xCA, 0xFE, b'K', b'C'];
/// The protocol version this crate speaks.
pub const VERSION: u16 = 1;
/// Bytes in a hello: the magic and a big-endian u16 version.
pub const HELLO_LEN: usize = 6;

/// Frame type tags.
pub mod tag {
    pub const SIMPLE: u8 = b'+';
    pub const ERROR: u8 = b'-';
    pub const INTEGER: u8 = b':';
    pub const BULK: u8 = b'$';
    pub const NULL: u8 = b'_';
    pub const ARRAY: u8 = b'*';
}

pub(crate) const LENGTH_PREFIX: usize = 4;
const MAX_DEPTH: usize = 64;
/// The most array elements reserved before they have been decoded.
const MAX_PREALLOCATED_ITEMS: usize = 256;

/// Writes a hello announcing `version`.
pub fn encode_hello(version: u16, out: &mut BytesMut) {
    out.put_slice(&MAGIC);
    out.put_u16(version);
}

/// Reads a hello from the front of `buf`: the peer's version, or `None` if
/// fewer than [`HELLO_LEN`] bytes have arrived. Consumes nothing.
pub fn decode_hello(buf: &[u8]) -> Result<Option<u16>> {
    let prefix = &buf[..buf.len().min(MAGIC.len())];
    if prefix != &MAGIC[..prefix.len()] {
        return Err(ProtocolError::BadMagic);
    }
    if buf.len() < HELLO_LEN {
        return Ok(None);
    }
    Ok(Some(u16::from_be_bytes([buf[4], buf[5]])))
}

/// Returns the length of the whole frame at the front of `buf` (prefix
/// included) once its prefix has arrived, after checking the claimed length
/// against the limit.
fn frame_len(buf: &[u8], limits: &Limits) -> Result<Option<usize>> {
    let Some(prefix) = buf.get(..LENGTH_PREFIX) else {
        return Ok(None);
    };
    let body_len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
    if body_len > limits.max_frame_len {
        return Err(ProtocolError::FrameTooLarge(body_len as u64));
    }
    Ok(Some(LENGTH_PREFIX + body_len))
}

/// [`frame_len`], once the whole frame has arrived.
fn complete_frame_len(buf: &[u8], limits: &Limits) -> Result<Option<usize>> {
    Ok(frame_len(buf, limits)?.filter(|&total| buf.len() >= total))
}

// ---------------------------------------------------------------------------
// Requests (server side)
// ---------------------------------------------------------------------------

/// How far the request at the front of a buffer has been checked while it
/// has not fully arrived, so that the next call goes on from there.
///
/// A request's fields are checked as they arrive (its array count, then each
/// argument's tag and length), not once the whole frame is in: a peer that
/// announces a large frame and then an array count over `max_args`, or a
/// bulk over `max_bulk_len`, is refused as soon as those bytes are read, not
/// after it has sent (or failed to send) the rest. The data of an argument
/// is never looked at, only skipped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// The frame's whole length, prefix included; 0 when nothing of the
    /// request at the front has been checked.
    total: usize,
    /// Where the next unchecked argument header starts.
    pos: usize,
    /// Arguments whose header has not been checked yet.
    left: usize,
}

/// Parses one request frame from the front of `buf`, recording each argument's
/// span in `buf`. Returns the bytes used, or `None` if the frame is incomplete,
/// and beside it the bytes this call looked at (the parse work).
///
/// `progress` carries what an earlier call that returned `None` had checked:
/// the caller must pass the same request again, at the front of `buf`, with
/// more bytes after it, as a connection's read buffer does; `spans` must be
/// left as that call left them. It is reset when a request completes or is
/// refused.
///
/// Which reason a bad request gets is decided in byte order: the length
/// prefix (against `max_frame_len`), then the first tag, the array count
/// (against `max_args`, then against the bytes the frame has left), then
/// each argument's tag and length (against `max_bulk_len`, then against the
/// frame's end), and last any bytes left over. So a request is refused with
/// the same reason however it is split into reads, and as soon as the byte
/// that breaks the protocol has arrived.
pub fn parse_request(
    buf: &[u8],
    limits: &Limits,
    spans: &mut Vec<Range<usize>>,
    progress: &mut Progress,
) -> (Result<Option<usize>>, usize) {
    let mut examined = 0;
    let outcome = check_request(buf, limits, spans, progress, &mut examined);
    if !matches!(outcome, Ok(None)) {
        *progress = Progress::default();
    }
    (outcome, examined)
}

fn check_request(
    buf: &[u8],
    limits: &Limits,
    spans: &mut Vec<Range<usize>>,
    progress: &mut Progress,
    examined: &mut usize,
) -> Result<Option<usize>> {
    let Some(total) = frame_len(buf, limits)? else {
        return Ok(None);
    };
    *examined += LENGTH_PREFIX;
    let mut body = Partial {
        arrived: &buf[..buf.len().min(total)],
        end: total,
        pos: LENGTH_PREFIX,
        examined,
    };
    let mut left = match *progress {
        Progress {
            total: t,
            pos,
            left,
        } if t == total && pos >= LENGTH_PREFIX => {
            body.pos = pos;
            left
        }
        _ => {
            spans.clear();
            let Some(tag) = body.u8()? else {
                return Ok(None);
            };
            if tag != tag::ARRAY {
                return Err(not_a_request(tag));
            }
            let Some(count) = body.u32()? else {
                return Ok(None);
            };
            if count > limits.max_args {
                return Err(limits.too_many_args());
            }
            // Each argument needs a tag and a length: 5 bytes at least.
            if count.saturating_mul(5) > body.end - body.pos {
                return Err(ProtocolError::Malformed("array count exceeds the frame"));
            }
            count
        }
    };
    while left > 0 {
        let header_at = body.pos;
        let Some(tag) = body.u8()? else {
            *progress = Progress {
                total,
                pos: header_at,
                left,
            };
            return Ok(None);
        };
        if tag != tag::BULK {
            return Err(not_a_request(tag));
        }
        let Some(len) = body.u32()? else {
            // Read the tag again next time: it is one byte.
            *progress = Progress {
                total,
                pos: header_at,
                left,
            };
            return Ok(None);
        };
        if len > limits.max_bulk_len {
            return Err(limits.bulk_too_long());
        }
        spans.push(body.skip(len)?);
        left -= 1;
    }
    if body.pos != body.end {
        return Err(ProtocolError::Malformed("trailing bytes after the value"));
    }
    if body.arrived.len() < total {
        *progress = Progress {
            total,
            pos: body.pos,
            left: 0,
        };
        return Ok(None);
    }
    Ok(Some(total))
}

/// The error for a request whose value, or one of whose arguments, has
/// `tag` instead of the array or bulk tag expected.
fn not_a_request(tag: u8) -> ProtocolError {
    match tag {
        tag::SIMPLE | tag::ERROR | tag::INTEGER | tag::BULK | tag::NULL | tag::ARRAY => {
            ProtocolError::NotARequest
        }
        other => ProtocolError::UnknownFrameType(other),
    }
}

/// A cursor over a frame that may not have fully arrived: `arrived` is
/// what has, `end` where the frame ends. Reading past `end` is the peer's
/// error; reading past what has arrived is `None` (wait for more).
struct Partial<'a, 'e> {
    arrived: &'a [u8],
    end: usize,
    pos: usize,
    examined: &'e mut usize,
}

impl Partial<'_, '_> {
    /// The next `N` bytes, once they have arrived.
    fn field<const N: usize>(&mut self) -> Result<Option<[u8; N]>> {
        if self.end - self.pos < N {
            return Err(ProtocolError::Malformed(
                "value runs past the end of its frame",
            ));
        }
        let Some(bytes) = self.arrived.get(self.pos..self.pos + N) else {
            return Ok(None);
        };
        self.pos += N;
        *self.examined += N;
        Ok(Some(bytes.try_into().expect("the slice has N bytes")))
    }

    fn u8(&mut self) -> Result<Option<u8>> {
        Ok(self.field::<1>()?.map(|[b]| b))
    }

    fn u32(&mut self) -> Result<Option<usize>> {
        Ok(self.field::<4>()?.map(|b| u32::from_be_bytes(b) as usize))
    }

    /// Steps over `n` bytes of data, whether or not they have arrived yet.
    fn skip(&mut self, n: usize) -> Result<Range<usize>> {
        if self.end - self.pos < n {
            return Err(ProtocolError::Malformed(
                "value runs past the end of its frame",
            ));
        }
        self.pos += n;
        Ok(self.pos - n..self.pos)
    }
}

/// A bounds-checked cursor over one complete frame.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<Range<usize>> {
        if self.buf.len() - self.pos < n {
            return Err(ProtocolError::Malformed(
                "value runs past the end of its frame",
            ));
        }
        self.pos += n;
        Ok(self.pos - n..self.pos)
    }

    fn u8(&mut self) -> Result<u8> {
        let at = self.take(1)?;
        Ok(self.buf[at.start])
    }

    fn u32(&mut self) -> Result<usize> {
        let at = self.take(4)?;
        let b = &self.buf[at];
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    fn i64(&mut self) -> Result<i64> {
        let at = self.take(8)?;
        Ok((&self.buf[at]).get_i64())
    }

    /// A length-prefixed string's span, its length checked against the limit.
    fn string(&mut self, limits: &Limits) -> Result<Range<usize>> {
        let len = self.u32()?;
        if len > limits.max_bulk_len {
            return Err(limits.bulk_too_long());
        }
        self.take(len)
    }

    /// An array count, checked against the limit and against the bytes left
    /// (each element needs at least `min_item` bytes), so that the count can
    /// size an allocation safely.
    fn count(&mut self, limits: &Limits, min_item: usize) -> Result<usize> {
        let count = self.u32()?;
        if count > limits.max_args {
            return Err(limits.too_many_args());
        }
        if count.saturating_mul(min_item) > self.buf.len() - self.pos {
            return Err(ProtocolError::Malformed("array count exceeds the frame"));
        }
        Ok(count)
    }

    fn finish(&self) -> Result<()> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(ProtocolError::Malformed("trailing bytes after the value"))
        }
    }
}

// ---------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------

/// Reserves the length prefix of a frame; [`end_frame`] fills it in once the
/// value has been written. Returns where the frame starts.
pub(crate) fn begin_frame(out: &mut BytesMut) -> usize {
    let start = out.len();
    out.put_u32(0);
    start
}

/// Writes the body length of the frame begun at `start`.
pub(crate) fn end_frame(out: &mut BytesMut, start: usize) {
    let body_len = out.len() - start - LENGTH_PREFIX;
    let body_len = u32::try_from(body_len).expect("a reply frame larger than 4 GiB is a bug");
    out[start..start + LENGTH_PREFIX].copy_from_slice(&body_len.to_be_bytes());
}

/// Writes a request frame: an array of bulk strings.
pub fn encode_request<A: AsRef<[u8]>>(args: &[A], out: &mut BytesMut) {
    let start = begin_frame(out);
    write_array_header(out, args.len());
    for arg in args {
        write_string(out, tag::BULK, arg.as_ref());
    }
    end_frame(out, start);
}

/// Writes any frame, length prefix included.
pub fn encode_frame(frame: &Frame, out: &mut BytesMut) {
    let start = begin_frame(out);
    write_value(frame, out);
    end_frame(out, start);
}

/// Writes one value (no length prefix). RESP3's types, which this protocol
/// does not have, go as Redis sends them to a RESP2 client: a map as an
/// array of keys and values, a set or push as an array, a double, big
/// number or verbatim string as a bulk, a boolean as the integer 1 or 0.
pub(crate) fn write_value(frame: &Frame, out: &mut BytesMut) {
    let items = |items: &[Frame], out: &mut BytesMut| {
        write_array_header(out, items.len());
        items.iter().for_each(|item| write_value(item, out));
    };
    match frame {
        Frame::Simple(text) => write_string(out, tag::SIMPLE, text),
        Frame::Error(text) => write_string(out, tag::ERROR, text),
        Frame::Integer(n) => write_integer(out, *n),
        Frame::Bulk(data) => write_string(out, tag::BULK, data),
        Frame::Null => out.put_u8(tag::NULL),
        Frame::Array(list) | Frame::Set(list) | Frame::Push(list) => items(list, out),
        Frame::Map(pairs) => {
            write_array_header(out, 2 * pairs.len());
            for (key, value) in pairs {
                write_value(key, out);
                write_value(value, out);
            }
        }
        Frame::Double(text) | Frame::BigNumber(text) => write_string(out, tag::BULK, text),
        Frame::Verbatim { text, .. } => write_string(out, tag::BULK, text),
        Frame::Boolean(value) => write_integer(out, i64::from(*value)),
    }
}

pub(crate) fn write_string(out: &mut BytesMut, tag: u8, data: &[u8]) {
    out.put_u8(tag);
    out.put_u32(data.len() as u32);
    out.put_slice(data);
}

pub(crate) fn write_integer(out: &mut BytesMut, n: i64) {
    out.put_u8(tag::INTEGER);
    out.put_i64(n);
}

pub(crate) fn write_array_header(out: &mut BytesMut, len: usize) {
    out.put_u8(tag::ARRAY);
    out.put_u32(len as u32);
}

// ---------------------------------------------------------------------------
// Decoding replies (client side)
// ---------------------------------------------------------------------------

/// Decodes one frame from the front of `buf`, removing its bytes, or returns
/// `None` (consuming nothing) if it has not fully arrived.
pub fn decode_frame(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Frame>> {
    let Some(total) = complete_frame_len(buf, limits)? else {
        return Ok(None);
    };
    let frame = buf.split_to(total).freeze();
    let mut reader = Reader {
        buf: &frame,
        pos: LENGTH_PREFIX,
    };
    let value = read_value(&mut reader, &frame, limits, 0)?;
    reader.finish()?;
    Ok(Some(value))
}

fn read_value(
    reader: &mut Reader<'_>,
    frame: &Bytes,
    limits: &Limits,
    depth: usize,
) -> Result<Frame> {
    Ok(match reader.u8()? {
        tag::SIMPLE => Frame::Simple(frame.slice(reader.string(limits)?)),
        tag::ERROR => Frame::Error(frame.slice(reader.string(limits)?)),
        tag::BULK => Frame::Bulk(frame.slice(reader.string(limits)?)),
        tag::INTEGER => Frame::Integer(reader.i64()?),
        tag::NULL => Frame::Null,
        tag::ARRAY => {
            if depth >= MAX_DEPTH {
                return Err(ProtocolError::Malformed("arrays nested too deeply"));
            }
            let count = reader.count(limits, 1)?;
            // The count is only known to fit in the bytes left; nested arrays
            // could each claim all of them, so reserve a bounded amount and
            // let the vector grow with elements that really decode.
            let mut items = Vec::with_capacity(count.min(MAX_PREALLOCATED_ITEMS));
            for _ in 0..count {
                items.push(read_value(reader, frame, limits, depth + 1)?);
            }
            Frame::Array(items)
        }
        other => return Err(ProtocolError::UnknownFrameType(other)),
    })
}
