//! The in-memory keyspace: sharded, organised by slot, with expiry.
//!
//! # Shards and slots
//!
//! Every command runs on some connection task, and many run at once, so the
//! keyspace is split into [`Store::DEFAULT_SHARDS`] shards, each behind its
//! own `std::sync::Mutex`. Two commands only contend when their keys fall in
//! the same shard, and critical sections are a hash lookup and a copy, never
//! an `.await`, so a plain mutex beats anything cleverer. Shards are padded to
//! a cache line pair so that neighbouring locks do not share one.
//!
//! A key's shard is derived from its cluster slot (`slot % shards`), and
//! inside a shard every slot has its own hash table. The slot is the unit a
//! cluster counts, lists and migrates, so those operations
//! ([`Store::count_keys_in_slot`], [`Store::keys_in_slot`]) touch one small
//! table instead of scanning the keyspace. The cost is 16384 table headers
//! (32 bytes each), allocated lazily by the tables themselves.
//!
//! # Memory
//!
//! With 16-byte keys and 32-byte values, per-key overhead decides the memory
//! footprint. A table bucket is a single 8-byte pointer (plus hashbrown's one
//! control byte) to one allocation holding header, key, value and, only when
//! there is one, the deadline (see `entry.rs`). A million such keys cost about
//! 64 bytes of allocation plus ~20 bytes of table each, below Redis's figure
//! for the same data. Keys and values are copied in from the request buffer,
//! so nothing in the store pins a network buffer.
//!
//! Every shard counts its bytes as they change and passes them on to the
//! node's [`MemoryUse`] gauge (see `memory.rs`), which `maxmemory` is
//! checked against. When a write finds the node over the limit,
//! [`Store::make_room`] evicts keys by the configured [`Policy`], sampling
//! one shard at a time (see `evict.rs`); the entry header's spare 24 bits
//! hold the access history that ranks them (see `access.rs`).
//!
//! Hashes are foldhash's, seeded randomly per process so that a client cannot
//! choose keys that collide. A command hashes its key once, before taking the
//! lock; tables rehash from the stored key when they grow.
//!
//! # Expiry
//!
//! Deadlines are absolute, in milliseconds since the Unix epoch ([`now_ms`]);
//! every operation takes `now` as an argument, which keeps one command's view
//! of time consistent and lets tests use any clock they like. A key is alive
//! up to and including its deadline millisecond, as in Redis. Expiry is:
//!
//! - **lazy**: a lookup that finds a key past its deadline removes it and
//!   reports it absent, so an expired key is invisible at once to every
//!   command;
//! - **active**: [`Store::expire_cycle`], called by the server every ~100 ms,
//!   reclaims keys nobody touches, from a per-shard deadline queue (see
//!   `expiry.rs`) so that its cost follows the number of keys that are due,
//!   not the size of the keyspace.
//!
//! # Role and change feed
//!
//! A store is told its node's [`Role`]. A primary expires keys itself; a
//! replica never does — it hides keys past their deadline and waits for its
//! primary's `DEL`, so that the two never diverge because one clock fired
//! first. Every change is told to the store's [`ChangeFeed`] (see
//! `feed.rs`): that is how replication, and anything else that must see
//! every write, plugs in without the store knowing of it.
//!
//! # Using it from a command
//!
//! A command either reads a value in place ([`Store::get_with`], which lets
//! GET write the reply from under the lock without allocating) or works on a
//! [`KeyEntry`] inside a closure ([`Store::entry`], [`Store::read`]), which
//! makes read-modify-write commands atomic. MSET and MSETNX lock every shard
//! they need, in ascending order, through [`Store::set_many`].

mod access;
mod entry;
mod evict;
#[cfg(test)]
mod evict_tests;
mod expiry;
mod feed;
mod key_entry;
mod keyspace;
mod memory;
pub mod records;
mod shard;
#[cfg(test)]
mod tests;
mod transaction;
#[cfg(test)]
mod transaction_tests;
mod watch;

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use foldhash::fast::RandomState;
use keycafe_core::{SLOT_COUNT, Slot, key_slot};

pub use access::{LRU_TICK_MS, Tracking};
pub use evict::{OutOfMemory, Policy, Rank};
pub use feed::{Change, ChangeFeed, Subscriber};
pub use key_entry::{Expiry, KeyEntry, Ttl};
pub use keyspace::Transfer;
pub use memory::{FLUSH_STEP, MemoryUse, deserialize_memory, parse_memory};
use shard::{Location, Shard};
pub use transaction::ShardSet;
pub use watch::Watch;
use watch::Watches;

