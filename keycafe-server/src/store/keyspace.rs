//! The keyspace as a whole: walking it (SCAN, KEYS), drawing a random key,
//! and the commands that move a value between two keys (RENAME, COPY).
//!
//! # Walking by slot
//!
//! A hash table that grows or shrinks moves its keys between buckets, so a
//! cursor that names a bucket can skip keys that moved behind it; Redis
//! answers that with a reverse-binary cursor that stays correct across one
//! rehash. Keycafe has an easier unit to name: every slot has its own table
//! (see the [module documentation](super)), so a walk goes slot by slot,
//! and reads a slot's whole table under its shard's lock in one go.
//! Whatever rehashing happens between two steps, a step never sees half a
//! table, so a key present from the start of a walk to its end is always
//! found, exactly once. The price is that a step is at least one whole slot:
//! a slot holding a million keys (one hash tag for everything) is read, and
//! answered, at once. `docs/keyspace.md` says what that means for SCAN.
//!
//! The walk only reads: keys past their deadline are skipped, not removed,
//! so that a replica (which never expires keys itself) walks the same way.
//!
//! # Two keys at once
//!
//! RENAME and COPY lock both keys' shards, in ascending order as
//! [`Store::set_many`] does, so that no other command sees the value in
//! neither or (for RENAME) both places, and the change feed hears the
//! whole move while both locks are held: a `Del` of the source and a `Set`
//! of the destination for RENAME, a `Set` for COPY.

use std::sync::MutexGuard;

use keycafe_core::{SLOT_COUNT, Slot};

use super::entry::Entry;
use super::expiry::Due;
use super::memory::allocation_cost;
use super::shard::Shard;
use super::{MAX_STRING_LEN, Store, StoreError};

/// What a RENAME or COPY did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    /// The destination holds the source's value and deadline now.
    Done,
    /// The source key does not exist: nothing changed.
    NoSource,
    /// The destination exists and was not to be overwritten: nothing changed.
    DestinationExists,
}

/// The one or two shards a two-key command has locked.
struct Pair<'s> {
    low: usize,
    first: MutexGuard<'s, Shard>,
    second: Option<MutexGuard<'s, Shard>>,
}

impl Pair<'_> {
    fn get(&mut self, shard: usize) -> &mut Shard {
        match (shard == self.low, self.second.as_deref_mut()) {
            (false, Some(second)) => second,
            _ => &mut self.first,
        }
    }
}

impl Store {
    /// One step of a walk over the keyspace (SCAN): from slot `from` on,
    /// calls `visit` with every key alive at `now` of each slot `serves`
    /// accepts, a whole slot at a time under its shard's lock, until the
    /// slots read so far held at least `count` keys. Returns the slot to
    /// continue from, or `None` when the walk is complete. A key alive for
    /// a whole walk is visited exactly once, however tables are resized
    /// between steps, since each slot is read in one go (see
    /// `store/keyspace.rs`).
    pub fn scan_slots(
        &self,
        from: Slot,
        count: usize,
        now: u64,
        serves: impl Fn(Slot) -> bool,
        mut visit: impl FnMut(&[u8]),
    ) -> Option<Slot> {
        let mut examined = 0;
        for slot in from..SLOT_COUNT {
            if serves(slot) {
                let (shard, table) = self.slot_location(slot);
                let shard = self.lock(shard);
                let table = shard.table(table);
                examined += table.len();
                for entry in table {
                    if entry.deadline().is_none_or(|d| d >= now) {
                        visit(entry.key());
                    }
                }
            }
            // At least one slot per step, so that every step makes progress.
            if examined >= count {
                return Some(slot + 1).filter(|&next| next < SLOT_COUNT);
            }
        }
        None
    }

