//! RESP, the Redis serialization protocol (RESP2 and RESP3), plus inline
//! commands.
//!
//! Requests arrive as arrays of bulk strings (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`)
//! or, from a person typing into telnet, as an inline line (`GET k\r\n`) that
//! is split on spaces with Redis's quoting rules. Requests look the same in
//! both versions; only replies differ. A RESP2 reply is one of five types,
//! with `$-1` (or `*-1`) for [`Frame::Null`]. RESP3, which a client asks for
//! with `HELLO 3`, adds maps (`%`), sets (`~`), doubles (`,`), booleans
//! (`#`), verbatim strings (`=`), big numbers (`(`), blob errors (`!`), push
//! messages (`>`) and one null (`_`). Written for a RESP2 client, each RESP3
//! type becomes what Redis sends in its place ([`encode_frame`]); the
//! decoder reads both versions (attributes, `|`, which Redis sends to no
//! command Keycafe has, are refused as an unknown type).
//!
//! Parsing is incremental: every function here first finds out whether the
//! whole frame has arrived and returns `Ok(None)` when it has not, consuming
//! nothing, so the caller reads more and tries again. Every length is checked
//! against [`Limits`] before it is trusted, and nothing is allocated from it.

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

use crate::{Frame, Limits, ProtocolError};

type Result<T> = std::result::Result<T, ProtocolError>;

/// The longest `*<n>`/`$<n>`/`:<n>` line we wait for: a sign, 19 digits, CRLF.
const MAX_NUMBER_LINE: usize = 22;

/// How deep reply arrays may nest before a decoder gives up (no stack overflow
/// from a hostile peer).
const MAX_DEPTH: usize = 64;

// ---------------------------------------------------------------------------
// Requests (server side)
// ---------------------------------------------------------------------------

/// How far a request that has not fully arrived was checked, so that the
/// next attempt on the same buffer (grown at its end) resumes there instead
/// of starting over. Without it, a request of a million arguments arriving a
/// few hundred bytes at a time would be re-read from its first argument on
/// every read: quadratic work that one client could make the server do.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Nothing of the request at the front has been checked.
    #[default]
    Start,
    /// A multibulk request of `count` arguments: those whose spans are
    /// recorded are complete, and the next one starts at `pos`.
    Multibulk { count: usize, pos: usize },
    /// An inline line with no newline in its first `scanned` bytes.
    Inline { scanned: usize },
}

/// Parses one request from the front of `buf`, recording each argument's span.
///
/// Returns the number of bytes the request used, or `None` if it has not fully
/// arrived. Multibulk arguments are spans of `buf` (`inline` stays false);
/// inline arguments are unquoted into `scratch` and their spans point there
/// (`inline` is set true). An empty request (`*0`, a blank line) yields zero
/// spans and is skipped by the caller, as Redis does.
///
/// `progress` carries what an earlier call that returned `None` had checked:
/// the caller must pass the same request again, at the front of `buf`, with
/// more bytes after it (which is what a connection's read buffer holds). It
/// is reset when a request completes or is refused. Returns, beside the
/// outcome, how many bytes of `buf` this call went over: the parse work.
pub fn parse_request(
    buf: &[u8],
    limits: &Limits,
    spans: &mut Vec<Range<usize>>,
    scratch: &mut Vec<u8>,
    inline: &mut bool,
    progress: &mut Progress,
) -> (Result<Option<usize>>, usize) {
    if buf.is_empty() {
        // Nothing to tell an inline line from a multibulk request yet.
        *progress = Progress::Start;
        return (Ok(None), 0);
    }
    let resumed = match *progress {
        Progress::Multibulk { pos, .. } if pos > buf.len() => Progress::Start,
        Progress::Inline { scanned } if scanned > buf.len() => Progress::Start,
        resumed => resumed,
    };
    *inline = match resumed {
        Progress::Start => {
            spans.clear();
            buf.first() != Some(&b'*')
        }
        Progress::Inline { .. } => true,
        Progress::Multibulk { .. } => false,
    };
    let (outcome, examined) = if *inline {
        let scanned = match resumed {
            Progress::Inline { scanned } => scanned,
            _ => 0,
        };
        parse_inline(buf, limits, spans, scratch, scanned, progress)
    } else {
        parse_multibulk(buf, limits, spans, resumed, progress)
    };
    if !matches!(outcome, Ok(None)) {
        *progress = Progress::Start;
    }
    (outcome, examined)
}

