//! One shard: the hash tables of its slots, its expiry queue and its
//! counters, all behind the one lock that [`super::Store`] takes.
//!
//! Every change to an entry goes through the few methods here ([`Shard::insert`],
//! [`Shard::modify`], [`Shard::remove`], expiry, eviction), so that the
//! bookkeeping that INFO, active expiry and `maxmemory` rely on (key and
//! volatile counts, bytes, the expiry queue) cannot drift from the tables —
//! and so that the change feed hears of every change, in order, while the
//! shard is still locked.
//!
//! A lookup that finds a key also updates its access history (see
//! `access.rs`), and the shard is where eviction samples keys and removes
//! the one it chose (see `evict.rs`).

use std::sync::Arc;

use foldhash::fast::RandomState;
use hashbrown::HashTable;
use std::hash::BuildHasher;

use super::Common;
use super::access::Tracking;
use super::entry::Entry;
use super::evict::{Candidate, Policy, Rank};
use super::expiry::{Due, ExpiryQueue};
use super::feed::Change;
use super::memory::{FLUSH_STEP, allocation_cost};

/// Where a key lives: its shard, the index of its slot's table in that shard,
/// and its hash (computed once per command, before the lock is taken).
#[derive(Debug, Clone, Copy)]
pub struct Location {
    pub shard: usize,
    pub table: usize,
    pub hash: u64,
}

/// Per-shard counters, summed by `Store::stats`. Plain integers: they only
/// change under the shard's lock.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    pub keys: usize,
    pub volatile: usize,
    /// Bytes of all entries' allocations, as the allocator's chunks.
    pub entry_bytes: usize,
    /// Bytes of the hash tables' allocations.
    pub table_bytes: usize,
    /// Keys removed because their deadline passed (lazily or actively).
    pub expired: u64,
    /// Keys removed to stay under `maxmemory`.
    pub evicted: u64,
    pub hits: u64,
    pub misses: u64,
    /// Keys set or removed, since start: what `save` rules count.
    pub changes: u64,
}

pub struct Shard {
    /// One table per slot of this shard, indexed by `slot / shard_count`.
    tables: Box<[HashTable<Entry>]>,
    expiry: ExpiryQueue,
    /// The store's hasher, needed here to rehash when a table grows.
    hasher: RandomState,
    /// The store's change feed, role, policy and memory gauge.
    common: Arc<Common>,
    pub counters: Counters,
    /// This shard's bytes as last passed on to the memory gauge.
    reported: usize,
    /// State of a xorshift generator: sampling and the LFU counter's coin.
    rng: u64,
    /// The transaction that owns this shard, 0 for none (see
    /// `transaction.rs`).
    pub owner: u64,
}

impl Shard {
    pub fn new(table_count: usize, hasher: RandomState, common: Arc<Common>) -> Shard {
        let mut shard = Shard {
            tables: (0..table_count).map(|_| HashTable::new()).collect(),
            expiry: ExpiryQueue::default(),
            hasher,
            common,
            counters: Counters::default(),
            reported: 0,
            rng: rand::random::<u64>() | 1,
            owner: 0,
        };
        shard.pass_on_memory();
        shard
    }

    /// The bucket of `key` if it is present and alive at `now`, counting
    /// this as an access. A key past its deadline is removed on the spot
    /// (lazy expiry) — except on a replica, which leaves that to its
    /// primary's `DEL` and only hides the key. (A replica's writes come from
    /// its primary, with `now` 0, so they never meet a hidden key.)
    pub fn find(&mut self, table: usize, hash: u64, key: &[u8], now: u64) -> Option<usize> {
        let bucket = self.peek(table, hash, key, now)?;
        self.touch(table, bucket, now);
        Some(bucket)
    }

    /// The value of `key` if it is alive at `now`, counted as a hit or a
    /// miss (GET, MGET).
    #[inline]
    pub fn read_counted(&mut self, table: usize, hash: u64, key: &[u8], now: u64) -> Option<&[u8]> {
        match self.find(table, hash, key, now) {
            Some(bucket) => {
                self.counters.hits += 1;
                Some(self.entry(table, bucket).value())
            }
            None => {
                self.counters.misses += 1;
                None
            }
        }
    }

