//! Running several operations with nobody else in between (MULTI/EXEC, and
//! a replica applying its primary's transaction).
//!
//! Every operation of the store locks one shard (or, for multi-key writes,
//! several in ascending order) for as long as it runs. A transaction must
//! keep other commands out of its shards for *all* its operations, yet each
//! of them still locks its shard as usual. Holding the shards' mutexes
//! across the operations would deadlock on the first one, since a mutex is
//! not reentrant; so a transaction *owns* its shards instead:
//!
//! 1. Transactions run one at a time per store (`Store::atomically` takes a
//!    store-wide mutex first), like Redis's, which runs everything one at a
//!    time. They are short: queued commands, run back to back, never
//!    waiting for I/O.
//! 2. The transaction marks each shard it needs as owned by its id (in
//!    ascending order), then runs its operations on this thread. The thread
//!    remembers the id (a thread-local), so its own operations pass.
//! 3. Any other operation that locks an owned shard waits on that shard's
//!    condition variable until the transaction releases it. Its cost when
//!    nobody runs a transaction is one comparison of a field of the shard
//!    it has just locked.
//!
//! Deadlock freedom: the transaction touches only shards it owns (the
//! caller names them up front, every shard when it cannot tell), and never
//! waits for an owned shard itself. An operation that waits for an owned
//! shard may hold mutexes of lower shards (a multi-key write locks in
//! ascending order), but the transaction took its shards in ascending order
//! too, so any lower shard it needs it already owns, and the waiting
//! operation could not have locked that one past the ownership check.

use std::cell::Cell;

thread_local! {
    /// The transaction this thread is running; 0 for none.
    static RUNNING: Cell<u64> = const { Cell::new(0) };
}

/// True if a shard owned by `owner` may be used by this thread: nobody owns
/// it, or this thread runs the transaction that does.
pub(super) fn may_use(owner: u64) -> bool {
    owner == 0 || RUNNING.with(Cell::get) == owner
}

/// Marks this thread as running transaction `id` until dropped.
pub(super) struct Running(());

impl Running {
    pub(super) fn start(id: u64) -> Running {
        RUNNING.with(|running| running.set(id));
        Running(())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.with(|running| running.set(0));
    }
}

/// The shards a transaction needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardSet {
    /// Every shard: the transaction runs a command whose keys are not known
    /// up front (FLUSHALL, DBSIZE, KEYS, ...).
    All,
    /// These shards, ascending, without repeats.
    Some(Vec<usize>),
}

impl ShardSet {
    /// The shard numbers of this set in a store of `count` shards, ascending.
    pub(super) fn numbers(&self, count: usize) -> Vec<usize> {
        match self {
            ShardSet::All => (0..count).collect(),
            ShardSet::Some(shards) => shards.clone(),
        }
    }
}
