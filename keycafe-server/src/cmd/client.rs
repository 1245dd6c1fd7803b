//! CLIENT, RESET and MONITOR: what a connection can learn and change about
//! itself and the node's other connections.
//!
//! The other connections are seen through [`crate::clients`]: each
//! connection publishes its [`Activity`] there at the end of every batch
//! ([`publish`]), so `CLIENT LIST` shows another connection as of its
//! last batch, and the connection running `CLIENT LIST` or `CLIENT INFO`
//! as it is now. Both print the same line, Redis 7.2's
//! (`catClientInfoString`), with Keycafe's own values where Redis shows
//! its allocator's: the input and output buffers' sizes, and the MULTI
//! queue's.
//!
//! Three things happen around every command rather than in a handler:
//!
//! - [`note_command`], once a request names a known command: it becomes
//!   the connection's last command (`cmd=` in CLIENT LIST).
//! - [`after_call`], once a handler ran: monitors see the command (one
//!   load when there are none).
//! - [`before_command`], only while the connection is a monitor or a
//!   `CLIENT PAUSE` is in force: a monitor may not touch the keyspace, and
//!   a paused command waits. A paused command is not run and not
//!   consumed: the connection waits (without holding a worker thread; see
//!   [`Before::Wait`]) and then runs it from the start, as Redis re-runs a
//!   postponed client's command.
//!
//! `CLIENT REPLY OFF|SKIP` is carried out by the connection, which drops
//! a reply the mode says to drop ([`ClientState::reply_dropped`]).

use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use keycafe_core::command::{CommandInfo, Flags};
use keycafe_core::{Args, Protocol, Reply};

use super::{ArgCursor, CmdError, CmdResult, ConnState, Ctx, Keyword, Task, key_args};
use crate::clients::{Activity, ClientFlags, ClientRecord, Kind, Monitor, Names, PauseMode};
use crate::cluster::routing::{self, Access, Decision};
use crate::config::OutputLimit;

/// What a connection keeps for CLIENT, RESET and MONITOR.
#[derive(Debug, Default)]
pub struct ClientState {
    /// This connection in the node's registry (`None` only in unit tests
    /// that run commands without a connection).
    pub record: Option<Arc<ClientRecord>>,
    /// `CLIENT REPLY`.
    pub reply: ReplyMode,
    /// `CLIENT NO-EVICT ON`: `maxmemory_clients` does not close it.
    pub no_evict: bool,
    /// `CLIENT NO-TOUCH ON`: shown as flag `T`; reads still update a key's
    /// access time (see docs/clients.md).
    pub no_touch: bool,
    /// Set by `MONITOR`: the lines waiting for this connection.
    pub monitor: Option<Arc<Monitor>>,
    /// A bus connection that became a replica's stream (`KC.PSYNC`).
    pub replica: bool,
    /// The command run last, and its subcommand if it has some.
    last_command: Option<&'static CommandInfo>,
    last_sub: SubName,
    /// The subcommand last published (the record's copy is behind a lock,
    /// written only when it changes).
    published_sub: SubName,
}

/// `CLIENT REPLY`: whether a command's reply is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReplyMode {
    #[default]
    On,
    /// `CLIENT REPLY OFF`: no reply until `CLIENT REPLY ON`.
    Off,
    /// `CLIENT REPLY SKIP` just ran: the next command's reply is dropped.
    SkipNext,
    /// This command's reply is dropped.
    Skip,
}

impl ClientState {
    /// After a command ran: true if its reply is to be dropped. Moves a
    /// SKIP on, which lasts for the command after `CLIENT REPLY SKIP`.
    pub fn reply_dropped(&mut self) -> bool {
        match self.reply {
            ReplyMode::On => false,
            ReplyMode::Off => true,
            ReplyMode::SkipNext => {
                self.reply = ReplyMode::Skip;
                false
            }
            ReplyMode::Skip => {
                self.reply = ReplyMode::On;
                true
            }
        }
    }
}

/// A subcommand's name, lower-cased, kept without allocating.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct SubName {
    bytes: [u8; 24],
    len: u8,
}

impl SubName {
    fn of(arg: Option<&[u8]>) -> SubName {
        let mut name = SubName::default();
        match arg {
            Some(arg) if arg.len() <= name.bytes.len() && arg.iter().all(u8::is_ascii_graphic) => {
                for (dst, src) in name.bytes.iter_mut().zip(arg) {
                    *dst = src.to_ascii_lowercase();
                }
                name.len = arg.len() as u8;
            }
            _ => {}
        }
        name
    }

    fn as_str(&self) -> Option<&str> {
        let bytes = &self.bytes[..usize::from(self.len)];
        (!bytes.is_empty())
            .then(|| std::str::from_utf8(bytes).ok())
            .flatten()
    }
}

