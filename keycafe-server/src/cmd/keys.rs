//! Commands on keys regardless of their value: DEL (also DELETE and UNLINK),
//! EXISTS, the expiry family (EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT, TTL, PTTL,
//! PERSIST), OBJECT, DBSIZE and FLUSHALL/FLUSHDB.
//!
//! The expiry commands follow Redis 7 closely, because clients rely on the
//! details: a time in the past deletes the key (and still answers 1), NX/XX/
//! GT/LT compare against the current deadline with "no deadline" meaning
//! infinity, and the arithmetic that turns seconds into an absolute
//! millisecond time is checked, so `EXPIRE k 9223372036854775807` is an
//! error, not a wrap-around. The expire options of the string commands (SET
//! EX, GETEX PXAT, ...) are parsed here too, by `ExpireArg`, so that all
//! time arithmetic lives in one file.

use keycafe_core::{Args, Reply};

use super::parse::parse_int;
use super::{ArgCursor, CmdError, CmdResult, Ctx};
use crate::store::Ttl;

/// `DEL key [key ...]`: how many of the keys existed.
pub fn del(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let now = ctx.now_ms();
    let removed = args
        .skip(1)
        .iter()
        .filter(|key| ctx.store().remove(key, now))
        .count();
    reply.integer(count(removed));
    Ok(())
}

/// `EXISTS key [key ...]`: how many of the keys exist, a repeated key counting
/// each time.
pub fn exists(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let now = ctx.now_ms();
    let found = args
        .skip(1)
        .iter()
        .filter(|key| ctx.store().read(key, now, |entry| entry.exists()))
        .count();
    reply.integer(count(found));
    Ok(())
}

/// The unit of an expire time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unit {
    Seconds,
    Millis,
}

/// An expire option of SET, SETEX, PSETEX or GETEX (`EX 10`, `PXAT
/// 1700000000000`, ...) as given: Redis reports syntax errors before it looks
/// at the number, so the number is read only when the command is applied.
/// Unlike EXPIRE's, these times must be positive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ExpireArg<'a> {
    pub raw: &'a [u8],
    pub unit: Unit,
    /// EXAT/PXAT: a Unix time rather than a duration.
    pub absolute: bool,
}

impl<'a> ExpireArg<'a> {
    /// Parses `EX`, `PX`, `EXAT` or `PXAT` and the number after it. Redis
    /// lets an option repeat (the last one wins) but not mix with another
    /// kind, `previous` being the one seen before.
    pub fn from_keyword(
        keyword: &[u8],
        previous: Option<Self>,
        cursor: &mut ArgCursor<'a>,
    ) -> CmdResult<Self> {
        let (unit, absolute) = match keyword {
            b"EX" => (Unit::Seconds, false),
            b"PX" => (Unit::Millis, false),
            b"EXAT" => (Unit::Seconds, true),
            b"PXAT" => (Unit::Millis, true),
            _ => return Err(CmdError::Syntax),
        };
        if previous.is_some_and(|p| (p.unit, p.absolute) != (unit, absolute)) {
            return Err(CmdError::Syntax);
        }
        Ok(ExpireArg {
            raw: cursor.next_bytes()?,
            unit,
            absolute,
        })
    }

    /// The deadline in ms since the Unix epoch, with Redis's checks: the
    /// number must be positive, and neither the unit conversion nor adding
    /// `now` may overflow. `command` names the command in the error.
    pub fn deadline(&self, now: u64, command: &str) -> CmdResult<u64> {
        let invalid = || CmdError::InvalidExpireTime(command.to_string());
        let n = parse_int(self.raw)?;
        if n <= 0 {
            return Err(invalid());
        }
        let ms = match self.unit {
            Unit::Seconds => n.checked_mul(1000).ok_or_else(invalid)?,
            Unit::Millis => n,
        };
        let ms = ms as u64; // positive, checked above
        let deadline = if self.absolute {
            ms
        } else {
            now.checked_add(ms).ok_or_else(invalid)?
        };
        if deadline > i64::MAX as u64 {
            return Err(invalid());
        }
        Ok(deadline)
    }
}