/// The longest key or value the store accepts: Redis's 512 MiB.
pub const MAX_STRING_LEN: usize = 512 * 1024 * 1024;

/// Due deadlines one shard handles per [`Store::expire_cycle`]: enough to
/// keep up with ~300k expirations per second at 64 shards and 10 cycles per
/// second, small enough to hold a shard's lock for well under a millisecond.
const EXPIRE_BUDGET_PER_SHARD: usize = 512;

/// Why a write was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The key or the resulting value would exceed [`MAX_STRING_LEN`].
    #[error("string exceeds maximum allowed size")]
    TooLarge,
}

/// Store-wide figures for INFO.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Keys held, including expired ones not yet reclaimed.
    pub keys: usize,
    /// Keys that have a deadline.
    pub volatile_keys: usize,
    /// Keys removed because their deadline passed, since start.
    pub expired_keys: u64,
    /// Keys removed to stay under `maxmemory`, since start.
    pub evicted_keys: u64,
    /// Reads that found their key.
    pub keyspace_hits: u64,
    /// Reads that did not.
    pub keyspace_misses: u64,
    /// Keys set or removed since start (a flush counts every key it
    /// removed), by commands, expiry and eviction alike.
    pub changes: u64,
    /// Bytes allocated for entries (as the allocator's chunks), tables and
    /// expiry queues: exact, where [`MemoryUse::used`] may lag behind.
    pub used_bytes: usize,
}

/// What `OBJECT` reports about a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Milliseconds since the last access, when keys keep recency.
    pub idle_ms: Option<u64>,
    /// The logarithmic access counter, when keys keep frequency.
    pub frequency: Option<u8>,
    /// Redis's name for how it would hold the value: `int`, `embstr` or
    /// `raw` (Keycafe holds every value the same way).
    pub encoding: &'static str,
    /// The value is an `int` from 0 to 9999: Redis shares one object for
    /// each of those among all keys (unless the eviction policy needs
    /// per-key access history), and `OBJECT REFCOUNT` shows that.
    pub shared_integer: bool,
}

/// The current time in milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

/// The shard `shard` among the guards a multi-key write holds.
fn locked<'g>(guards: &'g mut [Option<MutexGuard<'_, Shard>>], shard: usize) -> &'g mut Shard {
    guards[shard]
        .as_deref_mut()
        .expect("every shard of the batch was locked")
}

/// Redis's encoding of a string value: `raw` if it was changed in place
/// (see `entry.rs`), else `int` for a canonical 64-bit integer (no sign but
/// `-`, no leading zero), `embstr` up to 44 bytes, `raw` beyond.
fn encoding_of(value: &[u8], raw: bool) -> &'static str {
    if raw {
        return "raw";
    }
    let digits = value.strip_prefix(b"-").unwrap_or(value);
    let canonical = !digits.is_empty()
        && digits.iter().all(u8::is_ascii_digit)
        && (digits[0] != b'0' || value == b"0");
    let fits = std::str::from_utf8(value).is_ok_and(|text| text.parse::<i64>().is_ok());
    match value.len() {
        len if len <= 20 && canonical && fits => "int",
        len if len <= 44 => "embstr",
        _ => "raw",
    }
}

/// Whose clock decides when a key expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// This node expires keys itself (lazily and actively), and says so on
    /// the change feed with `Del`.
    Primary,
    /// This node's primary decides: keys past their deadline are hidden
    /// from reads but kept until the primary's `DEL` arrives.
    Replica,
}

/// What every shard of a store shares.
struct Common {
    feed: ChangeFeed,
    /// True for [`Role::Primary`].
    expiring: AtomicBool,
    /// The node's memory gauge, which shards pass their bytes on to.
    memory: Arc<MemoryUse>,
    /// The eviction [`Policy`], as `Policy::to_u8`: read on every access,
    /// since it decides which history keys keep.
    policy: AtomicU8,
    /// `maxmemory-samples`.
    samples: AtomicUsize,
    /// The keys connections WATCH.
    watches: Arc<Watches>,
}

impl Common {
    fn expires_keys(&self) -> bool {
        self.expiring.load(Ordering::Relaxed)
    }

