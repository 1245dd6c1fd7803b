//! Encode → decode round trips for both protocols: whole frames, requests,
//! and (RESP2 only) inline command lines.

mod common;

use std::io::Write;

use bytes::{Bytes, BytesMut};
use common::*;
use keycafe_core::{Frame, Limits, Protocol, RequestParser};
use proptest::prelude::*;
use proptest::sample::select;

proptest! {
    #[test]
    fn frames_round_trip(frame in frame()) {
        for protocol in PROTOCOLS {
            let bytes = encode(protocol, &frame);
            let decoded = decode_once(protocol, &bytes, Limits::default()).unwrap();
            prop_assert_eq!(decoded, Some((frame.clone(), bytes.len())), "{:?}", protocol);
        }
    }

    /// RESP3 carries every type as it is; RESP2 and the native protocol
    /// carry what Redis sends a RESP2 client instead.
    #[test]
    fn resp3_frames_round_trip(frame in resp3_frame()) {
        for protocol in PROTOCOLS {
            let bytes = encode(protocol, &frame);
            let decoded = decode_once(protocol, &bytes, Limits::default()).unwrap();
            prop_assert_eq!(decoded, Some((as_received(protocol, &frame), bytes.len())), "{:?}", protocol);
        }
    }

    #[test]
    fn doubles_read_back_as_the_same_value(value in any::<f64>()) {
        let frame = Frame::double(value);
        let read = frame.as_f64().expect("a double's text parses");
        prop_assert!(read == value || (read.is_nan() && value.is_nan()), "{:?} for {}", frame, value);
        if value == 0.0 {
            prop_assert_eq!(read.is_sign_negative(), value.is_sign_negative());
        }
    }

    #[test]
    fn requests_round_trip(args in request_args()) {
        for protocol in PROTOCOLS {
            let bytes = encode_request(protocol, &args);
            let parsed = parse_once(protocol, &bytes, Limits::default()).unwrap();
            prop_assert_eq!(parsed, Some((args.clone(), bytes.len())), "{:?}", protocol);
            // A request is also an ordinary frame: an array of bulk strings.
            let decoded = decode_once(protocol, &bytes, Limits::default()).unwrap();
            prop_assert_eq!(decoded, Some((Frame::request(&args), bytes.len())));
            // And `encode_request` writes exactly what `encode_frame` does for it.
            prop_assert_eq!(&bytes, &encode(protocol, &Frame::request(&args)));
        }
    }

    #[test]
    fn inline_commands_round_trip(
        args in request_args(),
        separator in select(vec![" ", "\t", "   ", " \t "]),
        leading in select(vec!["", " ", "\t"]),
        line_end in select(vec!["\r\n", "\n"]),
    ) {
        let mut line = leading.as_bytes().to_vec();
        for (i, arg) in args.iter().enumerate() {
            if i > 0 {
                line.extend_from_slice(separator.as_bytes());
            }
            quote_inline(arg, &mut line);
        }
        line.extend_from_slice(line_end.as_bytes());
        let parsed = parse_once(Protocol::Resp2, &line, Limits::default()).unwrap();
        prop_assert_eq!(parsed, Some((args, line.len())), "line {:?}", String::from_utf8_lossy(&line));
    }

    /// RESP2 status and error lines cannot carry CR or LF: the encoder turns
    /// them into spaces, so the text cannot forge a second reply.
    #[test]
    fn resp_line_breaks_become_spaces(text in bulk_bytes(32), error in any::<bool>()) {
        let frame = if error {
            Frame::Error(Bytes::from(text.clone()))
        } else {
            Frame::Simple(Bytes::from(text.clone()))
        };
        let bytes = encode(Protocol::Resp2, &frame);
        let (decoded, used) = decode_once(Protocol::Resp2, &bytes, Limits::default())
            .unwrap()
            .expect("a whole frame");
        prop_assert_eq!(used, bytes.len());
        let spaced: Vec<u8> = text
            .iter()
            .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b })
            .collect();
        prop_assert_eq!(decoded.as_bytes(), Some(&spaced[..]));
        prop_assert_eq!(matches!(decoded, Frame::Error(_)), error);
    }
}

