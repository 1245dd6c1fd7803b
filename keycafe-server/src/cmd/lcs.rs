//! LCS: the longest common subsequence of two string values.
//!
//! Redis fills the classic dynamic-programming table of LCS lengths, one
//! `u32` per pair of prefixes, and walks it back from the far corner to
//! recover the subsequence and its matching ranges. Which of several equally
//! long subsequences it returns, and which ranges, follow from the order of
//! that walk, so Keycafe walks the same way — but keeps less to walk by.
//! Going back, the walk only asks at each cell whether the bytes match (the
//! strings tell) and, if not, whether the cell above holds more than the
//! cell to the left: one bit. So the lengths are computed one row at a time
//! and only that bit is kept, 1/32 of Redis's table; `LEN` alone keeps no
//! table at all.
//!
//! The work is still the product of the two lengths. Redis refuses a table
//! larger than `proto-max-bulk-len` (512 MiB: about 134 million cells), and
//! Keycafe refuses the same requests with the same error, which bounds the
//! time as well. The two values are read at one point in time, as MGET reads
//! its keys, and copied out of the store, so the computation holds no lock.

use keycafe_core::{Args, Reply};

use super::parse::parse_int;
use super::{ArgCursor, CmdError, CmdResult, Ctx};
use crate::store::MAX_STRING_LEN;

/// What the client asked LCS for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Options {
    /// `LEN`: only the length.
    len: bool,
    /// `IDX`: the matching ranges and the length.
    idx: bool,
    /// `MINMATCHLEN n`: leave out ranges shorter than this.
    min_match_len: u64,
    /// `WITHMATCHLEN`: each range with its length.
    with_match_len: bool,
}

impl Options {
    fn parse(cursor: &mut ArgCursor<'_>) -> CmdResult<Options> {
        let mut options = Options::default();
        while cursor.remaining() > 0 {
            let keyword = cursor.next_keyword()?;
            match keyword.as_bytes() {
                b"IDX" => options.idx = true,
                b"LEN" => options.len = true,
                b"WITHMATCHLEN" => options.with_match_len = true,
                b"MINMATCHLEN" if cursor.remaining() > 0 => {
                    let n = parse_int(cursor.next_bytes()?)?;
                    options.min_match_len = u64::try_from(n).unwrap_or(0);
                }
                _ => return Err(CmdError::Syntax),
            }
        }
        if options.len && options.idx {
            return Err(CmdError::Other(
                "ERR If you want both the length and indexes, please just use IDX.".into(),
            ));
        }
        Ok(options)
    }
}

/// True if Redis would build the table for strings of these lengths: its
/// `(a + 1) × (b + 1)` `u32` cells within `proto-max-bulk-len`.
fn table_fits(a: usize, b: usize) -> bool {
    (a as u128 + 1) * (b as u128 + 1) * 4 <= MAX_STRING_LEN as u128
}

fn table_too_large() -> CmdError {
    CmdError::Other(
        "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len".into(),
    )
}

/// `LCS key1 key2 [LEN] [IDX] [MINMATCHLEN n] [WITHMATCHLEN]`; an absent key
/// is an empty string.
pub fn lcs(ctx: &mut Ctx<'_>, args: Args<'_>, reply: &mut Reply<'_>) -> CmdResult {
    let mut cursor = ArgCursor::new(args);
    let (a_key, b_key) = (cursor.next_bytes()?, cursor.next_bytes()?);
    let options = Options::parse(&mut cursor)?;
    // Both values at one point in time, copied only as far as the table
    // they need may be built: the first if its table alone fits, the second
    // if both do. Whatever is refused, the copy never exceeds the 128 MiB
    // a fitting pair can hold.
    let mut copies: [Option<Vec<u8>>; 2] = [None, None];
    let (mut index, mut first_len) = (0, 0);
    ctx.store()
        .get_many([a_key, b_key].into_iter(), ctx.now_ms(), |value| {
            let value = value.unwrap_or_default();
            let fits = match index {
                0 => {
                    first_len = value.len();
                    table_fits(first_len, 0)
                }
                _ => table_fits(first_len, value.len()),
            };
            copies[index] = fits.then(|| value.to_vec());
            index += 1;
        });
    let [Some(a), Some(b)] = copies else {
        return Err(table_too_large());
    };
    if options.len {
        reply.integer(i64::from(lcs_len(&a, &b)));
        return Ok(());
    }
    let found = Walk::new(&a, &b).run(options.min_match_len);
    if !options.idx {
        reply.bulk(&found.subsequence);
        return Ok(());
    }
    // A map in RESP3; in RESP2, Redis's flat array of its keys and values.
    reply.map(2);
    reply.bulk(b"matches");
    reply.array(found.ranges.len());
    for range in &found.ranges {
        reply.array(2 + usize::from(options.with_match_len));
        for (start, end) in [range.a, range.b] {
            reply.array(2);
            reply.integer(i64::from(start));
            reply.integer(i64::from(end));
        }
        if options.with_match_len {
            reply.integer(i64::from(range.len()));
        }
    }
    reply.bulk(b"len");
    reply.integer(i64::from(found.len));
    Ok(())
}