    fn tracking(&self) -> Tracking {
        evict::Policy::from_u8(self.policy.load(Ordering::Relaxed)).tracking()
    }
}

/// A shard on its own pair of cache lines (adjacent-line prefetch pulls in
/// two), with the condition variable that operations wait on while a
/// transaction owns it (see `transaction.rs`).
#[repr(align(128))]
struct Padded {
    shard: Mutex<Shard>,
    released: Condvar,
}

/// The keyspace of one node. See the [module documentation](self).
pub struct Store {
    shards: Box<[Padded]>,
    /// `shards.len() - 1`; the shard count is a power of two.
    shard_mask: usize,
    /// `log2(shards.len())`: a slot's table index is `slot >> shard_shift`.
    shard_shift: u32,
    hasher: RandomState,
    common: Arc<Common>,
    /// Eviction's candidates; locked only by writes over `maxmemory`,
    /// before any shard.
    pool: Mutex<evict::Pool>,
    /// Held by the transaction that runs (one at a time); holds the id of
    /// the last one.
    transactions: Mutex<u64>,
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

impl Store {
    /// Shards a store has unless told otherwise: enough that connection
    /// tasks on a many-core machine rarely meet on a lock.
    pub const DEFAULT_SHARDS: usize = 64;

    /// An empty store with [`Store::DEFAULT_SHARDS`] shards.
    pub fn new() -> Store {
        Store::with_shards(Self::DEFAULT_SHARDS)
    }

    /// An empty primary's store with `shards` shards, rounded up to a power
    /// of two between 1 and 16384 so that shards divide the slots evenly,
    /// and nobody listening to its changes.
    pub fn with_shards(shards: usize) -> Store {
        Store::with_feed(shards, ChangeFeed::new())
    }

    /// An empty primary's store whose changes go to `feed`.
    pub fn with_feed(shards: usize, feed: ChangeFeed) -> Store {
        Store::with_memory(shards, feed, Arc::new(MemoryUse::new()))
    }

    /// An empty primary's store whose changes go to `feed` and whose bytes
    /// are counted in `memory`, the node's gauge.
    pub fn with_memory(shards: usize, feed: ChangeFeed, memory: Arc<MemoryUse>) -> Store {
        let count = shards.clamp(1, usize::from(SLOT_COUNT)).next_power_of_two();
        let hasher = RandomState::default();
        let tables_per_shard = usize::from(SLOT_COUNT) / count;
        memory.add_store((std::mem::size_of::<Padded>() * count) as isize);
        let common = Arc::new(Common {
            feed,
            expiring: AtomicBool::new(true),
            memory,
            policy: AtomicU8::new(Policy::NoEviction.to_u8()),
            samples: AtomicUsize::new(Store::DEFAULT_SAMPLES),
            watches: Arc::default(),
        });
        let shard = || Shard::new(tables_per_shard, hasher.clone(), common.clone());
        Store {
            shards: (0..count)
                .map(|_| Padded {
                    shard: Mutex::new(shard()),
                    released: Condvar::new(),
                })
                .collect(),
            shard_mask: count - 1,
            shard_shift: count.trailing_zeros(),
            hasher,
            common,
            pool: Mutex::new(evict::Pool::default()),
            transactions: Mutex::new(0),
        }
    }

    /// Keys eviction samples per shard unless told otherwise: Redis's
    /// default `maxmemory-samples`.
    pub const DEFAULT_SAMPLES: usize = 5;

    /// The gauge this store's bytes are counted in.
    pub fn memory(&self) -> &Arc<MemoryUse> {
        &self.common.memory
    }

    /// Takes on a role: see [`Role`].
    pub fn set_role(&self, role: Role) {
        self.common
            .expiring
            .store(role == Role::Primary, Ordering::SeqCst);
    }

