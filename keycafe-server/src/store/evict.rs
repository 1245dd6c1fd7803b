//! Eviction: which keys go when the node holds more than `maxmemory`.
//!
//! # Policies
//!
//! Redis's eight ([`Policy`]): `noeviction` refuses writes instead; the
//! others evict among all keys (`allkeys-*`) or only among keys with a
//! deadline (`volatile-*`), choosing the least recently used (`*-lru`), the
//! least frequently used (`*-lfu`), the nearest deadline (`volatile-ttl`) or
//! any (`*-random`).
//!
//! # Sampling, per shard
//!
//! Nothing keeps keys in a global order: a list threaded through every key
//! would cost memory per key and a shared write per read. Instead, as in
//! Redis, eviction *samples*: it takes `maxmemory-samples` keys from a
//! random place in one shard (under that shard's lock only), scores each
//! from its access history or deadline, and offers them to a small [`Pool`]
//! of the best candidates seen so far. Then it takes the pool's best, locks *its* shard
//! and removes it — if it is still there and has not been touched since it
//! was sampled (its history or deadline unchanged); otherwise the next
//! best. Successive evictions sample the shards in turn, so the pool
//! carries the best of many shards and the choice approaches the global
//! one without ever holding two shard locks. Random policies skip the pool.
//!
//! Keys come from a shard's hash tables (`allkeys-*`) or from its expiry
//! queue (`volatile-*`), which holds exactly the keys with a deadline, so a
//! cache where few keys have one does not sample thousands of persistent
//! keys to find them. `volatile-ttl` also offers each shard's earliest
//! deadline (the queue's top), so the nearest deadlines go first.
//!
//! Evicting removes the key as a `DEL` would: the change feed hears it, and
//! a primary's replicas delete it too. A replica never evicts; it follows
//! its primary.
//!
//! # Locks
//!
//! The pool has a mutex of its own, taken only by a write that finds the
//! node over its limit. Order: pool, then one shard at a time. Nothing that
//! holds a shard lock takes the pool.

use std::sync::PoisonError;
use std::sync::atomic::Ordering;

use super::access::Tracking;
use super::{Role, Store};

/// What to do when a write finds the node over `maxmemory`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// Refuse writes that may grow memory; reads and deletes still work.
    #[default]
    NoEviction,
    AllKeysLru,
    AllKeysLfu,
    AllKeysRandom,
    VolatileLru,
    VolatileLfu,
    VolatileRandom,
    VolatileTtl,
}

/// How a policy ranks candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rank {
    /// By the access history the store keeps.
    History,
    /// By deadline, nearest first.
    Deadline,
    /// Not at all: any sampled key.
    Random,
}

impl Policy {
    /// Every policy, in Redis's order of documentation.
    pub const ALL: [Policy; 8] = [
        Policy::VolatileLru,
        Policy::AllKeysLru,
        Policy::VolatileLfu,
        Policy::AllKeysLfu,
        Policy::VolatileRandom,
        Policy::AllKeysRandom,
        Policy::VolatileTtl,
        Policy::NoEviction,
    ];

    /// Redis's name for it (`allkeys-lru`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Policy::NoEviction => "noeviction",
            Policy::AllKeysLru => "allkeys-lru",
            Policy::AllKeysLfu => "allkeys-lfu",
            Policy::AllKeysRandom => "allkeys-random",
            Policy::VolatileLru => "volatile-lru",
            Policy::VolatileLfu => "volatile-lfu",
            Policy::VolatileRandom => "volatile-random",
            Policy::VolatileTtl => "volatile-ttl",
        }
    }

    /// The policy called `name`, in any letter case.
    pub fn from_name(name: &[u8]) -> Option<Policy> {
        Policy::ALL
            .into_iter()
            .find(|p| p.name().as_bytes().eq_ignore_ascii_case(name))
    }

    /// True for the `volatile-*` policies: only keys with a deadline go.
    pub fn volatile_only(self) -> bool {
        matches!(
            self,
            Policy::VolatileLru
                | Policy::VolatileLfu
                | Policy::VolatileRandom
                | Policy::VolatileTtl
        )
    }

    /// The access history keys keep under this policy.
    pub fn tracking(self) -> Tracking {
        match self {
            Policy::AllKeysLfu | Policy::VolatileLfu => Tracking::Lfu,
            _ => Tracking::Lru,
        }
    }

    pub fn rank(self) -> Rank {
        match self {
            Policy::AllKeysRandom | Policy::VolatileRandom => Rank::Random,
            Policy::VolatileTtl => Rank::Deadline,
            _ => Rank::History,
        }
    }

    pub(super) fn to_u8(self) -> u8 {
        Policy::ALL
            .iter()
            .position(|&p| p == self)
            .expect("every policy is in ALL") as u8
    }

    pub(super) fn from_u8(n: u8) -> Policy {
        Policy::ALL.get(usize::from(n)).copied().unwrap_or_default()
    }
}

