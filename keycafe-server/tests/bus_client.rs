//! A node's client for another node's bus port, against a scripted peer:
//! the peer's reason for refusing reaches the error, a peer that cannot
//! prove the cluster secret is given nothing, and one that can gets the
//! client's proof.

use bytes::BytesMut;
use keycafe_core::auth::{self, Step};
use keycafe_core::cluster::NodeInfo;
use keycafe_core::{Frame, Limits, native};
use keycafe_server::cluster::ClusterState;
use keycafe_server::cluster::bus::BusClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const SECRET: &str = "the bus tests' cluster secret";

fn me() -> ClusterState {
    let me = NodeInfo {
        id: "a".repeat(40),
        client_addr: "127.0.0.1:1".into(),
        bus_addr: "127.0.0.1:2".into(),
        replica_of: None,
    };
    ClusterState::new(me, "127.0.0.1:3".into(), SECRET.into())
}

/// What the scripted peer does once the client's hello has arrived.
enum Script {
    /// Refuse the hello with this error.
    RefuseHello(&'static str),
    /// Answer `KC.HELLO` with a proof made with this secret, then (if the
    /// client goes on) check its `KC.AUTH`, answer OK and then PONG.
    Prove(&'static str),
}

/// A one-connection peer. Returns what it learnt: the client's `KC.AUTH`
/// arguments if one came.
async fn peer(script: Script) -> (String, JoinHandle<Option<Vec<Vec<u8>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = BytesMut::new();
        while native::decode_hello(&buf).unwrap().is_none() {
            assert_ne!(stream.read_buf(&mut buf).await.unwrap(), 0);
        }
        let _ = buf.split_to(native::HELLO_LEN);
        let mut out = BytesMut::new();
        let wrong_secret = match script {
            Script::RefuseHello(reason) => {
                native::encode_frame(&Frame::error(reason), &mut out);
                stream.write_all(&out).await.unwrap();
                return None;
            }
            Script::Prove(secret) => secret,
        };
        native::encode_hello(native::VERSION, &mut out);
        let hello = request(&mut stream, &mut buf).await?;
        assert_eq!(hello[0], b"KC.HELLO");
        let theirs = String::from_utf8(hello[2].clone()).unwrap();
        let ours = auth::nonce().unwrap();
        let proof = auth::proof(wrong_secret.as_bytes(), Step::BusServer, &theirs, &ours, "");
        let answer = Frame::Array(vec![
            Frame::Bulk(ours.clone().into()),
            Frame::Bulk(proof.into()),
        ]);
        native::encode_frame(&answer, &mut out);
        stream.write_all(&out).await.unwrap();
        let auth = request(&mut stream, &mut buf).await?;
        let id = String::from_utf8(hello[1].clone()).unwrap();
        let proof = String::from_utf8(auth[1].clone()).unwrap();
        let valid = auth::verify(
            SECRET.as_bytes(),
            Step::BusClient,
            &ours,
            &theirs,
            &id,
            &proof,
        );
        let mut out = BytesMut::new();
        native::encode_frame(&Frame::ok(), &mut out);
        native::encode_frame(&Frame::simple("PONG"), &mut out);
        if valid {
            stream.write_all(&out).await.unwrap();
        }
        Some(auth)
    });
    (addr, task)
}

/// The next request's arguments, or `None` if the client hung up.
async fn request(stream: &mut TcpStream, buf: &mut BytesMut) -> Option<Vec<Vec<u8>>> {
    loop {
        if let Some(Frame::Array(items)) = native::decode_frame(buf, &Limits::DEFAULT).unwrap() {
            let args = items.into_iter().map(|item| match item {
                Frame::Bulk(bytes) => bytes.to_vec(),
                other => panic!("not a bulk argument: {other:?}"),
            });
            return Some(args.collect());
        }
        if stream.read_buf(buf).await.unwrap_or(0) == 0 {
            return None;
        }
    }
}

#[tokio::test]
async fn a_refused_hello_reports_the_peers_reason() {
    let refusal = "ERR unsupported protocol version 1; this node speaks 2";
    let (addr, _) = peer(Script::RefuseHello(refusal)).await;
    let err = BusClient::connect(&addr, &me())
        .await
        .err()
        .expect("the peer refuses");
    let text = err.to_string();
    assert!(text.contains(refusal), "{text}");
    assert!(text.contains(&addr), "{text}");
}

#[tokio::test]
async fn a_peer_without_the_secret_is_given_nothing() {
    let (addr, peer) = peer(Script::Prove("a stranger's idea of the secret")).await;
    let err = BusClient::connect(&addr, &me())
        .await
        .err()
        .expect("the peer cannot prove itself");
    assert!(err.to_string().contains("secret"), "{err}");
    assert_eq!(peer.await.unwrap(), None, "no KC.AUTH was sent to it");
}

#[tokio::test]
async fn a_member_gets_our_proof_and_later_bytes_are_kept() {
    let (addr, peer) = peer(Script::Prove(SECRET)).await;
    let client = BusClient::connect(&addr, &me()).await.unwrap();
    let auth = peer.await.unwrap().expect("KC.AUTH came");
    assert_eq!(auth[0], b"KC.AUTH");
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
