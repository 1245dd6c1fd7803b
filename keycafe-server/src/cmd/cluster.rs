//! CLUSTER subcommands, ASKING, READONLY and READWRITE.
//!
//! Both modes answer from one `Layout`: in cluster mode it comes from the
//! configuration this node has adopted; a standalone node is a cluster of one
//! that owns every slot. CLUSTER SLOTS, SHARDS and NODES keep Redis Cluster's
//! exact shapes so that cluster-aware clients (the `redis` crate's cluster
//! client, `redis-cli -c`, `redis-benchmark --cluster`, keycafe-client) work
//! against either.

use std::sync::atomic::Ordering;
use std::time::Duration;

use keycafe_core::cluster::Migration;
use keycafe_core::coord::NodeMessage;
use keycafe_core::{Args, Reply, SLOT_COUNT, Slot, key_slot};

use super::server::unknown_subcommand;
use super::{ArgCursor, CmdError, CmdResult, Ctx};

/// One node as CLUSTER commands show it.
struct LayoutNode {
    id: String,
    ip: String,
    port: i64,
    bus_port: i64,
    myself: bool,
    /// Flagged `fail?`: silent on the bus for longer than the node timeout.
    unreachable: bool,
    /// For a replica, its primary's index in the node list.
    primary: Option<usize>,
}

/// Who owns what, as CLUSTER commands show it.
struct Layout {
    epoch: u64,
    nodes: Vec<LayoutNode>,
    /// `(start, end, index into nodes)`, ascending.
    ranges: Vec<(Slot, Slot, usize)>,
    migrations: Vec<Migration>,
    /// This node's replication offset.
    offset: i64,
}

impl Layout {
    fn of(ctx: &Ctx<'_>) -> Layout {
        let shared = ctx.shared;
        let Some(cluster) = shared.cluster.as_ref() else {
            let config = &shared.config;
            return Layout {
                epoch: 0,
                nodes: vec![LayoutNode {
                    id: shared.node_id.clone(),
                    ip: config.announced_host(),
                    port: i64::from(config.announce_port.unwrap_or(config.service_port)),
                    bus_port: i64::from(config.announce_bus_port.unwrap_or(config.bus_port())),
                    myself: true,
                    unreachable: false,
                    primary: None,
                }],
                ranges: vec![(0, SLOT_COUNT - 1, 0)],
                migrations: Vec::new(),
                offset: shared.replication.log.offset() as i64,
            };
        };
        let view = cluster.view();
        let timeout = Duration::from_millis(shared.config.node_timeout_ms);
        let nodes =
            view.config
                .nodes
                .iter()
                .map(|node| {
                    let (ip, port) = split_addr(&node.client_addr);
                    let myself = node.id == cluster.me.id;
                    LayoutNode {
                        id: node.id.clone(),
                        ip,
                        port,
                        bus_port: split_addr(&node.bus_addr).1,
                        myself,
                        unreachable: !myself
                            && cluster
                                .peers
                                .is_unreachable(&node.id, timeout, shared.started),
                        primary: node.replica_of.as_deref().and_then(|primary| {
                            view.config.nodes.iter().position(|n| n.id == primary)
                        }),
                    }
                })
                .collect();
        let ranges = view
            .config
            .slots
            .iter()
            .filter_map(|range| {
                let owner = view.config.nodes.iter().position(|n| n.id == range.owner)?;
                Some((range.start, range.end, owner))
            })
            .collect();
        Layout {
            epoch: view.epoch(),
            nodes,
            ranges,
            migrations: view.config.migrations.clone(),
            offset: shared.replication.log.offset() as i64,
        }
    }

    /// Indexes of the replicas of the node at `primary`.
    fn replicas(&self, primary: usize) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].primary == Some(primary))
            .collect()
    }

    fn assigned(&self) -> usize {
        self.ranges
            .iter()
            .map(|(start, end, _)| usize::from(end - start) + 1)
            .sum()
    }
}

/// `"host:port"` → (host, port); an unparsable port shows as 0.
fn split_addr(addr: &str) -> (String, i64) {
    match addr.rsplit_once(':') {
        Some((host, port)) => (host.to_string(), port.parse().unwrap_or(0)),
        None => (addr.to_string(), 0),
    }
}

