//! One front door for every protocol.
//!
//! A connection's protocol is chosen by its first byte ([`Protocol::detect`]):
//! the native protocol for its whole life, or RESP, which starts as RESP2
//! and may switch to RESP3 and back with `HELLO 3` / `HELLO 2`. Everything
//! above this module (the server's command table, the client's request
//! path) is written once against [`RequestParser`], [`Reply`] and the
//! `Protocol` methods, and never looks at bytes on the wire.
//!
//! [`Reply`] has a method for each RESP3 type (map, set, double, boolean,
//! verbatim string, push, null array); written in RESP2 or the native
//! protocol, each becomes what Redis sends a RESP2 client in its place, so a
//! command writes its reply once for all three. The common replies (status,
//! integer, bulk) are the same in RESP2 and RESP3, so their match has two
//! arms, as before RESP3 existed: GET and SET pay nothing for it.

use std::ops::Range;

use bytes::{BufMut, BytesMut};

use crate::{Args, Frame, Limits, ProtocolError, native, resp};

/// The wire protocols a Keycafe port speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Redis's RESP2 (and inline commands), for redis-cli and Redis clients:
    /// what a RESP connection starts with.
    Resp2,
    /// Redis's RESP3, after `HELLO 3`: requests as in RESP2, replies with
    /// maps, sets, doubles, booleans, verbatim strings and `_` for null.
    Resp3,
    /// Keycafe's length-prefixed binary protocol.
    Native,
}

impl Protocol {
    /// Picks the protocol from the first byte a client sends: the native
    /// hello starts with 0xCA, which no RESP request or inline command does.
    /// A RESP connection starts in RESP2, as in Redis.
    pub fn detect(first_byte: u8) -> Protocol {
        if first_byte == native::MAGIC[0] {
            Protocol::Native
        } else {
            Protocol::Resp2
        }
    }

    /// RESP2 or RESP3: one of Redis's protocols.
    pub fn is_resp(self) -> bool {
        self != Protocol::Native
    }

    /// Writes a request (an array of bulk strings, command name first).
    pub fn encode_request<A: AsRef<[u8]>>(self, args: &[A], out: &mut BytesMut) {
        match self {
            Protocol::Resp2 | Protocol::Resp3 => resp::encode_request(args, out),
            Protocol::Native => native::encode_request(args, out),
        }
    }

    /// Writes a whole frame. RESP3's types become what Redis sends a RESP2
    /// client in RESP2 and in the native protocol.
    pub fn encode_frame(self, frame: &Frame, out: &mut BytesMut) {
        match self {
            Protocol::Resp2 => resp::encode_frame(frame, out),
            Protocol::Resp3 => resp::encode_frame_resp3(frame, out),
            Protocol::Native => native::encode_frame(frame, out),
        }
    }

    /// Decodes one frame from the front of `buf`, removing its bytes; `None`
    /// if it has not fully arrived yet. (The RESP decoder reads RESP2 and
    /// RESP3 alike.)
    pub fn decode_frame(
        self,
        buf: &mut BytesMut,
        limits: &Limits,
    ) -> Result<Option<Frame>, ProtocolError> {
        match self {
            Protocol::Resp2 | Protocol::Resp3 => resp::decode_frame(buf, limits),
            Protocol::Native => native::decode_frame(buf, limits),
        }
    }
}

/// Parses requests out of a connection's read buffer without allocating per
/// request: the span vectors are reused from one request to the next.
///
/// A request that has not fully arrived is not checked again from its start
/// on the next call: the parser remembers how far it got ([`resp::Progress`],
/// [`native::Progress`]), and checks each length and count as soon as it has
/// arrived.
/// So the caller must hand the same request back, at the front of the
/// buffer, with more bytes after it, until it completes or is refused, as a
/// connection's read buffer does.
#[derive(Debug, Default)]
pub struct RequestParser {
    limits: Limits,
    spans: Vec<Range<usize>>,
    /// Unquoted inline arguments, which are not contiguous in the input.
    scratch: Vec<u8>,
    /// How far the RESP request at the front has been checked.
    progress: resp::Progress,
    /// How far the native request at the front has been checked.
    native: native::Progress,
    /// Bytes gone over in total: the parse work, which tests bound.
    examined: u64,
}

impl RequestParser {
    pub fn new(limits: Limits) -> Self {
        RequestParser {
            limits,
            ..RequestParser::default()
        }
    }

