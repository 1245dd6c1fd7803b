//! Store-level tests: explicit clocks, no sleeps.

use super::*;

fn value_of(store: &Store, key: &[u8], now: u64) -> Option<Vec<u8>> {
    store.get_with(key, now, |v| v.map(<[u8]>::to_vec))
}

/// Keys that all hash to one slot (and so one table), thanks to a hash tag.
fn tagged(i: usize) -> Vec<u8> {
    format!("{{tag}}:{i}").into_bytes()
}

#[test]
fn set_get_remove() {
    let store = Store::new();
    assert_eq!(value_of(&store, b"k", 0), None);
    store.set(b"k", b"v1", 0, Expiry::Persist).unwrap();
    assert_eq!(value_of(&store, b"k", 0).as_deref(), Some(&b"v1"[..]));
    store
        .set(b"k", b"a much longer value than before", 0, Expiry::Persist)
        .unwrap();
    assert_eq!(
        value_of(&store, b"k", 0).as_deref(),
        Some(&b"a much longer value than before"[..])
    );
    assert_eq!(store.len(0), 1);
    assert!(store.remove(b"k", 0));
    assert!(!store.remove(b"k", 0));
    assert!(store.is_empty(0));
    let stats = store.stats();
    assert_eq!((stats.keyspace_hits, stats.keyspace_misses), (2, 1));
}

#[test]
fn keys_and_values_are_binary() {
    let store = Store::new();
    let key = b"\0\r\n{}\xff";
    let value: Vec<u8> = (0..=255u8).rev().collect();
    store.set(key, &value, 0, Expiry::Persist).unwrap();
    assert_eq!(value_of(&store, key, 0), Some(value));
    assert_eq!(value_of(&store, b"\0\r\n{}", 0), None);
}

#[test]
fn too_large_is_refused() {
    let store = Store::new();
    let huge = vec![0u8; MAX_STRING_LEN + 1];
    assert_eq!(
        store.set(b"k", &huge, 0, Expiry::Persist),
        Err(StoreError::TooLarge)
    );
    assert_eq!(
        store.set_many([(&b"a"[..], &huge[..])].into_iter(), 0, false),
        Err(StoreError::TooLarge)
    );
    store.set(b"k", b"x", 0, Expiry::Persist).unwrap();
    let result = store.entry(b"k", 0, |e| e.append(&huge[1..]));
    assert_eq!(result, Err(StoreError::TooLarge));
    assert_eq!(value_of(&store, b"k", 0).as_deref(), Some(&b"x"[..]));
    assert!(!store.is_empty(0));
}

#[test]
fn lazy_expiry_hides_and_removes() {
    let store = Store::new();
    store.set(b"k", b"v", 0, Expiry::At(100)).unwrap();
    // Alive through its deadline millisecond, gone after it.
    assert_eq!(value_of(&store, b"k", 100).as_deref(), Some(&b"v"[..]));
    assert_eq!(store.stats().keys, 1);
    assert_eq!(value_of(&store, b"k", 101), None);
    let stats = store.stats();
    assert_eq!(
        (stats.keys, stats.volatile_keys, stats.expired_keys),
        (0, 0, 1)
    );
    // A write sees the key as absent too.
    store.set(b"k", b"v", 0, Expiry::At(100)).unwrap();
    assert!(!store.entry(b"k", 200, |e| e.exists()));
}

#[test]
fn deadline_changes_through_key_entry() {
    let store = Store::new();
    store.set(b"k", b"v", 0, Expiry::At(100)).unwrap();
    store.entry(b"k", 0, |e| {
        assert_eq!(e.ttl(), Ttl::Remaining(100));
        e.set(b"w", Expiry::Keep).unwrap();
        assert_eq!(e.deadline(), Some(100));
        e.set(b"w", Expiry::Persist).unwrap();
        assert_eq!(e.ttl(), Ttl::Persistent);
        assert!(e.set_deadline(Some(50)));
        assert_eq!(e.append(b"xyz"), Ok(4));
        assert_eq!((e.value(), e.deadline()), (Some(&b"wxyz"[..]), Some(50)));
    });
    assert_eq!(store.stats().volatile_keys, 1);
    // A deadline that is not in the future deletes.
    assert!(store.entry(b"k", 10, |e| e.set_deadline(Some(10))));
    assert_eq!(store.entry(b"k", 10, |e| e.ttl()), Ttl::Missing);
    store.set(b"k", b"v", 10, Expiry::At(5)).unwrap();
    assert_eq!(store.stats().keys, 0);
}

