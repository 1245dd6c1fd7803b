//! The client's side of a native connection's opening, without I/O.
//!
//! A native connection opens with the client's hello; when the client has a
//! password, its `AUTH [user] password` request goes right behind the hello,
//! so that both cost one round trip. The server answers with its own hello
//! (or, when it will not speak to this client, one error frame and a close),
//! then with the answer to `AUTH`. `docs/protocol.md` ("The hello") is the
//! specification.
//!
//! Three callers open native connections: the client library, the command-line
//! tools and the cluster bus. Each has its own socket, timeouts and error type,
//! but they must read the server's answers the same way; in particular a
//! refusal carries the server's reason, which a caller must be able to show.
//! So the reading lives here, as a [`Handshake`] that is fed whatever bytes have
//! arrived and says whether it is done, needs more, or failed and why. The
//! caller's loop is: [`Handshake::encode`], write, then read and
//! [`Handshake::poll`] until it returns `Some`. Bytes that arrive after the
//! handshake (replies to requests pipelined behind it) stay in the buffer.

use bytes::{Buf, Bytes, BytesMut};

use crate::native::{self, HELLO_LEN, MAGIC, VERSION};
use crate::{Frame, Limits, ProtocolError};

/// The opening of one native connection, from the client's side.
///
/// ```
/// use bytes::BytesMut;
/// use keycafe_core::handshake::Handshake;
/// use keycafe_core::{Frame, Limits, native};
///
/// let mut handshake = Handshake::new(Some((None, b"secret".as_slice())));
/// let mut to_server = BytesMut::new();
/// handshake.encode(&mut to_server); // the hello, then AUTH secret
///
/// // What a server answers: its hello, then OK to AUTH.
/// let mut from_server = BytesMut::new();
/// native::encode_hello(native::VERSION, &mut from_server);
/// assert_eq!(handshake.poll(&mut from_server, &Limits::DEFAULT), Ok(None));
/// native::encode_frame(&Frame::ok(), &mut from_server);
/// assert_eq!(handshake.poll(&mut from_server, &Limits::DEFAULT), Ok(Some(())));
/// assert!(from_server.is_empty());
/// ```
#[derive(Debug, Clone)]
pub struct Handshake {
    /// The encoded `AUTH` request, if one follows the hello.
    auth: Option<Bytes>,
    stage: Stage,
}

/// What the handshake waits for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Hello,
    AuthAnswer,
    Done,
}

/// Why a handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The server answered the hello with an error frame: its reason for not
    /// speaking to this client. It closes the connection.
    #[error("{}", String::from_utf8_lossy(.0))]
    Refused(Bytes),
    /// The server answered `AUTH` with an error (wrong password, ...).
    #[error("{}", String::from_utf8_lossy(.0))]
    AuthRefused(Bytes),
    /// The server's hello names a protocol version this crate does not speak.
    #[error("server speaks native protocol version {0}, not {VERSION}")]
    UnsupportedVersion(u16),
    /// A well-formed frame that is neither of the answers the handshake
    /// allows at that point.
    #[error("unexpected answer (expected {expected}): {reply:?}")]
    Unexpected {
        /// What was expected: `"a hello"` or `"OK to AUTH"`.
        expected: &'static str,
        /// What arrived instead.
        reply: Frame,
    },
    /// The server's bytes are not the native protocol.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
}

impl HandshakeError {
    /// The server's own words, when it refused the hello or `AUTH`.
    pub fn server_text(&self) -> Option<&Bytes> {
        match self {
            HandshakeError::Refused(text) | HandshakeError::AuthRefused(text) => Some(text),
            _ => None,
        }
    }
}

impl Handshake {
    /// A handshake that sends `AUTH [user] password` behind the hello when
    /// `auth` is `Some((user, password))`.
    pub fn new(auth: Option<(Option<&[u8]>, &[u8])>) -> Handshake {
        let auth = auth.map(|(user, password)| {
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            args.extend(user);
            args.push(password);
            let mut out = BytesMut::new();
            native::encode_request(&args, &mut out);
            out.freeze()
        });
        Handshake {
            auth,
            stage: Stage::Hello,
        }
    }

    /// Writes what the client sends: the hello, then the `AUTH` request if any.
    pub fn encode(&self, out: &mut BytesMut) {
        native::encode_hello(VERSION, out);
        if let Some(auth) = &self.auth {
            out.extend_from_slice(auth);
        }
    }

