//! Limits that bound what a peer can make a decoder accept.

/// Upper bounds enforced by both decoders before anything is allocated.
///
/// A length field is only a claim: a decoder checks it against these limits
/// and then waits for the bytes to arrive, so a peer that announces a 1 GiB
/// value and never sends it costs nothing but the bytes it really sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest bulk string (key or value), in bytes. Redis's default is 512 MiB.
    pub max_bulk_len: usize,
    /// Most arguments in one request, command name included.
    pub max_args: usize,
    /// Longest inline (telnet-style) request line, in bytes.
    pub max_inline_len: usize,
    /// Largest whole request or reply frame, in bytes.
    pub max_frame_len: usize,
    /// These are the limits of a peer that has not authenticated yet
    /// ([`Limits::unauthenticated`]): going over the argument count or a
    /// bulk length is reported as Redis reports it for such a peer.
    pub unauthenticated: bool,
}

impl Limits {
    pub const DEFAULT: Limits = Limits {
        max_bulk_len: 512 * 1024 * 1024,
        max_args: 1024 * 1024,
        max_inline_len: 64 * 1024,
        max_frame_len: 1024 * 1024 * 1024,
        unauthenticated: false,
    };

    /// What a connection may declare before it has authenticated, as in
    /// Redis: at most 10 arguments of at most 16 KiB each, so that a
    /// stranger without the password cannot make the node reserve or wait
    /// for big requests. (AUTH and HELLO fit easily.)
    pub fn unauthenticated(self) -> Limits {
        const MAX_ARGS: usize = 10;
        const MAX_BULK_LEN: usize = 16 * 1024;
        Limits {
            max_args: self.max_args.min(MAX_ARGS),
            max_bulk_len: self.max_bulk_len.min(MAX_BULK_LEN),
            // Room for the arguments and their framing, in either protocol.
            max_frame_len: self.max_frame_len.min(MAX_ARGS * (MAX_BULK_LEN + 64)),
            unauthenticated: true,
            ..self
        }
    }

    /// The error for an argument count over the limit.
    pub(crate) fn too_many_args(&self) -> crate::ProtocolError {
        match self.unauthenticated {
            true => crate::ProtocolError::UnauthenticatedMultibulkLength,
            false => crate::ProtocolError::InvalidMultibulkLength,
        }
    }

    /// The error for a bulk length over the limit.
    pub(crate) fn bulk_too_long(&self) -> crate::ProtocolError {
        match self.unauthenticated {
            true => crate::ProtocolError::UnauthenticatedBulkLength,
            false => crate::ProtocolError::InvalidBulkLength,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}