    pub fn role(&self) -> Role {
        match self.common.expires_keys() {
            true => Role::Primary,
            false => Role::Replica,
        }
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Calls `f` with the value of `key` (or `None`), while the shard is
    /// locked, so the caller can copy it straight into a reply. Counts a
    /// keyspace hit or miss.
    pub fn get_with<R>(&self, key: &[u8], now: u64, f: impl FnOnce(Option<&[u8]>) -> R) -> R {
        let at = self.locate(key);
        f(self
            .lock(at.shard)
            .read_counted(at.table, at.hash, key, now))
    }

    /// Calls `f` with the value of each of `keys` (or `None`), in order, at
    /// one point in time (MGET): every shard involved is locked first, in
    /// ascending order as [`Store::set_many`] does, so no write lands
    /// between two of the reads.
    pub fn get_many<'k>(
        &self,
        keys: impl Iterator<Item = &'k [u8]> + Clone,
        now: u64,
        mut f: impl FnMut(Option<&[u8]>),
    ) {
        let mut shards = keys.clone().map(|key| self.slot_location(key_slot(key)).0);
        // One shard (one key, or keys with one hash tag): one lock, and
        // nothing to allocate.
        if let Some(first) = shards.next()
            && shards.all(|shard| shard == first)
        {
            let mut shard = self.lock(first);
            for key in keys {
                let at = self.locate(key);
                f(shard.read_counted(at.table, at.hash, key, now));
            }
            return;
        }
        let mut wanted = vec![false; self.shards.len()];
        for key in keys.clone() {
            wanted[self.locate(key).shard] = true;
        }
        let mut guards: Vec<Option<MutexGuard<'_, Shard>>> = wanted
            .iter()
            .enumerate()
            .map(|(i, &w)| w.then(|| self.lock(i)))
            .collect();
        for key in keys {
            let at = self.locate(key);
            f(locked(&mut guards, at.shard).read_counted(at.table, at.hash, key, now));
        }
    }

    /// Runs `f` on `key`'s entry under the shard lock: the way to write, and
    /// to read-modify-write atomically.
    pub fn entry<R>(&self, key: &[u8], now: u64, f: impl FnOnce(&mut KeyEntry<'_>) -> R) -> R {
        let at = self.locate(key);
        let mut shard = self.lock(at.shard);
        f(&mut KeyEntry::new(&mut shard, key, at, now))
    }

    /// Like [`Store::entry`], and counts a keyspace hit or miss: for commands
    /// that read the key (GETDEL, GETEX, STRLEN, TTL, ...).
    pub fn read<R>(&self, key: &[u8], now: u64, f: impl FnOnce(&mut KeyEntry<'_>) -> R) -> R {
        self.entry(key, now, |entry| {
            entry.record_lookup();
            f(entry)
        })
    }

    /// Stores `value` under `key` with an optional deadline (SET's plain case).
    pub fn set(
        &self,
        key: &[u8],
        value: &[u8],
        now: u64,
        expiry: Expiry,
    ) -> Result<(), StoreError> {
        self.entry(key, now, |entry| entry.set(value, expiry))
    }

    /// Deletes `key`; returns whether it was present (and alive).
    pub fn remove(&self, key: &[u8], now: u64) -> bool {
        self.entry(key, now, |entry| entry.remove())
    }

    /// Sets every `(key, value)` pair atomically, without deadlines (MSET). If
    /// `only_if_all_absent`, sets nothing and returns false as soon as one key
    /// exists (MSETNX). With repeated keys, the last value wins.
    pub fn set_many<'k, I>(
        &self,
        pairs: I,
        now: u64,
        only_if_all_absent: bool,
    ) -> Result<bool, StoreError>
    where
        I: Iterator<Item = (&'k [u8], &'k [u8])> + Clone,
    {
        let mut wanted = vec![false; self.shards.len()];
        for (key, value) in pairs.clone() {
            if key.len() > MAX_STRING_LEN || value.len() > MAX_STRING_LEN {
                return Err(StoreError::TooLarge);
            }
            wanted[self.locate(key).shard] = true;
        }
        // Always in ascending shard order, so two multi-shard writers can
        // never each hold a lock the other waits for.
        let mut guards: Vec<Option<MutexGuard<'_, Shard>>> = wanted
            .iter()
            .enumerate()
            .map(|(i, &w)| w.then(|| self.lock(i)))
            .collect();
        if only_if_all_absent {
            for (key, _) in pairs.clone() {
                let at = self.locate(key);
                if locked(&mut guards, at.shard)
                    .find(at.table, at.hash, key, now)
                    .is_some()
                {
                    return Ok(false);
                }
            }
        }
        for (key, value) in pairs {
            let at = self.locate(key);
            KeyEntry::new(locked(&mut guards, at.shard), key, at, now)
                .set(value, Expiry::Persist)?;
        }
        Ok(true)
    }

    /// The number of keys alive at `now` (DBSIZE). Reclaims every expired key
    /// first, which is what makes the count exact.
    pub fn len(&self, now: u64) -> usize {
        (0..self.shards.len())
            .map(|i| {
                let mut shard = self.lock(i);
                shard.expire_due(now, usize::MAX);
                shard.counters.keys
            })
            .sum()
    }

    /// True if no key is alive at `now`.
    pub fn is_empty(&self, now: u64) -> bool {
        self.len(now) == 0
    }

    /// Deletes every key (FLUSHALL). Every shard is locked (in ascending
    /// order) so that the flush is one point in the change feed; each
    /// is swapped for empty tables, and the old ones are freed after the
    /// locks are released, so other commands wait for pointer swaps, not for
    /// a million `free`s.
    pub fn flush_all(&self) {
        let mut guards: Vec<MutexGuard<'_, Shard>> =
            (0..self.shards.len()).map(|i| self.lock(i)).collect();
        if self.common.feed.is_listening() {
            self.common.feed.emit(Change::FlushAll);
        }
        let now = now_ms();
        self.common.watches.touch_where(|key| {
            let at = self.locate(key);
            guards[at.shard].holds(at.table, at.hash, key, now)
        });
        let old: Vec<_> = guards.iter_mut().map(|shard| shard.take_all()).collect();
        drop(guards);
        drop(old);
    }

    /// The shards that `keys` live in, for [`Store::atomically`].
    pub fn shards_of<'k>(&self, keys: impl IntoIterator<Item = &'k [u8]>) -> ShardSet {
        let mut shards: Vec<usize> = keys
            .into_iter()
            .map(|key| self.slot_location(key_slot(key)).0)
            .collect();
        shards.sort_unstable();
        shards.dedup();
        ShardSet::Some(shards)
    }

