//! Bit commands: SETBIT, GETBIT, BITCOUNT, BITPOS and BITOP, over a string
//! value read as a bitmap.
//!
//! As in Redis, bit 0 is the most significant bit of the first byte, a bit
//! past the end of the value (or of an absent key) reads as 0, and SETBIT
//! past the end pads the value with zero bytes first, up to the 512 MiB a
//! value may hold. SETBIT changes the stored byte in place
//! ([`KeyEntry::update_value`](crate::store::KeyEntry::update_value)), and
//! not at all when the bit already has the value asked for, so setting a
//! bit of a large bitmap costs the same as of a small one.
//!
//! BITCOUNT and BITPOS take a range in bytes, or in bits with `BIT`, whose
//! negative ends count from the end of the value. They scan the value in
//! place under its shard's lock, eight bytes at a time.

use keycafe_core::{Args, Reply};

use super::parse::parse_int;
use super::{ArgCursor, CmdError, CmdResult, Ctx};
use crate::store::{Expiry, MAX_STRING_LEN};

/// A bit offset argument: from 0 up to the last bit of the largest value.
fn bit_offset(arg: &[u8]) -> CmdResult<u64> {
    parse_int(arg)
        .ok()
        .and_then(|offset| u64::try_from(offset).ok())
        .filter(|&offset| offset >> 3 < MAX_STRING_LEN as u64)
        .ok_or_else(|| CmdError::Other("ERR bit offset is not an integer or out of range".into()))
}

/// The byte holding bit `offset`, and the bit's mask in it.
fn locate(offset: u64) -> (usize, u8) {
    // The offset is below 2^32, so the byte index fits every usize Keycafe
    // runs on.
    ((offset >> 3) as usize, 0x80 >> (offset & 7))
}

/// `SETBIT key offset 0|1`: sets or clears one bit; the bit's old value.
pub fn setbit(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let mut cursor = ArgCursor::new(args);
    let key = cursor.next_bytes()?;
    let offset = bit_offset(cursor.next_bytes()?)?;
    let on = match parse_int(cursor.next_bytes()?) {
        Ok(0) => false,
        Ok(1) => true,
        _ => {
            return Err(CmdError::Other(
                "ERR bit is not an integer or out of range".into(),
            ));
        }
    };
    cursor.finish()?;
    let (byte, mask) = locate(offset);
    let was_on = ctx
        .store()
        .entry(key, ctx.now_ms(), |entry| -> CmdResult<bool> {
            let current = entry
                .value()
                .and_then(|value| value.get(byte))
                .map(|&b| b & mask != 0);
            // A bit that already has this value, in a value that need not
            // grow: nothing to write, nothing for replicas to hear.
            if current == Some(on) {
                return Ok(on);
            }
            entry.update_value(byte + 1, |value| match on {
                true => value[byte] |= mask,
                false => value[byte] &= !mask,
            })?;
            Ok(current.unwrap_or(false))
        })?;
    reply.integer(i64::from(was_on));
    Ok(())
}

/// `GETBIT key offset`: 0 or 1.
pub fn getbit(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let mut cursor = ArgCursor::new(args);
    let key = cursor.next_bytes()?;
    let (byte, mask) = locate(bit_offset(cursor.next_bytes()?)?);
    cursor.finish()?;
    let on = ctx.store().get_with(key, ctx.now_ms(), |value| {
        value
            .and_then(|value| value.get(byte))
            .is_some_and(|&b| b & mask != 0)
    });
    reply.integer(i64::from(on));
    Ok(())
}

/// What the start and end of a BITCOUNT or BITPOS range count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Byte,
    Bit,
}

impl Unit {
    fn parse(arg: &[u8]) -> CmdResult<Unit> {
        match arg {
            _ if arg.eq_ignore_ascii_case(b"BYTE") => Ok(Unit::Byte),
            _ if arg.eq_ignore_ascii_case(b"BIT") => Ok(Unit::Bit),
            _ => Err(CmdError::Syntax),
        }
    }

    /// The length of a `len`-byte value in this unit.
    fn count(self, len: usize) -> i64 {
        let len = len as i64;
        match self {
            Unit::Byte => len,
            Unit::Bit => len * 8,
        }
    }

    /// The bits `first..=last` of units `first..=last`.
    fn bits(self, first: i64, last: i64) -> (u64, u64) {
        let (first, last) = (first as u64, last as u64);
        match self {
            Unit::Byte => (first * 8, last * 8 + 7),
            Unit::Bit => (first, last),
        }
    }
}

/// `start..=end` over `len` units, by Redis's rules: negative ends count
/// from the end, ends outside are cut to it. `None` if empty.
fn resolve(start: i64, end: i64, len: i64) -> Option<(i64, i64)> {
    let start = if start < 0 {
        (start + len).max(0)
    } else {
        start
    };
    let end = if end < 0 { (end + len).max(0) } else { end };
    let end = end.min(len - 1);
    (start <= end).then_some((start, end))
}

