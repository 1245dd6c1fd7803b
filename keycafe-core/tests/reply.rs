//! The [`Reply`] writer produces exactly the bytes `encode_frame` produces for
//! the same value, in both protocols, and can be reset or left empty.

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

proptest! {
    #[test]
    fn reply_frame_matches_encode_frame(frame in frame()) {
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