pub fn cluster(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let mut cursor = ArgCursor::new(args);
    let sub = cursor.next_keyword()?;
    match sub.as_bytes() {
        b"KEYSLOT" => {
            let key = cursor.next_bytes()?;
            cursor.finish()?;
            reply.integer(i64::from(key_slot(key)));
        }
        b"MYID" => reply.bulk(ctx.shared.node_id.as_bytes()),
        b"SLOTS" => slots(&Layout::of(ctx), reply),
        b"SHARDS" => shards(&Layout::of(ctx), reply),
        b"NODES" => reply.verbatim(b"txt", nodes(&Layout::of(ctx)).as_bytes()),
        b"INFO" => reply.verbatim(b"txt", info(&Layout::of(ctx)).as_bytes()),
        b"COUNTKEYSINSLOT" => {
            let slot = slot_arg(&mut cursor)?;
            cursor.finish()?;
            reply.integer(ctx.store().count_keys_in_slot(slot) as i64);
        }
        b"GETKEYSINSLOT" => {
            let slot = slot_arg(&mut cursor)?;
            let count = cursor.next_int()?;
            cursor.finish()?;
            let count = usize::try_from(count)
                .map_err(|_| CmdError::Other("ERR Invalid number of keys".into()))?;
            let keys = ctx.store().keys_in_slot(slot, count);
            reply.array(keys.len());
            keys.iter().for_each(|key| reply.bulk(key));
        }
        b"FAILOVER" => {
            let force = match cursor.remaining() {
                0 => false,
                _ => match cursor.next_keyword()?.as_bytes() {
                    b"FORCE" | b"TAKEOVER" => true,
                    _ => return Err(CmdError::Syntax),
                },
            };
            cursor.finish()?;
            if !super::replication::is_replica(ctx) {
                return Err(CmdError::Other(
                    "ERR You should send CLUSTER FAILOVER to a replica".into(),
                ));
            }
            let parts = ctx
                .shared
                .replication_parts()
                .ok_or(CmdError::NotInCluster)?;
            tokio::spawn(crate::replication::failover::run(parts, force));
            reply.ok();
        }
        b"LEAVE" => {
            cursor.finish()?;
            let cluster = ctx.shared.cluster.as_ref().ok_or_else(|| {
                CmdError::Other("ERR This node is standalone; there is no cluster to leave".into())
            })?;
            let view = cluster.view();
            if view.me.is_some() && view.config.nodes.len() == 1 {
                return Err(CmdError::Other(
                    "ERR this is the cluster's last node; it cannot leave".into(),
                ));
            }
            cluster.leaving.store(true, Ordering::Relaxed);
            cluster.tell_coordinator(NodeMessage::Leave);
            reply.ok();
        }
        _ => return Err(unknown_subcommand(args, "CLUSTER")),
    }
    Ok(())
}

/// `[[start, end, [ip, port, id], [replica ip, port, id], ...], ...]`, one
/// entry per contiguous range: the primary first, then its replicas.
fn slots(layout: &Layout, reply: &mut Reply<'_>) {
    reply.array(layout.ranges.len());
    for &(start, end, owner) in &layout.ranges {
        let replicas = layout.replicas(owner);
        reply.array(3 + replicas.len());
        reply.integer(i64::from(start));
        reply.integer(i64::from(end));
        for index in std::iter::once(owner).chain(replicas) {
            let node = &layout.nodes[index];
            reply.array(3);
            reply.bulk(node.ip.as_bytes());
            reply.integer(node.port);
            reply.bulk(node.id.as_bytes());
        }
    }
}

/// One shard per node that owns slots, as a map: its ranges as flat
/// start/end pairs, and its nodes (the primary, then its replicas).
fn shards(layout: &Layout, reply: &mut Reply<'_>) {
    let owners: Vec<usize> = (0..layout.nodes.len())
        .filter(|&i| layout.ranges.iter().any(|&(_, _, owner)| owner == i))
        .collect();
    reply.array(owners.len());
    for index in owners {
        let ranges: Vec<_> = layout.ranges.iter().filter(|r| r.2 == index).collect();
        reply.map(2);
        reply.bulk(b"slots");
        reply.array(ranges.len() * 2);
        for &&(start, end, _) in &ranges {
            reply.integer(i64::from(start));
            reply.integer(i64::from(end));
        }
        reply.bulk(b"nodes");
        let members: Vec<usize> = std::iter::once(index)
            .chain(layout.replicas(index))
            .collect();
        reply.array(members.len());
        for member in members {
            shard_node(layout, member, reply);
        }
    }
}