/// [`parse_request`] for a multibulk request, from where `resumed` says.
fn parse_multibulk(
    buf: &[u8],
    limits: &Limits,
    spans: &mut Vec<Range<usize>>,
    resumed: Progress,
    progress: &mut Progress,
) -> (Result<Option<usize>>, usize) {
    let (count, mut pos) = match resumed {
        Progress::Multibulk { count, pos } => (count, pos),
        _ => match number_line(buf, 1, ProtocolError::InvalidMultibulkLength) {
            Err(err) => return (Err(err), MAX_NUMBER_LINE),
            Ok(None) => return (Ok(None), buf.len().min(MAX_NUMBER_LINE)),
            Ok(Some((count, pos))) if count <= 0 => return (Ok(Some(pos)), pos),
            Ok(Some((count, _))) if count as u64 > limits.max_args as u64 => {
                return (Err(limits.too_many_args()), MAX_NUMBER_LINE);
            }
            Ok(Some((count, pos))) => (count as usize, pos),
        },
    };
    let start = pos;
    let outcome = bulk_arguments(buf, limits, spans, count, &mut pos);
    if let Ok(None) = outcome {
        *progress = Progress::Multibulk { count, pos };
    }
    // The header of an argument not yet complete was read too.
    (outcome, pos - start + MAX_NUMBER_LINE)
}

/// Reads bulk-string arguments from `pos` until `spans` holds `count` of
/// them; `pos` is left after the last complete one.
fn bulk_arguments(
    buf: &[u8],
    limits: &Limits,
    spans: &mut Vec<Range<usize>>,
    count: usize,
    pos: &mut usize,
) -> Result<Option<usize>> {
    while spans.len() < count {
        let Some(&tag) = buf.get(*pos) else {
            return Ok(None);
        };
        if tag != b'$' {
            return Err(ProtocolError::UnexpectedByte {
                expected: '$',
                got: char::from(tag),
            });
        }
        let Some((len, start)) = number_line(buf, *pos + 1, ProtocolError::InvalidBulkLength)?
        else {
            return Ok(None);
        };
        if len < 0 {
            return Err(ProtocolError::InvalidBulkLength);
        }
        if len as u64 > limits.max_bulk_len as u64 {
            return Err(limits.bulk_too_long());
        }
        let end = start + len as usize;
        if end as u64 > limits.max_frame_len as u64 {
            return Err(ProtocolError::FrameTooLarge(end as u64));
        }
        match buf.get(end..end + 2) {
            None => return Ok(None),
            Some(b"\r\n") => {}
            Some(_) => return Err(ProtocolError::Malformed("bulk string not followed by CRLF")),
        }
        spans.push(start..end);
        *pos = end + 2;
    }
    Ok(Some(*pos))
}

/// Reads `<integer>\r\n` starting at `start`. `Ok(None)` if the line has not
/// fully arrived; `invalid` if it is not a number or is too long to be one.
fn number_line(buf: &[u8], start: usize, invalid: ProtocolError) -> Result<Option<(i64, usize)>> {
    let rest = buf.get(start..).unwrap_or_default();
    // The common case first, cheaply: a few digits and CR LF (`3\r\n` of
    // `*3`, `16\r\n` of `$16`). Every request has one number line per
    // argument and one more, so this is on the path of every command.
    if let Some(found) = short_number_line(rest) {
        return Ok(Some((found.0, start + found.1)));
    }
    let window = &rest[..rest.len().min(MAX_NUMBER_LINE)];
    let Some(cr) = memchr::memchr(b'\r', window) else {
        return if rest.len() >= MAX_NUMBER_LINE {
            Err(invalid)
        } else {
            Ok(None)
        };
    };
    match rest.get(cr + 1) {
        None => return Ok(None),
        Some(b'\n') => {}
        Some(_) => return Err(invalid),
    }
    let value = parse_i64(&rest[..cr]).ok_or(invalid)?;
    Ok(Some((value, start + cr + 2)))
}

/// Reads a canonical non-negative number of at most [`SHORT_DIGITS`]
/// digits followed by CR LF: its value and the length of the line. `None`
/// for anything else (a sign, a leading zero, more digits, a line not yet
/// whole), which [`number_line`] then reads the careful way.
#[inline]
fn short_number_line(line: &[u8]) -> Option<(i64, usize)> {
    let mut value: i64 = 0;
    let mut digits = 0;
    while let Some(&byte) = line.get(digits) {
        if !byte.is_ascii_digit() || digits == SHORT_DIGITS {
            break;
        }
        value = value * 10 + i64::from(byte - b'0');
        digits += 1;
    }
    let canonical = digits == 1 || (digits > 1 && line[0] != b'0');
    let ends = line.get(digits..digits + 2) == Some(b"\r\n".as_slice());
    (canonical && ends).then_some((value, digits + 2))
}

/// The most digits [`short_number_line`] reads: few enough that the value
/// cannot overflow.
const SHORT_DIGITS: usize = 9;

