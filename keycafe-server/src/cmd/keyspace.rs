//! Commands over the whole keyspace (SCAN, KEYS, RANDOMKEY) and between two
//! keys (RENAME, RENAMENX, COPY).
//!
//! # SCAN's cursor
//!
//! The store walks the keyspace a whole slot at a time (see
//! `store/keyspace.rs`), so SCAN's cursor is simply the next slot to read:
//! `0` to start, then whatever the last call returned, `0` again when the
//! walk is done. It is written in decimal, as Redis clients expect (they
//! pass it back as an opaque string; some parse it as an unsigned integer).
//! Anything but a decimal number below 16384 is `ERR invalid cursor`.
//!
//! A slot is the same slot on every node, so a cursor means the same thing
//! wherever it is used; a call returns at least one whole slot and then
//! stops once it has examined about `COUNT` keys. `docs/keyspace.md` spells
//! out the guarantee and its cost.
//!
//! # Which keys
//!
//! A standalone node shows every key. In a cluster a node shows the keys it
//! holds in the slots it serves: its own slots (those it is migrating away
//! included, for the keys still here), the slots it is importing (for the
//! keys already here), and on a replica its primary's. A cluster-wide scan
//! asks every primary in turn (keycafe-client's `scan`).

use keycafe_core::glob::{self, Glob};
use keycafe_core::{Args, Reply, SLOT_COUNT, Slot};

use super::{ArgCursor, CmdError, CmdResult, Ctx};
use crate::cluster::view::SlotState;
use crate::store::Transfer;

/// SCAN's default COUNT, as in Redis.
const DEFAULT_COUNT: usize = 10;

/// The value types Redis has besides strings: `SCAN ... TYPE` with one of
/// them finds nothing here, any other name is an error.
const OTHER_TYPES: [&[u8]; 5] = [b"list", b"set", b"zset", b"hash", b"stream"];

/// The slots whose keys this node shows (see the module documentation).
fn served(ctx: &Ctx<'_>) -> impl Fn(Slot) -> bool + use<> {
    let view = ctx.shared.cluster.as_ref().map(|cluster| cluster.view());
    move |slot| match &view {
        None => true,
        Some(view) => matches!(
            view.state(slot),
            SlotState::Mine
                | SlotState::MigratingTo(_)
                | SlotState::ImportingFrom(_)
                | SlotState::Replicated(_)
                | SlotState::PrimaryImportingFrom(_)
        ),
    }
}

/// A `MATCH` pattern, and the one slot it confines matching keys to, if any.
struct Pattern {
    /// `None` for `*`, which Redis does not even match against.
    glob: Option<Glob>,
    slot: Option<Slot>,
}

impl Pattern {
    fn new(pattern: &[u8]) -> Pattern {
        let glob = Glob::new(pattern);
        match glob.is_star() {
            true => Pattern::everything(),
            false => Pattern {
                glob: Some(glob),
                slot: glob::pattern_slot(pattern),
            },
        }
    }

    fn everything() -> Pattern {
        Pattern {
            glob: None,
            slot: None,
        }
    }

    fn may_hold(&self, slot: Slot) -> bool {
        self.slot.is_none_or(|only| only == slot)
    }

    fn matches(&self, key: &[u8]) -> bool {
        self.glob.as_ref().is_none_or(|glob| glob.matches(key))
    }
}

/// Keys copied out of the store, one allocation for all of them.
#[derive(Default)]
struct KeyList {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl KeyList {
    fn push(&mut self, key: &[u8]) {
        self.bytes.extend_from_slice(key);
        self.ends.push(self.bytes.len());
    }