    /// A key alive at `now` in a slot `serves` accepts, drawn at random
    /// (RANDOMKEY), or `None` if there is none. Draws from the shards in
    /// turn from a random one, each from a random place in it, so keys are
    /// not all equally likely (those after a long empty stretch are more
    /// so), as in Redis; when the draws find nothing, looks at every slot.
    pub fn random_key(&self, now: u64, serves: impl Fn(Slot) -> bool) -> Option<Vec<u8>> {
        let shards = self.shards.len();
        let start = rand::random::<u64>() as usize % shards;
        for i in 0..shards {
            let shard = (start + i) % shards;
            let mut found = None;
            self.lock(shard).random_keys(1, |table, _, entry| {
                let alive = entry.deadline().is_none_or(|d| d >= now);
                if alive && serves(self.slot_of(shard, table)) {
                    found = Some(entry.key().to_vec());
                }
            });
            if found.is_some() {
                return found;
            }
        }
        // Only expired keys, or keys of slots not served, were drawn: the
        // first live key from a random slot on will do.
        let start = rand::random::<u16>() % SLOT_COUNT;
        (0..SLOT_COUNT)
            .map(|i| (start + i) % SLOT_COUNT)
            .filter(|&slot| serves(slot))
            .find_map(|slot| {
                let (shard, table) = self.slot_location(slot);
                let shard = self.lock(shard);
                shard
                    .table(table)
                    .iter()
                    .find(|e| e.deadline().is_none_or(|d| d >= now))
                    .map(|e| e.key().to_vec())
            })
    }

    /// True if `key` is alive at `now`, without counting an access (TYPE):
    /// a key past its deadline is removed on a primary, as any lookup does.
    pub fn contains(&self, key: &[u8], now: u64) -> bool {
        let at = self.locate(key);
        let mut shard = self.lock(at.shard);
        shard.peek(at.table, at.hash, key, now).is_some()
    }

    /// The bytes `key` costs, if it is alive at `now` (MEMORY USAGE): its
    /// entry's allocation as the allocator hands it out, its share of its
    /// slot's hash table (buckets, control bytes and the slack that keeps
    /// the table fast, divided among the table's keys), and its item in the
    /// expiry queue if it has a deadline. Does not count as an access.
    pub fn memory_usage(&self, key: &[u8], now: u64) -> Option<usize> {
        let at = self.locate(key);
        let mut shard = self.lock(at.shard);
        let bucket = shard.peek(at.table, at.hash, key, now)?;
        let entry = shard.entry(at.table, bucket);
        let table = shard.table(at.table);
        let table_share = table.allocation_size().div_ceil(table.len().max(1));
        let queued = match entry.deadline() {
            Some(_) => std::mem::size_of::<Due>(),
            None => 0,
        };
        Some(allocation_cost(entry.size()) + table_share + queued)
    }

    /// Moves `from`'s value and deadline to `to` (RENAME, or RENAMENX if
    /// `only_if_absent`), replacing whatever `to` held. Renaming a key to
    /// itself changes nothing (and is refused if `only_if_absent`, since
    /// the destination exists).
    pub fn rename(
        &self,
        from: &[u8],
        to: &[u8],
        now: u64,
        only_if_absent: bool,
    ) -> Result<Transfer, StoreError> {
        self.transfer(from, to, now, !only_if_absent, true)
    }

    /// Copies `from`'s value and deadline to `to` (COPY), replacing what
    /// `to` held only if `replace`. Copying a key to itself changes nothing
    /// (and is refused unless `replace`).
    pub fn copy(
        &self,
        from: &[u8],
        to: &[u8],
        now: u64,
        replace: bool,
    ) -> Result<Transfer, StoreError> {
        self.transfer(from, to, now, replace, false)
    }

    fn transfer(
        &self,
        from: &[u8],
        to: &[u8],
        now: u64,
        overwrite: bool,
        remove_source: bool,
    ) -> Result<Transfer, StoreError> {
        if to.len() > MAX_STRING_LEN {
            return Err(StoreError::TooLarge);
        }
        let (src, dst) = (self.locate(from), self.locate(to));
        let mut pair = self.lock_pair(src.shard, dst.shard);
        // The destination first: a lookup may remove an expired key, which
        // can resize the table both keys share, and the source's bucket
        // must still be valid when it is used.
        let dst_exists = pair
            .get(dst.shard)
            .find(dst.table, dst.hash, to, now)
            .is_some();
        let Some(src_bucket) = pair.get(src.shard).find(src.table, src.hash, from, now) else {
            return Ok(Transfer::NoSource);
        };
        if dst_exists && !overwrite {
            return Ok(Transfer::DestinationExists);
        }
        if from == to {
            // The key already holds its own value.
            return Ok(Transfer::Done);
        }
        let source = pair.get(src.shard).entry(src.table, src_bucket);
        let mut moved = Entry::new(to, source.value(), source.deadline());
        if source.is_raw() {
            // Redis moves (or duplicates) the object, encoding and all.
            moved.mark_raw();
        }
        if remove_source {
            pair.get(src.shard).remove(src.table, src_bucket);
        }
        // Removing the source may have resized the table: look again.
        let shard = pair.get(dst.shard);
        match shard.peek(dst.table, dst.hash, to, now) {
            Some(bucket) => shard.modify(dst.table, bucket, dst.hash, |entry| {
                let mut moved = moved;
                moved.set_access(entry.access());
                *entry = moved;
            }),
            None => {
                shard.insert(dst.table, dst.hash, moved, now);
            }
        }
        Ok(Transfer::Done)
    }

