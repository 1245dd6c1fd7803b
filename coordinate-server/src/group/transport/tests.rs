//! Transports on loopback, and strangers that talk to them by hand.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use keycafe_core::auth::{self, Step};
use keycafe_core::coord;
use raft::eraftpb::{Entry, Message, MessageType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::handshake::Handshake;
use super::*;

const SECRET: &str = "0123456789abcdef-group-secret";
/// Longest wait for anything a test expects to happen.
const PATIENCE: Duration = Duration::from_secs(10);

/// One coordinator's transport, with the inbox its driver would read.
struct Running {
    member: Member,
    transport: Transport,
    inbox: mpsc::Receiver<Inbound>,
    stop: CancellationToken,
}

async fn start(id: MemberId, secret: &str) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    start_on(id, listener, secret)
}

fn start_on(id: MemberId, listener: TcpListener, secret: &str) -> Running {
    let member = member(id, &listener.local_addr().unwrap().to_string());
    let (inbox_tx, inbox) = mpsc::channel(QUEUE);
    let stop = CancellationToken::new();
    let transport = Transport::start(
        member.clone(),
        listener,
        secret.to_string(),
        None,
        inbox_tx,
        stop.clone(),
    );
    Running {
        member,
        transport,
        inbox,
        stop,
    }
}

fn member(id: MemberId, group_addr: &str) -> Member {
    Member {
        id,
        group_addr: group_addr.to_string(),
        node_addr: format!("127.0.0.1:{}", 9800 + id),
        http_addr: None,
    }
}

fn heartbeat(from: MemberId, to: MemberId, commit: u64) -> Message {
    Message {
        msg_type: MessageType::MsgHeartbeat,
        from,
        to,
        commit,
        ..Message::default()
    }
}

/// An append carrying one entry of `len` bytes.
fn large_append(from: MemberId, to: MemberId, len: usize) -> Message {
    let entry = Entry {
        index: 7,
        term: 2,
        data: (0..len)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>()
            .into(),
        ..Entry::default()
    };
    Message {
        msg_type: MessageType::MsgAppend,
        from,
        to,
        entries: vec![entry].into(),
        ..Message::default()
    }
}

/// The next inbound item that `wanted` picks, skipping the others.
async fn wait_for<T>(
    inbox: &mut mpsc::Receiver<Inbound>,
    mut wanted: impl FnMut(Inbound) -> Option<T>,
) -> T {
    let search = async {
        loop {
            let item = inbox.recv().await.expect("the transport keeps its inbox");
            if let Some(found) = wanted(item) {
                return found;
            }
        }
    };
    tokio::time::timeout(PATIENCE, search)
        .await
        .expect("the expected inbound item arrived in time")
}

async fn next_message(inbox: &mut mpsc::Receiver<Inbound>) -> Message {
    wait_for(inbox, |item| match item {
        Inbound::Message(message) => Some(message),
        _ => None,
    })
    .await
}

/// Polls `check` until it holds (bounded).
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn status(of: &Running, peer: MemberId) -> PeerStatus {
    of.transport
        .peers()
        .into_iter()
        .find(|status| status.id == peer)
        .expect("the peer is set")
}

/// Everything a connection sends until it closes (bounded).
async fn read_to_end(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut received)).await;
    // A reset after the refusal is fine: what arrived before it counts.
    let _ = read.expect("the connection was closed in time");
    received
}

/// The `error` a refusal carries.
fn refusal(bytes: &[u8]) -> String {
    let mut buf = BytesMut::from(bytes);
    match coord::decode_message::<Handshake>(&mut buf) {
        Ok(Some(Handshake::Error { message })) => message,
        other => panic!("expected an error message, got {other:?} from {bytes:?}"),
    }
}

async fn send_handshake(stream: &mut TcpStream, message: &Handshake) {
    let mut out = BytesMut::new();
    coord::encode_message(message, &mut out);
    stream.write_all(&out).await.unwrap();
}

