//! MULTI, EXEC, DISCARD, WATCH and UNWATCH: Redis's transactions.
//!
//! After MULTI, [`super::execute`] hands every command except EXEC,
//! DISCARD, MULTI, WATCH, QUIT and RESET to [`queue`]: it is checked as if it were
//! to run now (name, arity, authentication, the cluster's slot check,
//! `maxmemory`) and, if it passes, copied into the connection's [`Queue`]
//! and answered `QUEUED`. A command refused while queuing marks the
//! transaction failed, and EXEC then runs nothing (`EXECABORT`), as in
//! Redis. Errors that only running can find (INCR of a non-number) are
//! answered in EXEC's reply, and the other commands still run: there is no
//! rollback.
//!
//! EXEC runs the whole queue inside `Store::atomically`, which keeps every
//! other command off the shards the queue's keys live in until the last
//! one is done (see `store/transaction.rs`); the change feed brackets its
//! changes, so a replica applies them as one unit too. In a cluster, EXEC
//! passes the slot check with the keys of the whole queue: they must share
//! a slot (`CROSSSLOT`), that slot must be served here (`MOVED`, `ASK`,
//! `TRYAGAIN` during a migration), and a redirected EXEC discards the
//! transaction, as Redis's does.
//!
//! WATCH makes EXEC conditional: if a watched key changed (written,
//! deleted, expired, evicted, flushed, migrated away) between WATCH and
//! EXEC, EXEC runs nothing and answers a null array. Watches end with EXEC,
//! DISCARD, UNWATCH or the connection.

use std::ops::Range;

use keycafe_core::command::{CommandInfo, Flags};
use keycafe_core::{Args, Reply};

use super::{CmdError, CmdResult, Command, Ctx, Outcome, PAUSED, key_args};
use crate::cluster::routing::Access;
use crate::store::{ShardSet, Store, Watch};

/// The commands queued between MULTI and EXEC.
#[derive(Default)]
pub struct Queue {
    /// The queued commands' arguments, back to back.
    bytes: Vec<u8>,
    /// Where each argument lies in `bytes`.
    spans: Vec<Range<usize>>,
    /// Each command and where its arguments lie in `spans`.
    commands: Vec<(Command, Range<usize>)>,
    /// A command was refused while queuing: EXEC will run nothing.
    failed: bool,
}

impl Queue {
    fn push(&mut self, command: Command, args: Args<'_>) {
        let first = self.spans.len();
        for arg in args.iter() {
            let start = self.bytes.len();
            self.bytes.extend_from_slice(arg);
            self.spans.push(start..self.bytes.len());
        }
        self.commands.push((command, first..self.spans.len()));
    }

    fn iter(&self) -> impl Iterator<Item = (Command, Args<'_>)> + Clone {
        self.commands
            .iter()
            .map(|(command, spans)| (*command, Args::new(&self.bytes, &self.spans[spans.clone()])))
    }

    /// True if a queued command has `flag`.
    pub fn any(&self, flag: Flags) -> bool {
        self.commands
            .iter()
            .any(|(command, _)| command.info.is(flag))
    }

    /// Every key of every queued command.
    fn keys(&self) -> impl Iterator<Item = &[u8]> + Clone {
        self.iter()
            .flat_map(|(command, args)| key_args(command.info, args))
    }

    /// The shards the queue touches, and those of `watched` keys: the
    /// shards of their keys, or every shard if a command without keys
    /// (DBSIZE, FLUSHALL, INFO, ...) may read or change any of them.
    fn shards<'q>(&'q self, store: &Store, watched: impl Iterator<Item = &'q [u8]>) -> ShardSet {
        let keyless = self
            .iter()
            .any(|(command, args)| key_args(command.info, args).next().is_none());
        match keyless {
            true => ShardSet::All,
            false => store.shards_of(self.keys().chain(watched)),
        }
    }

    /// The number of commands queued.
    pub fn len(&self) -> usize {
        self.commands.len()
    }

    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }

    /// Bytes the queue holds.
    pub fn size(&self) -> usize {
        self.bytes.capacity()
            + self.spans.capacity() * std::mem::size_of::<Range<usize>>()
            + self.commands.capacity() * std::mem::size_of::<(Command, Range<usize>)>()
    }
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("commands", &self.commands.len())
            .field("failed", &self.failed)
            .finish()
    }
}

/// True for the commands that run at once even between MULTI and EXEC.
pub fn runs_inside_multi(info: &CommandInfo) -> bool {
    matches!(
        info.name,
        "exec" | "discard" | "multi" | "watch" | "quit" | "reset"
    )
}

/// Answers an error for a command refused before it could run or be
/// queued; inside MULTI, the transaction is failed by it.
pub fn refuse(ctx: &mut Ctx<'_>, reply: &mut Reply<'_>, text: &str) {
    if let Some(queue) = ctx.conn.multi.as_mut() {
        queue.failed = true;
    }
    reply.error(text);
}

/// Queues a command between MULTI and EXEC, if it would be allowed to run
/// now; else refuses it (and fails the transaction).
pub fn queue(ctx: &mut Ctx<'_>, command: Command, args: Args<'_>, reply: &mut Reply<'_>) {
    match admit(ctx, command, args) {
        Ok(()) => {
            if let Some(queue) = ctx.conn.multi.as_mut() {
                queue.push(command, args);
            }
            reply.simple(b"QUEUED");
        }
        Err(err) => refuse(ctx, reply, &err.to_string()),
    }
}

