//! What this node has heard from each peer over the cluster bus: the gossip
//! task writes it, CLUSTER NODES and SHARDS read it (a peer silent for the
//! node timeout shows as `fail?`).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use keycafe_core::cluster::NodeId;

/// What this node last heard from a peer over the bus.
#[derive(Debug, Clone)]
pub struct PeerStatus {
    pub last_pong: Option<Instant>,
    pub epoch: u64,
    /// Slots the peer says it owns.
    pub claimed_slots: usize,
}

/// Peer health, shared by the gossip task and CLUSTER NODES.
#[derive(Debug, Default)]
pub struct Peers {
    status: Mutex<HashMap<NodeId, PeerStatus>>,
}

impl Peers {
    pub fn get(&self, id: &str) -> Option<PeerStatus> {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    pub(crate) fn record(&self, id: &str, status: PeerStatus) {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.to_string(), status);
    }

    /// True if the peer has not answered for `timeout` (or ever, once the
    /// node has been up that long).
    pub fn is_unreachable(&self, id: &str, timeout: Duration, up_since: Instant) -> bool {
        match self.get(id).and_then(|s| s.last_pong) {
            Some(last) => last.elapsed() > timeout,
            None => up_since.elapsed() > timeout,
        }
    }
}
