//! CLUSTER subcommands, ASKING, READONLY and READWRITE.
//!
//! A standalone node is a cluster of one: it owns every slot, and it answers
//! CLUSTER SLOTS, SHARDS and NODES in Redis Cluster's exact shapes so that
//! cluster-aware clients (the `redis` crate's cluster client, `redis-cli -c`,
//! `redis-benchmark --cluster`, keycafe-client) work against it unchanged.

use keycafe_core::{Args, Reply, SLOT_COUNT, key_slot};

use super::server::unknown_subcommand;
use super::{ArgCursor, CmdError, CmdResult, Ctx};

const LAST_SLOT: i64 = SLOT_COUNT as i64 - 1;

pub fn cluster(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let mut cursor = ArgCursor::new(args);
    let sub = cursor.next_keyword()?;
    let shared = ctx.shared;
    let config = &shared.config;
    let (ip, port) = (config.bind.as_bytes(), i64::from(config.service_port));
    match sub.as_bytes() {
        b"KEYSLOT" => {
            let key = cursor.next_bytes()?;
            cursor.finish()?;
            reply.integer(i64::from(key_slot(key)));
        }
        b"MYID" => reply.bulk(shared.node_id.as_bytes()),
        b"SLOTS" => {
            reply.array(1);
            reply.array(3);
            reply.integer(0);
            reply.integer(LAST_SLOT);
            reply.array(3);
            reply.bulk(ip);
            reply.integer(port);
            reply.bulk(shared.node_id.as_bytes());
        }
        b"SHARDS" => {
            reply.array(1);
            reply.array(4);
            reply.bulk(b"slots");
            reply.array(2);
            reply.integer(0);
            reply.integer(LAST_SLOT);
            reply.bulk(b"nodes");
            reply.array(1);
            reply.array(14);
            for (key, value) in [
                ("id", shared.node_id.as_bytes()),
                ("endpoint", ip),
                ("ip", ip),
                ("role", b"master"),
                ("health", b"online"),
            ] {
                reply.bulk(key.as_bytes());
                reply.bulk(value);
            }
            reply.bulk(b"port");
            reply.integer(port);
            reply.bulk(b"replication-offset");
            reply.integer(0);
        }
        b"NODES" => {
            let line = format!(
                "{} {}:{}@{} myself,master - 0 0 0 connected 0-{LAST_SLOT}\n",
                shared.node_id,
                config.bind,
                config.service_port,
                config.bus_port(),
            );
            reply.bulk(line.as_bytes());
        }
        b"INFO" => {
            let text = "cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:16384\r\n\
                        cluster_slots_pfail:0\r\ncluster_slots_fail:0\r\ncluster_known_nodes:1\r\n\
                        cluster_size:1\r\ncluster_current_epoch:0\r\ncluster_my_epoch:0\r\n";
            reply.bulk(text.as_bytes());
        }
        b"COUNTKEYSINSLOT" => {
            let slot = slot_arg(&mut cursor)?;
            cursor.finish()?;
            reply.integer(shared.store.count_keys_in_slot(slot) as i64);
        }
        b"GETKEYSINSLOT" => {
            let slot = slot_arg(&mut cursor)?;
            let count = cursor.next_int()?;
            cursor.finish()?;
            let count = usize::try_from(count)
                .map_err(|_| CmdError::Other("ERR Invalid number of keys".into()))?;
            let keys = shared.store.keys_in_slot(slot, count);
            reply.array(keys.len());
            keys.iter().for_each(|key| reply.bulk(key));
        }
        _ => return Err(unknown_subcommand(args, "CLUSTER")),
    }
    Ok(())
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