/// EXPIRE's optional conditions; GT and LT treat "no deadline" as infinite.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Conditions {
    /// Only if the key has no deadline.
    nx: bool,
    /// Only if the key has a deadline.
    xx: bool,
    /// Only if the new deadline is later.
    gt: bool,
    /// Only if the new deadline is earlier.
    lt: bool,
}

/// `EXPIRE / PEXPIRE / EXPIREAT / PEXPIREAT key time [NX | XX | GT | LT]`
#[derive(Debug, PartialEq, Eq)]
struct Expire<'a> {
    /// The command's name, lower-case, for error messages.
    command: &'static str,
    key: &'a [u8],
    /// The time argument, read only after the options (as Redis does, so
    /// that option errors win).
    time: &'a [u8],
    unit: Unit,
    /// EXPIREAT/PEXPIREAT: a Unix time rather than a duration.
    absolute: bool,
    conditions: Conditions,
}

impl<'a> Expire<'a> {
    fn parse(
        args: Args<'a>,
        command: &'static str,
        unit: Unit,
        absolute: bool,
    ) -> CmdResult<Expire<'a>> {
        let mut cursor = ArgCursor::new(args);
        let key = cursor.next_bytes()?;
        let time = cursor.next_bytes()?;
        let mut conditions = Conditions::default();
        while cursor.remaining() > 0 {
            let option = cursor.next_bytes()?;
            match super::Keyword::new(option).as_bytes() {
                b"NX" => conditions.nx = true,
                b"XX" => conditions.xx = true,
                b"GT" => conditions.gt = true,
                b"LT" => conditions.lt = true,
                _ => {
                    let option = String::from_utf8_lossy(option);
                    return Err(CmdError::Other(format!("ERR Unsupported option {option}")));
                }
            }
        }
        if conditions.nx && (conditions.xx || conditions.gt || conditions.lt) {
            return Err(CmdError::Other(
                "ERR NX and XX, GT or LT options at the same time are not compatible".into(),
            ));
        }
        if conditions.gt && conditions.lt {
            return Err(CmdError::Other(
                "ERR GT and LT options at the same time are not compatible".into(),
            ));
        }
        Ok(Expire {
            command,
            key,
            time,
            unit,
            absolute,
            conditions,
        })
    }

    /// The new deadline in ms since the Unix epoch; may be in the past or
    /// negative (which deletes the key), never an overflowed value.
    fn deadline(&self, now: u64) -> CmdResult<i64> {
        let invalid = || CmdError::InvalidExpireTime(self.command.to_string());
        let time = parse_int(self.time)?;
        let ms = match self.unit {
            Unit::Seconds => time.checked_mul(1000).ok_or_else(invalid)?,
            Unit::Millis => time,
        };
        let base = if self.absolute {
            0
        } else {
            i64::try_from(now).map_err(|_| invalid())?
        };
        ms.checked_add(base).ok_or_else(invalid)
    }

    fn apply(self, ctx: &mut Ctx<'_>, reply: &mut Reply<'_>) -> CmdResult {
        let now = ctx.now_ms();
        let when = self.deadline(now)?;
        let Conditions { nx, xx, gt, lt } = self.conditions;
        let changed = ctx.store().entry(self.key, now, |entry| {
            if !entry.exists() {
                return false;
            }
            let current = entry
                .deadline()
                .map(|d| i64::try_from(d).unwrap_or(i64::MAX));
            let refused = match current {
                None => xx || gt,
                Some(current) => nx || (gt && when <= current) || (lt && when >= current),
            };
            if refused {
                return false;
            }
            // Not in the future (including negative): the key is deleted.
            match u64::try_from(when) {
                Ok(when) if when > now => entry.set_deadline(Some(when)),
                _ => entry.remove(),
            }
        });
        reply.integer(i64::from(changed));
        Ok(())
    }
}

