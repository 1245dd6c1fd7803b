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
    /// Only the group's leader decides; the leader's dashboard, if known.
    #[error("this coordinator is not the group's leader{}", .0.as_ref().map(|a| format!("; ask the leader at http://{a}/")).unwrap_or_default())]
    NotLeader(Option<String>),
    #[error("coordinator {0} is not a member of the group")]
    UnknownMember(u64),
    /// Raft refused the membership change (another is still under way).
    #[error("the group cannot change its members now: {0}")]
    GroupBusy(String),
}