    /// Like [`Shard::find`], without counting an access (`OBJECT`, which
    /// must not change what it reports).
    pub fn peek(&mut self, table: usize, hash: u64, key: &[u8], now: u64) -> Option<usize> {
        let tab = &self.tables[table];
        let bucket = tab.find_bucket_index(hash, |e| e.key() == key)?;
        let expired = tab
            .get_bucket(bucket)
            .and_then(Entry::deadline)
            .is_some_and(|d| d < now);
        if !expired {
            return Some(bucket);
        }
        if !self.common.expires_keys() {
            return None;
        }
        self.remove(table, bucket);
        self.counters.expired += 1;
        None
    }

    /// True if `key` is present and alive at `now`. Changes nothing: no
    /// access is counted and an expired key stays.
    pub fn holds(&self, table: usize, hash: u64, key: &[u8], now: u64) -> bool {
        self.tables[table]
            .find(hash, |e| e.key() == key)
            .is_some_and(|e| e.deadline().is_none_or(|d| d >= now))
    }

    /// Records an access to the entry in `bucket`. Writes the header only
    /// when the history changes: repeated reads within one clock tick cost
    /// no store.
    fn touch(&mut self, table: usize, bucket: usize, now: u64) {
        let tracking = self.common.tracking();
        let random = match tracking {
            Tracking::Lfu => self.next_random() as u32,
            Tracking::Lru => 0,
        };
        let now = clock_or_now(now);
        if let Some(entry) = self.tables[table].get_bucket_mut(bucket) {
            let history = tracking.touched(entry.access(), now, random);
            if history != entry.access() {
                entry.set_access(history);
            }
        }
    }

    /// The entry in a bucket returned by [`Shard::find`] or [`Shard::insert`].
    pub fn entry(&self, table: usize, bucket: usize) -> &Entry {
        self.tables[table]
            .get_bucket(bucket)
            .expect("bucket index from find or insert")
    }

    /// Adds an entry whose key is not in the table, written at `now`;
    /// returns its bucket.
    pub fn insert(&mut self, table: usize, hash: u64, mut entry: Entry, now: u64) -> usize {
        entry.set_access(self.common.tracking().fresh(clock_or_now(now)));
        self.counters.keys += 1;
        self.counters.entry_bytes += allocation_cost(entry.size());
        let deadline = entry.deadline();
        let hasher = &self.hasher;
        let tab = &mut self.tables[table];
        let table_before = tab.allocation_size();
        let bucket = tab
            .insert_unique(hash, entry, |e| hasher.hash_one(e.key()))
            .bucket_index();
        self.counters.table_bytes =
            self.counters.table_bytes + tab.allocation_size() - table_before;
        if let Some(deadline) = deadline {
            self.counters.volatile += 1;
            self.schedule(deadline, hash, table);
        }
        self.record_set(table, bucket);
        self.maybe_pass_on_memory();
        bucket
    }

    /// Changes the entry in `bucket` through `change`, then brings the
    /// counters and the expiry queue up to date.
    pub fn modify<R>(
        &mut self,
        table: usize,
        bucket: usize,
        hash: u64,
        change: impl FnOnce(&mut Entry) -> R,
    ) -> R {
        let entry = self.tables[table]
            .get_bucket_mut(bucket)
            .expect("bucket index from find or insert");
        let (size_before, deadline_before) = (entry.size(), entry.deadline());
        let out = change(entry);
        let (size_after, deadline_after) = (entry.size(), entry.deadline());
        self.counters.entry_bytes =
            self.counters.entry_bytes - allocation_cost(size_before) + allocation_cost(size_after);
        match (deadline_before, deadline_after) {
            (None, Some(_)) => self.counters.volatile += 1,
            (Some(_), None) => self.counters.volatile -= 1,
            _ => {}
        }
        if let Some(deadline) = deadline_after
            && deadline_before != deadline_after
        {
            self.schedule(deadline, hash, table);
        }
        self.record_set(table, bucket);
        self.maybe_pass_on_memory();
        out
    }

