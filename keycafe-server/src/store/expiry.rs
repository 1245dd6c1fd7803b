//! The queue of deadlines that drives active expiry in one shard.
//!
//! Lazy expiry (a key past its deadline is treated as absent and removed when
//! a command touches it) is enough for correctness, but a key that is never
//! touched again would hold its memory forever. Active expiry reclaims those,
//! and it has to do so without scanning keys: most keys of a cache often have
//! no deadline at all, and a scan would cost in proportion to all of them.
//!
//! So each shard keeps a min-heap of [`Due`] items, `(deadline, key hash,
//! table)`, pushed whenever a key is given a deadline. An item holds no copy of
//! the key, only what is needed to find it again: the per-slot table and the
//! hash. When an item comes due, the shard removes every entry of that table
//! with that hash whose deadline has passed. That may include a different key
//! that happens to share the hash, but any entry past its deadline is dead
//! anyway, so removing it is always right.
//!
//! Items are never updated or removed when a key changes: deleting a key,
//! giving it a new deadline or persisting it simply leaves a *stale* item
//! behind, and a stale item finds nothing to remove when it comes due. The
//! price is garbage in the heap, which [`ExpiryQueue::compact`] bounds: when
//! the heap holds more than twice as many items as the shard has volatile
//! keys (checked on every push and every removal of a volatile key), it
//! keeps only the items that still match a live deadline. Compaction costs
//! O(heap), and it is only reached after about as many pushes or removals as
//! items survive it, so each pays O(log n) amortised.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A deadline to check: the entries in `table` with `hash` expire at
/// `deadline` (ms since the Unix epoch), unless they changed since.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Due {
    pub deadline: u64,
    pub hash: u64,
    /// Index of the slot's table within its shard.
    pub table: u16,
}

/// Slack before compaction is considered, so that a shard with a handful of
/// volatile keys does not compact on every other push.
const COMPACT_SLACK: usize = 64;

/// A min-heap of [`Due`] items, earliest deadline first.
#[derive(Debug, Default)]
pub struct ExpiryQueue {
    heap: BinaryHeap<Reverse<Due>>,
}

impl ExpiryQueue {
    pub fn push(&mut self, due: Due) {
        self.heap.push(Reverse(due));
    }

    /// Removes and returns the earliest item if its deadline is before `now`
    /// (a key is alive up to and including its deadline millisecond, as in
    /// Redis).
    pub fn pop_due(&mut self, now: u64) -> Option<Due> {
        match self.heap.peek() {
            Some(Reverse(due)) if due.deadline < now => self.heap.pop().map(|Reverse(due)| due),
            _ => None,
        }
    }

    /// The earliest item, due or not.
    pub fn peek(&self) -> Option<Due> {
        self.heap.peek().map(|Reverse(due)| *due)
    }

    /// Drops the earliest item (eviction drops stale ones it meets).
    pub fn pop(&mut self) {
        self.heap.pop();
    }

    /// The item at position `index` modulo the queue's length, in the
    /// heap's own order: a random index gives a random item, which is how
    /// eviction samples keys with a deadline.
    pub fn get(&self, index: usize) -> Option<Due> {
        let items = self.heap.as_slice();
        match items.len() {
            0 => None,
            len => Some(items[index % len].0),
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when stale items have piled up relative to the `volatile` keys
    /// they were pushed for.
    pub fn needs_compaction(&self, volatile: usize) -> bool {
        self.heap.len() > volatile.saturating_mul(2) + COMPACT_SLACK
    }

    /// Keeps one copy of each item for which `is_live` says a key still has
    /// that deadline, and gives memory back if the heap shrank a lot.
    pub fn compact(&mut self, mut is_live: impl FnMut(&Due) -> bool) {
        let mut items = std::mem::take(&mut self.heap).into_vec();
        // Sorting brings duplicates (the same deadline set twice) together.
        items.sort_unstable();
        items.dedup();
        items.retain(|Reverse(due)| is_live(due));
        if items.capacity() > 4 * items.len() + COMPACT_SLACK {
            items.shrink_to(2 * items.len());
        }
        self.heap = BinaryHeap::from(items);
    }

    pub fn clear(&mut self) {
        self.heap = BinaryHeap::new();
    }

    /// Bytes held by the heap's buffer.
    pub fn allocated_bytes(&self) -> usize {
        self.heap.capacity() * std::mem::size_of::<Reverse<Due>>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn due(deadline: u64, hash: u64) -> Due {
        Due {
            deadline,
            hash,
            table: 0,
        }
    }

    #[test]
    fn pops_in_deadline_order_only_when_due() {
        let mut queue = ExpiryQueue::default();
        for (deadline, hash) in [(30, 1), (10, 2), (20, 3)] {
            queue.push(due(deadline, hash));
        }
        assert_eq!(
            queue.pop_due(10),
            None,
            "alive through its deadline millisecond"
        );
        assert_eq!(queue.pop_due(25), Some(due(10, 2)));
        assert_eq!(queue.pop_due(25), Some(due(20, 3)));
        assert_eq!(queue.pop_due(25), None);
        assert_eq!(queue.len(), 1);
    }

    #[test]
    fn compaction_drops_stale_and_duplicate_items() {
        let mut queue = ExpiryQueue::default();
        for i in 0..100 {
            queue.push(due(i, i));
            queue.push(due(i, i));
        }
        assert!(queue.needs_compaction(10));
        assert!(!queue.needs_compaction(100));
        queue.compact(|d| d.hash % 10 == 0);
        assert_eq!(queue.len(), 10);
        let popped: Vec<u64> = std::iter::from_fn(|| queue.pop_due(u64::MAX))
            .map(|d| d.hash)
            .collect();
        assert_eq!(popped, (0..100).step_by(10).collect::<Vec<_>>());
    }
}
