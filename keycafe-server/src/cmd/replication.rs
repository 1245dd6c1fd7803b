//! Replication commands: WAIT, ROLE and the `# Replication` INFO section;
//! and, on the cluster bus, the commands replicas and
//! failovers use (`KC.PSYNC`, `KC.FAILOVER.PAUSE`, `KC.FAILOVER.RESUME`).

use std::fmt::Write as _;
use std::time::Duration;

use keycafe_core::{Args, Frame, Reply};

use super::{ArgCursor, CmdError, CmdResult, Ctx, Outcome};
use crate::figures;
use crate::replication::primary::{self, SyncRequest};

/// True if this node follows a primary (per the adopted configuration).
pub fn is_replica(ctx: &Ctx<'_>) -> bool {
    figures::is_replica(ctx.shared)
}

/// `WAIT numreplicas timeout`: block until `numreplicas` replicas have
/// acknowledged every write this node made before the WAIT, or `timeout`
/// milliseconds pass (0: no limit); answer how many did.
pub fn wait(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult<Outcome> {
    let mut cursor = ArgCursor::new(args);
    let replicas = cursor.next_int()?;
    let timeout = cursor.next_int()?;
    cursor.finish()?;
    if is_replica(ctx) {
        return Err(CmdError::Other(
            "ERR WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated.".into(),
        ));
    }
    let timeout =
        u64::try_from(timeout).map_err(|_| CmdError::Other("ERR timeout is negative".into()))?;
    let replicas = usize::try_from(replicas.max(0)).unwrap_or(usize::MAX);
    let timeout = (timeout > 0).then(|| Duration::from_millis(timeout));
    if ctx.conn.in_exec {
        // Inside a transaction nothing waits: the replicas that have
        // already acknowledged everything so far.
        let log = &ctx.shared.replication.log;
        let acked = ctx.shared.replication.acked_at_least(log.offset());
        reply.integer(acked as i64);
        return Ok(Outcome::Done);
    }
    let shared = ctx.shared.clone();
    Ok(Outcome::Block(Box::pin(async move {
        let acked = shared.replication.wait_for_acks(replicas, timeout).await;
        Frame::Integer(acked as i64)
    })))
}

/// `ROLE`: `[master, offset, [[ip, port, offset], ...]]` or
/// `[slave, ip, port, state, offset]`, as in Redis.
pub fn role(ctx: &mut Ctx<'_>, _args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let replication = &ctx.shared.replication;
    let offset = replication.log.offset() as i64;
    if is_replica(ctx) {
        let up = replication.upstream();
        let (host, port) = split(up.primary_addr.as_deref().unwrap_or(""));
        let state = match (up.link_up, up.syncing) {
            (true, _) => "connected",
            (false, true) => "sync",
            (false, false) => "connect",
        };
        reply.array(5);
        reply.bulk(b"slave");
        reply.bulk(host.as_bytes());
        reply.integer(port);
        reply.bulk(state.as_bytes());
        reply.integer(offset);
        return Ok(());
    }
    let replicas = replication.replicas();
    reply.array(3);
    reply.bulk(b"master");
    reply.integer(offset);
    reply.array(replicas.len());
    for link in replicas {
        let (host, port) = split(&link.addr);
        reply.array(3);
        reply.bulk(host.as_bytes());
        reply.bulk(port.to_string().as_bytes());
        reply.bulk(link.acked.to_string().as_bytes());
    }
    Ok(())
}

/// INFO's `# Replication` section, with Redis's field names.
pub fn info_section(f: &figures::Replication) -> String {
    let mut text = String::from("# Replication\r\n");
    if let Some(up) = &f.upstream {
        let (host, port) = split(&up.primary_addr);
        let _ = write!(
            text,
            "role:slave\r\nmaster_host:{host}\r\nmaster_port:{port}\r\nmaster_link_status:{}\r\n\
             master_last_io_seconds_ago:{}\r\nmaster_sync_in_progress:{}\r\nslave_repl_offset:{}\r\n\
             slave_read_only:1\r\n",
            if up.link_up { "up" } else { "down" },
            up.last_io_secs.map_or(-1, |s| s as i64),
            u8::from(up.syncing),
            f.offset,
        );
    } else {
        text.push_str("role:master\r\n");
    }
    let _ = write!(text, "connected_slaves:{}\r\n", f.replicas.len());
    for (i, link) in f.replicas.iter().enumerate() {
        let (host, port) = split(&link.addr);
        let _ = write!(
            text,
            "slave{i}:ip={host},port={port},state={},offset={},lag={}\r\n",
            if link.syncing {
                "wait_bgsave"
            } else {
                "online"
            },
            link.acked,
            link.lag_secs,
        );
    }
    let _ = write!(
        text,
        "master_replid:{}\r\nmaster_replid2:{}\r\nmaster_repl_offset:{}\r\n\
         second_repl_offset:{}\r\nrepl_backlog_active:{}\r\nrepl_backlog_size:{}\r\n\
         repl_backlog_first_byte_offset:{}\r\nrepl_backlog_histlen:{}\r\n\r\n",
        f.replid,
        f.replid2,
        f.offset,
        if f.second_offset == 0 {
            -1
        } else {
            f.second_offset as i64 + 1
        },
        u8::from(f.backlog_active),
        f.backlog_size,
        f.backlog_first_byte,
        f.backlog_histlen,
    );
    text
}

/// `KC.PSYNC node-id replid offset client-addr` (bus): a replica asks for
/// the stream. Accepted only from a node the configuration names as this
/// node's replica; the connection then becomes the stream.
pub fn psync(ctx: &mut Ctx<'_>, args: Args<'_>, _reply: &mut Reply<'_>) -> CmdResult<Outcome> {
    let mut cursor = ArgCursor::new(args);
    let node = String::from_utf8_lossy(cursor.next_bytes()?).into_owned();
    let replid = String::from_utf8_lossy(cursor.next_bytes()?).into_owned();
    let offset = cursor.next_int()?;
    let addr = String::from_utf8_lossy(cursor.next_bytes()?).into_owned();
    cursor.finish()?;
    let cluster = ctx.shared.cluster.as_ref().ok_or(CmdError::NotInCluster)?;
    let view = cluster.view();
    let mine = view
        .config
        .node(&node)
        .is_some_and(|n| n.replica_of.as_deref() == Some(cluster.me.id.as_str()));
    if !mine {
        return Err(CmdError::Other(format!(
            "ERR node {node} is not a replica of this node in epoch {}",
            view.epoch()
        )));
    }
    let request = SyncRequest {
        node,
        replid,
        offset: u64::try_from(offset).ok(),
        addr,
    };
    let source = primary::Source {
        store: ctx.shared.store.clone(),
        replication: ctx.shared.replication.clone(),
        node_timeout: Duration::from_millis(ctx.shared.config.node_timeout_ms),
        output_limit: ctx.shared.runtime.output_limits().replica,
    };
    let conn = ctx.conn.id;
    // Listed from now on, as Redis lists a replica on its primary.
    ctx.conn.client.replica = true;
    Ok(Outcome::Takeover(Box::new(move |stream, input, stop| {
        Box::pin(primary::serve(stream, input, source, request, conn, stop))
    })))
}

/// `KC.FAILOVER.PAUSE ms` (bus): stop writes for a manual failover; answers
/// the stream offset once no write is running.
pub fn failover_pause(
    ctx: &mut Ctx<'_>,
    args: Args<'_>,
    _reply: &mut Reply<'_>,
) -> CmdResult<Outcome> {
    let mut cursor = ArgCursor::new(args);
    let ms = cursor.next_int()?;
    cursor.finish()?;
    // No longer than a failover may take: even a member cannot stop a
    // primary's writes for longer.
    let longest = crate::replication::handover::PAUSE.as_millis() as u64;
    let ms = u64::try_from(ms)
        .map_err(|_| CmdError::Syntax)?
        .min(longest);
    let shared = ctx.shared.clone();
    Ok(Outcome::Block(Box::pin(async move {
        let replication = &shared.replication;
        replication.gate.pause(Duration::from_millis(ms)).await;
        Frame::Integer(replication.log.offset() as i64)
    })))
}

/// `KC.FAILOVER.RESUME` (bus): the failover was abandoned; accept writes.
pub fn failover_resume(ctx: &mut Ctx<'_>, _args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    crate::replication::failover::resume(&ctx.shared.replication);
    reply.ok();
    Ok(())
}

/// `"host:port"` → (host, port).
fn split(addr: &str) -> (&str, i64) {
    match addr.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().unwrap_or(0)),
        None => (addr, 0),
    }
}
