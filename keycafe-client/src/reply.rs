//! Turning reply [`Frame`]s into Rust values.
//!
//! The typed methods use these conversions internally; they are public so
//! that the results of [`crate::KeycafeCluster::command`] and of pipelines
//! can be converted the same way. An error reply converts to
//! [`Error::Server`] for every target type except [`Frame`] itself.

use bytes::Bytes;
use keycafe_core::Frame;

use crate::{Error, Result, ServerError};

/// A value that can be read from a reply.
///
/// ```
/// use keycafe_client::{Frame, FromFrame};
///
/// assert_eq!(i64::from_frame(Frame::Integer(7)).unwrap(), 7);
/// assert_eq!(i64::from_frame(Frame::bulk("42")).unwrap(), 42);
/// assert_eq!(Option::<String>::from_frame(Frame::Null).unwrap(), None);
/// assert!(bool::from_frame(Frame::error("ERR no")).is_err());
/// ```
pub trait FromFrame: Sized {
    /// Converts `frame`, or explains why it does not fit.
    fn from_frame(frame: Frame) -> Result<Self>;
}

fn unexpected<T>(expected: &'static str, frame: Frame) -> Result<T> {
    match frame {
        Frame::Error(text) => Err(Error::Server(ServerError::from_bytes(&text))),
        reply => Err(Error::UnexpectedReply { expected, reply }),
    }
}

impl FromFrame for Frame {
    fn from_frame(frame: Frame) -> Result<Self> {
        Ok(frame)
    }
}

/// Any reply but an error, e.g. `OK`.
impl FromFrame for () {
    fn from_frame(frame: Frame) -> Result<Self> {
        match frame {
            Frame::Error(_) => unexpected("a reply", frame),
            _ => Ok(()),
        }
    }
}

/// A bulk string or a status line.
impl FromFrame for Bytes {
    fn from_frame(frame: Frame) -> Result<Self> {
        match frame {
            Frame::Bulk(data) | Frame::Simple(data) => Ok(data),
            other => unexpected("a string", other),
        }
    }
}

/// A UTF-8 bulk string or a status line.
impl FromFrame for String {
    fn from_frame(frame: Frame) -> Result<Self> {
        let bytes = Bytes::from_frame(frame)?;
        Ok(String::from_utf8(bytes.into())?)
    }
}

/// An integer, or a bulk string holding one (as GET of a counter returns).
impl FromFrame for i64 {
    fn from_frame(frame: Frame) -> Result<Self> {
        match frame {
            Frame::Integer(n) => Ok(n),
            Frame::Bulk(ref text) => {
                match std::str::from_utf8(text).ok().and_then(|t| t.parse().ok()) {
                    Some(n) => Ok(n),
                    None => unexpected("an integer", frame),
                }
            }
            other => unexpected("an integer", other),
        }
    }
}

/// `1`/`0` replies, `OK` (true) and null (false).
impl FromFrame for bool {
    fn from_frame(frame: Frame) -> Result<Self> {
        match frame {
            Frame::Integer(n) => Ok(n != 0),
            Frame::Simple(_) => Ok(true),
            Frame::Null => Ok(false),
            other => unexpected("an integer, OK or null", other),
        }
    }
}

/// `None` for a null reply.
impl<T: FromFrame> FromFrame for Option<T> {
    fn from_frame(frame: Frame) -> Result<Self> {
        match frame {
            Frame::Null => Ok(None),
            other => T::from_frame(other).map(Some),
        }
    }
}

/// Each element of an array; a null reply is an empty vector.
impl<T: FromFrame> FromFrame for Vec<T> {
    fn from_frame(frame: Frame) -> Result<Self> {
        match frame {
            Frame::Array(items) => items.into_iter().map(T::from_frame).collect(),
            Frame::Null => Ok(Vec::new()),
            other => unexpected("an array", other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(Bytes::from_frame(Frame::simple("OK")).unwrap(), "OK");
        assert_eq!(
            Option::<Bytes>::from_frame(Frame::bulk("v")).unwrap(),
            Some(Bytes::from("v"))
        );
        assert_eq!(Option::<Bytes>::from_frame(Frame::Null).unwrap(), None);
        assert!(bool::from_frame(Frame::Integer(1)).unwrap());
        assert!(!bool::from_frame(Frame::Integer(0)).unwrap());
        assert!(!bool::from_frame(Frame::Null).unwrap());
        let array = Frame::Array(vec![Frame::bulk("a"), Frame::Null]);
        assert_eq!(
            Vec::<Option<String>>::from_frame(array).unwrap(),
            [Some("a".to_string()), None]
        );
        assert_eq!(
            Vec::<i64>::from_frame(Frame::Null).unwrap(),
            Vec::<i64>::new()
        );
        assert!(<()>::from_frame(Frame::Integer(3)).is_ok());
    }

    #[test]
    fn mismatches_are_errors() {
        assert!(matches!(
            i64::from_frame(Frame::bulk("x")),
            Err(Error::UnexpectedReply { .. })
        ));
        assert!(matches!(
            Bytes::from_frame(Frame::Integer(1)),
            Err(Error::UnexpectedReply { .. })
        ));
        assert!(matches!(
            String::from_frame(Frame::bulk(vec![0xff])),
            Err(Error::NotUtf8(_))
        ));
        let wrongtype =
            Frame::error("WRONGTYPE Operation against a key holding the wrong kind of value");
        match Option::<Bytes>::from_frame(wrongtype) {
            Err(Error::Server(e)) => assert_eq!(e.code(), "WRONGTYPE"),
            other => panic!("expected a server error, got {other:?}"),
        }
    }
}