/// Commands whose `cmd=` in CLIENT LIST names the subcommand too
/// (`client|list`), as Redis 7 names them.
fn has_subcommands(info: &CommandInfo) -> bool {
    matches!(
        info.name,
        "client" | "cluster" | "command" | "config" | "latency" | "memory" | "object" | "slowlog"
    )
}

/// Runs for every request naming a known command, before any check, as
/// Redis sets a client's last command: it is `cmd=` in CLIENT LIST (EXEC
/// stays the last command of a transaction; a queued command is the last
/// one until EXEC). A pointer store and a few length comparisons.
#[inline]
pub fn note_command(conn: &mut ConnState, info: &'static CommandInfo, args: Args<'_>) {
    let client = &mut conn.client;
    client.last_command = Some(info);
    if has_subcommands(info) {
        client.last_sub = SubName::of(args.get(1));
    }
}

/// Runs after every handler, inside EXEC too: monitors see the command.
/// With no monitor, one load.
#[inline]
pub fn after_call(ctx: &mut Ctx<'_>, info: &'static CommandInfo, args: Args<'_>) {
    if ctx.shared.clients.monitored() && !ctx.conn.bus {
        feed_monitors(ctx, info, args);
    }
}

/// What the connection does with a request, decided before running it.
pub enum Before {
    /// Run it.
    Run,
    /// It was answered here (a monitor touching the keyspace).
    Answered,
    /// A `CLIENT PAUSE` holds it: leave it unread, wait for this, then
    /// decide again. Requests before it in the batch have been answered;
    /// requests after it wait behind it, as in Redis.
    Wait(Task<()>),
}

