//! The native binary protocol over a real socket.

mod common;

use bytes::BytesMut;
use common::{RawClient, bulk, error, simple};
use keycafe_core::{Frame, Limits, Protocol, native};
use keycafe_server::test_util::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn commands_over_the_native_protocol() {
    let server = TestServer::standalone().await;
    let mut client = RawClient::native(server.addr()).await;
    assert_eq!(client.cmd("PING").await, simple("PONG"));
    assert_eq!(client.cmd("SET example_key KEY").await, simple("OK"));
    assert_eq!(client.cmd("GET example_key").await, bulk("KEY"));
    assert_eq!(client.cmd("GET no_key").await, Frame::Null);
    assert_eq!(client.cmd("INCRBY n 5").await, Frame::Integer(5));
    assert_eq!(
        client.cmd("MGET example_key no_key").await,
        Frame::Array(vec![bulk("KEY"), Frame::Null])
    );
    assert_eq!(
        client.cmd("INCR example_key").await,
        error("ERR value is not an integer or out of range")
    );
    assert_eq!(client.cmd("DELETE example_key").await, Frame::Integer(1));

    // Binary-safe, including bytes that would end a RESP line.
    let key = b"\x00\r\n\xca\xfe";
    let value = b"\r\n$-1\r\n\x00";
    assert_eq!(client.call(&[b"SET", key, value]).await, simple("OK"));
    assert_eq!(client.call(&[b"GET", key]).await, bulk(value));
    server.stop().await;
}

#[tokio::test]
async fn pipelined_native_requests_answer_in_order() {
    let server = TestServer::standalone().await;
    let mut client = RawClient::native(server.addr()).await;
    let mut batch = BytesMut::new();
    for i in 0..1000 {
        Protocol::Native.encode_request(
            &[b"INCR".as_slice(), format!("c{}", i % 10).as_bytes()],
            &mut batch,
        );
    }
    client.send_raw(&batch).await;
    for i in 0..1000 {
        assert_eq!(client.read_frame().await, Some(Frame::Integer(i / 10 + 1)));
    }
    server.stop().await;
}

#[tokio::test]
async fn an_unsupported_version_is_refused_with_an_error() {
    let server = TestServer::standalone().await;
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    let mut hello = BytesMut::new();
    native::encode_hello(99, &mut hello);
    stream.write_all(&hello).await.unwrap();
    let mut answer = BytesMut::new();
    while stream.read_buf(&mut answer).await.unwrap() > 0 {}
    let frame = Protocol::Native
        .decode_frame(&mut answer, &Limits::DEFAULT)
        .unwrap();
    match frame {
        Some(Frame::Error(text)) => {
            assert!(
                text.starts_with(b"ERR unsupported protocol version 99"),
                "{text:?}"
            )
        }
        other => panic!("expected an error frame, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn bad_magic_is_refused() {
    let server = TestServer::standalone().await;
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    stream
        .write_all(&[0xCA, 0x00, 0x00, 0x00, 0x00, 0x01])
        .await
        .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let mut answer = BytesMut::from(&answer[..]);
    let frame = Protocol::Native
        .decode_frame(&mut answer, &Limits::DEFAULT)
        .unwrap();
    assert!(matches!(frame, Some(Frame::Error(_))), "{frame:?}");
    let mut client = RawClient::native(server.addr()).await;
    assert_eq!(client.cmd("PING").await, simple("PONG"));
    server.stop().await;
}
