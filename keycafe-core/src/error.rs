//! Errors a peer can cause by sending bytes that break the protocol.

/// A violation of the wire protocol by the peer.
///
/// Every variant is the peer's fault, never a bug here. A server answers with
/// [`ProtocolError::reply_text`] and closes the connection, because after a
/// framing error it can no longer tell where the next request starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("invalid multibulk length")]
    InvalidMultibulkLength,
    #[error("invalid bulk length")]
    InvalidBulkLength,
    #[error("unauthenticated multibulk length")]
    UnauthenticatedMultibulkLength,
    #[error("unauthenticated bulk length")]
    UnauthenticatedBulkLength,
    #[error("expected '{expected}', got '{got}'")]
    UnexpectedByte { expected: char, got: char },
    #[error("too big inline request")]
    InlineTooLong,
    #[error("unbalanced quotes in request")]
    UnbalancedQuotes,
    #[error("invalid integer")]
    InvalidInteger,
    #[error("unknown frame type 0x{0:02x}")]
    UnknownFrameType(u8),
    #[error("frame length {0} exceeds the limit")]
    FrameTooLarge(u64),
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
    #[error("request must be a non-empty array of bulk strings")]
    NotARequest,
    #[error("bad hello: magic bytes do not match")]
    BadMagic,
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u16),
}

impl ProtocolError {
    /// The error line sent to the peer before the connection is closed,
    /// shaped like Redis's (`ERR Protocol error: ...`).
    pub fn reply_text(&self) -> String {
        format!("ERR Protocol error: {self}")
    }
}
