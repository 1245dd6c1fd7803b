//! Connection and server commands: PING, ECHO, AUTH, QUIT, HELLO, SELECT,
//! COMMAND, CONFIG and INFO. (CLIENT is [`super::client`].)
//!
//! Most of these exist so that redis-cli, redis-benchmark and Redis client
//! libraries find what they probe for when they connect; they answer with
//! Keycafe's real state wherever there is one.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use keycafe_core::{Args, Protocol, Reply};

use keycafe_core::command::{COMMANDS, CommandInfo};

use super::{ArgCursor, CmdError, CmdResult, Ctx, Keyword};
use crate::runtime;
use crate::store::OutOfMemory;

/// The version reported to clients (`redis_version` keeps Redis clients that
/// check for feature support happy).
const KEYCAFE_VERSION: &str = env!("CARGO_PKG_VERSION");
const REDIS_COMPAT_VERSION: &str = "7.2.0";

pub fn ping(_ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    match args.len() {
        1 => reply.simple(b"PONG"),
        2 => reply.bulk(args.get(1).unwrap_or_default()),
        _ => return Err(CmdError::WrongArity("ping".into())),
    }
    Ok(())
}

pub fn echo(_ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    reply.bulk(args.get(1).unwrap_or_default());
    Ok(())
}

pub fn auth(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let (user, password) = match args.len() {
        2 => (None, args.get(1).unwrap_or_default()),
        3 => (args.get(1), args.get(2).unwrap_or_default()),
        _ => return Err(CmdError::Syntax),
    };
    check_password(ctx, user, password)?;
    reply.ok();
    Ok(())
}

/// Authenticates the connection, or explains why not.
fn check_password(ctx: &mut Ctx<'_>, user: Option<&[u8]>, password: &[u8]) -> CmdResult {
    // (Other nodes prove the cluster secret on the bus with KC.HELLO and
    // KC.AUTH; AUTH is for the client port.)
    let expected = ctx.shared.config.requirepass.as_deref();
    let Some(expected) = expected else {
        return Err(CmdError::Other(
            "ERR AUTH <password> called without any password configured for the default user. \
             Are you sure your configuration is correct?"
                .into(),
        ));
    };
    let user_ok = user.is_none_or(|user| user == b"default");
    if user_ok & constant_time_eq(password, expected.as_bytes()) {
        ctx.conn.authenticated = true;
        Ok(())
    } else {
        ctx.conn.authenticated = false;
        Err(CmdError::Other(
            "WRONGPASS invalid username-password pair or user is disabled.".into(),
        ))
    }
}

/// Compares two byte strings in time that depends only on their lengths, so
/// that response timing does not reveal how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u64;
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= u64::from(x ^ y);
    }
    diff == 0
}

pub fn quit(ctx: &mut Ctx<'_>, _args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    ctx.conn.quit = true;
    reply.ok();
    Ok(())
}

