//! The [`Reply`] writer produces exactly the bytes `encode_frame` produces for
//! the same value, in every protocol (RESP3's types included), and can be
//! reset or left empty, as a whole or one element at a time.

mod common;

use bytes::{Bytes, BytesMut};
use common::*;
use keycafe_core::{Frame, Limits, Protocol, Reply};
use proptest::prelude::*;

/// Bytes already in the output buffer from an earlier reply.
const EARLIER: &[u8] = b"earlier reply";

fn written(protocol: Protocol, write: impl FnOnce(&mut Reply<'_>)) -> Vec<u8> {
    let mut out = BytesMut::from(EARLIER);
    let mut reply = Reply::start(protocol, &mut out);
    write(&mut reply);
    assert!(reply.finish(), "something was written");
    assert_eq!(
        &out[..EARLIER.len()],
        EARLIER,
        "earlier replies are untouched"
    );
    out[EARLIER.len()..].to_vec()
}

#[test]
fn each_method_matches_encode_frame() {
    type Write = fn(&mut Reply<'_>);
    #[rustfmt::skip]
    let cases: Vec<(Frame, Write)> = vec![
        (Frame::ok(), |r| r.ok()),
        (Frame::simple("PONG"), |r| r.simple(b"PONG")),
        (Frame::error("ERR syntax error"), |r| r.error("ERR syntax error")),
        (Frame::error("MOVED 3999 127.0.0.1:9815"), |r| r.error("MOVED 3999 127.0.0.1:9815")),
        (Frame::Integer(0), |r| r.integer(0)),
        (Frame::Integer(-7), |r| r.integer(-7)),
        (Frame::Integer(i64::MIN), |r| r.integer(i64::MIN)),
        (Frame::bulk("bar"), |r| r.bulk(b"bar")),
        (Frame::bulk(""), |r| r.bulk(b"")),
        (Frame::bulk(&b"\r\n\0\xff"[..]), |r| r.bulk(b"\r\n\0\xff")),
        (Frame::bulk("x"), |r| r.optional_bulk(Some(b"x"))),
        (Frame::Null, |r| r.optional_bulk(None)),
        (Frame::Null, |r| r.null()),
        (Frame::Array(vec![]), |r| r.array(0)),
        (
            Frame::Array(vec![
                Frame::bulk("a"),
                Frame::Null,
                Frame::Integer(3),
                Frame::Array(vec![Frame::ok(), Frame::error("ERR nested")]),
            ]),
            |r| {
                r.array(4);
                r.bulk(b"a");
                r.null();
                r.integer(3);
                r.array(2);
                r.ok();
                r.error("ERR nested");
            },
        ),
    ];
    for protocol in PROTOCOLS {
        for (frame, write) in &cases {
            assert_eq!(
                written(protocol, write),
                encode(protocol, frame),
                "{protocol:?} {frame:?}"
            );
        }
    }
}

#[test]
fn resp3_methods_match_encode_frame() {
    type Write = fn(&mut Reply<'_>);
    #[rustfmt::skip]
    let cases: Vec<(Frame, Write)> = vec![
        (Frame::Map(vec![]), |r| r.map(0)),
        (
            Frame::Map(vec![
                (Frame::bulk("maxmemory"), Frame::bulk("0")),
                (Frame::bulk("modules"), Frame::Array(vec![])),
            ]),
            |r| {
                r.map(2);
                r.bulk(b"maxmemory");
                r.bulk(b"0");
                r.bulk(b"modules");
                r.array(0);
            },
        ),
        (Frame::Set(vec![Frame::simple("readonly"), Frame::simple("fast")]), |r| {
            r.set(2);
            r.simple(b"readonly");
            r.simple(b"fast");
        }),
        (Frame::Push(vec![Frame::bulk("message")]), |r| {
            r.push(1);
            r.bulk(b"message");
        }),
        (Frame::double(1.5), |r| r.double(1.5)),
        (Frame::double(f64::NEG_INFINITY), |r| r.double(f64::NEG_INFINITY)),
        (Frame::Boolean(true), |r| r.boolean(true)),
        (Frame::Boolean(false), |r| r.boolean(false)),
        (Frame::Verbatim { format: *b"txt", text: Bytes::from_static(b"a:1\r\n") }, |r| {
            r.verbatim(b"txt", b"a:1\r\n")
        }),
    ];
    for protocol in PROTOCOLS {
        for (frame, write) in &cases {
            assert_eq!(
                written(protocol, write),
                encode(protocol, frame),
                "{protocol:?} {frame:?}"
            );
        }
    }
}

/// The exact bytes of each RESP3 type, as redis-server 7 sends them, and
/// what a RESP2 client gets in its place.
#[test]
fn resp3_types_on_the_wire() {
    type Write = fn(&mut Reply<'_>);
    #[rustfmt::skip]
    let cases: &[(Write, &[u8], &[u8])] = &[
        (|r| r.null(), b"$-1\r\n", b"_\r\n"),
        (|r| r.null_array(), b"*-1\r\n", b"_\r\n"),
        (|r| { r.map(1); r.bulk(b"k"); r.integer(1); }, b"*2\r\n$1\r\nk\r\n:1\r\n", b"%1\r\n$1\r\nk\r\n:1\r\n"),
        (|r| { r.set(1); r.simple(b"fast"); }, b"*1\r\n+fast\r\n", b"~1\r\n+fast\r\n"),
        (|r| { r.push(1); r.integer(1); }, b"*1\r\n:1\r\n", b">1\r\n:1\r\n"),
        (|r| r.double(1.5), b"$3\r\n1.5\r\n", b",1.5\r\n"),
        (|r| r.double(-0.0), b"$2\r\n-0\r\n", b",-0\r\n"),
        (|r| r.double(f64::INFINITY), b"$3\r\ninf\r\n", b",inf\r\n"),
        (|r| r.double(f64::NAN), b"$3\r\nnan\r\n", b",nan\r\n"),
        (|r| r.double(3.0), b"$1\r\n3\r\n", b",3\r\n"),
        (|r| r.boolean(true), b":1\r\n", b"#t\r\n"),
        (|r| r.boolean(false), b":0\r\n", b"#f\r\n"),
        (|r| r.verbatim(b"txt", b"# Keyspace\r\n"), b"$12\r\n# Keyspace\r\n\r\n", b"=16\r\ntxt:# Keyspace\r\n\r\n"),
    ];
    for (write, resp2, resp3) in cases {
        assert_eq!(written(Protocol::Resp2, write), *resp2);
        assert_eq!(written(Protocol::Resp3, write), *resp3);
    }
    // The native protocol has none of these types: a null array is its null.
    assert_eq!(
        written(Protocol::Native, |r| r.null_array()),
        encode(Protocol::Native, &Frame::Null)
    );
}

#[test]
fn a_reply_switches_between_resp_versions_only() {
    let mut out = BytesMut::new();
    let mut reply = Reply::start(Protocol::Resp2, &mut out);
    reply.switch_resp(Protocol::Resp3);
    assert_eq!(reply.protocol(), Protocol::Resp3);
    reply.null();
    assert!(reply.finish());
    assert_eq!(&out[..], b"_\r\n");

    let mut native = Reply::start(Protocol::Native, &mut out);
    native.switch_resp(Protocol::Resp3);
    assert_eq!(native.protocol(), Protocol::Native);
    let mut resp = Reply::start(Protocol::Resp3, &mut out);
    resp.switch_resp(Protocol::Native);
    assert_eq!(resp.protocol(), Protocol::Resp3);
}

/// Each element of an array written through [`Reply::element`] can be
/// dropped on its own (one of EXEC's replies turning into an error), and
/// the whole is exactly the array written directly.
#[test]
fn elements_reset_on_their_own() {
    for protocol in PROTOCOLS {
        let bytes = written(protocol, |r| {
            r.array(3);
            let mut first = r.element();
            first.bulk(b"a");
            assert!(first.finish());
            let mut second = r.element();
            second.array(2);
            second.integer(1);
            second.reset();
            second.error("ERR second changed its mind");
            assert!(second.finish());
            let mut third = r.element();
            third.map(1);
            third.bulk(b"k");
            third.null();
            assert!(third.finish());
            // An element that writes nothing adds nothing, not even a prefix.
            assert!(!r.element().finish());
        });
        let expected = Frame::Array(vec![
            Frame::bulk("a"),
            Frame::error("ERR second changed its mind"),
            Frame::Map(vec![(Frame::bulk("k"), Frame::Null)]),
        ]);
        assert_eq!(bytes, encode(protocol, &expected), "{protocol:?}");
        assert_eq!(
            decode_once(protocol, &bytes, Limits::default()),
            Ok(Some((as_received(protocol, &expected), bytes.len())))
        );
    }
}

proptest! {
    #[test]
    fn reply_frame_matches_encode_frame(frame in resp3_frame()) {
        for protocol in PROTOCOLS {
            prop_assert_eq!(written(protocol, |r| r.frame(&frame)), encode(protocol, &frame));
        }
    }

    #[test]
    fn line_breaks_in_errors_match_too(text in bulk_bytes(16)) {
        let text = String::from_utf8_lossy(&text).into_owned();
        for protocol in PROTOCOLS {
            let frame = Frame::Error(Bytes::from(text.clone()));
            prop_assert_eq!(written(protocol, |r| r.error(&text)), encode(protocol, &frame));
        }
    }
}

#[test]
fn reset_discards_a_half_written_reply() {
    for protocol in PROTOCOLS {
        let bytes = written(protocol, |r| {
            r.array(3);
            r.bulk(b"a");
            r.reset();
            r.error("ERR changed my mind");
        });
        assert_eq!(
            bytes,
            encode(protocol, &Frame::error("ERR changed my mind")),
            "{protocol:?}"
        );
    }
}

#[test]
fn finish_with_nothing_written_leaves_the_buffer_unchanged() {
    for protocol in PROTOCOLS {
        let mut out = BytesMut::from(EARLIER);
        assert!(!Reply::start(protocol, &mut out).finish(), "{protocol:?}");
        assert_eq!(&out[..], EARLIER, "{protocol:?}");

        // Also after writing something and resetting it.
        let mut reply = Reply::start(protocol, &mut out);
        reply.bulk(b"discarded");
        reply.reset();
        assert!(!reply.finish(), "{protocol:?}");
        assert_eq!(&out[..], EARLIER, "{protocol:?}");
    }
}

#[test]
fn native_length_prefix_counts_the_body() {
    let mut out = BytesMut::new();
    let mut reply = Reply::start(Protocol::Native, &mut out);
    assert_eq!(reply.protocol(), Protocol::Native);
    reply.array(2);
    reply.bulk(b"hello");
    reply.integer(1);
    assert!(reply.finish());
    // tag + count, tag + length + "hello", tag + i64.
    let body_len = 5 + (5 + 5) + 9;
    assert_eq!(out[..4], (body_len as u32).to_be_bytes());
    assert_eq!(out.len(), 4 + body_len);
}

#[test]
fn replies_in_one_buffer_decode_in_order() {
    for protocol in PROTOCOLS {
        let mut out = BytesMut::new();
        let frames = [
            Frame::ok(),
            Frame::bulk("v"),
            Frame::Null,
            Frame::Integer(2),
        ];
        for frame in &frames {
            let mut reply = Reply::start(protocol, &mut out);
            reply.frame(frame);
            reply.finish();
        }
        // An empty reply in between adds nothing.
        Reply::start(protocol, &mut out).finish();
        for frame in &frames {
            assert_eq!(
                protocol.decode_frame(&mut out, &Limits::default()),
                Ok(Some(frame.clone()))
            );
        }
        assert!(out.is_empty(), "{protocol:?}");
    }
}
