//! Client limits: connections beyond `maxclients` are refused at accept
//! (before they send a byte), idle clients go after `timeout`, and a
//! request that does not arrive whole within `request_timeout_ms` of its
//! first byte closes its connection, whatever the protocol, while other
//! clients are served throughout.

mod common;

use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::{RawClient, simple};
use keycafe_core::handshake::{Handshake, HandshakeError};
use keycafe_core::{Frame, Limits};
use keycafe_server::Config;
use keycafe_server::config::{OutputLimit, OutputLimits};
use keycafe_server::test_util::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Waits (at most 10 s) until the server closes `stream`; returns what it
/// sent before closing.
async fn closed_by_server(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut got));
    match read.await {
        Ok(_) => got,
        Err(_) => panic!("still open after 10 s; it sent {got:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_beyond_maxclients_are_refused_at_accept() {
    let server = TestServer::start(Config {
        maxclients: 3,
        timeout: 1,
        ..Config::default()
    })
    .await;
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(TcpStream::connect(server.addr()).await.unwrap());
    }
    // Wait until the node has counted all three (accept runs on its own task).
    let mut probe = TcpStream::connect(server.addr()).await.unwrap();
    let refusal = closed_by_server(&mut probe).await;
    assert_eq!(refusal, b"-ERR max number of clients reached\r\n");
    // Strangers beyond the limit are refused without sending anything.
    for _ in 0..10 {
        let mut extra = TcpStream::connect(server.addr()).await.unwrap();
        assert_eq!(
            closed_by_server(&mut extra).await,
            b"-ERR max number of clients reached\r\n"
        );
    }
    // A native client's hello reads the refusal as the server's reason.
    let mut native = TcpStream::connect(server.addr()).await.unwrap();
    let mut handshake = Handshake::new(None);
    let mut out = BytesMut::new();
    handshake.encode(&mut out);
    let _ = native.write_all(&out).await; // the node may have closed already
    let mut answer = BytesMut::from(&closed_by_server(&mut native).await[..]);
    assert_eq!(
        handshake.poll(&mut answer, &Limits::DEFAULT),
        Err(HandshakeError::Refused(
            "ERR max number of clients reached".into()
        ))
    );
    // The silent three are idle clients: gone after `timeout`, and then
    // real clients are served.
    for stream in &mut silent {
        assert_eq!(closed_by_server(stream).await, b"");
    }
    let mut client = RawClient::resp(server.addr()).await;
    assert_eq!(client.cmd("PING").await, simple("PONG"));
    assert!(info_field(&mut client, "rejected_connections").await >= 11);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_client_goes_after_timeout_and_a_busy_one_stays() {
    let server = TestServer::start(Config {
        timeout: 1,
        ..Config::default()
    })
    .await;
    let mut idle = RawClient::resp(server.addr()).await;
    assert_eq!(idle.cmd("PING").await, simple("PONG"));
    let mut busy = RawClient::resp(server.addr()).await;
    // A reply bigger than the sockets on both sides hold, never read: a
    // client that takes nothing is idle too.
    let huge = vec![b'y'; 32 << 20];
    assert_eq!(busy.call(&[b"SET", b"huge", &huge]).await, simple("OK"));
    let mut stalled = RawClient::resp(server.addr()).await;
    stalled.send(&[b"GET", b"huge"]).await;
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(2500) {
        assert_eq!(busy.cmd("PING").await, simple("PONG"));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(idle.read_frame().await, None, "the idle client was closed");
    assert_eq!(
        info_field(&mut busy, "connected_clients").await,
        1,
        "the client that took none of its reply was closed"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_never_finish_arriving_are_cut_off() {
    let server = TestServer::start(Config {
        request_timeout_ms: 500,
        ..Config::default()
    })
    .await;
    // A partial RESP header, a bulk announced big and trickled, an inline
    // line with no newline, a partial native frame.
    let native_partial = {
        let mut bytes = bytes::BytesMut::new();
        keycafe_core::native::encode_hello(keycafe_core::native::VERSION, &mut bytes);
        bytes.extend_from_slice(&[0, 0, 1, 0, b'*']);
        bytes.to_vec()
    };
    let starts: [&[u8]; 4] = [
        b"*3\r\n$3\r\nSET\r\n$1",
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870912\r\n",
        b"GET kkkkkkkkkkkkkkkk",
        &native_partial,
    ];
    let mut slow = Vec::new();
    for start in starts {
        let mut stream = TcpStream::connect(server.addr()).await.unwrap();
        stream.write_all(start).await.unwrap();
        slow.push(stream);
    }
    let mut client = RawClient::resp(server.addr()).await;
    // The trickler keeps sending a byte every 100 ms: progress, but the
    // request never completes, so it is cut off all the same.
    let trickled = &mut slow[1];
    let cut = async {
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if trickled.write_all(b"v").await.is_err() {
                return true;
            }
        }
        false
    };
    assert!(
        tokio::time::timeout(Duration::from_secs(10), cut)
            .await
            .unwrap(),
        "the trickler was still connected after 10 s"
    );
    for stream in &mut slow {
        let sent = closed_by_server(stream).await;
        assert!(
            !sent.starts_with(b"+"),
            "no request of theirs ran: {sent:?}"
        );
    }
    assert_eq!(client.cmd("SET k v").await, simple("OK"));
    assert_eq!(client.cmd("GET k").await, common::bulk("v"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_request_that_arrives_in_time_is_served() {
    let server = TestServer::start(Config {
        request_timeout_ms: 2000,
        ..Config::default()
    })
    .await;
    let mut client = RawClient::resp(server.addr()).await;
    let value = vec![b'x'; 8 * 1024 * 1024];
    assert_eq!(client.call(&[b"SET", b"big", &value]).await, simple("OK"));
    assert_eq!(
        client.cmd("STRLEN big").await,
        Frame::Integer(8 * 1024 * 1024)
    );
    assert_eq!(client.cmd("DEL big big2").await, Frame::Integer(1));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_leave_replies_untaken_are_closed_at_their_output_limit() {
    let limits = OutputLimits {
        normal: OutputLimit {
            hard: 8 << 20,
            soft: 64 << 10,
            soft_seconds: 1,
        },
        ..OutputLimits::default()
    };
    let server = TestServer::start(Config {
        client_output_buffer_limit: limits,
        ..Config::default()
    })
    .await;
    let mut client = RawClient::resp(server.addr()).await;
    let value = vec![b'x'; 256 << 10];
    assert_eq!(client.call(&[b"SET", b"v", &value]).await, simple("OK"));
    let huge = vec![b'y'; 32 << 20];
    assert_eq!(client.call(&[b"SET", b"huge", &huge]).await, simple("OK"));
    // A client that reads its replies gets them.
    assert_eq!(client.cmd("GET v").await, Frame::Bulk(value.clone().into()));
    // A reply beyond the hard limit cannot be taken fast enough: as in
    // Redis, that client is closed.
    let mut greedy = RawClient::resp(server.addr()).await;
    greedy.send(&[b"GET", b"huge"]).await;
    assert_eq!(greedy.read_frame().await, None, "closed at the hard limit");
    // One that asks for a lot and reads nothing stays over the soft limit,
    // and is closed after its second.
    let mut sluggard = TcpStream::connect(server.addr()).await.unwrap();
    let mut requests = BytesMut::new();
    for _ in 0..200 {
        let get = [b"GET".as_slice(), b"v"];
        keycafe_core::Protocol::Resp2.encode_request(&get, &mut requests);
    }
    sluggard.write_all(&requests).await.unwrap();
    let closed = async {
        loop {
            assert_eq!(client.cmd("PING").await, simple("PONG"));
            if info_field(&mut client, "connected_clients").await == 1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), closed)
        .await
        .expect("the client that never reads was closed");
    server.stop().await;
}

async fn info_field(client: &mut RawClient, field: &str) -> u64 {
    let Frame::Bulk(text) = client.cmd("INFO").await else {
        panic!("INFO answers a bulk string");
    };
    let text = String::from_utf8_lossy(&text).into_owned();
    let prefix = format!("{field}:");
    text.lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limits_change_at_run_time_with_config_set() {
    let server = TestServer::standalone().await;
    let mut admin = RawClient::resp(server.addr()).await;
    let bulk = |text: &str| Frame::Bulk(text.as_bytes().to_vec().into());
    assert_eq!(
        admin.cmd("CONFIG GET client-output-buffer-limit").await,
        Frame::Array(vec![
            bulk("client-output-buffer-limit"),
            bulk("normal 0 0 0 replica 268435456 67108864 60"),
        ])
    );
    let set = [
        b"CONFIG".as_slice(),
        b"SET",
        b"client-output-buffer-limit",
        b"normal 1mb 64kb 5",
    ];
    assert_eq!(admin.call(&set).await, simple("OK"));
    let Frame::Array(got) = admin.cmd("CONFIG GET client-output-buffer-limit").await else {
        panic!("CONFIG GET answers an array");
    };
    assert_eq!(
        got[1],
        bulk("normal 1048576 65536 5 replica 268435456 67108864 60")
    );
    let bad = [
        b"CONFIG".as_slice(),
        b"SET",
        b"client-output-buffer-limit",
        b"normal 1mb",
    ];
    assert!(matches!(admin.call(&bad).await, Frame::Error(_)));
    assert!(matches!(
        admin.cmd("CONFIG SET maxclients 0").await,
        Frame::Error(_)
    ));

    // maxclients: the admin is the only client; a second is refused at once.
    assert_eq!(admin.cmd("CONFIG SET maxclients 1").await, simple("OK"));
    let mut second = TcpStream::connect(server.addr()).await.unwrap();
    assert_eq!(
        closed_by_server(&mut second).await,
        b"-ERR max number of clients reached\r\n"
    );
    assert_eq!(admin.cmd("CONFIG SET maxclients 10").await, simple("OK"));

    // timeout: idle clients go, from now on.
    assert_eq!(admin.cmd("CONFIG SET timeout 1").await, simple("OK"));
    let mut idle = RawClient::resp(server.addr()).await;
    assert_eq!(idle.cmd("PING").await, simple("PONG"));
    assert_eq!(idle.read_frame().await, None, "closed after a second idle");
    // So was the admin, idle meanwhile.
    assert_eq!(admin.read_frame().await, None);
    let mut admin = RawClient::resp(server.addr()).await;
    assert_eq!(admin.cmd("CONFIG SET timeout 0").await, simple("OK"));

    // request-timeout-ms: a partial request is cut off.
    assert_eq!(
        admin.cmd("CONFIG SET request-timeout-ms 300").await,
        simple("OK")
    );
    let mut slow = TcpStream::connect(server.addr()).await.unwrap();
    slow.write_all(b"*1\r\n$4\r\nPI").await.unwrap();
    assert_eq!(closed_by_server(&mut slow).await, b"");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_buffers_are_counted_and_capped_by_maxmemory_clients() {
    let server = TestServer::start(Config {
        maxmemory_clients: 2 << 20,
        ..Config::default()
    })
    .await;
    let mut small = RawClient::resp(server.addr()).await;
    assert_eq!(small.cmd("SET k v").await, simple("OK"));
    assert!(info_field(&mut small, "mem_clients_normal").await > 0);
    // A request bigger than the cap grows its buffer past it: closed.
    let mut big = TcpStream::connect(server.addr()).await.unwrap();
    let mut request = BytesMut::new();
    let value = vec![b'x'; 8 << 20];
    let set = [b"SET".as_slice(), b"big", &value];
    keycafe_core::Protocol::Resp2.encode_request(&set, &mut request);
    // The node closes it mid-request, so the send may fail too.
    let _ = big.write_all(&request).await;
    let answer = closed_by_server(&mut big).await;
    assert!(!answer.starts_with(b"+OK"), "the big SET ran");
    assert_eq!(small.cmd("EXISTS big").await, Frame::Integer(0));
    assert_eq!(small.cmd("GET k").await, common::bulk("v"));
    // Its buffers are no longer counted once it is gone.
    let settled = async {
        while info_field(&mut small, "mem_clients_normal").await > 1 << 20 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), settled)
        .await
        .expect("the closed client's buffers were uncounted");
    server.stop().await;
}