/// The checks a command passes before it is queued, in Redis's order.
fn admit(ctx: &mut Ctx<'_>, command: Command, args: Args<'_>) -> CmdResult {
    if let Some(cluster) = ctx.shared.cluster.as_ref() {
        let access = Access {
            write: command.info.is(Flags::WRITE),
            // Kept for EXEC: Redis's ASKING lasts through a transaction.
            asking: ctx.conn.asking,
            readonly: ctx.conn.readonly,
        };
        let keys = key_args(command.info, args);
        super::run_in_cluster(cluster, ctx, keys, access, false, |_| Ok(Outcome::Done))?;
    }
    if command.info.is(Flags::DENYOOM) {
        ctx.shared.make_room()?;
    }
    Ok(())
}

/// MULTI: start queuing.
pub fn multi(ctx: &mut Ctx<'_>, _args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    if ctx.conn.multi.is_some() {
        return Err(CmdError::Other("ERR MULTI calls can not be nested".into()));
    }
    ctx.conn.multi = Some(Box::default());
    reply.ok();
    Ok(())
}

/// DISCARD: drop the queue and the watches.
pub fn discard(ctx: &mut Ctx<'_>, _args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    if ctx.conn.multi.take().is_none() {
        return Err(CmdError::Other("ERR DISCARD without MULTI".into()));
    }
    ctx.conn.watch = None;
    reply.ok();
    Ok(())
}

/// WATCH key [key ...].
pub fn watch(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    if ctx.conn.multi.is_some() {
        return Err(CmdError::Other(
            "ERR WATCH inside MULTI is not allowed".into(),
        ));
    }
    let now = ctx.now_ms();
    for key in args.iter().skip(1) {
        ctx.shared.store.watch(&mut ctx.conn.watch, key, now);
    }
    reply.ok();
    Ok(())
}

/// UNWATCH: forget every watched key.
pub fn unwatch(ctx: &mut Ctx<'_>, _args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    ctx.conn.watch = None;
    reply.ok();
    Ok(())
}

/// EXEC: run the queue as one unit, unless it failed, a watched key
/// changed, or the cluster or memory refuse it.
pub fn exec(ctx: &mut Ctx<'_>, _args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let Some(queue) = ctx.conn.multi.take() else {
        return Err(CmdError::Other("ERR EXEC without MULTI".into()));
    };
    // The transaction ends here, whatever happens, and its watches with it.
    let watch = ctx.conn.watch.take();
    if queue.failed {
        return Err(CmdError::Other(
            "EXECABORT Transaction discarded because of previous errors.".into(),
        ));
    }
    if queue.any(Flags::DENYOOM) {
        ctx.shared.make_room().map_err(|err| {
            CmdError::Other(format!(
                "EXECABORT Transaction discarded because of: {}",
                CmdError::from(err)
            ))
        })?;
    }
    let Some(cluster) = ctx.shared.cluster.as_ref() else {
        run(ctx, &queue, watch, reply);
        return Ok(());
    };
    let writes = queue.any(Flags::WRITE);
    let _pass = match writes {
        true => Some(
            ctx.shared
                .replication
                .gate
                .enter()
                .ok_or_else(|| CmdError::Other(PAUSED.into()))?,
        ),
        false => None,
    };
    let access = Access {
        write: writes,
        asking: std::mem::take(&mut ctx.conn.asking),
        readonly: ctx.conn.readonly,
    };
    let fence = writes || (ctx.conn.fenced_reads && queue.any(Flags::READONLY));
    super::run_in_cluster(cluster, ctx, queue.keys(), access, fence, |ctx| {
        run(ctx, &queue, watch, reply);
        Ok(Outcome::Done)
    })
    .map(drop)
}

/// Runs every queued command with no other command on its shards in
/// between, each reply one element of EXEC's array; or nothing, with a null
/// reply, if a key of `watch` changed. The watched keys' shards are held
/// too, so that nothing changes them between that check and the commands.
fn run(ctx: &mut Ctx<'_>, queue: &Queue, watch: Option<Watch>, reply: &mut Reply<'_>) {
    let shared = ctx.shared;
    let store = &shared.store;
    let watched = watch.iter().flat_map(Watch::keys);
    let shards = queue.shards(store, watched);
    let now = ctx.now_ms();
    store.atomically(&shards, queue.any(Flags::WRITE), || {
        if watch.is_some_and(|watch| store.watch_broken(&watch, now)) {
            reply.null_array();
            return;
        }
        reply.array(queue.commands.len());
        ctx.conn.in_exec = true;
        for (command, args) in queue.iter() {
            let mut element = reply.element();
            let text = match command.call_counted(ctx, args, &mut element) {
                Ok(Outcome::Done) => None,
                // Commands that could wait answer at once inside EXEC
                // (WAIT); one that cannot has no place in a transaction.
                Ok(Outcome::Block(_) | Outcome::Takeover(_)) => {
                    Some("ERR Command not allowed inside a transaction".to_string())
                }
                Err(err) => Some(err.to_string()),
            };
            if let Some(text) = text {
                element.reset();
                element.error(&text);
            }
            element.finish();
        }
        ctx.conn.in_exec = false;
    });
}
