//! Connection and server commands: PING, ECHO, AUTH, QUIT, HELLO, SELECT,
//! CONFIG. (CLIENT is [`super::client`], COMMAND [`super::command`],
//! INFO [`super::info`].)
//!
//! Most of these exist so that redis-cli, redis-benchmark and Redis client
//! libraries find what they probe for when they connect; they answer with
//! Keycafe's real state wherever there is one.

use std::sync::atomic::Ordering;

use keycafe_core::glob::Glob;
use keycafe_core::{Args, Protocol, Reply};

use super::{ArgCursor, CmdError, CmdResult, Ctx, Keyword};
use crate::runtime;
use crate::store::OutOfMemory;

/// The version reported to clients (`redis_version` keeps Redis clients that
/// check for feature support happy).
pub const KEYCAFE_VERSION: &str = env!("CARGO_PKG_VERSION");
pub const REDIS_COMPAT_VERSION: &str = "7.2.0";

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

/// `CONFIG GET pattern [pattern ...]`, `CONFIG SET name value [name value
/// ...]`, `CONFIG RESETSTAT` and `CONFIG HELP`, over the table of settings
/// in [`crate::runtime`]. Patterns are Redis's globs, matched without
/// regard to case; a setting that several patterns match is listed once.
/// (The subcommand and its number of arguments were checked by `execute`
/// against the table.)
pub fn config(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let mut cursor = ArgCursor::new(args);
    match cursor.next_keyword()?.as_bytes() {
        b"GET" => {
            let mut matches: Vec<&runtime::Setting> = Vec::new();
            while cursor.remaining() > 0 {
                let glob = Glob::new(cursor.next_bytes()?);
                for setting in runtime::SETTINGS {
                    let new = !matches.iter().any(|s| s.name == setting.name);
                    if new && glob.matches_nocase(setting.name) {
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
            if !cursor.remaining().is_multiple_of(2) {
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
            let stats = &ctx.shared.stats;
            for counter in [
                &stats.connections_received,
                &stats.rejected_connections,
                &stats.commands_processed,
            ] {
                counter.store(0, Ordering::Relaxed);
            }
            // This connection's commands not yet added to the totals.
            ctx.conn.commands = 0;
            ctx.conn.stats.clear();
            ctx.shared.command_stats.reset();
            ctx.shared.store.reset_stats();
            reply.ok();
        }
        b"HELP" => super::help(reply, "CONFIG", CONFIG_HELP),
        _ => return Err(unknown_subcommand(args, "CONFIG")),
    }
    Ok(())
}

const CONFIG_HELP: &[&str] = &[
    "GET <pattern> [<pattern> ...]",
    "    Return the settings matching the glob-like patterns, and their values.",
    "SET <directive> <value> [<directive> <value> ...]",
    "    Set each <directive> to its <value>: all of them, or none if one is refused.",
    "RESETSTAT",
    "    Reset the statistics reported by the INFO command.",
    "HELP",
    "    Print this help.",
];

impl From<OutOfMemory> for CmdError {
    fn from(err: OutOfMemory) -> Self {
        CmdError::Other(err.to_string())
    }
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
}