/// `HELLO [protover [AUTH username password] [SETNAME name]]`: switches a
/// RESP connection between RESP2 and RESP3 (from this reply on), may
/// authenticate and name it, and answers with Redis 7's map describing the
/// server and the connection. Checked in Redis's order: the version, every
/// option (and the name's characters), the credentials, then whether the
/// connection is authenticated at all. A native connection keeps its
/// protocol (its replies are typed already) and is reported as version 2.
pub fn hello(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let mut version = None;
    let mut at = 1;
    if let Some(arg) = args.get(1) {
        let asked = super::parse::parse_int(arg).map_err(|_| {
            CmdError::Other("ERR Protocol version is not an integer or out of range".into())
        })?;
        let protocol = match asked {
            2 => Protocol::Resp2,
            3 => Protocol::Resp3,
            _ => {
                return Err(CmdError::Other(
                    "NOPROTO unsupported protocol version".into(),
                ));
            }
        };
        version = Some(protocol);
        at = 2;
    }
    let mut credentials = None;
    let mut name = None;
    while let Some(option) = args.get(at) {
        let more = args.len() - 1 - at;
        match Keyword::new(option).as_bytes() {
            b"AUTH" if more >= 2 => {
                credentials = args.get(at + 1).zip(args.get(at + 2));
                at += 3;
            }
            b"SETNAME" if more >= 1 => {
                let given = args.get(at + 1).unwrap_or_default();
                name = Some(super::client::client_name(given)?);
                at += 2;
            }
            _ => {
                return Err(CmdError::Other(format!(
                    "ERR Syntax error in HELLO option '{}'",
                    String::from_utf8_lossy(option)
                )));
            }
        }
    }
    if let Some((user, password)) = credentials {
        hello_auth(ctx, user, password)?;
    }
    if !ctx.conn.authenticated {
        return Err(CmdError::Other(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the \
             HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and \
             select the RESP protocol version at the same time"
                .into(),
        ));
    }
    if let Some(name) = name {
        super::client::set_name(ctx.conn, (!name.is_empty()).then_some(name));
    }
    if let Some(protocol) = version
        && ctx.conn.protocol.is_resp()
    {
        ctx.conn.protocol = protocol;
        reply.switch_resp(protocol);
    }
    let proto = match ctx.conn.protocol {
        Protocol::Resp3 => 3,
        Protocol::Resp2 | Protocol::Native => 2,
    };
    let mode = match ctx.shared.cluster {
        Some(_) => "cluster",
        None => "standalone",
    };
    let role = match super::replication::is_replica(ctx) {
        true => "replica",
        false => "master",
    };
    reply.map(7);
    for (key, value) in [("server", "keycafe"), ("version", KEYCAFE_VERSION)] {
        reply.bulk(key.as_bytes());
        reply.bulk(value.as_bytes());
    }
    reply.bulk(b"proto");
    reply.integer(proto);
    reply.bulk(b"id");
    reply.integer(ctx.conn.id as i64);
    for (key, value) in [("mode", mode), ("role", role)] {
        reply.bulk(key.as_bytes());
        reply.bulk(value.as_bytes());
    }
    reply.bulk(b"modules");
    reply.array(0);
    Ok(())
}

/// HELLO's `AUTH user password`. Unlike the AUTH command, it succeeds for
/// the default user of a node without a password, as Redis's ACL check does
/// (that user has `nopass`): clients that always send credentials with
/// HELLO connect.
fn hello_auth(ctx: &mut Ctx<'_>, user: &[u8], password: &[u8]) -> CmdResult {
    if ctx.shared.config.requirepass.is_some() {
        return check_password(ctx, Some(user), password);
    }
    if user == b"default" {
        ctx.conn.authenticated = true;
        Ok(())
    } else {
        Err(CmdError::Other(
            "WRONGPASS invalid username-password pair or user is disabled.".into(),
        ))
    }
}

/// The error for commands sent before AUTH.
pub fn noauth() -> CmdError {
    CmdError::Other("NOAUTH Authentication required.".into())
}

pub fn select(_ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    match ArgCursor::new(args).next_int()? {
        0 => {
            reply.ok();
            Ok(())
        }
        _ => Err(CmdError::Other("ERR DB index is out of range".into())),
    }
}

pub use super::parse::unknown_subcommand;

/// `COMMAND`, `COMMAND COUNT`, `COMMAND INFO name...`, `COMMAND DOCS`.
pub fn command(_ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    if args.len() == 1 {
        reply.array(COMMANDS.len());
        COMMANDS.iter().for_each(|spec| command_info(spec, reply));
        return Ok(());
    }
    let mut cursor = ArgCursor::new(args);
    match cursor.next_keyword()?.as_bytes() {
        b"COUNT" => reply.integer(COMMANDS.len() as i64),
        b"INFO" => {
            reply.array(cursor.remaining());
            while cursor.remaining() > 0 {
                match super::lookup(cursor.next_bytes()?) {
                    Some(command) => command_info(command.info, reply),
                    None => reply.null(),
                }
            }
        }
        // Documentation is optional for clients; redis-cli copes with none.
        // (A map from command name to its documentation, in RESP3.)
        b"DOCS" => reply.map(0),
        _ => return Err(unknown_subcommand(args, "COMMAND")),
    }
    Ok(())
}

