//! Persistence: the node's data directory, snapshots and the append-only
//! file.
//!
//! - [`format`](mod@format): the container both kinds of file share: a header, then
//!   checksummed blocks, and a snapshot's end marker; a streaming reader
//!   that tells a torn tail from corruption.
//! - [`atomic`]: writing a file under a temporary name and renaming it into
//!   place, durably.
//! - [`check`]: what `keycafe-check` reports about a file, and its repair.

pub mod atomic;
pub mod check;
pub mod format;