/// Whether a request runs now, only asked while this connection is a
/// monitor or a pause may be in force. Checked in Redis's order: a request
/// that would be refused anyway (unknown, too few arguments, before AUTH,
/// redirected to another node) is refused at once, even during a pause.
pub fn before_command(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> Before {
    if ctx.conn.bus {
        return Before::Run;
    }
    let Some(command) = super::lookup(args.get(0).unwrap_or_default()) else {
        return Before::Run;
    };
    let info = command.info;
    if (!ctx.conn.authenticated && !info.is(Flags::NO_AUTH)) || !info.arity_ok(args.len()) {
        return Before::Run;
    }
    let keyspace = info.is(Flags::READONLY) || info.is(Flags::WRITE);
    if ctx.conn.client.monitor.is_some() && keyspace {
        reply.error("ERR Replica can't interact with the keyspace");
        return Before::Answered;
    }
    if !ctx.shared.clients.pause_active() {
        return Before::Run;
    }
    let writes = info.is(Flags::WRITE)
        || (info.name == "exec"
            && ctx
                .conn
                .multi
                .as_ref()
                .is_some_and(|queue| queue.any(Flags::WRITE)));
    if let Some(cluster) = ctx.shared.cluster.as_ref() {
        let access = Access {
            write: writes,
            asking: ctx.conn.asking,
            readonly: ctx.conn.readonly,
        };
        let decision = routing::check(&cluster.view(), key_args(info, args), access);
        if matches!(decision, Decision::Refuse(_)) {
            return Before::Run;
        }
    }
    match ctx.shared.clients.pause_wait(writes) {
        Some(wait) => Before::Wait(Box::pin(wait)),
        None => Before::Run,
    }
}

/// The sizes of a connection's buffers, which only the connection knows.
#[derive(Debug, Clone, Copy, Default)]
pub struct Buffers {
    /// Bytes received and not yet run.
    pub input_len: usize,
    pub input_capacity: usize,
    /// Bytes of replies written in this batch.
    pub output_len: usize,
    pub output_capacity: usize,
}

/// What a connection publishes at the end of a batch (see
/// [`crate::clients`]): cheap enough for every batch, with no lock unless
/// the last command's subcommand changed.
pub fn publish(conn: &mut ConnState, buffers: Buffers, now_ms: u64, blocked: bool) {
    if conn.client.record.is_none() {
        return;
    }
    let activity = activity(conn, buffers, now_ms, blocked);
    let client = &mut conn.client;
    let Some(record) = client.record.as_ref() else {
        return;
    };
    if client.replica {
        record.set_kind(Kind::Replica);
    }
    let sub = match client.last_command {
        Some(info) if has_subcommands(info) => client.last_sub,
        _ => SubName::default(),
    };
    if sub != client.published_sub {
        client.published_sub = sub;
        record.names().sub = sub.as_str().map(str::to_string);
    }
    record.publish(&activity);
}

fn activity(conn: &ConnState, buffers: Buffers, now_ms: u64, blocked: bool) -> Activity {
    let client = &conn.client;
    let flags = ClientFlags::default()
        .with_if(ClientFlags::MONITOR, client.monitor.is_some())
        .with_if(ClientFlags::REPLICA, client.replica)
        .with_if(ClientFlags::MULTI, conn.multi.is_some())
        .with_if(ClientFlags::BLOCKED, blocked)
        .with_if(ClientFlags::CLOSE_AFTER_REPLY, conn.quit)
        .with_if(ClientFlags::READONLY, conn.readonly)
        .with_if(ClientFlags::NO_EVICT, client.no_evict)
        .with_if(ClientFlags::NO_TOUCH, client.no_touch);
    let (multi, multi_mem) = match &conn.multi {
        Some(queue) => (queue.len() as i32, queue.size()),
        None => (-1, 0),
    };
    let omem = client.monitor.as_ref().map_or(0, |m| m.pending());
    let qbuf_free = buffers.input_capacity.saturating_sub(buffers.input_len);
    Activity {
        flags,
        resp: resp_version(conn.protocol),
        last_command: client.last_command,
        multi,
        watch: conn.watch.as_ref().map_or(0, |watch| watch.len() as u32),
        qbuf: buffers.input_len,
        qbuf_free,
        multi_mem,
        rbs: buffers.output_capacity,
        rbp: buffers.output_len,
        omem,
        tot_mem: buffers.input_capacity + buffers.output_capacity + multi_mem + omem,
        active_ms: now_ms,
    }
}

fn resp_version(protocol: Protocol) -> u8 {
    match protocol {
        Protocol::Resp3 => 3,
        Protocol::Resp2 | Protocol::Native => 2,
    }
}

/// `CLIENT <subcommand> ...`.
pub fn client(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let sub = Keyword::new(args.get(1).unwrap_or_default());
    let Some(&(name, arity)) = SUBCOMMANDS
        .iter()
        .find(|(name, _)| name.as_bytes().eq_ignore_ascii_case(sub.as_bytes()))
    else {
        return Err(super::parse::unknown_subcommand(args, "CLIENT"));
    };
    let argc = args.len() as i32;
    if (arity >= 0 && argc != arity) || argc < arity.abs() {
        return Err(CmdError::WrongArity(format!("client|{name}")));
    }
    let mut cursor = ArgCursor::new(args);
    cursor.next_bytes()?;
    match sub.as_bytes() {
        b"ID" => reply.integer(ctx.conn.id as i64),
        b"INFO" => {
            let mut text = own_line(ctx, args, "info");
            text.push('\n');
            reply.verbatim(b"txt", text.as_bytes());
        }
        b"LIST" => list(ctx, args, reply)?,
        b"KILL" => kill(ctx, args, reply)?,
        b"SETNAME" => {
            let name = client_name(cursor.next_bytes()?)?;
            set_name(ctx.conn, (!name.is_empty()).then_some(name));
            reply.ok();
        }
        b"GETNAME" => reply.optional_bulk(ctx.conn.name.as_deref().map(str::as_bytes)),
        b"SETINFO" => setinfo(ctx, args, reply)?,
        b"REPLY" => match Keyword::new(cursor.next_bytes()?).as_bytes() {
            b"ON" => {
                ctx.conn.client.reply = ReplyMode::On;
                reply.ok();
            }
            b"OFF" => ctx.conn.client.reply = ReplyMode::Off,
            b"SKIP" => {
                if ctx.conn.client.reply != ReplyMode::Off {
                    ctx.conn.client.reply = ReplyMode::SkipNext;
                }
            }
            _ => return Err(CmdError::Syntax),
        },
        b"NO-EVICT" => {
            ctx.conn.client.no_evict = on_off(cursor.next_bytes()?)?;
            reply.ok();
        }
        b"NO-TOUCH" => {
            ctx.conn.client.no_touch = on_off(cursor.next_bytes()?)?;
            reply.ok();
        }
        b"PAUSE" => pause(ctx, args, reply)?,
        b"UNPAUSE" => {
            ctx.shared.clients.unpause();
            reply.ok();
        }
        b"GETREDIR" => reply.integer(-1),
        b"TRACKINGINFO" => {
            reply.map(3);
            reply.bulk(b"flags");
            reply.set(1);
            reply.bulk(b"off");
            reply.bulk(b"redirect");
            reply.integer(-1);
            reply.bulk(b"prefixes");
            reply.array(0);
        }
        b"FENCED-READS" => {
            ctx.conn.fenced_reads = on_off(cursor.next_bytes()?)?;
            reply.ok();
        }
        b"HELP" => {
            reply.array(HELP.len());
            HELP.iter().for_each(|line| reply.simple(line.as_bytes()));
        }
        _ => return Err(super::parse::unknown_subcommand(args, "CLIENT")),
    }
    Ok(())
}

/// CLIENT's subcommands and their arities (counting `CLIENT` and the
/// subcommand), as Redis's command table gives them.
const SUBCOMMANDS: &[(&str, i32)] = &[
    ("id", 2),
    ("info", 2),
    ("list", -2),
    ("kill", -3),
    ("setname", 3),
    ("getname", 2),
    ("setinfo", 4),
    ("reply", 3),
    ("no-evict", 3),
    ("no-touch", 3),
    ("pause", -3),
    ("unpause", 2),
    ("getredir", 2),
    ("trackinginfo", 2),
    ("fenced-reads", 3),
    ("help", 2),
];

const HELP: &[&str] = &[
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ID -- this connection's id.",
    "INFO -- this connection, as one line of CLIENT LIST.",
    "LIST [TYPE (NORMAL|MASTER|REPLICA|PUBSUB)] [ID <id> [<id> ...]] -- the node's connections.",
    "KILL <ip:port> -- close the connection from that address.",
    "KILL <option> <value> [<option> <value> [...]] -- close the connections that match every \
     option: ID <id>, ADDR <ip:port>, LADDR <ip:port>, USER <name>, TYPE <type>, MAXAGE <seconds>, \
     SKIPME (YES|NO).",
    "SETNAME <name> / GETNAME -- name this connection, or read its name.",
    "SETINFO (LIB-NAME|LIB-VER) <value> -- the client library's name and version.",
    "REPLY (ON|OFF|SKIP) -- send replies, none, or none for the next command.",
    "NO-EVICT (ON|OFF) -- keep this connection out of maxmemory-clients' reach.",
    "NO-TOUCH (ON|OFF) -- mark this connection with flag T.",
    "PAUSE <ms> [WRITE|ALL] / UNPAUSE -- hold clients' writes (or every command) for a while.",
    "GETREDIR / TRACKINGINFO -- client-side caching: not supported, always off.",
    "FENCED-READS (ON|OFF) -- serve reads only under this primary's lease.",
];

/// `ON` or `OFF`, in any case.
fn on_off(arg: &[u8]) -> CmdResult<bool> {
    match Keyword::new(arg).as_bytes() {
        b"ON" => Ok(true),
        b"OFF" => Ok(false),
        _ => Err(CmdError::Syntax),
    }
}

/// Client names, library names and versions may not contain spaces or
/// newlines (CLIENT LIST is space-separated), as in Redis.
fn valid_attribute(value: &[u8]) -> Option<String> {
    let valid = value.iter().all(u8::is_ascii_graphic);
    valid.then(|| String::from_utf8_lossy(value).into_owned())
}

/// A client name from `CLIENT SETNAME` or `HELLO ... SETNAME`; empty means
/// none.
pub fn client_name(name: &[u8]) -> CmdResult<String> {
    valid_attribute(name).ok_or_else(|| {
        CmdError::Other(
            "ERR Client names cannot contain spaces, newlines or special characters.".into(),
        )
    })
}

/// Names the connection (or takes its name away), where commands and
/// CLIENT LIST both see it.
pub fn set_name(conn: &mut ConnState, name: Option<String>) {
    if let Some(record) = &conn.client.record {
        record.names().name = name.clone();
    }
    conn.name = name;
}

/// `CLIENT SETINFO LIB-NAME|LIB-VER value` (Redis 7.2).
fn setinfo(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let attribute = args.get(2).unwrap_or_default();
    let value = args.get(3).unwrap_or_default();
    let shown = String::from_utf8_lossy(attribute);
    let lib_name = match Keyword::new(attribute).as_bytes() {
        b"LIB-NAME" => true,
        b"LIB-VER" => false,
        _ => {
            return Err(CmdError::Other(format!(
                "ERR Unrecognized option '{shown}'"
            )));
        }
    };
    let value = valid_attribute(value).ok_or_else(|| {
        CmdError::Other(format!(
            "ERR {shown} cannot contain spaces, newlines or special characters."
        ))
    })?;
    let value = (!value.is_empty()).then_some(value);
    if let Some(record) = &ctx.conn.client.record {
        let mut names = record.names();
        match lib_name {
            true => names.lib_name = value,
            false => names.lib_ver = value,
        }
    }
    reply.ok();
    Ok(())
}

/// One connection's line of CLIENT LIST, in Redis 7.2's format.
struct Line<'a> {
    record: &'a ClientRecord,
    names: Names,
    activity: Activity,
    /// Bytes of the arguments of the command running now.
    argv_mem: usize,
    idle_secs: u64,
}

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (r, n, a) = (self.record, &self.names, &self.activity);
        let cmd = match (a.last_command, &n.sub) {
            (None, _) => "NULL".to_string(),
            (Some(info), Some(sub)) if has_subcommands(info) => format!("{}|{sub}", info.name),
            (Some(info), _) => info.name.to_string(),
        };
        write!(
            f,
            "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db=0 sub=0 psub=0 \
             ssub=0 multi={} watch={} qbuf={} qbuf-free={} argv-mem={} multi-mem={} rbs={} rbp={} \
             obl=0 oll=0 omem={} tot-mem={} events=r cmd={cmd} user=default redir=-1 resp={} \
             lib-name={} lib-ver={}",
            r.id,
            r.addr,
            r.laddr,
            r.fd,
            n.name.as_deref().unwrap_or(""),
            r.age_secs(),
            self.idle_secs,
            a.flags,
            a.multi,
            a.watch,
            a.qbuf,
            a.qbuf_free,
            self.argv_mem,
            a.multi_mem,
            a.rbs,
            a.rbp,
            a.omem,
            a.tot_mem + self.argv_mem,
            a.resp,
            n.lib_name.as_deref().unwrap_or(""),
            n.lib_ver.as_deref().unwrap_or(""),
        )
    }
}