    /// Locks one shard, or two in ascending order.
    fn lock_pair(&self, a: usize, b: usize) -> Pair<'_> {
        let (low, high) = (a.min(b), a.max(b));
        let first = self.lock(low);
        let second = (high != low).then(|| self.lock(high));
        Pair { low, first, second }
    }

    /// The slot of table `table` of shard `shard`.
    fn slot_of(&self, shard: usize, table: usize) -> Slot {
        // Both come from this store's own layout, so the slot is < 16384.
        ((table << self.shard_shift) | shard) as Slot
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use keycafe_core::key_slot;

    use super::super::tests::recorded_store;
    use super::*;
    use crate::store::{Expiry, Role, Ttl};

    fn walk(store: &Store, count: usize, now: u64, serves: impl Fn(Slot) -> bool) -> Vec<Vec<u8>> {
        let mut keys = Vec::new();
        let mut from = 0;
        loop {
            let next = store.scan_slots(from, count, now, &serves, |k| keys.push(k.to_vec()));
            match next {
                Some(slot) => {
                    assert!(slot > from, "a step always makes progress");
                    from = slot;
                }
                None => return keys,
            }
        }
    }

    #[test]
    fn a_walk_finds_every_live_key_once() {
        let store = Store::new();
        for i in 0..1000 {
            store
                .set(format!("k{i}").as_bytes(), b"v", 0, Expiry::Persist)
                .unwrap();
        }
        store.set(b"old", b"v", 0, Expiry::At(5)).unwrap();
        store.set(b"later", b"v", 0, Expiry::At(50)).unwrap();
        for count in [1, 10, 100, 100_000] {
            let keys = walk(&store, count, 10, |_| true);
            let unique: HashSet<_> = keys.iter().cloned().collect();
            assert_eq!(keys.len(), 1001, "COUNT {count}");
            assert_eq!(unique.len(), 1001);
            assert!(unique.contains(&b"later"[..]) && !unique.contains(&b"old"[..]));
        }
        // Expired keys are skipped, not removed.
        assert_eq!(store.stats().keys, 1002);
    }

    #[test]
    fn a_step_returns_whole_slots_and_only_served_ones() {
        let store = Store::new();
        for i in 0..50 {
            store
                .set(format!("{{a}}{i}").as_bytes(), b"v", 0, Expiry::Persist)
                .unwrap();
        }
        store.set(b"{b}", b"v", 0, Expiry::Persist).unwrap();
        let (a, b) = (key_slot(b"{a}"), key_slot(b"{b}"));
        let mut seen = 0;
        let next = store.scan_slots(0, 1, 0, |_| true, |_| seen += 1);
        let first = a.min(b);
        assert_eq!(
            next,
            Some(first + 1),
            "stops after the first slot with keys"
        );
        assert_eq!(seen, if first == a { 50 } else { 1 });
        let only_b = walk(&store, 10, 0, |slot| slot == b);
        assert_eq!(only_b, [b"{b}".to_vec()]);
        assert!(walk(&store, 10, 0, |_| false).is_empty());
    }

    #[test]
    fn a_walk_survives_tables_growing_and_shrinking_between_steps() {
        let store = Store::new();
        let kept: Vec<Vec<u8>> = (0..200)
            .map(|i| format!("{{t}}kept{i}").into_bytes())
            .collect();
        for key in &kept {
            store.set(key, b"v", 0, Expiry::Persist).unwrap();
        }
        let mut found = HashSet::new();
        let mut from = 0;
        let mut round = 0;
        while let Some(next) = store.scan_slots(
            from,
            1,
            0,
            |_| true,
            |k| {
                found.insert(k.to_vec());
            },
        ) {
            // Between steps, grow then shrink the table of the tag's slot.
            for i in 0..2000 {
                let key = format!("{{t}}churn{round}.{i}");
                store.set(key.as_bytes(), b"v", 0, Expiry::Persist).unwrap();
            }
            for i in 0..2000 {
                store.remove(format!("{{t}}churn{round}.{i}").as_bytes(), 0);
            }
            round += 1;
            from = next;
        }
        assert!(kept.iter().all(|key| found.contains(key)));
    }

    #[test]
    fn random_keys_are_live_and_served() {
        let store = Store::new();
        assert_eq!(store.random_key(0, |_| true), None);
        store.set(b"old", b"v", 0, Expiry::At(5)).unwrap();
        assert_eq!(store.random_key(10, |_| true), None, "only an expired key");
        store.set(b"a", b"v", 0, Expiry::Persist).unwrap();
        store.set(b"b", b"v", 0, Expiry::Persist).unwrap();
        let mut drawn = HashSet::new();
        for _ in 0..200 {
            drawn.insert(store.random_key(10, |_| true).unwrap());
        }
        assert_eq!(drawn, HashSet::from([b"a".to_vec(), b"b".to_vec()]));
        let only_b = |slot| slot == key_slot(b"b");
        for _ in 0..20 {
            assert_eq!(store.random_key(10, only_b), Some(b"b".to_vec()));
        }
        assert_eq!(store.random_key(10, |_| false), None);
    }

    #[test]
    fn rename_moves_value_and_deadline() {
        let store = Store::new();
        store.set(b"src", b"v", 0, Expiry::At(1000)).unwrap();
        store.set(b"dst", b"old", 0, Expiry::Persist).unwrap();
        assert_eq!(
            store.rename(b"src", b"dst", 10, true),
            Ok(Transfer::DestinationExists)
        );
        assert_eq!(store.rename(b"src", b"dst", 10, false), Ok(Transfer::Done));
        assert!(!store.contains(b"src", 10));
        let ttl = store.read(b"dst", 10, |e| (e.value().map(<[u8]>::to_vec), e.ttl()));
        assert_eq!(ttl, (Some(b"v".to_vec()), Ttl::Remaining(990)));
        assert_eq!(
            store.rename(b"src", b"x", 10, false),
            Ok(Transfer::NoSource)
        );
        assert_eq!(store.rename(b"dst", b"dst", 10, false), Ok(Transfer::Done));
        assert_eq!(
            store.rename(b"dst", b"dst", 10, true),
            Ok(Transfer::DestinationExists)
        );
        assert_eq!(store.stats().keys, 1);
        // An expired source is no source; an expired destination is absent.
        store.set(b"gone", b"v", 0, Expiry::At(5)).unwrap();
        assert_eq!(
            store.rename(b"gone", b"y", 10, false),
            Ok(Transfer::NoSource)
        );
        store.set(b"stale", b"v", 0, Expiry::At(5)).unwrap();
        assert_eq!(store.rename(b"dst", b"stale", 10, true), Ok(Transfer::Done));
        assert_eq!(store.stats().keys, 1);
    }

    #[test]
    fn rename_within_one_table_and_across_shards() {
        let store = Store::new();
        // Hundreds of keys in one table, so that removing one may shrink it.
        for i in 0..300 {
            store
                .set(
                    format!("{{t}}{i}").as_bytes(),
                    format!("{i}").as_bytes(),
                    0,
                    Expiry::Persist,
                )
                .unwrap();
        }
        for i in 0..300 {
            let (from, to) = (format!("{{t}}{i}"), format!("{{t}}new{i}"));
            assert_eq!(
                store.rename(from.as_bytes(), to.as_bytes(), 0, false),
                Ok(Transfer::Done)
            );
        }
        for i in 0..300 {
            let value = store.get_with(format!("{{t}}new{i}").as_bytes(), 0, |v| {
                v.map(<[u8]>::to_vec)
            });
            assert_eq!(value, Some(format!("{i}").into_bytes()));
        }
        // Keys in different shards, both ways round.
        store.set(b"a", b"1", 0, Expiry::Persist).unwrap();
        assert_eq!(store.rename(b"a", b"b", 0, false), Ok(Transfer::Done));
        assert_eq!(store.rename(b"b", b"a", 0, false), Ok(Transfer::Done));
        assert_eq!(
            store.get_with(b"a", 0, |v| v.map(<[u8]>::to_vec)),
            Some(b"1".to_vec())
        );
        assert_eq!(store.stats().keys, 301);
    }

    #[test]
    fn a_raw_value_stays_raw_when_moved_or_copied() {
        let store = Store::new();
        store.set(b"a", b"1", 0, Expiry::Persist).unwrap();
        store.entry(b"a", 0, |e| e.append(b"2")).unwrap();
        store.copy(b"a", b"b", 0, false).unwrap();
        store.rename(b"a", b"c", 0, false).unwrap();
        for key in [&b"b"[..], b"c"] {
            assert_eq!(store.object(key, 0).map(|o| o.encoding), Some("raw"));
        }
        store.set(b"d", b"12", 0, Expiry::Persist).unwrap();
        store.copy(b"d", b"e", 0, false).unwrap();
        assert_eq!(store.object(b"e", 0).map(|o| o.encoding), Some("int"));
    }

    #[test]
    fn copy_keeps_the_source() {
        let store = Store::new();
        store.set(b"src", b"v", 0, Expiry::At(1000)).unwrap();
        store.set(b"dst", b"old", 0, Expiry::Persist).unwrap();
        assert_eq!(
            store.copy(b"src", b"dst", 10, false),
            Ok(Transfer::DestinationExists)
        );
        assert_eq!(store.copy(b"src", b"dst", 10, true), Ok(Transfer::Done));
        assert_eq!(store.copy(b"src", b"new", 10, false), Ok(Transfer::Done));
        for key in [&b"src"[..], b"dst", b"new"] {
            let state = store.read(key, 10, |e| (e.value().map(<[u8]>::to_vec), e.ttl()));
            assert_eq!(state, (Some(b"v".to_vec()), Ttl::Remaining(990)), "{key:?}");
        }
        assert_eq!(store.copy(b"nope", b"x", 10, true), Ok(Transfer::NoSource));
    }

    #[test]
    fn moves_are_told_to_the_feed_as_whole_states() {
        let (store, recorder) = recorded_store();
        recorder
            .listening
            .store(true, std::sync::atomic::Ordering::Relaxed);
        store.set(b"a", b"1", 0, Expiry::At(500)).unwrap();
        store.set(b"b", b"2", 0, Expiry::Persist).unwrap();
        store.rename(b"a", b"c", 10, false).unwrap();
        store.rename(b"c", b"b", 10, false).unwrap();
        store.copy(b"b", b"d", 10, false).unwrap();
        store.rename(b"b", b"b", 10, false).unwrap();
        store.rename(b"nope", b"b", 10, false).unwrap();
        let expected: Vec<Vec<&str>> = vec![
            vec!["SET", "a", "1", "PXAT 500"],
            vec!["SET", "b", "2"],
            vec!["DEL", "a"],
            vec!["SET", "c", "1", "PXAT 500"],
            vec!["DEL", "c"],
            vec!["SET", "b", "1", "PXAT 500"],
            vec!["SET", "d", "1", "PXAT 500"],
        ];
        assert_eq!(*recorder.changes.lock().unwrap(), expected);
    }

    #[test]
    fn memory_usage_follows_the_allocation() {
        let store = Store::new();
        assert_eq!(store.memory_usage(b"k", 0), None);
        store.set(b"k", b"v", 0, Expiry::Persist).unwrap();
        let small = store.memory_usage(b"k", 0).unwrap();
        store.set(b"k", &[b'x'; 1000], 0, Expiry::Persist).unwrap();
        let large = store.memory_usage(b"k", 0).unwrap();
        assert_eq!(
            large - small,
            allocation_cost(8 + 1 + 1000) - allocation_cost(8 + 2)
        );
        store.set(b"k", &[b'x'; 1000], 0, Expiry::At(100)).unwrap();
        let volatile = store.memory_usage(b"k", 0).unwrap();
        assert!(
            volatile > large,
            "a deadline costs its bytes and a queue item"
        );
        assert_eq!(store.memory_usage(b"k", 200), None, "expired");
    }

    #[test]
    fn contains_does_not_count_as_an_access_and_a_replica_hides_expired_keys() {
        let store = Store::new();
        store.set(b"k", b"v", 0, Expiry::At(5)).unwrap();
        assert!(store.contains(b"k", 5));
        store.set_role(Role::Replica);
        assert!(!store.contains(b"k", 6));
        assert_eq!(store.stats().keys, 1, "kept for the primary's DEL");
        assert!(walk(&store, 10, 6, |_| true).is_empty());
    }
}