impl std::str::FromStr for Policy {
    type Err = String;

    /// By Redis's name, in any letter case; the error lists the names.
    fn from_str(name: &str) -> Result<Policy, String> {
        Policy::from_name(name.as_bytes()).ok_or_else(|| {
            let names: Vec<&str> = Policy::ALL.iter().map(|p| p.name()).collect();
            format!(
                "argument(s) must be one of the following: {}",
                names.join(", ")
            )
        })
    }
}

impl<'de> serde::Deserialize<'de> for Policy {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Policy, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// A write that may grow memory was refused: the node is over `maxmemory`
/// and nothing (more) may be evicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("OOM command not allowed when used memory > 'maxmemory'.")]
pub struct OutOfMemory;

/// A key that sampling found, and what must still hold for it to be evicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// Higher goes first.
    pub score: u64,
    pub shard: usize,
    pub table: usize,
    pub hash: u64,
    /// The key's access history and deadline when sampled: a key touched or
    /// given a new deadline since is no longer the candidate it was.
    pub access: u32,
    pub deadline: Option<u64>,
}

/// Candidates a [`Pool`] keeps: Redis's `EVPOOL_SIZE`.
pub const POOL_SIZE: usize = 16;

/// The best candidates seen so far, across shards and evictions.
#[derive(Debug, Default)]
pub struct Pool {
    /// Sorted by score, best last; at most [`POOL_SIZE`].
    candidates: Vec<Candidate>,
    /// The shard the next eviction samples.
    next_shard: usize,
    /// The policy the candidates were scored under.
    policy: Policy,
}

impl Pool {
    /// Keeps `candidate` if it is among the best [`POOL_SIZE`] (and not
    /// already held).
    pub fn offer(&mut self, candidate: Candidate) {
        if self.candidates.iter().any(|c| {
            (c.shard, c.table, c.hash) == (candidate.shard, candidate.table, candidate.hash)
        }) {
            return;
        }
        let full = self.candidates.len() == POOL_SIZE;
        if full && self.candidates[0].score >= candidate.score {
            return;
        }
        if full {
            self.candidates.remove(0);
        }
        let at = self
            .candidates
            .partition_point(|c| c.score <= candidate.score);
        self.candidates.insert(at, candidate);
    }

    /// Removes and returns the best candidate.
    pub fn take_best(&mut self) -> Option<Candidate> {
        self.candidates.pop()
    }

    /// Forgets every candidate (they were scored under another policy).
    pub fn clear(&mut self) {
        self.candidates.clear();
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.candidates.len()
    }
}

/// Most keys one write evicts before it runs anyway: a bound on the delay
/// one write may see, when a single write brought in a lot (a big value) or
/// `maxmemory` was just lowered. The next writes carry on.
const MAX_EVICTIONS_PER_WRITE: usize = 1024;

impl Store {
    /// Makes the node fit in `maxmemory` bytes (0: no limit) before a write
    /// that may grow memory, evicting by the store's policy; returns how
    /// many keys went. [`OutOfMemory`] if it is over and nothing may go:
    /// under `noeviction`, or when no key qualifies. A replica never evicts
    /// (nor refuses: its writes come from its primary).
    pub fn make_room(&self, maxmemory: usize, now: u64) -> Result<usize, OutOfMemory> {
        if maxmemory == 0 || self.common.memory.used() <= maxmemory {
            return Ok(0);
        }
        if self.role() == Role::Replica {
            return Ok(0);
        }
        let policy = self.policy();
        if policy == Policy::NoEviction {
            return Err(OutOfMemory);
        }
        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        if pool.policy != policy {
            pool.clear();
            pool.policy = policy;
        }
        let mut evicted = 0;
        while self.common.memory.used() > maxmemory {
            if evicted == MAX_EVICTIONS_PER_WRITE {
                return Ok(evicted);
            }
            if !self.evict_one(&mut pool, policy, now) {
                return match evicted {
                    0 => Err(OutOfMemory),
                    _ => Ok(evicted),
                };
            }
            evicted += 1;
        }
        Ok(evicted)
    }

