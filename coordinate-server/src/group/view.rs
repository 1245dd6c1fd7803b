//! The group as the dashboard and `/api/cluster` show it.

use serde::{Deserialize, Serialize};

use super::MemberId;

/// The coordinator group, as one member sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupView {
    /// The member answering.
    pub id: MemberId,
    /// Its Raft role: `leader`, `follower`, `candidate` or `pre-candidate`.
    pub role: String,
    /// The leader it knows of.
    pub leader: Option<MemberId>,
    pub term: u64,
    /// The last entry committed, applied, and in its log.
    pub commit: u64,
    pub applied: u64,
    pub last_index: u64,
    pub members: Vec<MemberView>,
}

/// One member of the group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    pub id: MemberId,
    pub group_addr: String,
    pub node_addr: String,
    pub http_addr: Option<String>,
    /// The member answering.
    pub is_me: bool,
    pub is_leader: bool,
    /// On the leader: the last entry known to be in this member's log.
    pub matched: Option<u64>,
    /// This member's link to it is up (none for itself).
    pub linked: Option<bool>,
    /// Milliseconds since a message from it arrived, if one has.
    pub heard_ms: Option<u64>,
}

impl GroupView {
    /// The group as the dashboard shows a member in it: the role of each.
    pub fn role_of(&self, member: &MemberView) -> &'static str {
        match (member.is_leader, member.is_me) {
            (true, _) => "leader",
            (false, true) if self.role == "leader" => "leader",
            _ => "follower",
        }
    }
}
