//! The wire value shared by both protocols.

use bytes::Bytes;

/// One value on the wire: a reply, or (as an array of bulks) a request.
///
/// The first six shapes are what RESP2 and the native protocol carry. The
/// others are RESP3's: a client that asked for RESP3 (`HELLO 3`) decodes
/// them, and a server writing one to a RESP2 or native peer sends what Redis
/// sends a RESP2 client instead (a map as a flat array of keys and values,
/// a double or a verbatim string as a bulk, a boolean as 1 or 0), so a reply
/// means the same thing whichever protocol a client speaks. Strings are
/// [`Bytes`] so that decoded frames share the read buffer instead of copying
/// it.
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
    /// The absence of a value (RESP2's `$-1` or `*-1`, RESP3's `_`).
    Null,
    /// An ordered list of frames.
    Array(Vec<Frame>),
    /// RESP3: key/value pairs, in the order they were sent.
    Map(Vec<(Frame, Frame)>),
    /// RESP3: an unordered collection of distinct values.
    Set(Vec<Frame>),
    /// RESP3: a floating-point number, kept as the decimal text it was sent
    /// as (`1.5`, `inf`, `nan`), which is what clients print; see
    /// [`Frame::double`] and [`Frame::as_f64`].
    Double(Bytes),
    /// RESP3: true or false.
    Boolean(bool),
    /// RESP3: text meant to be shown as is, with a three-letter format
    /// (`txt`, `mkd`): INFO, CLIENT INFO, CLUSTER NODES.
    Verbatim { format: [u8; 3], text: Bytes },
    /// RESP3: an integer too large for 64 bits, as its decimal text.
    BigNumber(Bytes),
    /// RESP3: out-of-band data the server sends unasked (pub/sub messages,
    /// invalidations), not the reply to a request.
    Push(Vec<Frame>),
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

    /// A double, written the way Redis writes it (see
    /// [`crate::resp::DoubleText`]).
    pub fn double(value: f64) -> Frame {
        Frame::Double(Bytes::copy_from_slice(
            crate::resp::DoubleText::new(value).as_bytes(),
        ))
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

    /// The text of a status or error frame, or the bytes of a bulk,
    /// verbatim string, double or big number, if this is one.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Frame::Simple(b) | Frame::Error(b) | Frame::Bulk(b) => Some(b),
            Frame::Double(b) | Frame::BigNumber(b) => Some(b),
            Frame::Verbatim { text, .. } => Some(text),
            _ => None,
        }
    }

    /// The value of a double frame (`inf`, `-inf` and `nan` included).
    pub fn as_f64(&self) -> Option<f64> {
        let Frame::Double(text) = self else {
            return None;
        };
        std::str::from_utf8(text).ok()?.parse().ok()
    }

    /// The same value as a RESP2 client would receive it: a map becomes a
    /// flat array of keys and values, a set or a push an array, a double,
    /// big number or verbatim string a bulk, a boolean the integer 1 or 0.
    /// Nested values are converted too.
    pub fn into_resp2(self) -> Frame {
        let all = |items: Vec<Frame>| items.into_iter().map(Frame::into_resp2).collect();
        match self {
            Frame::Array(items) | Frame::Set(items) | Frame::Push(items) => {
                Frame::Array(all(items))
            }
            Frame::Map(pairs) => Frame::Array(
                pairs
                    .into_iter()
                    .flat_map(|(key, value)| [key.into_resp2(), value.into_resp2()])
                    .collect(),
            ),
            Frame::Double(text) | Frame::BigNumber(text) => Frame::Bulk(text),
            Frame::Verbatim { text, .. } => Frame::Bulk(text),
            Frame::Boolean(value) => Frame::Integer(i64::from(value)),
            other => other,
        }
    }
}
