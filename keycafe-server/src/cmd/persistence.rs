//! `SAVE`, `BGSAVE`, `LASTSAVE` and `BGREWRITEAOF`: snapshots and the
//! append-only file on request (see `persist`).

use std::sync::Arc;

use keycafe_core::{Args, Frame, Reply};

use super::parse::ArgCursor;
use super::{CmdError, CmdResult, Ctx, Outcome};
use crate::persist::Persistence;

/// The answer of a node started without a data directory.
const NO_DIR: &str =
    "ERR this node has no data directory: start it with `dir:` in its YAML (or --dir) to persist";

fn persistence(ctx: &Ctx<'_>) -> Result<Arc<Persistence>, CmdError> {
    ctx.shared
        .persistence
        .clone()
        .ok_or_else(|| CmdError::Other(NO_DIR.to_string()))
}

/// `SAVE`: a snapshot now; the reply comes once it is on disk. The node
/// keeps serving meanwhile (only this connection waits), unlike Redis.
pub fn save(ctx: &mut Ctx<'_>, args: Args<'_>, _reply: &mut Reply<'_>) -> CmdResult<Outcome> {
    ArgCursor::new(args).finish()?;
    let persistence = persistence(ctx)?;
    if persistence.snapshots().in_progress.is_some() {
        return Err(CmdError::Other(
            "ERR Background save already in progress".to_string(),
        ));
    }
    let store = ctx.shared.store.clone();
    Ok(Outcome::Block(Box::pin(async move {
        match persistence.save(&store).await {
            Ok(()) => Frame::Simple("OK".into()),
            Err(err) => Frame::Error(format!("ERR the snapshot failed: {err}").into()),
        }
    })))
}

/// `BGSAVE [SCHEDULE]`: starts a snapshot in the background.
pub fn bgsave(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let schedule = match args.get(1) {
        None => false,
        Some(word) if word.eq_ignore_ascii_case(b"schedule") && args.len() == 2 => true,
        Some(_) => return Err(CmdError::Syntax),
    };
    let persistence = persistence(ctx)?;
    match persistence.bgsave(&ctx.shared.store) {
        Ok(()) => reply.simple(b"Background saving started"),
        Err(_) if schedule => {
            persistence.snapshots().scheduled = true;
            reply.simple(b"Background saving scheduled");
        }
        Err(err) => return Err(CmdError::Other(err.to_string())),
    }
    Ok(())
}

/// `LASTSAVE`: the Unix time of the last snapshot written well (the
/// node's start before the first).
pub fn lastsave(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    ArgCursor::new(args).finish()?;
    let ms = match &ctx.shared.persistence {
        Some(persistence) => persistence.snapshots().schedule.last_save_ms,
        None => crate::store::now_ms() - ctx.shared.started.elapsed().as_millis() as u64,
    };
    reply.integer((ms / 1000) as i64);
    Ok(())
}

/// `BGREWRITEAOF`: compacts the append-only file in the background.
pub fn bgrewriteaof(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    ArgCursor::new(args).finish()?;
    let persistence = persistence(ctx)?;
    let Some(aof) = persistence.aof() else {
        return Err(CmdError::Other(
            "ERR the append-only file is off (appendonly no)".to_string(),
        ));
    };
    match aof.request_rewrite() {
        true => reply.simple(b"Background append only file rewriting started"),
        false => {
            return Err(CmdError::Other(
                "ERR Background append only file rewriting already in progress".to_string(),
            ));
        }
    }
    Ok(())
}
