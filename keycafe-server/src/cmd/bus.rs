//! Commands served only on the cluster bus port: `KC.PING`, `KC.CONFIG` and
//! `KC.IMPORT`. Clients on the client port never see them.

use keycafe_core::{Args, Reply};

use super::parse::parse_int;
use super::{ArgCursor, CmdError, CmdResult, Ctx};
use crate::cluster::SlotState;
use crate::cluster::bus::slot_bitmap;
use crate::store::{Expiry, now_ms};

fn cluster<'a>(ctx: &'a Ctx<'_>) -> CmdResult<&'a crate::cluster::ClusterState> {
    ctx.shared
        .cluster
        .as_deref()
        .ok_or_else(|| CmdError::Other("ERR This node is not in cluster mode".into()))
}

/// `KC.PING sender-id epoch bitmap` → `[my-id, my-epoch, my-bitmap]`.
pub fn ping(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let cluster = cluster(ctx)?;
    let mut cursor = ArgCursor::new(args);
    let (_sender, _epoch, _bitmap) = (
        cursor.next_bytes()?,
        cursor.next_int()?,
        cursor.next_bytes()?,
    );
    cursor.finish()?;
    let view = cluster.view();
    reply.array(3);
    reply.bulk(cluster.me.id.as_bytes());
    reply.bulk(view.epoch().to_string().as_bytes());
    reply.bulk(&slot_bitmap(&view.my_slots()));
    Ok(())
}

/// `KC.CONFIG` → this node's configuration as JSON.
pub fn config(ctx: &mut Ctx<'_>, _args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let view = cluster(ctx)?.view();
    let json = serde_json::to_vec(&view.config).map_err(|e| CmdError::Other(format!("ERR {e}")))?;
    reply.bulk(&json);
    Ok(())
}

/// `KC.IMPORT slot key value ttl-ms [key value ttl-ms ...]`: store migrated
/// keys (ttl -1: none), replacing what is there (a resent batch). Accepted
/// only for a slot this node imports or owns.
pub fn import(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let view = cluster(ctx)?.view();
    let mut cursor = ArgCursor::new(args);
    let slot = u16::try_from(cursor.next_int()?).map_err(|_| CmdError::Syntax)?;
    if !matches!(
        view.state(slot),
        SlotState::ImportingFrom(_) | SlotState::Mine
    ) {
        return Err(CmdError::Other(format!(
            "ERR slot {slot} is not being imported by this node"
        )));
    }
    if !cursor.remaining().is_multiple_of(3) {
        return Err(CmdError::WrongArity("kc.import".into()));
    }
    let store = ctx.store();
    let now = now_ms();
    let mut imported = 0;
    while cursor.remaining() > 0 {
        let (key, value, ttl) = (
            cursor.next_bytes()?,
            cursor.next_bytes()?,
            cursor.next_bytes()?,
        );
        if keycafe_core::key_slot(key) != slot {
            return Err(CmdError::Other(format!(
                "ERR key does not belong to slot {slot}"
            )));
        }
        let expiry = match parse_int(ttl)? {
            -1 => Expiry::Persist,
            ms if ms > 0 => Expiry::At(now.saturating_add(ms as u64)),
            _ => return Err(CmdError::InvalidExpireTime("kc.import".into())),
        };
        store.set(key, value, now, expiry)?;
        imported += 1;
    }
    reply.integer(imported);
    Ok(())
}