    /// Evicts one key; false if no key qualifies.
    fn evict_one(&self, pool: &mut Pool, policy: Policy, now: u64) -> bool {
        let samples = self.samples();
        let shards = self.shards.len();
        // Every shard may be sampled once before giving up: then no shard
        // held a key that qualifies.
        for _ in 0..shards {
            let shard = pool.next_shard;
            pool.next_shard = (shard + 1) % shards;
            let mut locked = self.lock(shard);
            if policy.rank() == Rank::Random {
                if locked.evict_random(policy.volatile_only()) {
                    return true;
                }
                continue;
            }
            locked.sample(shard, policy, samples, now, |c| pool.offer(c));
            drop(locked);
            while let Some(best) = pool.take_best() {
                if self.lock(best.shard).evict(&best) {
                    return true;
                }
            }
        }
        false
    }

    /// The eviction policy, which also decides the access history keys keep.
    pub fn policy(&self) -> Policy {
        Policy::from_u8(self.common.policy.load(Ordering::Relaxed))
    }

    /// Changes the eviction policy. Keys keep the history they have until
    /// they are next touched, as in Redis: after a switch between LRU and LFU
    /// policies, rankings take a while to mean something again.
    pub fn set_policy(&self, policy: Policy) {
        self.common.policy.store(policy.to_u8(), Ordering::Relaxed);
    }

    /// Keys sampled per shard per eviction (`maxmemory-samples`).
    pub fn samples(&self) -> usize {
        self.common.samples.load(Ordering::Relaxed)
    }

    /// Sets `maxmemory-samples` (at least 1).
    pub fn set_samples(&self, samples: usize) {
        self.common.samples.store(samples.max(1), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(score: u64, hash: u64) -> Candidate {
        Candidate {
            score,
            shard: 0,
            table: 0,
            hash,
            access: 0,
            deadline: None,
        }
    }

    #[test]
    fn names_round_trip_in_any_case() {
        for policy in Policy::ALL {
            assert_eq!(Policy::from_name(policy.name().as_bytes()), Some(policy));
            assert_eq!(Policy::from_u8(policy.to_u8()), policy);
        }
        assert_eq!(Policy::from_name(b"ALLKEYS-LFU"), Some(Policy::AllKeysLfu));
        assert_eq!(Policy::from_name(b"allkeys"), None);
        assert!(Policy::VolatileTtl.volatile_only() && !Policy::AllKeysRandom.volatile_only());
        assert_eq!(Policy::VolatileLfu.tracking(), Tracking::Lfu);
        assert_eq!(Policy::NoEviction.tracking(), Tracking::Lru);
    }

    #[test]
    fn the_pool_keeps_the_best_and_gives_the_best_first() {
        let mut pool = Pool::default();
        for i in 0..100u64 {
            // Scores 0..100 in a scrambled order.
            let score = (i * 37) % 100;
            pool.offer(candidate(score, score));
        }
        assert_eq!(pool.len(), POOL_SIZE);
        // The same key twice is held once.
        pool.offer(candidate(99, 99));
        assert_eq!(pool.len(), POOL_SIZE);
        let taken: Vec<u64> = std::iter::from_fn(|| pool.take_best())
            .map(|c| c.score)
            .collect();
        assert_eq!(taken, (84..100).rev().collect::<Vec<_>>());
        // A worse candidate than all held is not kept once the pool is full...
        for score in 50..66 {
            pool.offer(candidate(score, score));
        }
        pool.offer(candidate(10, 10));
        assert_eq!(pool.take_best().map(|c| c.score), Some(65));
        // ...but one with room left is.
        pool.offer(candidate(10, 10));
        assert_eq!(pool.len(), POOL_SIZE);
    }
}
