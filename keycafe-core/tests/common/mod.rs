//! Helpers shared by the codec tests: generators for frames and requests, and
//! small drivers that run a decoder over a byte string.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use keycafe_core::{Frame, Limits, Protocol, ProtocolError, RequestParser};
use proptest::collection::vec;
use proptest::prelude::*;

pub const PROTOCOLS: [Protocol; 3] = [Protocol::Resp2, Protocol::Resp3, Protocol::Native];

/// Limits small enough that generated input crosses every one of them.
pub const TINY: Limits = Limits {
    max_bulk_len: 4,
    max_args: 3,
    max_inline_len: 8,
    max_frame_len: 32,
};

/// Parses `"ca fe 4b 43"`-style hex (whitespace ignored) into bytes.
pub fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(
        digits.len().is_multiple_of(2),
        "odd number of hex digits in {text:?}"
    );
    digits
        .chunks(2)
        .map(|pair| {
            let pair = std::str::from_utf8(pair).expect("hex digits are ASCII");
            u8::from_str_radix(pair, 16).expect("valid hex digit")
        })
        .collect()
}

/// Encodes one frame into a fresh buffer.
pub fn encode(protocol: Protocol, frame: &Frame) -> Vec<u8> {
    let mut out = BytesMut::new();
    protocol.encode_frame(frame, &mut out);
    out.to_vec()
}

/// Encodes one request into a fresh buffer.
pub fn encode_request(protocol: Protocol, args: &[Vec<u8>]) -> Vec<u8> {
    let mut out = BytesMut::new();
    protocol.encode_request(args, &mut out);
    out.to_vec()
}

/// One request parse: its arguments and the bytes it used.
pub type Parsed = Option<(Vec<Vec<u8>>, usize)>;

/// Runs the request parser once over `input`.
pub fn parse_once(
    protocol: Protocol,
    input: &[u8],
    limits: Limits,
) -> Result<Parsed, ProtocolError> {
    let mut parser = RequestParser::new(limits);
    let parsed = parser.parse(protocol, input)?;
    Ok(parsed.map(|(args, used)| (args.to_vecs(), used)))
}

/// Runs the frame decoder once over `input`. Returns the frame and the bytes
/// it consumed; checks that an incomplete frame consumes nothing.
pub fn decode_once(
    protocol: Protocol,
    input: &[u8],
    limits: Limits,
) -> Result<Option<(Frame, usize)>, ProtocolError> {
    let mut buf = BytesMut::from(input);
    let decoded = protocol.decode_frame(&mut buf, &limits)?;
    match decoded {
        Some(frame) => Ok(Some((frame, input.len() - buf.len()))),
        None => {
            assert_eq!(&buf[..], input, "an incomplete frame must consume nothing");
            Ok(None)
        }
    }
}

/// Parses every complete request in `input`, as a connection loop does.
/// Returns the requests and the bytes left over.
pub fn parse_all(
    parser: &mut RequestParser,
    protocol: Protocol,
    input: &mut BytesMut,
) -> Result<Vec<Vec<Vec<u8>>>, ProtocolError> {
    let mut requests = Vec::new();
    while let Some((args, used)) = parser.parse(protocol, input)? {
        assert!(used > 0, "a parsed request must use at least one byte");
        requests.push(args.to_vecs());
        let _ = input.split_to(used);
    }
    Ok(requests)
}

/// Bytes for bulk strings, with CR and LF over-represented because they are
/// what a RESP decoder might mistake for a delimiter.
pub fn bulk_bytes(max_len: usize) -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        6 => any::<u8>(),
        1 => Just(b'\r'),
        1 => Just(b'\n'),
    ];
    vec(byte, 0..max_len)
}

/// Text for status and error lines, which cannot carry CR or LF in RESP2.
pub fn line_text() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..24).prop_map(|mut text| {
        for b in &mut text {
            if *b == b'\r' || *b == b'\n' {
                *b = b' ';
            }
        }
        Bytes::from(text)
    })
}

pub fn integer() -> impl Strategy<Value = i64> {
    prop_oneof![
        4 => any::<i64>(),
        1 => prop_oneof![Just(0), Just(-1), Just(1), Just(i64::MIN), Just(i64::MAX)],
        2 => -1000i64..1000,
    ]
}

/// Any frame, at most 4 arrays deep and about 64 values in all.
pub fn frame() -> impl Strategy<Value = Frame> {
    let leaf = prop_oneof![
        line_text().prop_map(Frame::Simple),
        line_text().prop_map(Frame::Error),
        integer().prop_map(Frame::Integer),
        bulk_bytes(48).prop_map(|b| Frame::Bulk(Bytes::from(b))),
        Just(Frame::Null),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| vec(inner, 0..6).prop_map(Frame::Array))
}

/// Any frame RESP3 can carry (its own types too), at most 4 aggregates deep
/// and about 64 values in all.
pub fn resp3_frame() -> impl Strategy<Value = Frame> {
    let number_text = prop_oneof![
        any::<f64>().prop_map(|value| Frame::double(value).as_bytes().unwrap_or_default().to_vec()),
        "-?[0-9]{1,30}".prop_map(String::into_bytes),
    ];
    let leaf = prop_oneof![
        line_text().prop_map(Frame::Simple),
        line_text().prop_map(Frame::Error),
        integer().prop_map(Frame::Integer),
        bulk_bytes(48).prop_map(|b| Frame::Bulk(Bytes::from(b))),
        Just(Frame::Null),
        any::<f64>().prop_map(Frame::double),
        any::<bool>().prop_map(Frame::Boolean),
        number_text.prop_map(|text| Frame::BigNumber(Bytes::from(text))),
        (any::<[u8; 3]>(), bulk_bytes(32)).prop_map(|(format, text)| Frame::Verbatim {
            format,
            text: Bytes::from(text),
        }),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Frame::Array),
            vec(inner.clone(), 0..6).prop_map(Frame::Set),
            vec(inner.clone(), 0..6).prop_map(Frame::Push),
            vec((inner.clone(), inner), 0..4).prop_map(Frame::Map),
        ]
    })
}

/// What decoding `frame` gives after `protocol` encoded it: RESP3 keeps
/// every type; RESP2 and the native protocol send RESP3's types as Redis
/// sends them to a RESP2 client.
pub fn as_received(protocol: Protocol, frame: &Frame) -> Frame {
    match protocol {
        Protocol::Resp3 => frame.clone(),
        Protocol::Resp2 | Protocol::Native => frame.clone().into_resp2(),
    }
}

/// A request's arguments (possibly none).
pub fn request_args() -> impl Strategy<Value = Vec<Vec<u8>>> {
    vec(bulk_bytes(24), 0..6)
}
