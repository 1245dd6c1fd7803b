//! String commands: GET, SET and its variants (GETSET among them), the
//! multi-key MGET/MSET/MSETNX, the counters (INCR, DECR, INCRBY, DECRBY,
//! INCRBYFLOAT), APPEND, STRLEN, and the byte ranges GETRANGE (SUBSTR) and
//! SETRANGE. The bit commands are in [`super::bits`], LCS in [`super::lcs`].
//!
//! Each command is parsed into a small struct first (all syntax errors are
//! found before anything is touched, as in Redis), then applied to the store
//! in one [`Store::entry`](crate::store::Store::entry) closure, so that a
//! read-modify-write such as `SET key value NX GET` or INCR is atomic. Values
//! are written into the reply from under the shard lock, never copied out,
//! and SETRANGE changes the stored value in place.
//!
//! INCRBYFLOAT computes in the 80-bit `long double` Redis uses, so that its
//! results have the same digits (see [`super::long_double`]). Like every
//! write it reaches replicas as the key's new value, never as "add 0.1", so a
//! replica cannot round differently from its primary.

use keycafe_core::{Args, Reply};

use std::ops::Range;

use super::keys::{ExpireArg, Unit};
use super::long_double::{LongDouble, Number};
use super::parse::parse_int;
use super::{ArgCursor, CmdError, CmdResult, Ctx};
use crate::store::{Expiry, MAX_STRING_LEN, StoreError};

impl From<StoreError> for CmdError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::TooLarge => CmdError::TooLarge,
        }
    }
}

/// The first argument after the command name: the key of one-key commands.
fn only_key(args: Args<'_>) -> CmdResult<&[u8]> {
    let mut cursor = ArgCursor::new(args);
    let key = cursor.next_bytes()?;
    cursor.finish()?;
    Ok(key)
}

/// `GET key`
pub fn get(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let key = only_key(args)?;
    ctx.store()
        .get_with(key, ctx.now_ms(), |value| reply.optional_bulk(value));
    Ok(())
}

/// When SET may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Condition {
    Always,
    /// NX
    IfAbsent,
    /// XX
    IfPresent,
}

/// What SET does with the key's time to live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetTtl<'a> {
    /// No option: a plain SET makes the key persistent.
    Clear,
    /// KEEPTTL
    Keep,
    Expire(ExpireArg<'a>),
}

/// `SET key value [NX | XX] [GET] [EX s | PX ms | EXAT ts | PXAT ts | KEEPTTL]`
#[derive(Debug, PartialEq, Eq)]
struct Set<'a> {
    key: &'a [u8],
    value: &'a [u8],
    condition: Condition,
    /// `GET`: reply with the old value instead of OK.
    get: bool,
    ttl: SetTtl<'a>,
}

