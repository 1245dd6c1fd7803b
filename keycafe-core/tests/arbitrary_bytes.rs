//! Whatever bytes a peer sends, the decoders never panic, and what they do
//! accept is consistent: a parsed request or frame is delimited by its own
//! bytes, every strict prefix of it is merely incomplete, and a decoded frame
//! re-encodes to something that decodes to the same frame.
//!
//! Purely random bytes rarely get past the first length field, so most inputs
//! here are valid encodings with a few bytes changed, inserted or removed.

mod common;

use bytes::BytesMut;
use common::*;
use keycafe_core::{Frame, Limits, Protocol, native};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{Index, select};

/// Bytes that mean something to one of the decoders.
const INTERESTING: &[u8] = b"*$+-:_%~,#=!(>tf\r\n0123456789 \t\"'\\x\x00\x01\x7f\xca\xff";

fn byte() -> impl Strategy<Value = u8> {
    prop_oneof![3 => select(INTERESTING), 1 => any::<u8>()]
}

#[derive(Debug, Clone)]
enum Mutation {
    Set(Index, u8),
    Insert(Index, u8),
    Remove(Index),
    Truncate(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<Index>(), byte()).prop_map(|(at, b)| Mutation::Set(at, b)),
        2 => (any::<Index>(), byte()).prop_map(|(at, b)| Mutation::Insert(at, b)),
        2 => any::<Index>().prop_map(Mutation::Remove),
        1 => any::<Index>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(bytes: &mut Vec<u8>, mutations: &[Mutation]) {
    for mutation in mutations {
        if bytes.is_empty() {
            return;
        }
        let len = bytes.len();
        match mutation {
            Mutation::Set(at, b) => bytes[at.index(len)] = *b,
            Mutation::Insert(at, b) => bytes.insert(at.index(len + 1), *b),
            Mutation::Remove(at) => {
                bytes.remove(at.index(len));
            }
            Mutation::Truncate(at) => bytes.truncate(at.index(len)),
        }
    }
}

/// A valid frame or request in `protocol`, then damaged.
fn mutated(protocol: Protocol) -> impl Strategy<Value = Vec<u8>> {
    let valid = prop_oneof![
        frame().prop_map(move |f| encode(protocol, &f)),
        request_args().prop_map(move |a| encode_request(protocol, &a)),
    ];
    (valid, vec(mutation(), 1..4)).prop_map(|(mut bytes, mutations)| {
        mutate(&mut bytes, &mutations);
        bytes
    })
}

/// Native frames whose length prefix is right but whose body is random.
fn native_random_body() -> impl Strategy<Value = Vec<u8>> {
    let body_byte = prop_oneof![
        2 => select(&b"*$+-:_\x00\x01\x02\xff"[..]),
        1 => any::<u8>(),
    ];
    vec(body_byte, 0..64).prop_map(|body| {
        let mut bytes = (body.len() as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(&body);
        bytes
    })
}

fn input(protocol: Protocol) -> BoxedStrategy<Vec<u8>> {
    match protocol {
        Protocol::Resp2 => prop_oneof![
            1 => vec(any::<u8>(), 0..64),
            3 => vec(byte(), 0..96),
            6 => mutated(Protocol::Resp2),
        ]
        .boxed(),
        Protocol::Resp3 => prop_oneof![
            1 => vec(byte(), 0..96),
            6 => resp3_frame().prop_map(|f| encode(Protocol::Resp3, &f)),
            9 => (resp3_frame(), vec(mutation(), 1..4)).prop_map(|(frame, mutations)| {
                let mut bytes = encode(Protocol::Resp3, &frame);
                mutate(&mut bytes, &mutations);
                bytes
            }),
        ]
        .boxed(),
        Protocol::Native => prop_oneof![
            1 => vec(any::<u8>(), 0..64),
            3 => native_random_body(),
            6 => mutated(Protocol::Native),
        ]
        .boxed(),
    }
}

fn check_requests(protocol: Protocol, bytes: &[u8], limits: Limits) -> Result<(), TestCaseError> {
    let Ok(Some((args, used))) = parse_once(protocol, bytes, limits) else {
        return Ok(());
    };
    prop_assert!(used > 0 && used <= bytes.len());
    prop_assert!(args.len() <= limits.max_args);
    // Inline arguments are bounded by the line, everything else by the bulk limit.
    let inline = protocol.is_resp() && bytes[0] != b'*';
    let max_arg = if inline {
        limits.max_inline_len
    } else {
        limits.max_bulk_len
    };
    prop_assert!(args.iter().all(|arg| arg.len() <= max_arg));
    prop_assert_eq!(
        parse_once(protocol, &bytes[..used], limits),
        Ok(Some((args, used)))
    );
    for end in 0..used {
        prop_assert_eq!(
            parse_once(protocol, &bytes[..end], limits),
            Ok(None),
            "prefix {}",
            end
        );
    }
    Ok(())
}

fn check_frames(protocol: Protocol, bytes: &[u8], limits: Limits) -> Result<(), TestCaseError> {
    let Ok(Some((frame, used))) = decode_once(protocol, bytes, limits) else {
        return Ok(());
    };
    prop_assert!(used > 0 && used <= bytes.len());
    prop_assert_eq!(
        decode_once(protocol, &bytes[..used], limits),
        Ok(Some((frame.clone(), used)))
    );
    for end in 0..used {
        prop_assert_eq!(
            decode_once(protocol, &bytes[..end], limits),
            Ok(None),
            "prefix {}",
            end
        );
    }
    let again = encode(protocol, &frame);
    if protocol == Protocol::Native {
        // Every field has one encoding, so a frame has exactly one.
        prop_assert_eq!(&again[..], &bytes[..used]);
    }
    // (The RESP decoder reads RESP3's types whichever version the
    // connection is in; written back in RESP2, they become RESP2's, and a
    // blob error's CR and LF become spaces on its one line.)
    prop_assert_eq!(
        decode_once(protocol, &again, Limits::default()),
        Ok(Some((
            one_line(protocol, as_received(protocol, &frame)),
            again.len()
        )))
    );
    Ok(())
}

/// `frame` as a RESP encoder writes it: status and error text on one
/// line, CR and LF replaced by spaces (the native protocol keeps them).
fn one_line(protocol: Protocol, frame: Frame) -> Frame {
    let line = |text: bytes::Bytes| -> bytes::Bytes {
        let spaced = text
            .iter()
            .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b });
        spaced.collect::<Vec<u8>>().into()
    };
    match (protocol.is_resp(), frame) {
        (false, frame) => frame,
        (true, Frame::Simple(text)) => Frame::Simple(line(text)),
        (true, Frame::Error(text)) => Frame::Error(line(text)),
        (true, Frame::Array(items)) => {
            Frame::Array(items.into_iter().map(|f| one_line(protocol, f)).collect())
        }
        (true, Frame::Set(items)) => {
            Frame::Set(items.into_iter().map(|f| one_line(protocol, f)).collect())
        }
        (true, Frame::Push(items)) => {
            Frame::Push(items.into_iter().map(|f| one_line(protocol, f)).collect())
        }
        (true, Frame::Map(pairs)) => Frame::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (one_line(protocol, k), one_line(protocol, v)))
                .collect(),
        ),
        (true, other) => other,
    }
}