/// Another connection's line, from what it last published.
fn other_line(ctx: &Ctx<'_>, record: &ClientRecord) -> String {
    let activity = record.activity();
    let now = ctx.shared.clients.now_ms();
    let line = Line {
        record,
        names: record.names().clone(),
        activity,
        argv_mem: 0,
        idle_secs: now.saturating_sub(activity.active_ms) / 1000,
    };
    line.to_string()
}

/// This connection's line, as it is now, running `CLIENT <sub>`.
fn own_line(ctx: &Ctx<'_>, args: Args<'_>, sub: &str) -> String {
    let Some(record) = ctx.conn.client.record.as_ref() else {
        return format!(
            "id={} db=0 resp={}",
            ctx.conn.id,
            resp_version(ctx.conn.protocol)
        );
    };
    // The buffers' sizes as of the last batch (only the connection has
    // them), and in the input buffer the request running now, as Redis
    // counts it: its bytes in RESP's multi-bulk form.
    let published = record.activity();
    let buffers = Buffers {
        input_len: request_size(args),
        input_capacity: published.qbuf + published.qbuf_free,
        output_len: published.rbp,
        output_capacity: published.rbs,
    };
    let mut activity = activity(ctx.conn, buffers, 0, false);
    activity.last_command = super::lookup(b"client").map(|command| command.info);
    let mut names = record.names().clone();
    names.sub = Some(sub.to_string());
    let line = Line {
        record,
        names,
        activity,
        argv_mem: args.iter().map(<[u8]>::len).sum(),
        idle_secs: 0,
    };
    line.to_string()
}

