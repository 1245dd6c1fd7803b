//! The commands a node serves, and how one request is run.
//!
//! What each command *is* — its arity, its typed [`Flags`] (writes? reads?
//! bus only? allowed before AUTH?) and where its keys are — is
//! `keycafe_core::command`'s table, shared with the client and reported by
//! COMMAND. This module adds the function that runs each one (`HANDLERS`)
//! and [`execute`], which looks the name up (case-insensitively, without
//! allocating), refuses everything not flagged `NO_AUTH` until a connection
//! has authenticated, checks the arity (and, for a container with
//! subcommands in the table, the subcommand's), passes the failover write gate and
//! the slot check, makes room under `maxmemory` for a command that may grow
//! memory (evicting, or refusing with `OOM`), runs the handler, and turns a
//! returned [`CmdError`] into an error reply. Around that, it counts the
//! request in the node's statistics ([`crate::stats`]).
//!
//! Handlers are plain functions that never wait. Nearly all write their reply
//! and are done; the few whose answer takes time (WAIT) or that turn the
//! connection into something else (a replica's `KC.PSYNC`) return an
//! [`Outcome`], which the connection carries out without knowing which
//! command asked for it.
//!
//! Handlers are grouped by family, one file each:
//!
//! - [`strings`]: GET, SET and the other string commands, with
//!   [`long_double`], INCRBYFLOAT's arithmetic.
//! - [`bits`]: SETBIT, GETBIT, BITCOUNT, BITPOS.
//! - [`lcs`]: LCS, the longest common subsequence of two values.
//! - [`keys`]: DEL, EXISTS, TYPE, TOUCH, the expiry family, TIME, OBJECT,
//!   MEMORY, DBSIZE, FLUSHALL.
//! - [`keyspace`]: SCAN, KEYS, RANDOMKEY, RENAME, RENAMENX, COPY.
//! - [`server`]: connection and server commands (PING, AUTH, CONFIG, ...).
//! - [`client`]: CLIENT, RESET and MONITOR, over the node's registry of
//!   connections.
//! - [`info`]: INFO, the node's state and statistics by section.
//! - [`commands`]: COMMAND, what the node says about its commands.
//! - [`introspection`]: SLOWLOG and LATENCY.
//! - [`cluster`]: CLUSTER subcommands.
//! - [`transaction`]: MULTI, EXEC, DISCARD, WATCH, UNWATCH, and the queue
//!   that [`execute`] hands commands to between MULTI and EXEC.
//! - [`replication`]: WAIT, ROLE, and the replication side of INFO, CLIENT
//!   and the bus.
//! - [`bus`]: node-to-node commands, served only on the cluster bus port.
//!
//! In cluster mode, a command with keys first passes the slot check of
//! [`crate::cluster::routing`], which may answer MOVED, ASK, TRYAGAIN,
//! CROSSSLOT or CLUSTERDOWN instead of running it.

pub mod bits;
pub mod bus;
pub mod client;
pub mod cluster;
pub mod commands;
pub mod info;
pub mod introspection;
pub mod keys;
pub mod keyspace;
pub mod lcs;
pub mod long_double;
pub mod parse;
pub mod persistence;
pub mod replication;
pub mod server;
pub mod strings;
pub mod transaction;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};

use bytes::BytesMut;
use keycafe_core::command::{self, COMMANDS, CommandInfo, Flags};
use keycafe_core::{Args, Frame, Protocol, Reply};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

pub use parse::{ArgCursor, CmdError, CmdResult, Keyword};

use crate::cluster::lease;
use crate::cluster::routing::{self, Access, Decision};
use crate::state::Shared;
use crate::stats::{ConnStats, Ran, SlowEntry};
use crate::store::{Store, Watch};