/// `BITCOUNT key [start end [BYTE | BIT]]`: the bits set, in the whole value
/// or in the range.
pub fn bitcount(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let mut cursor = ArgCursor::new(args);
    let key = cursor.next_bytes()?;
    // Every argument is checked before the key is looked at (Redis 7.4 does
    // so too; 7.0 answered 0 for an absent key whatever followed it).
    let range = match args.len() {
        2 => None,
        4 | 5 => {
            let (start, end) = (cursor.next_int()?, cursor.next_int()?);
            let unit = match cursor.remaining() {
                0 => Unit::Byte,
                _ => Unit::parse(cursor.next_bytes()?)?,
            };
            Some((start, end, unit))
        }
        _ => return Err(CmdError::Syntax),
    };
    let count = ctx.store().get_with(key, ctx.now_ms(), |value| {
        let value = value.unwrap_or_default();
        let bits = match range {
            None => (!value.is_empty()).then(|| (0, value.len() as u64 * 8 - 1)),
            // Both ends negative and inverted: nothing, before cutting could
            // turn it into the first unit.
            Some((start, end, _)) if start < 0 && end < 0 && start > end => None,
            Some((start, end, unit)) => resolve(start, end, unit.count(value.len()))
                .map(|(first, last)| unit.bits(first, last)),
        };
        bits.map_or(0, |(first, last)| count_ones(value, first, last))
    });
    reply.integer(i64::try_from(count).unwrap_or(i64::MAX));
    Ok(())
}

/// `BITPOS key 0|1 [start [end [BYTE | BIT]]]`: the position of the first
/// bit with that value in the range, or -1.
pub fn bitpos(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let mut cursor = ArgCursor::new(args);
    let key = cursor.next_bytes()?;
    let bit = match cursor.next_int()? {
        0 => false,
        1 => true,
        _ => {
            return Err(CmdError::Other(
                "ERR The bit argument must be 1 or 0.".into(),
            ));
        }
    };
    if args.len() > 6 {
        return Err(CmdError::Syntax);
    }
    // In Redis's order: start, then the unit, then end.
    let start = args.get(3).map(parse_int).transpose()?.unwrap_or(0);
    let unit = args
        .get(5)
        .map(Unit::parse)
        .transpose()?
        .unwrap_or(Unit::Byte);
    let end = args.get(4).map(parse_int).transpose()?;
    let position = ctx.store().get_with(key, ctx.now_ms(), |value| {
        let Some(value) = value else {
            // An absent key is an endless run of zeros.
            return if bit { -1 } else { 0 };
        };
        let len = unit.count(value.len());
        let Some((first, last)) = resolve(start, end.unwrap_or(len - 1), len) else {
            return -1;
        };
        let (first, last) = unit.bits(first, last);
        match find_bit(value, bit, first, last) {
            Some(position) => position as i64,
            // With no end given, the value goes on with zeros to its right.
            None if !bit && end.is_none() => (last + 1) as i64,
            None => -1,
        }
    });
    reply.integer(position);
    Ok(())
}

/// BITOP's operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BitOp {
    And,
    Or,
    Xor,
    Not,
}

/// `BITOP AND|OR|XOR|NOT destkey key [key ...]`: stores the bitwise
/// operation over the source values in `destkey` (deleting it when the
/// result is empty) and answers the result's length. A missing source is a
/// value of zero bytes, and shorter values are padded with zero bytes to the
/// longest. The sources are read and the result stored with no write in
/// between: inside `Store::atomically` (already so inside EXEC).
pub fn bitop(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let op = match args
        .get(1)
        .unwrap_or_default()
        .to_ascii_uppercase()
        .as_slice()
    {
        b"AND" => BitOp::And,
        b"OR" => BitOp::Or,
        b"XOR" => BitOp::Xor,
        b"NOT" => BitOp::Not,
        _ => return Err(CmdError::Syntax),
    };
    let dest = args.get(2).unwrap_or_default();
    let sources = args.skip(3);
    if op == BitOp::Not && sources.len() != 1 {
        return Err(CmdError::Other(
            "ERR BITOP NOT must be called with a single source key.".into(),
        ));
    }
    let now = ctx.now_ms();
    let store = ctx.store();
    let run = || -> CmdResult<usize> {
        let mut values: Vec<Option<Vec<u8>>> = Vec::with_capacity(sources.len());
        store.get_many(sources.iter(), now, |value| {
            values.push(value.map(<[u8]>::to_vec))
        });
        let result = combine(op, &values);
        match result.is_empty() {
            true => {
                store.remove(dest, now);
            }
            false => store.set(dest, &result, now, Expiry::Persist)?,
        }
        Ok(result.len())
    };
    let len = match ctx.conn.in_exec {
        true => run()?,
        false => store.atomically(&store.shards_of(args.skip(2).iter()), true, run)?,
    };
    reply.integer(len as i64);
    Ok(())
}