#[test]
fn active_expiry_reclaims_untouched_keys() {
    let store = Store::new();
    for i in 0..1000u64 {
        let deadline = if i % 2 == 0 { 100 + i } else { 10_000 };
        store
            .set(format!("key:{i}").as_bytes(), b"v", 0, Expiry::At(deadline))
            .unwrap();
    }
    store.set(b"persistent", b"v", 0, Expiry::Persist).unwrap();
    assert_eq!(store.expire_cycle(100), 0);
    // Deadlines 100..=199 are past at 200: keys 0, 2, ..., 98.
    assert_eq!(store.expire_cycle(200), 50);
    assert_eq!(store.expire_cycle(5_000), 450);
    let stats = store.stats();
    assert_eq!(
        (stats.keys, stats.volatile_keys, stats.expired_keys),
        (501, 500, 500)
    );
    assert_eq!(store.expire_cycle(20_000), 500);
    assert_eq!(store.len(20_000), 1);
}

#[test]
fn active_expiry_work_is_bounded_per_cycle() {
    let store = Store::with_shards(1);
    for i in 0..EXPIRE_BUDGET_PER_SHARD + 100 {
        store
            .set(format!("key:{i}").as_bytes(), b"v", 0, Expiry::At(10))
            .unwrap();
    }
    assert_eq!(store.expire_cycle(11), EXPIRE_BUDGET_PER_SHARD);
    assert_eq!(store.expire_cycle(11), 100);
}

#[test]
fn stale_deadlines_remove_nothing() {
    let store = Store::new();
    store.set(b"extended", b"v", 0, Expiry::At(10)).unwrap();
    store.entry(b"extended", 0, |e| e.set_deadline(Some(1_000)));
    store.set(b"persisted", b"v", 0, Expiry::At(10)).unwrap();
    store.entry(b"persisted", 0, |e| e.set_deadline(None));
    store.set(b"overwritten", b"v", 0, Expiry::At(10)).unwrap();
    store.set(b"overwritten", b"v", 0, Expiry::Persist).unwrap();
    store.set(b"deleted", b"v", 0, Expiry::At(10)).unwrap();
    store.remove(b"deleted", 0);
    assert_eq!(store.expire_cycle(500), 0);
    assert_eq!(store.len(500), 3);
    assert_eq!(store.expire_cycle(2_000), 1);
    assert_eq!(value_of(&store, b"extended", 2_000), None);
}

#[test]
fn expiry_queue_stays_bounded_when_deadlines_are_refreshed() {
    let store = Store::with_shards(1);
    store
        .set(b"session", b"v", 0, Expiry::At(1_000_000))
        .unwrap();
    for now in 0..10_000u64 {
        // A session touched on every request: a new deadline each time.
        store.entry(b"session", now, |e| e.set_deadline(Some(now + 1_000_000)));
    }
    let queued = store.lock(0).queued_deadlines();
    assert!(queued <= 2 + 64 + 1, "expiry queue grew to {queued}");
    // The live deadline survived compaction.
    assert_eq!(store.expire_cycle(1_009_999), 0);
    assert_eq!(store.expire_cycle(1_010_000), 1);
}

#[test]
fn slots_are_counted_and_listed() {
    let store = Store::new();
    for i in 0..100 {
        store.set(&tagged(i), b"v", 0, Expiry::Persist).unwrap();
    }
    store.set(b"elsewhere", b"v", 0, Expiry::Persist).unwrap();
    // Deadline 1 ms after the epoch: expired by the real clock these use.
    store.set(&tagged(100), b"v", 0, Expiry::At(1)).unwrap();
    let slot = key_slot(b"tag");
    assert_eq!(store.count_keys_in_slot(slot), 100);
    assert_eq!(store.count_keys_in_slot(key_slot(b"elsewhere")), 1);
    assert_eq!(store.keys_in_slot(slot, 10).len(), 10);
    let mut all = store.keys_in_slot(slot, 1000);
    all.sort();
    let mut expected: Vec<_> = (0..100).map(tagged).collect();
    expected.sort();
    assert_eq!(all, expected);
    let empty_slot = (0..SLOT_COUNT)
        .find(|&s| s != slot && s != key_slot(b"elsewhere"))
        .unwrap();
    assert!(store.keys_in_slot(empty_slot, 10).is_empty());
    assert_eq!(store.count_keys_in_slot(empty_slot), 0);
}

