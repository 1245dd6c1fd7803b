//! Authentication, the client limit, QUIT and graceful shutdown.

mod common;

use std::time::Duration;

use common::{RawClient, error, simple};
use keycafe_server::Config;
use keycafe_server::test_util::TestServer;

#[tokio::test]
async fn requirepass_gates_every_command_on_both_protocols() {
    let config = Config {
        requirepass: Some("s3cret".into()),
        ..Config::default()
    };
    let server = TestServer::start(config).await;
    for mut client in [
        RawClient::resp(server.addr()).await,
        RawClient::native(server.addr()).await,
    ] {
        assert_eq!(
            client.cmd("GET k").await,
            error("NOAUTH Authentication required.")
        );
        assert_eq!(
            client.cmd("AUTH wrong").await,
            error("WRONGPASS invalid username-password pair or user is disabled.")
        );
        assert_eq!(
            client.cmd("PING").await,
            error("NOAUTH Authentication required.")
        );
        assert_eq!(client.cmd("AUTH default s3cret").await, simple("OK"));
        assert_eq!(client.cmd("PING").await, simple("PONG"));
    }
    server.stop().await;
}

#[tokio::test]
async fn clients_over_the_limit_get_an_error() {
    let config = Config {
        maxclients: 2,
        ..Config::default()
    };
    let server = TestServer::start(config).await;
    let mut first = RawClient::resp(server.addr()).await;
    let mut second = RawClient::native(server.addr()).await;
    assert_eq!(first.cmd("PING").await, simple("PONG"));
    assert_eq!(second.cmd("PING").await, simple("PONG"));
    let mut third = RawClient::resp(server.addr()).await;
    third.send(&[b"PING"]).await;
    assert_eq!(
        third.read_frame().await,
        Some(error("ERR max number of clients reached"))
    );
    assert_eq!(
        third.read_frame().await,
        None,
        "connection closed after the error"
    );
    drop(first);
    // The freed place is available again once the node has seen the close.
    let mut again = None;
    for _ in 0..50 {
        let mut client = RawClient::resp(server.addr()).await;
        if client.cmd("PING").await == simple("PONG") {
            again = Some(client);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "a place frees up when a client leaves");
    server.stop().await;
}

#[tokio::test]
async fn quit_answers_then_closes() {
    let server = TestServer::standalone().await;
    let mut client = RawClient::resp(server.addr()).await;
    client.send(&[b"QUIT"]).await;
    client.send(&[b"PING"]).await;
    assert_eq!(client.read_frame().await, Some(simple("OK")));
    assert_eq!(client.read_frame().await, None);
    server.stop().await;
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_returns() {
    let server = TestServer::standalone().await;
    let mut idle = RawClient::resp(server.addr()).await;
    assert_eq!(idle.cmd("PING").await, simple("PONG"));
    server.stop().await; // panics if it does not return within 10 s
    assert_eq!(idle.read_frame().await, None);
}