fn check_all(protocol: Protocol, bytes: &[u8]) -> Result<(), TestCaseError> {
    for limits in [Limits::default(), TINY] {
        check_requests(protocol, bytes, limits)?;
        check_frames(protocol, bytes, limits)?;
    }
    Ok(())
}

proptest! {
    #[test]
    fn resp_never_panics(bytes in input(Protocol::Resp2)) {
        check_all(Protocol::Resp2, &bytes)?;
    }

    #[test]
    fn resp3_never_panics(bytes in input(Protocol::Resp3)) {
        check_all(Protocol::Resp3, &bytes)?;
    }

    #[test]
    fn native_never_panics(bytes in input(Protocol::Native)) {
        check_all(Protocol::Native, &bytes)?;
    }

    #[test]
    fn hello_never_panics(bytes in vec(any::<u8>(), 0..8), magic_len in 0usize..=4) {
        // Half of the inputs start with (part of) the magic.
        let mut input = native::MAGIC[..magic_len].to_vec();
        input.extend_from_slice(&bytes);
        let decoded = native::decode_hello(&input);
        if input.len() >= native::HELLO_LEN && input[..4] == native::MAGIC {
            prop_assert_eq!(decoded, Ok(Some(u16::from_be_bytes([input[4], input[5]]))));
        } else if input.len() < native::HELLO_LEN && native::MAGIC.starts_with(&input[..input.len().min(4)]) {
            prop_assert_eq!(decoded, Ok(None));
        } else {
            prop_assert!(decoded.is_err());
        }
    }
}

/// Regression: a CR inside a RESP status line made the completeness check and
/// the parser disagree on where the line ends. The parser then read a length
/// out of the status text and tried to allocate a 4 TB array (abort), or
/// tripped a debug assertion.
#[test]
fn resp_status_with_bare_cr_is_an_error() {
    let inputs: [&[u8]; 4] = [
        b"+a\rb\r\n",
        b"-ERR a\rb\r\n",
        b"*2\r\n+x\rA*99999999999\r\n:1\r\n",
        b"+OK\n",
    ];
    for input in inputs {
        let mut buf = BytesMut::from(input);
        assert!(
            Protocol::Resp2
                .decode_frame(&mut buf, &Limits::default())
                .is_err(),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
    // A CR that is the last byte so far may still be followed by LF.
    assert_eq!(
        decode_once(Protocol::Resp2, b"+OK\r", Limits::default()),
        Ok(None)
    );
    assert_eq!(
        decode_once(Protocol::Resp2, b"+OK\r\n", Limits::default()),
        Ok(Some((Frame::ok(), 5)))
    );
}
