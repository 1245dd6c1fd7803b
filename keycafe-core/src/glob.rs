//! Redis's glob patterns: what `KEYS`, `SCAN ... MATCH` and `CONFIG GET`
//! match names against.
//!
//! # The rules
//!
//! - `*` matches any run of bytes (runs of stars count as one);
//! - `?` matches any one byte;
//! - `[abc]` one byte of the set, `[a-z]` a range (either way round:
//!   `[z-a]` is `[a-z]`), `[^...]` any byte *not* in the set;
//! - `\x` matches `x` itself, outside brackets and inside them;
//! - every other byte matches itself (or, for [`Glob::matches_nocase`],
//!   itself in either ASCII case).
//!
//! # Redis's corner cases, kept on purpose
//!
//! Clients and tests rely on Redis's matcher (`stringmatchlen` in its
//! `util.c`), quirks included, so this one gives the same answers:
//!
//! - An unclosed `[` runs to the end of the pattern: `[abc` is `[abc]`, and a
//!   lone `[` at the end matches nothing (while `[^` matches any byte).
//! - `]` right after `[` (or `[^`) closes the set at once: `[]a]` is an empty
//!   set (never matches) followed by `a]`, and `[^]` is "any byte".
//! - `-` makes a range whenever a byte follows it, even `]`: `[a-]` is the
//!   range from `]` to `a` and stays open, as above.
//! - A trailing `\` matches a backslash; `\` inside brackets escapes one byte,
//!   and that byte is compared case-sensitively even by
//!   [`Glob::matches_nocase`], as Redis does.
//! - The empty string matches only the empty pattern: `*` does not match it.
//!   (`KEYS *` and `SCAN` without `MATCH` still list the empty key: they skip
//!   matching for the pattern `*`, as Redis does; see [`Glob::is_star`].)
//! - A pattern with more than 1000 stars (not counting adjacent ones and a
//!   final one) matches nothing: Redis's guard against deep recursion.
//!
//! One difference: bytes are compared as unsigned, where Redis on x86 compares
//! C's signed `char`s in ranges, so a range with one end at or above 0x80
//! (`[a-\xff]`) selects what it reads as here, not the wrap-around it selects
//! there. (Redis on ARM agrees with this.)
//!
//! # Bounded work
//!
//! The pattern is compiled once into single-byte tokens and stars. Since every
//! token but a star matches exactly one byte, a match needs to remember only
//! the last star it passed: on a mismatch it lets that star absorb one more
//! byte and retries from there. Earlier stars never need revisiting, because
//! whatever they could absorb the last star can absorb too. A match therefore
//! costs at most (pattern tokens × string length) steps, and patterns such as
//! `a*a*a*a*b` against a long run of `a`s, exponential for a naive
//! backtracking matcher, stay linear in practice.

use crate::slot::{SLOT_COUNT, Slot, crc16, key_slot};

/// Redis gives up on patterns that recurse deeper than this (one level per
/// star): see the module documentation.
const MAX_STARS: usize = 1000;