    /// Removes the entry in `bucket`.
    pub fn remove(&mut self, table: usize, bucket: usize) {
        if let Ok(occupied) = self.tables[table].get_bucket_entry(bucket) {
            let (entry, _) = occupied.remove();
            self.forget(&entry);
            self.maybe_shrink(table);
            if entry.deadline().is_some() {
                self.maybe_compact_expiry();
            }
            self.maybe_pass_on_memory();
        }
    }

    /// Tells the change feed the new state of the entry in `bucket`, and
    /// the key's watchers that it changed.
    fn record_set(&mut self, table: usize, bucket: usize) {
        self.counters.changes += 1;
        let entry = self.entry(table, bucket);
        let feed = &self.common.feed;
        if feed.is_listening() {
            feed.emit(Change::Set {
                key: entry.key(),
                value: entry.value(),
                deadline: entry.deadline(),
            });
        }
        self.common.watches.touch(entry.key());
    }

    /// Removes up to `budget` due items' worth of expired keys; returns how
    /// many keys were removed. Does nothing on a replica.
    pub fn expire_due(&mut self, now: u64, budget: usize) -> usize {
        if !self.common.expires_keys() {
            return 0;
        }
        let mut removed = 0;
        for _ in 0..budget {
            let Some(due) = self.expiry.pop_due(now) else {
                break;
            };
            let table = usize::from(due.table);
            // Every entry with this hash that is past its deadline goes: it is
            // usually the one key the item was pushed for, and any other is
            // expired too. A stale item matches nothing.
            while let Ok(occupied) =
                self.tables[table].find_entry(due.hash, |e| e.deadline().is_some_and(|d| d < now))
            {
                let (entry, _) = occupied.remove();
                self.forget(&entry);
                removed += 1;
            }
            self.maybe_shrink(table);
        }
        self.counters.expired += removed as u64;
        self.maybe_pass_on_memory();
        removed
    }

    /// The table of one slot, for listing and counting.
    pub fn table(&self, table: usize) -> &HashTable<Entry> {
        &self.tables[table]
    }

    /// Empties the shard and returns the old tables, so that the caller can
    /// free them after releasing the lock. Expiry and hit counts survive, as
    /// Redis's do.
    pub fn take_all(&mut self) -> Box<[HashTable<Entry>]> {
        let fresh = (0..self.tables.len()).map(|_| HashTable::new()).collect();
        self.expiry.clear();
        self.counters = Counters {
            keys: 0,
            volatile: 0,
            entry_bytes: 0,
            table_bytes: 0,
            // Redis counts a flush as one change per key it removed.
            changes: self.counters.changes + self.counters.keys as u64,
            ..self.counters
        };
        let old = std::mem::replace(&mut self.tables, fresh);
        self.pass_on_memory();
        old
    }

    /// Bytes this shard has allocated: entries, tables, table headers and
    /// the expiry queue. Kept up to date as they change, so this costs a few
    /// additions.
    pub fn allocated_bytes(&self) -> usize {
        self.counters.entry_bytes
            + self.counters.table_bytes
            + self.tables.len() * std::mem::size_of::<HashTable<Entry>>()
            + self.expiry.allocated_bytes()
    }

    /// Passes this shard's change in bytes on to the memory gauge once it
    /// adds up to a [`FLUSH_STEP`], so that writers do not all write one
    /// shared counter.
    fn maybe_pass_on_memory(&mut self) {
        if self.allocated_bytes().abs_diff(self.reported) >= FLUSH_STEP {
            self.pass_on_memory();
        }
    }

    /// Passes this shard's change in bytes on to the memory gauge now.
    fn pass_on_memory(&mut self) {
        let now = self.allocated_bytes();
        let delta = now as isize - self.reported as isize;
        if delta != 0 {
            self.common.memory.add_store(delta);
            self.reported = now;
        }
    }