/// Parses a decimal `i64` with an optional leading `-`, with no other
/// characters allowed (the strictness Redis applies to lengths and integers).
pub fn parse_i64(digits: &[u8]) -> Option<i64> {
    let (negative, digits) = match digits.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, digits),
    };
    if digits.is_empty() || digits.len() > 19 || (digits.len() > 1 && digits[0] == b'0') {
        return None;
    }
    let mut value: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        let digit = i64::from(d - b'0');
        value = if negative {
            value.checked_mul(10)?.checked_sub(digit)?
        } else {
            value.checked_mul(10)?.checked_add(digit)?
        };
    }
    if negative && value == 0 {
        return None; // "-0" is not a canonical integer
    }
    Some(value)
}

/// [`parse_request`] for an inline line, whose first `scanned` bytes are
/// known to hold no newline.
fn parse_inline(
    buf: &[u8],
    limits: &Limits,
    spans: &mut Vec<Range<usize>>,
    scratch: &mut Vec<u8>,
    scanned: usize,
    progress: &mut Progress,
) -> (Result<Option<usize>>, usize) {
    let window = &buf[..buf.len().min(limits.max_inline_len + 1)];
    let examined = window.len().saturating_sub(scanned);
    let Some(newline) = memchr::memchr(b'\n', &window[scanned.min(window.len())..]) else {
        if buf.len() > limits.max_inline_len {
            return (Err(ProtocolError::InlineTooLong), examined);
        }
        *progress = Progress::Inline {
            scanned: window.len(),
        };
        return (Ok(None), examined);
    };
    let newline = scanned + newline;
    let mut line = &buf[..newline];
    if let Some(stripped) = line.strip_suffix(b"\r") {
        line = stripped;
    }
    let examined = newline + 1 - scanned.min(newline) + line.len();
    if let Err(err) = split_inline_args(line, spans, scratch) {
        return (Err(err), examined);
    }
    if spans.len() > limits.max_args {
        return (Err(ProtocolError::InvalidMultibulkLength), examined);
    }
    (Ok(Some(newline + 1)), examined)
}

/// Splits one command line into arguments with the quoting rules of inline
/// commands (redis-cli's): for tools that read commands from a person, such
/// as keycafe-cli's prompt.
pub fn split_command_line(line: &[u8]) -> Result<Vec<Vec<u8>>> {
    let (mut spans, mut out) = (Vec::new(), Vec::new());
    split_inline_args(line, &mut spans, &mut out)?;
    Ok(spans.into_iter().map(|span| out[span].to_vec()).collect())
}

/// Splits an inline line into arguments the way redis-cli and Redis do:
/// separated by whitespace, with "double quotes" (C escapes such as `\n` and
/// `\x41`) and 'single quotes' (only `\'` escaped), which may also close a
/// word (`foo"bar"`). A closing quote must be followed by whitespace or the
/// end of the line.
fn split_inline_args(line: &[u8], spans: &mut Vec<Range<usize>>, out: &mut Vec<u8>) -> Result<()> {
    out.clear();
    let mut i = 0;
    loop {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == line.len() {
            return Ok(());
        }
        let start = out.len();
        // A quote opens a quoted part even inside a word (`foo"bar"` is
        // `foobar`), and that part ends the argument.
        loop {
            match line.get(i) {
                Some(b'"') => i = read_double_quoted(line, i + 1, out)?,
                Some(b'\'') => i = read_single_quoted(line, i + 1, out)?,
                Some(&byte) if !byte.is_ascii_whitespace() => {
                    out.push(byte);
                    i += 1;
                    continue;
                }
                _ => {}
            }
            break;
        }
        spans.push(start..out.len());
    }
}

fn read_double_quoted(line: &[u8], mut i: usize, out: &mut Vec<u8>) -> Result<usize> {
    loop {
        match line.get(i) {
            None => return Err(ProtocolError::UnbalancedQuotes),
            Some(b'"') => return after_closing_quote(line, i + 1),
            Some(b'\\') => {
                // Two hex digits exactly (`from_str_radix` alone would take "+f").
                let hex = line
                    .get(i + 2..i + 4)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
                match (line.get(i + 1), hex) {
                    (Some(b'x'), Some(byte)) => {
                        out.push(byte);
                        i += 4;
                    }
                    (Some(&escaped), _) => {
                        out.push(match escaped {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 0x08,
                            b'a' => 0x07,
                            other => other,
                        });
                        i += 2;
                    }
                    (None, _) => return Err(ProtocolError::UnbalancedQuotes),
                }
            }
            Some(&byte) => {
                out.push(byte);
                i += 1;
            }
        }
    }
}

