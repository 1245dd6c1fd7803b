//! One shard: the hash tables of its slots, its expiry queue and its
//! counters, all behind the one lock that [`super::Store`] takes.
//!
//! Every change to an entry goes through the few methods here ([`Shard::insert`],
//! [`Shard::modify`], [`Shard::remove`], expiry), so that the bookkeeping that
//! INFO and active expiry rely on (key and volatile counts, bytes, the expiry
//! queue) cannot drift from the tables — and so that the change feed hears
//! of every change, in order, while the shard is still locked.

use std::sync::Arc;

use foldhash::fast::RandomState;
use hashbrown::HashTable;
use std::hash::BuildHasher;

use super::Common;
use super::entry::Entry;
use super::expiry::{Due, ExpiryQueue};
use super::feed::Change;

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
    /// Bytes of all entries' allocations.
    pub entry_bytes: usize,
    /// Keys removed because their deadline passed (lazily or actively).
    pub expired: u64,
    pub hits: u64,
    pub misses: u64,
}

pub struct Shard {
    /// One table per slot of this shard, indexed by `slot / shard_count`.
    tables: Box<[HashTable<Entry>]>,
    expiry: ExpiryQueue,
    /// The store's hasher, needed here to rehash when a table grows.
    hasher: RandomState,
    /// The store's change feed and role.
    common: Arc<Common>,
    pub counters: Counters,
}

impl Shard {
    pub fn new(table_count: usize, hasher: RandomState, common: Arc<Common>) -> Shard {
        Shard {
            tables: (0..table_count).map(|_| HashTable::new()).collect(),
            expiry: ExpiryQueue::default(),
            hasher,
            common,
            counters: Counters::default(),
        }
    }

    /// The bucket of `key` if it is present and alive at `now`. A key past
    /// its deadline is removed on the spot (lazy expiry) — except on a
    /// replica, which leaves that to its primary's `DEL` and only hides the
    /// key. (A replica's writes come from its primary, with `now` 0, so they
    /// never meet a hidden key.)
    pub fn find(&mut self, table: usize, hash: u64, key: &[u8], now: u64) -> Option<usize> {
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

    /// The entry in a bucket returned by [`Shard::find`] or [`Shard::insert`].
    pub fn entry(&self, table: usize, bucket: usize) -> &Entry {
        self.tables[table]
            .get_bucket(bucket)
            .expect("bucket index from find or insert")
    }

    /// Adds an entry whose key is not in the table; returns its bucket.
    pub fn insert(&mut self, table: usize, hash: u64, entry: Entry) -> usize {
        self.counters.keys += 1;
        self.counters.entry_bytes += entry.size();
        let deadline = entry.deadline();
        let hasher = &self.hasher;
        let bucket = self.tables[table]
            .insert_unique(hash, entry, |e| hasher.hash_one(e.key()))
            .bucket_index();
        if let Some(deadline) = deadline {
            self.counters.volatile += 1;
            self.schedule(deadline, hash, table);
        }
        self.record_set(table, bucket);
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
        self.counters.entry_bytes = self.counters.entry_bytes - size_before + size_after;
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
        out
    }

    /// Removes the entry in `bucket`.
    pub fn remove(&mut self, table: usize, bucket: usize) {
        if let Ok(occupied) = self.tables[table].get_bucket_entry(bucket) {
            let (entry, _) = occupied.remove();
            self.forget(&entry);
            self.maybe_shrink(table);
        }
    }

    /// Tells the change feed the new state of the entry in `bucket`.
    fn record_set(&self, table: usize, bucket: usize) {
        let feed = &self.common.feed;
        if feed.is_listening() {
            let entry = self.entry(table, bucket);
            feed.emit(Change::Set {
                key: entry.key(),
                value: entry.value(),
                deadline: entry.deadline(),
            });
        }
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
            ..self.counters
        };
        std::mem::replace(&mut self.tables, fresh)
    }

    /// Bytes this shard has allocated: entries, tables and the expiry queue.
    pub fn allocated_bytes(&self) -> usize {
        let tables: usize = self.tables.iter().map(HashTable::allocation_size).sum();
        self.counters.entry_bytes
            + tables
            + self.tables.len() * std::mem::size_of::<HashTable<Entry>>()
            + self.expiry.allocated_bytes()
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
        let feed = &self.common.feed;
        if feed.is_listening() {
            feed.emit(Change::Del { key: entry.key() });
        }
        self.counters.keys -= 1;
        self.counters.entry_bytes -= entry.size();
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
    /// to fit below 1/8 full, so a table never thrashes between the two.
    fn maybe_shrink(&mut self, table: usize) {
        let tab = &mut self.tables[table];
        if tab.len() < tab.capacity() / 8 {
            let hasher = &self.hasher;
            tab.shrink_to_fit(|e| hasher.hash_one(e.key()));
        }
    }
}