/// The bytes of `op` over `values` (`None`: a missing key, all zeros).
fn combine(op: BitOp, values: &[Option<Vec<u8>>]) -> Vec<u8> {
    let len = values.iter().flatten().map(Vec::len).max().unwrap_or(0);
    let byte = |value: &Option<Vec<u8>>, i: usize| {
        value.as_ref().and_then(|v| v.get(i).copied()).unwrap_or(0)
    };
    (0..len)
        .map(|i| {
            let mut bytes = values.iter().map(|value| byte(value, i));
            let first = bytes.next().unwrap_or(0);
            match op {
                BitOp::And => bytes.fold(first, |acc, b| acc & b),
                BitOp::Or => bytes.fold(first, |acc, b| acc | b),
                BitOp::Xor => bytes.fold(first, |acc, b| acc ^ b),
                BitOp::Not => !first,
            }
        })
        .collect()
}

/// The bits set among bits `first..=last` of `value` (both within it).
fn count_ones(value: &[u8], first: u64, last: u64) -> u64 {
    let (first_byte, last_byte) = ((first / 8) as usize, (last / 8) as usize);
    let bytes = &value[first_byte..=last_byte];
    let (words, tail) = bytes.split_at(bytes.len() / 8 * 8);
    let mut count: u64 = words
        .chunks_exact(8)
        .map(|word| u64::from(u64::from_ne_bytes(word.try_into().expect("8 bytes")).count_ones()))
        .sum();
    count += tail.iter().map(|b| u64::from(b.count_ones())).sum::<u64>();
    // Take back the bits of the edge bytes outside the range.
    let before = value[first_byte] & !(0xFF >> (first % 8));
    let after = value[last_byte] & (0x7F >> (last % 8));
    count - u64::from(before.count_ones()) - u64::from(after.count_ones())
}

/// The position of the first bit equal to `bit` among bits `first..=last`
/// of `value` (both within it).
fn find_bit(value: &[u8], bit: bool, first: u64, last: u64) -> Option<u64> {
    let (first_byte, last_byte) = ((first / 8) as usize, (last / 8) as usize);
    // Looking for a 1 in `b`, or for a 0 as a 1 in `!b`.
    let wanted = |b: u8| if bit { b } else { !b };
    let in_range = |index: usize| {
        let mut mask = 0xFF;
        if index == first_byte {
            mask &= 0xFF >> (first % 8);
        }
        if index == last_byte {
            mask &= 0xFF << (7 - last % 8);
        }
        mask
    };
    let hit = |index: usize| {
        let b = wanted(value[index]) & in_range(index);
        (b != 0).then(|| index as u64 * 8 + u64::from(b.leading_zeros()))
    };
    if let Some(position) = hit(first_byte) {
        return Some(position);
    }
    if first_byte == last_byte {
        return None;
    }
    // The bytes between the edges, skipping whole words that cannot match.
    let middle = &value[first_byte + 1..last_byte];
    let skip = if bit { 0u64 } else { u64::MAX };
    let words = middle
        .chunks_exact(8)
        .take_while(|word| u64::from_ne_bytes((*word).try_into().expect("8 bytes")) == skip)
        .count();
    let from = first_byte + 1 + words * 8;
    (from..last_byte)
        .find_map(|index| {
            let b = wanted(value[index]);
            (b != 0).then(|| index as u64 * 8 + u64::from(b.leading_zeros()))
        })
        .or_else(|| hit(last_byte))
}

#[cfg(test)]
mod tests {
    use super::super::strings::harness::*;
    use super::*;

    /// The reference: one bit at a time.
    fn bit_at(value: &[u8], position: u64) -> bool {
        value[(position / 8) as usize] & (0x80 >> (position % 8)) != 0
    }

    #[test]
    fn count_and_find_agree_with_a_bit_by_bit_scan() {
        // Patterns with runs of zeros and ones longer than a word, so that
        // both the edges and the word-at-a-time middle are exercised.
        let mut value = vec![0u8; 40];
        value[3] = 0b0001_0000;
        value[20..30].fill(0xFF);
        value[31] = 0b1011_0110;
        value[39] = 0x01;
        let total = value.len() as u64 * 8;
        for first in (0..total).step_by(3) {
            for last in (first..total).step_by(5) {
                let ones = (first..=last).filter(|&p| bit_at(&value, p)).count() as u64;
                assert_eq!(count_ones(&value, first, last), ones, "{first}..={last}");
                for bit in [false, true] {
                    let expected = (first..=last).find(|&p| bit_at(&value, p) == bit);
                    assert_eq!(
                        find_bit(&value, bit, first, last),
                        expected,
                        "{bit} in {first}..={last}"
                    );
                }
            }
        }
    }

