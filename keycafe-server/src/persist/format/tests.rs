//! The format's round trips, every kind of damage, and the byte layout
//! `docs/persistence.md` shows.

use std::io::Cursor;

use bytes::BytesMut;
use proptest::prelude::*;

use super::*;

const FIELDS: HeaderFields = HeaderFields {
    created_ms: 1_767_225_600_000,
    sequence: 42,
};

fn request(args: &[&str]) -> Vec<u8> {
    let mut out = BytesMut::new();
    keycafe_core::native::encode_request(args, &mut out);
    out.to_vec()
}

fn payloads() -> Vec<Vec<u8>> {
    vec![
        request(&["SET", "k", "v"]),
        [request(&["SET", "a", "1"]), request(&["SET", "b", "2"])].concat(),
        request(&["SET", "session", "x", "PXAT", "1767229200000"]),
    ]
}

/// A whole file of `kind` holding `payloads`, and where each block starts.
fn file(kind: Kind, payloads: &[Vec<u8>]) -> (Vec<u8>, Vec<u64>) {
    let mut out = Vec::new();
    encode_header(kind, FIELDS, &mut out);
    let mut offsets = Vec::new();
    for payload in payloads {
        offsets.push(out.len() as u64);
        encode_block(payload, &mut out).unwrap();
    }
    if kind == Kind::Snapshot {
        encode_end(payloads.len() as u64, &mut out);
    }
    (out, offsets)
}

/// Reads `bytes` to the end: the blocks, then the outcome.
fn read_all(bytes: &[u8]) -> (Vec<Block>, Result<u64, FormatError>) {
    let mut reader = match Reader::new(Cursor::new(bytes)) {
        Ok(reader) => reader,
        Err(err) => return (Vec::new(), Err(err)),
    };
    let mut blocks = Vec::new();
    loop {
        match reader.next_block() {
            Ok(Some(block)) => blocks.push(block),
            Ok(None) => return (blocks, Ok(reader.valid_len())),
            Err(err) => {
                assert_eq!(
                    reader.valid_len(),
                    blocks.last().map_or(HEADER_LEN as u64, Block::end)
                );
                return (blocks, Err(err));
            }
        }
    }
}

fn corrupt_at(bytes: &[u8]) -> (u64, Corruption) {
    match read_all(bytes).1 {
        Err(FormatError::Corrupt { offset, reason }) => (offset, reason),
        other => panic!("expected corruption, got {other:?}"),
    }
}

fn truncated_at(bytes: &[u8]) -> u64 {
    match read_all(bytes).1 {
        Err(FormatError::Truncated { offset }) => offset,
        other => panic!("expected a truncation, got {other:?}"),
    }
}

#[test]
fn round_trip_both_kinds() {
    for kind in [Kind::Snapshot, Kind::AppendOnly] {
        let (bytes, offsets) = file(kind, &payloads());
        let mut reader = Reader::of_kind(Cursor::new(&bytes), kind).unwrap();
        assert_eq!(
            *reader.header(),
            Header {
                kind,
                version: VERSION,
                fields: FIELDS
            }
        );
        let blocks: Vec<Block> = reader.by_ref().map(Result::unwrap).collect();
        let expected: Vec<Block> = offsets
            .iter()
            .zip(payloads())
            .map(|(&offset, payload)| Block { offset, payload })
            .collect();
        assert_eq!(blocks, expected);
        assert_eq!(reader.valid_len(), bytes.len() as u64);
        assert_eq!(reader.blocks(), 3);
        assert_eq!(reader.is_complete(), kind == Kind::Snapshot);
        assert!(matches!(reader.next_block(), Ok(None)), "stays at the end");
    }
}

#[test]
fn empty_files_of_both_kinds() {
    let (aof, _) = file(Kind::AppendOnly, &[]);
    assert_eq!(read_all(&aof).1.unwrap(), HEADER_LEN as u64);
    let (snapshot, _) = file(Kind::Snapshot, &[]);
    assert_eq!(
        read_all(&snapshot).1.unwrap(),
        (HEADER_LEN + END_LEN) as u64
    );
}

#[test]
fn payloads_larger_than_the_buffer_round_trip() {
    let big: Vec<u8> = (0..3 * BUFFER + 17).map(|i| (i % 251) as u8).collect();
    let (bytes, _) = file(Kind::AppendOnly, &[big.clone(), b"x".to_vec(), big.clone()]);
    let (blocks, end) = read_all(&bytes);
    assert_eq!(end.unwrap(), bytes.len() as u64);
    assert_eq!(blocks.len(), 3);
    assert_eq!(blocks[2].payload, big);
}