/// One node of a CLUSTER SHARDS entry: a map, its fields in Redis's order.
fn shard_node(layout: &Layout, index: usize, reply: &mut Reply<'_>) {
    let node = &layout.nodes[index];
    let health: &[u8] = if node.unreachable { b"fail" } else { b"online" };
    let role: &[u8] = match node.primary {
        Some(_) => b"replica",
        None => b"master",
    };
    reply.map(7);
    reply.bulk(b"id");
    reply.bulk(node.id.as_bytes());
    reply.bulk(b"port");
    reply.integer(node.port);
    for (key, value) in [
        ("ip", node.ip.as_bytes()),
        ("endpoint", node.ip.as_bytes()),
        ("role", role),
    ] {
        reply.bulk(key.as_bytes());
        reply.bulk(value);
    }
    reply.bulk(b"replication-offset");
    reply.integer(if node.myself { layout.offset } else { 0 });
    reply.bulk(b"health");
    reply.bulk(health);
}

/// Redis's CLUSTER NODES text: one line per node, with its slot ranges and
/// `[slot->-target]` for slots it is migrating away.
fn nodes(layout: &Layout) -> String {
    let mut text = String::new();
    for (index, node) in layout.nodes.iter().enumerate() {
        let role = if node.primary.is_some() {
            "slave"
        } else {
            "master"
        };
        let mut flags = if node.myself {
            format!("myself,{role}")
        } else {
            role.to_string()
        };
        if node.unreachable {
            flags.push_str(",fail?");
        }
        let primary = node.primary.map_or("-", |p| layout.nodes[p].id.as_str());
        text.push_str(&format!(
            "{} {}:{}@{} {flags} {primary} 0 0 {} connected",
            node.id, node.ip, node.port, node.bus_port, layout.epoch
        ));
        for &(start, end, _) in layout.ranges.iter().filter(|r| r.2 == index) {
            if start == end {
                text.push_str(&format!(" {start}"));
            } else {
                text.push_str(&format!(" {start}-{end}"));
            }
        }
        for migration in layout.migrations.iter().filter(|m| m.from == node.id) {
            text.push_str(&format!(" [{}->-{}]", migration.slot, migration.to));
        }
        text.push('\n');
    }
    text
}

fn info(layout: &Layout) -> String {
    let assigned = layout.assigned();
    let failing = layout.nodes.iter().filter(|n| n.unreachable).count();
    let state = if assigned == usize::from(SLOT_COUNT) {
        "ok"
    } else {
        "fail"
    };
    let size = layout
        .nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| layout.ranges.iter().any(|r| r.2 == *i))
        .count();
    format!(
        "cluster_state:{state}\r\ncluster_slots_assigned:{assigned}\r\ncluster_slots_ok:{}\r\n\
         cluster_slots_pfail:0\r\ncluster_slots_fail:0\r\ncluster_known_nodes:{}\r\n\
         cluster_size:{size}\r\ncluster_current_epoch:{}\r\ncluster_my_epoch:{}\r\n\
         cluster_nodes_unreachable:{failing}\r\n",
        assigned,
        layout.nodes.len(),
        layout.epoch,
        layout.epoch,
    )
}

/// A slot number argument, checked to be in range.
fn slot_arg(cursor: &mut ArgCursor<'_>) -> CmdResult<u16> {
    let slot = cursor.next_int()?;
    u16::try_from(slot)
        .ok()
        .filter(|&slot| slot < SLOT_COUNT)
        .ok_or_else(|| CmdError::Other("ERR Invalid or out of range slot".into()))
}

pub fn asking(ctx: &mut Ctx<'_>, _args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    ctx.conn.asking = true;
    reply.ok();
    Ok(())
}

pub fn readonly(ctx: &mut Ctx<'_>, _args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    ctx.conn.readonly = true;
    reply.ok();
    Ok(())
}

pub fn readwrite(ctx: &mut Ctx<'_>, _args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    ctx.conn.readonly = false;
    reply.ok();
    Ok(())
}