/// Writes `arg` as one inline argument: bare when it is plain, otherwise
/// double-quoted with escapes (mixing `\xhh`, `\xHH` and the C escapes).
fn quote_inline(arg: &[u8], out: &mut Vec<u8>) {
    let plain = |b: &u8| b.is_ascii_alphanumeric() || b":_.-{}".contains(b);
    if !arg.is_empty() && arg.iter().all(plain) {
        out.extend_from_slice(arg);
        return;
    }
    out.push(b'"');
    for &b in arg {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x20..=0x7e => out.push(b),
            _ if b % 2 == 0 => write!(out, "\\x{b:02x}").expect("writing to a Vec"),
            _ => write!(out, "\\x{b:02X}").expect("writing to a Vec"),
        }
    }
    out.push(b'"');
}

#[test]
fn resp_line_breaks_in_status_and_error() {
    let bytes = encode(Protocol::Resp2, &Frame::simple("two\r\nlines"));
    assert_eq!(bytes, b"+two  lines\r\n");
    let bytes = encode(Protocol::Resp2, &Frame::error("ERR bad\n+OK"));
    assert_eq!(bytes, b"-ERR bad +OK\r\n");
    // The native protocol is length-prefixed and carries them unchanged.
    let frame = Frame::error("ERR bad\r\n+OK");
    let bytes = encode(Protocol::Native, &frame);
    assert_eq!(
        decode_once(Protocol::Native, &bytes, Limits::default()).unwrap(),
        Some((frame, bytes.len()))
    );
}

#[test]
fn resp_encodings_are_the_standard_ones() {
    let cases: &[(Frame, &[u8])] = &[
        (Frame::ok(), b"+OK\r\n"),
        (
            Frame::error("ERR unknown command"),
            b"-ERR unknown command\r\n",
        ),
        (Frame::Integer(-42), b":-42\r\n"),
        (Frame::Integer(i64::MIN), b":-9223372036854775808\r\n"),
        (Frame::bulk("bar"), b"$3\r\nbar\r\n"),
        (Frame::bulk(""), b"$0\r\n\r\n"),
        (Frame::Null, b"$-1\r\n"),
        (Frame::Array(vec![]), b"*0\r\n"),
        (
            Frame::Array(vec![
                Frame::bulk("a"),
                Frame::Null,
                Frame::Array(vec![Frame::Integer(1)]),
            ]),
            b"*3\r\n$1\r\na\r\n$-1\r\n*1\r\n:1\r\n",
        ),
        (
            Frame::request(["GET", "k"]),
            b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
        ),
    ];
    for (frame, bytes) in cases {
        assert_eq!(encode(Protocol::Resp2, frame), *bytes, "{frame:?}");
        let decoded = decode_once(Protocol::Resp2, bytes, Limits::default()).unwrap();
        assert_eq!(decoded, Some((frame.clone(), bytes.len())));
    }
    // RESP2's null array decodes to the same null as the null bulk.
    assert_eq!(
        decode_once(Protocol::Resp2, b"*-1\r\n", Limits::default()).unwrap(),
        Some((Frame::Null, 5))
    );
}

#[test]
fn parser_reuses_its_buffers_across_protocols_and_requests() {
    // One parser, alternating protocols and request shapes: nothing from an
    // earlier request leaks into the next one's arguments.
    let mut parser = RequestParser::new(Limits::default());
    let mut input = BytesMut::new();
    input.extend_from_slice(b"SET \"a b\" c\r\n*1\r\n$4\r\nPING\r\n\r\nGET x\n");
    let requests = parse_all(&mut parser, Protocol::Resp2, &mut input).unwrap();
    assert_eq!(
        requests,
        vec![
            vec![b"SET".to_vec(), b"a b".to_vec(), b"c".to_vec()],
            vec![b"PING".to_vec()],
            vec![],
            vec![b"GET".to_vec(), b"x".to_vec()],
        ]
    );
    assert!(input.is_empty());

    let mut input = BytesMut::from(&encode_request(Protocol::Native, &[b"ECHO".to_vec()])[..]);
    let requests = parse_all(&mut parser, Protocol::Native, &mut input).unwrap();
    assert_eq!(requests, vec![vec![b"ECHO".to_vec()]]);
}
