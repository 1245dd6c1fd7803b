//! One stored key: key, value, deadline and access history in a single heap
//! allocation, addressed by a thin pointer.
//!
//! Memory per key is what a cache is judged by, and with small keys and values
//! the fixed costs dominate: a `(Vec<u8>, Vec<u8>, Option<u64>)` spends 64
//! bytes on bookkeeping and two allocations before storing a single byte, and
//! every one of those bytes is paid again for each empty bucket of the hash
//! table that holds it. An [`Entry`] is one 8-byte pointer to one allocation:
//!
//! ```text
//! [key_len: u8][access: u24 LE][value_len: u32 LE | VOLATILE | RAW][key][value][deadline: u64 LE]?
//! ```
//!
//! The deadline is present only for keys that have one (the high bit of the
//! value length says so), so persistent keys do not pay for it. It sits at the
//! end rather than after the header so that giving a large value a TTL is a
//! `realloc` (often in place) instead of a move of the whole value.
//!
//! The next bit, RAW, remembers that the value was changed in place
//! (APPEND, SETRANGE, SETBIT). Keycafe holds every value the same way, but Redis holds such a
//! value as a `raw` string whatever it looks like, and `OBJECT ENCODING`
//! reports that; a value length never needs the bit (the store's limit is
//! 512 MiB, 2^29 bytes).
//!
//! Keys are short in practice, so the key length gets one byte and the
//! three bytes this frees hold the key's *access history*: what eviction
//! needs to know about recent use (an LRU clock, or an LFU counter and the
//! minute it was last decayed; see `access.rs`). Redis spends the same 24
//! bits of its object header on it. A key of 255 bytes or more stores 255
//! there and its real length in a `u32` right after the header; such keys
//! pay four bytes more, under 2% of their size. A key's length never
//! changes, so an entry never switches between the two forms.
//!
//! This is the only `unsafe` code of the store. It is small on purpose: the
//! raw allocation is turned into a byte slice in one place ([`Entry::bytes`]),
//! and into a mutable one in one other ([`Entry::value_mut`], so that SETBIT
//! on a large bitmap changes one byte instead of copying the value), and
//! everything else is ordinary slice code.

use std::alloc::{self, Layout};
use std::ptr::NonNull;

/// Bytes before the key: key length, access history, value length.
const HEADER: usize = 8;
/// The key-length byte of a key too long for it; its real length follows
/// the header.
const LONG_KEY: u8 = u8::MAX;
/// Bytes of a long key's length.
const LONG_KEY_LEN: usize = 4;
/// Bytes of a deadline, when there is one.
const DEADLINE: usize = 8;
/// Set in the stored value length when a deadline follows the value.
const VOLATILE: u32 = 1 << 31;
/// Set in the stored value length when the value was changed in place.
const RAW: u32 = 1 << 30;
/// The longest key or value an entry can hold (the store enforces a lower
/// limit, Redis's 512 MiB, before it gets here).
pub const MAX_LEN: usize = (RAW - 1) as usize;

/// A key, its value, its optional deadline (ms since the Unix epoch) and its
/// access history.
pub struct Entry {
    ptr: NonNull<u8>,
}

// SAFETY: an `Entry` owns its allocation exclusively, like a `Box<[u8]>`, and
// has no interior mutability, so it may move to and be shared across threads.
unsafe impl Send for Entry {}
unsafe impl Sync for Entry {}

/// Where the parts of an entry are, from its lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shape {
    key_len: usize,
    value_len: usize,
    volatile: bool,
    raw: bool,
}

impl Shape {
    fn key_at(&self) -> usize {
        match self.key_len < usize::from(LONG_KEY) {
            true => HEADER,
            false => HEADER + LONG_KEY_LEN,
        }
    }

    fn value_at(&self) -> usize {
        self.key_at() + self.key_len
    }

    /// The whole allocation.
    fn size(&self) -> usize {
        self.value_at() + self.value_len + if self.volatile { DEADLINE } else { 0 }
    }
}

