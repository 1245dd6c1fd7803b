//! A length field is only a claim: neither decoder allocates memory sized by a
//! length, a count or a frame size before the bytes behind it have arrived.
//!
//! This test binary installs a global allocator that tracks the peak of live
//! heap bytes, and checks it after feeding each decoder a few bytes that
//! announce something huge. It holds a single `#[test]` so that no other test
//! allocates concurrently.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use keycafe_core::{Frame, Limits, Protocol};

struct PeakTracking;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// wrapper only counts bytes.
unsafe impl GlobalAlloc for PeakTracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size >= layout.size() {
            grew(new_size - layout.size());
        } else {
            LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: PeakTracking = PeakTracking;

fn native(prefix: u32, body: &[u8]) -> Vec<u8> {
    let mut frame = prefix.to_be_bytes().to_vec();
    frame.extend_from_slice(body);
    frame
}

#[test]
fn huge_claims_allocate_nothing_large() {
    let huge_native_array = {
        // A complete 14-byte frame: an array claiming 1 Mi elements, then one.
        let mut body = vec![b'*'];
        body.extend_from_slice(&(1u32 << 20).to_be_bytes());
        body.extend_from_slice(b"$\0\0\0\0");
        native(body.len() as u32, &body)
    };
    let nested_native_arrays = {
        // Arrays inside arrays, each claiming as many elements as bytes
        // remain after its header (a null is one byte), so every claim passes
        // the bytes-left check, but the frame is only 8 KiB.
        let len = 8 * 1024u32;
        let mut body = Vec::new();
        for level in 1..=60u32 {
            body.push(b'*');
            body.extend_from_slice(&(len - 5 * level).to_be_bytes());
        }
        body.resize(len as usize, b'_');
        native(body.len() as u32, &body)
    };
    #[rustfmt::skip]
    let cases: Vec<(&str, Protocol, Vec<u8>)> = vec![
        ("RESP request, 512 MiB bulk", Protocol::Resp2, b"*1\r\n$536870912\r\n".to_vec()),
        ("RESP request, 512 MiB bulk, data arriving", Protocol::Resp2,
            [&b"*1\r\n$536870912\r\n"[..], &[b'x'; 1000]].concat()),
        ("RESP request, 1 GiB bulk", Protocol::Resp2, b"*1\r\n$1073741824\r\n".to_vec()),
        ("RESP request, 1 Mi args", Protocol::Resp2, b"*1048576\r\n$1\r\na\r\n".to_vec()),
        ("RESP reply, 512 MiB bulk", Protocol::Resp2, b"$536870912\r\nabc".to_vec()),
        ("RESP reply, 1 Mi elements", Protocol::Resp2, b"*1048576\r\n:1\r\n".to_vec()),
        ("native, 1 GiB frame", Protocol::Native, native(1 << 30, b"*\0\x10\0\0")),
        ("native, 1 Mi elements", Protocol::Native, huge_native_array),
        ("native, nested claims", Protocol::Native, nested_native_arrays),
    ];
    for (name, protocol, input) in cases {
        // Decoded values may be bigger than their bytes (a one-byte null is a
        // whole `Frame`), so allow for that, and for a fixed overhead.
        let allowed = 1024 * 1024 + input.len() * 2 * size_of::<Frame>();
        for limits in [Limits::default(), TINY] {
            let before = LIVE.load(Ordering::Relaxed);
            PEAK.store(before, Ordering::Relaxed);
            let _ = parse_once(protocol, &input, limits);
            let _ = decode_once(protocol, &input, limits);
            let peak = PEAK.load(Ordering::Relaxed).saturating_sub(before);
            assert!(
                peak < allowed,
                "{name}: {peak} bytes live at once, {allowed} allowed"
            );
        }
    }
}
