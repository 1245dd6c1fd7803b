//! Counting the memory a node holds, cheaply enough to check before every
//! write.
//!
//! `maxmemory` is compared with one number, [`MemoryUse::used`], that every
//! holder of memory keeps up to date where it allocates:
//!
//! - **The store**: each shard knows its own bytes exactly — entries (as the
//!   allocator's chunks, see [`allocation_cost`]), hash tables, table
//!   headers and expiry queue — maintained on every insert, change and
//!   removal, never by walking. Adding every change to a shared atomic
//!   would make all writers on all cores write one cache line, so a shard
//!   passes its changes on in steps of [`FLUSH_STEP`] bytes; the total is
//!   then behind the truth by less than `FLUSH_STEP` per shard (256 KiB at
//!   64 shards). Eviction passes on exactly what it freed at once.
//! - **Client buffers**: the connection code adds and subtracts what its
//!   input and output buffers hold ([`MemoryUse::add_client_buffers`]).
//! - **The replication backlog**: its ring, once allocated
//!   ([`MemoryUse::add_backlog`]).
//!
//! Reading the total is one relaxed atomic load, so a write under the limit
//! pays a load and a comparison.

use std::sync::atomic::{AtomicUsize, Ordering};

/// A shard passes its changes on to the shared total once they add up to
/// this many bytes (either way).
pub const FLUSH_STEP: usize = 4096;

/// What the allocator really spends on an allocation of `size` bytes:
/// glibc's malloc rounds a request plus its 8-byte chunk header up to 16
/// bytes, and never hands out less than 32. Counting this, rather than the
/// bytes asked for, keeps `used_memory` close to what the process holds.
pub fn allocation_cost(size: usize) -> usize {
    ((size + 8 + 15) & !15).max(32)
}

/// Parses a memory size as Redis does: bytes, or a number with a unit
/// (`k`, `m`, `g`: powers of 1000; `kb`, `mb`, `gb`: powers of 1024; `b`),
/// in any letter case.
pub fn parse_memory(text: &str) -> Result<usize, String> {
    let trimmed = text.trim();
    let digits = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits);
    let multiplier: usize = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => 0,
    };
    number
        .parse::<usize>()
        .ok()
        .filter(|_| multiplier > 0)
        .and_then(|n| n.checked_mul(multiplier))
        .ok_or_else(|| {
            format!("{text:?} is not a memory size (bytes, or a number with k, kb, m, mb, g or gb)")
        })
}

/// A memory size in a configuration file: a number of bytes, or a string
/// [`parse_memory`] reads (`64mb`).
pub fn deserialize_memory<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<usize, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Size {
        Bytes(usize),
        Text(String),
    }
    match <Size as serde::Deserialize>::deserialize(deserializer)? {
        Size::Bytes(bytes) => Ok(bytes),
        Size::Text(text) => parse_memory(&text).map_err(serde::de::Error::custom),
    }
}

/// The bytes a node holds, by holder, and their total. One per node, shared
/// by the store, the replication log and the connections.
#[derive(Debug, Default)]
pub struct MemoryUse {
    /// Everything below, plus the store's bytes as its shards last passed
    /// them on.
    total: AtomicUsize,
    client_buffers: AtomicUsize,
    backlog: AtomicUsize,
}

impl MemoryUse {
    /// A gauge with nothing counted yet.
    pub fn new() -> MemoryUse {
        MemoryUse::default()
    }

    /// Every byte counted: what `maxmemory` is compared with, and INFO's
    /// `used_memory` (give or take a [`FLUSH_STEP`] per shard).
    pub fn used(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// Counts `bytes` more held in client input and output buffers. Call it
    /// when a buffer's capacity grows (and [`sub_client_buffers`] when it
    /// shrinks or the buffer is freed), not per request.
    ///
    /// [`sub_client_buffers`]: MemoryUse::sub_client_buffers
    pub fn add_client_buffers(&self, bytes: usize) {
        self.client_buffers.fetch_add(bytes, Ordering::Relaxed);
        self.total.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts `bytes` less held in client buffers: the opposite of
    /// [`MemoryUse::add_client_buffers`], with the same bytes.
    pub fn sub_client_buffers(&self, bytes: usize) {
        self.client_buffers.fetch_sub(bytes, Ordering::Relaxed);
        self.total.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Bytes held in client buffers (INFO's `mem_clients_normal`).
    pub fn client_buffers(&self) -> usize {
        self.client_buffers.load(Ordering::Relaxed)
    }

    /// Counts the replication backlog's ring once it is allocated.
    pub fn add_backlog(&self, bytes: usize) {
        self.backlog.fetch_add(bytes, Ordering::Relaxed);
        self.total.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Bytes of the replication backlog (INFO's `mem_replication_backlog`).
    pub fn backlog(&self) -> usize {
        self.backlog.load(Ordering::Relaxed)
    }

    /// Bytes held outside the store: client buffers and the backlog.
    pub fn outside_store(&self) -> usize {
        self.client_buffers() + self.backlog()
    }

    /// A shard's change since it last passed one on.
    pub(super) fn add_store(&self, delta: isize) {
        match usize::try_from(delta) {
            Ok(grown) => self.total.fetch_add(grown, Ordering::Relaxed),
            Err(_) => self
                .total
                .fetch_sub(delta.unsigned_abs(), Ordering::Relaxed),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_cost_follows_glibc_chunks() {
        assert_eq!(allocation_cost(1), 32);
        assert_eq!(allocation_cost(24), 32);
        assert_eq!(allocation_cost(25), 48);
        // A 16-byte key and a 32-byte value behind the 8-byte header.
        assert_eq!(allocation_cost(56), 64);
        assert_eq!(allocation_cost(1000), 1008);
    }

    #[test]
    fn memory_sizes_take_redis_units() {
        assert_eq!(parse_memory("1048576"), Ok(1 << 20));
        assert_eq!(parse_memory("64mb"), Ok(64 << 20));
        assert_eq!(parse_memory("64MB"), Ok(64 << 20));
        assert_eq!(parse_memory("2k"), Ok(2000));
        assert_eq!(parse_memory("2kb"), Ok(2048));
        assert_eq!(parse_memory("1g"), Ok(1_000_000_000));
        assert_eq!(parse_memory("1gb"), Ok(1 << 30));
        assert_eq!(parse_memory("12b"), Ok(12));
        for bad in ["", "mb", "-1", "1.5gb", "10 tb", "99999999999999999999gb"] {
            assert!(parse_memory(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_total_adds_every_holder() {
        let memory = MemoryUse::new();
        memory.add_store(10_000);
        memory.add_client_buffers(4096);
        memory.add_backlog(1 << 20);
        assert_eq!(memory.used(), 10_000 + 4096 + (1 << 20));
        memory.add_store(-2_000);
        memory.sub_client_buffers(4096);
        assert_eq!(memory.used(), 8_000 + (1 << 20));
        assert_eq!(memory.outside_store(), 1 << 20);
        assert_eq!(memory.client_buffers(), 0);
    }
}
