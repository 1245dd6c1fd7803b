//! Active expiry: keys nobody touches again are reclaimed anyway.

mod common;

use std::time::Duration;

use bytes::BytesMut;
use common::RawClient;
use keycafe_core::{Frame, Protocol};
use keycafe_server::Config;
use keycafe_server::test_util::TestServer;

/// The `keys=` figure of INFO keyspace: keys held, including expired ones
/// that have not been reclaimed yet.
async fn keys_held(client: &mut RawClient) -> u64 {
    let Frame::Bulk(info) = client.cmd("INFO keyspace").await else {
        panic!("INFO answers with a bulk string");
    };
    let info = String::from_utf8_lossy(&info).into_owned();
    info.split("keys=")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().expect("keys= is a number"))
}

#[tokio::test]
async fn untouched_expired_keys_are_reclaimed() {
    let config = Config {
        expiry_interval_ms: 20,
        ..Config::default()
    };
    let server = TestServer::start(config).await;
    let mut client = RawClient::resp(server.addr()).await;
    // One pipelined batch, so that loading takes far less than the TTL.
    let mut batch = BytesMut::new();
    for i in 0..2000 {
        let key = format!("volatile:{i}");
        Protocol::Resp2.encode_request(&[b"SET", key.as_bytes(), b"v", b"PX", b"300"], &mut batch);
    }
    for i in 0..100 {
        let key = format!("persistent:{i}");
        Protocol::Resp2.encode_request(&[b"SET", key.as_bytes(), b"v"], &mut batch);
    }
    client.send_raw(&batch).await;
    for _ in 0..2100 {
        assert_eq!(client.read_frame().await, Some(common::simple("OK")));
    }
    assert_eq!(keys_held(&mut client).await, 2100);

    // No command touches the volatile keys again; only INFO looks.
    let mut held = 0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        held = keys_held(&mut client).await;
        if held == 100 {
            break;
        }
    }
    assert_eq!(held, 100, "only the persistent keys remain");
    let Frame::Bulk(stats) = client.cmd("INFO stats").await else {
        panic!("bulk")
    };
    assert!(String::from_utf8_lossy(&stats).contains("expired_keys:2000"));
    server.stop().await;
}
