//! Inline commands (what a person types into telnet or `nc`), split with the
//! quoting rules of Redis's `sdssplitargs`. Every expectation here was checked
//! against redis-server 7.0 by sending the line and `ECHO`ing the result.

mod common;

use common::*;
use keycafe_core::{Limits, Protocol, ProtocolError};

/// The arguments of one inline line, or `None` if it is incomplete.
type Split = Result<Option<Vec<Vec<u8>>>, ProtocolError>;

fn inline(line: &[u8]) -> Split {
    let parsed = parse_once(Protocol::Resp2, line, Limits::default())?;
    Ok(parsed.map(|(args, used)| {
        assert_eq!(used, line.len(), "one line, used whole");
        args
    }))
}

fn ok(args: &[&[u8]]) -> Split {
    Ok(Some(args.iter().map(|a| a.to_vec()).collect()))
}

#[test]
fn quoting_and_escapes() {
    use ProtocolError::UnbalancedQuotes;
    #[rustfmt::skip]
    let cases: &[(&[u8], Split)] = &[
        (b"SET k \"hello world\"\r\n", ok(&[b"SET", b"k", b"hello world"])),
        (b"ECHO \"a\\nb\"\r\n", ok(&[b"ECHO", b"a\nb"])),
        (b"ECHO \"\\r\\t\\b\\a\"\r\n", ok(&[b"ECHO", b"\r\t\x08\x07"])),
        (b"ECHO \"\\x41\\x62\"\r\n", ok(&[b"ECHO", b"Ab"])),
        (b"ECHO \"\\xff\\x00\"\r\n", ok(&[b"ECHO", b"\xff\x00"])),
        // `\x` needs two hex digits; otherwise the backslash just escapes `x`.
        (b"ECHO \"\\x4\"\r\n", ok(&[b"ECHO", b"x4"])),
        (b"ECHO \"\\xZZ\"\r\n", ok(&[b"ECHO", b"xZZ"])),
        (b"ECHO \"\\x+f\"\r\n", ok(&[b"ECHO", b"x+f"])),
        (b"ECHO \"x\\q\"\r\n", ok(&[b"ECHO", b"xq"])),
        (b"ECHO \"a\\\"b\"\r\n", ok(&[b"ECHO", b"a\"b"])),
        (b"ECHO \"a\\\\b\"\r\n", ok(&[b"ECHO", b"a\\b"])),
        (b"ECHO 'it\\'s'\r\n", ok(&[b"ECHO", b"it's"])),
        // Single quotes escape nothing but the single quote.
        (b"ECHO 'a\\nb'\r\n", ok(&[b"ECHO", b"a\\nb"])),
        (b"ECHO \"\"\r\n", ok(&[b"ECHO", b""])),
        (b"ECHO ''\r\n", ok(&[b"ECHO", b""])),
        // A quote inside a word opens a quoted part that ends the word.
        (b"ECHO foo\"bar baz\"\r\n", ok(&[b"ECHO", b"foobar baz"])),
        (b"ECHO foo'bar'\r\n", ok(&[b"ECHO", b"foobar"])),
        (b"ECHO \"a\" \r\n", ok(&[b"ECHO", b"a"])),
        (b"ECHO \"a\"\tb\r\n", ok(&[b"ECHO", b"a", b"b"])),
        (b"ECHO \"abc\r\n", Err(UnbalancedQuotes)),
        (b"ECHO 'abc\r\n", Err(UnbalancedQuotes)),
        // A closing quote must be followed by whitespace or the end of the line.
        (b"ECHO \"a\"b\r\n", Err(UnbalancedQuotes)),
        (b"ECHO 'a'b\r\n", Err(UnbalancedQuotes)),
        (b"ECHO foo\"bar\"baz\r\n", Err(UnbalancedQuotes)),
        // The backslash escapes the would-be closing quote.
        (b"ECHO \"\\\"\r\n", Err(UnbalancedQuotes)),
        (b"ECHO 'a\\'\r\n", Err(UnbalancedQuotes)),
    ];
    for (line, expected) in cases {
        assert_eq!(
            &inline(line),
            expected,
            "{:?}",
            String::from_utf8_lossy(line)
        );
    }
}

#[test]
fn line_endings_and_whitespace() {
    #[rustfmt::skip]
    let cases: &[(&[u8], Split)] = &[
        (b"GET k\r\n", ok(&[b"GET", b"k"])),
        (b"GET k\n", ok(&[b"GET", b"k"])),
        (b"  GET   k  \r\n", ok(&[b"GET", b"k"])),
        (b"GET\tk\n", ok(&[b"GET", b"k"])),
        // A quoted CR is data; the line still ends at LF.
        (b"ECHO \"a\rb\"\n", ok(&[b"ECHO", b"a\rb"])),
        (b"\r\n", ok(&[])),
        (b"GET k", Ok(None)),
        (b"GET k\r", Ok(None)),
    ];
    for (line, expected) in cases {
        let got = parse_once(Protocol::Resp2, line, Limits::default())
            .map(|parsed| parsed.map(|(args, _)| args));
        assert_eq!(&got, expected, "{:?}", String::from_utf8_lossy(line));
    }
}

#[test]
fn inline_lines_pipeline() {
    let input = b"SET a 1\r\nGET a\nPING\r\n";
    let first = parse_once(Protocol::Resp2, input, Limits::default()).unwrap();
    assert_eq!(
        first,
        Some((vec![b"SET".to_vec(), b"a".to_vec(), b"1".to_vec()], 9))
    );
    let second = parse_once(Protocol::Resp2, &input[9..], Limits::default()).unwrap();
    assert_eq!(second, Some((vec![b"GET".to_vec(), b"a".to_vec()], 6)));
    let third = parse_once(Protocol::Resp2, &input[15..], Limits::default()).unwrap();
    assert_eq!(third, Some((vec![b"PING".to_vec()], 6)));
}