/// The bytes of a request in RESP's multi-bulk form.
fn request_size(args: Args<'_>) -> usize {
    let header = |n: usize| n.to_string().len() + 3;
    header(args.len())
        + args
            .iter()
            .map(|arg| header(arg.len()) + arg.len() + 2)
            .sum::<usize>()
}

/// `CLIENT LIST [TYPE type] [ID id ...]`.
fn list(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let option = args.get(2).map(Keyword::new);
    let records = match option.as_ref().map(Keyword::as_bytes) {
        None => ctx.shared.clients.listed(),
        Some(b"TYPE") if args.len() == 4 => {
            let kind = client_type(args.get(3).unwrap_or_default())?;
            ctx.shared
                .clients
                .listed()
                .into_iter()
                .filter(|record| kind.matches(record))
                .collect()
        }
        Some(b"ID") if args.len() > 3 => {
            let mut records = Vec::new();
            for arg in args.iter().skip(3) {
                let id = super::parse::parse_int(arg)
                    .map_err(|_| CmdError::Other("ERR Invalid client ID".into()))?;
                records.extend(
                    u64::try_from(id)
                        .ok()
                        .and_then(|id| ctx.shared.clients.get(id)),
                );
            }
            records
        }
        Some(_) => return Err(CmdError::Syntax),
    };
    let mut text = String::new();
    for record in records {
        let line = match record.id == ctx.conn.id {
            true => own_line(ctx, args, "list"),
            false => other_line(ctx, &record),
        };
        let _ = writeln!(text, "{line}");
    }
    reply.verbatim(b"txt", text.as_bytes());
    Ok(())
}

/// The client types of `CLIENT LIST TYPE` and `CLIENT KILL TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientType {
    Normal,
    Replica,
    Master,
    PubSub,
}

impl ClientType {
    /// Whether a listed connection is of this type. This node's own link
    /// to its primary is not a listed connection (see [`kill`]), and it
    /// has no Pub/Sub.
    fn matches(self, record: &ClientRecord) -> bool {
        match self {
            ClientType::Normal => record.kind() == Kind::Normal,
            ClientType::Replica => record.kind() == Kind::Replica,
            ClientType::Master | ClientType::PubSub => false,
        }
    }
}

fn client_type(name: &[u8]) -> CmdResult<ClientType> {
    match Keyword::new(name).as_bytes() {
        b"NORMAL" => Ok(ClientType::Normal),
        b"REPLICA" | b"SLAVE" => Ok(ClientType::Replica),
        b"MASTER" => Ok(ClientType::Master),
        b"PUBSUB" => Ok(ClientType::PubSub),
        _ => Err(CmdError::Other(format!(
            "ERR Unknown client type '{}'",
            String::from_utf8_lossy(name)
        ))),
    }
}

