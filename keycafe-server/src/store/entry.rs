//! One stored key: key, value and deadline in a single heap allocation,
//! addressed by a thin pointer.
//!
//! Memory per key is what a cache is judged by, and with small keys and values
//! the fixed costs dominate: a `(Vec<u8>, Vec<u8>, Option<u64>)` spends 64
//! bytes on bookkeeping and two allocations before storing a single byte, and
//! every one of those bytes is paid again for each empty bucket of the hash
//! table that holds it. An [`Entry`] is one 8-byte pointer to one allocation:
//!
//! ```text
//! [key_len: u32 LE | VOLATILE bit][value_len: u32 LE][key][value][deadline: u64 LE]?
//! ```
//!
//! The deadline is present only for keys that have one (the high bit of the
//! key length says so), so persistent keys do not pay for it. It sits at the
//! end rather than after the header so that giving a large value a TTL is a
//! `realloc` (often in place) instead of a move of the whole value.
//!
//! This is the only `unsafe` code of the store. It is small on purpose: the
//! raw allocation is turned into a byte slice in one place ([`Entry::bytes`])
//! and everything else is ordinary slice code.

use std::alloc::{self, Layout};
use std::ptr::NonNull;

/// Bytes before the key: the two lengths.
const HEADER: usize = 8;
/// Bytes of a deadline, when there is one.
const DEADLINE: usize = 8;
/// Set in the stored key length when a deadline follows the value.
const VOLATILE: u32 = 1 << 31;
/// The longest key or value an entry can hold (the store enforces a lower
/// limit, Redis's 512 MiB, before it gets here).
pub const MAX_LEN: usize = (VOLATILE - 1) as usize;

/// A key, its value and its optional deadline (ms since the Unix epoch).
pub struct Entry {
    ptr: NonNull<u8>,
}

// SAFETY: an `Entry` owns its allocation exclusively, like a `Box<[u8]>`, and
// has no interior mutability, so it may move to and be shared across threads.
unsafe impl Send for Entry {}
unsafe impl Sync for Entry {}

impl Entry {
    /// Copies `key` and `value` into a new entry.
    ///
    /// # Panics
    /// If `key` or `value` is longer than [`MAX_LEN`]; the store checks that
    /// first, so this is a bug.
    pub fn new(key: &[u8], value: &[u8], deadline: Option<u64>) -> Entry {
        assert!(
            key.len() <= MAX_LEN && value.len() <= MAX_LEN,
            "entry length checked by the store"
        );
        let size = size_for(key.len(), value.len(), deadline.is_some());
        let layout = layout(size);
        // SAFETY: the layout's size is at least HEADER, never zero.
        let raw = unsafe { alloc::alloc(layout) };
        let ptr = NonNull::new(raw).unwrap_or_else(|| alloc::handle_alloc_error(layout));
        let mut entry = Entry { ptr };
        entry.write_header(key.len(), value.len(), deadline.is_some());
        // SAFETY (all three): the allocation is `size` bytes, which covers
        // header, key, value and deadline.
        unsafe {
            entry.write_raw(HEADER, key);
            entry.write_raw(HEADER + key.len(), value);
            if let Some(deadline) = deadline {
                entry.write_raw(size - DEADLINE, &deadline.to_le_bytes());
            }
        }
        entry
    }

    pub fn key(&self) -> &[u8] {
        let (key_len, _, _) = self.header();
        &self.bytes()[HEADER..HEADER + key_len]
    }

    pub fn value(&self) -> &[u8] {
        let (key_len, value_len, _) = self.header();
        &self.bytes()[HEADER + key_len..HEADER + key_len + value_len]
    }

    /// When the key expires, if it has a deadline.
    pub fn deadline(&self) -> Option<u64> {
        let (key_len, value_len, volatile) = self.header();
        volatile.then(|| {
            let at = HEADER + key_len + value_len;
            let mut raw = [0u8; DEADLINE];
            raw.copy_from_slice(&self.bytes()[at..at + DEADLINE]);
            u64::from_le_bytes(raw)
        })
    }