/// A compiled glob pattern. See the [module documentation](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    tokens: Vec<Token>,
    /// Members of every set, each set a range of this vector.
    members: Vec<Member>,
    /// The pattern was empty (it then matches only the empty string).
    empty: bool,
    /// The pattern was exactly `*`.
    star: bool,
    /// More stars than Redis follows: nothing matches.
    never: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    /// Any run of bytes.
    Star,
    /// Any one byte.
    Any,
    /// This byte (in either case, when matching without case).
    Byte(u8),
    /// One byte of `members[start..end]`, or not of them if `negated`.
    Set {
        start: usize,
        end: usize,
        negated: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Member {
    /// This byte (in either case, when matching without case).
    Byte(u8),
    /// This byte exactly: it was escaped with `\`.
    Escaped(u8),
    /// A range, its ends as written.
    Range(u8, u8),
}

impl Glob {
    /// Compiles `pattern`. Every byte string is a pattern: there is no
    /// syntax error, only Redis's reading of odd patterns.
    pub fn new(pattern: impl AsRef<[u8]>) -> Glob {
        let pattern = pattern.as_ref();
        let mut glob = Glob {
            tokens: Vec::with_capacity(pattern.len()),
            members: Vec::new(),
            empty: pattern.is_empty(),
            star: pattern == b"*",
            never: false,
        };
        // Past the end reads as 0, as the C code reads the string's
        // terminator: that is what gives unclosed sets their meaning.
        let at = |i: usize| pattern.get(i).copied().unwrap_or(0);
        let len = pattern.len();
        let mut i = 0;
        while i < len {
            match pattern[i] {
                b'*' => {
                    if glob.tokens.last() != Some(&Token::Star) {
                        glob.tokens.push(Token::Star);
                    }
                }
                b'?' => glob.tokens.push(Token::Any),
                b'[' => {
                    i += 1;
                    let negated = at(i) == b'^' && i < len;
                    if negated {
                        i += 1;
                    }
                    let start = glob.members.len();
                    loop {
                        if at(i) == b'\\' && len - i >= 2 {
                            i += 1;
                            glob.members.push(Member::Escaped(pattern[i]));
                        } else if at(i) == b']' && i < len {
                            break;
                        } else if i >= len {
                            // Unclosed: the set ends with the pattern.
                            i = len - 1;
                            break;
                        } else if len - i >= 3 && pattern[i + 1] == b'-' {
                            glob.members.push(Member::Range(pattern[i], pattern[i + 2]));
                            i += 2;
                        } else {
                            glob.members.push(Member::Byte(pattern[i]));
                        }
                        i += 1;
                    }
                    glob.tokens.push(Token::Set {
                        start,
                        end: glob.members.len(),
                        negated,
                    });
                }
                b'\\' if len - i >= 2 => {
                    i += 1;
                    glob.tokens.push(Token::Byte(pattern[i]));
                }
                byte => glob.tokens.push(Token::Byte(byte)),
            }
            i += 1;
        }
        let final_star = usize::from(glob.tokens.last() == Some(&Token::Star));
        let stars = glob.tokens.iter().filter(|t| **t == Token::Star).count();
        glob.never = stars - final_star > MAX_STARS;
        glob
    }

    /// True if the pattern is exactly `*`, which `KEYS` and `SCAN` treat as
    /// "everything" without matching (so that they list the empty key too).
    pub fn is_star(&self) -> bool {
        self.star
    }

    /// Does `text` match, byte for byte?
    pub fn matches(&self, text: impl AsRef<[u8]>) -> bool {
        self.run(text.as_ref(), false)
    }

    /// Does `text` match, ignoring ASCII case (`CONFIG GET`)?
    pub fn matches_nocase(&self, text: impl AsRef<[u8]>) -> bool {
        self.run(text.as_ref(), true)
    }

    fn run(&self, text: &[u8], nocase: bool) -> bool {
        if text.is_empty() || self.never {
            return text.is_empty() && self.empty;
        }
        let tokens = &self.tokens;
        let (mut t, mut s) = (0, 0);
        // After the last star passed: the token after it, and the position
        // in `text` it was last tried from.
        let mut resume: Option<(usize, usize)> = None;
        while s < text.len() {
            match tokens.get(t) {
                Some(Token::Star) => {
                    t += 1;
                    resume = Some((t, s));
                }
                Some(token) if self.accepts(*token, text[s], nocase) => {
                    t += 1;
                    s += 1;
                }
                _ => match resume {
                    // Let the star take one more byte, and try again.
                    Some((after_star, from)) => {
                        resume = Some((after_star, from + 1));
                        t = after_star;
                        s = from + 1;
                    }
                    None => return false,
                },
            }
        }
        tokens[t..].iter().all(|token| *token == Token::Star)
    }

    /// Does a one-byte token accept `byte`?
    fn accepts(&self, token: Token, byte: u8, nocase: bool) -> bool {
        match token {
            Token::Star => false,
            Token::Any => true,
            Token::Byte(expected) => same(expected, byte, nocase),
            Token::Set {
                start,
                end,
                negated,
            } => {
                let found = self.members[start..end].iter().any(|member| match *member {
                    Member::Byte(expected) => same(expected, byte, nocase),
                    Member::Escaped(expected) => expected == byte,
                    Member::Range(a, b) => {
                        let (low, high) = (a.min(b), a.max(b));
                        // Redis orders the ends first and lower-cases
                        // after, so `[Z-a]` without case matches nothing.
                        match nocase {
                            false => (low..=high).contains(&byte),
                            true => (low.to_ascii_lowercase()..=high.to_ascii_lowercase())
                                .contains(&byte.to_ascii_lowercase()),
                        }
                    }
                });
                found != negated
            }
        }
    }
}

/// The one slot every key matching `pattern` hashes to, if the pattern
/// pins one: a literal pattern, or one whose hash tag (`{user:42}*`) is
/// written out before any wildcard. `KEYS` and `SCAN` then read that slot
/// alone, as Redis 7.2 does in a cluster. `None` when matching keys may be
/// anywhere (or when an escape comes first: Redis does not look further
/// either).
pub fn pattern_slot(pattern: &[u8]) -> Option<Slot> {
    let mut open = None;
    let mut tags = true;
    for (i, &byte) in pattern.iter().enumerate() {
        match byte {
            b'*' | b'?' | b'[' | b'\\' => return None,
            b'{' if tags && open.is_none() => open = Some(i),
            b'}' if tags => match open {
                // `{}` is no tag: the whole key is hashed.
                Some(at) if i == at + 1 => tags = false,
                Some(at) => return Some(crc16(&pattern[at + 1..i]) % SLOT_COUNT),
                None => {}
            },
            _ => {}
        }
    }
    Some(key_slot(pattern))
}

fn same(a: u8, b: u8, nocase: bool) -> bool {
    match nocase {
        false => a == b,
        true => a.eq_ignore_ascii_case(&b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yes(pattern: &str, text: &str) {
        assert!(
            Glob::new(pattern).matches(text),
            "{pattern:?} should match {text:?}"
        );
    }

    fn no(pattern: &str, text: &str) {
        assert!(
            !Glob::new(pattern).matches(text),
            "{pattern:?} should not match {text:?}"
        );
    }

    #[test]
    fn stars_and_question_marks() {
        yes("*", "anything");
        yes("h?llo", "hello");
        yes("h*llo", "hllo");
        yes("h*llo", "heeeello");
        yes("user:*", "user:");
        yes("user:*", "user:42");
        yes("*:*", "a:b");
        yes("a**b", "ab");
        yes("***", "x");
        no("h?llo", "hllo");
        no("user:*", "user");
        no("*a", "ab");
        no("a*b*c", "acb");
        yes("a*b*c", "axxbyyc");
        yes("*bc", "abcbc");
    }

    #[test]
    fn sets_and_ranges() {
        yes("h[ae]llo", "hallo");
        no("h[ae]llo", "hillo");
        yes("h[^e]llo", "hallo");
        no("h[^e]llo", "hello");
        yes("h[a-b]llo", "hbllo");
        no("h[a-b]llo", "hcllo");
        // Reversed ranges are ranges all the same.
        yes("[z-a]", "m");
        yes("[0-9a-f][0-9a-f]", "3e");
        no("[0-9a-f]", "g");
    }

    #[test]
    fn escapes() {
        yes(r"a\*b", "a*b");
        no(r"a\*b", "axb");
        yes(r"\?", "?");
        no(r"\?", "x");
        yes(r"[\]]", "]");
        yes(r"[\-]", "-");
        yes(r"[a\-z]", "-");
        no(r"[a\-z]", "b");
        // A trailing backslash is a backslash.
        yes(r"ab\", r"ab\");
        no(r"ab\", "ab");
        yes(r"[a\", r"\");
        yes(r"[a\", "a");
    }

    #[test]
    fn redis_reading_of_odd_sets() {
        // An unclosed set runs to the end of the pattern.
        yes("a[bc", "ab");
        yes("a[bc", "ac");
        no("a[bc", "abc");
        // A lone `[` at the end is an empty set; `[^` is any byte.
        no("a[", "a[");
        no("a[", "ab");
        yes("a[^", "ax");
        // `]` right after `[` closes an empty set...
        no("[]a]", "a]");
        no("[]a]", "]");
        // ...and right after `[^` a set that excludes nothing.
        yes("[^]a]", "xa]");
        yes("[^]", "x");
        // `[` inside a set is just a byte: sets do not nest.
        yes("[[]", "[");
        yes("[[a]]", "a]");
        no("[[a]]", "a");
        yes("[a[]b", "[b");
        // A `-` before `]` makes a range ending at `]`, and the set runs on.
        yes("[a-]", "^");
        yes("[a-]", "]");
        no("[a-]", "-");
        yes("[a-]x]", "_");
        yes("[a-]x]", "x");
        no("[a-]x]", "_x]");
        // A `-` at the start or after a range is just a byte.
        yes("[-a]", "-");
        yes("[a-c-]", "-");
    }

    #[test]
    fn the_empty_string_matches_only_the_empty_pattern() {
        yes("", "");
        no("*", "");
        no("**", "");
        no("?", "");
        no("", "a");
        assert!(Glob::new("*").is_star());
        assert!(!Glob::new("**").is_star());
    }

    #[test]
    fn binary_patterns_and_text() {
        let glob = Glob::new(b"a\x00*\xff");
        assert!(glob.matches(b"a\x00\x01\x02\xff"));
        assert!(!glob.matches(b"a\x01\xff"));
        assert!(Glob::new(b"[\x80-\xff]").matches(b"\xc3"));
        assert!(!Glob::new(b"[\x80-\xff]").matches(b"a"));
    }

    #[test]
    fn without_case() {
        let glob = Glob::new("Max*");
        assert!(glob.matches_nocase("maxmemory"));
        assert!(glob.matches_nocase("MAXMEMORY"));
        assert!(!glob.matches("maxmemory"));
        assert!(Glob::new("[A-C]x").matches_nocase("bX"));
        assert!(Glob::new("[abc]").matches_nocase("B"));
        // Redis lower-cases range ends after ordering them.
        assert!(!Glob::new("[Z-a]").matches_nocase("b"));
        // An escaped byte in a set keeps its case.
        assert!(!Glob::new(r"[\A]").matches_nocase("a"));
        assert!(Glob::new(r"\A").matches_nocase("a"));
    }

    #[test]
    fn too_many_stars_match_nothing() {
        let many = "a*".repeat(MAX_STARS) + "a";
        assert!(Glob::new(&many).matches("a".repeat(MAX_STARS + 1)));
        let too_many = "a*".repeat(MAX_STARS + 1) + "a";
        assert!(!Glob::new(&too_many).matches("a".repeat(MAX_STARS + 2)));
        // A final star does not count.
        let trailing = "a*".repeat(MAX_STARS + 1);
        assert!(Glob::new(&trailing).matches("a".repeat(MAX_STARS + 1)));
    }

    #[test]
    fn a_pattern_may_pin_a_slot() {
        assert_eq!(pattern_slot(b"{user:42}*"), Some(key_slot(b"user:42")));
        assert_eq!(pattern_slot(b"x{user:42}:[ab]"), Some(key_slot(b"user:42")));
        assert_eq!(pattern_slot(b"exact"), Some(key_slot(b"exact")));
        assert_eq!(pattern_slot(b"{}{a}"), Some(key_slot(b"{}{a}")));
        assert_eq!(pattern_slot(b"a{b"), Some(key_slot(b"a{b")));
        for open in [
            &b"*{a}"[..],
            b"{a*}",
            b"{}{a}*",
            b"\\{a}",
            b"user:?",
            b"[a]{b}",
        ] {
            assert_eq!(
                pattern_slot(open),
                None,
                "{:?}",
                String::from_utf8_lossy(open)
            );
        }
        // Every key a pinned pattern matches is in that slot.
        let glob = Glob::new("{tag}*");
        for key in ["{tag}", "{tag}a", "{tag}{other}"] {
            assert!(glob.matches(key));
            assert_eq!(Some(key_slot(key.as_bytes())), pattern_slot(b"{tag}*"));
        }
    }

    #[test]
    fn pathological_patterns_stay_cheap() {
        // Exponential for a naive backtracking matcher: each of the 20 stars
        // could end anywhere in the 10 000 bytes.
        let pattern = "a*".repeat(20) + "b";
        let text = "a".repeat(10_000);
        let glob = Glob::new(&pattern);
        let started = std::time::Instant::now();
        assert!(!glob.matches(&text));
        assert!(glob.matches(text.clone() + "b"));
        // A generous bound (about 400k steps each): only a blow-up fails it.
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    /// Redis's matcher, transliterated naively (exponential, recursive) for
    /// comparison on small inputs.
    fn reference(pattern: &[u8], text: &[u8]) -> bool {
        fn go(p: &[u8], s: &[u8]) -> bool {
            let at = |v: &[u8], i: usize| v.get(i).copied().unwrap_or(0);
            let (mut p, mut s) = (p, s);
            while !p.is_empty() && !s.is_empty() {
                match p[0] {
                    b'*' => {
                        while !p.is_empty() && at(p, 1) == b'*' {
                            p = &p[1..];
                        }
                        if p.len() == 1 {
                            return true;
                        }
                        while !s.is_empty() {
                            if go(&p[1..], s) {
                                return true;
                            }
                            s = &s[1..];
                        }
                        return false;
                    }
                    b'?' => s = &s[1..],
                    b'[' => {
                        // Indexes into the original slice: `i` may step back.
                        let whole = p;
                        let mut i = 1;
                        let not = at(whole, i) == b'^' && i < whole.len();
                        if not {
                            i += 1;
                        }
                        let mut matched = false;
                        loop {
                            let left = whole.len().saturating_sub(i);
                            if at(whole, i) == b'\\' && left >= 2 {
                                i += 1;
                                matched |= whole[i] == s[0];
                            } else if at(whole, i) == b']' && left > 0 {
                                break;
                            } else if left == 0 {
                                i -= 1;
                                break;
                            } else if left >= 3 && whole[i + 1] == b'-' {
                                let (a, b) = (whole[i], whole[i + 2]);
                                matched |= (a.min(b)..=a.max(b)).contains(&s[0]);
                                i += 2;
                            } else {
                                matched |= whole[i] == s[0];
                            }
                            i += 1;
                        }
                        if matched == not {
                            return false;
                        }
                        s = &s[1..];
                        p = &whole[i..];
                    }
                    b'\\' if p.len() >= 2 => {
                        if p[1] != s[0] {
                            return false;
                        }
                        p = &p[1..];
                        s = &s[1..];
                    }
                    byte => {
                        if byte != s[0] {
                            return false;
                        }
                        s = &s[1..];
                    }
                }
                p = &p[1..];
                if s.is_empty() {
                    while p.first() == Some(&b'*') {
                        p = &p[1..];
                    }
                    break;
                }
            }
            p.is_empty() && s.is_empty()
        }
        go(pattern, text)
    }

    #[test]
    fn agrees_with_redis_on_every_small_case() {
        // Every pattern of up to 4 bytes over a small alphabet, against every
        // text of up to 3 bytes over the bytes they can name.
        let alphabet = b"ab*?[]^-\\";
        let texts = b"ab]-\\";
        let mut patterns: Vec<Vec<u8>> = vec![vec![]];
        let mut frontier = patterns.clone();
        for _ in 0..4 {
            frontier = frontier
                .iter()
                .flat_map(|p| {
                    alphabet.iter().map(move |&c| {
                        let mut next = p.clone();
                        next.push(c);
                        next
                    })
                })
                .collect();
            patterns.extend(frontier.iter().cloned());
        }
        let mut strings: Vec<Vec<u8>> = vec![vec![]];
        let mut grown = strings.clone();
        for _ in 0..3 {
            grown = grown
                .iter()
                .flat_map(|s| {
                    texts.iter().map(move |&c| {
                        let mut next = s.clone();
                        next.push(c);
                        next
                    })
                })
                .collect();
            strings.extend(grown.iter().cloned());
        }
        for pattern in &patterns {
            let glob = Glob::new(pattern);
            for text in &strings {
                assert_eq!(
                    glob.matches(text),
                    reference(pattern, text),
                    "pattern {:?} text {:?}",
                    String::from_utf8_lossy(pattern),
                    String::from_utf8_lossy(text)
                );
            }
        }
    }
}