    /// Offers eviction candidates from this shard (number `shard` of the
    /// store) to `offer`: `samples` random keys, from the tables or (for
    /// `volatile-*` policies) from the expiry queue, scored by `policy`.
    /// Under `volatile-ttl` the earliest deadline is offered as well.
    pub fn sample(
        &mut self,
        shard: usize,
        policy: Policy,
        samples: usize,
        now: u64,
        mut offer: impl FnMut(Candidate),
    ) {
        let tracking = policy.tracking();
        let rank = policy.rank();
        let candidate = |entry: &Entry, table: usize, hash: u64| Candidate {
            score: match rank {
                Rank::History => tracking.eviction_score(entry.access(), now),
                Rank::Deadline => u64::MAX - entry.deadline().unwrap_or(u64::MAX),
                Rank::Random => 0,
            },
            shard,
            table,
            hash,
            access: entry.access(),
            deadline: entry.deadline(),
        };
        if rank == Rank::Deadline
            && let Some((table, bucket, hash)) = self.earliest_deadline()
        {
            offer(candidate(self.entry(table, bucket), table, hash));
        }
        if policy.volatile_only() {
            for _ in 0..samples {
                if let Some((table, bucket, hash)) = self.random_volatile() {
                    offer(candidate(self.entry(table, bucket), table, hash));
                }
            }
        } else {
            let hasher = self.hasher.clone();
            self.random_keys(samples, |table, _, entry| {
                offer(candidate(entry, table, hasher.hash_one(entry.key())));
            });
        }
    }

    /// Removes the key `candidate` names if it is still as it was sampled
    /// (the same history and deadline): an eviction, told to the change feed
    /// as a `DEL`. Returns whether it did.
    pub fn evict(&mut self, candidate: &Candidate) -> bool {
        let found = self.tables[candidate.table].find_bucket_index(candidate.hash, |e| {
            e.access() == candidate.access && e.deadline() == candidate.deadline
        });
        match found {
            Some(bucket) => {
                self.evict_bucket(candidate.table, bucket);
                true
            }
            None => false,
        }
    }

    /// Evicts one random key (one with a deadline if `volatile_only`);
    /// false if there is none.
    pub fn evict_random(&mut self, volatile_only: bool) -> bool {
        let found = match volatile_only {
            true => self
                .random_volatile()
                .map(|(table, bucket, _)| (table, bucket)),
            false => {
                let mut found = None;
                self.random_keys(1, |table, bucket, _| found = Some((table, bucket)));
                found
            }
        };
        match found {
            Some((table, bucket)) => {
                self.evict_bucket(table, bucket);
                true
            }
            None => false,
        }
    }

    fn evict_bucket(&mut self, table: usize, bucket: usize) {
        self.remove(table, bucket);
        self.counters.evicted += 1;
        // Whoever evicts is waiting to see memory go down.
        self.pass_on_memory();
    }

    /// Calls `visit` with up to `count` keys (table, bucket, entry) that
    /// follow a random bucket of a random table: the rest of that table, then
    /// the next tables. Keys sit in a table in the order of their hashes, so
    /// neighbours are as random a sample as any, and reading them together
    /// touches a table's control bytes once instead of once per key: sampling
    /// is bound by cache misses. Keys after long empty stretches are a little
    /// more likely; eviction only needs its samples spread over the shard.
    pub(super) fn random_keys(
        &mut self,
        count: usize,
        mut visit: impl FnMut(usize, usize, &Entry),
    ) {
        if self.counters.keys == 0 || count == 0 {
            return;
        }
        let tables = self.tables.len();
        let start = self.next_random() as usize % tables;
        let from = self.next_random() as usize;
        let mut seen = 0;
        for i in 0..tables {
            let table = (start + i) % tables;
            let tab = &self.tables[table];
            if tab.is_empty() {
                continue;
            }
            // A power of two. The first table is read from a random bucket
            // round to where it started, the others from their start.
            let buckets = tab.num_buckets();
            let first = if i == 0 { from } else { 0 };
            for j in 0..buckets {
                let bucket = (first + j) & (buckets - 1);
                if let Some(entry) = tab.get_bucket(bucket) {
                    visit(table, bucket, entry);
                    seen += 1;
                    if seen == count {
                        return;
                    }
                }
            }
        }
    }