async fn read_handshake(stream: &mut TcpStream, buf: &mut BytesMut) -> Handshake {
    tokio::time::timeout(PATIENCE, handshake::next(stream, buf))
        .await
        .expect("an answer in time")
        .expect("a handshake message")
}

/// Dials `to` by hand as member `id` holding `secret`, up to the acceptor's
/// answer to the proof.
async fn dial_by_hand(to: &Member, id: MemberId, secret: &str) -> (TcpStream, Handshake) {
    let mut stream = TcpStream::connect(&to.group_addr).await.unwrap();
    let mut buf = BytesMut::new();
    let ours = auth::nonce().unwrap();
    let hello = Handshake::Hello {
        member: member(id, "127.0.0.1:1"),
        nonce: ours.clone(),
    };
    send_handshake(&mut stream, &hello).await;
    let Handshake::Challenge { nonce, .. } = read_handshake(&mut stream, &mut buf).await else {
        panic!("a challenge");
    };
    let proof = auth::proof(
        secret.as_bytes(),
        Step::GroupClient,
        &nonce,
        &ours,
        &id.to_string(),
    );
    send_handshake(&mut stream, &Handshake::Proof { proof }).await;
    let answer = read_handshake(&mut stream, &mut buf).await;
    (stream, answer)
}

#[tokio::test]
async fn two_members_exchange_messages_both_ways_including_a_large_one() {
    let mut a = start(1, SECRET).await;
    let mut b = start(2, SECRET).await;
    a.transport.set_peer(b.member.clone());
    b.transport.set_peer(a.member.clone());

    a.transport.send(heartbeat(1, 2, 11));
    b.transport.send(heartbeat(2, 1, 22));
    // The acceptor learns who dialled it before any message of theirs.
    let first = tokio::time::timeout(PATIENCE, b.inbox.recv())
        .await
        .unwrap();
    assert_eq!(first, Some(Inbound::Hello(a.member.clone())));
    let at_b = next_message(&mut b.inbox).await;
    assert_eq!((at_b.from, at_b.to, at_b.commit), (1, 2, 11));
    let at_a = next_message(&mut a.inbox).await;
    assert_eq!((at_a.from, at_a.to, at_a.commit), (2, 1, 22));

    let large = large_append(1, 2, 6 * 1024 * 1024);
    a.transport.send(large.clone());
    a.transport.send(heartbeat(1, 2, 12));
    assert_eq!(next_message(&mut b.inbox).await, large);
    assert_eq!(next_message(&mut b.inbox).await.commit, 12, "order kept");

    let a_to_b = status(&a, 2);
    assert!(
        a_to_b.connected && a_to_b.last_error.is_none(),
        "{a_to_b:?}"
    );
    assert_eq!(a_to_b.addr, b.member.group_addr);
    assert!(status(&b, 1).last_received.is_some(), "b heard from a");
    assert!(a_to_b.last_received.is_some(), "a heard from b");
}

#[tokio::test]
async fn three_members_each_reach_the_other_two() {
    let mut members = vec![
        start(1, SECRET).await,
        start(2, SECRET).await,
        start(3, SECRET).await,
    ];
    let all: Vec<Member> = members.iter().map(|m| m.member.clone()).collect();
    for m in &members {
        all.iter()
            .for_each(|peer| m.transport.set_peer(peer.clone()));
        assert_eq!(m.transport.peers().len(), 2, "itself is not a peer");
    }
    for m in &members {
        for peer in &all {
            if peer.id != m.member.id {
                m.transport
                    .send(heartbeat(m.member.id, peer.id, 100 * m.member.id + peer.id));
            }
        }
    }
    for m in &mut members {
        let mut from = Vec::new();
        for _ in 0..2 {
            let message = next_message(&mut m.inbox).await;
            assert_eq!(message.to, m.member.id);
            assert_eq!(message.commit, 100 * message.from + message.to);
            from.push(message.from);
        }
        from.sort();
        let others: Vec<MemberId> = all
            .iter()
            .map(|p| p.id)
            .filter(|&id| id != m.member.id)
            .collect();
        assert_eq!(from, others);
    }
}