impl Entry {
    /// Copies `key` and `value` into a new entry, with no access history
    /// (0) yet.
    ///
    /// # Panics
    /// If `key` or `value` is longer than [`MAX_LEN`]; the store checks that
    /// first, so this is a bug.
    pub fn new(key: &[u8], value: &[u8], deadline: Option<u64>) -> Entry {
        assert!(
            key.len() <= MAX_LEN && value.len() <= MAX_LEN,
            "entry length checked by the store"
        );
        let shape = Shape {
            key_len: key.len(),
            value_len: value.len(),
            volatile: deadline.is_some(),
            raw: false,
        };
        let size = shape.size();
        let layout = layout(size);
        // SAFETY: the layout's size is at least HEADER, never zero.
        let raw = unsafe { alloc::alloc(layout) };
        let ptr = NonNull::new(raw).unwrap_or_else(|| alloc::handle_alloc_error(layout));
        let mut entry = Entry { ptr };
        let key_byte = u8::try_from(key.len()).unwrap_or(LONG_KEY);
        let mut header = [0u8; HEADER];
        header[0] = key_byte;
        header[4..].copy_from_slice(&value_word(shape).to_le_bytes());
        // SAFETY (all): the allocation is `size` bytes, which covers header,
        // long key length (when `key_at` says there is one), key, value and
        // deadline.
        unsafe {
            entry.write_raw(0, &header);
            if shape.key_at() > HEADER {
                entry.write_raw(HEADER, &(key.len() as u32).to_le_bytes());
            }
            entry.write_raw(shape.key_at(), key);
            entry.write_raw(shape.value_at(), value);
            if let Some(deadline) = deadline {
                entry.write_raw(size - DEADLINE, &deadline.to_le_bytes());
            }
        }
        entry
    }

    pub fn key(&self) -> &[u8] {
        let shape = self.shape();
        &self.bytes()[shape.key_at()..shape.value_at()]
    }

    pub fn value(&self) -> &[u8] {
        let shape = self.shape();
        &self.bytes()[shape.value_at()..shape.value_at() + shape.value_len]
    }

    /// When the key expires, if it has a deadline.
    pub fn deadline(&self) -> Option<u64> {
        let shape = self.shape();
        shape.volatile.then(|| {
            let at = shape.size() - DEADLINE;
            let mut raw = [0u8; DEADLINE];
            raw.copy_from_slice(&self.bytes()[at..at + DEADLINE]);
            u64::from_le_bytes(raw)
        })
    }

    /// The size of the allocation, for memory accounting.
    pub fn size(&self) -> usize {
        self.shape().size()
    }

    /// The access history: 24 bits whose meaning `access.rs` decides.
    pub fn access(&self) -> u32 {
        let raw = self.header_bytes();
        u32::from_le_bytes([raw[1], raw[2], raw[3], 0])
    }

    /// Replaces the access history (only its low 24 bits are kept).
    pub fn set_access(&mut self, access: u32) {
        let bytes = access.to_le_bytes();
        // SAFETY: bytes 1..4 lie within the header every allocation starts with.
        unsafe { self.write_raw(1, &bytes[..3]) };
    }

    /// Replaces the value and the deadline, keeping the key and the access
    /// history. The new value is not [raw](Entry::is_raw).
    ///
    /// # Panics
    /// If `value` is longer than [`MAX_LEN`] (checked by the store).
    pub fn set_value(&mut self, value: &[u8], deadline: Option<u64>) {
        assert!(value.len() <= MAX_LEN, "value length checked by the store");
        let shape = Shape {
            value_len: value.len(),
            volatile: deadline.is_some(),
            raw: false,
            ..self.shape()
        };
        self.reshape(shape);
        // SAFETY: value and deadline end within the new size.
        unsafe {
            self.write_raw(shape.value_at(), value);
            if let Some(deadline) = deadline {
                self.write_raw(shape.size() - DEADLINE, &deadline.to_le_bytes());
            }
        }
    }

    /// Sets or removes the deadline, keeping key, value and access history.
    pub fn set_deadline(&mut self, deadline: Option<u64>) {
        let shape = Shape {
            volatile: deadline.is_some(),
            ..self.shape()
        };
        self.reshape(shape);
        if let Some(deadline) = deadline {
            // SAFETY: a volatile entry ends with its deadline.
            unsafe { self.write_raw(shape.size() - DEADLINE, &deadline.to_le_bytes()) };
        }
    }