    /// Reads the server's answers from the front of `buf`, consuming exactly
    /// the handshake's bytes. `Ok(Some(()))` once the handshake is complete
    /// (and on every call after that), `Ok(None)` while more bytes are needed.
    /// After an error the connection is of no further use.
    pub fn poll(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
    ) -> Result<Option<()>, HandshakeError> {
        loop {
            match self.stage {
                Stage::Hello => {
                    if !self.read_hello(buf, limits)? {
                        return Ok(None);
                    }
                    self.stage = match self.auth {
                        Some(_) => Stage::AuthAnswer,
                        None => Stage::Done,
                    };
                }
                Stage::AuthAnswer => {
                    let Some(frame) = native::decode_frame(buf, limits)? else {
                        return Ok(None);
                    };
                    match frame {
                        Frame::Simple(_) => self.stage = Stage::Done,
                        Frame::Error(text) => return Err(HandshakeError::AuthRefused(text)),
                        reply => {
                            return Err(HandshakeError::Unexpected {
                                expected: "OK to AUTH",
                                reply,
                            });
                        }
                    }
                }
                Stage::Done => return Ok(Some(())),
            }
        }
    }

    /// True once the server's hello has been read and consumed.
    fn read_hello(&self, buf: &mut BytesMut, limits: &Limits) -> Result<bool, HandshakeError> {
        let Some(&first) = buf.first() else {
            return Ok(false);
        };
        if first == b'-' {
            // A RESP error line: a node that refused the connection before
            // knowing its protocol (maxclients). No native frame starts with
            // `-`: its length would be far beyond any limit.
            let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
                return if buf.len() > limits.max_inline_len {
                    Err(HandshakeError::Protocol(ProtocolError::InlineTooLong))
                } else {
                    Ok(false)
                };
            };
            let text = Bytes::copy_from_slice(&buf[1..end]);
            return Err(HandshakeError::Refused(text));
        }
        if first != MAGIC[0] {
            // Not a hello but a frame (its length prefix never starts with
            // 0xCA within the limits): the server's refusal.
            return match native::decode_frame(buf, limits)? {
                None => Ok(false),
                Some(Frame::Error(text)) => Err(HandshakeError::Refused(text)),
                Some(reply) => Err(HandshakeError::Unexpected {
                    expected: "a hello",
                    reply,
                }),
            };
        }
        match native::decode_hello(buf)? {
            None => Ok(false),
            Some(VERSION) => {
                buf.advance(HELLO_LEN);
                Ok(true)
            }
            Some(other) => Err(HandshakeError::UnsupportedVersion(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REFUSAL: &str = "ERR unsupported protocol version 1; this node speaks 2";

    fn hello(version: u16) -> BytesMut {
        let mut out = BytesMut::new();
        native::encode_hello(version, &mut out);
        out
    }

    fn frame(frame: Frame) -> BytesMut {
        let mut out = BytesMut::new();
        native::encode_frame(&frame, &mut out);
        out
    }

    fn joined(parts: &[BytesMut]) -> BytesMut {
        parts.iter().fold(BytesMut::new(), |mut all, part| {
            all.extend_from_slice(part);
            all
        })
    }

    /// Feeds `input` in two pieces split at `at`, polling after each, and
    /// returns the last result (or the first error) with what was left in
    /// the buffer.
    fn feed_split(
        mut handshake: Handshake,
        input: &[u8],
        at: usize,
    ) -> (Result<Option<()>, HandshakeError>, BytesMut) {
        let mut buf = BytesMut::from(&input[..at]);
        let first = handshake.poll(&mut buf, &Limits::DEFAULT);
        if first.is_err() {
            return (first, buf);
        }
        buf.extend_from_slice(&input[at..]);
        let second = handshake.poll(&mut buf, &Limits::DEFAULT);
        (second, buf)
    }

    fn with_password() -> Handshake {
        Handshake::new(Some((Some(b"alice".as_slice()), b"pw".as_slice())))
    }

    #[test]
    fn a_refusal_before_the_hello_in_resp_is_the_servers_reason() {
        let line = b"-ERR max number of clients reached\r\n";
        for at in 0..=line.len() {
            let (result, _) = feed_split(Handshake::new(None), line, at);
            assert_eq!(
                result,
                Err(HandshakeError::Refused(Bytes::from_static(
                    b"ERR max number of clients reached"
                ))),
                "split at {at}"
            );
        }
    }

    #[test]
    fn sends_the_hello_and_auth_behind_it() {
        let mut out = BytesMut::new();
        Handshake::new(None).encode(&mut out);
        assert_eq!(out, hello(VERSION));

        let mut out = BytesMut::new();
        with_password().encode(&mut out);
        let mut expected = hello(VERSION);
        native::encode_request(&["AUTH", "alice", "pw"], &mut expected);
        assert_eq!(out, expected);

        let mut out = BytesMut::new();
        Handshake::new(Some((None, b"pw".as_slice()))).encode(&mut out);
        let mut expected = hello(VERSION);
        native::encode_request(&["AUTH", "pw"], &mut expected);
        assert_eq!(out, expected);
    }

    #[test]
    fn completes_at_every_split_point_and_leaves_later_bytes() {
        let after = frame(Frame::simple("PONG"));
        let cases = [
            (
                Handshake::new(None),
                joined(&[hello(VERSION), after.clone()]),
            ),
            (
                with_password(),
                joined(&[hello(VERSION), frame(Frame::ok()), after.clone()]),
            ),
        ];
        for (handshake, input) in cases {
            let handshake_len = input.len() - after.len();
            for at in 0..=input.len() {
                let (result, rest) = feed_split(handshake.clone(), &input, at);
                assert_eq!(result, Ok(Some(())), "split at {at}");
                assert_eq!(rest, after, "split at {at}: only the handshake is consumed");
            }
            // Byte by byte, it needs more until the last handshake byte.
            let mut handshake = handshake;
            let mut buf = BytesMut::new();
            for (i, &byte) in input[..handshake_len].iter().enumerate() {
                buf.extend_from_slice(&[byte]);
                let expected = if i + 1 == handshake_len {
                    Some(())
                } else {
                    None
                };
                assert_eq!(handshake.poll(&mut buf, &Limits::DEFAULT), Ok(expected));
            }
            assert!(buf.is_empty());
            assert_eq!(handshake.poll(&mut buf, &Limits::DEFAULT), Ok(Some(())));
        }
    }

    #[test]
    fn a_refused_hello_keeps_the_servers_text() {
        let input = frame(Frame::error(REFUSAL));
        for at in 0..=input.len() {
            let (result, _) = feed_split(with_password(), &input, at);
            let err = result.expect_err("a refusal");
            assert_eq!(err, HandshakeError::Refused(Bytes::from(REFUSAL)));
            assert_eq!(err.to_string(), REFUSAL);
            assert_eq!(err.server_text().map(|t| &t[..]), Some(REFUSAL.as_bytes()));
        }
    }

    #[test]
    fn a_refused_auth_keeps_the_servers_text() {
        let text = "WRONGPASS invalid username-password pair or user is disabled.";
        let input = joined(&[hello(VERSION), frame(Frame::error(text))]);
        for at in 0..=input.len() {
            let (result, _) = feed_split(with_password(), &input, at);
            assert_eq!(result, Err(HandshakeError::AuthRefused(Bytes::from(text))));
        }
    }

    #[test]
    fn another_version_is_refused() {
        let input = hello(VERSION + 1);
        for at in 0..=input.len() {
            let (result, _) = feed_split(Handshake::new(None), &input, at);
            let err = result.expect_err("a version this crate does not speak");
            assert_eq!(err, HandshakeError::UnsupportedVersion(VERSION + 1));
            assert_eq!(
                err.to_string(),
                format!(
                    "server speaks native protocol version {}, not 1",
                    VERSION + 1
                )
            );
        }
    }

    #[test]
    fn unexpected_answers_are_errors() {
        let mut buf = frame(Frame::simple("OK"));
        assert_eq!(
            Handshake::new(None).poll(&mut buf, &Limits::DEFAULT),
            Err(HandshakeError::Unexpected {
                expected: "a hello",
                reply: Frame::simple("OK"),
            })
        );
        let mut buf = joined(&[hello(VERSION), frame(Frame::Integer(1))]);
        assert_eq!(
            with_password().poll(&mut buf, &Limits::DEFAULT),
            Err(HandshakeError::Unexpected {
                expected: "OK to AUTH",
                reply: Frame::Integer(1),
            })
        );
    }

    #[test]
    fn bytes_that_are_not_the_protocol_are_protocol_errors() {
        // The right first byte, then something else: not our server.
        let mut buf = BytesMut::from(&[0xCA, 0xFE, b'X', b'Y', 0, 1][..]);
        assert_eq!(
            Handshake::new(None).poll(&mut buf, &Limits::DEFAULT),
            Err(HandshakeError::Protocol(ProtocolError::BadMagic))
        );
        // A RESP server answering our hello with anything but an error
        // line (whose text is shown as the refusal).
        let mut buf = BytesMut::from(&b"+OK\r\n"[..]);
        let tight = Limits {
            max_frame_len: 1024,
            ..Limits::DEFAULT
        };
        assert!(matches!(
            Handshake::new(None).poll(&mut buf, &tight),
            Err(HandshakeError::Protocol(ProtocolError::FrameTooLarge(_)))
        ));
    }
}