    fn write(&self, reply: &mut Reply<'_>) {
        reply.array(self.ends.len());
        let mut start = 0;
        for &end in &self.ends {
            reply.bulk(&self.bytes[start..end]);
            start = end;
        }
    }
}

/// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]`
struct Scan {
    from: Slot,
    pattern: Pattern,
    count: usize,
    /// False for `TYPE` with a type no key here has.
    strings: bool,
}

impl Scan {
    fn parse(args: Args<'_>) -> CmdResult<Scan> {
        let mut cursor = ArgCursor::new(args);
        let from = parse_cursor(cursor.next_bytes()?)?;
        let mut scan = Scan {
            from,
            pattern: Pattern::everything(),
            count: DEFAULT_COUNT,
            strings: true,
        };
        // Each option needs its value; options may repeat, the last wins.
        while cursor.remaining() > 0 {
            let option = cursor.next_keyword()?;
            if cursor.remaining() == 0 {
                return Err(CmdError::Syntax);
            }
            let value = cursor.next_bytes()?;
            match option.as_bytes() {
                b"MATCH" => scan.pattern = Pattern::new(value),
                b"COUNT" => {
                    let count = super::parse::parse_int(value)?;
                    scan.count = usize::try_from(count)
                        .ok()
                        .filter(|&n| n >= 1)
                        .ok_or(CmdError::Syntax)?;
                }
                b"TYPE" => {
                    let name = value.to_ascii_lowercase();
                    if name == b"string" {
                        scan.strings = true;
                    } else if OTHER_TYPES.contains(&&name[..]) {
                        scan.strings = false;
                    } else {
                        return Err(CmdError::Other(format!(
                            "ERR unknown type name '{}'",
                            String::from_utf8_lossy(value)
                        )));
                    }
                }
                _ => return Err(CmdError::Syntax),
            }
        }
        Ok(scan)
    }
}

/// A SCAN cursor: the slot to continue from (see the module documentation).
fn parse_cursor(arg: &[u8]) -> CmdResult<Slot> {
    let invalid = || CmdError::Other("ERR invalid cursor".into());
    if arg.is_empty() || arg.len() > 5 || !arg.iter().all(u8::is_ascii_digit) {
        return Err(invalid());
    }
    std::str::from_utf8(arg)
        .ok()
        .and_then(|digits| digits.parse::<Slot>().ok())
        .filter(|&slot| slot < SLOT_COUNT)
        .ok_or_else(invalid)
}

/// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]`: the keys of one
/// or more whole slots, and the cursor to continue from.
pub fn scan(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let scan = Scan::parse(args)?;
    let serves = served(ctx);
    let pattern = &scan.pattern;
    let mut keys = KeyList::default();
    let next = ctx.store().scan_slots(
        scan.from,
        scan.count,
        ctx.now_ms(),
        |slot| pattern.may_hold(slot) && serves(slot),
        |key| {
            if scan.strings && pattern.matches(key) {
                keys.push(key);
            }
        },
    );
    reply.array(2);
    reply.bulk(next.unwrap_or(0).to_string().as_bytes());
    keys.write(reply);
    Ok(())
}

/// `KEYS pattern`: every key matching, in no particular order. Reads one
/// slot at a time, so unlike Redis's it is not one atomic snapshot: a key
/// that moves between two slots meanwhile (RENAME) may be listed twice or
/// not at all.
pub fn keys(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let mut cursor = ArgCursor::new(args);
    let pattern = Pattern::new(cursor.next_bytes()?);
    let serves = served(ctx);
    let mut keys = KeyList::default();
    ctx.store().scan_slots(
        0,
        usize::MAX,
        ctx.now_ms(),
        |slot| pattern.may_hold(slot) && serves(slot),
        |key| {
            if pattern.matches(key) {
                keys.push(key);
            }
        },
    );
    keys.write(reply);
    Ok(())
}

/// `RANDOMKEY`: any key, or nil if there is none.
pub fn randomkey(ctx: &mut Ctx<'_>, _args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let key = ctx.store().random_key(ctx.now_ms(), served(ctx));
    reply.optional_bulk(key.as_deref());
    Ok(())
}

/// RENAME and RENAMENX.
fn rename_generic(ctx: &mut Ctx<'_>, args: Args<'_>, only_if_absent: bool) -> CmdResult<Transfer> {
    let mut cursor = ArgCursor::new(args);
    let (from, to) = (cursor.next_bytes()?, cursor.next_bytes()?);
    let moved = ctx
        .store()
        .rename(from, to, ctx.now_ms(), only_if_absent)
        .map_err(|_| CmdError::TooLarge)?;
    match moved {
        Transfer::NoSource => Err(CmdError::Other("ERR no such key".into())),
        moved => Ok(moved),
    }
}

/// `RENAME key newkey`: moves the value and its deadline, replacing
/// whatever `newkey` held.
pub fn rename(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    rename_generic(ctx, args, false)?;
    reply.ok();
    Ok(())
}

/// `RENAMENX key newkey`: 1 if renamed, 0 if `newkey` exists (even when it
/// is `key` itself).
pub fn renamenx(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let moved = rename_generic(ctx, args, true)?;
    reply.integer(i64::from(moved == Transfer::Done));
    Ok(())
}

/// `COPY source destination [DB destination-db] [REPLACE]`: 1 if copied
/// (value and deadline), 0 if the source is missing or the destination
/// exists and REPLACE was not given. A node has one database, so `DB 0` is
/// the only one there is.
pub fn copy(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let mut cursor = ArgCursor::new(args);
    let (from, to) = (cursor.next_bytes()?, cursor.next_bytes()?);
    let mut replace = false;
    while cursor.remaining() > 0 {
        match cursor.next_keyword()?.as_bytes() {
            b"REPLACE" => replace = true,
            b"DB" if cursor.remaining() > 0 => {
                let db = cursor.next_int()?;
                if i32::try_from(db).is_err() {
                    return Err(CmdError::Other(format!(
                        "ERR value is out of range, value must between {} and {}",
                        i32::MIN,
                        i32::MAX
                    )));
                }
                if db != 0 {
                    return Err(CmdError::Other("ERR DB index is out of range".into()));
                }
            }
            _ => return Err(CmdError::Syntax),
        }
    }
    if from == to {
        return Err(CmdError::Other(
            "ERR source and destination objects are the same".into(),
        ));
    }
    let copied = ctx
        .store()
        .copy(from, to, ctx.now_ms(), replace)
        .map_err(|_| CmdError::TooLarge)?;
    reply.integer(i64::from(copied == Transfer::Done));
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use keycafe_core::Frame;

    use crate::cmd::strings::harness::*;
    use crate::store::{Expiry, now_ms};

    /// Runs SCAN to the end with these options; every key it returned.
    fn scan_all(node: &mut Node, options: &str) -> Vec<String> {
        let mut cursor = "0".to_string();
        let mut keys = Vec::new();
        for _ in 0..=16384 {
            let Frame::Array(reply) = node.run(&format!("SCAN {cursor} {options}")) else {
                panic!("SCAN answers an array");
            };
            let [Frame::Bulk(next), Frame::Array(page)] = &reply[..] else {
                panic!("SCAN answers a cursor and a page: {reply:?}");
            };
            keys.extend(page.iter().map(|key| match key {
                Frame::Bulk(key) => String::from_utf8_lossy(key).into_owned(),
                other => panic!("a key is a bulk string, not {other:?}"),
            }));
            cursor = String::from_utf8_lossy(next).into_owned();
            if cursor == "0" {
                return keys;
            }
        }
        panic!("SCAN did not finish");
    }

    fn set_of(keys: &[String]) -> HashSet<&str> {
        keys.iter().map(String::as_str).collect()
    }

    #[test]
    fn scan_walks_every_key_once() {
        let mut node = Node::new();
        for i in 0..500 {
            node.run(&format!("SET key:{i} v"));
        }
        node.run("SET other v");
        for options in ["", "COUNT 1", "COUNT 1000", "count 7 TYPE STRING"] {
            let keys = scan_all(&mut node, options);
            assert_eq!(keys.len(), 501, "{options}");
            assert_eq!(set_of(&keys).len(), 501, "{options}");
        }
        let matched = scan_all(&mut node, "MATCH key:1?? COUNT 50");
        assert_eq!(matched.len(), 100);
        assert!(scan_all(&mut node, "TYPE hash").is_empty());
        assert!(scan_all(&mut node, "MATCH nothing*").is_empty());
        // A pattern that pins a slot reads that slot alone.
        node.run("SET {tag}a v");
        node.run("SET {tag}b v");
        let tagged = scan_all(&mut node, "MATCH {tag}*");
        assert_eq!(set_of(&tagged), HashSet::from(["{tag}a", "{tag}b"]));
    }

    #[test]
    fn scan_skips_expired_keys() {
        let mut node = Node::new();
        node.store().set(b"gone", b"v", 0, Expiry::At(1)).unwrap();
        let later = now_ms() + 100_000;
        node.store()
            .set(b"here", b"v", 0, Expiry::At(later))
            .unwrap();
        assert_eq!(scan_all(&mut node, ""), ["here"]);
        assert_eq!(node.run("KEYS *"), array(vec![bulk("here")]));
    }

    #[test]
    fn scan_errors() {
        let invalid = err("ERR invalid cursor");
        Node::new().script(&[
            ("SCAN abc", invalid.clone()),
            ("SCAN -1", invalid.clone()),
            ("SCAN 16384", invalid.clone()),
            ("SCAN 99999999999999999999", invalid.clone()),
            // The cursor is checked before the options.
            ("SCAN x COUNT 0", invalid),
            ("SCAN 0 COUNT 0", err("ERR syntax error")),
            ("SCAN 0 COUNT -1", err("ERR syntax error")),
            (
                "SCAN 0 COUNT many",
                err("ERR value is not an integer or out of range"),
            ),
            ("SCAN 0 MATCH", err("ERR syntax error")),
            ("SCAN 0 LIMIT 3", err("ERR syntax error")),
            ("SCAN 0 TYPE blob", err("ERR unknown type name 'blob'")),
            (
                "SCAN",
                err("ERR wrong number of arguments for 'scan' command"),
            ),
            ("SCAN 16383", array(vec![bulk("0"), array(vec![])])),
        ]);
    }

    #[test]
    fn keys_matches_with_redis_globs() {
        let mut node = Node::new();
        for key in ["hello", "hallo", "hxllo", "hllo", "heeeello", "h*llo"] {
            node.run(&format!("SET {key} v"));
        }
        let keys = |node: &mut Node, pattern: &str| -> HashSet<String> {
            let Frame::Array(found) = node.run(&format!("KEYS {pattern}")) else {
                panic!("KEYS answers an array");
            };
            found
                .into_iter()
                .map(|key| match key {
                    Frame::Bulk(key) => String::from_utf8_lossy(&key).into_owned(),
                    other => panic!("{other:?}"),
                })
                .collect()
        };
        let set = |keys: &[&str]| keys.iter().map(|k| k.to_string()).collect::<HashSet<_>>();
        assert_eq!(
            keys(&mut node, "h?llo"),
            set(&["hello", "hallo", "hxllo", "h*llo"])
        );
        assert_eq!(keys(&mut node, "h[ae]llo"), set(&["hello", "hallo"]));
        assert_eq!(
            keys(&mut node, "h[^e]llo"),
            set(&["hallo", "hxllo", "h*llo"])
        );
        assert_eq!(keys(&mut node, r"h\*llo"), set(&["h*llo"]));
        assert_eq!(keys(&mut node, "*").len(), 6);
        assert!(keys(&mut node, "x*").is_empty());
    }

    #[test]
    fn the_empty_key_is_listed_only_by_a_bare_star() {
        let mut node = Node::new();
        node.run_args(&[b"SET", b"", b"v"]);
        node.script(&[
            ("KEYS *", array(vec![bulk("")])),
            ("KEYS **", array(vec![])),
            ("SCAN 0 MATCH **", array(vec![bulk("0"), array(vec![])])),
        ]);
    }

    #[test]
    fn randomkey() {
        let mut node = Node::new();
        assert_eq!(node.run("RANDOMKEY"), null());
        node.run("SET a 1");
        node.run("SET b 2");
        let mut drawn = HashSet::new();
        for _ in 0..100 {
            match node.run("RANDOMKEY") {
                Frame::Bulk(key) => drawn.insert(key.to_vec()),
                other => panic!("{other:?}"),
            };
        }
        assert_eq!(drawn, HashSet::from([b"a".to_vec(), b"b".to_vec()]));
        assert_eq!(
            node.run("RANDOMKEY x"),
            err("ERR wrong number of arguments for 'randomkey' command")
        );
    }

    #[test]
    fn rename_and_renamenx() {
        let no_such_key = err("ERR no such key");
        let mut node = Node::new();
        node.script(&[
            ("RENAME a b", no_such_key.clone()),
            ("RENAMENX a b", no_such_key.clone()),
            ("SET a 1", ok()),
            ("EXPIRE a 100", int(1)),
            ("RENAME a b", ok()),
            ("EXISTS a", int(0)),
            ("GET b", bulk("1")),
            ("TTL b", int(100)),
            ("SET c 3", ok()),
            ("RENAMENX b c", int(0)),
            ("RENAME b c", ok()),
            ("GET c", bulk("1")),
            ("TTL c", int(100)),
            ("RENAMENX c d", int(1)),
            ("GET d", bulk("1")),
            // To itself: nothing happens, but a missing key is still missing.
            ("RENAME d d", ok()),
            ("RENAMENX d d", int(0)),
            ("RENAME x x", no_such_key),
            ("SET e 5", ok()),
            ("RENAME d e", ok()),
            ("TTL e", int(100)),
            ("DBSIZE", int(1)),
        ]);
    }

    #[test]
    fn copy() {
        let mut node = Node::new();
        node.script(&[
            ("COPY a b", int(0)),
            ("SET a 1", ok()),
            ("EXPIRE a 100", int(1)),
            ("COPY a b", int(1)),
            ("TTL b", int(100)),
            ("GET a", bulk("1")),
            ("SET c 3", ok()),
            ("COPY a c", int(0)),
            ("GET c", bulk("3")),
            ("COPY a c REPLACE", int(1)),
            ("GET c", bulk("1")),
            ("COPY a c DB 0 replace", int(1)),
            (
                "COPY a a",
                err("ERR source and destination objects are the same"),
            ),
            ("COPY a d DB 1", err("ERR DB index is out of range")),
            (
                "COPY a d DB x",
                err("ERR value is not an integer or out of range"),
            ),
            (
                "COPY a d DB 99999999999",
                err("ERR value is out of range, value must between -2147483648 and 2147483647"),
            ),
            ("COPY a d DB", err("ERR syntax error")),
            ("COPY a d NOW", err("ERR syntax error")),
            (
                "COPY a",
                err("ERR wrong number of arguments for 'copy' command"),
            ),
        ]);
    }
}