#[test]
fn tables_shrink_after_deletes() {
    let store = Store::with_shards(1);
    let empty = store.stats().used_bytes;
    for i in 0..10_000 {
        store.set(&tagged(i), b"v", 0, Expiry::Persist).unwrap();
    }
    let full = store.stats().used_bytes;
    for i in 0..10_000 {
        assert!(store.remove(&tagged(i), 0));
    }
    let after = store.stats().used_bytes;
    assert!(
        after < empty + (full - empty) / 100,
        "empty {empty}, full {full}, after deletes {after}"
    );
}

#[test]
fn set_many_is_all_or_nothing() {
    let store = Store::new();
    let pairs = [
        (&b"a"[..], &b"1"[..]),
        (b"b", b"2"),
        (b"c", b"3"),
        (b"a", b"4"),
    ];
    assert_eq!(store.set_many(pairs.into_iter(), 0, true), Ok(true));
    assert_eq!(
        value_of(&store, b"a", 0).as_deref(),
        Some(&b"4"[..]),
        "last value wins"
    );
    let more = [(&b"d"[..], &b"1"[..]), (b"c", b"9")];
    assert_eq!(store.set_many(more.into_iter(), 0, true), Ok(false));
    assert_eq!(value_of(&store, b"d", 0), None);
    assert_eq!(value_of(&store, b"c", 0).as_deref(), Some(&b"3"[..]));
    // An expired key counts as absent, and MSET clears deadlines.
    store.set(b"e", b"old", 0, Expiry::At(10)).unwrap();
    assert_eq!(
        store.set_many([(&b"e"[..], &b"new"[..])].into_iter(), 20, true),
        Ok(true)
    );
    assert_eq!(store.entry(b"e", 20, |e| e.ttl()), Ttl::Persistent);
}

#[test]
fn flush_all_empties_but_keeps_history() {
    let store = Store::new();
    for i in 0..1000 {
        store
            .set(format!("k{i}").as_bytes(), b"v", 0, Expiry::At(50))
            .unwrap();
    }
    value_of(&store, b"k1", 100);
    store.flush_all();
    let stats = store.stats();
    assert_eq!(
        (stats.keys, stats.volatile_keys, stats.expired_keys),
        (0, 0, 1)
    );
    assert_eq!(store.expire_cycle(1_000), 0);
    assert_eq!(value_of(&store, b"k2", 0), None);
}

#[test]
fn memory_per_key_is_compact() {
    let store = Store::new();
    let keys = 200_000;
    let baseline = store.stats().used_bytes;
    for i in 0..keys {
        store
            .set(
                format!("key:{i:012}").as_bytes(),
                &[b'v'; 32],
                0,
                Expiry::Persist,
            )
            .unwrap();
    }
    let per_key = (store.stats().used_bytes - baseline) / keys;
    // A 56-byte entry (the access history shares its 8-byte header with the
    // lengths) in a 64-byte allocator chunk, plus ~15-25 of table; Redis
    // spends ~100.
    assert!(per_key <= 90, "{per_key} bytes per key");
}