    /// Runs `f` with no other operation on `shards` in between: a
    /// transaction (see `transaction.rs`). `f` must touch only those shards.
    /// If `writes`, the change feed hears the changes `f` makes between
    /// [`Change::Begin`] and [`Change::Commit`], so that a replica applies
    /// them as one unit too.
    pub fn atomically<R>(&self, shards: &ShardSet, writes: bool, f: impl FnOnce() -> R) -> R {
        let mut last = self
            .transactions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *last += 1;
        let id = *last;
        let owned = shards.numbers(self.shards.len());
        for &shard in &owned {
            self.lock(shard).owner = id;
        }
        // Released in drop, so that a panic in `f` cannot leave shards owned.
        let _release = Release {
            store: self,
            owned: &owned,
        };
        let _running = transaction::Running::start(id);
        let feed = &self.common.feed;
        let bracket = writes && feed.is_listening();
        if bracket {
            feed.emit(Change::Begin);
        }
        let out = f();
        if bracket {
            feed.emit(Change::Commit);
        }
        out
    }

    /// Starts watching `key` for `watch` (WATCH), made on first use.
    pub fn watch(&self, watch: &mut Option<Watch>, key: &[u8], now: u64) {
        let watch = watch.get_or_insert_with(|| Watch::new(self.common.watches.clone()));
        if watch.has(key) {
            return;
        }
        // Registered before the key is read: see `Watches::touch`.
        watch.add(key);
        let alive = self.read(key, now, |entry| entry.exists());
        watch.set_alive(alive);
    }

    /// True if a key `watch` watches changed since it was watched, or
    /// expired (EXEC refuses the transaction then).
    pub fn watch_broken(&self, watch: &Watch, now: u64) -> bool {
        watch.flagged()
            || watch
                .alive_when_watched()
                .any(|key| !self.read(key, now, |entry| entry.exists()))
    }

    /// Calls `f` with every key of `slot` (expired ones included: their
    /// `DEL` follows in the stream), under the slot's shard lock: the unit of
    /// a replica's full copy.
    pub fn for_each_in_slot(&self, slot: Slot, f: impl FnMut(&[u8], &[u8], Option<u64>)) {
        let (shard, table) = self.slot_location(slot);
        self.lock(shard).for_each(table, f);
    }

    /// The number of keys alive now in `slot` (CLUSTER COUNTKEYSINSLOT).
    pub fn count_keys_in_slot(&self, slot: Slot) -> usize {
        let (shard, table) = self.slot_location(slot);
        let mut shard = self.lock(shard);
        shard.expire_due(now_ms(), usize::MAX);
        shard.table(table).len()
    }