/// What commands may know and change about the connection they run on.
#[derive(Debug)]
pub struct ConnState {
    pub id: u64,
    pub protocol: Protocol,
    pub authenticated: bool,
    pub name: Option<String>,
    /// Set by QUIT: close once the pending replies are written.
    pub quit: bool,
    /// Set by ASKING: the next command may touch a slot being imported.
    pub asking: bool,
    /// Set by READONLY: reads may be served by a replica.
    pub readonly: bool,
    /// A cluster-bus connection from another node (bus commands only).
    pub bus: bool,
    /// On the bus: the challenge this node answered with `KC.HELLO`,
    /// awaiting the peer's `KC.AUTH`.
    pub bus_challenge: Option<Box<bus::Challenge>>,
    /// Set by `CLIENT FENCED-READS ON`: reads, like writes, are served only
    /// while this primary's lease holds, so they never see a deposed
    /// primary's stale data.
    pub fenced_reads: bool,
    /// A reply waiting in the output buffer was served under the lease:
    /// the connection checks the lease again before sending it.
    pub under_lease: bool,
    /// Commands run since the count was last added to the node's stats
    /// (INFO adds them to the total it shows).
    pub commands: u64,
    /// Between MULTI and EXEC (or DISCARD): the commands queued so far.
    pub multi: Option<Box<transaction::Queue>>,
    /// The keys this connection WATCHes, until EXEC, DISCARD or UNWATCH.
    pub watch: Option<Watch>,
    /// EXEC is running the queue: a command that would wait (WAIT) answers
    /// at once instead, as in Redis.
    pub in_exec: bool,
    /// CLIENT REPLY, NO-EVICT, MONITOR, the last command, and this
    /// connection's record in the node's registry.
    pub client: client::ClientState,
    /// The client's address (`None` for a connection made in a test
    /// without a socket): SLOWLOG shows it.
    pub addr: Option<std::net::SocketAddr>,
    /// This connection's command counts, timings and errors not yet added
    /// to the node's (see [`crate::stats`]).
    pub stats: ConnStats,
}

impl Default for ConnState {
    fn default() -> Self {
        ConnState {
            id: 0,
            protocol: Protocol::Resp2,
            authenticated: true,
            name: None,
            quit: false,
            asking: false,
            readonly: false,
            bus: false,
            bus_challenge: None,
            fenced_reads: false,
            under_lease: false,
            commands: 0,
            multi: None,
            watch: None,
            in_exec: false,
            client: client::ClientState::default(),
            addr: None,
            stats: ConnStats::default(),
        }
    }
}

/// What a handler may touch: the node's shared state and its own connection.
pub struct Ctx<'a> {
    pub shared: &'a Arc<Shared>,
    pub conn: &'a mut ConnState,
}

impl Ctx<'_> {
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// The current time in milliseconds since the Unix epoch: the clock every
    /// expiry is measured against.
    pub fn now_ms(&self) -> u64 {
        crate::store::now_ms()
    }
}

/// A future that owns what it needs.
pub type Task<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A connection's byte stream as a command that takes it over gets it: a
/// TCP socket, or TLS over one (a TLS cluster's bus).
pub trait Duplex: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Duplex for T {}

/// What a connection does with a stream it hands over: the stream, the
/// bytes read from it but not yet used, and the node's shutdown signal.
pub type Takeover = Box<
    dyn FnOnce(Box<dyn Duplex>, BytesMut, CancellationToken) -> Task<std::io::Result<()>> + Send,
>;

/// What the connection must do after a command ran. Handlers never wait:
/// a command whose answer takes time returns the waiting as a value, and the
/// connection carries it out without knowing which command it was.
pub enum Outcome {
    /// The reply is written; run the next request.
    Done,
    /// The reply is what this future completes with. Requests pipelined
    /// behind it wait; a client that leaves meanwhile drops it (WAIT,
    /// `KC.FAILOVER.PAUSE`).
    Block(Task<Frame>),
    /// The connection stops serving requests and becomes this task
    /// (`KC.PSYNC`: a replication stream).
    Takeover(Takeover),
}

