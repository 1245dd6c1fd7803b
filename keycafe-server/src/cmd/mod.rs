//! The command table: every command a node serves, how many arguments it
//! takes, where its keys are, and the function that runs it.
//!
//! [`execute`] looks the name up (case-insensitively, without allocating),
//! refuses everything but AUTH, HELLO and QUIT until a connection has
//! authenticated (when a password is set), checks the arity, runs the handler, and turns a returned [`CmdError`] into
//! an error reply. Handlers are grouped by family, one file each:
//!
//! - [`strings`]: GET, SET and the other string commands.
//! - [`keys`]: DEL, EXISTS, the expiry family, DBSIZE, FLUSHALL.
//! - [`server`]: connection and server commands (PING, AUTH, INFO, ...).
//! - [`cluster`]: CLUSTER subcommands.
//! - [`replication`]: WAIT, ROLE, and the replication side of INFO, CLIENT
//!   and the bus.
//! - [`bus`]: node-to-node commands, served only on the cluster bus port.
//!
//! In cluster mode, a command with keys first passes the slot check of
//! [`crate::cluster::routing`], which may answer MOVED, ASK, TRYAGAIN,
//! CROSSSLOT or CLUSTERDOWN instead of running it.
//!
//! The key positions (`first_key`, `last_key`, `step`, as in Redis's command
//! table) are what COMMAND reports, so that cluster clients can route.

pub mod bus;
pub mod cluster;
pub mod keys;
pub mod parse;
pub mod replication;
pub mod server;
pub mod strings;

use std::collections::HashMap;
use std::sync::LazyLock;

use keycafe_core::{Args, Reply};

pub use parse::{ArgCursor, CmdError, CmdResult, Keyword};

use crate::connection::ConnState;
use crate::state::Shared;
use crate::store::Store;

/// What a handler may touch: the node's shared state and its own connection.
pub struct Ctx<'a> {
    pub shared: &'a Shared,
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

pub type Handler = fn(&mut Ctx<'_>, Args<'_>, &mut Reply<'_>) -> CmdResult;

/// One row of the command table.
pub struct CommandSpec {
    /// Lower-case name, as Redis's COMMAND reports it.
    pub name: &'static str,
    /// Exact argument count (name included) when positive; a minimum when
    /// negative.
    pub arity: i32,
    /// COMMAND flags: `write`, `readonly`, `fast`, ...
    pub flags: &'static [&'static str],
    /// Position of the first key argument (0 = no keys).
    pub first_key: i32,
    /// Position of the last key argument (-1 = the last argument).
    pub last_key: i32,
    /// Distance between key arguments (2 for MSET's key/value pairs).
    pub step: i32,
    pub handler: Handler,
}

impl CommandSpec {
    /// Node-to-node commands, served only on the cluster bus.
    pub fn is_bus_only(&self) -> bool {
        self.name.starts_with("kc.")
    }

    /// Changes data (and so must pass the write gate of a failover).
    pub fn is_write(&self) -> bool {
        self.flags.first() == Some(&"write")
    }

    fn arity_ok(&self, argc: usize) -> bool {
        let arity = self.arity.unsigned_abs() as usize;
        if self.arity >= 0 {
            argc == arity
        } else {
            argc >= arity
        }
    }
}

const W: &[&str] = &["write"];
const WF: &[&str] = &["write", "fast"];
const RF: &[&str] = &["readonly", "fast"];
const F: &[&str] = &["fast"];
const NONE: &[&str] = &[];

macro_rules! commands {
    ($( $name:literal $arity:literal $flags:ident ($first:literal $last:literal $step:literal) => $handler:path ;)*) => {
        &[$( CommandSpec {
            name: $name, arity: $arity, flags: $flags,
            first_key: $first, last_key: $last, step: $step, handler: $handler,
        }, )*]
    };
}