    /// True if the value was last changed in place ([`Entry::append`],
    /// [`Entry::mark_raw`]) rather than replaced: Redis would hold it as a
    /// `raw` string.
    pub fn is_raw(&self) -> bool {
        self.shape().raw
    }

    /// Records that the value was changed in place (see [`Entry::is_raw`]).
    pub fn mark_raw(&mut self) {
        let shape = Shape {
            raw: true,
            ..self.shape()
        };
        // SAFETY: bytes 4..8 lie within the header.
        unsafe { self.write_raw(4, &value_word(shape).to_le_bytes()) };
    }

    /// Appends `data` to the value, keeping the deadline; the value is
    /// [raw](Entry::is_raw) from then on.
    ///
    /// # Panics
    /// If the value would grow past [`MAX_LEN`] (checked by the store).
    pub fn append(&mut self, data: &[u8]) {
        let old = self.shape();
        let new_len = old.value_len + data.len();
        assert!(new_len <= MAX_LEN, "value length checked by the store");
        let deadline = self.deadline();
        let shape = Shape {
            value_len: new_len,
            raw: true,
            ..old
        };
        self.reshape(shape);
        // SAFETY: the appended bytes and the deadline end within the new size.
        unsafe {
            self.write_raw(old.value_at() + old.value_len, data);
            if let Some(deadline) = deadline {
                self.write_raw(shape.size() - DEADLINE, &deadline.to_le_bytes());
            }
        }
    }

    /// Lengthens the value to `len` bytes with zero bytes at its end,
    /// keeping the deadline; does nothing if it is already that long
    /// (SETRANGE and SETBIT past the end, which Redis pads with zeros).
    ///
    /// # Panics
    /// If `len` is longer than [`MAX_LEN`] (checked by the store).
    pub fn grow_value(&mut self, len: usize) {
        let old = self.shape();
        if len <= old.value_len {
            return;
        }
        assert!(len <= MAX_LEN, "value length checked by the store");
        let deadline = self.deadline();
        let shape = Shape {
            value_len: len,
            ..old
        };
        self.reshape(shape);
        // SAFETY: the new value bytes and the deadline end within the new
        // size; the zeros are written before anything reads the value.
        unsafe {
            std::ptr::write_bytes(
                self.ptr.as_ptr().add(old.value_at() + old.value_len),
                0,
                len - old.value_len,
            );
            if let Some(deadline) = deadline {
                self.write_raw(shape.size() - DEADLINE, &deadline.to_le_bytes());
            }
        }
    }

    /// The value, to change in place (its length stays as it is).
    pub fn value_mut(&mut self) -> &mut [u8] {
        let shape = self.shape();
        let (at, len) = (shape.value_at(), shape.value_len);
        // SAFETY: the value lies within the allocation, which is initialised
        // and owned by `self`; the `&mut self` borrow makes this the only
        // reference to it while the slice lives.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(at), len) }
    }

    fn header_bytes(&self) -> [u8; HEADER] {
        // SAFETY: every allocation starts with a HEADER-byte header, written
        // before the entry is handed out; `[u8; 8]` has alignment 1.
        unsafe { self.ptr.cast::<[u8; HEADER]>().read() }
    }

    /// Key length, value length and whether a deadline follows.
    fn shape(&self) -> Shape {
        let raw = self.header_bytes();
        let key_len = match raw[0] {
            LONG_KEY => {
                // SAFETY: an entry whose key-length byte is LONG_KEY was
                // allocated with the long length right after the header.
                let long: [u8; LONG_KEY_LEN] =
                    unsafe { self.ptr.add(HEADER).cast::<[u8; LONG_KEY_LEN]>().read() };
                u32::from_le_bytes(long) as usize
            }
            short => usize::from(short),
        };
        let value_word = u32::from_le_bytes([raw[4], raw[5], raw[6], raw[7]]);
        Shape {
            key_len,
            value_len: (value_word & !(VOLATILE | RAW)) as usize,
            volatile: value_word & VOLATILE != 0,
            raw: value_word & RAW != 0,
        }
    }

