//! WATCH: which connections must hear that a key changed.
//!
//! A connection that watches keys is told of any change to them until its
//! EXEC, DISCARD or UNWATCH (or until it closes), so that EXEC can refuse to
//! run a transaction whose assumptions no longer hold. Every change to a key
//! passes through the shard methods that tell the change feed (set,
//! removal — by a command, expiry, eviction or a migration — and FLUSHALL),
//! and those also call [`Watches::touch`].
//!
//! Nothing here costs anything while nobody watches: [`Watches::touch`]
//! reads one counter and returns. When somebody does, a change looks its key
//! up in one table behind a mutex, taken while the changed key's shard is
//! locked (shard first, then this table; registering takes this table
//! alone).
//!
//! A key that expires is a change too, even before anything reclaims it:
//! [`Watch`] remembers which keys were alive when watched, and EXEC counts
//! one that is no longer alive as touched (Redis does the same).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// One connection's "something I watch changed" flag.
type Flag = Arc<AtomicBool>;

/// Every watched key of a store, with the flags of the connections watching
/// it.
#[derive(Default)]
pub struct Watches {
    /// Keys with at least one watcher: the only thing a change reads while
    /// nobody watches.
    pub(super) watched: AtomicUsize,
    keys: Mutex<HashMap<Box<[u8]>, Vec<Flag>>>,
}

impl Watches {
    /// Tells whoever watches `key` that it changed. Called with the key's
    /// shard locked; the registration of a watch reads the key under that
    /// lock after adding itself here, which is what makes the unlocked
    /// counter read safe: a change that misses the new watcher happened
    /// before the watch saw the key.
    pub fn touch(&self, key: &[u8]) {
        if self.watched.load(Ordering::Relaxed) == 0 {
            return;
        }
        if let Some(flags) = self.lock().get(key) {
            flags
                .iter()
                .for_each(|flag| flag.store(true, Ordering::Relaxed));
        }
    }

    /// Tells the watchers of every watched key for which `present` is
    /// true (FLUSHALL: the keys it really removed).
    pub fn touch_where(&self, mut present: impl FnMut(&[u8]) -> bool) {
        if self.watched.load(Ordering::Relaxed) == 0 {
            return;
        }
        for (key, flags) in self.lock().iter() {
            if present(key) {
                flags
                    .iter()
                    .for_each(|flag| flag.store(true, Ordering::Relaxed));
            }
        }
    }

    fn add(&self, key: &[u8], flag: &Flag) {
        let mut keys = self.lock();
        let flags = keys.entry(key.into()).or_default();
        if flags.is_empty() {
            self.watched.fetch_add(1, Ordering::Relaxed);
        }
        flags.push(flag.clone());
    }

    fn remove(&self, key: &[u8], flag: &Flag) {
        let mut keys = self.lock();
        let Some(flags) = keys.get_mut(key) else {
            return;
        };
        flags.retain(|f| !Arc::ptr_eq(f, flag));
        if flags.is_empty() {
            keys.remove(key);
            self.watched.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Box<[u8]>, Vec<Flag>>> {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The keys one connection watches. Dropping it stops watching them.
pub struct Watch {
    watches: Arc<Watches>,
    flag: Flag,
    /// Each key, and whether it was alive when watched.
    keys: Vec<(Box<[u8]>, bool)>,
}

impl Watch {
    pub(super) fn new(watches: Arc<Watches>) -> Watch {
        Watch {
            watches,
            flag: Flag::default(),
            keys: Vec::new(),
        }
    }

    /// True if `key` is watched already (WATCH twice adds nothing).
    pub(super) fn has(&self, key: &[u8]) -> bool {
        self.keys.iter().any(|(k, _)| &k[..] == key)
    }

    /// Registers `key`; the caller then reads whether it is alive and says
    /// so with [`Watch::set_alive`].
    pub(super) fn add(&mut self, key: &[u8]) {
        self.watches.add(key, &self.flag);
        self.keys.push((key.into(), false));
    }

    pub(super) fn set_alive(&mut self, alive: bool) {
        if let Some(last) = self.keys.last_mut() {
            last.1 = alive;
        }
    }

    /// True if a change to a watched key was seen.
    pub(super) fn flagged(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }

    /// The keys that were alive when watched.
    pub(super) fn alive_when_watched(&self) -> impl Iterator<Item = &[u8]> {
        self.keys
            .iter()
            .filter(|(_, alive)| *alive)
            .map(|(key, _)| &key[..])
    }

    /// Every key watched.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.keys.iter().map(|(key, _)| &key[..])
    }

    /// The number of keys watched.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        for (key, _) in &self.keys {
            self.watches.remove(key, &self.flag);
        }
    }
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("keys", &self.keys.len())
            .field("flagged", &self.flagged())
            .finish()
    }
}
