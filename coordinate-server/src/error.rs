//! The ways coordinator operations fail.
//!
//! [`Error`] is for the process: the data directory cannot be used, or the
//! coordinator has stopped. [`Refusal`] is an answer to a request (a node's
//! `leave`, or the HTTP API's): the request was understood and declined, and
//! the message is safe to show to whoever asked.

use std::path::PathBuf;

use keycafe_core::cluster::NodeId;

/// A failure of the coordinator itself.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing the data directory failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The state file exists but cannot be trusted. Starting anyway would
    /// hand the slots out afresh, so the coordinator refuses to start.
    #[error(
        "{} is corrupt ({reason}); restore it from a backup, or move it away to start an empty cluster",
        path.display()
    )]
    Corrupt { path: PathBuf, reason: String },
    /// Another coordinate-server holds the data directory.
    #[error("data directory {} is in use by another coordinate-server", path.display())]
    Locked { path: PathBuf },
    /// The coordinator's state machine is no longer running.
    #[error("the coordinator has stopped")]
    Stopped,
}

pub type Result<T> = std::result::Result<T, Error>;

/// A request the coordinator declines.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("unknown node {0}")]
    UnknownNode(NodeId),
    #[error("node {0} is the last member of the cluster; its slots would have nowhere to go")]
    LastNode(NodeId),
}