impl<'a> Set<'a> {
    fn parse(args: Args<'a>) -> CmdResult<Set<'a>> {
        let mut cursor = ArgCursor::new(args);
        let mut set = Set {
            key: cursor.next_bytes()?,
            value: cursor.next_bytes()?,
            condition: Condition::Always,
            get: false,
            ttl: SetTtl::Clear,
        };
        // Repeating an option is allowed, contradicting one is not.
        while cursor.remaining() > 0 {
            let keyword = cursor.next_keyword()?;
            match (keyword.as_bytes(), set.condition, set.ttl) {
                (b"NX", Condition::Always | Condition::IfAbsent, _) => {
                    set.condition = Condition::IfAbsent
                }
                (b"XX", Condition::Always | Condition::IfPresent, _) => {
                    set.condition = Condition::IfPresent
                }
                (b"GET", _, _) => set.get = true,
                (b"KEEPTTL", _, SetTtl::Clear | SetTtl::Keep) => set.ttl = SetTtl::Keep,
                (word, _, SetTtl::Clear | SetTtl::Expire(_)) => {
                    let previous = match set.ttl {
                        SetTtl::Expire(previous) => Some(previous),
                        _ => None,
                    };
                    set.ttl = SetTtl::Expire(ExpireArg::from_keyword(word, previous, &mut cursor)?);
                }
                _ => return Err(CmdError::Syntax),
            }
        }
        Ok(set)
    }

    fn apply(self, ctx: &mut Ctx<'_>, reply: &mut Reply<'_>) -> CmdResult {
        let now = ctx.now_ms();
        let expiry = match self.ttl {
            SetTtl::Clear => Expiry::Persist,
            SetTtl::Keep => Expiry::Keep,
            SetTtl::Expire(expire) => Expiry::At(expire.deadline(now, "set")?),
        };
        ctx.store().entry(self.key, now, |entry| {
            let allowed = match self.condition {
                Condition::Always => true,
                Condition::IfAbsent => !entry.exists(),
                Condition::IfPresent => entry.exists(),
            };
            if self.get {
                // The old value, whether or not the write happens.
                reply.optional_bulk(entry.value());
            }
            if allowed {
                entry.set(self.value, expiry)?;
            }
            if !self.get {
                if allowed { reply.ok() } else { reply.null() }
            }
            Ok(())
        })
    }
}

/// `SET key value [options]`
pub fn set(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    Set::parse(args)?.apply(ctx, reply)
}

/// `SETNX key value`: 1 if the key was set, 0 if it existed.
pub fn setnx(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let mut cursor = ArgCursor::new(args);
    let (key, value) = (cursor.next_bytes()?, cursor.next_bytes()?);
    cursor.finish()?;
    let created = ctx
        .store()
        .entry(key, ctx.now_ms(), |entry| -> CmdResult<bool> {
            if entry.exists() {
                return Ok(false);
            }
            entry.set(value, Expiry::Persist)?;
            Ok(true)
        })?;
    reply.integer(i64::from(created));
    Ok(())
}

/// SETEX and PSETEX: a SET with a mandatory relative expire.
fn set_with_expire(
    ctx: &mut Ctx<'_>,
    args: Args<'_>,
    reply: &mut Reply<'_>,
    unit: Unit,
    command: &str,
) -> CmdResult {
    let mut cursor = ArgCursor::new(args);
    let key = cursor.next_bytes()?;
    let expire = ExpireArg {
        raw: cursor.next_bytes()?,
        unit,
        absolute: false,
    };
    let value = cursor.next_bytes()?;
    cursor.finish()?;
    let now = ctx.now_ms();
    let deadline = expire.deadline(now, command)?;
    ctx.store().set(key, value, now, Expiry::At(deadline))?;
    reply.ok();
    Ok(())
}

/// `SETEX key seconds value`
pub fn setex(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    set_with_expire(ctx, args, reply, Unit::Seconds, "setex")
}

/// `PSETEX key milliseconds value`
pub fn psetex(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    set_with_expire(ctx, args, reply, Unit::Millis, "psetex")
}

/// `GETDEL key`: the value, and the key is gone.
pub fn getdel(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let key = only_key(args)?;
    ctx.store().read(key, ctx.now_ms(), |entry| {
        reply.optional_bulk(entry.value());
        entry.remove();
    });
    Ok(())
}

/// What GETEX does to the key's time to live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GetExTtl<'a> {
    Unchanged,
    Persist,
    Expire(ExpireArg<'a>),
}

/// `GETEX key [EX s | PX ms | EXAT ts | PXAT ts | PERSIST]`
#[derive(Debug, PartialEq, Eq)]
struct GetEx<'a> {
    key: &'a [u8],
    ttl: GetExTtl<'a>,
}

impl<'a> GetEx<'a> {
    fn parse(args: Args<'a>) -> CmdResult<GetEx<'a>> {
        let mut cursor = ArgCursor::new(args);
        let key = cursor.next_bytes()?;
        let mut ttl = GetExTtl::Unchanged;
        while cursor.remaining() > 0 {
            let keyword = cursor.next_keyword()?;
            ttl = match (keyword.as_bytes(), ttl) {
                (b"PERSIST", GetExTtl::Unchanged | GetExTtl::Persist) => GetExTtl::Persist,
                (word, GetExTtl::Unchanged) => {
                    GetExTtl::Expire(ExpireArg::from_keyword(word, None, &mut cursor)?)
                }
                (word, GetExTtl::Expire(previous)) => {
                    GetExTtl::Expire(ExpireArg::from_keyword(word, Some(previous), &mut cursor)?)
                }
                _ => return Err(CmdError::Syntax),
            };
        }
        Ok(GetEx { key, ttl })
    }

    fn apply(self, ctx: &mut Ctx<'_>, reply: &mut Reply<'_>) -> CmdResult {
        ctx.store().read(self.key, ctx.now_ms(), |entry| {
            // As in Redis, a missing key answers nil before the expire
            // argument is even looked at.
            if !entry.exists() {
                reply.null();
                return Ok(());
            }
            let deadline = match self.ttl {
                GetExTtl::Unchanged => {
                    reply.optional_bulk(entry.value());
                    return Ok(());
                }
                GetExTtl::Persist => None,
                GetExTtl::Expire(expire) => Some(expire.deadline(entry.now(), "getex")?),
            };
            reply.optional_bulk(entry.value());
            // A deadline already past deletes the key.
            entry.set_deadline(deadline);
            Ok(())
        })
    }
}

/// `GETEX key [options]`
pub fn getex(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    GetEx::parse(args)?.apply(ctx, reply)
}

/// `MGET key [key ...]`: one value or nil per key. Keys are read one by one,
/// each under its own shard's lock, as a cluster would (where they must share
/// a slot anyway).
pub fn mget(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let keys = args.skip(1);
    let now = ctx.now_ms();
    reply.array(keys.len());
    ctx.store()
        .get_many(keys.iter(), now, |value| reply.optional_bulk(value));
    Ok(())
}

/// The key/value pairs of MSET and MSETNX, as a view of the arguments.
#[derive(Debug, Clone, Copy)]
struct Pairs<'a> {
    args: Args<'a>,
}