/// How a command runs.
#[derive(Clone, Copy)]
pub enum Handler {
    /// Writes its reply and is done: nearly every command.
    Reply(fn(&mut Ctx<'_>, Args<'_>, &mut Reply<'_>) -> CmdResult),
    /// May leave its reply for later or take the connection over.
    Outcome(fn(&mut Ctx<'_>, Args<'_>, &mut Reply<'_>) -> CmdResult<Outcome>),
}

/// A command: its row of `keycafe_core`'s table and the function that runs it.
#[derive(Clone, Copy)]
pub struct Command {
    pub info: &'static CommandInfo,
    /// The row's position in the table.
    pub index: usize,
    pub handler: Handler,
    /// Whether the table lists subcommands of it (CONFIG GET, CLIENT LIST).
    pub has_subcommands: bool,
}

impl Command {
    /// Bus commands exist only on the bus port, and the bus serves only them
    /// (and AUTH, PING, QUIT).
    fn may_run_on_bus(&self, bus: bool) -> bool {
        match bus {
            true => self.info.is(Flags::BUS) || self.info.is(Flags::ON_BUS),
            false => !self.info.is(Flags::BUS),
        }
    }

    /// The row of INFO's commandstats a request of this command is counted
    /// in: its subcommand's, if the table has subcommands for it.
    fn stat(&self, args: Args<'_>) -> usize {
        let sub = args.get(1).filter(|_| self.has_subcommands);
        match sub.and_then(|sub| command::subcommand_position(self.index, sub)) {
            Some(at) => COMMANDS.len() + at,
            None => self.index,
        }
    }

    /// Makes room under `maxmemory` if the command may grow memory, then
    /// runs it; `called` says whether it got as far as running.
    fn run(
        &self,
        ctx: &mut Ctx<'_>,
        args: Args<'_>,
        reply: &mut Reply<'_>,
        called: &mut bool,
    ) -> CmdResult<Outcome> {
        // After the slot check, as in Redis: a key owned elsewhere is
        // redirected, not refused for this node's memory or disk.
        if self.info.is(Flags::WRITE)
            && let Some(persistence) = &ctx.shared.persistence
            && let Some(refusal) = persistence.refuses_writes()
        {
            return Err(CmdError::Other(refusal));
        }
        if self.info.is(Flags::DENYOOM) {
            ctx.shared.make_room()?;
        }
        *called = true;
        self.call(ctx, args, reply)
    }

    /// Runs the handler alone: no room is made under `maxmemory` (EXEC
    /// makes it once, before its transaction).
    fn call(&self, ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult<Outcome> {
        let result = match self.handler {
            Handler::Reply(handler) => handler(ctx, args, reply).map(|()| Outcome::Done),
            Handler::Outcome(handler) => handler(ctx, args, reply),
        };
        client::after_call(ctx, self.info, args);
        result
    }

    /// Runs the handler alone, as [`Command::call`] does, counted in the
    /// node's statistics and slow log as a command of its own (each of
    /// EXEC's commands, as in Redis).
    fn call_counted(
        &self,
        ctx: &mut Ctx<'_>,
        args: Args<'_>,
        reply: &mut Reply<'_>,
    ) -> CmdResult<Outcome> {
        let shared = ctx.shared;
        let start = ctx.conn.stats.start(&shared.command_stats);
        let result = self.call(ctx, args, reply);
        let ran = Ran::Called {
            stat: self.stat(args),
            fast: self.info.is(Flags::FAST),
        };
        let error = match &result {
            Err(err) => Some(err.to_string()),
            Ok(_) => reply
                .error_text()
                .map(|text| String::from_utf8_lossy(text).into()),
        };
        let error = error.as_deref().map(str::as_bytes);
        count(ctx, start, ran, error, args);
        result
    }
}

use Handler::{Outcome as Waits, Reply as Replies};

/// The function behind every command of `keycafe_core::command::COMMANDS`.
static HANDLERS: &[(&str, Handler)] = &[
    // Strings.
    ("get", Replies(strings::get)),
    ("set", Replies(strings::set)),
    ("setnx", Replies(strings::setnx)),
    ("setex", Replies(strings::setex)),
    ("psetex", Replies(strings::psetex)),
    ("getdel", Replies(strings::getdel)),
    ("getex", Replies(strings::getex)),
    ("mget", Replies(strings::mget)),
    ("mset", Replies(strings::mset)),
    ("msetnx", Replies(strings::msetnx)),
    ("incr", Replies(strings::incr)),
    ("decr", Replies(strings::decr)),
    ("incrby", Replies(strings::incrby)),
    ("decrby", Replies(strings::decrby)),
    ("append", Replies(strings::append)),
    ("strlen", Replies(strings::strlen)),
    // Strings: ranges, floats, bits and LCS.
    ("getset", Replies(strings::getset)),
    ("getrange", Replies(strings::getrange)),
    ("substr", Replies(strings::getrange)),
    ("setrange", Replies(strings::setrange)),
    ("incrbyfloat", Replies(strings::incrbyfloat)),
    ("setbit", Replies(bits::setbit)),
    ("getbit", Replies(bits::getbit)),
    ("bitcount", Replies(bits::bitcount)),
    ("bitpos", Replies(bits::bitpos)),
    ("bitop", Replies(bits::bitop)),
    ("lcs", Replies(lcs::lcs)),
    // Keys and expiry.
    ("del", Replies(keys::del)),
    ("delete", Replies(keys::del)),
    ("unlink", Replies(keys::del)),
    ("exists", Replies(keys::exists)),
    ("expire", Replies(keys::expire)),
    ("pexpire", Replies(keys::pexpire)),
    ("expireat", Replies(keys::expireat)),
    ("pexpireat", Replies(keys::pexpireat)),
    ("ttl", Replies(keys::ttl)),
    ("pttl", Replies(keys::pttl)),
    ("persist", Replies(keys::persist)),
    ("object", Replies(keys::object)),
    ("dbsize", Replies(keys::dbsize)),
    ("flushall", Replies(keys::flushall)),
    ("flushdb", Replies(keys::flushall)),
    // Keyspace: walking it, moving values between keys, introspection.
    ("scan", Replies(keyspace::scan)),
    ("keys", Replies(keyspace::keys)),
    ("randomkey", Replies(keyspace::randomkey)),
    ("type", Replies(keys::type_of)),
    ("touch", Replies(keys::touch)),
    ("rename", Replies(keyspace::rename)),
    ("renamenx", Replies(keyspace::renamenx)),
    ("copy", Replies(keyspace::copy)),
    ("expiretime", Replies(keys::expiretime)),
    ("pexpiretime", Replies(keys::pexpiretime)),
    ("time", Replies(keys::time)),
    ("memory", Replies(keys::memory)),
    // Connection and server.
    ("ping", Replies(server::ping)),
    ("echo", Replies(server::echo)),
    ("auth", Replies(server::auth)),
    ("quit", Replies(server::quit)),
    ("hello", Replies(server::hello)),
    ("select", Replies(server::select)),
    ("client", Replies(client::client)),
    ("command", Replies(commands::command)),
    ("config", Replies(server::config)),
    ("info", Replies(info::info)),
    // Persistence.
    ("save", Waits(persistence::save)),
    ("bgsave", Replies(persistence::bgsave)),
    ("bgrewriteaof", Replies(persistence::bgrewriteaof)),
    ("lastsave", Replies(persistence::lastsave)),
    // Connections: resetting one, watching every command.
    ("reset", Replies(client::reset)),
    ("monitor", Replies(client::monitor)),
    // Transactions.
    ("multi", Replies(transaction::multi)),
    ("exec", Replies(transaction::exec)),
    ("discard", Replies(transaction::discard)),
    ("watch", Replies(transaction::watch)),
    ("unwatch", Replies(transaction::unwatch)),
    // Replication.
    ("wait", Waits(replication::wait)),
    ("role", Replies(replication::role)),
    // Cluster.
    ("cluster", Replies(cluster::cluster)),
    ("asking", Replies(cluster::asking)),
    ("readonly", Replies(cluster::readonly)),
    ("readwrite", Replies(cluster::readwrite)),
    // Introspection: the slow log and the latency monitor.
    ("slowlog", Replies(introspection::slowlog)),
    ("latency", Replies(introspection::latency)),
    // Cluster bus only.
    ("kc.hello", Replies(bus::hello)),
    ("kc.auth", Replies(bus::auth)),
    ("kc.ping", Replies(bus::ping)),
    ("kc.config", Replies(bus::config)),
    ("kc.import", Replies(bus::import)),
    ("kc.psync", Waits(replication::psync)),
    ("kc.failover.pause", Waits(replication::failover_pause)),
    ("kc.failover.resume", Replies(replication::failover_resume)),
];

/// The handler of each command, in the order of `COMMANDS`, and whether it
/// has subcommands, built on first use.
static BY_POSITION: LazyLock<Vec<(Handler, bool)>> = LazyLock::new(|| {
    COMMANDS
        .iter()
        .enumerate()
        .map(|(index, info)| {
            let handler = HANDLERS
                .iter()
                .find(|(name, _)| *name == info.name)
                .map(|&(_, handler)| handler)
                .expect("every command in the table has a handler (see the tests)");
            (handler, !command::subcommands_of(index).is_empty())
        })
        .collect()
});

/// Finds a command by name, in any letter case, without allocating.
pub fn lookup(name: &[u8]) -> Option<Command> {
    let index = command::position(name)?;
    let (handler, has_subcommands) = BY_POSITION[index];
    Some(Command {
        info: &COMMANDS[index],
        index,
        handler,
        has_subcommands,
    })
}

/// The key arguments of a request, from the table's key positions.
pub fn key_args<'a>(info: &CommandInfo, args: Args<'a>) -> impl Iterator<Item = &'a [u8]> + Clone {
    info.key_positions(args.len())
        .filter_map(move |at| args.get(at))
}

/// Runs one request and writes exactly one reply, now or (for
/// [`Outcome::Block`]) when the connection has carried out the outcome.
/// Between MULTI and EXEC, a command that passes the checks is queued
/// instead (see [`transaction`]). Counted in the node's statistics (see
/// [`crate::stats`] for what that costs).
pub fn execute(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> Outcome {
    if ctx.conn.bus {
        return run_request(ctx, args, reply).0;
    }
    let start = ctx.conn.stats.start(&ctx.shared.command_stats);
    let (outcome, ran) = run_request(ctx, args, reply);
    count(ctx, start, ran, reply.error_text(), args);
    outcome
}

/// Adds a request that started at `start` to the connection's counts, and
/// to the slow log and the latency monitor if it was slow enough.
#[inline]
fn count(ctx: &mut Ctx<'_>, start: u64, ran: Ran, error: Option<&[u8]>, args: Args<'_>) {
    let shared = ctx.shared;
    let stats = &shared.command_stats;
    let Some(slow) = ctx
        .conn
        .stats
        .finish(stats, &shared.runtime, start, ran, error)
    else {
        return;
    };
    let conn = &*ctx.conn;
    stats.note_slow(&shared.runtime, &slow, || {
        let addr = conn.addr.map(|addr| addr.to_string()).unwrap_or_default();
        SlowEntry::new(args, addr, conn.name.clone().unwrap_or_default())
    });
}

/// [`execute`] without the statistics: runs the request and says what
/// became of it.
fn run_request(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> (Outcome, Ran) {
    let name = args.get(0).unwrap_or_default();
    let Some(command) = lookup(name).filter(|c| c.may_run_on_bus(ctx.conn.bus)) else {
        transaction::refuse(ctx, reply, &unknown_command(args));
        return (Outcome::Done, Ran::Unknown);
    };
    let info = command.info;
    client::note_command(ctx.conn, info, args);
    let mut stat = command.index;
    if !ctx.conn.authenticated && !info.is(Flags::NO_AUTH) {
        transaction::refuse(ctx, reply, &server::noauth().to_string());
        return (Outcome::Done, Ran::Rejected(stat));
    }
    if !info.arity_ok(args.len()) {
        let text = CmdError::WrongArity(info.name.to_string()).to_string();
        transaction::refuse(ctx, reply, &text);
        return (Outcome::Done, Ran::Rejected(stat));
    }
    // A container with subcommands in the table: the subcommand must be
    // known and have its number of arguments, as Redis 7 checks them.
    if command.has_subcommands
        && let Some(sub) = args.get(1)
    {
        let Some(at) = command::subcommand_position(command.index, sub) else {
            let text = server::unknown_subcommand(args, &info.name.to_ascii_uppercase());
            transaction::refuse(ctx, reply, &text.to_string());
            return (Outcome::Done, Ran::Unknown);
        };
        stat = COMMANDS.len() + at;
        let sub = &command::SUBCOMMANDS[at];
        if !sub.arity_ok(args.len()) {
            let text = CmdError::WrongArity(sub.name.to_string()).to_string();
            transaction::refuse(ctx, reply, &text);
            return (Outcome::Done, Ran::Rejected(stat));
        }
    }
    if ctx.conn.multi.is_some() && !transaction::runs_inside_multi(info) {
        transaction::queue(ctx, command, args, reply);
        return (Outcome::Done, Ran::Queued(stat));
    }
    let mut called = false;
    let result = match ctx.shared.cluster.as_ref() {
        None => command.run(ctx, args, reply, &mut called),
        Some(cluster) => {
            // A manual failover pauses every write, the bus's too.
            let _pass = match info.is(Flags::WRITE) {
                true => match ctx.shared.replication.gate.enter() {
                    Some(pass) => Some(pass),
                    None => {
                        reply.error(PAUSED);
                        return (Outcome::Done, Ran::Rejected(stat));
                    }
                },
                false => None,
            };
            match ctx.conn.bus {
                true => command.run(ctx, args, reply, &mut called),
                false => {
                    let write = info.is(Flags::WRITE);
                    let access = Access {
                        write,
                        // ASKING lasts for one command: the one after it
                        // (ASKING itself sets it again).
                        asking: std::mem::take(&mut ctx.conn.asking),
                        readonly: ctx.conn.readonly,
                    };
                    let fence = write || (ctx.conn.fenced_reads && info.is(Flags::READONLY));
                    let keys = key_args(info, args);
                    run_in_cluster(cluster, ctx, keys, access, fence, |ctx| {
                        command.run(ctx, args, reply, &mut called)
                    })
                }
            }
        }
    };
    let outcome = result.unwrap_or_else(|err| {
        reply.reset();
        reply.error(&err.to_string());
        Outcome::Done
    });
    let ran = match called {
        true => Ran::Called {
            stat,
            fast: info.is(Flags::FAST),
        },
        false => Ran::Rejected(stat),
    };
    (outcome, ran)
}

/// The answer to a write while a manual failover pauses writes.
const PAUSED: &str = "TRYAGAIN Writes are paused for a failover; retry shortly";

/// Runs `run` if the cluster's slot check lets this connection at `keys`
/// now, holding a migrating slot's lock while it runs; with `fence`, only
/// under this primary's lease (see `cluster::lease`).
fn run_in_cluster<'k>(
    cluster: &crate::cluster::ClusterState,
    ctx: &mut Ctx<'_>,
    keys: impl Iterator<Item = &'k [u8]> + Clone,
    access: Access,
    fence: bool,
    run: impl FnOnce(&mut Ctx<'_>) -> CmdResult<Outcome>,
) -> CmdResult<Outcome> {
    let view = cluster.view();
    let decision = routing::check(&view, keys.clone(), access);
    if fence && !matches!(decision, Decision::Refuse(_)) {
        let now = lease::now_ms();
        routing::check_lease(&cluster.lease, &view, now, access.write).map_err(CmdError::Other)?;
        ctx.conn.under_lease = true;
    }
    match decision {
        Decision::Serve => run(ctx),
        Decision::Refuse(text) => Err(CmdError::Other(text)),
        Decision::Migrating {
            slot,
            target,
            outgoing,
        } => {
            // Held until the command is done: see cluster/migration.rs.
            let outgoing = outgoing
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            routing::check_migrating(&outgoing, ctx.store(), keys, access.write, slot, &target)
                .map_err(CmdError::Other)?;
            run(ctx)
        }
    }
}

/// A HELP reply: the usage line, then the lines, as status replies.
pub fn help(reply: &mut Reply<'_>, command: &str, lines: &[&str]) {
    reply.array(lines.len() + 1);
    let usage = format!("{command} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:");
    reply.simple(usage.as_bytes());
    lines.iter().for_each(|line| reply.simple(line.as_bytes()));
}

/// Redis's "unknown command" text, which quotes the first few arguments.
fn unknown_command(args: Args<'_>) -> String {
    let name = String::from_utf8_lossy(args.get(0).unwrap_or_default());
    let mut text = format!(
        "ERR unknown command '{}', with args beginning with: ",
        truncate(&name)
    );
    for arg in args.iter().skip(1).take(8) {
        text.push_str(&format!("'{}' ", truncate(&String::from_utf8_lossy(arg))));
    }
    text
}

fn truncate(text: &str) -> &str {
    match text.char_indices().nth(128) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_has_exactly_one_handler() {
        for info in COMMANDS {
            let found = HANDLERS.iter().filter(|(name, _)| *name == info.name);
            assert_eq!(found.count(), 1, "{}", info.name);
        }
        for (name, _) in HANDLERS {
            assert!(
                COMMANDS.iter().any(|c| c.name == *name),
                "{name} not in the table"
            );
        }
    }

    #[test]
    fn lookup_ignores_case() {
        assert_eq!(lookup(b"GeT").map(|c| c.info.name), Some("get"));
        assert!(lookup(b"nosuchcommand").is_none());
        assert!(lookup(&[b'x'; 100]).is_none());
    }

    #[test]
    fn bus_commands_only_on_the_bus() {
        let psync = lookup(b"kc.psync").unwrap();
        assert!(psync.may_run_on_bus(true) && !psync.may_run_on_bus(false));
        let get = lookup(b"get").unwrap();
        assert!(!get.may_run_on_bus(true) && get.may_run_on_bus(false));
        let ping = lookup(b"ping").unwrap();
        assert!(ping.may_run_on_bus(true) && ping.may_run_on_bus(false));
    }
}
