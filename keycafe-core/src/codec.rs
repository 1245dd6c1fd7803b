//! One front door for both protocols.
//!
//! A connection speaks one [`Protocol`] for its whole life, chosen by its
//! first byte ([`Protocol::detect`]). Everything above this module (the
//! server's command table, the client's request path) is written once against
//! [`RequestParser`], [`Reply`] and the `Protocol` methods, and never looks at
//! bytes on the wire.

use std::ops::Range;

use bytes::{BufMut, BytesMut};

use crate::{Args, Frame, Limits, ProtocolError, native, resp};

/// The two wire protocols a Keycafe port speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Redis's RESP2 (and inline commands), for redis-cli and Redis clients.
    Resp2,
    /// Keycafe's length-prefixed binary protocol.
    Native,
}

impl Protocol {
    /// Picks the protocol from the first byte a client sends: the native
    /// hello starts with 0xCA, which no RESP request or inline command does.
    pub fn detect(first_byte: u8) -> Protocol {
        if first_byte == native::MAGIC[0] {
            Protocol::Native
        } else {
            Protocol::Resp2
        }
    }

    /// Writes a request (an array of bulk strings, command name first).
    pub fn encode_request<A: AsRef<[u8]>>(self, args: &[A], out: &mut BytesMut) {
        match self {
            Protocol::Resp2 => resp::encode_request(args, out),
            Protocol::Native => native::encode_request(args, out),
        }
    }

    /// Writes a whole frame.
    pub fn encode_frame(self, frame: &Frame, out: &mut BytesMut) {
        match self {
            Protocol::Resp2 => resp::encode_frame(frame, out),
            Protocol::Native => native::encode_frame(frame, out),
        }
    }

    /// Decodes one frame from the front of `buf`, removing its bytes; `None`
    /// if it has not fully arrived yet.
    pub fn decode_frame(
        self,
        buf: &mut BytesMut,
        limits: &Limits,
    ) -> Result<Option<Frame>, ProtocolError> {
        match self {
            Protocol::Resp2 => resp::decode_frame(buf, limits),
            Protocol::Native => native::decode_frame(buf, limits),
        }
    }
}

/// Parses requests out of a connection's read buffer without allocating per
/// request: the span vectors are reused from one request to the next.
///
/// A request that has not fully arrived is not checked again from its start
/// on the next call: the parser remembers how far it got ([`resp::Progress`];
/// a native frame announces its length up front and needs no such thing).
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
            Protocol::Resp2 => {
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
                let used = native::parse_request(buf, &self.limits, &mut self.spans)?;
                // A frame is read once, when whole; until then only its
                // length prefix is looked at.
                self.examined += used.map_or(native::LENGTH_PREFIX, |used| used) as u64;
                used
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
/// Start it with [`Reply::start`], write one value (an array header counts as
/// opening a value whose elements follow), and close it with
/// [`Reply::finish`], which fills in the native frame's length prefix.
pub struct Reply<'a> {
    out: &'a mut BytesMut,
    protocol: Protocol,
    frame_start: usize,
    /// One element of an enclosing reply ([`Reply::element`]): no frame of
    /// its own.
    nested: bool,
}

impl<'a> Reply<'a> {
    #[must_use = "a reply must be closed with `finish`, which writes the native length prefix"]
    pub fn start(protocol: Protocol, out: &'a mut BytesMut) -> Reply<'a> {
        let frame_start = match protocol {
            Protocol::Native => native::begin_frame(out),
            Protocol::Resp2 => out.len(),
        };
        Reply {
            out,
            protocol,
            frame_start,
            nested: false,
        }
    }

    /// A reply for the next element of an array this reply is writing (EXEC
    /// writes each queued command's reply through one): same protocol and
    /// buffer; its [`Reply::reset`] drops only what the element wrote, and
    /// its [`Reply::finish`] writes no native length prefix.
    pub fn element(&mut self) -> Reply<'_> {
        Reply {
            frame_start: self.out.len(),
            out: self.out,
            protocol: self.protocol,
            nested: true,
        }
    }

    /// Completes the reply. Returns true if anything was written.
    pub fn finish(self) -> bool {
        if self.nested {
            return self.out.len() > self.frame_start;
        }
        match self.protocol {
            Protocol::Native => {
                let wrote = self.out.len() > self.frame_start + 4;
                if wrote {
                    native::end_frame(self.out, self.frame_start);
                } else {
                    self.out.truncate(self.frame_start);
                }
                wrote
            }
            Protocol::Resp2 => self.out.len() > self.frame_start,
        }
    }

    /// Drops whatever this reply has written so far, so that it can be
    /// replaced (for example by an error found half-way).
    pub fn reset(&mut self) {
        let keep = match self.protocol {
            Protocol::Native if !self.nested => self.frame_start + 4,
            _ => self.frame_start,
        };
        self.out.truncate(keep);
    }

    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// `+OK`.
    pub fn ok(&mut self) {
        self.simple(b"OK");
    }

    /// A status line.
    pub fn simple(&mut self, text: &[u8]) {
        match self.protocol {
            Protocol::Resp2 => resp::write_line(self.out, b'+', text),
            Protocol::Native => native::write_string(self.out, native::tag::SIMPLE, text),
        }
    }

    /// An error line; `text` starts with its code word, e.g. `ERR syntax error`.
    pub fn error(&mut self, text: &str) {
        match self.protocol {
            Protocol::Resp2 => resp::write_line(self.out, b'-', text.as_bytes()),
            Protocol::Native => native::write_string(self.out, native::tag::ERROR, text.as_bytes()),
        }
    }

    pub fn integer(&mut self, n: i64) {
        match self.protocol {
            Protocol::Resp2 => resp::write_header(self.out, b':', n),
            Protocol::Native => native::write_integer(self.out, n),
        }
    }

    pub fn bulk(&mut self, data: &[u8]) {
        match self.protocol {
            Protocol::Resp2 => resp::write_bulk(self.out, data),
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

    pub fn null(&mut self) {
        match self.protocol {
            Protocol::Resp2 => self.out.put_slice(b"$-1\r\n"),
            Protocol::Native => self.out.put_u8(native::tag::NULL),
        }
    }

    /// The absence of an array (RESP2's `*-1`: EXEC aborted by WATCH).
    pub fn null_array(&mut self) {
        match self.protocol {
            Protocol::Resp2 => self.out.put_slice(b"*-1\r\n"),
            Protocol::Native => self.out.put_u8(native::tag::NULL),
        }
    }

    /// Opens an array of `len` elements; write the elements next.
    pub fn array(&mut self, len: usize) {
        match self.protocol {
            Protocol::Resp2 => resp::write_header(self.out, b'*', len as i64),
            Protocol::Native => native::write_array_header(self.out, len),
        }
    }

    /// Writes a whole frame as (part of) this reply.
    pub fn frame(&mut self, frame: &Frame) {
        match frame {
            Frame::Simple(text) => self.simple(text),
            Frame::Error(text) => match self.protocol {
                Protocol::Resp2 => resp::write_line(self.out, b'-', text),
                Protocol::Native => native::write_string(self.out, native::tag::ERROR, text),
            },
            Frame::Integer(n) => self.integer(*n),
            Frame::Bulk(data) => self.bulk(data),
            Frame::Null => self.null(),
            Frame::Array(items) => {
                self.array(items.len());
                items.iter().for_each(|item| self.frame(item));
            }
        }
    }
}