impl<'a> Pairs<'a> {
    fn parse(args: Args<'a>, command: &str) -> CmdResult<Pairs<'a>> {
        let rest = args.skip(1);
        if rest.is_empty() || !rest.len().is_multiple_of(2) {
            return Err(CmdError::WrongArity(command.to_string()));
        }
        Ok(Pairs { args: rest })
    }

    fn iter(self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone {
        let args = self.args;
        (0..args.len() / 2).map(move |i| {
            (
                args.get(2 * i).unwrap_or_default(),
                args.get(2 * i + 1).unwrap_or_default(),
            )
        })
    }
}

/// `MSET key value [key value ...]`: sets all, atomically.
pub fn mset(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let pairs = Pairs::parse(args, "mset")?;
    ctx.store().set_many(pairs.iter(), ctx.now_ms(), false)?;
    reply.ok();
    Ok(())
}

/// `MSETNX key value [key value ...]`: sets all if none exists (1), else none (0).
pub fn msetnx(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let pairs = Pairs::parse(args, "msetnx")?;
    let set = ctx.store().set_many(pairs.iter(), ctx.now_ms(), true)?;
    reply.integer(i64::from(set));
    Ok(())
}

/// Adds `delta` to the integer stored at `key` (0 if absent), keeping its
/// time to live, and replies with the result.
fn increment(ctx: &mut Ctx<'_>, key: &[u8], delta: i64, reply: &mut Reply<'_>) -> CmdResult {
    let result = ctx
        .store()
        .entry(key, ctx.now_ms(), |entry| -> CmdResult<i64> {
            let current = entry.value().map_or(Ok(0), parse_int)?;
            let next = current.checked_add(delta).ok_or(CmdError::Overflow)?;
            let mut digits = itoa::Buffer::new();
            entry.set(digits.format(next).as_bytes(), Expiry::Keep)?;
            Ok(next)
        })?;
    reply.integer(result);
    Ok(())
}

/// The key and integer argument of INCRBY and DECRBY.
fn key_and_int(args: Args<'_>) -> CmdResult<(&[u8], i64)> {
    let mut cursor = ArgCursor::new(args);
    let key = cursor.next_bytes()?;
    let n = cursor.next_int()?;
    cursor.finish()?;
    Ok((key, n))
}

/// `INCR key`
pub fn incr(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    increment(ctx, only_key(args)?, 1, reply)
}

/// `DECR key`
pub fn decr(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    increment(ctx, only_key(args)?, -1, reply)
}

/// `INCRBY key increment`
pub fn incrby(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let (key, delta) = key_and_int(args)?;
    increment(ctx, key, delta, reply)
}

/// `DECRBY key decrement`
pub fn decrby(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let (key, delta) = key_and_int(args)?;
    // -i64::MIN does not exist; Redis has a message of its own for it.
    let delta = delta
        .checked_neg()
        .ok_or_else(|| CmdError::Other("ERR decrement would overflow".into()))?;
    increment(ctx, key, delta, reply)
}

/// `APPEND key value`: the new length.
pub fn append(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let mut cursor = ArgCursor::new(args);
    let (key, data) = (cursor.next_bytes()?, cursor.next_bytes()?);
    cursor.finish()?;
    let len = ctx
        .store()
        .entry(key, ctx.now_ms(), |entry| entry.append(data))?;
    reply.integer(i64::try_from(len).unwrap_or(i64::MAX));
    Ok(())
}

/// `STRLEN key`: the value's length, 0 if absent.
pub fn strlen(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let key = only_key(args)?;
    let len = ctx.store().read(key, ctx.now_ms(), |entry| {
        entry.value().map_or(0, <[u8]>::len)
    });
    reply.integer(i64::try_from(len).unwrap_or(i64::MAX));
    Ok(())
}

/// `GETSET key value`: the old value (or nil), and the key holds `value`
/// with no time to live, as `SET key value GET` does.
pub fn getset(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let mut cursor = ArgCursor::new(args);
    let (key, value) = (cursor.next_bytes()?, cursor.next_bytes()?);
    cursor.finish()?;
    ctx.store().read(key, ctx.now_ms(), |entry| {
        reply.optional_bulk(entry.value());
        entry.set(value, Expiry::Persist)?;
        Ok(())
    })
}

/// The bytes `start..=end` of a `len`-byte value select, by Redis's rules:
/// a negative index counts from the end, and a range reaching outside the
/// value is cut to it. `None` if nothing is left.
fn byte_range(len: usize, start: i64, end: i64) -> Option<Range<usize>> {
    // An inverted range of negative indexes: empty, before the cutting below
    // could turn it into the first byte.
    if start < 0 && end < 0 && start > end {
        return None;
    }
    let len = i64::try_from(len).ok()?;
    let start = if start < 0 {
        (start + len).max(0)
    } else {
        start
    };
    let end = if end < 0 { (end + len).max(0) } else { end };
    let end = end.min(len - 1);
    if start > end {
        return None;
    }
    Some(usize::try_from(start).ok()?..usize::try_from(end).ok()? + 1)
}

/// `GETRANGE key start end` (and `SUBSTR`): the bytes from `start` to `end`
/// inclusive; an empty string if none, or if the key is absent.
pub fn getrange(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let mut cursor = ArgCursor::new(args);
    let key = cursor.next_bytes()?;
    let (start, end) = (cursor.next_int()?, cursor.next_int()?);
    cursor.finish()?;
    ctx.store().get_with(key, ctx.now_ms(), |value| {
        let value = value.unwrap_or_default();
        let range = byte_range(value.len(), start, end).unwrap_or_default();
        reply.bulk(&value[range]);
    });
    Ok(())
}

/// `SETRANGE key offset value`: writes `value` at byte `offset`, padding
/// with zero bytes if the value was shorter (or absent); the new length.
pub fn setrange(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let mut cursor = ArgCursor::new(args);
    let key = cursor.next_bytes()?;
    let offset = cursor.next_int()?;
    let data = cursor.next_bytes()?;
    cursor.finish()?;
    let offset = usize::try_from(offset)
        .map_err(|_| CmdError::Other("ERR offset is out of range".into()))?;
    let len = ctx
        .store()
        .entry(key, ctx.now_ms(), |entry| -> CmdResult<usize> {
            // Writing nothing changes nothing, and creates no key, whatever
            // the offset.
            if data.is_empty() {
                return Ok(entry.value().map_or(0, <[u8]>::len));
            }
            let end = offset
                .checked_add(data.len())
                .filter(|&end| end <= MAX_STRING_LEN)
                .ok_or(CmdError::TooLarge)?;
            let len = entry.update_value(end, |value| {
                value[offset..end].copy_from_slice(data);
                value.len()
            })?;
            Ok(len)
        })?;
    reply.integer(i64::try_from(len).unwrap_or(i64::MAX));
    Ok(())
}

fn not_a_float() -> CmdError {
    CmdError::Other("ERR value is not a valid float".into())
}

/// `INCRBYFLOAT key increment`: adds a float to the number stored at `key`
/// (0 if absent), keeping its time to live; the new value, as stored.
pub fn incrbyfloat(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let mut cursor = ArgCursor::new(args);
    let key = cursor.next_bytes()?;
    let increment = Number::parse(cursor.next_bytes()?);
    cursor.finish()?;
    let text = ctx
        .store()
        .entry(key, ctx.now_ms(), |entry| -> CmdResult<String> {
            let current = match entry.value() {
                Some(value) => Number::parse(value).ok_or_else(not_a_float)?,
                None => Number::Finite(LongDouble::ZERO),
            };
            let sum = match (current, increment.ok_or_else(not_a_float)?) {
                (Number::Finite(a), Number::Finite(b)) => a.checked_add(b),
                _ => None,
            };
            let sum = sum.ok_or_else(|| {
                CmdError::Other("ERR increment would produce NaN or Infinity".into())
            })?;
            let text = sum.to_redis_string();
            entry.set(text.as_bytes(), Expiry::Keep)?;
            Ok(text)
        })?;
    reply.bulk(text.as_bytes());
    Ok(())
}

/// Runs commands through the real command table against a fresh node, and
/// decodes each reply back into a [`Frame`]. Shared with the tests of `keys`.
#[cfg(test)]
pub(crate) mod harness {
    use bytes::{Bytes, BytesMut};
    use keycafe_core::{Args, Frame, Limits, Protocol, Reply};

    use std::sync::Arc;

    use crate::cmd::{ConnState, Ctx, execute};
    use crate::config::Config;
    use crate::state::Shared;
    use crate::store::Store;

    pub struct Node {
        shared: Arc<Shared>,
        conn: ConnState,
    }

    impl Node {
        pub fn new() -> Node {
            Node {
                shared: Arc::new(Shared::new(Config::default()).unwrap()),
                conn: ConnState::default(),
            }
        }

        pub fn store(&self) -> &Store {
            &self.shared.store
        }

        /// Runs a command given as space-separated words.
        pub fn run(&mut self, line: &str) -> Frame {
            let words: Vec<&[u8]> = line.split_whitespace().map(str::as_bytes).collect();
            self.run_args(&words)
        }

        /// Runs a command given as binary arguments; checks that exactly one
        /// reply was written.
        pub fn run_args(&mut self, words: &[&[u8]]) -> Frame {
            let mut source = Vec::new();
            let mut spans = Vec::new();
            for word in words {
                let start = source.len();
                source.extend_from_slice(word);
                spans.push(start..source.len());
            }
            let mut out = BytesMut::new();
            let mut reply = Reply::start(Protocol::Resp2, &mut out);
            let mut ctx = Ctx {
                shared: &self.shared,
                conn: &mut self.conn,
            };
            execute(&mut ctx, Args::new(&source, &spans), &mut reply);
            assert!(reply.finish(), "{words:?} wrote no reply");
            let frame = Protocol::Resp2
                .decode_frame(&mut out, &Limits::default())
                .expect("a well-formed reply")
                .expect("a complete reply");
            assert!(out.is_empty(), "{words:?} wrote more than one reply");
            frame
        }

        /// Runs each command and compares its reply, naming the step that
        /// differs.
        pub fn script(&mut self, steps: &[(&str, Frame)]) {
            for (line, expected) in steps {
                assert_eq!(&self.run(line), expected, "reply to `{line}`");
            }
        }
    }

    pub fn ok() -> Frame {
        Frame::ok()
    }

    pub fn int(n: i64) -> Frame {
        Frame::Integer(n)
    }

    pub fn bulk(data: &str) -> Frame {
        Frame::Bulk(Bytes::copy_from_slice(data.as_bytes()))
    }

    pub fn null() -> Frame {
        Frame::Null
    }

    pub fn err(text: &str) -> Frame {
        Frame::Error(Bytes::copy_from_slice(text.as_bytes()))
    }

    pub fn array(items: Vec<Frame>) -> Frame {
        Frame::Array(items)
    }

    /// Reads an integer reply.
    pub fn as_int(frame: Frame) -> i64 {
        match frame {
            Frame::Integer(n) => n,
            other => panic!("expected an integer, got {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::byte_range;
    use super::harness::*;
    use crate::store::now_ms;

    const SYNTAX: &str = "ERR syntax error";
    const NOT_INT: &str = "ERR value is not an integer or out of range";

    #[test]
    fn get_and_set() {
        Node::new().script(&[
            ("GET k", null()),
            ("SET k v", ok()),
            ("GET k", bulk("v")),
            ("set k longer-value", ok()),
            ("get k", bulk("longer-value")),
            (
                "GET k extra",
                err("ERR wrong number of arguments for 'get' command"),
            ),
        ]);
    }

    #[test]
    fn values_are_binary_safe() {
        let mut node = Node::new();
        let value: Vec<u8> = (0..=255u8).collect();
        assert_eq!(node.run_args(&[b"SET", b"k\0\r\n", &value]), ok());
        assert_eq!(
            node.run_args(&[b"GET", b"k\0\r\n"]),
            keycafe_core::Frame::bulk(value.clone())
        );
        assert_eq!(node.run_args(&[b"APPEND", b"k\0\r\n", b"\0\r\n"]), int(259));
        assert_eq!(node.run_args(&[b"STRLEN", b"k\0\r\n"]), int(259));
        assert_eq!(node.run_args(&[b"GET", b"k"]), null());
    }

    #[test]
    fn set_conditions_and_get() {
        Node::new().script(&[
            ("SET k v XX", null()),
            ("SET k v NX", ok()),
            ("SET k w NX", null()),
            ("SET k w XX", ok()),
            ("SET k x NX GET", bulk("w")),
            ("GET k", bulk("w")),
            ("SET k x GET", bulk("w")),
            ("SET new y GET", null()),
            ("GET new", bulk("y")),
            ("SET other y XX GET", null()),
            ("GET other", null()),
            ("SET k v nx nx", null()),
        ]);
    }

    #[test]
    fn set_ttl_options() {
        let mut node = Node::new();
        node.script(&[
            ("SET k v EX 100", ok()),
            ("TTL k", int(100)),
            ("SET k v KEEPTTL", ok()),
            ("TTL k", int(100)),
            ("SET k v", ok()),
            ("TTL k", int(-1)),
            ("SET k v PX 100000", ok()),
            ("TTL k", int(100)),
        ]);
        let at = now_ms() / 1000 + 50;
        assert_eq!(node.run(&format!("SET k v EXAT {at}")), ok());
        assert!((49..=50).contains(&as_int(node.run("TTL k"))));
        assert_eq!(
            node.run(&format!("SET k v PXAT {}", now_ms() + 20_000)),
            ok()
        );
        assert!((19_000..=20_000).contains(&as_int(node.run("PTTL k"))));
        // A time already past: OK, and the key is gone.
        node.script(&[
            ("SET k v PXAT 1", ok()),
            ("GET k", null()),
            ("EXISTS k", int(0)),
        ]);
    }

    #[test]
    fn set_errors() {
        let invalid = "ERR invalid expire time in 'set' command";
        Node::new().script(&[
            ("SET k v NX XX", err(SYNTAX)),
            ("SET k v XX NX", err(SYNTAX)),
            ("SET k v EX 10 PX 10", err(SYNTAX)),
            ("SET k v EX 10 PXAT 10", err(SYNTAX)),
            ("SET k v EX abc EX 10", ok()),
            ("SET k v EX 10 KEEPTTL", err(SYNTAX)),
            ("SET k v KEEPTTL EXAT 10", err(SYNTAX)),
            ("SET k v EX", err(SYNTAX)),
            ("SET k v FOO", err(SYNTAX)),
            ("SET k v EX abc NX XX", err(SYNTAX)),
            ("SET k v EX abc", err(NOT_INT)),
            ("SET k v EX 0", err(invalid)),
            ("SET k v PX -5", err(invalid)),
            ("SET k v EX 9223372036854775807", err(invalid)),
            ("SET k v PX 9223372036854775807", err(invalid)),
            ("SET k v PXAT 9223372036854775807", ok()),
            ("GET k", bulk("v")),
            (
                "SET k",
                err("ERR wrong number of arguments for 'set' command"),
            ),
        ]);
    }

    #[test]
    fn setnx_setex_psetex() {
        let mut node = Node::new();
        node.script(&[
            ("SETNX k v", int(1)),
            ("SETNX k w", int(0)),
            ("GET k", bulk("v")),
            ("SETEX k 100 w", ok()),
            ("GET k", bulk("w")),
            ("TTL k", int(100)),
            (
                "SETEX k 0 w",
                err("ERR invalid expire time in 'setex' command"),
            ),
            (
                "SETEX k -1 w",
                err("ERR invalid expire time in 'setex' command"),
            ),
            ("SETEX k x w", err(NOT_INT)),
            (
                "PSETEX k 0 w",
                err("ERR invalid expire time in 'psetex' command"),
            ),
            ("PSETEX k 5000 p", ok()),
            ("GET k", bulk("p")),
        ]);
        assert!((4_000..=5_000).contains(&as_int(node.run("PTTL k"))));
    }

    #[test]
    fn getdel_and_getex() {
        let mut node = Node::new();
        node.script(&[
            ("GETDEL k", null()),
            ("SET k v", ok()),
            ("GETDEL k", bulk("v")),
            ("GET k", null()),
            ("GETEX k", null()),
            ("GETEX k EX 0", null()),
            ("SET k v", ok()),
            ("GETEX k", bulk("v")),
            ("TTL k", int(-1)),
            ("GETEX k EX 100", bulk("v")),
            ("TTL k", int(100)),
            ("GETEX k PERSIST", bulk("v")),
            ("TTL k", int(-1)),
            ("GETEX k PX 100000", bulk("v")),
            ("TTL k", int(100)),
            (
                "GETEX k EX 0",
                err("ERR invalid expire time in 'getex' command"),
            ),
            ("GETEX k EX 10 PERSIST", err(SYNTAX)),
            ("GETEX k PERSIST EX 10", err(SYNTAX)),
            ("GETEX k KEEPTTL", err(SYNTAX)),
            ("GETEX k EX", err(SYNTAX)),
            ("GETEX k EX x", err(NOT_INT)),
            ("GETEX k PXAT 1", bulk("v")),
            ("GET k", null()),
        ]);
        let at = now_ms() / 1000 + 30;
        node.run("SET k v");
        assert_eq!(node.run(&format!("GETEX k EXAT {at}")), bulk("v"));
        assert!((29..=30).contains(&as_int(node.run("TTL k"))));
    }

    #[test]
    fn mget_mset_msetnx() {
        Node::new().script(&[
            ("MSET a 1 b 2", ok()),
            ("MGET a b c", array(vec![bulk("1"), bulk("2"), null()])),
            (
                "MSET a 1 b",
                err("ERR wrong number of arguments for 'mset' command"),
            ),
            (
                "MSETNX x 1 y",
                err("ERR wrong number of arguments for 'msetnx' command"),
            ),
            ("MSETNX c 3 a 9", int(0)),
            ("MGET a c", array(vec![bulk("1"), null()])),
            ("MSETNX c 3 d 4", int(1)),
            ("MGET c d", array(vec![bulk("3"), bulk("4")])),
            ("SET t v EX 100", ok()),
            ("MSET t w", ok()),
            ("TTL t", int(-1)),
        ]);
    }

    #[test]
    fn counters() {
        Node::new().script(&[
            ("INCR n", int(1)),
            ("INCRBY n 41", int(42)),
            ("DECR n", int(41)),
            ("DECRBY n 50", int(-9)),
            ("GET n", bulk("-9")),
            ("INCRBY n x", err(NOT_INT)),
            ("SET n 9223372036854775807", ok()),
            ("INCR n", err("ERR increment or decrement would overflow")),
            ("SET n -9223372036854775808", ok()),
            ("DECR n", err("ERR increment or decrement would overflow")),
            (
                "DECRBY n -9223372036854775808",
                err("ERR decrement would overflow"),
            ),
            ("GET n", bulk("-9223372036854775808")),
            ("SET s abc", ok()),
            ("INCR s", err(NOT_INT)),
            ("SET s 01", ok()),
            ("INCR s", err(NOT_INT)),
            ("SET e 10 EX 100", ok()),
            ("INCR e", int(11)),
            ("TTL e", int(100)),
        ]);
    }

    #[test]
    fn counters_reject_padded_numbers() {
        let mut node = Node::new();
        for value in [&b" 1"[..], b"1 ", b"+1", b"1.0", b""] {
            node.run_args(&[b"SET", b"n", value]);
            assert_eq!(node.run("INCR n"), err(NOT_INT), "{value:?}");
        }
    }

    #[test]
    fn getset_replies_with_the_old_value_and_clears_the_ttl() {
        Node::new().script(&[
            ("GETSET k a", null()),
            ("SET k b EX 100", ok()),
            ("GETSET k c", bulk("b")),
            ("TTL k", int(-1)),
            ("GET k", bulk("c")),
        ]);
    }

    #[test]
    fn byte_ranges_follow_redis() {
        let cases: [(i64, i64, Option<std::ops::Range<usize>>); 11] = [
            (0, 3, Some(0..4)),
            (-3, -1, Some(13..16)),
            (0, -1, Some(0..16)),
            (10, 100, Some(10..16)),
            (5, 2, None),
            (-1, -5, None),
            // Cut to the first byte, as Redis 7 does (8.0 answers "").
            (-100, -90, Some(0..1)),
            (0, -100, Some(0..1)),
            (16, 20, None),
            (i64::MIN, i64::MAX, Some(0..16)),
            (i64::MAX, i64::MIN, None),
        ];
        for (start, end, expected) in cases {
            assert_eq!(byte_range(16, start, end), expected, "{start} {end}");
        }
        assert_eq!(byte_range(0, 0, -1), None);
        assert_eq!(byte_range(0, 0, 0), None);
    }

    #[test]
    fn getrange_and_setrange() {
        Node::new().script(&[
            ("GETRANGE k 0 -1", bulk("")),
            ("SETRANGE k 3 abc", int(6)),
            ("GET k", bulk("\0\0\0abc")),
            ("SETRANGE k 0 xy", int(6)),
            ("GETRANGE k 0 1", bulk("xy")),
            ("SUBSTR k -3 -1", bulk("abc")),
            ("SETRANGE k -1 x", err("ERR offset is out of range")),
            (
                "SETRANGE k 536870912 x",
                err("ERR string exceeds maximum allowed size (proto-max-bulk-len)"),
            ),
            ("GETRANGE k x 1", err(NOT_INT)),
            ("SET t v EX 100", ok()),
            ("SETRANGE t 1 w", int(2)),
            ("TTL t", int(100)),
        ]);
    }

    #[test]
    fn setrange_with_an_empty_value_writes_nothing() {
        let mut node = Node::new();
        node.run("SET k abc");
        assert_eq!(node.run_args(&[b"SETRANGE", b"k", b"9", b""]), int(3));
        assert_eq!(node.run_args(&[b"SETRANGE", b"none", b"9", b""]), int(0));
        assert_eq!(node.run("GET k"), bulk("abc"));
        assert_eq!(node.run("EXISTS none"), int(0));
    }

    #[test]
    fn incrbyfloat() {
        let not_float = "ERR value is not a valid float";
        let nan_or_inf = "ERR increment would produce NaN or Infinity";
        Node::new().script(&[
            ("INCRBYFLOAT f 0.1", bulk("0.1")),
            ("INCRBYFLOAT f 0.2", bulk("0.3")),
            ("INCRBYFLOAT f -0.3", bulk("0")),
            ("SET f 10.50 EX 100", ok()),
            ("INCRBYFLOAT f 0.1", bulk("10.6")),
            ("GET f", bulk("10.6")),
            ("TTL f", int(100)),
            // 17 decimals show the long double's error, as in Redis.
            ("INCRBYFLOAT f 5.0e3", bulk("5010.60000000000000009")),
            ("INCRBYFLOAT f x", err(not_float)),
            ("INCRBYFLOAT f inf", err(nan_or_inf)),
            ("INCRBYFLOAT f 1e5000", err(not_float)),
            ("SET s abc", ok()),
            ("INCRBYFLOAT s 1", err(not_float)),
            ("SET m 1.1e4932", ok()),
            ("INCRBYFLOAT m 1.1e4932", err(nan_or_inf)),
            ("GET m", bulk("1.1e4932")),
        ]);
    }

    #[test]
    fn growing_values_are_counted_and_refused_over_maxmemory() {
        let mut node = Node::new();
        let baseline = node.store().stats().used_bytes;
        let used = node.store().memory().used();
        assert_eq!(
            node.run(&format!("CONFIG SET maxmemory {}", used + 1_000_000)),
            ok()
        );
        // Under the limit when it starts, so it runs, and grows past it.
        assert_eq!(node.run("SETRANGE big 2000000 x"), int(2_000_001));
        let grown = node.store().stats().used_bytes - baseline;
        assert!((2_000_000..2_100_000).contains(&grown), "{grown}");
        let oom = "OOM command not allowed when used memory > 'maxmemory'.";
        for command in [
            "SETRANGE big 0 y",
            "SETBIT big 1 1",
            "SETBIT other 0 1",
            "GETSET big v",
            "INCRBYFLOAT n 1",
        ] {
            assert_eq!(node.run(command), err(oom), "{command}");
        }
        // Reads and deletions still run.
        assert_eq!(node.run("GETRANGE big -1 -1"), bulk("x"));
        assert_eq!(node.run("BITCOUNT big"), int(4));
        assert_eq!(node.run("DEL big"), int(1));
        assert!(node.store().stats().used_bytes - baseline < 100_000);
        assert_eq!(node.run("SETBIT big 1 1"), int(0));
    }

    #[test]
    fn append_and_strlen() {
        Node::new().script(&[
            ("STRLEN k", int(0)),
            ("APPEND k hello", int(5)),
            ("APPEND k _world", int(11)),
            ("GET k", bulk("hello_world")),
            ("STRLEN k", int(11)),
            ("SET t v EX 100", ok()),
            ("APPEND t w", int(2)),
            ("TTL t", int(100)),
        ]);
    }
}
