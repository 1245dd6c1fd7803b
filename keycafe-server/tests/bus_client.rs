//! A node's client for another node's bus port, against a scripted peer: the
//! peer's reason for refusing the hello or AUTH reaches the error.

use bytes::BytesMut;
use keycafe_core::{Frame, Limits, native};
use keycafe_server::cluster::bus::BusClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Starts a one-connection peer that reads `expect` bytes (the hello and any
/// AUTH), then writes `answer` and closes. The task returns what it read.
async fn peer(expect: usize, answer: BytesMut) -> (String, JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut request = vec![0; expect];
        stream.read_exact(&mut request).await.unwrap();
        stream.write_all(&answer).await.unwrap();
        request
    });
    (addr, task)
}

fn frame(frame: Frame) -> BytesMut {
    let mut out = BytesMut::new();
    native::encode_frame(&frame, &mut out);
    out
}

fn hello() -> BytesMut {
    let mut out = BytesMut::new();
    native::encode_hello(native::VERSION, &mut out);
    out
}

/// The hello and, with a secret, `AUTH secret` right behind it.
fn opening(secret: Option<&str>) -> BytesMut {
    let mut out = hello();
    if let Some(secret) = secret {
        native::encode_request(&["AUTH", secret], &mut out);
    }
    out
}

#[tokio::test]
async fn a_refused_hello_reports_the_peers_reason() {
    let refusal = "ERR unsupported protocol version 1; this node speaks 2";
    let (addr, _) = peer(opening(None).len(), frame(Frame::error(refusal))).await;
    let err = BusClient::connect(&addr, None)
        .await
        .err()
        .expect("the peer refuses");
    let text = err.to_string();
    assert!(text.contains(refusal), "{text}");
    assert!(text.contains(&addr), "{text}");
}

#[tokio::test]
async fn a_refused_secret_reports_the_peers_reason() {
    let refusal = "WRONGPASS invalid username-password pair or user is disabled.";
    let mut answer = hello();
    answer.extend_from_slice(&frame(Frame::error(refusal)));
    let (addr, _) = peer(opening(Some("wrong")).len(), answer).await;
    let err = BusClient::connect(&addr, Some("wrong"))
        .await
        .err()
        .expect("the peer refuses");
    assert!(err.to_string().contains(refusal), "{err}");
}

#[tokio::test]
async fn auth_goes_behind_the_hello_and_later_bytes_are_kept() {
    let mut answer = hello();
    answer.extend_from_slice(&frame(Frame::ok()));
    answer.extend_from_slice(&frame(Frame::simple("PONG")));
    let (addr, sent) = peer(opening(Some("secret")).len(), answer).await;
    let client = BusClient::connect(&addr, Some("secret")).await.unwrap();
    assert_eq!(sent.await.unwrap(), opening(Some("secret")));
    let (mut stream, mut buf) = client.into_parts();
    // Whatever part of the PONG the handshake read is in `buf`; the rest
    // is still on the socket.
    let pong = loop {
        if let Some(frame) = native::decode_frame(&mut buf, &Limits::DEFAULT).unwrap() {
            break frame;
        }
        assert_ne!(stream.read_buf(&mut buf).await.unwrap(), 0, "peer closed");
    };
    assert_eq!(pong, Frame::simple("PONG"));
}