/// `EXPIRE key seconds [NX | XX | GT | LT]`
pub fn expire(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    Expire::parse(args, "expire", Unit::Seconds, false)?.apply(ctx, reply)
}

/// `PEXPIRE key milliseconds [NX | XX | GT | LT]`
pub fn pexpire(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    Expire::parse(args, "pexpire", Unit::Millis, false)?.apply(ctx, reply)
}

/// `EXPIREAT key unix-seconds [NX | XX | GT | LT]`
pub fn expireat(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    Expire::parse(args, "expireat", Unit::Seconds, true)?.apply(ctx, reply)
}

/// `PEXPIREAT key unix-milliseconds [NX | XX | GT | LT]`
pub fn pexpireat(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    Expire::parse(args, "pexpireat", Unit::Millis, true)?.apply(ctx, reply)
}

/// TTL and PTTL: -2 if the key is missing, -1 if it has no deadline, else
/// the time left (seconds rounded to nearest, or milliseconds).
fn time_to_live(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>, unit: Unit) -> CmdResult {
    let mut cursor = ArgCursor::new(args);
    let key = cursor.next_bytes()?;
    cursor.finish()?;
    let ttl = ctx.store().read(key, ctx.now_ms(), |entry| entry.ttl());
    reply.integer(match ttl {
        Ttl::Missing => -2,
        Ttl::Persistent => -1,
        Ttl::Remaining(ms) => {
            let ms = i64::try_from(ms).unwrap_or(i64::MAX);
            match unit {
                Unit::Millis => ms,
                Unit::Seconds => ms.saturating_add(500) / 1000,
            }
        }
    });
    Ok(())
}

/// `TTL key`
pub fn ttl(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    time_to_live(ctx, args, reply, Unit::Seconds)
}

/// `PTTL key`
pub fn pttl(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    time_to_live(ctx, args, reply, Unit::Millis)
}

/// `PERSIST key`: 1 if a deadline was removed, 0 if the key is missing or had
/// none.
pub fn persist(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let mut cursor = ArgCursor::new(args);
    let key = cursor.next_bytes()?;
    cursor.finish()?;
    let persisted = ctx.store().entry(key, ctx.now_ms(), |entry| {
        entry.deadline().is_some() && entry.set_deadline(None)
    });
    reply.integer(i64::from(persisted));
    Ok(())
}

/// Lines of `OBJECT HELP`.
const OBJECT_HELP: [&str; 10] = [
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
];

/// The text Redis adds to both OBJECT errors about the policy.
const POLICY_SWITCH_NOTE: &str = "Please note that when switching between policies at runtime \
     LRU and LFU data will take some time to adjust.";

/// `OBJECT ENCODING | FREQ | IDLETIME | REFCOUNT key` and `OBJECT HELP`.
/// Looking a key up this way does not count as an access. FREQ needs an LFU
/// policy and IDLETIME any other, since a key keeps one history or the
/// other (see `store/access.rs`).
pub fn object(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let mut cursor = ArgCursor::new(args);
    let sub = cursor.next_keyword()?;
    let name = match sub.as_bytes() {
        b"HELP" => {
            cursor.finish()?;
            reply.array(OBJECT_HELP.len() + 2);
            for line in OBJECT_HELP.iter().chain(&["HELP", "    Print this help."]) {
                reply.simple(line.as_bytes());
            }
            return Ok(());
        }
        b"ENCODING" => "encoding",
        b"FREQ" => "freq",
        b"IDLETIME" => "idletime",
        b"REFCOUNT" => "refcount",
        _ => return Err(super::server::unknown_subcommand(args, "OBJECT")),
    };
    if args.len() != 3 {
        return Err(CmdError::WrongArity(format!("object|{name}")));
    }
    let key = cursor.next_bytes()?;
    let Some(info) = ctx.store().object(key, ctx.now_ms()) else {
        reply.null();
        return Ok(());
    };
    match name {
        "encoding" => reply.bulk(info.encoding.as_bytes()),
        // Keycafe shares no values between keys.
        "refcount" => reply.integer(1),
        "freq" => match info.frequency {
            Some(frequency) => reply.integer(i64::from(frequency)),
            None => {
                return Err(CmdError::Other(format!(
                    "ERR An LFU maxmemory policy is not selected, access frequency not tracked. \
                     {POLICY_SWITCH_NOTE}"
                )));
            }
        },
        _ => match info.idle_ms {
            Some(idle) => reply.integer(i64::try_from(idle / 1000).unwrap_or(i64::MAX)),
            None => {
                return Err(CmdError::Other(format!(
                    "ERR An LFU maxmemory policy is selected, idle time not tracked. \
                     {POLICY_SWITCH_NOTE}"
                )));
            }
        },
    }
    Ok(())
}