#[tokio::test]
async fn a_wrong_secret_is_refused_on_both_sides_and_nothing_is_delivered() {
    let mut a = start(1, SECRET).await;
    let mut b = start(2, "another secret, sixteen or more").await;
    a.transport.set_peer(b.member.clone());
    b.transport.set_peer(a.member.clone());
    a.transport.send(heartbeat(1, 2, 1));
    b.transport.send(heartbeat(2, 1, 1));
    // Each dialler finds that the acceptor cannot prove the secret.
    for (side, peer) in [(&a, 2), (&b, 1)] {
        eventually("the dialler refuses the acceptor", || {
            let error = status(side, peer).last_error.unwrap_or_default();
            error.contains("does not hold this cluster's secret")
        })
        .await;
        assert!(!status(side, peer).connected);
    }
    // An acceptor refuses a dialler whose proof is wrong.
    let (mut stream, answer) = dial_by_hand(&a.member, 5, "not the secret of this cluster").await;
    assert_eq!(
        answer,
        Handshake::Error {
            message: "authentication failed: wrong cluster secret".into()
        }
    );
    read_to_end(&mut stream).await;
    // No hello and no message got through: only reports of dropped messages.
    for inbox in [&mut a.inbox, &mut b.inbox] {
        while let Ok(item) = inbox.try_recv() {
            assert!(matches!(item, Inbound::Dropped { .. }), "{item:?}");
        }
    }
}

#[tokio::test]
async fn a_restarted_peer_gets_messages_again() {
    let mut a = start(1, SECRET).await;
    let b = start(2, SECRET).await;
    a.transport.set_peer(b.member.clone());
    b.transport.set_peer(a.member.clone());
    b.transport.send(heartbeat(2, 1, 1));
    next_message(&mut a.inbox).await;
    eventually("a's link to b is up", || status(&a, 2).connected).await;

    let addr = b.member.group_addr.clone();
    drop(b); // every handle: the transport stops by itself
    wait_for(&mut a.inbox, |item| match item {
        Inbound::Dropped { to: 2, .. } => Some(()),
        _ => None,
    })
    .await;

    let listener = bind_again(&addr).await;
    let mut b = start_on(2, listener, SECRET);
    b.transport.set_peer(a.member.clone());
    b.transport.send(heartbeat(2, 1, 2));
    assert_eq!(next_message(&mut a.inbox).await.commit, 2);
    // a redials with backoff; keep sending until a message gets through.
    let resend = async {
        for commit in 3.. {
            a.transport.send(heartbeat(1, 2, commit));
            let arrived =
                tokio::time::timeout(Duration::from_millis(200), next_message(&mut b.inbox));
            if let Ok(message) = arrived.await {
                return message;
            }
        }
        unreachable!("the loop only ends by returning")
    };
    let message = tokio::time::timeout(PATIENCE, resend).await.unwrap();
    assert_eq!((message.from, message.to), (1, 2));
    assert!(status(&a, 2).connected);
}

