//! A native request is checked field by field as its bytes arrive, not once
//! the whole frame is in: a peer that announces a large frame and then an
//! array count or a bulk length over the limits is refused as soon as that
//! header has arrived, however the bytes are split, and with the same reason
//! as if it had sent the whole frame at once (`docs/protocol.md`, "Limits and
//! protocol violations").

mod common;

use common::*;
use keycafe_core::{Limits, Protocol, ProtocolError, RequestParser};

use ProtocolError::*;

const MIB: u32 = 1024 * 1024;

fn prefix(body_len: u32) -> Vec<u8> {
    body_len.to_be_bytes().to_vec()
}

fn array(count: u32) -> Vec<u8> {
    let mut v = vec![b'*'];
    v.extend_from_slice(&count.to_be_bytes());
    v
}

fn bulk_header(len: u32) -> Vec<u8> {
    let mut v = vec![b'$'];
    v.extend_from_slice(&len.to_be_bytes());
    v
}

fn concat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Feeds `input` one byte at a time to one parser, as a connection's read
/// buffer grows, and returns the first error and how many bytes had arrived
/// when it came; `None` if the bytes never made an error.
fn first_error(input: &[u8], limits: Limits) -> Option<(ProtocolError, usize)> {
    let mut parser = RequestParser::new(limits);
    for arrived in 1..=input.len() {
        match parser.parse(Protocol::Native, &input[..arrived]) {
            Ok(None) => {}
            Ok(Some(_)) => panic!("a complete request after {arrived} bytes"),
            Err(err) => return Some((err, arrived)),
        }
    }
    None
}

#[test]
fn headers_over_the_limits_are_refused_as_soon_as_they_arrive() {
    let big = 600 * MIB;
    let get = concat(&[&bulk_header(3), b"GET"]);
    #[rustfmt::skip]
    let cases: Vec<(&str, Vec<u8>, Limits, ProtocolError)> = vec![
        ("a 600 MiB frame, then 1M + 1 arguments",
            concat(&[&prefix(big), &array(1024 * 1024 + 1)]), Limits::DEFAULT, InvalidMultibulkLength),
        ("a 600 MiB frame, then a 512 MiB + 1 bulk",
            concat(&[&prefix(big), &array(2), &get, &bulk_header(512 * MIB + 1)]), Limits::DEFAULT,
            InvalidBulkLength),
        ("a 600 MiB frame, then an unknown tag",
            concat(&[&prefix(big), &[0x21]]), Limits::DEFAULT, UnknownFrameType(0x21)),
        ("a 600 MiB frame, then an integer where an argument goes",
            concat(&[&prefix(big), &array(2), &get, b":"]), Limits::DEFAULT, NotARequest),
        ("a bulk longer than the frame has left",
            concat(&[&prefix(100), &array(1), &bulk_header(96)]), Limits::DEFAULT,
            Malformed("value runs past the end of its frame")),
        ("more arguments than the frame can hold",
            concat(&[&prefix(100), &array(20)]), Limits::DEFAULT,
            Malformed("array count exceeds the frame")),
        ("bytes left over, known from the last header",
            concat(&[&prefix(100), &array(1), &bulk_header(3)]), Limits::DEFAULT,
            Malformed("trailing bytes after the value")),
        ("a stranger declaring 11 arguments",
            concat(&[&prefix(1000), &array(11)]), Limits::DEFAULT.unauthenticated(),
            UnauthenticatedMultibulkLength),
        ("a stranger declaring a 16 KiB + 1 bulk",
            concat(&[&prefix(20_000), &array(2), &get, &bulk_header(16 * 1024 + 1)]),
            Limits::DEFAULT.unauthenticated(), UnauthenticatedBulkLength),
    ];
    for (name, header, limits, expected) in cases {
        // Only the header has been sent; the rest of the frame never comes.
        assert_eq!(
            first_error(&header, limits),
            Some((expected.clone(), header.len())),
            "{name}: refused at its last header byte"
        );
        assert_eq!(
            parse_once(Protocol::Native, &header, limits),
            Err(expected.clone()),
            "{name}: all at once"
        );
    }
}

#[test]
fn the_reason_is_the_same_however_the_frame_is_split() {
    let get = concat(&[&bulk_header(3), b"GET"]);
    let tiny = Limits {
        max_bulk_len: 8,
        max_args: 3,
        ..Limits::DEFAULT
    };
    // Whole frames, each with more than one thing wrong: the first in byte
    // order is the one reported.
    #[rustfmt::skip]
    let cases: Vec<(&str, Vec<u8>, ProtocolError)> = vec![
        ("too many arguments, and a bulk too long after them",
            concat(&[&prefix(24), &array(4), &bulk_header(9), &[0; 10]]), InvalidMultibulkLength),
        ("a bulk too long, and running past the frame",
            concat(&[&prefix(14), &array(1), &bulk_header(9)]), InvalidBulkLength),
        ("an unknown tag, then trailing bytes",
            concat(&[&prefix(11), &array(1), &[0xab], &[0; 5]]), UnknownFrameType(0xab)),
        ("a zero-length frame", prefix(0), Malformed("value runs past the end of its frame")),
        ("a GET and a byte too many",
            concat(&[&prefix(14), &array(1), &get, &[0]]), Malformed("trailing bytes after the value")),
    ];
    for (name, frame, expected) in cases {
        assert_eq!(
            parse_once(Protocol::Native, &frame, tiny),
            Err(expected.clone()),
            "{name}: at once"
        );
        assert_eq!(
            first_error(&frame, tiny).map(|(err, _)| err),
            Some(expected),
            "{name}: byte by byte"
        );
    }
}

#[test]
fn argument_data_is_skipped_not_read() {
    // A 1 MiB value trickled in 4 KiB pieces: the parser reads the headers
    // (and each piece's length prefix), never the value's bytes.
    let value = vec![b'v'; 1 << 20];
    let mut request = bytes::BytesMut::new();
    Protocol::Native.encode_request(&[b"SET".as_slice(), b"k", &value], &mut request);
    let mut parser = RequestParser::new(Limits::DEFAULT);
    let mut parsed = None;
    for arrived in (4096..request.len()).step_by(4096).chain([request.len()]) {
        if let Some((args, used)) = parser.parse(Protocol::Native, &request[..arrived]).unwrap() {
            parsed = Some((args.to_vecs(), used));
        }
    }
    let (args, used) = parsed.expect("the request completes");
    assert_eq!(used, request.len());
    assert_eq!(args, vec![b"SET".to_vec(), b"k".to_vec(), value]);
    let reads = request.len().div_ceil(4096) as u64;
    assert!(
        parser.bytes_examined() <= 4 * reads + 64,
        "{} bytes examined",
        parser.bytes_examined()
    );
}