    /// Resizes the allocation for `shape` (same key, so the same layout up to
    /// the value) and records the new value length and deadline flag. The
    /// caller fills the new value and deadline bytes right after, before
    /// anything reads the entry.
    fn reshape(&mut self, shape: Shape) {
        let old_size = self.size();
        let new_size = shape.size();
        if new_size != old_size {
            let new_layout = layout(new_size);
            // SAFETY: `ptr` was allocated with `layout(old_size)` by this
            // global allocator, and `new_size` is non-zero and a valid layout
            // size.
            let raw = unsafe { alloc::realloc(self.ptr.as_ptr(), layout(old_size), new_size) };
            self.ptr = NonNull::new(raw).unwrap_or_else(|| alloc::handle_alloc_error(new_layout));
        }
        // SAFETY: bytes 4..8 lie within the header.
        unsafe { self.write_raw(4, &value_word(shape).to_le_bytes()) };
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
            .field("access", &self.access())
            .finish()
    }
}

/// The header's last word: value length and the two flags.
fn value_word(shape: Shape) -> u32 {
    // Checked against MAX_LEN, so the length fits in 30 bits.
    let mut word = shape.value_len as u32;
    if shape.volatile {
        word |= VOLATILE;
    }
    if shape.raw {
        word |= RAW;
    }
    word
}

fn layout(size: usize) -> Layout {
    // Two lengths under 2^31 plus 20 bytes always fit in isize on the 64-bit
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
    fn access_history_survives_every_change() {
        let mut entry = Entry::new(b"k", b"v", None);
        assert_eq!(entry.access(), 0);
        entry.set_access(0x00AB_CDEF);
        entry.set_value(b"longer value", Some(3));
        entry.set_deadline(None);
        entry.append(b"!");
        assert_eq!(entry.access(), 0x00AB_CDEF);
        assert_eq!(
            (entry.key(), entry.value()),
            (&b"k"[..], &b"longer value!"[..])
        );
        // Only 24 bits are kept.
        entry.set_access(u32::MAX);
        assert_eq!(entry.access(), (1 << 24) - 1);
        assert_eq!(entry.value(), b"longer value!");
    }

    #[test]
    fn long_keys_carry_their_length_after_the_header() {
        for len in [254, 255, 256, 70_000] {
            let key: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut entry = Entry::new(&key, b"value", Some(9));
            let extra = if len >= 255 { LONG_KEY_LEN } else { 0 };
            assert_eq!(entry.size(), HEADER + extra + len + 5 + DEADLINE);
            entry.set_access(77);
            entry.append(b"s");
            entry.set_deadline(None);
            assert_eq!(entry.key(), &key[..], "key of {len} bytes");
            assert_eq!(entry.value(), b"values");
            assert_eq!((entry.deadline(), entry.access()), (None, 77));
        }
    }

    #[test]
    fn appending_makes_a_value_raw_until_it_is_replaced() {
        let mut entry = Entry::new(b"k", b"1", None);
        assert!(!entry.is_raw());
        entry.append(b"2");
        assert!(entry.is_raw());
        entry.set_deadline(Some(9));
        entry.set_access(5);
        assert!(entry.is_raw());
        assert_eq!((entry.value(), entry.deadline()), (&b"12"[..], Some(9)));
        entry.set_value(b"12", Some(9));
        assert!(!entry.is_raw());
        entry.mark_raw();
        assert!(entry.is_raw());
        assert_eq!(
            (entry.key(), entry.value(), entry.deadline(), entry.access()),
            (&b"k"[..], &b"12"[..], Some(9), 5)
        );
    }

    #[test]
    fn values_grow_with_zeros_and_change_in_place() {
        let mut entry = Entry::new(b"key", b"ab", Some(5));
        entry.set_access(9);
        entry.grow_value(1);
        assert_eq!(entry.value(), b"ab");
        entry.grow_value(5);
        assert_eq!(entry.value(), b"ab\0\0\0");
        entry.value_mut()[4] = b'z';
        assert_eq!(
            (entry.key(), entry.value(), entry.deadline(), entry.access()),
            (&b"key"[..], &b"ab\0\0z"[..], Some(5), 9)
        );
        assert_eq!(entry.size(), HEADER + 3 + 5 + DEADLINE);
        let mut entry = Entry::new(b"k", b"", None);
        entry.grow_value(3);
        entry.value_mut().copy_from_slice(b"xyz");
        assert_eq!((entry.value(), entry.deadline()), (&b"xyz"[..], None));
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
