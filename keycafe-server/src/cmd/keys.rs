//! Commands on keys regardless of their value: DEL (also DELETE and UNLINK),
//! EXISTS, TYPE, TOUCH, the expiry family (EXPIRE, PEXPIRE, EXPIREAT,
//! PEXPIREAT, TTL, PTTL, EXPIRETIME, PEXPIRETIME, PERSIST) and TIME, the
//! clock it measures against, the introspection of one key (OBJECT, MEMORY),
//! DBSIZE and FLUSHALL/FLUSHDB.
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

use std::time::{SystemTime, UNIX_EPOCH};

use super::parse::parse_int;
use super::{ArgCursor, CmdError, CmdResult, Ctx};
use crate::store::{Rank, Ttl};

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

/// `TYPE key`: `string`, the only type there is, or `none`. Does not count
/// as an access to the key.
pub fn type_of(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let key = ArgCursor::new(args).next_bytes()?;
    match ctx.store().contains(key, ctx.now_ms()) {
        true => reply.simple(b"string"),
        false => reply.simple(b"none"),
    }
    Ok(())
}

/// `TOUCH key [key ...]`: how many of the keys exist, each counted as
/// accessed (for eviction), a repeated key counting each time.
pub fn touch(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    exists(ctx, args, reply)
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

/// EXPIRETIME and PEXPIRETIME: -2 if the key is missing, -1 if it has no
/// deadline, else the deadline as a Unix time (seconds rounded to nearest,
/// or milliseconds).
fn expire_time(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>, unit: Unit) -> CmdResult {
    let key = ArgCursor::new(args).next_bytes()?;
    let state = ctx.store().read(key, ctx.now_ms(), |entry| {
        (entry.exists(), entry.deadline())
    });
    reply.integer(match state {
        (false, _) => -2,
        (true, None) => -1,
        (true, Some(at)) => {
            let at = i64::try_from(at).unwrap_or(i64::MAX);
            match unit {
                Unit::Millis => at,
                Unit::Seconds => at.saturating_add(500) / 1000,
            }
        }
    });
    Ok(())
}

/// `EXPIRETIME key`
pub fn expiretime(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    expire_time(ctx, args, reply, Unit::Seconds)
}

/// `PEXPIRETIME key`
pub fn pexpiretime(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    expire_time(ctx, args, reply, Unit::Millis)
}

/// `TIME`: the node's clock, the one deadlines are measured against, as
/// Unix seconds and the microseconds within the second.
pub fn time(_ctx: &mut Ctx<'_>, _args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    reply.array(2);
    reply.bulk(since_epoch.as_secs().to_string().as_bytes());
    reply.bulk(since_epoch.subsec_micros().to_string().as_bytes());
    Ok(())
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

/// Lines of `OBJECT HELP`, before the line for HELP itself.
const OBJECT_HELP: [&str; 13] = [
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
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
];

/// The last lines of every HELP, in Redis 7.2's words (7.0 says "Prints").
const HELP_ON_HELP: [&str; 2] = ["HELP", "    Print this help."];

/// The reference count Redis reports for a value it shares between keys
/// (`OBJ_SHARED_REFCOUNT`, `INT_MAX`).
const SHARED_REFCOUNT: i64 = 2_147_483_647;

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
        b"HELP" if args.len() == 2 => {
            help(&OBJECT_HELP, reply);
            return Ok(());
        }
        b"HELP" => return Err(CmdError::WrongArity("object|help".into())),
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
        // Redis shares small integers between keys, but not under a policy
        // that keeps access history per key.
        "refcount" => {
            let shared = info.shared_integer
                && (ctx.shared.runtime.maxmemory() == 0
                    || ctx.store().policy().rank() != Rank::History);
            reply.integer(if shared { SHARED_REFCOUNT } else { 1 });
        }
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

/// Writes a HELP reply: `lines` (a heading, then the subcommands), then
/// the lines on HELP itself.
fn help(lines: &[&str], reply: &mut Reply<'_>) {
    reply.array(lines.len() + HELP_ON_HELP.len());
    for line in lines.iter().chain(&HELP_ON_HELP) {
        reply.simple(line.as_bytes());
    }
}

/// Lines of `MEMORY HELP`, before the line for HELP itself: Redis's, less
/// STATS, which Keycafe does not have (INFO memory has its figures).
const MEMORY_HELP: [&str; 10] = [
    "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DOCTOR",
    "    Return memory problems reports.",
    "MALLOC-STATS",
    "    Return internal statistics report from the memory allocator.",
    "PURGE",
    "    Attempt to purge dirty pages for reclamation by the allocator.",
    "USAGE <key> [SAMPLES <count>]",
    "    Return memory in bytes used by <key> and its value. Nested values are",
    "    sampled up to <count> times (default: 5, 0 means sample all).",
];

/// Below this, Redis's MEMORY DOCTOR declines to judge.
const DOCTOR_MIN_BYTES: usize = 5 * 1024 * 1024;

/// `MEMORY USAGE key [SAMPLES count]`, `MEMORY DOCTOR`, `MEMORY
/// MALLOC-STATS`, `MEMORY PURGE` and `MEMORY HELP`. USAGE counts what the
/// key really costs here (see `Store::memory_usage`), so its figures are
/// Keycafe's, not Redis's; SAMPLES is checked and needs nothing to sample,
/// a string having no nested values. Looking a key up does not count as an
/// access.
pub fn memory(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let mut cursor = ArgCursor::new(args);
    let sub = cursor.next_keyword()?;
    let (name, arity_ok) = match sub.as_bytes() {
        b"USAGE" => ("usage", args.len() >= 3),
        b"DOCTOR" => ("doctor", args.len() == 2),
        b"MALLOC-STATS" => ("malloc-stats", args.len() == 2),
        b"PURGE" => ("purge", args.len() == 2),
        b"HELP" => ("help", args.len() == 2),
        _ => return Err(super::server::unknown_subcommand(args, "MEMORY")),
    };
    if !arity_ok {
        return Err(CmdError::WrongArity(format!("memory|{name}")));
    }
    match name {
        "usage" => {
            let key = cursor.next_bytes()?;
            while cursor.remaining() > 0 {
                match cursor.next_keyword()?.as_bytes() {
                    b"SAMPLES" if cursor.remaining() > 0 => {
                        if cursor.next_int()? < 0 {
                            return Err(CmdError::Syntax);
                        }
                    }
                    _ => return Err(CmdError::Syntax),
                }
            }
            match ctx.store().memory_usage(key, ctx.now_ms()) {
                Some(bytes) => reply.integer(count(bytes)),
                None => reply.null(),
            }
        }
        "doctor" => {
            // Redis's wording. Keycafe has none of the conditions Redis's
            // doctor looks for (fragmentation, a peak far above use, big
            // client buffers it cannot account for) to report.
            let text: &[u8] = if ctx.shared.memory().used() < DOCTOR_MIN_BYTES {
                b"Hi Sam, this instance is empty or is using very little memory, my issues \
                  detector can't be used in these conditions. Please, leave for your mission \
                  on Earth and fill it with some data. The new Sam and I will be back to our \
                  programming as soon as I finished rebooting."
            } else {
                b"Hi Sam, I can't find any memory issue in your instance. I can only account \
                  for what occurs on this base."
            };
            reply.verbatim(b"txt", text);
        }
        "malloc-stats" => reply.verbatim(b"txt", b"Stats not supported for the current allocator"),
        "purge" => reply.ok(),
        _ => help(&MEMORY_HELP, reply),
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
    use keycafe_core::Frame;

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
    fn type_and_touch() {
        let mut node = Node::new();
        node.store().set(b"gone", b"v", 0, Expiry::At(1)).unwrap();
        node.script(&[
            ("TYPE k", Frame::simple("none")),
            ("SET k v", ok()),
            ("TYPE k", Frame::simple("string")),
            ("TYPE gone", Frame::simple("none")),
            ("TOUCH k k nope gone", int(2)),
            (
                "TOUCH",
                err("ERR wrong number of arguments for 'touch' command"),
            ),
            (
                "TYPE k k",
                err("ERR wrong number of arguments for 'type' command"),
            ),
        ]);
    }

    #[test]
    fn expiretime_reports_the_deadline() {
        let mut node = Node::new();
        node.script(&[
            ("EXPIRETIME k", int(-2)),
            ("PEXPIRETIME k", int(-2)),
            ("SET k v", ok()),
            ("EXPIRETIME k", int(-1)),
            ("PEXPIRETIME k", int(-1)),
            ("PEXPIREAT k 33177080800499", int(1)),
            ("PEXPIRETIME k", int(33177080800499)),
            // Rounded to the nearest second, as Redis does.
            ("EXPIRETIME k", int(33177080800)),
            ("PEXPIREAT k 33177080800500", int(1)),
            ("EXPIRETIME k", int(33177080801)),
        ]);
    }

    #[test]
    fn time_is_the_clock_deadlines_use() {
        let mut node = Node::new();
        let before = now_ms();
        let Frame::Array(parts) = node.run("TIME") else {
            panic!("TIME answers an array");
        };
        let after = now_ms();
        let number = |frame: &Frame| match frame {
            Frame::Bulk(text) => std::str::from_utf8(text).unwrap().parse::<u64>().unwrap(),
            other => panic!("{other:?}"),
        };
        let (seconds, micros) = (number(&parts[0]), number(&parts[1]));
        assert!(micros < 1_000_000);
        let ms = seconds * 1000 + micros / 1000;
        assert!(
            (before..=after).contains(&ms),
            "{before} <= {ms} <= {after}"
        );
    }

    #[test]
    fn object_answers_like_redis() {
        let help = |node: &mut Node| match node.run("OBJECT HELP") {
            Frame::Array(lines) => lines.len(),
            other => panic!("{other:?}"),
        };
        let mut node = Node::new();
        assert_eq!(help(&mut node), 15);
        node.script(&[
            ("OBJECT ENCODING nope", null()),
            ("OBJECT REFCOUNT nope", null()),
            ("SET n 100", ok()),
            ("OBJECT ENCODING n", bulk("int")),
            // Redis shares the integers 0 to 9999 between keys.
            ("OBJECT REFCOUNT n", int(2147483647)),
            ("APPEND n 1", int(4)),
            ("OBJECT ENCODING n", bulk("raw")),
            ("OBJECT REFCOUNT n", int(1)),
            ("SET n 10000", ok()),
            ("OBJECT REFCOUNT n", int(1)),
            ("SET n -1", ok()),
            ("OBJECT REFCOUNT n", int(1)),
            ("SET n 0", ok()),
            ("OBJECT REFCOUNT n", int(2147483647)),
            ("SET s hello", ok()),
            ("OBJECT ENCODING s", bulk("embstr")),
            ("OBJECT IDLETIME s", int(0)),
            (
                "OBJECT HELP x",
                err("ERR wrong number of arguments for 'object|help' command"),
            ),
            (
                "OBJECT ENCODING",
                err("ERR wrong number of arguments for 'object|encoding' command"),
            ),
            (
                "OBJECT NOPE k",
                err("ERR unknown subcommand 'NOPE'. Try OBJECT HELP."),
            ),
            // Not under a policy that keeps history per key, with a limit.
            (
                "CONFIG SET maxmemory 1gb maxmemory-policy allkeys-lru",
                ok(),
            ),
            ("OBJECT REFCOUNT n", int(1)),
            ("CONFIG SET maxmemory-policy allkeys-random", ok()),
            ("OBJECT REFCOUNT n", int(2147483647)),
        ]);
    }

    #[test]
    fn memory_usage_and_friends() {
        let mut node = Node::new();
        node.script(&[
            ("MEMORY USAGE k", null()),
            ("SET k v", ok()),
            ("MEMORY USAGE k SAMPLES", err("ERR syntax error")),
            ("MEMORY USAGE k SAMPLES -1", err("ERR syntax error")),
            (
                "MEMORY USAGE k SAMPLES x",
                err("ERR value is not an integer or out of range"),
            ),
            ("MEMORY USAGE k FOO 1", err("ERR syntax error")),
            (
                "MEMORY USAGE",
                err("ERR wrong number of arguments for 'memory|usage' command"),
            ),
            (
                "MEMORY DOCTOR x",
                err("ERR wrong number of arguments for 'memory|doctor' command"),
            ),
            (
                "MEMORY STATS",
                err("ERR unknown subcommand 'STATS'. Try MEMORY HELP."),
            ),
            ("MEMORY PURGE", ok()),
            (
                "MEMORY",
                err("ERR wrong number of arguments for 'memory' command"),
            ),
        ]);
        let usage = |node: &mut Node, line: &str| as_int(node.run(line));
        let small = usage(&mut node, "MEMORY USAGE k");
        assert_eq!(usage(&mut node, "MEMORY USAGE k SAMPLES 0"), small);
        node.run(&format!("SET k {}", "x".repeat(1000)));
        assert!(usage(&mut node, "memory usage k") >= small + 990);
        assert!(
            matches!(node.run("MEMORY DOCTOR"), Frame::Bulk(text) if text.starts_with(b"Hi Sam"))
        );
        assert!(matches!(node.run("MEMORY HELP"), Frame::Array(lines) if lines.len() == 12));
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