fn read_single_quoted(line: &[u8], mut i: usize, out: &mut Vec<u8>) -> Result<usize> {
    loop {
        match line.get(i) {
            None => return Err(ProtocolError::UnbalancedQuotes),
            Some(b'\'') => return after_closing_quote(line, i + 1),
            Some(b'\\') if line.get(i + 1) == Some(&b'\'') => {
                out.push(b'\'');
                i += 2;
            }
            Some(&byte) => {
                out.push(byte);
                i += 1;
            }
        }
    }
}

fn after_closing_quote(line: &[u8], i: usize) -> Result<usize> {
    match line.get(i) {
        None => Ok(i),
        Some(b) if b.is_ascii_whitespace() => Ok(i),
        Some(_) => Err(ProtocolError::UnbalancedQuotes),
    }
}

// ---------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------

/// Writes a request as a RESP array of bulk strings.
pub fn encode_request<A: AsRef<[u8]>>(args: &[A], out: &mut BytesMut) {
    write_header(out, b'*', args.len() as i64);
    for arg in args {
        write_bulk(out, arg.as_ref());
    }
}

/// Writes any frame in RESP2, each RESP3 type as Redis sends it to a
/// RESP2 client: a map as a flat array of keys and values, a set or a push
/// as an array, a double, big number or verbatim string as a bulk, a
/// boolean as `:1`/`:0`.
pub fn encode_frame(frame: &Frame, out: &mut BytesMut) {
    write_frame(frame, out, false);
}

/// Writes any frame in RESP3.
pub fn encode_frame_resp3(frame: &Frame, out: &mut BytesMut) {
    write_frame(frame, out, true);
}

fn write_frame(frame: &Frame, out: &mut BytesMut, resp3: bool) {
    let items = |items: &[Frame], out: &mut BytesMut| {
        items.iter().for_each(|item| write_frame(item, out, resp3));
    };
    match frame {
        Frame::Simple(text) => write_line(out, b'+', text),
        Frame::Error(text) => write_line(out, b'-', text),
        Frame::Integer(n) => write_header(out, b':', *n),
        Frame::Bulk(data) => write_bulk(out, data),
        Frame::Null => write_null(out, resp3),
        Frame::Array(list) => {
            write_header(out, b'*', list.len() as i64);
            items(list, out);
        }
        Frame::Set(list) => {
            write_header(out, if resp3 { b'~' } else { b'*' }, list.len() as i64);
            items(list, out);
        }
        Frame::Push(list) => {
            write_header(out, if resp3 { b'>' } else { b'*' }, list.len() as i64);
            items(list, out);
        }
        Frame::Map(pairs) => {
            write_map_header(out, pairs.len(), resp3);
            for (key, value) in pairs {
                write_frame(key, out, resp3);
                write_frame(value, out, resp3);
            }
        }
        Frame::Double(text) if resp3 => write_line(out, b',', text),
        Frame::BigNumber(text) if resp3 => write_line(out, b'(', text),
        Frame::Double(text) | Frame::BigNumber(text) => write_bulk(out, text),
        Frame::Boolean(value) => write_boolean(out, *value, resp3),
        Frame::Verbatim { format, text } if resp3 => write_verbatim(out, format, text),
        Frame::Verbatim { text, .. } => write_bulk(out, text),
    }
}

/// RESP2's null bulk string or RESP3's null.
pub(crate) fn write_null(out: &mut BytesMut, resp3: bool) {
    out.put_slice(if resp3 { b"_\r\n" } else { b"$-1\r\n" });
}

/// A map of `len` pairs: RESP3's `%`, or RESP2's array of keys and values.
pub(crate) fn write_map_header(out: &mut BytesMut, len: usize, resp3: bool) {
    match resp3 {
        true => write_header(out, b'%', len as i64),
        false => write_header(out, b'*', 2 * len as i64),
    }
}

/// RESP3's `#t`/`#f`, or RESP2's `:1`/`:0`.
pub(crate) fn write_boolean(out: &mut BytesMut, value: bool, resp3: bool) {
    out.put_slice(match (resp3, value) {
        (true, true) => b"#t\r\n",
        (true, false) => b"#f\r\n",
        (false, true) => b":1\r\n",
        (false, false) => b":0\r\n",
    });
}

/// RESP3's verbatim string: `=<len>\r\n<format>:<text>\r\n`.
pub(crate) fn write_verbatim(out: &mut BytesMut, format: &[u8; 3], text: &[u8]) {
    write_header(out, b'=', text.len() as i64 + 4);
    out.put_slice(format);
    out.put_u8(b':');
    out.put_slice(text);
    out.put_slice(b"\r\n");
}