/// One command's description in Redis 7's COMMAND INFO shape: flags,
/// ACL categories, tips, key specifications and subcommands are sets in
/// RESP3, as Redis sends them.
fn command_info(spec: &CommandInfo, reply: &mut Reply<'_>) {
    reply.array(10);
    reply.bulk(spec.name.as_bytes());
    reply.integer(i64::from(spec.arity));
    reply.set(spec.flags.reported_names().count());
    spec.flags
        .reported_names()
        .for_each(|flag| reply.simple(flag.as_bytes()));
    reply.integer(i64::from(spec.first_key));
    reply.integer(i64::from(spec.last_key));
    reply.integer(i64::from(spec.step));
    reply.set(0); // ACL categories
    reply.set(0); // tips
    reply.set(0); // key specifications
    reply.set(0); // subcommands
}

/// `CONFIG GET pattern...`, `CONFIG SET name value [name value ...]` and
/// `CONFIG RESETSTAT`, over the table of settings in [`crate::runtime`].
pub fn config(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let mut cursor = ArgCursor::new(args);
    match cursor.next_keyword()?.as_bytes() {
        b"GET" => {
            if cursor.remaining() == 0 {
                return Err(CmdError::WrongArity("config|get".into()));
            }
            let mut matches: Vec<&runtime::Setting> = Vec::new();
            while cursor.remaining() > 0 {
                let pattern = cursor.next_bytes()?;
                for setting in runtime::SETTINGS {
                    let new = !matches.iter().any(|s| s.name == setting.name);
                    if new && glob_match(pattern, setting.name.as_bytes()) {
                        matches.push(setting);
                    }
                }
            }
            reply.map(matches.len());
            for setting in matches {
                reply.bulk(setting.name.as_bytes());
                reply.bulk(setting.value(ctx.shared.settings()).as_bytes());
            }
        }
        b"SET" => {
            if cursor.remaining() == 0 || !cursor.remaining().is_multiple_of(2) {
                return Err(CmdError::WrongArity("config|set".into()));
            }
            let mut pairs = Vec::with_capacity(cursor.remaining() / 2);
            while cursor.remaining() > 0 {
                let name = String::from_utf8_lossy(cursor.next_bytes()?);
                let value = String::from_utf8_lossy(cursor.next_bytes()?);
                pairs.push((name, value));
            }
            let pairs: Vec<(&str, &str)> = pairs.iter().map(|(n, v)| (&**n, &**v)).collect();
            runtime::set_all(ctx.shared.settings(), &pairs)
                .map_err(|err| CmdError::Other(err.to_string()))?;
            reply.ok();
        }
        b"RESETSTAT" => {
            cursor.finish()?;
            let stats = &ctx.shared.stats;
            for counter in [
                &stats.connections_received,
                &stats.rejected_connections,
                &stats.commands_processed,
            ] {
                counter.store(0, Ordering::Relaxed);
            }
            // This connection's commands not yet added to the total.
            ctx.conn.commands = 0;
            ctx.shared.store.reset_stats();
            reply.ok();
        }
        _ => return Err(unknown_subcommand(args, "CONFIG")),
    }
    Ok(())
}

impl From<OutOfMemory> for CmdError {
    fn from(err: OutOfMemory) -> Self {
        CmdError::Other(err.to_string())
    }
}

/// Glob matching for CONFIG GET patterns: `*`, `?` and literal bytes,
/// case-insensitive as Redis matches configuration names.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| glob_match(rest, &text[skip..])),
        Some((&p, rest)) => match text.split_first() {
            Some((&t, text_rest)) if p == b'?' || p.eq_ignore_ascii_case(&t) => {
                glob_match(rest, text_rest)
            }
            _ => false,
        },
    }
}

