//! The wire value shared by both protocols.

use bytes::Bytes;

/// One value on the wire: a reply, or (as an array of bulks) a request.
///
/// Both codecs carry exactly these six shapes, so a reply means the same thing
/// whichever protocol a client speaks. Strings are [`Bytes`] so that decoded
/// frames share the read buffer instead of copying it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A short status line such as `OK` or `PONG`.
    Simple(Bytes),
    /// An error line: a code word (`ERR`, `MOVED`, `WRONGTYPE`, ...) and a message.
    Error(Bytes),
    /// A signed 64-bit integer.
    Integer(i64),
    /// A binary-safe string.
    Bulk(Bytes),
    /// The absence of a value (RESP2's `$-1`).
    Null,
    /// An ordered list of frames.
    Array(Vec<Frame>),
}

impl Frame {
    /// The `OK` status.
    pub fn ok() -> Frame {
        Frame::Simple(Bytes::from_static(b"OK"))
    }

    /// A status line.
    pub fn simple(text: impl Into<Bytes>) -> Frame {
        Frame::Simple(text.into())
    }

    /// An error line, e.g. `Frame::error("ERR syntax error")`.
    pub fn error(text: impl Into<Bytes>) -> Frame {
        Frame::Error(text.into())
    }

    /// A bulk string.
    pub fn bulk(data: impl Into<Bytes>) -> Frame {
        Frame::Bulk(data.into())
    }

    /// A request: an array of bulk strings, command name first.
    pub fn request<I, A>(args: I) -> Frame
    where
        I: IntoIterator<Item = A>,
        A: AsRef<[u8]>,
    {
        Frame::Array(
            args.into_iter()
                .map(|arg| Frame::Bulk(Bytes::copy_from_slice(arg.as_ref())))
                .collect(),
        )
    }

    /// The text of a status or error frame, or the bytes of a bulk, if this is one.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Frame::Simple(b) | Frame::Error(b) | Frame::Bulk(b) => Some(b),
            _ => None,
        }
    }
}