/// A double as Redis writes it in a reply (`d2string` in Redis 7.2): `nan`,
/// `inf`, `-inf`, `0`, `-0`; an integral value of magnitude up to 2^62 as an
/// integer; anything else in the fewest digits that read back as the same
/// double, in plain notation unless the exponent is far from the digits
/// (`0.30000000000000004`, `1e-7`, `1.5e+300`). Redis 7.0 printed `%.17g`
/// (`0.10000000000000001` for 0.1); 7.2 changed to this.
///
/// Held on the stack: writing a double allocates nothing.
pub struct DoubleText {
    buf: [u8; 32],
    len: usize,
}

impl DoubleText {
    pub fn new(value: f64) -> DoubleText {
        let mut text = DoubleText {
            buf: [0; 32],
            len: 0,
        };
        if value.is_nan() {
            text.push(b"nan");
        } else if value.is_infinite() {
            text.push(if value < 0.0 { b"-inf" } else { b"inf" });
        } else if value == 0.0 {
            text.push(if value.is_sign_negative() {
                b"-0"
            } else {
                b"0"
            });
        } else if let Some(integer) = exact_integer(value) {
            text.push(itoa::Buffer::new().format(integer).as_bytes());
        } else {
            text.push_shortest(value);
        }
        text
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    fn push(&mut self, bytes: &[u8]) {
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    /// Lays out the shortest round-trip digits of a finite, non-zero value
    /// with the rules of Redis's `fpconv_dtoa`.
    fn push_shortest(&mut self, value: f64) {
        use std::io::Write as _;
        if value.is_sign_negative() {
            self.push(b"-");
        }
        // Rust's `{:e}` gives the shortest digits that round-trip, as
        // `d.ddde<exponent>`; only their layout is left to do.
        let mut scientific = [0u8; 32];
        let written = {
            let mut cursor = &mut scientific[..];
            write!(cursor, "{:e}", value.abs()).expect("32 bytes hold any f64 in `{:e}`");
            32 - cursor.len()
        };
        let scientific = &scientific[..written];
        let e_at = scientific
            .iter()
            .position(|&b| b == b'e')
            .expect("`{:e}` writes an exponent");
        let exponent: i32 = std::str::from_utf8(&scientific[e_at + 1..])
            .ok()
            .and_then(|e| e.parse().ok())
            .expect("`{:e}` writes a decimal exponent");
        let mut digits = [0u8; 20];
        let mut count = 0;
        for &byte in scientific[..e_at].iter().filter(|&&b| b != b'.') {
            digits[count] = byte;
            count += 1;
        }
        let digits = &digits[..count];
        let count = count as i32;
        // value = digits × 10^shift
        let shift = exponent - (count - 1);
        let magnitude = exponent.abs();
        if shift >= 0 && magnitude < count + 7 {
            self.push(digits);
            (0..shift).for_each(|_| self.push(b"0"));
        } else if shift < 0 && (shift > -7 || magnitude < 4) {
            let point = count + shift;
            if point <= 0 {
                self.push(b"0.");
                (0..-point).for_each(|_| self.push(b"0"));
                self.push(digits);
            } else {
                let (whole, fraction) = digits.split_at(point as usize);
                self.push(whole);
                self.push(b".");
                self.push(fraction);
            }
        } else {
            self.push(&digits[..1]);
            if digits.len() > 1 {
                self.push(b".");
                self.push(&digits[1..]);
            }
            self.push(if exponent < 0 { b"e-" } else { b"e+" });
            self.push(itoa::Buffer::new().format(magnitude).as_bytes());
        }
    }
}

/// The value as an `i64` if it is a whole number small enough that Redis
/// prints it as one (within ±2^62).
fn exact_integer(value: f64) -> Option<i64> {
    const LIMIT: f64 = (i64::MAX / 2) as f64;
    if !(-LIMIT..=LIMIT).contains(&value) {
        return None;
    }
    let integer = value as i64;
    (integer as f64 == value).then_some(integer)
}

/// `<tag><n>\r\n`, used for integers and for array and bulk headers.
pub(crate) fn write_header(out: &mut BytesMut, tag: u8, n: i64) {
    out.put_u8(tag);
    out.put_slice(itoa::Buffer::new().format(n).as_bytes());
    out.put_slice(b"\r\n");
}

pub(crate) fn write_bulk(out: &mut BytesMut, data: &[u8]) {
    write_header(out, b'$', data.len() as i64);
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

/// A status or error line. CR and LF would end the line early and let the
/// text forge a second reply, so they become spaces.
pub(crate) fn write_line(out: &mut BytesMut, tag: u8, text: &[u8]) {
    out.put_u8(tag);
    if text.iter().any(|&b| b == b'\r' || b == b'\n') {
        out.extend(
            text.iter()
                .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
    } else {
        out.put_slice(text);
    }
    out.put_slice(b"\r\n");
}

// ---------------------------------------------------------------------------
// Decoding replies (client side)
// ---------------------------------------------------------------------------

/// Decodes one frame from the front of `buf`, removing its bytes, or returns
/// `None` (consuming nothing) if it has not fully arrived.
pub fn decode_frame(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Frame>> {
    let Some(len) = check_frame(buf, 0, limits, 0)? else {
        return Ok(None);
    };
    let bytes = buf.split_to(len).freeze();
    let (frame, used) = parse_frame(&bytes, 0);
    debug_assert_eq!(used, len, "check_frame and parse_frame disagree");
    Ok(Some(frame))
}

/// Step one: is a whole, well-formed frame at `pos`? Returns its end.
fn check_frame(buf: &[u8], pos: usize, limits: &Limits, depth: usize) -> Result<Option<usize>> {
    let Some(&tag) = buf.get(pos) else {
        return Ok(None);
    };
    match tag {
        b'+' | b'-' | b',' | b'(' => check_line(buf, pos, limits),
        b':' => Ok(number_line(buf, pos + 1, ProtocolError::InvalidInteger)?.map(|(_, end)| end)),
        b'_' => check_exact(buf, pos, &[b"_\r\n"], "malformed null"),
        b'#' => check_exact(buf, pos, &[b"#t\r\n", b"#f\r\n"], "malformed boolean"),
        b'$' | b'!' | b'=' => {
            let Some((len, start)) = number_line(buf, pos + 1, ProtocolError::InvalidBulkLength)?
            else {
                return Ok(None);
            };
            if len == -1 && tag == b'$' {
                return Ok(Some(start));
            }
            if len < 0 || len as u64 > limits.max_bulk_len as u64 {
                return Err(ProtocolError::InvalidBulkLength);
            }
            let end = start + len as usize;
            match buf.get(end..end + 2) {
                None => Ok(None),
                Some(b"\r\n") if tag == b'=' && (len < 4 || buf[start + 3] != b':') => {
                    Err(ProtocolError::Malformed("verbatim string without a format"))
                }
                Some(b"\r\n") => Ok(Some(end + 2)),
                Some(_) => Err(ProtocolError::Malformed("bulk string not followed by CRLF")),
            }
        }
        b'*' | b'~' | b'>' | b'%' => {
            let Some((count, mut next)) =
                number_line(buf, pos + 1, ProtocolError::InvalidMultibulkLength)?
            else {
                return Ok(None);
            };
            if count == -1 && tag == b'*' {
                return Ok(Some(next));
            }
            if count < 0 || count as u64 > limits.max_args as u64 {
                return Err(ProtocolError::InvalidMultibulkLength);
            }
            if depth >= MAX_DEPTH {
                return Err(ProtocolError::Malformed("arrays nested too deeply"));
            }
            // A map's count is of pairs.
            let items = if tag == b'%' { 2 * count } else { count };
            for _ in 0..items {
                match check_frame(buf, next, limits, depth + 1)? {
                    Some(end) => next = end,
                    None => return Ok(None),
                }
            }
            Ok(Some(next))
        }
        other => Err(ProtocolError::UnknownFrameType(other)),
    }
}

/// A status, error, double or big number line at `pos`.
fn check_line(buf: &[u8], pos: usize, limits: &Limits) -> Result<Option<usize>> {
    // The line ends at its first CR, which must be followed by LF: the
    // rule `parse_frame` uses too, so both steps agree on the frame's
    // end (a bare CR or LF inside the text is rejected, not skipped).
    // The text is bounded by `max_bulk_len` whether or not its end
    // has arrived yet.
    let rest = &buf[pos + 1..];
    let too_long = ProtocolError::Malformed("status line too long");
    match memchr::memchr2(b'\r', b'\n', rest) {
        Some(end) if end > limits.max_bulk_len => Err(too_long),
        Some(i) if rest[i] == b'\n' => Err(ProtocolError::Malformed("status line without CR")),
        Some(cr) => match rest.get(cr + 1) {
            Some(b'\n') => Ok(Some(pos + 1 + cr + 2)),
            Some(_) => Err(ProtocolError::Malformed("CR inside a status line")),
            None => Ok(None),
        },
        None if rest.len() > limits.max_bulk_len => Err(too_long),
        None => Ok(None),
    }
}

/// A frame that must be one of a few exact byte strings (`_\r\n`, `#t\r\n`).
fn check_exact(
    buf: &[u8],
    pos: usize,
    allowed: &[&[u8]],
    malformed: &'static str,
) -> Result<Option<usize>> {
    let rest = &buf[pos..];
    for frame in allowed {
        if rest.starts_with(frame) {
            return Ok(Some(pos + frame.len()));
        }
        if frame.starts_with(rest) {
            return Ok(None);
        }
    }
    Err(ProtocolError::Malformed(malformed))
}

/// Step two: build the frame that [`check_frame`] vouched for. Strings are
/// slices of `buf`, not copies.
fn parse_frame(buf: &Bytes, pos: usize) -> (Frame, usize) {
    let line_end = |from: usize| from + memchr::memchr(b'\r', &buf[from..]).unwrap_or(0);
    let number = |from: usize| {
        let end = line_end(from);
        (parse_i64(&buf[from..end]).unwrap_or(0), end + 2)
    };
    let tag = buf[pos];
    match tag {
        b'+' | b'-' | b',' | b'(' => {
            let end = line_end(pos + 1);
            let text = buf.slice(pos + 1..end);
            let frame = match tag {
                b'+' => Frame::Simple(text),
                b'-' => Frame::Error(text),
                b',' => Frame::Double(text),
                _ => Frame::BigNumber(text),
            };
            (frame, end + 2)
        }
        b':' => {
            let (n, next) = number(pos + 1);
            (Frame::Integer(n), next)
        }
        b'_' => (Frame::Null, pos + 3),
        b'#' => (Frame::Boolean(buf[pos + 1] == b't'), pos + 4),
        b'$' | b'!' | b'=' => match number(pos + 1) {
            (-1, next) => (Frame::Null, next),
            (len, start) => {
                let end = start + len as usize;
                let frame = match tag {
                    b'$' => Frame::Bulk(buf.slice(start..end)),
                    b'!' => Frame::Error(buf.slice(start..end)),
                    _ => Frame::Verbatim {
                        format: [buf[start], buf[start + 1], buf[start + 2]],
                        text: buf.slice(start + 4..end),
                    },
                };
                (frame, end + 2)
            }
        },
        _ => match number(pos + 1) {
            (-1, next) => (Frame::Null, next),
            (count, mut next) => {
                let mut item = || {
                    let (item, end) = parse_frame(buf, next);
                    next = end;
                    item
                };
                let frame = match tag {
                    b'%' => Frame::Map((0..count).map(|_| (item(), item())).collect()),
                    b'~' => Frame::Set((0..count).map(|_| item()).collect()),
                    b'>' => Frame::Push((0..count).map(|_| item()).collect()),
                    _ => Frame::Array((0..count).map(|_| item()).collect()),
                };
                (frame, next)
            }
        },
    }
}

#[cfg(test)]
mod tests {

    /// The quick reading of a number line agrees with the careful one
    /// wherever it answers, and answers for every short canonical number.
    #[test]
    fn short_number_lines_read_as_the_careful_way_reads_them() {
        let mut lines: Vec<Vec<u8>> = Vec::new();
        for text in [
            "0",
            "7",
            "16",
            "00",
            "01",
            "-1",
            "-0",
            "",
            "123456789",
            "1234567890",
            "99x",
        ] {
            for end in ["\r\n", "\r", "", "\rx"] {
                lines.push(format!("{text}{end}").into_bytes());
            }
        }
        lines.extend(
            (0..100_000u32)
                .step_by(7)
                .map(|n| format!("{n}\r\n").into_bytes()),
        );
        for line in lines {
            let careful = line
                .iter()
                .position(|&b| b == b'\r')
                .filter(|&cr| line.get(cr + 1) == Some(&b'\n'))
                .and_then(|cr| Some((parse_i64(&line[..cr])?, cr + 2)));
            match short_number_line(&line) {
                Some(quick) => assert_eq!(Some(quick), careful, "{line:?}"),
                None => assert!(
                    careful.is_none() || line.len() > SHORT_DIGITS + 2 || line.starts_with(b"-"),
                    "{line:?} left to the careful way"
                ),
            }
        }
    }
    use super::*;

    #[test]
    fn parse_i64_is_strict() {
        let valid: &[(&[u8], i64)] = &[
            (b"0", 0),
            (b"7", 7),
            (b"-1", -1),
            (b"9223372036854775807", i64::MAX),
            (b"-9223372036854775808", i64::MIN),
        ];
        for &(digits, value) in valid {
            assert_eq!(parse_i64(digits), Some(value));
        }
        let invalid: &[&[u8]] = &[
            b"",
            b"-",
            b"+1",
            b"01",
            b"-0",
            b"-01",
            b" 1",
            b"1 ",
            b"1a",
            b"0x1",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"00000000000000000001",
        ];
        for &digits in invalid {
            assert_eq!(
                parse_i64(digits),
                None,
                "{:?}",
                String::from_utf8_lossy(digits)
            );
        }
    }

    fn split(line: &[u8]) -> Result<Vec<Vec<u8>>> {
        let (mut spans, mut scratch) = (Vec::new(), Vec::new());
        split_inline_args(line, &mut spans, &mut scratch)?;
        Ok(spans
            .into_iter()
            .map(|span| scratch[span].to_vec())
            .collect())
    }

    #[test]
    fn hex_escape_needs_two_hex_digits() {
        // `u8::from_str_radix` alone accepts a sign, so "\x+f" once became 0x0f.
        assert_eq!(split(br#""\x+f""#), Ok(vec![b"x+f".to_vec()]));
        assert_eq!(split(br#""\x0f""#), Ok(vec![vec![0x0f]]));
    }

    #[test]
    fn quote_inside_a_word() {
        assert_eq!(split(br#"foo"bar baz""#), Ok(vec![b"foobar baz".to_vec()]));
        assert_eq!(
            split(br#"foo"bar"baz"#),
            Err(ProtocolError::UnbalancedQuotes)
        );
    }

    #[test]
    fn doubles_are_written_as_redis_7_2_writes_them() {
        let cases: &[(f64, &str)] = &[
            (1.5, "1.5"),
            (0.1, "0.1"),
            (0.1 + 0.2, "0.30000000000000004"),
            (-2.5, "-2.5"),
            (3.0, "3"),
            (-17.0, "-17"),
            (0.0, "0"),
            (-0.0, "-0"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
            (0.001, "0.001"),
            (0.000125, "0.000125"),
            (1.25e-6, "1.25e-6"),
            (1e-7, "1e-7"),
            (1.5e-7, "1.5e-7"),
            (1.0000001, "1.0000001"),
            (123456.789, "123456.789"),
            (1e17, "100000000000000000"),
            (4611686018427387904.0, "4611686018427387904"),
            (1e19, "1e+19"),
            (1.2345678901234567e19, "12345678901234567000"),
            (1e21, "1e+21"),
            (1e300, "1e+300"),
            (-1e300, "-1e+300"),
            (1e-300, "1e-300"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
        ];
        for &(value, text) in cases {
            assert_eq!(
                std::str::from_utf8(DoubleText::new(value).as_bytes()),
                Ok(text),
                "{value:e}"
            );
        }
    }

    #[test]
    fn resp3_frames_decode() {
        let limits = Limits::default();
        let decode = |bytes: &'static [u8]| {
            let mut buf = BytesMut::from(bytes);
            let frame = decode_frame(&mut buf, &limits);
            assert!(buf.is_empty(), "{bytes:?} consumed whole");
            frame
        };
        let text = |t: &'static str| Bytes::from_static(t.as_bytes());
        assert_eq!(decode(b"_\r\n"), Ok(Some(Frame::Null)));
        assert_eq!(decode(b"#t\r\n"), Ok(Some(Frame::Boolean(true))));
        assert_eq!(
            decode(b",-1.5e+300\r\n"),
            Ok(Some(Frame::Double(text("-1.5e+300"))))
        );
        assert_eq!(
            decode(b"(12345678901234567890\r\n"),
            Ok(Some(Frame::BigNumber(text("12345678901234567890"))))
        );
        assert_eq!(
            decode(b"!7\r\nERR x y\r\n"),
            Ok(Some(Frame::error("ERR x y")))
        );
        assert_eq!(
            decode(b"=8\r\nmkd:a\r\nb\r\n"),
            Ok(Some(Frame::Verbatim {
                format: *b"mkd",
                text: text("a\r\nb")
            }))
        );
        assert_eq!(
            decode(b"%2\r\n+a\r\n:1\r\n+b\r\n~1\r\n_\r\n"),
            Ok(Some(Frame::Map(vec![
                (Frame::simple("a"), Frame::Integer(1)),
                (Frame::simple("b"), Frame::Set(vec![Frame::Null])),
            ])))
        );
        assert_eq!(
            decode(b">2\r\n$7\r\nmessage\r\n#f\r\n"),
            Ok(Some(Frame::Push(vec![
                Frame::bulk("message"),
                Frame::Boolean(false)
            ])))
        );
    }

    #[test]
    fn check_and_parse_agree_on_status_lines() {
        // A CR inside a status line used to pass the check (which looked for
        // the first LF) while the parse stopped at the first CR.
        let limits = Limits::default();
        assert!(check_frame(b"+a\rb\r\n", 0, &limits, 0).is_err());
        assert_eq!(check_frame(b"+a b\r\n", 0, &limits, 0), Ok(Some(6)));
        let bytes = Bytes::from_static(b"+a b\r\n");
        assert_eq!(parse_frame(&bytes, 0), (Frame::simple("a b"), 6));
    }
}
