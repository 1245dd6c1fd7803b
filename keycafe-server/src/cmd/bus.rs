//! Commands served only on the cluster bus port: `KC.HELLO` and `KC.AUTH`
//! (a peer proves it holds the cluster secret), then `KC.PING`,
//! `KC.CONFIG` and `KC.IMPORT`. Clients on the client port never see them,
//! and a bus connection can run nothing else before it has authenticated.

use keycafe_core::auth::{self, Step};
use keycafe_core::{Args, Reply};

use super::parse::parse_int;
use super::{ArgCursor, CmdError, CmdResult, Ctx};
use crate::cluster::SlotState;
use crate::cluster::bus::slot_bitmap;
use crate::store::{Expiry, now_ms};

fn cluster<'a>(ctx: &'a Ctx<'_>) -> CmdResult<&'a crate::cluster::ClusterState> {
    ctx.shared.cluster.as_deref().ok_or(CmdError::NotInCluster)
}

/// What a node said in `KC.HELLO` and what we answered.
#[derive(Debug, Clone)]
pub struct Challenge {
    peer: String,
    theirs: String,
    ours: String,
}

/// `KC.HELLO node-id nonce` → `[our-nonce, our-proof]`: the first half of
/// the bus's mutual challenge-response (see `keycafe_core::auth`). We prove
/// that we hold the cluster secret, and challenge the peer to do the same
/// with `KC.AUTH`.
pub fn hello(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let cluster = cluster(ctx)?;
    let mut cursor = ArgCursor::new(args);
    let (peer, theirs) = (cursor.next_bytes()?, cursor.next_bytes()?);
    cursor.finish()?;
    let (Ok(peer), Ok(theirs)) = (std::str::from_utf8(peer), std::str::from_utf8(theirs)) else {
        return Err(CmdError::Syntax);
    };
    if peer.is_empty() || peer.len() > 64 || !auth::is_nonce(theirs) {
        return Err(CmdError::Other(
            "ERR KC.HELLO takes a node id and a nonce of 64 hex digits".into(),
        ));
    }
    let ours = auth::nonce().map_err(|e| CmdError::Other(format!("ERR no random numbers: {e}")))?;
    let proof = auth::proof(
        cluster.secret.as_bytes(),
        Step::BusServer,
        theirs,
        &ours,
        "",
    );
    reply.array(2);
    reply.bulk(ours.as_bytes());
    reply.bulk(proof.as_bytes());
    ctx.conn.bus_challenge = Some(Box::new(Challenge {
        peer: peer.to_string(),
        theirs: theirs.to_string(),
        ours,
    }));
    Ok(())
}

/// `KC.AUTH proof`: the peer's answer to our challenge. Right, and the
/// connection may run bus commands; wrong, or without a `KC.HELLO` first,
/// and it is refused (one attempt per challenge).
pub fn auth(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let proof = std::str::from_utf8(args.get(1).unwrap_or_default()).unwrap_or_default();
    let Some(challenge) = ctx.conn.bus_challenge.take() else {
        return Err(CmdError::Other("ERR KC.HELLO first".into()));
    };
    let Challenge { peer, theirs, ours } = *challenge;
    let secret = cluster(ctx)?.secret.as_bytes();
    if !auth::verify(secret, Step::BusClient, &ours, &theirs, &peer, proof) {
        tracing::warn!(%peer, "a bus peer failed to prove the cluster secret");
        return Err(CmdError::Other(
            "WRONGPASS the peer does not hold this cluster's secret".into(),
        ));
    }
    ctx.conn.authenticated = true;
    ctx.conn.name = Some(peer);
    reply.ok();
    Ok(())
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