#[test]
fn a_bytes_mut_gets_the_same_bytes_as_a_vec() {
    let mut vec = Vec::new();
    let mut buf = BytesMut::new();
    encode_header(Kind::Snapshot, FIELDS, &mut vec);
    encode_header(Kind::Snapshot, FIELDS, &mut buf);
    encode_block(b"payload", &mut vec).unwrap();
    encode_block(b"payload", &mut buf).unwrap();
    encode_end(1, &mut vec);
    encode_end(1, &mut buf);
    assert_eq!(vec, &buf[..]);
}

#[test]
fn encode_block_refuses_what_no_reader_accepts() {
    let mut out = Vec::new();
    assert_eq!(encode_block(&[], &mut out), Err(BadBlockLen(0)));
    assert!(out.is_empty());
}

#[test]
fn a_cut_at_every_offset_is_truncated_or_a_whole_prefix() {
    for kind in [Kind::Snapshot, Kind::AppendOnly] {
        let (bytes, offsets) = file(kind, &payloads());
        let boundaries: Vec<u64> = offsets
            .iter()
            .copied()
            .chain([offsets.last().unwrap() + 8 + payloads()[2].len() as u64])
            .collect();
        for cut in 0..bytes.len() {
            let (blocks, end) = read_all(&bytes[..cut]);
            let whole = blocks.len();
            // Every block handed out is one that was written.
            for (block, payload) in blocks.iter().zip(payloads()) {
                assert_eq!(block.payload, payload, "{kind} cut at {cut}");
            }
            let cut = cut as u64;
            match (kind, end) {
                (_, Err(FormatError::Truncated { offset })) if cut < HEADER_LEN as u64 => {
                    assert_eq!(offset, 0);
                }
                (Kind::AppendOnly, Ok(len)) => {
                    assert!(
                        boundaries.contains(&cut),
                        "Ok only at a block boundary, not {cut}"
                    );
                    assert_eq!(len, cut);
                }
                (Kind::Snapshot, Err(FormatError::Incomplete { offset, blocks })) => {
                    assert!(boundaries.contains(&cut), "incomplete at {cut}");
                    assert_eq!((offset, blocks), (cut, whole as u64));
                }
                (_, Err(FormatError::Truncated { offset })) => {
                    assert!(!boundaries.contains(&cut) || kind == Kind::Snapshot);
                    assert_eq!(offset, boundaries[whole], "{kind} cut at {cut}");
                }
                (_, other) => panic!("{kind} cut at {cut}: {other:?}"),
            }
        }
    }
}

#[test]
fn a_flipped_byte_in_the_header_is_corruption_where_it_is() {
    let (bytes, _) = file(Kind::AppendOnly, &payloads());
    for at in 0..HEADER_LEN {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x20;
        let (offset, reason) = corrupt_at(&damaged);
        let expected = match at {
            0..7 => (0, Corruption::BadMagic),
            7 => (7, Corruption::UnknownKind(b'A' ^ 0x20)),
            8..10 => (
                8,
                Corruption::UnknownVersion(VERSION ^ (0x20 << (8 * (9 - at)))),
            ),
            10..12 => (10, Corruption::UnknownFlags(0x20 << (8 * (11 - at)))),
            _ => (28, Corruption::HeaderChecksum),
        };
        assert_eq!((offset, reason), expected, "byte {at}");
    }
    // A snapshot's kind byte turned into an append-only file's still has the
    // snapshot's checksum.
    let (mut snapshot, _) = file(Kind::Snapshot, &[]);
    snapshot[7] = b'A';
    assert_eq!(corrupt_at(&snapshot), (28, Corruption::HeaderChecksum));
}

#[test]
fn a_flipped_byte_in_a_middle_block_is_corruption_at_that_block() {
    let (bytes, offsets) = file(Kind::AppendOnly, &payloads());
    let middle = offsets[1] as usize;
    let len = payloads()[1].len() as u32;
    // The checksum and every payload byte.
    for at in middle + 4..middle + 8 + len as usize {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x01;
        assert_eq!(
            corrupt_at(&damaged),
            (middle as u64, Corruption::BlockChecksum(len)),
            "byte {at}"
        );
    }
    // A length that shrinks or grows ends the block elsewhere: its checksum
    // fails with data after it.
    for delta in [-1i32, 1] {
        let mut damaged = bytes.clone();
        damaged[middle + 3] = (damaged[middle + 3] as i32 + delta) as u8;
        let (offset, reason) = corrupt_at(&damaged);
        assert_eq!(offset, middle as u64);
        assert!(matches!(reason, Corruption::BlockChecksum(_)), "{reason:?}");
    }
}