/// What `CLIENT KILL` matches: every option given must match.
#[derive(Default)]
struct KillFilter<'a> {
    id: Option<u64>,
    addr: Option<&'a [u8]>,
    laddr: Option<&'a [u8]>,
    kind: Option<ClientType>,
    max_age: Option<u64>,
    skip_me: bool,
}

impl KillFilter<'_> {
    fn matches(&self, record: &ClientRecord, me: u64) -> bool {
        self.id.is_none_or(|id| id == record.id)
            && self.addr.is_none_or(|addr| addr == record.addr.as_bytes())
            && self
                .laddr
                .is_none_or(|laddr| laddr == record.laddr.as_bytes())
            && self.kind.is_none_or(|kind| kind.matches(record))
            && self.max_age.is_none_or(|age| record.age_secs() >= age)
            && !(self.skip_me && record.id == me)
    }
}

/// `CLIENT KILL addr:port` (answers OK or "No such client") and
/// `CLIENT KILL <option> <value> ...` (answers how many it closed). A
/// connection that closes itself does so once its reply is written.
fn kill(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let old_form = args.len() == 3;
    let filter = match old_form {
        true => KillFilter {
            addr: args.get(2),
            ..KillFilter::default()
        },
        false => kill_filter(args)?,
    };
    let me = ctx.conn.id;
    let mut killed = 0;
    for record in ctx.shared.clients.listed() {
        if !filter.matches(&record, me) {
            continue;
        }
        match record.id == me {
            true => ctx.conn.quit = true,
            false => record.kill(),
        }
        killed += 1;
    }
    // This node's link to its primary is not a listed connection; `TYPE
    // master` drops it (it is made again at once), as it always has.
    let names_a_connection = filter.id.is_some() || filter.addr.is_some() || filter.laddr.is_some();
    if filter.kind == Some(ClientType::Master)
        && !names_a_connection
        && ctx.shared.replication.kill_upstream()
    {
        killed += 1;
    }
    match (old_form, killed) {
        (true, 0) => return Err(CmdError::Other("ERR No such client".into())),
        (true, _) => reply.ok(),
        (false, killed) => reply.integer(killed),
    }
    Ok(())
}

fn kill_filter<'a>(args: Args<'a>) -> CmdResult<KillFilter<'a>> {
    let mut filter = KillFilter {
        skip_me: true,
        ..KillFilter::default()
    };
    let mut at = 2;
    while let Some(option) = args.get(at) {
        let Some(value) = args.get(at + 1) else {
            return Err(CmdError::Syntax);
        };
        match Keyword::new(option).as_bytes() {
            b"ID" => {
                let id = super::parse::parse_int(value).ok().filter(|&id| id >= 1);
                let id = id.ok_or_else(|| {
                    CmdError::Other("ERR client-id should be greater than 0".into())
                })?;
                filter.id = Some(id as u64);
            }
            b"MAXAGE" => {
                let age = super::parse::parse_int(value).map_err(|_| {
                    CmdError::Other("ERR maxage is not an integer or out of range".into())
                })?;
                if age <= 0 {
                    return Err(CmdError::Other(
                        "ERR maxage should be greater than 0".into(),
                    ));
                }
                filter.max_age = Some(age as u64);
            }
            b"TYPE" => filter.kind = Some(client_type(value)?),
            b"ADDR" => filter.addr = Some(value),
            b"LADDR" => filter.laddr = Some(value),
            // Every connection is the default user's: the only user there is.
            b"USER" if value == b"default" => {}
            b"USER" => {
                return Err(CmdError::Other(format!(
                    "ERR No such user '{}'",
                    String::from_utf8_lossy(value)
                )));
            }
            b"SKIPME" => {
                filter.skip_me = match Keyword::new(value).as_bytes() {
                    b"YES" => true,
                    b"NO" => false,
                    _ => return Err(CmdError::Syntax),
                }
            }
            _ => return Err(CmdError::Syntax),
        }
        at += 2;
    }
    Ok(filter)
}

