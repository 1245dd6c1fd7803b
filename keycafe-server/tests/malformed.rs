//! Bytes that break the protocol: each gets an error (or a close), the node
//! allocates nothing a length merely claims, and a new client still gets PONG.

mod common;

use std::time::Duration;

use common::{RawClient, simple};
use keycafe_core::Frame;
use keycafe_server::Config;
use keycafe_server::test_util::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `bytes` on a fresh RESP connection and returns everything the node
/// answered before it closed the connection (or within a second).
async fn answer_to(server: &TestServer, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

async fn still_serves(server: &TestServer) {
    let mut client = RawClient::resp(server.addr()).await;
    assert_eq!(client.cmd("PING").await, simple("PONG"));
}

#[tokio::test]
async fn protocol_errors_close_only_that_connection() {
    let server = TestServer::standalone().await;
    let cases: &[(&[u8], &str)] = &[
        // A negative count is an empty request, skipped as Redis does.
        (b"*-5\r\n*1\r\n$4\r\nPING\r\nQUIT\r\n", "+PONG\r\n+OK\r\n"),
        (
            b"*2\r\n$-3\r\nab\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*99999999999\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\n$99999999999999\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$1073741824\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (b"*1\r\n$3\r\nGETxx", "-ERR Protocol error: "),
        (
            b"*1\r\nGET\r\n",
            "-ERR Protocol error: expected '$', got 'G'\r\n",
        ),
        (
            b"*abc\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"SET \"unterminated\r\n",
            "-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
        (
            b"PING\r\n*1\r\n$x\r\n",
            "+PONG\r\n-ERR Protocol error: invalid bulk length\r\n",
        ),
    ];
    for (input, expected) in cases {
        let answer = answer_to(&server, input).await;
        assert!(answer.starts_with(expected), "{input:?}: got {answer:?}");
        still_serves(&server).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn a_huge_declared_bulk_that_never_arrives_costs_nothing() {
    let server = TestServer::standalone().await;
    // 500 MB announced (within the 512 MiB limit), 10 bytes sent.
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    stream
        .write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$500000000\r\n0123456789")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut client = RawClient::resp(server.addr()).await;
    assert_eq!(client.cmd("PING").await, simple("PONG"));
    let rss = client.cmd("INFO memory").await;
    let text = String::from_utf8_lossy(rss.as_bytes().unwrap_or_default()).into_owned();
    let rss: u64 = text
        .lines()
        .find_map(|line| line.strip_prefix("used_memory_rss:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("INFO memory reports used_memory_rss");
    assert!(
        rss < 200 * 1024 * 1024,
        "resident memory {rss} after a 500 MB claim"
    );
    drop(stream);
    server.stop().await;
}

#[tokio::test]
async fn inline_lines_over_the_limit_are_refused() {
    let config = Config {
        max_inline_len: 1024,
        ..Config::default()
    };
    let server = TestServer::start(config).await;
    let answer = answer_to(&server, &[b'a'; 5000]).await;
    assert!(
        answer.starts_with("-ERR Protocol error: too big inline request"),
        "{answer}"
    );
    still_serves(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn garbage_after_a_valid_frame() {
    let server = TestServer::standalone().await;
    let mut client = RawClient::resp(server.addr()).await;
    client
        .send_raw(b"*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n\xff\xfe*\r\n")
        .await;
    assert_eq!(client.read_frame().await, Some(simple("PONG")));
    assert_eq!(client.read_frame().await, Some(simple("PONG")));
    // The garbage is read as an inline command.
    let third = client.read_frame().await;
    assert!(matches!(third, Some(Frame::Error(_))), "{third:?}");
    still_serves(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn inline_commands_work_like_redis() {
    let server = TestServer::standalone().await;
    let answer = answer_to(&server, b"SET k \"hello world\"\r\nGET k\nQUIT\r\n").await;
    assert_eq!(answer, "+OK\r\n$11\r\nhello world\r\n+OK\r\n");
    server.stop().await;
}

#[tokio::test]
async fn strangers_may_only_declare_small_requests_until_they_authenticate() {
    let server = TestServer::start(Config {
        requirepass: Some("s3cret".into()),
        ..Config::default()
    })
    .await;
    // Before AUTH: at most 10 arguments of at most 16 KiB, as in Redis. The
    // error comes from the header alone; nothing waits for the body.
    let cases: &[(&[u8], &str)] = &[
        (
            b"*11\r\n",
            "-ERR Protocol error: unauthenticated multibulk length\r\n",
        ),
        (
            b"*2\r\n$3\r\nGET\r\n$16385\r\n",
            "-ERR Protocol error: unauthenticated bulk length\r\n",
        ),
        // A wrong password authenticates nothing.
        (
            b"AUTH wrong\r\n*11\r\n",
            "-WRONGPASS invalid username-password pair or user is disabled.\r\n\
             -ERR Protocol error: unauthenticated multibulk length\r\n",
        ),
    ];
    for &(bytes, expected) in cases {
        assert_eq!(
            answer_to(&server, bytes).await,
            expected,
            "for {:?}",
            String::from_utf8_lossy(bytes)
        );
    }
    // After AUTH, the configured limits: a request of 11 arguments and a
    // 100 KB value are fine.
    let mut client = RawClient::resp(server.addr()).await;
    assert_eq!(client.cmd("AUTH s3cret").await, simple("OK"));
    let value = vec![b'v'; 100_000];
    assert_eq!(client.call(&[b"SET", b"big", &value]).await, simple("OK"));
    assert_eq!(client.cmd("MSET a 1 b 2 c 3 d 4 e 5").await, simple("OK"));
    server.stop().await;
}
