//! Eviction decided inside the store: explicit clocks, no sockets, no sleeps.
//! Each test fills a store, lowers the limit under what it holds, and checks
//! which keys `make_room` chose.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use super::*;

/// A time well past the epoch (2027), so that clocks are not near zero.
const T0: u64 = 1_800_000_000_000;
const HOUR: u64 = 3_600_000;

fn key(i: usize) -> Vec<u8> {
    format!("key:{i:08}").into_bytes()
}

/// A store of `count` 100-byte values written at `T0`, under `policy`.
fn filled(policy: Policy, count: usize, deadline: impl Fn(usize) -> Option<u64>) -> Store {
    let store = Store::new();
    store.set_policy(policy);
    for i in 0..count {
        let expiry = deadline(i).map_or(Expiry::Persist, Expiry::At);
        store.set(&key(i), &[b'v'; 100], T0, expiry).unwrap();
    }
    store
}

/// Evicts until the store fits in `limit` (each call evicts a bounded
/// number of keys, as one write would).
fn shrink_to(store: &Store, limit: usize, now: u64) -> Result<usize, OutOfMemory> {
    let mut total = 0;
    loop {
        match store.make_room(limit, now)? {
            0 => return Ok(total),
            evicted => total += evicted,
        }
    }
}

fn survivors(store: &Store, range: std::ops::Range<usize>, now: u64) -> usize {
    range
        .filter(|&i| store.object(&key(i), now).is_some())
        .count()
}

/// A limit that leaves room for half the data the store holds now (beyond
/// what an empty store holds: table headers and shards).
fn half(store: &Store) -> usize {
    let empty = Store::new().memory().used();
    empty + (store.memory().used() - empty) / 2
}

#[test]
fn under_the_limit_nothing_happens() {
    let store = filled(Policy::AllKeysLru, 1000, |_| None);
    let used = store.memory().used();
    assert_eq!(store.make_room(used, T0), Ok(0));
    assert_eq!(store.make_room(0, T0), Ok(0), "0 means no limit");
    store.set_policy(Policy::NoEviction);
    assert_eq!(store.make_room(used, T0), Ok(0));
    assert_eq!(store.make_room(used - 1, T0), Err(OutOfMemory));
    assert_eq!(store.len(T0), 1000);
}

#[test]
fn lru_keeps_what_was_read_recently() {
    let store = filled(Policy::AllKeysLru, 20_000, |_| None);
    // A tenth of the keys is read a minute later.
    for i in 0..2_000 {
        assert!(store.get_with(&key(i), T0 + 60_000, |v| v.is_some()));
    }
    let limit = half(&store);
    let evicted = shrink_to(&store, limit, T0 + 61_000).unwrap();
    assert!(store.memory().used() <= limit);
    assert!(evicted > 8_000, "evicted {evicted}");
    assert_eq!(store.stats().evicted_keys, evicted as u64);
    let hot = survivors(&store, 0..2_000, T0 + 61_000);
    assert!(hot >= 1_950, "{hot} of 2000 recently read keys survived");
}

#[test]
fn lfu_keeps_what_is_read_often() {
    let store = filled(Policy::AllKeysLfu, 20_000, |_| None);
    // Every key is read once, a tenth of them 200 times more; the frequent
    // ones were read *earlier*, so recency alone would evict them.
    for round in 0..200 {
        for i in 0..2_000 {
            store.get_with(&key(i), T0 + round, |_| ());
        }
    }
    for i in 2_000..20_000 {
        store.get_with(&key(i), T0 + 30_000, |_| ());
    }
    let limit = half(&store);
    shrink_to(&store, limit, T0 + 31_000).unwrap();
    let hot = survivors(&store, 0..2_000, T0 + 31_000);
    assert!(hot >= 1_950, "{hot} of 2000 frequently read keys survived");
    let info = store.object(&key(0), T0 + 31_000).unwrap();
    assert!(info.frequency.unwrap() > access::LFU_INIT + 2, "{info:?}");
    assert_eq!(info.idle_ms, None, "no recency under an LFU policy");
}