/// `CLIENT PAUSE timeout [WRITE|ALL]`: clients' writes, or every command,
/// wait until `timeout` milliseconds have passed or `CLIENT UNPAUSE`.
fn pause(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    if args.len() > 4 {
        return Err(CmdError::Other(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try CLIENT HELP.",
            String::from_utf8_lossy(args.get(1).unwrap_or_default())
        )));
    }
    let mode = match args.get(3).map(Keyword::new) {
        None => PauseMode::All,
        Some(mode) => match mode.as_bytes() {
            b"WRITE" => PauseMode::Write,
            b"ALL" => PauseMode::All,
            _ => {
                return Err(CmdError::Other(
                    "ERR CLIENT PAUSE mode must be WRITE or ALL".into(),
                ));
            }
        },
    };
    let ms = super::parse::parse_int(args.get(2).unwrap_or_default())
        .map_err(|_| CmdError::Other("ERR timeout is not an integer or out of range".into()))?;
    let ms = u64::try_from(ms).map_err(|_| CmdError::Other("ERR timeout is negative".into()))?;
    // Far enough to be "for ever" without overflowing the clock.
    let ms = ms.min(100 * 365 * 86_400 * 1000);
    ctx.shared
        .clients
        .pause(mode, Instant::now() + Duration::from_millis(ms));
    reply.ok();
    Ok(())
}

/// `RESET`: the connection becomes as new, as Redis 7.2 resets it: no
/// transaction or watched keys, not a monitor, RESP2, authenticated only if
/// no password is set, no name, replies on, READWRITE, no ASKING, and
/// neither NO-EVICT nor NO-TOUCH. Its library name and version stay: they
/// still describe the client. Runs even between MULTI and EXEC.
pub fn reset(ctx: &mut Ctx<'_>, _args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    if ctx.conn.client.replica {
        return Err(CmdError::Other(
            "ERR can only reset normal client connections".into(),
        ));
    }
    if ctx.conn.client.monitor.take().is_some() {
        ctx.shared.clients.remove_monitor(ctx.conn.id);
    }
    let conn = &mut *ctx.conn;
    conn.multi = None;
    conn.watch = None;
    if conn.protocol.is_resp() {
        conn.protocol = Protocol::Resp2;
        reply.switch_resp(Protocol::Resp2);
    }
    conn.authenticated = ctx.shared.config.requirepass.is_none();
    set_name(conn, None);
    conn.asking = false;
    conn.readonly = false;
    conn.fenced_reads = false;
    conn.client.reply = ReplyMode::On;
    conn.client.no_evict = false;
    conn.client.no_touch = false;
    reply.simple(b"RESET");
    Ok(())
}

/// `MONITOR`: from now on the connection receives every command the node
/// runs, as Redis prints them ([`monitor_line`]). A second MONITOR answers
/// nothing, as in Redis; inside a transaction it is refused.
pub fn monitor(ctx: &mut Ctx<'_>, _args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    if ctx.conn.in_exec {
        return Err(CmdError::Other(
            "ERR MONITOR isn't allowed for DENY BLOCKING client".into(),
        ));
    }
    if ctx.conn.client.monitor.is_some() || ctx.conn.client.replica {
        return Ok(());
    }
    let Some(record) = ctx.conn.client.record.as_ref() else {
        return Err(CmdError::Other(
            "ERR MONITOR needs a client connection".into(),
        ));
    };
    let monitor = ctx.shared.clients.add_monitor(record, ctx.conn.protocol);
    ctx.conn.client.monitor = Some(monitor);
    reply.ok();
    Ok(())
}

/// The output limit a monitor is held to: the normal class's, as Redis
/// holds it; since that class has none by default, a monitor without one
/// is held to the replica class's (256 MiB hard, 64 MiB for 60 s by
/// default), so that a monitor that stops reading cannot grow for ever.
fn monitor_limit(ctx: &Ctx<'_>) -> OutputLimit {
    let limits = ctx.shared.runtime.output_limits();
    match limits.normal.is_off() {
        true => limits.replica,
        false => limits.normal,
    }
}

fn feed_monitors(ctx: &Ctx<'_>, info: &CommandInfo, args: Args<'_>) {
    if hidden_from_monitors(info, args) {
        return;
    }
    let addr = ctx
        .conn
        .client
        .record
        .as_ref()
        .map_or("?:0", |record| record.addr.as_str());
    let line = monitor_line(SystemTime::now(), addr, info, args);
    ctx.shared
        .clients
        .feed_monitors(line.as_bytes(), monitor_limit(ctx));
}

/// Administrative commands, which Redis does not show to monitors (its
/// `admin` flag), by subcommand where Redis flags subcommands.
fn hidden_from_monitors(info: &CommandInfo, args: Args<'_>) -> bool {
    let sub = Keyword::new(args.get(1).unwrap_or_default());
    let sub = sub.as_bytes();
    match info.name {
        "monitor" | "debug" | "shutdown" | "failover" | "replicaof" | "slaveof" => true,
        "client" => matches!(
            sub,
            b"KILL" | b"LIST" | b"NO-EVICT" | b"PAUSE" | b"UNPAUSE" | b"UNBLOCK"
        ),
        "config" => matches!(sub, b"GET" | b"SET" | b"RESETSTAT" | b"REWRITE"),
        "slowlog" => matches!(sub, b"GET" | b"LEN" | b"RESET"),
        "latency" => !matches!(sub, b"HELP"),
        "cluster" => matches!(sub, b"FAILOVER" | b"LEAVE" | b"RESET" | b"SETSLOT"),
        _ => info.is(Flags::BUS),
    }
}

