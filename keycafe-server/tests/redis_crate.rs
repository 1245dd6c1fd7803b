//! The `redis` crate, an unmodified Redis client library, against a node.

use keycafe_server::test_util::TestServer;
use redis::AsyncCommands;

async fn connect(server: &TestServer) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(format!("redis://{}/", server.addr())).expect("valid url");
    client
        .get_multiplexed_async_connection()
        .await
        .expect("connects")
}

#[tokio::test]
async fn strings_and_expiry() {
    let server = TestServer::standalone().await;
    let mut con = connect(&server).await;

    let _: () = con.set("greeting", "hello").await.unwrap();
    let value: Option<String> = con.get("greeting").await.unwrap();
    assert_eq!(value.as_deref(), Some("hello"));
    let missing: Option<String> = con.get("no_key").await.unwrap();
    assert_eq!(missing, None);

    let _: () = con.set_ex("session", "data", 100).await.unwrap();
    let ttl: i64 = con.ttl("session").await.unwrap();
    assert!((99..=100).contains(&ttl), "ttl {ttl}");

    let n: i64 = con.incr("counter", 5).await.unwrap();
    assert_eq!(n, 5);
    let deleted: i64 = con
        .del(&["greeting", "session", "counter", "nosuch"])
        .await
        .unwrap();
    assert_eq!(deleted, 3);
    server.stop().await;
}

#[tokio::test]
async fn binary_keys_and_values() {
    let server = TestServer::standalone().await;
    let mut con = connect(&server).await;
    let key: Vec<u8> = vec![0, 255, b'\r', b'\n', 1, 2, 3];
    let value: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    let _: () = con.set(&key, &value).await.unwrap();
    let got: Vec<u8> = con.get(&key).await.unwrap();
    assert_eq!(got, value);
    server.stop().await;
}

#[tokio::test]
async fn four_megabyte_values() {
    let server = TestServer::standalone().await;
    let mut con = connect(&server).await;
    let value: Vec<u8> = (0..4 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let _: () = con.set("big", &value).await.unwrap();
    let got: Vec<u8> = con.get("big").await.unwrap();
    assert_eq!(got.len(), value.len());
    assert!(got == value, "4 MB value round-trips unchanged");
    let len: usize = con.strlen("big").await.unwrap();
    assert_eq!(len, value.len());
    server.stop().await;
}

#[tokio::test]
async fn a_thousand_pipelined_commands_answer_in_order() {
    let server = TestServer::standalone().await;
    let mut con = connect(&server).await;
    let mut pipe = redis::pipe();
    for i in 0..1000 {
        pipe.set(format!("key:{i}"), i).ignore();
        pipe.incr(format!("key:{i}"), 1);
    }
    let results: Vec<i64> = pipe.query_async(&mut con).await.unwrap();
    assert_eq!(results, (1..=1000).collect::<Vec<i64>>());

    let keys: Vec<String> = (0..1000).map(|i| format!("key:{i}")).collect();
    let values: Vec<i64> = con.mget(&keys).await.unwrap();
    assert_eq!(values, (1..=1000).collect::<Vec<i64>>());
    server.stop().await;
}

#[tokio::test]
async fn cluster_client_sees_a_one_node_cluster() {
    use redis::cluster::ClusterClient;
    let server = TestServer::standalone().await;
    let client = ClusterClient::new(vec![format!("redis://{}/", server.addr())]).unwrap();
    let mut con = client
        .get_async_connection()
        .await
        .expect("cluster connects");
    for i in 0..200 {
        let _: () = con.set(format!("k{i}"), i).await.unwrap();
    }
    for i in 0..200 {
        let v: i64 = con.get(format!("k{i}")).await.unwrap();
        assert_eq!(v, i);
    }
    server.stop().await;
}