#[test]
fn a_flipped_byte_in_the_last_block_is_a_torn_tail() {
    for kind in [Kind::AppendOnly, Kind::Snapshot] {
        let (bytes, offsets) = file(kind, &payloads());
        let last = offsets[2] as usize;
        let end = last + 8 + payloads()[2].len();
        for at in last + 4..end {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x80;
            match kind {
                Kind::AppendOnly => assert_eq!(truncated_at(&damaged), last as u64),
                // The end marker follows a snapshot's last block.
                Kind::Snapshot => {
                    assert_eq!(corrupt_at(&damaged).0, last as u64);
                }
            }
        }
    }
}

#[test]
fn a_huge_length_is_refused_before_reading() {
    let (mut bytes, offsets) = file(Kind::AppendOnly, &payloads());
    let at = offsets[1] as usize;
    bytes[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(
        corrupt_at(&bytes),
        (at as u64, Corruption::BlockTooLong(u32::MAX))
    );
    // A length within the limit but past the end costs only the bytes there.
    let (mut bytes, _) = file(Kind::AppendOnly, &[]);
    bytes.extend_from_slice(&MAX_BLOCK_LEN.to_be_bytes());
    bytes.extend_from_slice(&[1, 2, 3, 4, 5]);
    assert_eq!(truncated_at(&bytes), HEADER_LEN as u64);
}

#[test]
fn the_end_marker_is_checked() {
    let (bytes, _) = file(Kind::Snapshot, &payloads());
    let end = bytes.len() - END_LEN;

    let mut after = bytes.clone();
    after.push(0);
    assert_eq!(
        corrupt_at(&after),
        (bytes.len() as u64, Corruption::AfterEnd)
    );

    let mut wrong_count = bytes[..end].to_vec();
    encode_end(2, &mut wrong_count);
    assert_eq!(
        corrupt_at(&wrong_count),
        (
            end as u64,
            Corruption::EndCount {
                counted: 2,
                read: 3
            }
        )
    );

    let mut bad_crc = bytes.clone();
    bad_crc[end + 5] ^= 1;
    assert_eq!(truncated_at(&bad_crc), end as u64, "nothing follows it");
    bad_crc.push(7);
    assert_eq!(corrupt_at(&bad_crc), (end as u64, Corruption::EndChecksum));

    // Blocks after an end marker are data after the end.
    let mut two = bytes.clone();
    encode_block(b"more", &mut two).unwrap();
    assert_eq!(corrupt_at(&two), (bytes.len() as u64, Corruption::AfterEnd));
}

#[test]
fn a_snapshot_without_its_end_marker_is_incomplete() {
    let (bytes, _) = file(Kind::Snapshot, &payloads());
    let cut = bytes.len() - END_LEN;
    match read_all(&bytes[..cut]).1 {
        Err(FormatError::Incomplete { offset, blocks }) => {
            assert_eq!((offset, blocks), (cut as u64, 3));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn zeros_after_the_last_good_block_are_a_torn_tail() {
    let (mut bytes, _) = file(Kind::AppendOnly, &payloads());
    let good = bytes.len() as u64;
    bytes.extend_from_slice(&[0; 5000]);
    assert_eq!(truncated_at(&bytes), good);
    // A damaged block followed by zeros, too.
    let (mut bytes, offsets) = file(Kind::AppendOnly, &payloads());
    let last = offsets[2] as usize;
    bytes.truncate(last + 20);
    bytes.extend_from_slice(&[0; 100]);
    assert_eq!(truncated_at(&bytes), last as u64);
    // But a zero length with data after it is not.
    let (mut bytes, _) = file(Kind::AppendOnly, &payloads());
    bytes.extend_from_slice(&[0; 8]);
    encode_block(b"x", &mut bytes).unwrap();
    assert_eq!(corrupt_at(&bytes), (good, Corruption::EmptyBlock));
}

#[test]
fn empty_short_and_foreign_files() {
    assert_eq!(truncated_at(b""), 0);
    assert_eq!(
        read_all(b"KEYC").1.unwrap_err().to_string(),
        "truncated at byte 0: the header was not completely written"
    );
    assert_eq!(
        truncated_at(&[0; 10_000]),
        0,
        "created, extended, never written"
    );
    assert_eq!(
        corrupt_at(&[[0; 100].as_slice(), b"x"].concat()),
        (0, Corruption::BadMagic)
    );
    assert_eq!(truncated_at(b"KEYC"), 0);
    assert_eq!(truncated_at(b"KEYCAFEA\0\x01"), 0);
    assert_eq!(corrupt_at(b"REDIS0011"), (0, Corruption::BadMagic));
    assert_eq!(
        corrupt_at(b"*1\r\n$4\r\nPING\r\n"),
        (0, Corruption::BadMagic)
    );
    assert_eq!(corrupt_at(b"KEYCAFEX"), (7, Corruption::UnknownKind(b'X')));
    assert_eq!(
        corrupt_at(b"KEYCAFES\0\x02"),
        (8, Corruption::UnknownVersion(2))
    );

    let (snapshot, _) = file(Kind::Snapshot, &payloads());
    match Reader::of_kind(Cursor::new(&snapshot), Kind::AppendOnly) {
        Err(FormatError::Corrupt { offset, reason }) => {
            assert_eq!(offset, 7);
            assert_eq!(
                reason,
                Corruption::WrongKind {
                    expected: Kind::AppendOnly,
                    found: Kind::Snapshot
                }
            );
            assert_eq!(
                reason.to_string(),
                "a snapshot where an append-only file was expected"
            );
        }
        other => panic!("{other:?}"),
    }
}

/// Fails with `ErrorKind::Other` once `ok` bytes have been read.
struct FailingAfter {
    data: Vec<u8>,
    ok: usize,
    pos: usize,
}

impl Read for FailingAfter {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.ok {
            return Err(io::Error::other("disk on fire"));
        }
        let n = buf
            .len()
            .min(self.ok - self.pos)
            .min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[test]
fn io_errors_pass_through_with_the_offset() {
    let (data, offsets) = file(Kind::AppendOnly, &payloads());
    let ok = offsets[1] as usize + 3;
    let mut reader = Reader::new(FailingAfter { data, ok, pos: 0 }).unwrap();
    assert!(reader.next_block().unwrap().is_some());
    match reader.next_block() {
        Err(FormatError::Io { offset, source }) => {
            assert_eq!(offset, ok as u64);
            assert_eq!(source.to_string(), "disk on fire");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(reader.next_block(), Err(FormatError::Io { .. })),
        "spent"
    );
    assert_eq!(reader.valid_len(), offsets[1]);
}

#[test]
fn errors_say_what_and_where() {
    let (bytes, offsets) = file(Kind::AppendOnly, &payloads());
    let mut damaged = bytes.clone();
    damaged[offsets[1] as usize + 9] ^= 1;
    let err = read_all(&damaged).1.unwrap_err();
    assert_eq!(err.offset(), offsets[1]);
    assert_eq!(
        err.to_string(),
        format!(
            "corrupt at byte {}: block checksum mismatch (a 58-byte block with more data after it)",
            offsets[1]
        )
    );
    assert_eq!(
        read_all(&bytes[..bytes.len() - 1])
            .1
            .unwrap_err()
            .to_string(),
        format!(
            "truncated at byte {}: the last block was not completely written",
            offsets[2]
        )
    );
}

#[derive(Debug, Clone)]
enum Damage {
    Flip { at: usize, mask: u8 },
    Cut { at: usize },
    Insert { at: usize, bytes: Vec<u8> },
    Remove { at: usize, len: usize },
    ZeroTail { at: usize, len: usize },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(at, mask)| Damage::Flip { at, mask }),
        any::<usize>().prop_map(|at| Damage::Cut { at }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..20))
            .prop_map(|(at, bytes)| Damage::Insert { at, bytes }),
        (any::<usize>(), 1..20usize).prop_map(|(at, len)| Damage::Remove { at, len }),
        (any::<usize>(), 1..100usize).prop_map(|(at, len)| Damage::ZeroTail { at, len }),
    ]
}

fn apply(bytes: &mut Vec<u8>, damage: &Damage) {
    let n = bytes.len();
    if n == 0 && !matches!(damage, Damage::Insert { .. }) {
        return;
    }
    match damage {
        Damage::Flip { at, mask } => bytes[at % n] ^= mask,
        Damage::Cut { at } => bytes.truncate(at % n),
        Damage::Insert { at, bytes: extra } => {
            let at = at % (n + 1);
            bytes.splice(at..at, extra.iter().copied());
        }
        Damage::Remove { at, len } => {
            let at = at % n;
            bytes.drain(at..(at + len).min(n));
        }
        Damage::ZeroTail { at, len } => {
            bytes.truncate(at % n);
            bytes.extend(std::iter::repeat_n(0, *len));
        }
    }
}

proptest! {
    /// Whatever the damage, the reader never panics, hands out only blocks
    /// that were written (at the offsets they were written at), and ends
    /// well only on a whole file: a snapshot unchanged, an append-only file
    /// cut at a block boundary.
    #[test]
    fn random_damage_is_never_read_as_good(
        snapshot in any::<bool>(),
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..200), 0..6),
        damages in prop::collection::vec(damage(), 1..4),
    ) {
        let kind = if snapshot { Kind::Snapshot } else { Kind::AppendOnly };
        let (original, offsets) = file(kind, &payloads);
        let mut damaged = original.clone();
        for damage in &damages {
            apply(&mut damaged, damage);
        }
        let (blocks, end) = read_all(&damaged);
        for block in &blocks {
            let index = offsets.iter().position(|&offset| offset == block.offset);
            prop_assert!(index.is_some(), "a block at {} was never written", block.offset);
            prop_assert_eq!(&block.payload, &payloads[index.unwrap()]);
        }
        if let Ok(len) = end {
            prop_assert_eq!(len as usize, damaged.len());
            match kind {
                Kind::Snapshot => prop_assert_eq!(&damaged, &original),
                Kind::AppendOnly => prop_assert_eq!(&damaged[..], &original[..damaged.len()]),
            }
        }
    }

    /// Arbitrary bytes after a valid header never panic the reader.
    #[test]
    fn arbitrary_blocks_never_panic(snapshot in any::<bool>(), tail in prop::collection::vec(any::<u8>(), 0..300)) {
        let kind = if snapshot { Kind::Snapshot } else { Kind::AppendOnly };
        let (mut bytes, _) = file(kind, &[]);
        bytes.truncate(HEADER_LEN);
        bytes.extend_from_slice(&tail);
        let _ = read_all(&bytes);
    }
}

// ---------------------------------------------------------------------------
// docs/persistence.md
// ---------------------------------------------------------------------------

/// The examples of "Files on disk", each shown in a hex block of its own.
fn doc_examples() -> Vec<(&'static str, Vec<u8>)> {
    let mut snapshot_header = Vec::new();
    encode_header(Kind::Snapshot, FIELDS, &mut snapshot_header);
    let mut set_block = Vec::new();
    encode_block(&request(&["SET", "k", "v"]), &mut set_block).unwrap();
    let mut end = Vec::new();
    encode_end(1, &mut end);
    let mut aof = Vec::new();
    encode_header(Kind::AppendOnly, FIELDS, &mut aof);
    encode_block(&request(&["DEL", "k"]), &mut aof).unwrap();
    vec![
        ("snapshot header", snapshot_header),
        ("SET k v block", set_block),
        ("end marker", end),
        ("append-only file", aof),
    ]
}

/// The fenced blocks of the section "Files on disk" that hold nothing but
/// hex bytes.
fn doc_hex_blocks() -> Vec<Vec<u8>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/persistence.md");
    let doc = std::fs::read_to_string(path).expect("docs/persistence.md exists");
    let section = doc
        .split("\n## ")
        .find(|section| section.starts_with("Files on disk"))
        .expect("docs/persistence.md has a section \"Files on disk\"");
    let is_hex = |word: &str| word.len() == 2 && word.bytes().all(|b| b.is_ascii_hexdigit());
    section
        .split("```")
        .skip(1)
        .step_by(2)
        .filter(|block| {
            let mut words = block.split_whitespace().peekable();
            words.peek().is_some() && words.all(is_hex)
        })
        .map(|block| {
            block
                .split_whitespace()
                .map(|word| u8::from_str_radix(word, 16).unwrap())
                .collect()
        })
        .collect()
}

#[test]
fn the_checksum_is_crc32c() {
    // The check value of CRC-32C (Castagnoli), which the document names.
    assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
}

#[test]
fn the_docs_hex_examples_are_what_the_encoder_writes() {
    let blocks = doc_hex_blocks();
    let examples = doc_examples();
    for (name, bytes) in &examples {
        assert!(
            blocks.contains(bytes),
            "docs/persistence.md lacks the {name} example:\n{}",
            hex(bytes)
        );
    }
    for block in &blocks {
        assert!(
            examples.iter().any(|(_, bytes)| bytes == block),
            "a hex block of docs/persistence.md that no example produces: {}",
            hex(block)
        );
    }
    // And the example files read back.
    let snapshot = [
        examples[0].1.clone(),
        examples[1].1.clone(),
        examples[2].1.clone(),
    ]
    .concat();
    assert_eq!(read_all(&snapshot).1.unwrap(), 85);
    assert_eq!(read_all(&examples[3].1).1.unwrap(), 63);
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}