    /// A random key with a deadline, drawn from the expiry queue; `None`
    /// only if there is none.
    fn random_volatile(&mut self) -> Option<(usize, usize, u64)> {
        // Items left behind by changed or removed keys are usually at most
        // two in three (the queue compacts beyond that), so a few draws
        // nearly always find a live one...
        for _ in 0..4 {
            let index = self.next_random() as usize;
            let due = self.expiry.get(index)?;
            if let Some(found) = self.live(&due) {
                return Some(found);
            }
        }
        // ...but evictions leave more behind, so when they do not, the
        // earliest deadline will do, clearing stale items on the way.
        self.earliest_deadline()
    }

    /// The key with the earliest deadline; stale items met at the top of
    /// the queue on the way are dropped.
    fn earliest_deadline(&mut self) -> Option<(usize, usize, u64)> {
        while let Some(due) = self.expiry.peek() {
            if let Some(found) = self.live(&due) {
                return Some(found);
            }
            self.expiry.pop();
        }
        None
    }

    /// The key an expiry item was pushed for, if it still has that deadline.
    fn live(&self, due: &Due) -> Option<(usize, usize, u64)> {
        let table = usize::from(due.table);
        let bucket = self.tables[table]
            .find_bucket_index(due.hash, |e| e.deadline() == Some(due.deadline))?;
        Some((table, bucket, due.hash))
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64: plenty for picking samples and flipping LFU coins.
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    /// Items waiting in the expiry queue (for tests of its compaction).
    #[cfg(test)]
    pub fn queued_deadlines(&self) -> usize {
        self.expiry.len()
    }

    /// Calls `f` with every entry of one slot's table: key, value, deadline.
    pub fn for_each(&self, table: usize, mut f: impl FnMut(&[u8], &[u8], Option<u64>)) {
        for entry in &self.tables[table] {
            f(entry.key(), entry.value(), entry.deadline());
        }
    }

    /// Bookkeeping for an entry that has left the table, and its `DEL`.
    fn forget(&mut self, entry: &Entry) {
        self.counters.changes += 1;
        let feed = &self.common.feed;
        if feed.is_listening() {
            feed.emit(Change::Del { key: entry.key() });
        }
        self.common.watches.touch(entry.key());
        self.counters.keys -= 1;
        self.counters.entry_bytes -= allocation_cost(entry.size());
        if entry.deadline().is_some() {
            self.counters.volatile -= 1;
        }
    }

    fn schedule(&mut self, deadline: u64, hash: u64, table: usize) {
        let table = u16::try_from(table).expect("at most 16384 tables per shard");
        self.expiry.push(Due {
            deadline,
            hash,
            table,
        });
        self.maybe_compact_expiry();
    }

    /// Drops the expiry queue's stale items once they outnumber the live
    /// ones (see `expiry.rs`). Checked on each push and each removal, so a
    /// queue whose keys are deleted or evicted gives its memory back too.
    fn maybe_compact_expiry(&mut self) {
        if self.expiry.needs_compaction(self.counters.volatile) {
            let tables = &self.tables;
            self.expiry.compact(|due| {
                tables[usize::from(due.table)]
                    .find(due.hash, |e| e.deadline() == Some(due.deadline))
                    .is_some()
            });
        }
    }

    /// Gives memory back when a table is mostly empty (after deletions, or
    /// when its slot has migrated away). Tables grow when 7/8 full and shrink
    /// to fit below 1/8 full, so a table never thrashes between the two; an
    /// empty table frees its allocation whatever its size (a small table's
    /// eighth is zero keys).
    fn maybe_shrink(&mut self, table: usize) {
        let tab = &mut self.tables[table];
        if tab.len() < tab.capacity() / 8 || (tab.is_empty() && tab.capacity() > 0) {
            let before = tab.allocation_size();
            let hasher = &self.hasher;
            tab.shrink_to_fit(|e| hasher.hash_one(e.key()));
            self.counters.table_bytes = self.counters.table_bytes - before + tab.allocation_size();
        }
    }
}

/// `now`, or the real clock when a caller has none (a replica applies its
/// primary's writes at time 0): access history is always real time.
fn clock_or_now(now: u64) -> u64 {
    match now {
        0 => super::now_ms(),
        now => now,
    }
}