/// `DBSIZE`: the number of keys.
pub fn dbsize(ctx: &mut Ctx<'_>, _args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    reply.integer(count(ctx.store().len(ctx.now_ms())));
    Ok(())
}

/// `FLUSHALL / FLUSHDB [ASYNC | SYNC]`: deletes every key. Both modes do the
/// same thing: the store already frees memory outside its locks.
pub fn flushall(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let mut cursor = ArgCursor::new(args);
    if cursor.remaining() > 0 {
        match cursor.next_keyword()?.as_bytes() {
            b"ASYNC" | b"SYNC" => {}
            _ => return Err(CmdError::Syntax),
        }
    }
    cursor.finish()?;
    ctx.store().flush_all();
    reply.ok();
    Ok(())
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use crate::cmd::strings::harness::*;
    use crate::store::{Expiry, now_ms};

    const NX_CONFLICT: &str = "ERR NX and XX, GT or LT options at the same time are not compatible";

    #[test]
    fn del_and_exists() {
        Node::new().script(&[
            ("MSET a 1 b 2 c 3", ok()),
            ("EXISTS a a b x", int(3)),
            ("DEL a x a", int(1)),
            ("DELETE b", int(1)),
            ("UNLINK c b", int(1)),
            ("EXISTS a b c", int(0)),
            (
                "DEL",
                err("ERR wrong number of arguments for 'del' command"),
            ),
        ]);
    }

    #[test]
    fn expire_ttl_persist() {
        let mut node = Node::new();
        node.script(&[
            ("EXPIRE k 10", int(0)),
            ("TTL k", int(-2)),
            ("PTTL k", int(-2)),
            ("SET k v", ok()),
            ("TTL k", int(-1)),
            ("PERSIST k", int(0)),
            ("EXPIRE k 100", int(1)),
            ("TTL k", int(100)),
            ("PEXPIRE k 1500", int(1)),
            // 1.5 s left rounds to 2, as Redis's (ms + 500) / 1000 does.
            ("TTL k", int(2)),
            ("PERSIST k", int(1)),
            ("TTL k", int(-1)),
            ("PERSIST missing", int(0)),
        ]);
        assert_eq!(node.run("PEXPIRE k 1500"), int(1));
        let pttl = as_int(node.run("PTTL k"));
        assert!((1_400..=1_500).contains(&pttl), "{pttl}");
        let at = now_ms() / 1000 + 60;
        assert_eq!(node.run(&format!("EXPIREAT k {at}")), int(1));
        assert!((59..=60).contains(&as_int(node.run("TTL k"))));
        assert_eq!(
            node.run(&format!("PEXPIREAT k {}", now_ms() + 9_000)),
            int(1)
        );
        assert!((8..=9).contains(&as_int(node.run("TTL k"))));
    }

    #[test]
    fn expire_in_the_past_deletes() {
        Node::new().script(&[
            ("SET k v", ok()),
            ("EXPIRE k 0", int(1)),
            ("EXISTS k", int(0)),
            ("SET k v", ok()),
            ("PEXPIRE k -100", int(1)),
            ("GET k", null()),
            ("SET k v", ok()),
            ("EXPIREAT k 1", int(1)),
            ("GET k", null()),
            ("SET k v", ok()),
            ("PEXPIREAT k -9223372036854775808", int(1)),
            ("GET k", null()),
            ("EXPIRE k -1", int(0)),
        ]);
    }

    #[test]
    fn expire_conditions() {
        Node::new().script(&[
            ("SET k v", ok()),
            // No deadline counts as infinite.
            ("EXPIRE k 100 XX", int(0)),
            ("EXPIRE k 100 GT", int(0)),
            ("EXPIRE k 100 LT", int(1)),
            ("EXPIRE k 200 NX", int(0)),
            ("EXPIRE k 200 LT", int(0)),
            ("EXPIRE k 50 LT", int(1)),
            ("TTL k", int(50)),
            // Not greater (the clock may have moved a millisecond since,
            // so not 50: that would be a later deadline).
            ("EXPIRE k 40 GT", int(0)),
            ("EXPIRE k 80 XX GT", int(1)),
            ("TTL k", int(80)),
            ("EXPIRE k 90 xx lt", int(0)),
            ("PERSIST k", int(1)),
            ("EXPIRE k 90 nx", int(1)),
            ("TTL k", int(90)),
            ("EXPIRE missing 10 NX", int(0)),
        ]);
    }

    #[test]
    fn expire_errors() {
        let invalid = "ERR invalid expire time in 'expire' command";
        let mut node = Node::new();
        node.script(&[
            ("SET k v", ok()),
            ("EXPIRE k 10 NX XX", err(NX_CONFLICT)),
            ("EXPIRE k 10 NX GT", err(NX_CONFLICT)),
            ("EXPIRE k 10 LT NX", err(NX_CONFLICT)),
            (
                "EXPIRE k 10 GT LT",
                err("ERR GT and LT options at the same time are not compatible"),
            ),
            ("EXPIRE k 10 FOO", err("ERR Unsupported option FOO")),
            // Options are checked before the number.
            ("EXPIRE k abc NX XX", err(NX_CONFLICT)),
            (
                "EXPIRE k abc",
                err("ERR value is not an integer or out of range"),
            ),
            ("EXPIRE k 9223372036854775807", err(invalid)),
            ("EXPIRE k -9223372036854775807", err(invalid)),
            (
                "PEXPIRE k 9223372036854775807",
                err("ERR invalid expire time in 'pexpire' command"),
            ),
            (
                "EXPIREAT k 9223372036854775807",
                err("ERR invalid expire time in 'expireat' command"),
            ),
            ("PEXPIREAT k 9223372036854775807", int(1)),
            (
                "EXPIRE k",
                err("ERR wrong number of arguments for 'expire' command"),
            ),
        ]);
        // The largest deadline there is, reported without overflow.
        assert!(as_int(node.run("TTL k")) > i64::MAX / 1000 - now_ms() as i64 / 1000 - 2);
    }

    #[test]
    fn expired_keys_are_invisible_to_every_command() {
        let mut node = Node::new();
        // Deadline 1 ms after the epoch, long past by the real clock.
        node.store().set(b"k", b"5", 0, Expiry::At(1)).unwrap();
        node.store().set(b"j", b"5", 0, Expiry::At(1)).unwrap();
        node.script(&[
            ("EXISTS k j", int(0)),
            ("TTL k", int(-2)),
            ("DBSIZE", int(0)),
            ("INCR j", int(1)),
            ("TTL j", int(-1)),
        ]);
    }

    #[test]
    fn dbsize_and_flushall() {
        Node::new().script(&[
            ("DBSIZE", int(0)),
            ("MSET a 1 b 2 c 3", ok()),
            ("SET d 4 EX 100", ok()),
            ("DBSIZE", int(4)),
            ("FLUSHALL", ok()),
            ("DBSIZE", int(0)),
            ("SET a 1", ok()),
            ("FLUSHDB async", ok()),
            ("FLUSHALL SYNC", ok()),
            ("FLUSHALL LAZY", err("ERR syntax error")),
            ("FLUSHALL ASYNC SYNC", err("ERR syntax error")),
            ("GET a", null()),
        ]);
    }
}
