//! Cluster mode: this node's view of the cluster, the slot check, the link to
//! the coordinator, the cluster bus and slot migration.
//!
//! A node started with a `coordinator` address registers with it and serves
//! the slots the newest configuration gives it. Configurations only move
//! forward: [`ClusterState::adopt`] ignores one whose epoch is not higher
//! than the current one, so a delayed message cannot undo a newer layout.
//! The view is an immutable snapshot behind an `ArcSwap`, so the per-command
//! slot check reads it without taking a lock.
//!
//! - [`view`]: the snapshot and its per-slot states.
//! - [`routing`]: MOVED / ASK / TRYAGAIN / CROSSSLOT decisions.
//! - [`coordinator`]: registration, configuration updates, heartbeats.
//! - [`lease`]: how long this primary may acknowledge writes.
//! - [`bus`]: node-to-node links (PING/PONG gossip, key import).
//! - [`migration`]: moving a slot's keys to their new owner.
//! - [`peers`]: what the bus has heard from each peer.

pub mod bus;
pub mod coordinator;
pub mod lease;
pub mod migration;
pub mod peers;
pub mod routing;
pub mod view;

use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use keycafe_core::cluster::{ClusterConfig, NodeInfo};
use keycafe_core::coord::NodeMessage;
use keycafe_core::tls::{Connector, MemberTls};
use tokio::sync::watch;
use tracing::info;

pub use view::{ClusterView, SlotState};

/// The cluster side of a node's shared state.
pub struct ClusterState {
    /// This node as the cluster knows it.
    pub me: NodeInfo,
    /// Where the coordinator listens: one address, or every member of a
    /// coordinator group, separated by commas.
    pub coordinator: String,
    /// The cluster secret, which members prove they hold (see
    /// `keycafe_core::auth`).
    pub secret: String,
    /// Mutual TLS for the bus and the coordinator link (`tls_cluster`);
    /// `None`: they are plain TCP.
    pub tls: Option<MemberTls>,
    view: ArcSwap<ClusterView>,
    /// Serialises adoptions (from the coordinator and from gossip), so that
    /// two racing updates cannot both build on the same old view.
    adopting: Mutex<()>,
    /// Ticks whenever a new view is adopted (the migration driver waits on it).
    changed: watch::Sender<u64>,
    /// Messages for the coordinator, sent by the coordinator link.
    outbox: tokio::sync::mpsc::UnboundedSender<NodeMessage>,
    outbox_rx: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<NodeMessage>>>,
    /// Set once this node has asked to leave the cluster (`CLUSTER LEAVE`),
    /// or has been left out of a configuration after being in one: the node
    /// stops once it holds a configuration without itself.
    pub leaving: std::sync::atomic::AtomicBool,
    /// What the bus has heard from each peer.
    pub peers: peers::Peers,
    /// Until when this node, as a primary, may acknowledge writes.
    pub lease: lease::Lease,
    /// The newest epoch this node saw before it restarted (kept in its
    /// data directory): it registers with it, so that a coordinator that
    /// lost its own state refuses it instead of planning it afresh.
    remembered_epoch: std::sync::atomic::AtomicU64,
}

