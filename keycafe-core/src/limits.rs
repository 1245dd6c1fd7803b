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
}

impl Limits {
    pub const DEFAULT: Limits = Limits {
        max_bulk_len: 512 * 1024 * 1024,
        max_args: 1024 * 1024,
        max_inline_len: 64 * 1024,
        max_frame_len: 1024 * 1024 * 1024,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}