/// Binds `addr` again once the stopped transport has let it go (bounded).
async fn bind_again(addr: &str) -> TcpListener {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => return listener,
            Err(err) => assert!(
                tokio::time::Instant::now() < deadline,
                "{addr} still taken: {err}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn stopping_frees_the_port_and_ends_every_task() {
    let a = start(1, SECRET).await;
    let b = start(2, SECRET).await;
    a.transport.set_peer(b.member.clone());
    a.transport.send(heartbeat(1, 2, 1));
    eventually("a's link to b is up", || status(&a, 2).connected).await;
    a.stop.cancel();
    tokio::time::timeout(PATIENCE, a.transport.stopped())
        .await
        .expect("every task ends");
    TcpListener::bind(&a.member.group_addr)
        .await
        .expect("the group port is free");
}

#[tokio::test]
async fn a_silent_stranger_is_dropped_after_the_handshake_timeout() {
    let a = start(1, SECRET).await;
    let opened = tokio::time::Instant::now();
    let mut stranger = TcpStream::connect(&a.member.group_addr).await.unwrap();
    let received = read_to_end(&mut stranger).await;
    assert!(
        opened.elapsed() >= HANDSHAKE_TIMEOUT - Duration::from_millis(100),
        "closed after {:?}",
        opened.elapsed()
    );
    assert_eq!(
        refusal(&received),
        format!("no handshake within {HANDSHAKE_TIMEOUT:?}")
    );
}

#[tokio::test]
async fn garbage_is_refused_without_a_panic() {
    let mut a = start(1, SECRET).await;
    let mut json_frame = BytesMut::new();
    Protocol::Native.encode_frame(
        &Frame::Bulk(Bytes::from_static(b"{not json")),
        &mut json_frame,
    );
    let mut own_id = BytesMut::new();
    let hello = |id, nonce: &str| Handshake::Hello {
        member: member(id, "127.0.0.1:1"),
        nonce: nonce.to_string(),
    };
    coord::encode_message(&hello(1, &auth::nonce().unwrap()), &mut own_id);
    let mut bad_nonce = BytesMut::new();
    coord::encode_message(&hello(2, "short"), &mut bad_nonce);
    let cases: [(&[u8], &str); 5] = [
        (
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            "not a group handshake message",
        ),
        (
            &[0, 0, 0, 3, 0xff, 0xfe, 0xfd],
            "malformed handshake message",
        ),
        (&json_frame, "malformed handshake message"),
        (&own_id, "member id 1 is this coordinator's own"),
        (&bad_nonce, "hello needs a nonce of 64 hex digits"),
    ];
    for (garbage, expected) in cases {
        let mut stranger = TcpStream::connect(&a.member.group_addr).await.unwrap();
        stranger.write_all(garbage).await.unwrap();
        let error = refusal(&read_to_end(&mut stranger).await);
        assert!(error.contains(expected), "{error:?} for {garbage:?}");
    }

    // Garbage from a member that authenticated: its link is closed.
    let not_protobuf = Frame::Bulk(Bytes::from_static(&[0xff; 16]));
    let mut someone_else = BytesMut::new();
    encode_raft(&heartbeat(9, 1, 1), &mut someone_else).unwrap();
    for frame in [not_protobuf, Frame::Integer(5)] {
        let mut out = BytesMut::new();
        Protocol::Native.encode_frame(&frame, &mut out);
        let (mut stream, answer) = dial_by_hand(&a.member, 7, SECRET).await;
        assert_eq!(answer, Handshake::Accepted);
        stream.write_all(&out).await.unwrap();
        read_to_end(&mut stream).await;
    }
    let (mut stream, _) = dial_by_hand(&a.member, 7, SECRET).await;
    stream.write_all(&someone_else).await.unwrap();
    read_to_end(&mut stream).await;

    // None of it reached the driver but the hellos, and a still serves.
    while let Ok(item) = a.inbox.try_recv() {
        assert!(matches!(&item, Inbound::Hello(m) if m.id == 7), "{item:?}");
    }
    let b = start(2, SECRET).await;
    b.transport.set_peer(a.member.clone());
    b.transport.send(heartbeat(2, 1, 5));
    assert_eq!(next_message(&mut a.inbox).await.commit, 5);
}

#[tokio::test]
async fn send_returns_at_once_to_an_unknown_peer_and_to_a_full_queue() {
    let mut a = start(1, SECRET).await;
    a.transport.send(heartbeat(1, 99, 1));
    a.transport.set_peer(a.member.clone());
    assert!(a.transport.peers().is_empty(), "neither 99 nor itself");
    assert!(a.inbox.try_recv().is_err(), "nothing to report");

    // A peer that accepts no connection: the dial waits for its handshake,
    // and the queue fills.
    let deaf = TcpListener::bind("127.0.0.1:0").await.unwrap();
    a.transport
        .set_peer(member(2, &deaf.local_addr().unwrap().to_string()));
    let started = std::time::Instant::now();
    for commit in 0..QUEUE as u64 + 100 {
        a.transport.send(heartbeat(1, 2, commit));
    }
    let snapshot = Message {
        msg_type: MessageType::MsgSnapshot,
        ..heartbeat(1, 2, 0)
    };
    a.transport.send(snapshot);
    assert!(
        started.elapsed() < HANDSHAKE_TIMEOUT,
        "sends did not wait for the link"
    );
    // The overflow is reported once, and the lost snapshot on its own,
    // long before the dial gives up.
    let reports = [a.inbox.try_recv().ok(), a.inbox.try_recv().ok()];
    assert_eq!(
        reports,
        [
            Some(Inbound::Dropped {
                to: 2,
                snapshot: false
            }),
            Some(Inbound::Dropped {
                to: 2,
                snapshot: true
            }),
        ]
    );
    drop(deaf);
}

#[tokio::test]
async fn a_peer_that_moved_is_dialled_at_its_new_address() {
    let a = start(1, SECRET).await;
    let mut b = start(2, SECRET).await;
    let nowhere = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let old_addr = nowhere.local_addr().unwrap().to_string();
    drop(nowhere);
    a.transport.set_peer(member(2, &old_addr));
    eventually("the dial to the old address fails", || {
        status(&a, 2).last_error.is_some()
    })
    .await;
    a.transport.set_peer(b.member.clone());
    a.transport.send(heartbeat(1, 2, 3));
    assert_eq!(next_message(&mut b.inbox).await.commit, 3);
    assert_eq!(status(&a, 2).addr, b.member.group_addr);
}

#[tokio::test]
async fn a_dialler_that_reaches_another_member_refuses_it() {
    let a = start(1, SECRET).await;
    let b = start(2, SECRET).await;
    // Member 3 is said to be where member 2 is.
    a.transport.set_peer(member(3, &b.member.group_addr));
    eventually("a finds member 2 where it expected 3", || {
        status(&a, 3).last_error.as_deref() == Some("reached member 2 there, not member 3")
    })
    .await;
}

#[tokio::test]
async fn a_removed_peer_is_no_longer_sent_to() {
    let a = start(1, SECRET).await;
    let b = start(2, SECRET).await;
    a.transport.set_peer(b.member.clone());
    a.transport.send(heartbeat(1, 2, 1));
    eventually("a's link to b is up", || status(&a, 2).connected).await;
    a.transport.remove_peer(2);
    assert!(a.transport.peers().is_empty());
    a.transport.send(heartbeat(1, 2, 2)); // dropped, quietly
}

#[test]
fn handshake_messages_are_json_tagged_by_type() {
    let hello = Handshake::Hello {
        member: member(2, "10.0.0.2:9801"),
        nonce: "ab".into(),
    };
    assert_eq!(
        serde_json::to_string(&hello).unwrap(),
        r#"{"type":"hello","member":{"id":2,"group_addr":"10.0.0.2:9801","node_addr":"127.0.0.1:9802"},"nonce":"ab"}"#
    );
    let challenge = Handshake::Challenge {
        id: 1,
        nonce: "cd".into(),
        proof: "ef".into(),
    };
    assert_eq!(
        serde_json::to_string(&challenge).unwrap(),
        r#"{"type":"challenge","id":1,"nonce":"cd","proof":"ef"}"#
    );
    assert_eq!(
        serde_json::to_string(&Handshake::Accepted).unwrap(),
        r#"{"type":"accepted"}"#
    );
}
