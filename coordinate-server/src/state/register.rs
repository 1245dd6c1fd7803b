//! `register`: admitting a node, or recognising one that comes back.
//!
//! Three kinds of registration:
//!
//! - a **known id** (the node reconnected, or the coordinator restarted):
//!   nothing about its slots or its role changes; only changed addresses are
//!   recorded;
//! - a **new id at a new address**: a join, as a replica or as a primary
//!   ([`super::replicas`]); a primary is planned slots as soon as no
//!   migration is in flight (the first node of all simply gets every slot);
//! - a **new id at the address of a known node that is not connected**: a
//!   node restarted (node ids are random per process) and took its old place.
//!   Two processes cannot listen on one address at once, so the old process
//!   is gone, and with it the keys it held in memory; the newcomer replaces
//!   it in the slot map, in any migration, as its replicas' primary, and in
//!   its role. One exception: if the old node was a primary owning slots
//!   and one of its replicas has a full copy of them, that replica is
//!   promoted and the empty newcomer becomes its replica
//!   ([`super::failover`]). If the old id is still connected, the address is
//!   in use and the registration is refused.
//!
//! The node's own `replica_of` in `register` is ignored: the coordinator
//! decides roles.

use std::time::Instant;

use keycafe_core::cluster::{ClusterConfig, NodeInfo};
use keycafe_core::coord::CoordinatorMessage;
use tracing::{error, info, warn};

use super::events::{ClusterEvent, FailoverReason};
use super::failover::hand_over;
use super::load::CommandRate;
use super::{ConnId, Coordinator, Effect, Health, refuse};

/// Longest node id accepted (Redis-style ids are 40 hex characters).
const MAX_ID_LEN: usize = 64;
/// Longest `host:port` accepted.
const MAX_ADDR_LEN: usize = 255;

/// The fields of a `register` message.
pub(super) struct Registration {
    pub node: NodeInfo,
    pub epoch: u64,
    /// Client address of the primary the node is configured to replicate.
    pub primary: Option<String>,
}

impl Coordinator {
    pub(super) fn register(
        &mut self,
        conn: ConnId,
        registration: Registration,
        now: Instant,
        effects: &mut Vec<Effect>,
    ) {
        // The connection task has checked the node's proof of the cluster
        // secret before this message got here.
        let Registration {
            node,
            epoch,
            primary,
        } = registration;
        if let Err(reason) = check_node(&node) {
            warn!(conn, %reason, "invalid registration refused");
            refuse(conn, &reason, effects);
            return;
        }
        if let Some(current) = self.sessions.get(&conn)
            && *current != node.id
        {
            refuse(
                conn,
                &format!("this connection is already registered as {current}"),
                effects,
            );
            return;
        }

        // Epochs come from the coordinator alone. A node that holds a newer
        // one than ours saw a configuration this coordinator never made (its
        // data directory was lost or belongs to another cluster): refuse it
        // rather than jump, so that no node can move the epoch (to its
        // maximum, say, after which nothing could ever supersede it).
        if epoch > self.config.epoch {
            let reason = format!(
                "this node holds epoch {epoch}, newer than the coordinator's {}: the \
                 coordinator's data directory is not this cluster's; restore it, or restart \
                 the node with no state",
                self.config.epoch
            );
            error!(conn, node = %node.id, "{reason}");
            refuse(conn, &reason, effects);
            return;
        }
        // A node that is connected and heard from keeps its addresses: a
        // second process claiming its id from elsewhere is refused (the same
        // addresses are the same node reconnecting).
        if let Some(known) = self.config.node(&node.id)
            && (known.client_addr != node.client_addr || known.bus_addr != node.bus_addr)
            && self.has_session(&node.id)
            && self.is_healthy(&node.id, now)
        {
            let reason = format!(
                "node {} is connected from {}; refusing the same id from {}",
                node.id, known.client_addr, node.client_addr
            );
            warn!(conn, "{reason}");
            refuse(conn, &reason, effects);
            return;
        }

        let changed = match self.admit(&node, primary.as_deref(), now) {
            Ok(changed) => changed,
            Err(reason) => {
                warn!(conn, node = %node.id, %reason, "registration refused");
                refuse(conn, &reason, effects);
                return;
            }
        };

        // One connection per node: a newer one replaces an older one that
        // has not noticed yet that it is dead.
        let stale: Vec<ConnId> = self
            .sessions
            .iter()
            .filter(|&(&c, id)| c != conn && *id == node.id)
            .map(|(&c, _)| c)
            .collect();
        for old in stale {
            self.sessions.remove(&old);
            effects.push(Effect::Close(old));
        }
        self.sessions.insert(conn, node.id.clone());
        let health = self.health.entry(node.id.clone()).or_insert(Health {
            last_seen: now,
            report: None,
            failing: false,
            lease_until: None,
            ops: CommandRate::default(),
        });
        health.last_seen = now;

        self.replan |= changed;
        if changed {
            self.commit(effects);
        } else {
            let message = CoordinatorMessage::Config(self.config.clone());
            effects.push(Effect::Send {
                to: vec![conn],
                message,
            });
        }
    }