#[test]
fn volatile_policies_never_evict_persistent_keys() {
    for policy in [
        Policy::VolatileLru,
        Policy::VolatileLfu,
        Policy::VolatileRandom,
        Policy::VolatileTtl,
    ] {
        // Even keys persistent, odd ones with a deadline.
        let store = filled(policy, 10_000, |i| (i % 2 == 1).then_some(T0 + HOUR));
        let empty = Store::new().memory().used();
        let result = shrink_to(&store, empty + (store.memory().used() - empty) / 4, T0 + 1);
        assert_eq!(
            result,
            Err(OutOfMemory),
            "{policy:?}: persistent keys alone are over"
        );
        let persistent = (0..10_000)
            .step_by(2)
            .filter(|&i| store.object(&key(i), T0).is_some())
            .count();
        assert_eq!(persistent, 5_000, "{policy:?}");
        assert_eq!(store.stats().volatile_keys, 0, "{policy:?}");
        assert_eq!(store.stats().evicted_keys, 5_000, "{policy:?}");
    }
}

#[test]
fn volatile_ttl_evicts_the_nearest_deadline_first() {
    // Deadlines one to ten hours ahead, in a scrambled order.
    let deadline = |i: usize| T0 + HOUR + (i * 7_919 % 10_000) as u64 * 3_240;
    let store = filled(Policy::VolatileTtl, 10_000, |i| Some(deadline(i)));
    shrink_to(&store, half(&store), T0).unwrap();
    let (gone, kept): (Vec<usize>, Vec<usize>) =
        (0..10_000).partition(|&i| store.object(&key(i), T0).is_none());
    assert!((4_000..8_000).contains(&gone.len()), "{}", gone.len());
    // Shards are sampled in turn, so the boundary blurs by about one key
    // per shard, never more than a few percent.
    let earliest_kept = kept.iter().map(|&i| deadline(i)).min().unwrap();
    let blurred = gone
        .iter()
        .filter(|&&i| deadline(i) > earliest_kept)
        .count();
    assert!(
        blurred * 20 <= gone.len(),
        "{blurred} of {} evicted keys outlived a kept one",
        gone.len()
    );
    // And the blur is shallow: every evicted key is among the nearest
    // deadlines, counting 5% beyond the number evicted.
    let mut by_deadline: Vec<usize> = (0..10_000).collect();
    by_deadline.sort_by_key(|&i| deadline(i));
    let nearest: HashSet<usize> = by_deadline[..gone.len() + 500].iter().copied().collect();
    assert!(gone.iter().all(|i| nearest.contains(i)));
}

#[test]
fn random_policies_evict_until_under() {
    for policy in [Policy::AllKeysRandom, Policy::VolatileRandom] {
        let store = filled(policy, 10_000, |_| Some(T0 + HOUR));
        let limit = half(&store);
        let evicted = shrink_to(&store, limit, T0).unwrap();
        assert!(store.memory().used() <= limit, "{policy:?}");
        // About half, and more: a table keeps its size until it is mostly
        // empty, so evicting frees a little less than a key's share.
        assert!((4_000..8_000).contains(&evicted), "{policy:?}: {evicted}");
    }
}

#[test]
fn a_replica_never_evicts() {
    let store = filled(Policy::AllKeysLru, 1_000, |_| None);
    store.set_role(Role::Replica);
    assert_eq!(store.make_room(1, T0), Ok(0));
    assert_eq!(store.stats().keys, 1_000);
    store.set_role(Role::Primary);
    store.make_room(1, T0).unwrap();
    assert!(store.stats().keys < 1_000);
}

/// Records the keys the feed is told were deleted.
#[derive(Default)]
struct Deletions {
    keys: Mutex<HashSet<Vec<u8>>>,
    listening: AtomicBool,
}

