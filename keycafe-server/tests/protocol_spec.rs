//! What `docs/protocol.md` says a node does, over real sockets: the
//! answers to a hello, a half-sent hello, requests refused from their
//! header, the reasons of the protocol violations, the order of the checks
//! and the texts of the commonest errors, `CLUSTER SLOTS` of a standalone
//! node, and the element types of the cluster bus's replies. (The bytes of
//! each documented example are pinned in `keycafe-core/tests/native_golden.rs`;
//! the `maxclients` refusal in `client_limits.rs`.)

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::cluster::{FakeCoordinator, config, eventually, range};
use common::{RawClient, bulk, error, simple};
use keycafe_core::auth::{self, Step};
use keycafe_core::cluster::{ClusterConfig, NodeInfo};
use keycafe_core::{Frame, native};
use keycafe_server::Config;
use keycafe_server::test_util::{TEST_CLUSTER_SECRET, TestServer, cluster_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HELLO: [u8; 6] = [0xca, 0xfe, 0x4b, 0x43, 0x00, 0x01];

/// Everything the server sends until it closes the connection (at most 10 s).
async fn until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut got));
    match read.await {
        Ok(_) => got,
        Err(_) => panic!("still open after 10 s; it sent {got:?}"),
    }
}

/// What the server answers to `bytes` sent on a fresh connection, up to
/// its close.
async fn answer_to(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    until_closed(&mut stream).await
}

fn error_frame(text: &str) -> Vec<u8> {
    let mut out = BytesMut::new();
    native::encode_frame(&Frame::error(text.to_string()), &mut out);
    out.to_vec()
}

fn with_hello(frame: &[u8]) -> Vec<u8> {
    [&HELLO[..], frame].concat()
}

#[tokio::test]
async fn a_hello_is_answered_by_a_hello_or_refused_by_one_error_frame() {
    let server = TestServer::standalone().await;
    // The first byte of the answer tells them apart: 0xCA or 0x00.
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    stream.write_all(&HELLO).await.unwrap();
    let mut answer = [0u8; 6];
    stream.read_exact(&mut answer).await.unwrap();
    assert_eq!(answer, HELLO);

    let refusal = "ERR unsupported protocol version 2; this node speaks 1";
    let v2 = answer_to(server.addr(), &[0xca, 0xfe, 0x4b, 0x43, 0x00, 0x02]).await;
    assert_eq!(v2, error_frame(refusal));
    assert_eq!(v2[0], 0x00);
    // No downgrade, from above or below.
    let v0 = answer_to(server.addr(), &[0xca, 0xfe, 0x4b, 0x43, 0x00, 0x00]).await;
    assert_eq!(
        v0,
        error_frame("ERR unsupported protocol version 0; this node speaks 1")
    );
    // Requests behind a refused hello are never read.
    let behind = [&[0xca, 0xfe, 0x4b, 0x43, 0x00, 0x02][..], &ping()].concat();
    assert_eq!(
        answer_to(server.addr(), &behind).await,
        error_frame(refusal)
    );

    // A wrong magic byte is refused as soon as it arrives, before the rest.
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    stream.write_all(&[0xca, 0xfe, 0x00]).await.unwrap();
    assert_eq!(
        until_closed(&mut stream).await,
        error_frame("ERR Protocol error: bad hello: magic bytes do not match")
    );
    server.stop().await;
}

fn ping() -> Vec<u8> {
    let mut out = BytesMut::new();
    native::encode_request(&["PING"], &mut out);
    out.to_vec()
}

#[tokio::test]
async fn a_half_sent_hello_is_closed_without_an_answer_after_the_request_timeout() {
    let server = TestServer::start(Config {
        request_timeout_ms: 300,
        ..Config::default()
    })
    .await;
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    stream.write_all(&HELLO[..3]).await.unwrap();
    let started = Instant::now();
    assert_eq!(until_closed(&mut stream).await, b"", "no answer at all");
    assert!(started.elapsed() >= Duration::from_millis(250));
    server.stop().await;
}