    /// The size of the allocation, for memory accounting.
    pub fn size(&self) -> usize {
        let (key_len, value_len, volatile) = self.header();
        size_for(key_len, value_len, volatile)
    }

    /// Replaces the value and the deadline, keeping the key.
    ///
    /// # Panics
    /// If `value` is longer than [`MAX_LEN`] (checked by the store).
    pub fn set_value(&mut self, value: &[u8], deadline: Option<u64>) {
        assert!(value.len() <= MAX_LEN, "value length checked by the store");
        let (key_len, _, _) = self.header();
        let size = size_for(key_len, value.len(), deadline.is_some());
        self.resize(size);
        self.write_header(key_len, value.len(), deadline.is_some());
        // SAFETY: value and deadline end within the new `size`.
        unsafe {
            self.write_raw(HEADER + key_len, value);
            if let Some(deadline) = deadline {
                self.write_raw(size - DEADLINE, &deadline.to_le_bytes());
            }
        }
    }

    /// Sets or removes the deadline, keeping key and value.
    pub fn set_deadline(&mut self, deadline: Option<u64>) {
        let (key_len, value_len, volatile) = self.header();
        let size = size_for(key_len, value_len, deadline.is_some());
        if volatile != deadline.is_some() {
            self.resize(size);
            self.write_header(key_len, value_len, deadline.is_some());
        }
        if let Some(deadline) = deadline {
            // SAFETY: a volatile entry of `size` bytes ends with its deadline.
            unsafe { self.write_raw(size - DEADLINE, &deadline.to_le_bytes()) };
        }
    }

    /// Appends `data` to the value, keeping the deadline.
    ///
    /// # Panics
    /// If the value would grow past [`MAX_LEN`] (checked by the store).
    pub fn append(&mut self, data: &[u8]) {
        let (key_len, value_len, volatile) = self.header();
        let new_len = value_len + data.len();
        assert!(new_len <= MAX_LEN, "value length checked by the store");
        let deadline = self.deadline();
        let size = size_for(key_len, new_len, volatile);
        self.resize(size);
        self.write_header(key_len, new_len, volatile);
        // SAFETY: the appended bytes and the deadline end within `size`.
        unsafe {
            self.write_raw(HEADER + key_len + value_len, data);
            if let Some(deadline) = deadline {
                self.write_raw(size - DEADLINE, &deadline.to_le_bytes());
            }
        }
    }

    /// Key length, value length and whether a deadline follows.
    fn header(&self) -> (usize, usize, bool) {
        // SAFETY: every allocation starts with a HEADER-byte header, written
        // before the entry is handed out; `[u8; 8]` has alignment 1.
        let raw: [u8; HEADER] = unsafe { self.ptr.cast::<[u8; HEADER]>().read() };
        let key_word = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
        let value_len = u32::from_le_bytes([raw[4], raw[5], raw[6], raw[7]]);
        (
            (key_word & !VOLATILE) as usize,
            value_len as usize,
            key_word & VOLATILE != 0,
        )
    }

    fn write_header(&mut self, key_len: usize, value_len: usize, volatile: bool) {
        // Lengths were checked against MAX_LEN, so they fit in 31 bits.
        let key_word = key_len as u32 | if volatile { VOLATILE } else { 0 };
        let mut raw = [0u8; HEADER];
        raw[..4].copy_from_slice(&key_word.to_le_bytes());
        raw[4..].copy_from_slice(&(value_len as u32).to_le_bytes());
        // SAFETY: the allocation is at least HEADER bytes long.
        unsafe { self.ptr.cast::<[u8; HEADER]>().write(raw) };
    }

