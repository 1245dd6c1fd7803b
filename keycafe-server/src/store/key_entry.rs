//! [`KeyEntry`]: one key, looked up once, read and changed under its shard's
//! lock.
//!
//! Commands are written as a closure over a `KeyEntry` (see
//! [`super::Store::entry`]) rather than as one store method per command. A
//! command's semantics stay in its handler (SET's NX/XX/GET/KEEPTTL, GETEX,
//! INCR's parse-compute-store), the store stays small, and each command still
//! runs as one atomic step with one hash lookup.

use super::entry::Entry;
use super::shard::{Location, Shard};
use super::{MAX_STRING_LEN, StoreError};

/// What a write does with the key's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// No deadline (plain SET).
    Persist,
    /// Keep the current deadline, if any (KEEPTTL, INCR, APPEND).
    Keep,
    /// Expire at this time, ms since the Unix epoch. A time that is not in the
    /// future deletes the key, as EXPIRE with a past time does.
    At(u64),
}

/// A key's remaining time to live, as TTL and PTTL see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    Missing,
    Persistent,
    /// Milliseconds left.
    Remaining(u64),
}

/// A key in its shard, present or absent, while the shard is locked.
pub struct KeyEntry<'a> {
    shard: &'a mut Shard,
    key: &'a [u8],
    at: Location,
    now: u64,
    /// The key's bucket while it is present.
    bucket: Option<usize>,
}

impl<'a> KeyEntry<'a> {
    /// Looks `key` up at time `now` (removing it if it has expired).
    pub(super) fn new(shard: &'a mut Shard, key: &'a [u8], at: Location, now: u64) -> Self {
        let bucket = shard.find(at.table, at.hash, key, now);
        KeyEntry {
            shard,
            key,
            at,
            now,
            bucket,
        }
    }

    /// Counts this lookup as a keyspace hit or miss (for reading commands).
    pub(super) fn record_lookup(&mut self) {
        let counters = &mut self.shard.counters;
        if self.bucket.is_some() {
            counters.hits += 1;
        } else {
            counters.misses += 1;
        }
    }

    pub fn key(&self) -> &[u8] {
        self.key
    }

    /// The time this command runs at, ms since the Unix epoch.
    pub fn now(&self) -> u64 {
        self.now
    }

    pub fn exists(&self) -> bool {
        self.bucket.is_some()
    }

    pub fn value(&self) -> Option<&[u8]> {
        self.stored().map(Entry::value)
    }

    /// The key's deadline, if it is present and has one.
    pub fn deadline(&self) -> Option<u64> {
        self.stored().and_then(Entry::deadline)
    }

    pub fn ttl(&self) -> Ttl {
        match self.stored() {
            None => Ttl::Missing,
            Some(entry) => match entry.deadline() {
                None => Ttl::Persistent,
                Some(deadline) => Ttl::Remaining(deadline.saturating_sub(self.now)),
            },
        }
    }

    /// Stores `value` (creating the key if needed) with the given deadline.
    pub fn set(&mut self, value: &[u8], expiry: Expiry) -> Result<(), StoreError> {
        check_len(self.key.len())?;
        check_len(value.len())?;
        let deadline = match expiry {
            Expiry::Persist => None,
            Expiry::Keep => self.deadline(),
            Expiry::At(deadline) if deadline <= self.now => {
                self.remove();
                return Ok(());
            }
            Expiry::At(deadline) => Some(deadline),
        };
        match self.bucket {
            Some(bucket) => {
                let at = self.at;
                self.shard
                    .modify(at.table, bucket, at.hash, |e| e.set_value(value, deadline));
            }
            None => {
                let entry = Entry::new(self.key, value, deadline);
                self.bucket = Some(
                    self.shard
                        .insert(self.at.table, self.at.hash, entry, self.now),
                );
            }
        }
        Ok(())
    }

    /// Gives the key a deadline (`Some`) or makes it persistent (`None`).
    /// A deadline that is not in the future deletes the key. Returns false
    /// if the key is absent.
    pub fn set_deadline(&mut self, deadline: Option<u64>) -> bool {
        let Some(bucket) = self.bucket else {
            return false;
        };
        if deadline.is_some_and(|d| d <= self.now) {
            return self.remove();
        }
        let at = self.at;
        self.shard
            .modify(at.table, bucket, at.hash, |e| e.set_deadline(deadline));
        true
    }

    /// Deletes the key; returns whether it was present.
    pub fn remove(&mut self) -> bool {
        match self.bucket.take() {
            Some(bucket) => {
                self.shard.remove(self.at.table, bucket);
                true
            }
            None => false,
        }
    }

    /// Appends to the value (creating the key if needed), keeping any
    /// deadline; returns the new length.
    pub fn append(&mut self, data: &[u8]) -> Result<usize, StoreError> {
        let Some(bucket) = self.bucket else {
            self.set(data, Expiry::Persist)?;
            return Ok(data.len());
        };
        let old_len = self.value().map_or(0, <[u8]>::len);
        let new_len = old_len
            .checked_add(data.len())
            .ok_or(StoreError::TooLarge)?;
        check_len(new_len)?;
        let at = self.at;
        self.shard
            .modify(at.table, bucket, at.hash, |e| e.append(data));
        Ok(new_len)
    }

    /// Changes the value in place (SETRANGE, SETBIT): first lengthens it to
    /// at least `len` bytes with zero bytes at its end (creating the key,
    /// persistent, if it is absent), then calls `change` with it, keeping any
    /// deadline. The change is one write to the change feed, whatever its
    /// size, and the value is never copied: a one-bit change to a large
    /// bitmap costs one byte. `OBJECT ENCODING` says `raw` for the value
    /// from then on, as Redis does after SETRANGE or SETBIT.
    pub fn update_value<R>(
        &mut self,
        len: usize,
        change: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R, StoreError> {
        check_len(len)?;
        match self.bucket {
            Some(bucket) => {
                let at = self.at;
                Ok(self.shard.modify(at.table, bucket, at.hash, |e| {
                    e.grow_value(len);
                    e.mark_raw();
                    change(e.value_mut())
                }))
            }
            None => {
                check_len(self.key.len())?;
                let mut entry = Entry::new(self.key, b"", None);
                entry.grow_value(len);
                entry.mark_raw();
                let out = change(entry.value_mut());
                self.bucket = Some(
                    self.shard
                        .insert(self.at.table, self.at.hash, entry, self.now),
                );
                Ok(out)
            }
        }
    }

    fn stored(&self) -> Option<&Entry> {
        self.bucket
            .map(|bucket| self.shard.entry(self.at.table, bucket))
    }
}

fn check_len(len: usize) -> Result<(), StoreError> {
    if len > MAX_STRING_LEN {
        Err(StoreError::TooLarge)
    } else {
        Ok(())
    }
}
