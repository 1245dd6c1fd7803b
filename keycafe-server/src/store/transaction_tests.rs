//! Transactions and WATCH at the store level: explicit clocks, threads
//! only where waiting is the point.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use super::*;

fn set(store: &Store, key: &[u8], value: &[u8], now: u64) {
    store.set(key, value, now, Expiry::Persist).unwrap();
}

fn value_of(store: &Store, key: &[u8], now: u64) -> Option<Vec<u8>> {
    store.get_with(key, now, |v| v.map(<[u8]>::to_vec))
}

#[test]
fn a_transaction_keeps_other_commands_off_its_shards_until_it_ends() {
    let store = Arc::new(Store::new());
    let shards = store.shards_of([&b"a"[..]]);
    let written = Arc::new(AtomicBool::new(false));
    let (started, has_started) = mpsc::channel();
    let writer = store.atomically(&shards, true, || {
        set(&store, b"a", b"1", 0);
        let writer = std::thread::spawn({
            let (store, written) = (store.clone(), written.clone());
            move || {
                started.send(()).unwrap();
                set(&store, b"a", b"2", 0);
                written.store(true, Ordering::SeqCst);
            }
        });
        has_started.recv().unwrap();
        // The other thread is now waiting for the shard; this one still
        // uses it freely.
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            !written.load(Ordering::SeqCst),
            "a write got into a transaction"
        );
        assert_eq!(value_of(&store, b"a", 0).as_deref(), Some(&b"1"[..]));
        set(&store, b"a", b"3", 0);
        writer
    });
    writer.join().unwrap();
    assert!(written.load(Ordering::SeqCst));
    assert_eq!(value_of(&store, b"a", 0).as_deref(), Some(&b"2"[..]));
}

#[test]
fn other_shards_stay_free_during_a_transaction() {
    let store = Arc::new(Store::new());
    let (a, b) = (&b"{a}"[..], &b"{b}"[..]);
    assert_ne!(
        store.shards_of([a]),
        store.shards_of([b]),
        "pick keys of two shards"
    );
    store.atomically(&store.shards_of([a]), true, || {
        let store = store.clone();
        std::thread::spawn(move || set(&store, b"{b}", b"free", 0))
            .join()
            .unwrap();
    });
    assert_eq!(value_of(&store, b, 0).as_deref(), Some(&b"free"[..]));
}

#[test]
fn the_feed_hears_a_transaction_as_one_unit() {
    let (store, recorder) = super::tests::recorded_store();
    recorder.listening.store(true, Ordering::Relaxed);
    store.atomically(&store.shards_of([&b"{t}a"[..], b"{t}b"]), true, || {
        set(&store, b"{t}a", b"1", 0);
        set(&store, b"{t}b", b"2", 0);
    });
    // A transaction that only reads says nothing.
    store.atomically(&ShardSet::All, false, || value_of(&store, b"{t}a", 0));
    let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        *recorder.changes.lock().unwrap(),
        [
            words(&["MULTI"]),
            words(&["SET", "{t}a", "1"]),
            words(&["SET", "{t}b", "2"]),
            words(&["EXEC"]),
        ]
    );
}

/// A fresh watch of `key` at `now`.
fn watching(store: &Store, key: &[u8], now: u64) -> Watch {
    let mut watch = None;
    store.watch(&mut watch, key, now);
    watch.expect("watch made on first use")
}

#[test]
fn watch_sees_writes_deletes_and_flushes_of_its_key_only() {
    let store = Store::new();
    set(&store, b"k", b"v", 0);
    set(&store, b"other", b"v", 0);

    let watch = watching(&store, b"k", 0);
    set(&store, b"other", b"w", 0);
    assert!(!store.watch_broken(&watch, 0), "another key changed");
    assert_eq!(value_of(&store, b"k", 0).as_deref(), Some(&b"v"[..]));
    assert!(!store.watch_broken(&watch, 0), "a read is no change");
    set(&store, b"k", b"w", 0);
    assert!(store.watch_broken(&watch, 0));

    let watch = watching(&store, b"k", 0);
    store.remove(b"k", 0);
    assert!(store.watch_broken(&watch, 0));

    // FLUSHALL touches a watched key it removes, not a missing one.
    let missing = watching(&store, b"missing", 0);
    set(&store, b"k", b"v", 0);
    let present = watching(&store, b"k", 0);
    store.flush_all();
    assert!(store.watch_broken(&present, 0));
    assert!(!store.watch_broken(&missing, 0));
}

#[test]
fn a_watched_key_that_expires_counts_as_changed() {
    let store = Store::new();
    store.set(b"k", b"v", 0, Expiry::At(100)).unwrap();
    let watch = watching(&store, b"k", 50);
    assert!(!store.watch_broken(&watch, 100), "alive up to its deadline");
    // Not yet reclaimed by anything: still broken.
    assert!(store.watch_broken(&watch, 101));

    // Reclaimed by active expiry before EXEC looks: broken too.
    store.set(b"k", b"v", 0, Expiry::At(100)).unwrap();
    let watch = watching(&store, b"k", 50);
    assert_eq!(store.expire_cycle(101), 1);
    assert!(watch.flagged());
}

#[test]
fn eviction_touches_the_watchers_of_the_keys_it_removes() {
    let store = Store::new();
    store.set_policy(Policy::AllKeysRandom);
    set(&store, b"k", &[b'v'; 1000], 0);
    let watch = watching(&store, b"k", 0);
    // One byte cannot be met (the tables stay): the one key goes.
    assert_eq!(store.make_room(1, 0), Ok(1));
    assert_eq!(store.len(0), 0);
    assert!(store.watch_broken(&watch, 0));
}

#[test]
fn dropping_a_watch_unregisters_it() {
    let store = Store::new();
    let watch = watching(&store, b"k", 0);
    assert_eq!(store.common.watches.watched.load(Ordering::Relaxed), 1);
    drop(watch);
    assert_eq!(store.common.watches.watched.load(Ordering::Relaxed), 0);
    // With nobody watching, a change costs the one counter read.
    set(&store, b"k", b"v", 0);
}