/// Every command, in the order COMMAND lists them.
pub static COMMANDS: &[CommandSpec] = commands! {
    // Strings.
    "get"       2 RF (1 1 1) => strings::get;
    "set"      -3 W  (1 1 1) => strings::set;
    "setnx"     3 WF (1 1 1) => strings::setnx;
    "setex"     4 W  (1 1 1) => strings::setex;
    "psetex"    4 W  (1 1 1) => strings::psetex;
    "getdel"    2 WF (1 1 1) => strings::getdel;
    "getex"    -2 WF (1 1 1) => strings::getex;
    "mget"     -2 RF (1 -1 1) => strings::mget;
    "mset"     -3 W  (1 -1 2) => strings::mset;
    "msetnx"   -3 W  (1 -1 2) => strings::msetnx;
    "incr"      2 WF (1 1 1) => strings::incr;
    "decr"      2 WF (1 1 1) => strings::decr;
    "incrby"    3 WF (1 1 1) => strings::incrby;
    "decrby"    3 WF (1 1 1) => strings::decrby;
    "append"    3 W  (1 1 1) => strings::append;
    "strlen"    2 RF (1 1 1) => strings::strlen;
    // Keys and expiry.
    "del"      -2 W  (1 -1 1) => keys::del;
    "delete"   -2 W  (1 -1 1) => keys::del;
    "unlink"   -2 WF (1 -1 1) => keys::del;
    "exists"   -2 RF (1 -1 1) => keys::exists;
    "expire"   -3 WF (1 1 1) => keys::expire;
    "pexpire"  -3 WF (1 1 1) => keys::pexpire;
    "expireat" -3 WF (1 1 1) => keys::expireat;
    "pexpireat" -3 WF (1 1 1) => keys::pexpireat;
    "ttl"       2 RF (1 1 1) => keys::ttl;
    "pttl"      2 RF (1 1 1) => keys::pttl;
    "persist"   2 WF (1 1 1) => keys::persist;
    "dbsize"    1 RF (0 0 0) => keys::dbsize;
    "flushall" -1 W  (0 0 0) => keys::flushall;
    "flushdb"  -1 W  (0 0 0) => keys::flushall;
    // Connection and server.
    "ping"     -1 F  (0 0 0) => server::ping;
    "echo"      2 F  (0 0 0) => server::echo;
    "auth"     -2 F  (0 0 0) => server::auth;
    "quit"     -1 F  (0 0 0) => server::quit;
    "hello"    -1 F  (0 0 0) => server::hello;
    "select"    2 F  (0 0 0) => server::select;
    "client"   -2 NONE (0 0 0) => server::client;
    "command"  -1 NONE (0 0 0) => server::command;
    "config"   -2 NONE (0 0 0) => server::config;
    "info"     -1 NONE (0 0 0) => server::info;
    // Replication.
    "wait"      3 NONE (0 0 0) => replication::wait;
    "role"      1 F  (0 0 0) => replication::role;
    // Cluster.
    "cluster"  -2 NONE (0 0 0) => cluster::cluster;
    "asking"    1 F  (0 0 0) => cluster::asking;
    "readonly"  1 F  (0 0 0) => cluster::readonly;
    "readwrite" 1 F  (0 0 0) => cluster::readwrite;
    // Cluster bus only.
    "kc.ping"   4 F  (0 0 0) => bus::ping;
    "kc.config" 1 F  (0 0 0) => bus::config;
    "kc.import" -2 W (0 0 0) => bus::import;
    "kc.psync"  5 NONE (0 0 0) => replication::psync;
    "kc.failover.pause" 2 NONE (0 0 0) => replication::failover_pause;
    "kc.failover.resume" 1 NONE (0 0 0) => replication::failover_resume;
};

/// The table indexed by upper-case name, built on first use.
static BY_NAME: LazyLock<HashMap<Vec<u8>, &'static CommandSpec>> = LazyLock::new(|| {
    COMMANDS
        .iter()
        .map(|spec| (spec.name.to_ascii_uppercase().into_bytes(), spec))
        .collect()
});