impl ClusterState {
    pub fn new(me: NodeInfo, coordinator: String, secret: String) -> ClusterState {
        let (outbox, outbox_rx) = tokio::sync::mpsc::unbounded_channel();
        ClusterState {
            me,
            coordinator,
            secret,
            tls: None,
            view: ArcSwap::from_pointee(ClusterView::empty()),
            adopting: Mutex::new(()),
            changed: watch::Sender::new(0),
            outbox,
            outbox_rx: Mutex::new(Some(outbox_rx)),
            leaving: std::sync::atomic::AtomicBool::new(false),
            peers: peers::Peers::default(),
            lease: lease::Lease::default(),
            remembered_epoch: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Registers with at least `epoch` (see `remembered_epoch`).
    pub fn remember_epoch(&self, epoch: u64) {
        self.remembered_epoch
            .fetch_max(epoch, std::sync::atomic::Ordering::Relaxed);
    }

    /// The epoch to register with: the newest this node has seen, before a
    /// restart included.
    pub fn registration_epoch(&self) -> u64 {
        let remembered = self
            .remembered_epoch
            .load(std::sync::atomic::Ordering::Relaxed);
        self.epoch().max(remembered)
    }

    /// Speaks TLS on the cluster's links (see [`ClusterState::tls`]).
    pub fn with_tls(mut self, tls: Option<MemberTls>) -> ClusterState {
        self.tls = tls;
        self
    }

    /// The connector for dialling a member, when the cluster speaks TLS.
    pub fn connector(&self) -> Option<&Connector> {
        self.tls.as_ref().map(|tls| &tls.connector)
    }

    /// Queues a message for the coordinator (sent when the link is up).
    pub fn tell_coordinator(&self, message: NodeMessage) {
        let _ = self.outbox.send(message);
    }

    /// The receiving end of the outbox; the coordinator link takes it once.
    pub(crate) fn take_outbox(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<NodeMessage>> {
        self.outbox_rx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// The current view (cheap: no lock, no copy).
    pub fn view(&self) -> Arc<ClusterView> {
        self.view.load_full()
    }

    pub fn epoch(&self) -> u64 {
        self.view.load().epoch()
    }

    /// Adopts `config` if it is newer than the current one. Returns whether it
    /// was adopted.
    pub fn adopt(&self, config: ClusterConfig) -> bool {
        let _adopting = self.adopting.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.view.load();
        if !config.supersedes(Some(&current.config)) {
            return false;
        }
        let epoch = config.epoch;
        let view = ClusterView::new(config, &self.me.id, Some(&current));
        info!(
            epoch,
            slots = view.my_slots().len(),
            migrating = view.outgoing.len(),
            "adopted cluster configuration"
        );
        if view.is_replica() {
            // A primary that is demoted stops acknowledging writes at once,
            // whatever was left of its lease.
            self.lease.revoke();
        }
        if current.me.is_some() && view.me.is_none() {
            // Removed from the cluster: it left (CLUSTER LEAVE, or the
            // dashboard's leave), or a process at its address took its
            // place. Either way it has nothing to serve; staying up would
            // only register it again as a new member. The server stops
            // once it sees `leaving` with a view that lacks it.
            info!(epoch, "no longer a member of the cluster; stopping");
            self.leaving
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        self.view.store(Arc::new(view));
        self.changed.send_replace(epoch);
        true
    }

    /// A receiver that sees every adopted epoch.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> NodeInfo {
        NodeInfo {
            id: "me".into(),
            client_addr: "127.0.0.1:1".into(),
            bus_addr: "127.0.0.1:2".into(),
            replica_of: None,
        }
    }

    fn config(epoch: u64) -> ClusterConfig {
        ClusterConfig {
            epoch,
            nodes: vec![me()],
            ..ClusterConfig::default()
        }
    }

    #[test]
    fn only_a_newer_configuration_is_adopted_and_announced() {
        let cluster = ClusterState::new(me(), "127.0.0.1:3".into(), "a test cluster secret".into());
        let mut changed = cluster.subscribe();
        assert!(cluster.adopt(config(3)));
        assert!(changed.has_changed().unwrap());
        changed.borrow_and_update();
        for stale in [3, 2] {
            assert!(!cluster.adopt(config(stale)), "epoch {stale} adopted");
            assert_eq!(cluster.epoch(), 3);
            assert!(!changed.has_changed().unwrap(), "epoch {stale} announced");
        }
        assert!(cluster.adopt(config(4)));
        assert_eq!(*changed.borrow_and_update(), 4);
    }

    #[test]
    fn a_member_left_out_of_a_configuration_is_leaving() {
        use std::sync::atomic::Ordering;
        let cluster = ClusterState::new(me(), "127.0.0.1:3".into(), "a test cluster secret".into());
        let without_me = |epoch| ClusterConfig {
            epoch,
            ..ClusterConfig::default()
        };
        // Not yet a member: a configuration without it changes nothing.
        assert!(cluster.adopt(without_me(1)));
        assert!(!cluster.leaving.load(Ordering::Relaxed));
        assert!(cluster.adopt(config(2)));
        assert!(!cluster.leaving.load(Ordering::Relaxed));
        // A member, then left out: it has left.
        assert!(cluster.adopt(without_me(3)));
        assert!(cluster.leaving.load(Ordering::Relaxed));
    }
}