/// `INFO [section ...]`: server, clients, memory, stats, replication,
/// keyspace, cluster.
pub fn info(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let wanted: Vec<String> = args
        .iter()
        .skip(1)
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    let all = wanted.is_empty()
        || wanted
            .iter()
            .any(|w| w == "all" || w == "everything" || w == "default");
    let include = |section: &str| all || wanted.iter().any(|w| w == section);

    let shared = ctx.shared;
    let stats = &shared.stats;
    let store = shared.store.stats();
    let mut text = String::new();
    if include("server") {
        let uptime = shared.started.elapsed().as_secs();
        let _ = write!(
            text,
            "# Server\r\nkeycafe_version:{KEYCAFE_VERSION}\r\nredis_version:{REDIS_COMPAT_VERSION}\r\n\
             redis_mode:cluster\r\nos:{}\r\narch_bits:{}\r\nprocess_id:{}\r\nrun_id:{}\r\n\
             tcp_port:{}\r\nuptime_in_seconds:{uptime}\r\nuptime_in_days:{}\r\n\r\n",
            std::env::consts::OS,
            usize::BITS,
            std::process::id(),
            shared.node_id,
            shared.config.service_port,
            uptime / 86_400,
        );
    }
    if include("clients") {
        let _ = write!(
            text,
            "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:{}\r\n\r\n",
            stats.connected_clients.load(Ordering::Relaxed),
            shared.runtime.maxclients(),
            shared.clients.blocked(),
        );
    }
    if include("memory") {
        text.push_str(&info_memory(shared, &store));
    }
    if include("stats") {
        let _ = write!(
            text,
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\n\
             rejected_connections:{}\r\nexpired_keys:{}\r\nevicted_keys:{}\r\n\
             keyspace_hits:{}\r\nkeyspace_misses:{}\r\n{}\r\n",
            stats.connections_received.load(Ordering::Relaxed),
            stats.commands_processed.load(Ordering::Relaxed) + ctx.conn.commands,
            stats.rejected_connections.load(Ordering::Relaxed),
            store.expired_keys,
            store.evicted_keys,
            store.keyspace_hits,
            store.keyspace_misses,
            super::replication::info_stats(ctx),
        );
    }
    if include("replication") {
        text.push_str(&super::replication::info_section(ctx));
    }
    if include("cluster") {
        text.push_str("# Cluster\r\ncluster_enabled:1\r\n\r\n");
    }
    if include("keyspace") {
        text.push_str("# Keyspace\r\n");
        if store.keys > 0 {
            let _ = write!(
                text,
                "db0:keys={},expires={},avg_ttl=0\r\n",
                store.keys, store.volatile_keys
            );
        }
        text.push_str("\r\n");
    }
    // A blank line separates sections; the last ends with its last line's
    // CRLF, as in Redis, so that two replies printed back to back do not
    // run together.
    let text = text.strip_suffix("\r\n").unwrap_or(&text);
    reply.verbatim(b"txt", text.as_bytes());
    Ok(())
}

/// INFO's memory section, with Redis's field names. `used_memory` is what
/// `maxmemory` is compared with: the store's exact bytes plus client buffers
/// and the replication backlog (see `docs/memory.md`).
fn info_memory(shared: &crate::state::Shared, store: &crate::store::StoreStats) -> String {
    let memory = shared.memory();
    let used = store.used_bytes + memory.outside_store();
    let rss = resident_memory_bytes().unwrap_or(0);
    let maxmemory = shared.runtime.maxmemory();
    let fragmentation = match used {
        0 => 0.0,
        used => rss as f64 / used as f64,
    };
    format!(
        "# Memory\r\nused_memory:{used}\r\nused_memory_human:{}\r\n\
         used_memory_rss:{rss}\r\nused_memory_rss_human:{}\r\n\
         used_memory_dataset:{}\r\nmem_clients_normal:{}\r\n\
         mem_replication_backlog:{}\r\nmaxmemory:{maxmemory}\r\nmaxmemory_human:{}\r\n\
         maxmemory_policy:{}\r\nmaxmemory_samples:{}\r\n\
         mem_fragmentation_ratio:{fragmentation:.2}\r\nmem_allocator:libc\r\n\r\n",
        human_bytes(used as u64),
        human_bytes(rss),
        store.used_bytes,
        memory.client_buffers(),
        memory.backlog(),
        human_bytes(maxmemory as u64),
        shared.store.policy().name(),
        shared.store.samples(),
    )
}

/// The process's resident set size, from /proc on Linux.
fn resident_memory_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "K", "M", "G"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.2}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_is_eq() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn glob() {
        assert!(glob_match(b"*", b"save"));
        assert!(glob_match(b"max*", b"maxclients"));
        assert!(glob_match(b"SAVE", b"save"));
        assert!(glob_match(b"s?ve", b"save"));
        assert!(!glob_match(b"max", b"maxclients"));
    }
}