    #[test]
    fn ranges_resolve_as_redis_does() {
        assert_eq!(resolve(0, -1, 10), Some((0, 9)));
        assert_eq!(resolve(-3, -1, 10), Some((7, 9)));
        assert_eq!(resolve(-100, 100, 10), Some((0, 9)));
        assert_eq!(resolve(5, 2, 10), None);
        assert_eq!(resolve(0, -1, 0), None);
        assert_eq!(resolve(i64::MIN, i64::MAX, 10), Some((0, 9)));
        assert_eq!(Unit::Byte.bits(1, 2), (8, 23));
        assert_eq!(Unit::Bit.bits(1, 2), (1, 2));
    }

    #[test]
    fn setbit_and_getbit() {
        let mut node = Node::new();
        node.script(&[
            ("SETBIT k 7 1", int(0)),
            ("GET k", bulk("\u{1}")),
            ("SETBIT k 7 1", int(1)),
            ("SETBIT k 7 0", int(1)),
            ("GETBIT k 7", int(0)),
            ("SETBIT k 1 1", int(0)),
            ("GET k", bulk("@")),
            ("GETBIT k 1", int(1)),
            ("GETBIT k 100", int(0)),
            ("GETBIT missing 0", int(0)),
            ("SETBIT k 23 1", int(0)),
            ("STRLEN k", int(3)),
            ("SET t v EX 100", ok()),
            ("SETBIT t 100 1", int(0)),
            ("TTL t", int(100)),
        ]);
        let offset_error = "ERR bit offset is not an integer or out of range";
        let bit_error = "ERR bit is not an integer or out of range";
        node.script(&[
            ("SETBIT k -1 1", err(offset_error)),
            ("SETBIT k 4294967296 1", err(offset_error)),
            ("SETBIT k x 1", err(offset_error)),
            ("SETBIT k 0 2", err(bit_error)),
            ("SETBIT k 0 -1", err(bit_error)),
            ("SETBIT k x 2", err(offset_error)),
            ("GETBIT k 4294967296", err(offset_error)),
            ("GETBIT k 4294967295", int(0)),
        ]);
    }

    #[test]
    fn bitcount_ranges() {
        Node::new().script(&[
            ("BITCOUNT missing", int(0)),
            ("BITCOUNT missing 0 -1", int(0)),
            ("SET k foobar", ok()),
            ("BITCOUNT k", int(26)),
            ("BITCOUNT k 0 0", int(4)),
            ("BITCOUNT k 1 1", int(6)),
            ("BITCOUNT k 1 1 BYTE", int(6)),
            ("BITCOUNT k 5 30 bit", int(17)),
            ("BITCOUNT k -1 -5", int(0)),
            ("BITCOUNT k -100 -1", int(26)),
            ("BITCOUNT k 0", err("ERR syntax error")),
            ("BITCOUNT k 0 1 WORD", err("ERR syntax error")),
            ("BITCOUNT missing 0 1 WORD", err("ERR syntax error")),
            (
                "BITCOUNT k x 1",
                err("ERR value is not an integer or out of range"),
            ),
        ]);
    }

    #[test]
    fn bitpos_ranges() {
        let mut node = Node::new();
        node.run_args(&[b"SET", b"ones", b"\xff\xf0\x00"]);
        node.run_args(&[b"SET", b"full", b"\xff\xff\xff"]);
        node.run_args(&[b"SET", b"empty", b""]);
        node.script(&[
            ("BITPOS ones 0", int(12)),
            ("BITPOS ones 1 2", int(-1)),
            ("BITPOS ones 0 1 1", int(12)),
            ("BITPOS ones 1 7 15 BIT", int(7)),
            ("BITPOS ones 0 7 11 BIT", int(-1)),
            ("BITPOS full 0", int(24)),
            ("BITPOS full 0 1", int(24)),
            ("BITPOS full 0 0 -1", int(-1)),
            ("BITPOS empty 0", int(-1)),
            ("BITPOS empty 1", int(-1)),
            ("BITPOS missing 0", int(0)),
            ("BITPOS missing 1", int(-1)),
            ("BITPOS missing 1 0 1 WORD", err("ERR syntax error")),
            ("BITPOS ones 2", err("ERR The bit argument must be 1 or 0.")),
            ("BITPOS ones 1 0 x WORD", err("ERR syntax error")),
            ("BITPOS ones 1 0 1 BIT extra", err("ERR syntax error")),
        ]);
    }
}
