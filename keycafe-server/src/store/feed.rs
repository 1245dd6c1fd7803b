//! The change feed: every change the store makes, told to whoever listens.
//!
//! The store is the bottom layer of a node and knows nothing of what is
//! built on it. Mechanisms that must see every change — the replication log
//! today, an append-only file tomorrow — implement [`Subscriber`] and are
//! given to the store when it is made ([`ChangeFeed::with`]). The store
//! calls them *while holding the lock of the changed key's shard* (all
//! shards for FLUSHALL). That is what orders the feed: two changes to one
//! key take the same lock, so a subscriber hears them in the order they
//! were applied, and changes to different keys commute.
//!
//! Each change is a key's whole new state (`Set` with its value and
//! deadline, or `Del`), never a delta such as "increment by 3", so a
//! subscriber that hears a change twice (a replica's fuzzy full copy) ends
//! up in the same state.
//!
//! Subscribers are asked [`Subscriber::is_listening`] before each change is
//! built: a node without replicas pays one atomic load per write.

use std::sync::Arc;

/// One change to the keyspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change<'a> {
    /// `key` now holds `value`, until `deadline` (ms since the Unix epoch)
    /// if there is one.
    Set {
        key: &'a [u8],
        value: &'a [u8],
        deadline: Option<u64>,
    },
    /// `key` is gone: deleted, expired, or moved away.
    Del { key: &'a [u8] },
    /// Every key is gone.
    FlushAll,
    /// The changes up to the next [`Change::Commit`] belong to one
    /// transaction (MULTI/EXEC): whoever applies them elsewhere applies them
    /// together. Changes to keys outside the transaction may be heard in
    /// between; they commute with it. Transactions never nest.
    Begin,
    /// The end of the transaction that [`Change::Begin`] started.
    Commit,
}

/// Something that hears every change the store makes.
pub trait Subscriber: Send + Sync {
    /// True while this subscriber wants changes. Called under a shard lock
    /// on every write: keep it to an atomic load.
    fn is_listening(&self) -> bool;

    /// Called with each change, under the changed shard's lock (see the
    /// module documentation), only while [`Subscriber::is_listening`].
    fn on_change(&self, change: Change<'_>);
}

/// The subscribers of one store, fixed when the store is made.
#[derive(Default, Clone)]
pub struct ChangeFeed {
    subscribers: Vec<Arc<dyn Subscriber>>,
}

impl ChangeFeed {
    /// A feed nobody listens to.
    pub fn new() -> ChangeFeed {
        ChangeFeed::default()
    }

    /// This feed with one more subscriber.
    pub fn with(mut self, subscriber: Arc<dyn Subscriber>) -> ChangeFeed {
        self.subscribers.push(subscriber);
        self
    }

    /// True if some subscriber listens: only then is a change worth
    /// describing.
    pub fn is_listening(&self) -> bool {
        self.subscribers.iter().any(|s| s.is_listening())
    }

    /// Tells every listening subscriber of `change`.
    pub fn emit(&self, change: Change<'_>) {
        for subscriber in &self.subscribers {
            if subscriber.is_listening() {
                subscriber.on_change(change);
            }
        }
    }
}
