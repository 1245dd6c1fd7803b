//! `register`: admitting a node, or recognising one that comes back.
//!
//! Three kinds of registration:
//!
//! - a **known id** (the node reconnected, or the coordinator restarted):
//!   nothing about its slots changes; only changed addresses are recorded;
//! - a **new id at a new address**: a join, planned as soon as no migration is
//!   in flight (the first node of all simply gets every slot);
//! - a **new id at the address of a known node that is not connected**: a
//!   node restarted (node ids are random per process) and took its old place.
//!   Two processes cannot listen on one address at once, so the old process
//!   is gone, and with it the keys it held in memory; the newcomer replaces
//!   it in the slot map and in any migration. If the old id is still
//!   connected, the address is in use and the registration is refused.

use std::time::Instant;

use keycafe_core::cluster::{ClusterConfig, NodeInfo};
use keycafe_core::coord::CoordinatorMessage;
use tracing::{info, warn};

use super::{ConnId, Coordinator, Effect, Health, refuse};

/// Longest node id accepted (Redis-style ids are 40 hex characters).
const MAX_ID_LEN: usize = 64;
/// Longest `host:port` accepted.
const MAX_ADDR_LEN: usize = 255;

impl Coordinator {
    pub(super) fn register(
        &mut self,
        conn: ConnId,
        node: NodeInfo,
        epoch: u64,
        secret: Option<String>,
        now: Instant,
        effects: &mut Vec<Effect>,
    ) {
        if let Some(expected) = &self.settings.secret
            && !secret.is_some_and(|given| constant_time_eq(given.as_bytes(), expected.as_bytes()))
        {
            warn!(conn, node = %node.id, "registration with a wrong or missing secret refused");
            refuse(conn, "wrong or missing cluster secret", effects);
            return;
        }
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

        let mut changed = match self.admit(&node) {
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
        });
        health.last_seen = now;

        if epoch > self.config.epoch {
            self.overtake_epoch(&node.id, epoch);
            changed = true;
        }
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
    /// addresses). True if the configuration changed; an error says why the
    /// node may not register.
    fn admit(&mut self, node: &NodeInfo) -> Result<bool, String> {
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
            if self.config.nodes[index] == *node {
                return Ok(false);
            }
            info!(node = %node.id, client = %node.client_addr, bus = %node.bus_addr, "node changed address");
            self.config.nodes[index] = node.clone();
            return Ok(true);
        }

        match clashes.as_slice() {
            [] => {
                info!(node = %node.id, client = %node.client_addr, "node joined");
                self.config.nodes.push(node.clone());
            }
            &[index] => {
                let old = self.config.nodes[index].id.clone();
                warn!(
                    old = %old, new = %node.id, client = %node.client_addr,
                    "a new node took the address of a disconnected one and replaces it; \
                     the keys the old process held are gone"
                );
                self.health.remove(&old);
                if self.leaving.remove(&old) {
                    info!(node = %old, "the replaced node's leave request lapses");
                }
                self.done.retain(|m| m.from != old && m.to != old);
                replace_node(&mut self.config, index, node.clone());
            }
            _ => return Err("these addresses belong to two different nodes".to_string()),
        }
        Ok(true)
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
            && addr.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
            });
        if !valid {
            return Err(format!("invalid {what}: expected host:port"));
        }
    }
    if node.client_addr == node.bus_addr {
        return Err("client_addr and bus_addr must differ".to_string());
    }
    Ok(())
}

/// Compares secrets without revealing through timing how much matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The node list of `config` with `node` in place of the node at `index`.
fn replace_node(config: &mut ClusterConfig, index: usize, node: NodeInfo) {
    let old = std::mem::replace(&mut config.nodes[index], node);
    let new = &config.nodes[index].id;
    for range in &mut config.slots {
        if range.owner == old.id {
            range.owner = new.clone();
        }
    }
    for m in &mut config.migrations {
        if m.from == old.id {
            m.from = new.clone();
        }
        if m.to == old.id {
            m.to = new.clone();
        }
    }
}