    /// Bytes of input the parser has gone over since it was made: about
    /// the size of what it parsed, however the bytes were split into reads.
    pub fn bytes_examined(&self) -> u64 {
        self.examined
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Applies `limits` from the next request on (a connection that has
    /// just authenticated gets its full limits).
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Parses the request at the front of `buf`. Returns its arguments and the
    /// number of bytes it used, or `None` if it has not fully arrived. The
    /// arguments may be empty (RESP `*0` or a blank inline line): skip those.
    pub fn parse<'a>(
        &'a mut self,
        protocol: Protocol,
        buf: &'a [u8],
    ) -> Result<Option<(Args<'a>, usize)>, ProtocolError> {
        let mut inline = false;
        let used = match protocol {
            Protocol::Resp2 | Protocol::Resp3 => {
                let (used, examined) = resp::parse_request(
                    buf,
                    &self.limits,
                    &mut self.spans,
                    &mut self.scratch,
                    &mut inline,
                    &mut self.progress,
                );
                self.examined += examined as u64;
                used?
            }
            Protocol::Native => {
                let (used, examined) =
                    native::parse_request(buf, &self.limits, &mut self.spans, &mut self.native);
                self.examined += examined as u64;
                used?
            }
        };
        Ok(used.map(|used| {
            let source = if inline { &self.scratch[..] } else { buf };
            (Args::new(source, &self.spans), used)
        }))
    }
}

/// Writes exactly one reply, in the connection's protocol, straight into the
/// output buffer (no [`Frame`] is built on the hot path).
///
/// Start it with [`Reply::start`], write one value (an array, map or set
/// header counts as opening a value whose elements follow), and close it
/// with [`Reply::finish`], which fills in the native frame's length prefix.
/// A reply that is itself one element of an array being written (each of
/// EXEC's replies) is [`Reply::element`].
pub struct Reply<'a> {
    out: &'a mut BytesMut,
    protocol: Protocol,
    /// Where this reply's value starts in `out`.
    start: usize,
    /// A whole native frame: its length prefix sits just before `start`,
    /// and `finish` fills it in.
    framed: bool,
}

impl<'a> Reply<'a> {
    #[must_use = "a reply must be closed with `finish`, which writes the native length prefix"]
    pub fn start(protocol: Protocol, out: &'a mut BytesMut) -> Reply<'a> {
        let framed = protocol == Protocol::Native;
        if framed {
            native::begin_frame(out);
        }
        Reply {
            start: out.len(),
            out,
            protocol,
            framed,
        }
    }

    /// A reply for the next element of an array this reply is writing: same
    /// protocol and buffer; its [`reset`](Reply::reset) drops only what the
    /// element wrote, and its [`finish`](Reply::finish) writes no length
    /// prefix (the enclosing reply's covers it).
    #[must_use = "an element is a reply of its own; close it with `finish`"]
    pub fn element(&mut self) -> Reply<'_> {
        let start = self.out.len();
        Reply {
            out: &mut *self.out,
            protocol: self.protocol,
            start,
            framed: false,
        }
    }

    /// Completes the reply. Returns true if anything was written.
    pub fn finish(self) -> bool {
        let wrote = self.out.len() > self.start;
        if self.framed {
            let frame_start = self.start - native::LENGTH_PREFIX;
            if wrote {
                native::end_frame(self.out, frame_start);
            } else {
                self.out.truncate(frame_start);
            }
        }
        wrote
    }