impl Subscriber for Deletions {
    fn is_listening(&self) -> bool {
        self.listening.load(Ordering::Relaxed)
    }

    fn on_change(&self, change: Change<'_>) {
        if let Change::Del { key } = change {
            self.keys.lock().unwrap().insert(key.to_vec());
        }
    }
}

#[test]
fn evictions_reach_the_change_feed_as_deletions() {
    let deletions = Arc::new(Deletions::default());
    let store = Store::with_feed(64, ChangeFeed::new().with(deletions.clone()));
    store.set_policy(Policy::AllKeysLfu);
    for i in 0..5_000 {
        store
            .set(&key(i), &[b'v'; 100], T0, Expiry::Persist)
            .unwrap();
    }
    deletions.listening.store(true, Ordering::Relaxed);
    let evicted = shrink_to(&store, half(&store), T0).unwrap();
    let deleted = deletions.keys.lock().unwrap().clone();
    assert_eq!(deleted.len(), evicted);
    for k in &deleted {
        assert!(store.object(k, T0).is_none());
    }
}

#[test]
fn the_gauge_follows_the_exact_count() {
    let store = Store::new();
    store.set_policy(Policy::AllKeysLru);
    let slack = store.shard_count() * FLUSH_STEP;
    let check = |store: &Store| {
        let (gauge, exact) = (store.memory().used(), store.stats().used_bytes);
        assert!(
            gauge.abs_diff(exact) < slack,
            "gauge {gauge}, exact {exact}"
        );
    };
    for i in 0..20_000 {
        let expiry = match i % 3 {
            0 => Expiry::At(T0 + 10 + i as u64),
            _ => Expiry::Persist,
        };
        store
            .set(&key(i), &vec![b'v'; i % 300], T0, expiry)
            .unwrap();
    }
    check(&store);
    for i in (0..20_000).step_by(2) {
        store.remove(&key(i), T0);
    }
    store
        .entry(&key(1), T0, |e| e.append(&[b'x'; 100_000]))
        .unwrap();
    check(&store);
    store.expire_cycle(T0 + 100_000);
    check(&store);
    store.flush_all();
    check(&store);
}

#[test]
fn object_reports_idle_time_and_encoding_without_touching() {
    let store = Store::new();
    store.set(b"n", b"12345", T0, Expiry::Persist).unwrap();
    store
        .set(b"s", b"a short string", T0, Expiry::Persist)
        .unwrap();
    store.set(b"r", &[b'x'; 45], T0, Expiry::Persist).unwrap();
    store.set(b"z", b"007", T0, Expiry::Persist).unwrap();
    let at = |key: &[u8], now| store.object(key, now).unwrap();
    assert_eq!(at(b"n", T0).encoding, "int");
    assert_eq!(at(b"s", T0).encoding, "embstr");
    assert_eq!(at(b"r", T0).encoding, "raw");
    assert_eq!(at(b"z", T0).encoding, "embstr");
    assert_eq!(at(b"n", T0 + 7_000).idle_ms, Some(7_000));
    // Asking did not count as an access; reading does.
    assert_eq!(at(b"n", T0 + 9_000).idle_ms, Some(9_000));
    store.get_with(b"n", T0 + 9_000, |_| ());
    assert_eq!(at(b"n", T0 + 9_000).idle_ms, Some(0));
    assert_eq!(at(b"n", T0).frequency, None);
    assert_eq!(store.object(b"missing", T0), None);
}

#[test]
fn reset_stats_zeroes_event_counters_only() {
    let store = filled(Policy::AllKeysRandom, 1000, |_| None);
    store.get_with(b"nothing", T0, |_| ());
    shrink_to(&store, half(&store), T0).unwrap();
    assert!(store.stats().evicted_keys > 0);
    store.reset_stats();
    let stats = store.stats();
    assert_eq!(
        (
            stats.evicted_keys,
            stats.keyspace_misses,
            stats.expired_keys
        ),
        (0, 0, 0)
    );
    assert!(stats.keys > 0);
}
