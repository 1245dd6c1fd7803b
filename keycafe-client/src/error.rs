//! The one error type of this crate.
//!
//! Errors are classified by what a caller can do about them, not by where
//! they came from:
//!
//! - [`Error::Server`]: the node understood the request and refused it (wrong
//!   type, not an integer, wrong password, ...). Retrying the same request
//!   will fail the same way.
//! - [`Error::Io`] and [`Error::Timeout`]: the network failed. The request
//!   may or may not have been applied; the connection is re-established by
//!   the next request.
//! - [`Error::Protocol`]: the peer sent bytes that are not Keycafe's
//!   protocol (a different server on that port, or a bug). The connection is
//!   dropped.
//! - [`Error::RedirectsExhausted`] and [`Error::ClusterDown`]: the cluster
//!   could not route the request within the retry budget.
//!
//! Requests that are known *not* to have reached a node (the connection was
//! already broken, or could not be opened) are retried inside the client
//! within [`ClientConfig`](crate::ClientConfig)'s budget and never show up
//! here as long as the budget lasts.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use keycafe_core::{Frame, ProtocolError};

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong talking to Keycafe.
///
/// `Error` is `Clone` so that one failure (a connection dropping) can be
/// handed to every request that was waiting on it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading from or writing to a node failed, or it closed the connection.
    #[error("I/O error talking to {addr}: {source}")]
    Io {
        /// The node's address, `host:port`.
        addr: String,
        /// What the operating system said.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// No answer within the configured time.
    #[error("timed out after {after:?} {during} {addr}")]
    Timeout {
        /// What the client was doing.
        during: TimeoutKind,
        /// The node's address, `host:port`.
        addr: String,
        /// The limit that was exceeded.
        after: Duration,
    },
    /// The peer broke the wire protocol.
    #[error("protocol error from {addr}: {source}")]
    Protocol {
        /// The node's address, `host:port`.
        addr: String,
        /// The violation.
        #[source]
        source: ProtocolError,
    },
    /// A well-formed reply of a shape the command never returns, e.g. an
    /// integer where GET expects a string.
    #[error("unexpected reply (expected {expected}): {reply:?}")]
    UnexpectedReply {
        /// What the command (or the conversion) was expecting.
        expected: &'static str,
        /// What arrived instead.
        reply: Frame,
    },
    /// The node answered with an error reply.
    #[error("{0}")]
    Server(ServerError),
    /// The request was redirected (MOVED/ASK) more times than allowed.
    #[error("gave up after {redirects} redirects; last: {last}")]
    RedirectsExhausted {
        /// How many redirects were followed.
        redirects: u32,
        /// The last redirect received.
        last: ServerError,
    },
    /// No node could serve the request: the cluster is down, a slot has no
    /// owner, or no known node is reachable.
    #[error("cluster down: {0}")]
    ClusterDown(String),
    /// A string result was not valid UTF-8 (only from the `*_string` helpers).
    #[error("reply is not valid UTF-8: {0}")]
    NotUtf8(#[from] std::string::FromUtf8Error),
    /// The call cannot be sent as given (an empty command, or one that would
    /// change the state of a shared connection).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The configuration cannot work (no seed address, an unparsable one, ...).
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// What was being waited for when a [`Error::Timeout`] happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutKind {
    /// Opening a connection: TCP connect, hello and AUTH.
    Connect,
    /// Waiting for the reply to a request.
    Response,
}

impl std::fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TimeoutKind::Connect => "connecting to",
            TimeoutKind::Response => "waiting for a reply from",
        })
    }
}

impl Error {
    pub(crate) fn io(addr: &str, source: std::io::Error) -> Error {
        Error::Io {
            addr: addr.to_string(),
            source: Arc::new(source),
        }
    }

    /// True for [`Error::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }

    /// True for [`Error::Io`] and [`Error::Timeout`]: the network failed, and
    /// the request may or may not have been applied.
    pub fn is_network(&self) -> bool {
        matches!(self, Error::Io { .. } | Error::Timeout { .. })
    }

    /// The error reply, if the node sent one.
    pub fn server_error(&self) -> Option<&ServerError> {
        match self {
            Error::Server(e) => Some(e),
            _ => None,
        }
    }
}

/// An error reply from a node, such as `WRONGTYPE Operation against a key
/// holding the wrong kind of value`.
///
/// The text starts with a code word, as in Redis; [`ServerError::code`]
/// returns it so that callers can match on it.
///
/// ```
/// use keycafe_client::ServerError;
///
/// let e = ServerError::new("WRONGPASS invalid username-password pair");
/// assert_eq!(e.code(), "WRONGPASS");
/// assert_eq!(e.message(), "invalid username-password pair");
/// assert!(e.is_auth());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    text: String,
}

impl ServerError {
    /// An error reply with this text.
    pub fn new(text: impl Into<String>) -> ServerError {
        ServerError { text: text.into() }
    }

    pub(crate) fn from_bytes(text: &Bytes) -> ServerError {
        ServerError::new(String::from_utf8_lossy(text))
    }

    /// The whole error line, e.g. `ERR value is not an integer or out of range`.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The first word (`ERR`, `WRONGTYPE`, `MOVED`, `NOAUTH`, ...).
    pub fn code(&self) -> &str {
        self.text.split(' ').next().unwrap_or_default()
    }

    /// The text after the code word.
    pub fn message(&self) -> &str {
        self.text.split_once(' ').map_or("", |(_, rest)| rest)
    }

    /// True for `NOAUTH` and `WRONGPASS`: the connection needs a (different)
    /// password.
    pub fn is_auth(&self) -> bool {
        matches!(self.code(), "NOAUTH" | "WRONGPASS")
    }

    /// True for `MOVED` and `ASK`, which the client normally follows itself.
    pub fn is_redirect(&self) -> bool {
        matches!(self.code(), "MOVED" | "ASK")
    }

    /// True for `TRYAGAIN`, `CLUSTERDOWN` and `LOADING`: the same request may
    /// succeed a little later.
    pub fn is_transient(&self) -> bool {
        matches!(self.code(), "TRYAGAIN" | "CLUSTERDOWN" | "LOADING")
    }
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for ServerError {}

impl From<ServerError> for Error {
    fn from(e: ServerError) -> Error {
        Error::Server(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_error_parts() {
        let e = ServerError::new("MOVED 3999 127.0.0.1:6381");
        assert_eq!(e.code(), "MOVED");
        assert_eq!(e.message(), "3999 127.0.0.1:6381");
        assert!(e.is_redirect());
        assert!(!e.is_transient());
        let bare = ServerError::new("ERR");
        assert_eq!(bare.code(), "ERR");
        assert_eq!(bare.message(), "");
        assert!(ServerError::new("TRYAGAIN Multiple keys request during rehashing").is_transient());
    }

    #[test]
    fn classification() {
        let io = Error::io(
            "a:1",
            std::io::Error::from(std::io::ErrorKind::ConnectionReset),
        );
        assert!(io.is_network() && !io.is_timeout());
        let t = Error::Timeout {
            during: TimeoutKind::Response,
            addr: "a:1".into(),
            after: Duration::from_millis(5),
        };
        assert!(t.is_timeout() && t.is_network());
        assert_eq!(
            t.to_string(),
            "timed out after 5ms waiting for a reply from a:1"
        );
        let s = Error::from(ServerError::new("NOAUTH Authentication required."));
        assert!(s.server_error().is_some_and(ServerError::is_auth));
    }
}