/// Finds a command by name, in any letter case.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    let mut upper = [0u8; 24];
    let upper = upper.get_mut(..name.len())?;
    for (dst, src) in upper.iter_mut().zip(name) {
        *dst = src.to_ascii_uppercase();
    }
    BY_NAME.get(&upper[..]).copied()
}

/// Runs one request and writes exactly one reply.
pub fn execute(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) {
    let name = args.get(0).unwrap_or_default();
    let spec = match lookup(name) {
        // Bus commands exist only on the bus port, and the bus serves only
        // them (and AUTH, PING, QUIT).
        Some(spec) if spec.is_bus_only() == ctx.conn.bus => spec,
        Some(spec) if ctx.conn.bus && matches!(spec.name, "auth" | "ping" | "quit") => spec,
        _ => {
            reply.error(&unknown_command(args));
            return;
        }
    };
    if !ctx.conn.authenticated && !matches!(spec.name, "auth" | "hello" | "quit") {
        reply.error(&server::noauth().to_string());
        return;
    }
    if !spec.arity_ok(args.len()) {
        reply.error(&CmdError::WrongArity(spec.name.to_string()).to_string());
        return;
    }
    let result = match ctx.shared.cluster.as_ref() {
        None => (spec.handler)(ctx, args, reply),
        Some(cluster) => {
            // A manual failover pauses every write, the bus's too.
            let _pass = match spec.is_write() {
                true => match ctx.shared.replication.gate.enter() {
                    Some(pass) => Some(pass),
                    None => {
                        reply.error("TRYAGAIN Writes are paused for a failover; retry shortly");
                        return;
                    }
                },
                false => None,
            };
            if ctx.conn.bus {
                (spec.handler)(ctx, args, reply)
            } else {
                let result = run_in_cluster(cluster, spec, ctx, args, reply);
                if spec.name != "asking" {
                    ctx.conn.asking = false;
                }
                result
            }
        }
    };
    if let Err(err) = result {
        reply.reset();
        reply.error(&err.to_string());
    }
}

/// Runs a command after the cluster's slot check.
fn run_in_cluster(
    cluster: &crate::cluster::ClusterState,
    spec: &CommandSpec,
    ctx: &mut Ctx<'_>,
    args: Args<'_>,
    reply: &mut Reply<'_>,
) -> CmdResult {
    use crate::cluster::routing::{self, Decision};
    let view = cluster.view();
    match routing::check(&view, spec, args, ctx.conn) {
        Decision::Serve => (spec.handler)(ctx, args, reply),
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
            routing::check_migrating(&outgoing, ctx.store(), spec, args, slot, &target)
                .map_err(CmdError::Other)?;
            (spec.handler)(ctx, args, reply)
        }
    }
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
    fn lookup_ignores_case() {
        assert_eq!(lookup(b"get").map(|c| c.name), Some("get"));
        assert_eq!(lookup(b"GeT").map(|c| c.name), Some("get"));
        assert_eq!(lookup(b"DELETE").map(|c| c.name), Some("delete"));
        assert!(lookup(b"nosuchcommand").is_none());
        assert!(lookup(&[b'x'; 100]).is_none());
    }

    #[test]
    fn every_name_is_unique_and_lower_case() {
        let mut seen = std::collections::HashSet::new();
        for spec in COMMANDS {
            assert_eq!(spec.name, spec.name.to_ascii_lowercase());
            assert!(seen.insert(spec.name), "{} listed twice", spec.name);
        }
    }

    #[test]
    fn arity() {
        let get = lookup(b"get").unwrap();
        assert!(get.arity_ok(2) && !get.arity_ok(1) && !get.arity_ok(3));
        let set = lookup(b"set").unwrap();
        assert!(set.arity_ok(3) && set.arity_ok(7) && !set.arity_ok(2));
    }
}
