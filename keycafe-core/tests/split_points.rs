//! A frame or a pipeline of requests gives the same result however the bytes
//! are cut into reads: byte by byte, or in two chunks split at any point.
//! Until a frame is complete the decoders answer `Ok(None)` and consume
//! nothing.

mod common;

use bytes::BytesMut;
use common::*;
use keycafe_core::{Frame, Limits, Protocol, RequestParser};
use proptest::collection::vec;
use proptest::prelude::*;

/// One request of a RESP2 pipeline: either a multibulk array or an inline line.
#[derive(Debug, Clone)]
enum RespRequest {
    Multibulk(Vec<Vec<u8>>),
    /// Plain words, sent as `word word\r\n`.
    Inline(Vec<String>),
}

fn resp_request() -> impl Strategy<Value = RespRequest> {
    prop_oneof![
        3 => request_args().prop_map(RespRequest::Multibulk),
        1 => vec("[a-zA-Z0-9:]{1,6}", 0..4).prop_map(RespRequest::Inline),
    ]
}

fn resp_pipeline(requests: &[RespRequest]) -> (Vec<u8>, Vec<Vec<Vec<u8>>>) {
    let mut bytes = BytesMut::new();
    let mut expected = Vec::new();
    for request in requests {
        match request {
            RespRequest::Multibulk(args) => {
                Protocol::Resp2.encode_request(args, &mut bytes);
                expected.push(args.clone());
            }
            RespRequest::Inline(words) => {
                bytes.extend_from_slice(words.join(" ").as_bytes());
                bytes.extend_from_slice(b"\r\n");
                expected.push(words.iter().map(|w| w.as_bytes().to_vec()).collect());
            }
        }
    }
    (bytes.to_vec(), expected)
}

/// Feeds `input` to one parser in the given chunks, parsing after each.
fn parse_in_chunks<'a>(
    protocol: Protocol,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> (Vec<Vec<Vec<u8>>>, usize) {
    let mut parser = RequestParser::new(Limits::default());
    let mut buf = BytesMut::new();
    let mut requests = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        requests.extend(parse_all(&mut parser, protocol, &mut buf).expect("valid input"));
    }
    (requests, buf.len())
}

fn check_every_split(protocol: Protocol, bytes: &[u8], expected: &[Vec<Vec<u8>>]) {
    let (byte_by_byte, left) = parse_in_chunks(protocol, bytes.chunks(1));
    assert_eq!(byte_by_byte, expected, "{protocol:?} byte by byte");
    assert_eq!(left, 0);
    for split in 0..=bytes.len() {
        let (head, tail) = bytes.split_at(split);
        let (requests, left) = parse_in_chunks(protocol, [head, tail]);
        assert_eq!(requests, expected, "{protocol:?} split at {split}");
        assert_eq!(left, 0);
    }
}

/// Every strict prefix of `frame` in `protocol` is incomplete, and the
/// frame decodes exactly when its last byte arrives.
fn check_frame_splits(protocol: Protocol, frame: &Frame) -> Result<(), TestCaseError> {
    let bytes = encode(protocol, frame);
    // Every strict prefix is incomplete, consumes nothing (checked by
    // `decode_once`) and is not an error.
    for end in 0..bytes.len() {
        prop_assert_eq!(
            decode_once(protocol, &bytes[..end], Limits::default()),
            Ok(None),
            "{:?} prefix of {} bytes",
            protocol,
            end
        );
    }
    // Growing one buffer a byte at a time yields the frame exactly
    // when its last byte arrives.
    let mut buf = BytesMut::new();
    let mut decoded = None;
    for (i, &byte) in bytes.iter().enumerate() {
        buf.extend_from_slice(&[byte]);
        let before = buf.clone();
        match protocol.decode_frame(&mut buf, &Limits::default()).unwrap() {
            Some(frame) => {
                prop_assert_eq!(i, bytes.len() - 1);
                decoded = Some(frame);
            }
            None => prop_assert_eq!(&buf, &before),
        }
    }
    prop_assert_eq!(decoded.as_ref(), Some(frame));
    prop_assert!(buf.is_empty());
    Ok(())
}

proptest! {
    #[test]
    fn frame_decodes_the_same_at_every_split(frame in frame()) {
        for protocol in PROTOCOLS {
            check_frame_splits(protocol, &frame)?;
        }
    }

    #[test]
    fn resp3_frame_decodes_the_same_at_every_split(frame in resp3_frame()) {
        check_frame_splits(Protocol::Resp3, &frame)?;
    }

    #[test]
    fn request_prefixes_are_incomplete(args in request_args()) {
        for protocol in PROTOCOLS {
            let bytes = encode_request(protocol, &args);
            for end in 0..bytes.len() {
                prop_assert_eq!(
                    parse_once(protocol, &bytes[..end], Limits::default()),
                    Ok(None),
                    "{:?} prefix of {} bytes", protocol, end
                );
            }
        }
    }

    #[test]
    fn native_pipeline_splits(requests in vec(request_args(), 1..5)) {
        let mut bytes = BytesMut::new();
        for args in &requests {
            Protocol::Native.encode_request(args, &mut bytes);
        }
        check_every_split(Protocol::Native, &bytes, &requests);
    }

    #[test]
    fn resp_pipeline_splits(requests in vec(resp_request(), 1..5)) {
        let (bytes, expected) = resp_pipeline(&requests);
        check_every_split(Protocol::Resp2, &bytes, &expected);
    }

    #[test]
    fn pipelined_frames_decode_in_order(frames in vec(frame(), 1..4)) {
        for protocol in PROTOCOLS {
            let mut bytes = BytesMut::new();
            for frame in &frames {
                protocol.encode_frame(frame, &mut bytes);
            }
            let all = bytes.clone();
            for split in 0..=all.len() {
                let mut buf = BytesMut::from(&all[..split]);
                let mut decoded = Vec::new();
                while let Some(frame) = protocol.decode_frame(&mut buf, &Limits::default()).unwrap() {
                    decoded.push(frame);
                }
                buf.extend_from_slice(&all[split..]);
                while let Some(frame) = protocol.decode_frame(&mut buf, &Limits::default()).unwrap() {
                    decoded.push(frame);
                }
                prop_assert_eq!(&decoded, &frames, "{:?} split at {}", protocol, split);
                prop_assert!(buf.is_empty());
            }
        }
    }
}

#[test]
fn thousand_pipelined_requests_in_one_buffer() {
    for protocol in PROTOCOLS {
        let mut bytes = BytesMut::new();
        let expected: Vec<Vec<Vec<u8>>> = (0..1000)
            .map(|i| {
                vec![
                    b"SET".to_vec(),
                    format!("key:{i}").into_bytes(),
                    vec![b'v'; i % 7],
                ]
            })
            .collect();
        for args in &expected {
            protocol.encode_request(args, &mut bytes);
        }
        let mut parser = RequestParser::new(Limits::default());
        let requests = parse_all(&mut parser, protocol, &mut bytes).unwrap();
        assert_eq!(requests, expected, "{protocol:?}");
        assert!(bytes.is_empty());
    }
}