    /// Copies `data` into the allocation at `offset`.
    ///
    /// # Safety
    /// `offset + data.len()` must not exceed the allocation's size. The
    /// header may not describe the allocation yet (this is how the bytes it
    /// will describe get initialised), which is why this does not go through
    /// a slice.
    unsafe fn write_raw(&mut self, offset: usize, data: &[u8]) {
        // SAFETY: in bounds per the contract; `data` cannot overlap an
        // allocation we own uniquely.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.as_ptr().add(offset), data.len())
        };
    }

    /// The whole allocation, as the header describes it.
    fn bytes(&self) -> &[u8] {
        // SAFETY: the allocation is exactly `self.size()` bytes, initialised
        // (every byte is written before the header describes it), and owned
        // by `self` for the lifetime of the borrow.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.size()) }
    }

    /// Changes the allocation's size, keeping its prefix. The caller rewrites
    /// the header and fills any new bytes right after, before anything reads
    /// the entry.
    fn resize(&mut self, new_size: usize) {
        let old_size = self.size();
        if new_size == old_size {
            return;
        }
        let new_layout = layout(new_size);
        // SAFETY: `ptr` was allocated with `layout(old_size)` by this global
        // allocator, and `new_size` is non-zero and a valid layout size.
        let raw = unsafe { alloc::realloc(self.ptr.as_ptr(), layout(old_size), new_size) };
        self.ptr = NonNull::new(raw).unwrap_or_else(|| alloc::handle_alloc_error(new_layout));
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        // SAFETY: `ptr` was allocated with exactly this layout and is not
        // used after this.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), layout(self.size())) };
    }
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("key", &String::from_utf8_lossy(self.key()))
            .field("value_len", &self.value().len())
            .field("deadline", &self.deadline())
            .finish()
    }
}

fn size_for(key_len: usize, value_len: usize, volatile: bool) -> usize {
    HEADER + key_len + value_len + if volatile { DEADLINE } else { 0 }
}

fn layout(size: usize) -> Layout {
    // Two lengths under 2^31 plus 16 bytes always fit in isize on the 64-bit
    // targets Keycafe supports.
    Layout::from_size_align(size, 1).expect("entry size fits in a Layout")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_key_value_and_deadline() {
        let entry = Entry::new(b"key", b"value", None);
        assert_eq!(
            (entry.key(), entry.value(), entry.deadline()),
            (&b"key"[..], &b"value"[..], None)
        );
        assert_eq!(entry.size(), HEADER + 8);
        let entry = Entry::new(b"", b"", Some(42));
        assert_eq!(
            (entry.key(), entry.value(), entry.deadline()),
            (&b""[..], &b""[..], Some(42))
        );
    }

    #[test]
    fn binary_keys_and_values() {
        let key = [0u8, 255, 13, 10, 0];
        let value: Vec<u8> = (0..=255).collect();
        let entry = Entry::new(&key, &value, Some(u64::MAX));
        assert_eq!(entry.key(), key);
        assert_eq!(entry.value(), &value[..]);
        assert_eq!(entry.deadline(), Some(u64::MAX));
    }

    #[test]
    fn deadline_can_come_and_go() {
        let mut entry = Entry::new(b"k", b"v", None);
        entry.set_deadline(Some(7));
        assert_eq!((entry.value(), entry.deadline()), (&b"v"[..], Some(7)));
        entry.set_deadline(Some(9));
        assert_eq!(entry.deadline(), Some(9));
        entry.set_deadline(None);
        assert_eq!(
            (entry.key(), entry.value(), entry.deadline()),
            (&b"k"[..], &b"v"[..], None)
        );
        assert_eq!(entry.size(), HEADER + 2);
    }

    #[test]
    fn values_grow_and_shrink() {
        let mut entry = Entry::new(b"key", b"short", Some(5));
        entry.set_value(&[b'x'; 1000], Some(6));
        assert_eq!(
            (entry.value(), entry.deadline()),
            (&[b'x'; 1000][..], Some(6))
        );
        entry.set_value(b"", None);
        assert_eq!(
            (entry.key(), entry.value(), entry.deadline()),
            (&b"key"[..], &b""[..], None)
        );
        entry.set_deadline(Some(1));
        entry.append(b"ab");
        entry.append(b"cd");
        assert_eq!(
            (entry.key(), entry.value(), entry.deadline()),
            (&b"key"[..], &b"abcd"[..], Some(1))
        );
    }
}