    /// Up to `count` keys alive now in `slot`, in no particular order
    /// (CLUSTER GETKEYSINSLOT, migration batches).
    pub fn keys_in_slot(&self, slot: Slot, count: usize) -> Vec<Vec<u8>> {
        let (shard, table) = self.slot_location(slot);
        let now = now_ms();
        let shard = self.lock(shard);
        shard
            .table(table)
            .iter()
            .filter(|e| e.deadline().is_none_or(|d| d >= now))
            .take(count)
            .map(|e| e.key().to_vec())
            .collect()
    }

    /// One round of active expiry: removes keys whose deadline is before
    /// `now`, at most a bounded amount of work per shard. Returns how many
    /// keys it removed. Costs a lock and a heap peek per shard when nothing
    /// is due.
    pub fn expire_cycle(&self, now: u64) -> usize {
        (0..self.shards.len())
            .map(|i| self.lock(i).expire_due(now, EXPIRE_BUDGET_PER_SHARD))
            .sum()
    }

    /// Totals for INFO; locks each shard briefly in turn.
    pub fn stats(&self) -> StoreStats {
        let mut stats = StoreStats {
            used_bytes: std::mem::size_of::<Padded>() * self.shards.len(),
            ..StoreStats::default()
        };
        for i in 0..self.shards.len() {
            let shard = self.lock(i);
            let c = shard.counters;
            stats.keys += c.keys;
            stats.volatile_keys += c.volatile;
            stats.expired_keys += c.expired;
            stats.evicted_keys += c.evicted;
            stats.keyspace_hits += c.hits;
            stats.keyspace_misses += c.misses;
            stats.changes += c.changes;
            stats.used_bytes += shard.allocated_bytes();
        }
        stats
    }

    /// Zeroes the counters that only count events (CONFIG RESETSTAT):
    /// expired and evicted keys, hits and misses.
    pub fn reset_stats(&self) {
        for i in 0..self.shards.len() {
            let mut shard = self.lock(i);
            let c = &mut shard.counters;
            (c.expired, c.evicted, c.hits, c.misses) = (0, 0, 0, 0);
        }
    }

    /// What `OBJECT` reports about `key`, if it is alive at `now`. Does not
    /// count as an access.
    pub fn object(&self, key: &[u8], now: u64) -> Option<ObjectInfo> {
        let at = self.locate(key);
        let mut shard = self.lock(at.shard);
        let bucket = shard.peek(at.table, at.hash, key, now)?;
        let entry = shard.entry(at.table, bucket);
        let history = entry.access();
        let (idle_ms, frequency) = match self.policy().tracking() {
            Tracking::Lru => (Some(access::idle_ms(history, now)), None),
            Tracking::Lfu => (None, Some(access::lfu_counter(history, now))),
        };
        let encoding = encoding_of(entry.value(), entry.is_raw());
        let value = entry.value();
        Some(ObjectInfo {
            idle_ms,
            frequency,
            encoding,
            shared_integer: encoding == "int" && value.len() <= 4 && !value.starts_with(b"-"),
        })
    }

    fn locate(&self, key: &[u8]) -> Location {
        let (shard, table) = self.slot_location(key_slot(key));
        Location {
            shard,
            table,
            hash: self.hasher.hash_one(key),
        }
    }

    fn slot_location(&self, slot: Slot) -> (usize, usize) {
        let slot = usize::from(slot % SLOT_COUNT);
        (slot & self.shard_mask, slot >> self.shard_shift)
    }

    /// Locks a shard, waiting while another thread's transaction owns it
    /// (see `transaction.rs`). A panic while a shard was locked would be a
    /// bug in this module; the data is still memory-safe, so serving on
    /// beats taking the whole node down with it.
    fn lock(&self, shard: usize) -> MutexGuard<'_, Shard> {
        let padded = &self.shards[shard];
        let mut guard = padded.shard.lock().unwrap_or_else(PoisonError::into_inner);
        while !transaction::may_use(guard.owner) {
            guard = padded
                .released
                .wait(guard)
                .unwrap_or_else(PoisonError::into_inner);
        }
        guard
    }
}

/// Gives a transaction's shards back, waking whoever waits for them.
struct Release<'s> {
    store: &'s Store,
    owned: &'s [usize],
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        for &shard in self.owned {
            let padded = &self.store.shards[shard];
            padded
                .shard
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .owner = 0;
            padded.released.notify_all();
        }
    }
}
