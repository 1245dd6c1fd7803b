//! Parse work is linear in the request, however it is split into reads: a
//! request that has not fully arrived is not re-read from its start each
//! time more of it comes. Counted with `RequestParser::bytes_examined`, not
//! timed.

use bytes::BytesMut;
use keycafe_core::{Limits, Protocol, RequestParser};

/// Feeds `request` to one parser `chunk` bytes at a time, parsing after
/// each, as a connection does. Returns the arguments parsed and the work.
fn trickle(protocol: Protocol, request: &[u8], chunk: usize) -> (usize, u64) {
    let limits = Limits {
        max_args: 2_000_000,
        ..Limits::default()
    };
    let mut parser = RequestParser::new(limits);
    let mut buf = BytesMut::new();
    let mut args = 0;
    for piece in request.chunks(chunk) {
        buf.extend_from_slice(piece);
        if let Some((parsed, used)) = parser.parse(protocol, &buf).expect("a valid request") {
            args = parsed.len();
            let _ = buf.split_to(used);
        }
    }
    assert!(buf.is_empty(), "the whole request was used");
    (args, parser.bytes_examined())
}

#[test]
fn a_huge_multibulk_request_in_small_pieces_costs_its_size() {
    let count = 200_000;
    let args: Vec<String> = (0..count).map(|i| format!("m{i}")).collect();
    let mut request = BytesMut::new();
    Protocol::Resp2.encode_request(&args, &mut request);
    let size = request.len() as u64;

    let (parsed, at_once) = trickle(Protocol::Resp2, &request, request.len());
    assert_eq!(parsed, count);
    let (parsed, trickled) = trickle(Protocol::Resp2, &request, 512);
    assert_eq!(parsed, count);
    let reads = size.div_ceil(512);
    // Each read may look at one argument header twice; re-reading from the
    // start would cost about size * reads / 2, here over 10^9.
    assert!(
        trickled <= at_once + reads * 64,
        "{trickled} bytes examined in pieces, {at_once} at once, for {size} bytes"
    );
    assert!(at_once <= 2 * size, "{at_once} bytes examined for {size}");
}

#[test]
fn an_inline_line_without_its_newline_is_scanned_once() {
    let mut line = vec![b'x'; 60_000];
    line.extend_from_slice(b" y\r\n");
    let (parsed, examined) = trickle(Protocol::Resp2, &line, 100);
    assert_eq!(parsed, 2);
    let size = line.len() as u64;
    assert!(examined <= 3 * size, "{examined} bytes examined for {size}");
}

/// A native request's headers are read once each, as they arrive; its
/// data is skipped, and each read costs the length prefix again.
#[test]
fn a_native_request_is_read_once() {
    let args: Vec<String> = (0..50_000).map(|i| format!("n{i}")).collect();
    let mut request = BytesMut::new();
    Protocol::Native.encode_request(&args, &mut request);
    let size = request.len() as u64;
    let (parsed, examined) = trickle(Protocol::Native, &request, 512);
    assert_eq!(parsed, 50_000);
    assert!(
        examined <= size + 4 * size.div_ceil(512),
        "{examined} bytes examined for {size}"
    );
}
