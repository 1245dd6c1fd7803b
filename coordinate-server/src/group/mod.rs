//! The coordinator group: coordinators that agree on every decision through
//! Raft (TiKV's `raft` crate), so that the control plane survives the loss
//! of a minority of them. `docs/coordinator-group.md` has the design; in
//! short, the leader runs the coordinator's state machine ([`crate::state`])
//! and proposes each [`Durable`] state it would have persisted, and the
//! effects after it wait until that entry is committed.
//!
//! # Layout
//!
//! - [`log`]: the Raft log and hard state on disk (a checksummed write-ahead
//!   log and a snapshot file), as `raft`'s `Storage`.
//! - [`replicated`]: what the committed log has made (the coordinator's
//!   state, the members), and the leader's effects held until committed.
//! - [`transport`]: the links between coordinators on the group port,
//!   authenticated with the cluster secret, carrying Raft messages.
//! - [`view`]: the group as the dashboard and `/api/cluster` show it.
//!
//! This module holds what they share: a member's addresses, the entries
//! the log carries and the snapshot's contents.

use serde::{Deserialize, Serialize};

use crate::state::Durable;

pub mod log;
pub mod replicated;
pub mod transport;
pub mod view;

/// A coordinator's id in the group: 1 and up (Raft reserves 0 for "none").
pub type MemberId = u64;

/// One member of the group and where to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub id: MemberId,
    /// Where the other coordinators reach it (its group port).
    pub group_addr: String,
    /// Where nodes reach it (its node port): what a follower names in
    /// `not_leader`.
    pub node_addr: String,
    /// Its dashboard, for links between the members' dashboards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_addr: Option<String>,
}

/// What a normal entry of the log carries (JSON in the entry's data; an
/// empty entry is the one a new leader commits to start its term).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Proposal {
    /// The coordinator's whole durable state after a decision.
    State(Durable),
}

/// What a snapshot carries: everything applied up to its index.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotData {
    /// The latest state committed, if any decision was made yet.
    pub state: Option<Durable>,
    /// The members and their addresses (the voters are in the snapshot's
    /// `ConfState`; this says where they are).
    pub members: Vec<Member>,
}