#[test]
fn concurrent_writers_neither_lose_updates_nor_deadlock() {
    let store = Store::with_shards(8);
    std::thread::scope(|scope| {
        for t in 0..8u8 {
            let store = &store;
            scope.spawn(move || {
                for i in 0..500u32 {
                    store.entry(b"counter", 0, |e| {
                        let n: u64 = e
                            .value()
                            .map_or(0, |v| std::str::from_utf8(v).unwrap().parse().unwrap());
                        e.set((n + 1).to_string().as_bytes(), Expiry::Keep).unwrap();
                    });
                    // Multi-shard writes in different key orders.
                    let (a, b) = (
                        format!("x{}", i % 7),
                        format!("y{}", (i + u32::from(t)) % 5),
                    );
                    let pairs = [(a.as_bytes(), &[t][..]), (b.as_bytes(), &[t][..])];
                    let pairs = if t % 2 == 0 {
                        pairs
                    } else {
                        [pairs[1], pairs[0]]
                    };
                    store.set_many(pairs.into_iter(), 0, false).unwrap();
                }
            });
        }
    });
    assert_eq!(
        value_of(&store, b"counter", 0).as_deref(),
        Some(&b"4000"[..])
    );
}

/// A subscriber that writes down every change as words.
#[derive(Default)]
pub(super) struct Recorder {
    pub(super) listening: std::sync::atomic::AtomicBool,
    pub(super) changes: std::sync::Mutex<Vec<Vec<String>>>,
}

impl Subscriber for Recorder {
    fn is_listening(&self) -> bool {
        self.listening.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn on_change(&self, change: Change<'_>) {
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        let words = match change {
            Change::Set {
                key,
                value,
                deadline,
            } => {
                let mut words = vec!["SET".into(), text(key), text(value)];
                words.extend(deadline.map(|d| format!("PXAT {d}")));
                words
            }
            Change::Del { key } => vec!["DEL".into(), text(key)],
            Change::FlushAll => vec!["FLUSHALL".into()],
            Change::Begin => vec!["MULTI".into()],
            Change::Commit => vec!["EXEC".into()],
        };
        self.changes.lock().unwrap().push(words);
    }
}

pub(super) fn recorded_store() -> (Store, std::sync::Arc<Recorder>) {
    let recorder = std::sync::Arc::new(Recorder::default());
    let store = Store::with_feed(
        Store::DEFAULT_SHARDS,
        ChangeFeed::new().with(recorder.clone()),
    );
    (store, recorder)
}

#[test]
fn every_change_is_recorded_as_a_whole_state() {
    let (store, recorder) = recorded_store();
    store.set(b"unheard", b"x", 0, Expiry::Persist).unwrap();
    store.set(b"before", b"x", 0, Expiry::Persist).unwrap();
    recorder
        .listening
        .store(true, std::sync::atomic::Ordering::Relaxed);
    store.set(b"k", b"1", 0, Expiry::Persist).unwrap();
    store.entry(b"k", 0, |e| e.append(b"2")).unwrap();
    store.entry(b"k", 0, |e| e.set_deadline(Some(50)));
    store.set(b"t", b"v", 0, Expiry::At(10)).unwrap();
    store.remove(b"before", 0);
    assert!(!store.remove(b"absent", 0), "no record for a no-op");
    assert_eq!(value_of(&store, b"t", 11), None, "lazily expired");
    store.expire_cycle(100);
    store.flush_all();
    let expected: Vec<Vec<&str>> = vec![
        vec!["SET", "k", "1"],
        vec!["SET", "k", "12"],
        vec!["SET", "k", "12", "PXAT 50"],
        vec!["SET", "t", "v", "PXAT 10"],
        vec!["DEL", "before"],
        vec!["DEL", "t"],
        vec!["DEL", "k"],
        vec!["FLUSHALL"],
    ];
    assert_eq!(*recorder.changes.lock().unwrap(), expected);
}

#[test]
fn a_replica_hides_expired_keys_but_keeps_them_for_its_primary() {
    let store = Store::new();
    store.set_role(Role::Replica);
    assert_eq!(store.role(), Role::Replica);
    store.set(b"k", b"v", 0, Expiry::At(10)).unwrap();
    assert_eq!(
        value_of(&store, b"k", 20),
        None,
        "hidden once past its deadline"
    );
    assert_eq!(
        store.expire_cycle(20),
        0,
        "a replica expires nothing itself"
    );
    assert_eq!(store.len(20), 1, "still held until the primary's DEL");
    assert!(
        store.remove(b"k", 0),
        "the DEL (applied at time 0) finds it"
    );
    assert_eq!(store.len(20), 0);
}