    /// Drops whatever this reply has written so far, so that it can be
    /// replaced (for example by an error found half-way).
    pub fn reset(&mut self) {
        self.out.truncate(self.start);
    }

    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The text of the error this reply is, if it is one (what INFO's
    /// errorstats counts): one byte compared for any other reply.
    #[inline]
    pub fn error_text(&self) -> Option<&[u8]> {
        let written = &self.out[self.start..];
        if written.first() != Some(&b'-') {
            return None;
        }
        // `-text\r\n` in RESP; the tag and a 4-byte length in the native
        // protocol (whose error tag is `-` too).
        match self.protocol {
            Protocol::Resp2 | Protocol::Resp3 => written.get(1..written.len().checked_sub(2)?),
            Protocol::Native => written.get(1 + 4..),
        }
    }

    /// Writes the rest of this reply in `protocol`, RESP2 or RESP3: HELLO
    /// answers in the version it switches the connection to. A native
    /// reply, or a switch to the native protocol, is left as it is (the
    /// framing differs; nothing may switch a connection into or out of it).
    pub fn switch_resp(&mut self, protocol: Protocol) {
        if self.protocol.is_resp() && protocol.is_resp() {
            self.protocol = protocol;
        }
    }

    /// `+OK`.
    pub fn ok(&mut self) {
        self.simple(b"OK");
    }

    /// A status line.
    pub fn simple(&mut self, text: &[u8]) {
        match self.protocol {
            Protocol::Resp2 | Protocol::Resp3 => resp::write_line(self.out, b'+', text),
            Protocol::Native => native::write_string(self.out, native::tag::SIMPLE, text),
        }
    }

    /// An error line; `text` starts with its code word, e.g. `ERR syntax error`.
    pub fn error(&mut self, text: &str) {
        match self.protocol {
            Protocol::Resp2 | Protocol::Resp3 => resp::write_line(self.out, b'-', text.as_bytes()),
            Protocol::Native => native::write_string(self.out, native::tag::ERROR, text.as_bytes()),
        }
    }

    pub fn integer(&mut self, n: i64) {
        match self.protocol {
            Protocol::Resp2 | Protocol::Resp3 => resp::write_header(self.out, b':', n),
            Protocol::Native => native::write_integer(self.out, n),
        }
    }

    pub fn bulk(&mut self, data: &[u8]) {
        match self.protocol {
            Protocol::Resp2 | Protocol::Resp3 => resp::write_bulk(self.out, data),
            Protocol::Native => native::write_string(self.out, native::tag::BULK, data),
        }
    }

    /// A bulk string or null.
    pub fn optional_bulk(&mut self, data: Option<&[u8]>) {
        match data {
            Some(data) => self.bulk(data),
            None => self.null(),
        }
    }

    /// No value: RESP2's null bulk string `$-1`, RESP3's `_`.
    pub fn null(&mut self) {
        match self.protocol {
            Protocol::Resp2 => resp::write_null(self.out, false),
            Protocol::Resp3 => resp::write_null(self.out, true),
            Protocol::Native => self.out.put_u8(native::tag::NULL),
        }
    }

    /// No array (EXEC of an aborted transaction): RESP2's `*-1`, RESP3's `_`.
    pub fn null_array(&mut self) {
        match self.protocol {
            Protocol::Resp2 => self.out.put_slice(b"*-1\r\n"),
            Protocol::Resp3 => resp::write_null(self.out, true),
            Protocol::Native => self.out.put_u8(native::tag::NULL),
        }
    }

    /// Opens an array of `len` elements; write the elements next.
    pub fn array(&mut self, len: usize) {
        match self.protocol {
            Protocol::Resp2 | Protocol::Resp3 => resp::write_header(self.out, b'*', len as i64),
            Protocol::Native => native::write_array_header(self.out, len),
        }
    }

    /// Opens a map of `len` pairs; write key, value, key, value... next.
    /// RESP2 and the native protocol get an array of `2 * len` elements.
    pub fn map(&mut self, len: usize) {
        match self.protocol {
            Protocol::Resp2 => resp::write_map_header(self.out, len, false),
            Protocol::Resp3 => resp::write_map_header(self.out, len, true),
            Protocol::Native => native::write_array_header(self.out, 2 * len),
        }
    }

    /// Opens a set of `len` elements (an array outside RESP3).
    pub fn set(&mut self, len: usize) {
        match self.protocol {
            Protocol::Resp3 => resp::write_header(self.out, b'~', len as i64),
            _ => self.array(len),
        }
    }

    /// Opens a push message of `len` elements, which RESP3 tells apart from
    /// replies; in RESP2 (as Redis sends pub/sub messages there) and the
    /// native protocol, an array.
    pub fn push(&mut self, len: usize) {
        match self.protocol {
            Protocol::Resp3 => resp::write_header(self.out, b'>', len as i64),
            _ => self.array(len),
        }
    }

    /// A double, formatted as Redis formats it ([`resp::DoubleText`]); a bulk
    /// string outside RESP3.
    pub fn double(&mut self, value: f64) {
        let text = resp::DoubleText::new(value);
        match self.protocol {
            Protocol::Resp3 => resp::write_line(self.out, b',', text.as_bytes()),
            _ => self.bulk(text.as_bytes()),
        }
    }

    /// True or false: RESP3's `#t`/`#f`, otherwise the integer 1 or 0.
    pub fn boolean(&mut self, value: bool) {
        match self.protocol {
            Protocol::Resp2 => resp::write_boolean(self.out, value, false),
            Protocol::Resp3 => resp::write_boolean(self.out, value, true),
            Protocol::Native => native::write_integer(self.out, i64::from(value)),
        }
    }

    /// Text to be shown as is, with its three-letter format (`b"txt"`,
    /// `b"mkd"`): a verbatim string in RESP3, a bulk string otherwise.
    pub fn verbatim(&mut self, format: &[u8; 3], text: &[u8]) {
        match self.protocol {
            Protocol::Resp3 => resp::write_verbatim(self.out, format, text),
            _ => self.bulk(text),
        }
    }

    /// Writes a whole frame as (part of) this reply.
    pub fn frame(&mut self, frame: &Frame) {
        match self.protocol {
            Protocol::Resp2 => resp::encode_frame(frame, self.out),
            Protocol::Resp3 => resp::encode_frame_resp3(frame, self.out),
            Protocol::Native => native::write_value(frame, self.out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_text_finds_errors_in_every_protocol() {
        for protocol in [Protocol::Resp2, Protocol::Resp3, Protocol::Native] {
            let mut out = BytesMut::new();
            let mut reply = Reply::start(protocol, &mut out);
            reply.error("WRONGTYPE Operation against a key");
            assert_eq!(
                reply.error_text(),
                Some(&b"WRONGTYPE Operation against a key"[..]),
                "{protocol:?}"
            );
            assert!(reply.finish());
            let mut reply = Reply::start(protocol, &mut out);
            reply.simple(b"-not an error, a status");
            assert_eq!(reply.error_text(), None, "{protocol:?}");
            let _ = reply.finish();
            let mut reply = Reply::start(protocol, &mut out);
            reply.integer(-1);
            assert_eq!(reply.error_text(), None, "{protocol:?}");
            let _ = reply.finish();
        }
    }
}