#[tokio::test]
async fn limits_are_checked_from_a_requests_header() {
    let server = TestServer::standalone().await;
    // A 600 MiB frame is announced; only headers follow, and nothing after
    // them: the refusal must not wait for the body.
    let big = (600u32 << 20).to_be_bytes();
    let count = (1_048_577u32).to_be_bytes();
    let too_many = [&big[..], b"*", &count].concat();
    let get = [&b"$"[..], &3u32.to_be_bytes(), b"GET"].concat();
    let long = (512u32 << 20 | 1).to_be_bytes();
    let too_long = [&big[..], b"*", &2u32.to_be_bytes(), &get, b"$", &long].concat();
    let cases = [
        (too_many, "ERR Protocol error: invalid multibulk length"),
        (too_long, "ERR Protocol error: invalid bulk length"),
    ];
    for (header, reason) in cases {
        let mut stream = TcpStream::connect(server.addr()).await.unwrap();
        stream.write_all(&with_hello(&header)).await.unwrap();
        let started = Instant::now();
        let answer = until_closed(&mut stream).await;
        assert_eq!(answer, with_hello(&error_frame(reason)), "{reason}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{reason}: at once"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn protocol_violations_have_their_documented_reasons() {
    let server = TestServer::standalone().await;
    let framed = |body: &[u8]| [&(body.len() as u32).to_be_bytes()[..], body].concat();
    let cases: [(Vec<u8>, &str); 5] = [
        (
            framed(b""),
            "malformed frame: value runs past the end of its frame",
        ),
        (framed(b"!\0\0\0\0"), "unknown frame type 0x21"),
        (framed(&[0xab, 0, 0, 0, 0]), "unknown frame type 0xab"),
        (
            framed(b"_"),
            "request must be a non-empty array of bulk strings",
        ),
        (
            framed(b"*\0\0\0\x01:\0\0\0\0\0\0\0\x01"),
            "request must be a non-empty array of bulk strings",
        ),
    ];
    for (frame, reason) in cases {
        // The reply to the request before it comes first.
        let sent = [&HELLO[..], &ping(), &frame].concat();
        let answer = answer_to(server.addr(), &sent).await;
        let mut expected = with_hello(&{
            let mut out = BytesMut::new();
            native::encode_frame(&Frame::simple("PONG"), &mut out);
            out.to_vec()
        });
        expected.extend(error_frame(&format!("ERR Protocol error: {reason}")));
        assert_eq!(answer, expected, "{reason}");
    }
    server.stop().await;
}

#[tokio::test]
async fn commands_are_checked_in_the_documented_order_with_redis_texts() {
    let server = TestServer::start(Config {
        requirepass: Some("pw".into()),
        ..Config::default()
    })
    .await;
    let mut client = RawClient::native(server.addr()).await;
    // Unknown before NOAUTH; NOAUTH before the arity.
    assert_eq!(
        client.cmd("FOO a b").await,
        error("ERR unknown command 'FOO', with args beginning with: 'a' 'b' ")
    );
    assert_eq!(
        client.cmd("FOO").await,
        error("ERR unknown command 'FOO', with args beginning with: ")
    );
    assert_eq!(
        client.cmd("GET a b").await,
        error("NOAUTH Authentication required.")
    );
    assert_eq!(client.cmd("AUTH pw").await, simple("OK"));
    assert_eq!(
        client.cmd("GET a b").await,
        error("ERR wrong number of arguments for 'get' command")
    );
    // Bus commands are unknown on the client port.
    assert!(matches!(
        client.cmd("KC.PING a 1 x").await,
        Frame::Error(text) if text.starts_with(b"ERR unknown command 'KC.PING'")
    ));
    server.stop().await;
}

#[tokio::test]
async fn a_standalone_node_answers_cluster_slots_with_one_range() {
    let server = TestServer::standalone().await;
    let mut client = RawClient::native(server.addr()).await;
    let id = client.cmd("CLUSTER MYID").await;
    assert_eq!(
        client.cmd("CLUSTER SLOTS").await,
        Frame::Array(vec![Frame::Array(vec![
            Frame::Integer(0),
            Frame::Integer(16383),
            Frame::Array(vec![
                bulk(server.addr().ip().to_string()),
                Frame::Integer(i64::from(server.port())),
                id,
            ]),
        ])])
    );
    assert_eq!(
        client.cmd("CLUSTER KEYSLOT foo").await,
        Frame::Integer(12182)
    );
    assert_eq!(
        client.cmd("CLUSTER KEYSLOT {user1000}.following").await,
        Frame::Integer(3443)
    );
    server.stop().await;
}

/// A bus connection to `bus` that has proved the secret as `id`.
async fn member_link(bus: SocketAddr, id: &str) -> RawClient {
    let mut link = RawClient::native(bus).await;
    let ours = auth::nonce().unwrap();
    let Frame::Array(answer) = link
        .call(&[b"KC.HELLO", id.as_bytes(), ours.as_bytes()])
        .await
    else {
        panic!("KC.HELLO answers an array");
    };
    let [Frame::Bulk(theirs), Frame::Bulk(proof)] = &answer[..] else {
        panic!("KC.HELLO answers two bulks: {answer:?}");
    };
    assert_eq!((theirs.len(), proof.len()), (64, 64), "64 hex digits each");
    let theirs = std::str::from_utf8(theirs).unwrap();
    let secret = TEST_CLUSTER_SECRET.as_bytes();
    let mine = auth::proof(secret, Step::BusClient, theirs, &ours, id);
    assert_eq!(
        link.call(&[b"KC.AUTH", mine.as_bytes()]).await,
        simple("OK")
    );
    link
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bus_answers_with_the_documented_element_types() {
    let mut coordinator = FakeCoordinator::start().await;
    let server = TestServer::start(cluster_config(&coordinator.addr)).await;
    let me = coordinator.registered.recv().await.unwrap();
    let other = NodeInfo {
        id: "b".repeat(40),
        client_addr: "127.0.0.1:1".into(),
        bus_addr: "127.0.0.1:2".into(),
        replica_of: None,
    };
    let layout: ClusterConfig = config(
        3,
        &[me.clone(), other.clone()],
        vec![range(0, 5460, &me), range(5461, 16383, &other)],
        vec![],
    );
    coordinator.push(&layout).await;
    let mut client = RawClient::native(server.addr()).await;
    eventually("the node has the layout", async || {
        client.cmd("GET foo").await == error("MOVED 12182 127.0.0.1:1")
    })
    .await;
    let bus: SocketAddr = me.bus_addr.parse().unwrap();

    // Before KC.AUTH: NOAUTH; a wrong proof: WRONGPASS; KC.AUTH first: an error.
    let mut stranger = RawClient::native(bus).await;
    assert_eq!(
        stranger.cmd("KC.CONFIG").await,
        error("NOAUTH Authentication required.")
    );
    assert_eq!(stranger.cmd("KC.AUTH x").await, error("ERR KC.HELLO first"));
    assert_eq!(
        stranger.cmd("KC.HELLO x not-a-nonce").await,
        error("ERR KC.HELLO takes a node id and a nonce of 64 hex digits")
    );
    let nonce = auth::nonce().unwrap();
    let _ = stranger.call(&[b"KC.HELLO", b"x", nonce.as_bytes()]).await;
    assert_eq!(
        stranger.cmd("KC.AUTH 00").await,
        error("WRONGPASS the peer does not hold this cluster's secret")
    );

    let mut link = member_link(bus, "node-z").await;
    // KC.PING: three bulks, the epoch as decimal text, the bitmap with slot
    // s at bit s % 8 (least significant first) of byte s / 8.
    let bitmap = vec![0u8; 2048];
    let Frame::Array(pong) = link.call(&[b"KC.PING", b"node-z", b"1", &bitmap]).await else {
        panic!("KC.PING answers an array");
    };
    let mut expected_bitmap = vec![0xffu8; 682];
    expected_bitmap.push(0x1f);
    expected_bitmap.resize(2048, 0);
    assert_eq!(
        pong,
        vec![bulk(&me.id), bulk("3"), bulk(expected_bitmap.clone())]
    );
    let slots: Vec<u16> = (0..=5460).collect();
    assert_eq!(
        keycafe_server::cluster::bus::slot_bitmap(&slots),
        expected_bitmap
    );

    // KC.CONFIG: a bulk of the configuration's JSON.
    let Frame::Bulk(json) = link.cmd("KC.CONFIG").await else {
        panic!("KC.CONFIG answers a bulk");
    };
    assert_eq!(
        serde_json::from_slice::<ClusterConfig>(&json).unwrap(),
        layout
    );

    // KC.IMPORT: an integer, or the documented errors.
    assert_eq!(
        link.cmd("KC.IMPORT 12182 foo bar -1").await,
        error("ERR slot 12182 is not being imported by this node")
    );
    assert_eq!(
        link.cmd("KC.IMPORT 5061 foo bar -1").await,
        error("ERR key does not belong to slot 5061")
    );
    assert_eq!(
        link.cmd("KC.IMPORT 5061 bar v 0").await,
        error("ERR invalid expire time in 'kc.import' command")
    );
    assert_eq!(link.cmd("KC.IMPORT 5061 bar v -1").await, Frame::Integer(1));

    // KC.PSYNC from a node that is not a replica here; KC.FAILOVER.RESUME.
    let empty_history = "0".repeat(40);
    assert_eq!(
        link.call(&[
            b"KC.PSYNC",
            b"node-z",
            empty_history.as_bytes(),
            b"-1",
            b"127.0.0.1:9"
        ])
        .await,
        error("ERR node node-z is not a replica of this node in epoch 3")
    );
    assert_eq!(link.cmd("KC.FAILOVER.RESUME").await, simple("OK"));
    assert_eq!(link.cmd("PING").await, simple("PONG"));
    // Client commands are unknown on the bus.
    assert!(matches!(
        link.cmd("GET bar").await,
        Frame::Error(text) if text.starts_with(b"ERR unknown command 'GET'")
    ));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_gets_fullsync_its_copy_and_the_synced_marker() {
    let mut coordinator = FakeCoordinator::start().await;
    let server = TestServer::start(cluster_config(&coordinator.addr)).await;
    let me = coordinator.registered.recv().await.unwrap();
    let replica = NodeInfo {
        id: "r".repeat(40),
        client_addr: "127.0.0.1:3".into(),
        bus_addr: "127.0.0.1:4".into(),
        replica_of: Some(me.id.clone()),
    };
    let layout = config(
        2,
        &[me.clone(), replica.clone()],
        vec![range(0, 16383, &me)],
        vec![],
    );
    coordinator.push(&layout).await;
    let mut client = RawClient::native(server.addr()).await;
    eventually("the node serves", async || {
        client.cmd("SET foo bar").await == simple("OK")
    })
    .await;

    let bus: SocketAddr = me.bus_addr.parse().unwrap();
    let mut link = member_link(bus, &replica.id).await;
    let empty_history = "0".repeat(40);
    link.send(&[
        b"KC.PSYNC",
        replica.id.as_bytes(),
        empty_history.as_bytes(),
        b"-1",
        b"127.0.0.1:3",
    ])
    .await;
    // [simple FULLSYNC, bulk history id (40 hex), bulk offset (decimal)].
    let Some(Frame::Array(answer)) = link.read_frame().await else {
        panic!("KC.PSYNC answers an array");
    };
    let [
        Frame::Simple(kind),
        Frame::Bulk(replid),
        Frame::Bulk(offset),
    ] = &answer[..]
    else {
        panic!("three values: {answer:?}");
    };
    assert_eq!(&kind[..], b"FULLSYNC");
    assert_eq!(replid.len(), 40);
    assert!(replid.iter().all(u8::is_ascii_hexdigit));
    assert!(std::str::from_utf8(offset).unwrap().parse::<u64>().is_ok());
    // The copy: a SET per key, then KC.SYNCED, a request of one bulk.
    assert_eq!(
        link.read_frame().await,
        Some(Frame::request(["SET", "foo", "bar"]))
    );
    assert_eq!(link.read_frame().await, Some(Frame::request(["KC.SYNCED"])));
    // Then the stream: a write arrives as its record (behind the PINGs of
    // an idle primary).
    assert_eq!(client.cmd("DEL foo").await, Frame::Integer(1));
    let record = loop {
        match link.read_frame().await {
            Some(ping) if ping == Frame::request(["PING"]) => continue,
            other => break other,
        }
    };
    assert_eq!(record, Some(Frame::request(["DEL", "foo"])));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_left_out_of_the_configuration_stops() {
    // As after a leave through the dashboard: the coordinator's next
    // configuration lacks the node, which then stops rather than serve
    // nothing (and register again as a new member).
    let mut coordinator = FakeCoordinator::start().await;
    let server = TestServer::start(cluster_config(&coordinator.addr)).await;
    let me = coordinator.registered.recv().await.unwrap();
    let other = NodeInfo {
        id: "b".repeat(40),
        client_addr: "127.0.0.1:1".into(),
        bus_addr: "127.0.0.1:2".into(),
        replica_of: None,
    };
    coordinator
        .push(&config(
            1,
            &[me.clone(), other.clone()],
            vec![range(0, 16383, &other)],
            vec![],
        ))
        .await;
    let mut client = RawClient::native(server.addr()).await;
    eventually("the node is a member", async || {
        client.cmd("GET foo").await == error("MOVED 12182 127.0.0.1:1")
    })
    .await;
    coordinator
        .push(&config(
            2,
            std::slice::from_ref(&other),
            vec![range(0, 16383, &other)],
            vec![],
        ))
        .await;
    let addr = server.addr();
    eventually("the node has stopped listening", async || {
        TcpStream::connect(addr).await.is_err()
    })
    .await;
    server.stop().await;
}