    /// Puts `node` in the node list (if it is not already there with these
    /// addresses); `primary` is the client address it was configured to
    /// replicate. True if the configuration changed; an error says why the
    /// node may not register.
    fn admit(
        &mut self,
        node: &NodeInfo,
        primary: Option<&str>,
        now: Instant,
    ) -> Result<bool, String> {
        let clashes: Vec<usize> = self
            .config
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| {
                n.id != node.id
                    && (n.client_addr == node.client_addr || n.bus_addr == node.bus_addr)
            })
            .map(|(i, _)| i)
            .collect();
        if let Some(&live) = clashes
            .iter()
            .find(|&&i| self.has_session(&self.config.nodes[i].id))
        {
            let owner = &self.config.nodes[live];
            return Err(format!(
                "address {} / {} is in use by connected node {}",
                node.client_addr, node.bus_addr, owner.id
            ));
        }

        if let Some(index) = self.node_index(&node.id) {
            if !clashes.is_empty() {
                return Err("another node is registered with these addresses".to_string());
            }
            let known = &mut self.config.nodes[index];
            if known.client_addr == node.client_addr && known.bus_addr == node.bus_addr {
                return Ok(false);
            }
            info!(node = %node.id, client = %node.client_addr, bus = %node.bus_addr, "node changed address");
            known.client_addr.clone_from(&node.client_addr);
            known.bus_addr.clone_from(&node.bus_addr);
            return Ok(true);
        }

        match clashes.as_slice() {
            [] => {
                let replica_of = self.role_for_new_node(primary)?;
                info!(node = %node.id, client = %node.client_addr, ?replica_of, "node joined");
                self.config.nodes.push(NodeInfo {
                    replica_of: replica_of.clone(),
                    ..node.clone()
                });
                let event = ClusterEvent::Joined {
                    node: node.id.clone(),
                    replica_of,
                };
                self.events.record(now, event);
            }
            &[index] => self.replace(index, node, now),
            _ => return Err("these addresses belong to two different nodes".to_string()),
        }
        Ok(true)
    }

    /// `node` takes the place of the disconnected node at `index`, whose
    /// process is gone; a replica with the old primary's data is promoted
    /// first, so that the newcomer inherits the role of a replica.
    fn replace(&mut self, index: usize, node: &NodeInfo, now: Instant) {
        let old = self.config.nodes[index].id.clone();
        warn!(
            old = %old, new = %node.id, client = %node.client_addr,
            "a new node took the address of a disconnected one and replaces it; \
             the keys the old process held are gone"
        );
        let owns_slots = self.config.slots.iter().any(|r| r.owner == old);
        if owns_slots && let Some(replica) = self.candidate(&old, now) {
            self.promote(&old, &replica, FailoverReason::Restarted, now);
        }
        self.health.remove(&old);
        if self.leaving.remove(&old) {
            info!(node = %old, "the replaced node's leave request lapses");
        }
        self.done.retain(|m| m.from != old && m.to != old);
        let role = self.config.nodes[index].replica_of.clone();
        replace_node(
            &mut self.config,
            index,
            NodeInfo {
                replica_of: role,
                ..node.clone()
            },
        );
        let event = ClusterEvent::Replaced {
            old,
            new: node.id.clone(),
        };
        self.events.record(now, event);
    }
}

/// Rejects ids and addresses no real node would send.
fn check_node(node: &NodeInfo) -> Result<(), String> {
    let id_ok = !node.id.is_empty()
        && node.id.len() <= MAX_ID_LEN
        && node
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !id_ok {
        return Err(format!(
            "invalid node id: expected 1 to {MAX_ID_LEN} letters, digits, '-' or '_'"
        ));
    }
    for (what, addr) in [
        ("client_addr", &node.client_addr),
        ("bus_addr", &node.bus_addr),
    ] {
        let valid = addr.len() <= MAX_ADDR_LEN
            && keycafe_core::addr::split(addr)
                .is_some_and(|(host, _)| keycafe_core::addr::is_announceable(host));
        if !valid {
            return Err(format!(
                "invalid {what}: expected host:port with a host others can reach \
                 (not 0.0.0.0 or ::; set announce_host on the node)"
            ));
        }
    }
    if node.client_addr == node.bus_addr {
        return Err("client_addr and bus_addr must differ".to_string());
    }
    Ok(())
}

/// `config` with `node` in place of the node at `index`: in the node list,
/// the slot map, every migration, and as the primary of its replicas.
fn replace_node(config: &mut ClusterConfig, index: usize, node: NodeInfo) {
    let old = std::mem::replace(&mut config.nodes[index], node);
    let new = config.nodes[index].id.clone();
    hand_over(config, &old.id, &new);
    for n in &mut config.nodes {
        if n.replica_of.as_deref() == Some(old.id.as_str()) {
            n.replica_of = Some(new.clone());
        }
    }
}