/// A MONITOR line as Redis writes it (without the `+` of its status
/// reply): `1700000000.123456 [0 127.0.0.1:50000] "set" "k" "v"`, each
/// argument quoted and escaped, and the arguments of AUTH, and of HELLO's
/// AUTH option, shown as `(redacted)`.
pub fn monitor_line(now: SystemTime, addr: &str, info: &CommandInfo, args: Args<'_>) -> String {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let mut line = format!(
        "{}.{:06} [0 {addr}]",
        since.as_secs(),
        since.subsec_micros()
    );
    let mut redact_next = 0;
    for (at, arg) in args.iter().enumerate() {
        line.push(' ');
        let redacted = match info.name {
            "auth" => at > 0,
            "hello" if redact_next > 0 => {
                redact_next -= 1;
                true
            }
            "hello" => {
                if at >= 2 && arg.eq_ignore_ascii_case(b"AUTH") {
                    redact_next = 2;
                }
                false
            }
            _ => false,
        };
        match redacted {
            true => line.push_str("\"(redacted)\""),
            false => keycafe_core::repr::quote(&mut line, arg),
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&[u8]]) -> (Vec<u8>, Vec<std::ops::Range<usize>>) {
        let mut bytes = Vec::new();
        let mut spans = Vec::new();
        for arg in list {
            let start = bytes.len();
            bytes.extend_from_slice(arg);
            spans.push(start..bytes.len());
        }
        (bytes, spans)
    }

    fn line_of(list: &[&[u8]]) -> String {
        let (bytes, spans) = args(list);
        let args = Args::new(&bytes, &spans);
        let info = super::super::lookup(list[0]).expect("a command").info;
        let at = UNIX_EPOCH + Duration::from_micros(1_700_000_000_000_042);
        monitor_line(at, "127.0.0.1:5000", info, args)
    }

    #[test]
    fn monitor_lines_quote_escape_and_redact_as_redis_does() {
        assert_eq!(
            line_of(&[b"SET", b"k", b"a\"\\\n\x01\xff"]),
            r#"1700000000.000042 [0 127.0.0.1:5000] "SET" "k" "a\"\\\n\x01\xff""#
        );
        assert_eq!(
            line_of(&[b"AUTH", b"user", b"secret"]),
            r#"1700000000.000042 [0 127.0.0.1:5000] "AUTH" "(redacted)" "(redacted)""#
        );
        assert_eq!(
            line_of(&[b"hello", b"3", b"AUTH", b"default", b"pw", b"SETNAME", b"x"]),
            r#"1700000000.000042 [0 127.0.0.1:5000] "hello" "3" "AUTH" "(redacted)" "(redacted)" "SETNAME" "x""#
        );
        assert_eq!(
            line_of(&[b"ECHO", b"\t\r\x07\x08 ~"]),
            r#"1700000000.000042 [0 127.0.0.1:5000] "ECHO" "\t\r\a\b ~""#
        );
    }

    #[test]
    fn admin_commands_are_hidden_from_monitors() {
        for (shown, command) in [
            (false, &[&b"CLIENT"[..], b"LIST"][..]),
            (false, &[b"client", b"kill", b"id", b"1"]),
            (true, &[b"CLIENT", b"SETNAME", b"x"]),
            (false, &[b"CONFIG", b"GET", b"x"]),
            (false, &[b"MONITOR"]),
            (true, &[b"GET", b"k"]),
        ] {
            let (bytes, spans) = args(command);
            let info = super::super::lookup(command[0]).unwrap().info;
            let hidden = hidden_from_monitors(info, Args::new(&bytes, &spans));
            assert_eq!(!hidden, shown, "{command:?}");
        }
    }

    #[test]
    fn reply_skip_drops_exactly_the_next_reply() {
        let mut state = ClientState {
            reply: ReplyMode::SkipNext,
            ..ClientState::default()
        };
        // CLIENT REPLY SKIP itself wrote nothing; the command after it is
        // dropped, and the one after that is sent.
        assert!(!state.reply_dropped());
        assert!(state.reply_dropped());
        assert!(!state.reply_dropped());
        state.reply = ReplyMode::Off;
        assert!(state.reply_dropped() && state.reply_dropped());
    }

    #[test]
    fn sub_names_are_lower_case_and_bounded() {
        assert_eq!(SubName::of(Some(b"LIST")).as_str(), Some("list"));
        assert_eq!(SubName::of(Some(&[b'x'; 40])).as_str(), None);
        assert_eq!(SubName::of(Some(b"a b")).as_str(), None);
        assert_eq!(SubName::of(None).as_str(), None);
    }
}
