//! What each decoder does with input that breaks a limit or the grammar, as a
//! table: the input, the limits, and the exact outcome beside it.

mod common;

use common::*;
use keycafe_core::{Frame, Limits, Protocol, ProtocolError};

use Protocol::{Native, Resp2, Resp3};
use ProtocolError::*;

const DEFAULT: Limits = Limits::DEFAULT;

/// A name, the input, the limits, and what the request parser returns.
type RequestCase = (&'static str, Vec<u8>, Limits, Result<Parsed, ProtocolError>);
/// A name, the protocol, the input, the limits, and what the frame decoder returns.
type FrameCase = (
    &'static str,
    Protocol,
    Vec<u8>,
    Limits,
    Result<Option<Frame>, ProtocolError>,
);

/// A request that parses to `args`, using all `used` bytes.
fn args(args: &[&str], used: usize) -> Result<Parsed, ProtocolError> {
    Ok(Some((
        args.iter().map(|a| a.as_bytes().to_vec()).collect(),
        used,
    )))
}

fn native_frame(body: &[u8]) -> Vec<u8> {
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(body);
    frame
}

#[test]
fn resp_request_limits_and_grammar() {
    let at = |bulk: &str| format!("*1\r\n${bulk}\r\n");
    #[rustfmt::skip]
    let cases: Vec<RequestCase> = vec![
        ("1 GiB bulk in 20 bytes", at("1073741824").into(), DEFAULT, Err(InvalidBulkLength)),
        ("512 MiB bulk is allowed: wait", at("536870912").into(), DEFAULT, Ok(None)),
        ("512 MiB + 1 bulk", at("536870913").into(), DEFAULT, Err(InvalidBulkLength)),
        ("bulk over a small limit", at("5").into(), TINY, Err(InvalidBulkLength)),
        ("bulk at a small limit", b"*1\r\n$4\r\nabcd\r\n".to_vec(), TINY, args(&["abcd"], 14)),
        ("bulk past max_frame_len", at("20").into(),
            Limits { max_frame_len: 16, ..DEFAULT }, Err(FrameTooLarge(29))),
        ("too many args", b"*1048577\r\n".to_vec(), DEFAULT, Err(InvalidMultibulkLength)),
        ("most args: wait", b"*1048576\r\n".to_vec(), DEFAULT, Ok(None)),
        ("too many args, small limit", b"*4\r\n".to_vec(), TINY, Err(InvalidMultibulkLength)),
        ("negative bulk length", b"*2\r\n$3\r\nGET\r\n$-1\r\n".to_vec(), DEFAULT, Err(InvalidBulkLength)),
        ("very negative bulk length", at("-5").into(), DEFAULT, Err(InvalidBulkLength)),
        // Redis ignores a multibulk count <= 0; so do we.
        ("null multibulk", b"*-1\r\n".to_vec(), DEFAULT, args(&[], 5)),
        ("negative multibulk", b"*-7\r\n".to_vec(), DEFAULT, args(&[], 5)),
        ("empty multibulk", b"*0\r\n".to_vec(), DEFAULT, args(&[], 4)),
        ("bulk without CRLF", b"*1\r\n$3\r\nGETX\r\n".to_vec(), DEFAULT,
            Err(Malformed("bulk string not followed by CRLF"))),
        ("count without LF", b"*1\rX".to_vec(), DEFAULT, Err(InvalidMultibulkLength)),
        ("count with bare LF", b"*1\n$3\r\nGET\r\n".to_vec(), DEFAULT, Err(InvalidMultibulkLength)),
        ("length without LF", b"*1\r\n$3\rXGET\r\n".to_vec(), DEFAULT, Err(InvalidBulkLength)),
        ("element is not a bulk", b"*1\r\n:3\r\n".to_vec(), DEFAULT,
            Err(UnexpectedByte { expected: '$', got: ':' })),
        ("nested array in a request", b"*1\r\n*1\r\n".to_vec(), DEFAULT,
            Err(UnexpectedByte { expected: '$', got: '*' })),
        ("leading zero in count", b"*01\r\n".to_vec(), DEFAULT, Err(InvalidMultibulkLength)),
        ("plus sign in count", b"*+1\r\n".to_vec(), DEFAULT, Err(InvalidMultibulkLength)),
        ("leading zero in length", b"*1\r\n$03\r\nGET\r\n".to_vec(), DEFAULT, Err(InvalidBulkLength)),
        ("plus sign in length", at("+3").into(), DEFAULT, Err(InvalidBulkLength)),
        ("space in length", at(" 3").into(), DEFAULT, Err(InvalidBulkLength)),
        ("minus zero", at("-0").into(), DEFAULT, Err(InvalidBulkLength)),
        ("count overflows i64", b"*99999999999999999999\r\n".to_vec(), DEFAULT,
            Err(InvalidMultibulkLength)),
        ("length line that never ends", format!("*1\r\n${}", "9".repeat(30)).into(), DEFAULT,
            Err(InvalidBulkLength)),
        ("empty bulk", b"*1\r\n$0\r\n\r\n".to_vec(), DEFAULT, args(&[""], 10)),
        ("binary bulk", b"*1\r\n$4\r\n\r\n\0\x7f\r\n".to_vec(), DEFAULT, args(&["\r\n\0\x7f"], 14)),
    ];
    run_request_cases(Resp2, cases);
}

#[test]
fn inline_limits() {
    let long = |n: usize| "a".repeat(n).into_bytes();
    #[rustfmt::skip]
    let cases: Vec<RequestCase> = vec![
        ("line over the limit, no newline", b"GET abcde".to_vec(), TINY, Err(InlineTooLong)),
        ("line at the limit: wait", b"GET abcd".to_vec(), TINY, Ok(None)),
        ("line at the limit with LF", b"GET abcd\n".to_vec(), TINY, args(&["GET", "abcd"], 9)),
        // The limit counts every byte before the LF, CR included.
        ("line at the limit with CRLF", b"GET abcd\r\n".to_vec(), TINY, Err(InlineTooLong)),
        ("too many inline args", b"a b c d\n".to_vec(), TINY, Err(InvalidMultibulkLength)),
        ("64 KiB + 1 without newline", long(64 * 1024 + 1), DEFAULT, Err(InlineTooLong)),
        ("64 KiB without newline: wait", long(64 * 1024), DEFAULT, Ok(None)),
        ("blank CRLF line", b"\r\n".to_vec(), DEFAULT, args(&[], 2)),
        ("blank LF line", b"\n".to_vec(), DEFAULT, args(&[], 1)),
        ("only whitespace", b"  \t \r\n".to_vec(), DEFAULT, args(&[], 6)),
        ("empty buffer", b"".to_vec(), DEFAULT, Ok(None)),
    ];
    run_request_cases(Resp2, cases);
}

#[test]
fn native_request_limits_and_grammar() {
    let bulk = |data: &[u8]| {
        let mut v = vec![b'$'];
        v.extend_from_slice(&(data.len() as u32).to_be_bytes());
        v.extend_from_slice(data);
        v
    };
    let array = |count: u32, items: &[&[u8]]| {
        let mut v = vec![b'*'];
        v.extend_from_slice(&count.to_be_bytes());
        items.iter().for_each(|item| v.extend_from_slice(item));
        v
    };
    let get = array(1, &[&bulk(b"GET")]);
    let mut with_trailer = get.clone();
    with_trailer.push(0);
    #[rustfmt::skip]
    let cases: Vec<RequestCase> = vec![
        ("frame over 1 GiB, from its prefix", vec![0x40, 0, 0, 1], DEFAULT, Err(FrameTooLarge(0x4000_0001))),
        ("frame of 4 GiB - 1", vec![0xff; 4], DEFAULT, Err(FrameTooLarge(0xffff_ffff))),
        ("frame of exactly 1 GiB: wait", vec![0x40, 0, 0, 0, b'*'], DEFAULT, Ok(None)),
        ("frame over a small limit", vec![0, 0, 0, 33], TINY, Err(FrameTooLarge(33))),
        ("a request", native_frame(&get), DEFAULT, args(&["GET"], 17)),
        ("empty request", native_frame(&array(0, &[])), DEFAULT, args(&[], 9)),
        ("count above max_args", native_frame(&array(4, &[])), TINY, Err(InvalidMultibulkLength)),
        ("count above the bytes left", native_frame(&array(2, &[&bulk(b"GET")])), DEFAULT,
            Err(Malformed("array count exceeds the frame"))),
        ("count of 1M in a tiny frame", native_frame(&array(1 << 20, &[])), DEFAULT,
            Err(Malformed("array count exceeds the frame"))),
        ("bulk over max_bulk_len", native_frame(&array(1, &[&bulk(b"abcde")])), TINY, Err(InvalidBulkLength)),
        ("bulk runs past the frame", native_frame(&[b'*', 0, 0, 0, 1, b'$', 0, 0, 0, 9, b'x']), DEFAULT,
            Err(Malformed("value runs past the end of its frame"))),
        ("not an array", native_frame(&bulk(b"GET")), DEFAULT, Err(NotARequest)),
        ("array of integers", native_frame(&[b'*', 0, 0, 0, 1, b':', 0, 0, 0, 0, 0, 0, 0, 1]), DEFAULT,
            Err(NotARequest)),
        ("trailing bytes", native_frame(&with_trailer), DEFAULT,
            Err(Malformed("trailing bytes after the value"))),
        ("empty body", native_frame(&[]), DEFAULT, Err(Malformed("value runs past the end of its frame"))),
        // A tag that is no type at all is named as such, in lower-case hex;
        // a known type in the wrong place is a request of the wrong shape.
        ("unknown tag '!'", native_frame(b"!"), DEFAULT, Err(UnknownFrameType(0x21))),
        ("unknown tag 0xab", native_frame(&[0xab, 0, 0, 0, 0]), DEFAULT, Err(UnknownFrameType(0xab))),
        ("unknown argument tag", native_frame(&[b'*', 0, 0, 0, 1, 0xab, 0, 0, 0, 0]), DEFAULT,
            Err(UnknownFrameType(0xab))),
        ("null request", native_frame(b"_"), DEFAULT, Err(NotARequest)),
    ];
    run_request_cases(Native, cases);
}

fn run_request_cases(protocol: Protocol, cases: Vec<RequestCase>) {
    for (name, input, limits, expected) in cases {
        assert_eq!(
            parse_once(protocol, &input, limits),
            expected,
            "{protocol:?}: {name}"
        );
    }
}

#[test]
fn frame_decoder_limits_and_grammar() {
    #[rustfmt::skip]
    let cases: Vec<FrameCase> = vec![
        ("RESP 1 GiB bulk", Resp2, b"$1073741824\r\n".to_vec(), DEFAULT, Err(InvalidBulkLength)),
        ("RESP 512 MiB bulk: wait", Resp2, b"$536870912\r\n".to_vec(), DEFAULT, Ok(None)),
        ("RESP array over max_args", Resp2, b"*1048577\r\n".to_vec(), DEFAULT, Err(InvalidMultibulkLength)),
        ("RESP negative bulk", Resp2, b"$-2\r\n".to_vec(), DEFAULT, Err(InvalidBulkLength)),
        ("RESP negative array", Resp2, b"*-2\r\n".to_vec(), DEFAULT, Err(InvalidMultibulkLength)),
        ("RESP null bulk", Resp2, b"$-1\r\n".to_vec(), DEFAULT, Ok(Some(Frame::Null))),
        ("RESP bad integer", Resp2, b":abc\r\n".to_vec(), DEFAULT, Err(InvalidInteger)),
        ("RESP integer leading zero", Resp2, b":01\r\n".to_vec(), DEFAULT, Err(InvalidInteger)),
        ("RESP integer plus sign", Resp2, b":+1\r\n".to_vec(), DEFAULT, Err(InvalidInteger)),
        ("RESP integer overflow", Resp2, b":9223372036854775808\r\n".to_vec(), DEFAULT, Err(InvalidInteger)),
        ("RESP integer minimum", Resp2, b":-9223372036854775808\r\n".to_vec(), DEFAULT,
            Ok(Some(Frame::Integer(i64::MIN)))),
        ("RESP unknown type", Resp2, b"@x\r\n".to_vec(), DEFAULT, Err(UnknownFrameType(b'@'))),
        ("RESP3 attribute", Resp3, b"|1\r\n+a\r\n+b\r\n".to_vec(), DEFAULT, Err(UnknownFrameType(b'|'))),
        ("RESP3 null with junk", Resp3, b"_x\r\n".to_vec(), DEFAULT, Err(Malformed("malformed null"))),
        ("RESP3 null arriving", Resp3, b"_\r".to_vec(), DEFAULT, Ok(None)),
        ("RESP3 boolean other than t/f", Resp3, b"#x\r\n".to_vec(), DEFAULT, Err(Malformed("malformed boolean"))),
        ("RESP3 boolean arriving", Resp3, b"#f".to_vec(), DEFAULT, Ok(None)),
        ("RESP3 verbatim without a format", Resp3, b"=3\r\nabc\r\n".to_vec(), DEFAULT,
            Err(Malformed("verbatim string without a format"))),
        ("RESP3 verbatim without its colon", Resp3, b"=5\r\ntxtab\r\n".to_vec(), DEFAULT,
            Err(Malformed("verbatim string without a format"))),
        ("RESP3 verbatim over max_bulk_len", Resp3, b"=9\r\ntxt:hello\r\n".to_vec(), TINY, Err(InvalidBulkLength)),
        ("RESP3 null verbatim", Resp3, b"=-1\r\n".to_vec(), DEFAULT, Err(InvalidBulkLength)),
        ("RESP3 blob error over max_bulk_len", Resp3, b"!9\r\nERR hello\r\n".to_vec(), TINY, Err(InvalidBulkLength)),
        ("RESP3 map over max_args", Resp3, b"%4\r\n".to_vec(), TINY, Err(InvalidMultibulkLength)),
        ("RESP3 null map", Resp3, b"%-1\r\n".to_vec(), DEFAULT, Err(InvalidMultibulkLength)),
        ("RESP3 set over max_args", Resp3, b"~1048577\r\n".to_vec(), DEFAULT, Err(InvalidMultibulkLength)),
        ("RESP3 map missing a value", Resp3, b"%1\r\n+k\r\n".to_vec(), DEFAULT, Ok(None)),
        ("RESP3 double line without CR", Resp3, b",1.5\n".to_vec(), DEFAULT, Err(Malformed("status line without CR"))),
        ("RESP3 blob error", Resp3, b"!8\r\nERR a\r\nb\r\n".to_vec(), DEFAULT, Ok(Some(Frame::error("ERR a\r\nb")))),
        ("RESP status over max_bulk_len", Resp2, b"+hello\r\n".to_vec(), TINY,
            Err(Malformed("status line too long"))),
        ("RESP status without CR", Resp2, b"+OK\n".to_vec(), DEFAULT, Err(Malformed("status line without CR"))),
        ("RESP bulk without CRLF", Resp2, b"$2\r\nabc\r\n".to_vec(), DEFAULT,
            Err(Malformed("bulk string not followed by CRLF"))),
        ("native frame over the limit", Native, vec![0x40, 0, 0, 1], DEFAULT, Err(FrameTooLarge(0x4000_0001))),
        ("native unknown tag", Native, native_frame(b"!"), DEFAULT, Err(UnknownFrameType(b'!'))),
        ("native array count above the bytes left", Native, native_frame(&[b'*', 0, 0, 0, 2, b'_']), DEFAULT,
            Err(Malformed("array count exceeds the frame"))),
        ("native array over max_args", Native, native_frame(&[b'*', 0, 0, 0, 4, b'_', b'_', b'_', b'_']), TINY,
            Err(InvalidMultibulkLength)),
        ("native integer cut short", Native, native_frame(&[b':', 0, 0, 0, 1]), DEFAULT,
            Err(Malformed("value runs past the end of its frame"))),
        ("native status over max_bulk_len", Native, native_frame(b"+\0\0\0\x05hello"), TINY,
            Err(InvalidBulkLength)),
    ];
    for (name, protocol, input, limits, expected) in cases {
        let decoded = decode_once(protocol, &input, limits).map(|d| d.map(|(frame, _)| frame));
        assert_eq!(decoded, expected, "{name}");
    }
}

/// `depth` arrays of one element each, around an integer.
fn nested(protocol: Protocol, depth: usize) -> Vec<u8> {
    match protocol {
        Resp2 | Resp3 => {
            let mut v = b"*1\r\n".repeat(depth);
            v.extend_from_slice(b":1\r\n");
            v
        }
        Native => {
            let mut body = [b'*', 0, 0, 0, 1].repeat(depth);
            body.extend_from_slice(&[b':', 0, 0, 0, 0, 0, 0, 0, 1]);
            native_frame(&body)
        }
    }
}

#[test]
fn arrays_nest_at_most_64_deep() {
    for protocol in PROTOCOLS {
        let mut expected = Frame::Integer(1);
        for _ in 0..64 {
            expected = Frame::Array(vec![expected]);
        }
        let input = nested(protocol, 64);
        assert_eq!(
            decode_once(protocol, &input, DEFAULT),
            Ok(Some((expected, input.len()))),
            "{protocol:?}"
        );
        let too_deep = Err(Malformed("arrays nested too deeply"));
        for depth in [65, 100_000] {
            let input = nested(protocol, depth);
            let decoded = decode_once(protocol, &input, DEFAULT).map(|d| d.map(|(f, _)| f));
            assert_eq!(decoded, too_deep, "{protocol:?} depth {depth}");
        }
        // Also while the frame is still arriving (RESP finds out early).
        if protocol == Resp2 {
            let input = b"*1\r\n".repeat(100_000);
            assert_eq!(
                decode_once(protocol, &input, DEFAULT),
                Err(Malformed("arrays nested too deeply"))
            );
        }
    }
}

#[test]
fn resp3_aggregates_nest_at_most_64_deep_too() {
    let openers: [&[u8]; 3] = [b"%1\r\n+key\r\n", b"~1\r\n", b">1\r\n"];
    let nested = |depth: usize| {
        let mut v: Vec<u8> = (0..depth).flat_map(|i| openers[i % 3].to_vec()).collect();
        v.extend_from_slice(b":1\r\n");
        v
    };
    assert!(matches!(
        decode_once(Resp3, &nested(64), DEFAULT),
        Ok(Some(_))
    ));
    for depth in [65, 100_000] {
        assert_eq!(
            decode_once(Resp3, &nested(depth), DEFAULT).map(|d| d.map(|(f, _)| f)),
            Err(Malformed("arrays nested too deeply")),
            "depth {depth}"
        );
    }
}

#[test]
fn error_replies_read_like_redis() {
    assert_eq!(
        InvalidBulkLength.reply_text(),
        "ERR Protocol error: invalid bulk length"
    );
    assert_eq!(
        InvalidMultibulkLength.reply_text(),
        "ERR Protocol error: invalid multibulk length"
    );
    assert_eq!(
        InlineTooLong.reply_text(),
        "ERR Protocol error: too big inline request"
    );
    assert_eq!(
        UnbalancedQuotes.reply_text(),
        "ERR Protocol error: unbalanced quotes in request"
    );
    assert_eq!(
        UnexpectedByte {
            expected: '$',
            got: ':'
        }
        .reply_text(),
        "ERR Protocol error: expected '$', got ':'"
    );
}