/// The length of the longest common subsequence, one row of lengths at a
/// time.
fn lcs_len(a: &[u8], b: &[u8]) -> u32 {
    let mut row = vec![0u32; b.len() + 1];
    for &x in a {
        // `diagonal` is the previous row's value at j - 1.
        let mut diagonal = 0;
        for (j, &y) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if x == y {
                diagonal + 1
            } else {
                above.max(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

/// One matching range: bytes `a.0..=a.1` of the first string equal bytes
/// `b.0..=b.1` of the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MatchRange {
    a: (u32, u32),
    b: (u32, u32),
}

impl MatchRange {
    fn len(&self) -> u32 {
        self.a.1 - self.a.0 + 1
    }
}

/// What the walk finds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Found {
    len: u32,
    subsequence: Vec<u8>,
    /// From the end of the strings back, as Redis lists them.
    ranges: Vec<MatchRange>,
}

/// The table of "the cell above holds more than the cell to the left", one
/// bit per cell, and the walk back through it.
struct Walk<'s> {
    a: &'s [u8],
    b: &'s [u8],
    /// Bit `(i - 1) * b.len() + (j - 1)` for cell `(i, j)`.
    up: Vec<u64>,
    len: u32,
}

impl<'s> Walk<'s> {
    fn new(a: &'s [u8], b: &'s [u8]) -> Walk<'s> {
        let cells = a.len() * b.len();
        let mut up = vec![0u64; cells.div_ceil(64)];
        let mut row = vec![0u32; b.len() + 1];
        for (i, &x) in a.iter().enumerate() {
            let mut diagonal = 0;
            for (j, &y) in b.iter().enumerate() {
                let above = row[j + 1];
                let left = row[j];
                row[j + 1] = if x == y {
                    diagonal + 1
                } else if above > left {
                    let cell = i * b.len() + j;
                    up[cell / 64] |= 1 << (cell % 64);
                    above
                } else {
                    left
                };
                diagonal = above;
            }
        }
        Walk {
            a,
            b,
            up,
            len: row[b.len()],
        }
    }

    fn goes_up(&self, i: usize, j: usize) -> bool {
        let cell = (i - 1) * self.b.len() + (j - 1);
        self.up[cell / 64] & (1 << (cell % 64)) != 0
    }

    /// Walks back from the far corner as Redis does: on a match, take the
    /// byte and extend the current range backwards; otherwise step towards
    /// the larger neighbour (left on a tie), which ends the current range.
    /// Ranges shorter than `min_match_len` are left out.
    fn run(&self, min_match_len: u64) -> Found {
        let mut subsequence = vec![0u8; self.len as usize];
        let mut ranges = Vec::new();
        let mut current: Option<MatchRange> = None;
        let (mut i, mut j, mut filled) = (self.a.len(), self.b.len(), self.len as usize);
        // Indexes are below 2^32: the table would not fit otherwise.
        let index = |n: usize| n as u32;
        while i > 0 && j > 0 {
            let mut emit = false;
            if self.a[i - 1] == self.b[j - 1] {
                subsequence[filled - 1] = self.a[i - 1];
                match &mut current {
                    None => {
                        current = Some(MatchRange {
                            a: (index(i - 1), index(i - 1)),
                            b: (index(j - 1), index(j - 1)),
                        })
                    }
                    Some(range) if range.a.0 == index(i) && range.b.0 == index(j) => {
                        range.a.0 -= 1;
                        range.b.0 -= 1;
                    }
                    Some(_) => emit = true,
                }
                // A range that reached the start of either string is done.
                emit |= current.is_some_and(|r| r.a.0 == 0 || r.b.0 == 0);
                filled -= 1;
                i -= 1;
                j -= 1;
            } else {
                if self.goes_up(i, j) {
                    i -= 1;
                } else {
                    j -= 1;
                }
                emit = current.is_some();
            }
            // An emitted range ends the current one, kept or not.
            if emit
                && let Some(range) = current.take()
                && u64::from(range.len()) >= min_match_len
            {
                ranges.push(range);
            }
        }
        Found {
            len: self.len,
            subsequence,
            ranges,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::strings::harness::*;
    use super::*;

    /// The textbook table, for checking the one-bit walk against.
    fn full_table_len(a: &[u8], b: &[u8]) -> u32 {
        let mut table = vec![vec![0u32; b.len() + 1]; a.len() + 1];
        for i in 1..=a.len() {
            for j in 1..=b.len() {
                table[i][j] = if a[i - 1] == b[j - 1] {
                    table[i - 1][j - 1] + 1
                } else {
                    table[i - 1][j].max(table[i][j - 1])
                };
            }
        }
        table[a.len()][b.len()]
    }

    fn is_subsequence(small: &[u8], of: &[u8]) -> bool {
        let mut rest = of.iter();
        small.iter().all(|x| rest.any(|y| y == x))
    }

    #[test]
    fn lengths_and_subsequences_agree_with_the_full_table() {
        let texts: [&[u8]; 7] = [
            b"",
            b"a",
            b"ohmytext",
            b"mynewtext",
            b"abcabcabc",
            b"cbacbacba",
            b"aaaaabbbbbaaaaa",
        ];
        for a in texts {
            for b in texts {
                let expected = full_table_len(a, b);
                assert_eq!(lcs_len(a, b), expected);
                let found = Walk::new(a, b).run(0);
                assert_eq!(found.len, expected);
                assert_eq!(found.subsequence.len() as u32, expected);
                assert!(is_subsequence(&found.subsequence, a));
                assert!(is_subsequence(&found.subsequence, b));
                let matched: u32 = found.ranges.iter().map(MatchRange::len).sum();
                assert_eq!(matched, expected, "{a:?} {b:?}");
                for range in &found.ranges {
                    let (a0, a1) = (range.a.0 as usize, range.a.1 as usize);
                    let (b0, b1) = (range.b.0 as usize, range.b.1 as usize);
                    assert_eq!(a[a0..=a1], b[b0..=b1]);
                }
            }
        }
    }

    #[test]
    fn the_table_is_bounded_as_redis_bounds_it() {
        assert!(table_fits(0, 0));
        assert!(table_fits(8191, 16383));
        assert!(!table_fits(8192, 16383));
        assert!(!table_fits(MAX_STRING_LEN, 0));
    }

    #[test]
    fn redis_documentation_examples() {
        let mut node = Node::new();
        node.script(&[
            ("MSET key1 ohmytext key2 mynewtext", ok()),
            ("LCS key1 key2", bulk("mytext")),
            ("LCS key1 key2 LEN", int(6)),
            (
                "LCS key1 key2 IDX",
                array(vec![
                    bulk("matches"),
                    array(vec![
                        array(vec![
                            array(vec![int(4), int(7)]),
                            array(vec![int(5), int(8)]),
                        ]),
                        array(vec![
                            array(vec![int(2), int(3)]),
                            array(vec![int(0), int(1)]),
                        ]),
                    ]),
                    bulk("len"),
                    int(6),
                ]),
            ),
            (
                "LCS key1 key2 IDX MINMATCHLEN 4 WITHMATCHLEN",
                array(vec![
                    bulk("matches"),
                    array(vec![array(vec![
                        array(vec![int(4), int(7)]),
                        array(vec![int(5), int(8)]),
                        int(4),
                    ])]),
                    bulk("len"),
                    int(6),
                ]),
            ),
            ("LCS key1 missing", bulk("")),
            (
                "LCS key1 key2 LEN IDX",
                err("ERR If you want both the length and indexes, please just use IDX."),
            ),
            ("LCS key1 key2 MINMATCHLEN", err("ERR syntax error")),
            (
                "LCS key1 key2 MINMATCHLEN x",
                err("ERR value is not an integer or out of range"),
            ),
        ]);
    }

    #[test]
    fn a_table_too_large_is_refused_before_copying() {
        let mut node = Node::new();
        let long = vec![b'x'; 20_000];
        node.run_args(&[b"SET", b"a", &long]);
        node.run_args(&[b"SET", b"b", &long]);
        assert_eq!(
            node.run("LCS a b"),
            err("ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len")
        );
        assert_eq!(node.run("LCS a missing LEN"), int(0));
    }
}
