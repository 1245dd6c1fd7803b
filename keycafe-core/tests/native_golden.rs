//! Exact byte layouts of native frames. These are the hex examples of
//! `docs/protocol.md`; `examples_appear_in_the_protocol_doc` keeps the
//! document and the encoder from drifting apart.

mod common;

use bytes::BytesMut;
use common::*;
use keycafe_core::{Frame, Limits, Protocol, native};

/// Frames and their bytes, fields separated by two spaces as in the doc.
fn golden() -> Vec<(&'static str, Frame, &'static str)> {
    #[rustfmt::skip]
    let golden = vec![
        ("PING request", Frame::request(["PING"]),
            "00 00 00 0e  2a 00 00 00 01  24 00 00 00 04 50 49 4e 47"),
        ("PONG reply", Frame::simple("PONG"),
            "00 00 00 09  2b 00 00 00 04 50 4f 4e 47"),
        ("SET foo bar request", Frame::request(["SET", "foo", "bar"]),
            "00 00 00 1d  2a 00 00 00 03  24 00 00 00 03 53 45 54  24 00 00 00 03 66 6f 6f  24 00 00 00 03 62 61 72"),
        ("OK reply", Frame::ok(),
            "00 00 00 07  2b 00 00 00 02 4f 4b"),
        ("GET foo request", Frame::request(["GET", "foo"]),
            "00 00 00 15  2a 00 00 00 02  24 00 00 00 03 47 45 54  24 00 00 00 03 66 6f 6f"),
        ("bulk reply", Frame::bulk("bar"),
            "00 00 00 08  24 00 00 00 03 62 61 72"),
        ("null reply", Frame::Null,
            "00 00 00 01  5f"),
        ("integer reply 42", Frame::Integer(42),
            "00 00 00 09  3a 00 00 00 00 00 00 00 2a"),
        ("integer reply -2", Frame::Integer(-2),
            "00 00 00 09  3a ff ff ff ff ff ff ff fe"),
        ("array reply", Frame::Array(vec![Frame::bulk("bar"), Frame::Null]),
            "00 00 00 0e  2a 00 00 00 02  24 00 00 00 03 62 61 72  5f"),
        ("empty array", Frame::Array(vec![]),
            "00 00 00 05  2a 00 00 00 00"),
        ("error reply", Frame::error("ERR syntax error"),
            "00 00 00 15  2d 00 00 00 10 45 52 52 20 73 79 6e 74 61 78 20 65 72 72 6f 72"),
        ("redirect", Frame::error("MOVED 12182 127.0.0.1:9815"),
            "00 00 00 1f  2d 00 00 00 1a 4d 4f 56 45 44 20 31 32 31 38 32 20 31 32 37 2e 30 2e 30 2e 31 3a 39 38 31 35"),
    ];
    golden
}

const HELLO: &str = "ca fe 4b 43  00 01";

#[test]
fn frames_have_their_documented_bytes() {
    for (name, frame, layout) in golden() {
        let bytes = hex(layout);
        assert_eq!(encode(Protocol::Native, &frame), bytes, "{name}");
        assert_eq!(
            decode_once(Protocol::Native, &bytes, Limits::default()),
            Ok(Some((frame.clone(), bytes.len()))),
            "{name}"
        );
        // Requests also go through `encode_request` and the request parser.
        if let Frame::Array(items) = &frame
            && items.iter().all(|item| matches!(item, Frame::Bulk(_)))
        {
            let args: Vec<Vec<u8>> = items
                .iter()
                .filter_map(|item| item.as_bytes().map(<[u8]>::to_vec))
                .collect();
            assert_eq!(encode_request(Protocol::Native, &args), bytes, "{name}");
            assert_eq!(
                parse_once(Protocol::Native, &bytes, Limits::default()),
                Ok(Some((args, bytes.len()))),
                "{name}"
            );
        }
    }
}

#[test]
fn hello_has_its_documented_bytes() {
    let mut out = BytesMut::new();
    native::encode_hello(native::VERSION, &mut out);
    assert_eq!(&out[..], hex(HELLO));
    assert_eq!(native::decode_hello(&hex(HELLO)), Ok(Some(1)));
    assert_eq!(native::decode_hello(&hex("ca fe 4b 43 00 02")), Ok(Some(2)));
    assert_eq!(native::decode_hello(&hex("ca fe 4b")), Ok(None));
    assert_eq!(
        native::decode_hello(b"*1\r\n$4\r\nPING\r\n"),
        Err(keycafe_core::ProtocolError::BadMagic)
    );
    assert_eq!(
        native::decode_hello(&hex("ca fe 00")),
        Err(keycafe_core::ProtocolError::BadMagic)
    );
}

#[test]
fn the_first_byte_picks_the_protocol() {
    assert_eq!(Protocol::detect(0xca), Protocol::Native);
    // Whatever a RESP client can start with: a multibulk, or an inline
    // command's first letter, digit or whitespace.
    for byte in (0x20..=0x7e).chain([b'\t', b'\r', b'\n']) {
        assert_eq!(Protocol::detect(byte), Protocol::Resp2, "{byte:#04x}");
    }
}

/// Lowercase hex bytes separated by single spaces.
fn normalized(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

#[test]
fn examples_appear_in_the_protocol_doc() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md");
    let doc = std::fs::read_to_string(path).expect("docs/protocol.md exists");
    let doc = normalized(&doc);
    let examples = golden().into_iter().map(|(name, _, layout)| (name, layout));
    for (name, layout) in examples.chain([("hello", HELLO)]) {
        assert!(
            doc.contains(&normalized(layout)),
            "docs/protocol.md lacks the {name} example: {layout}"
        );
    }
}
