//! The metrics port of a running node, over HTTP: `/metrics` parsed as
//! Prometheus parses it, `/health`, what else answers 404, a port that is
//! taken, and a connection that must not hold up the node's shutdown.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::RawClient;
use common::cluster::{FakeCoordinator, config, eventually, range};
use keycafe_core::Frame;
use keycafe_server::Config;
use keycafe_server::test_util::{TestServer, cluster_config};
use prometheus_parse::{Scrape, Value};
use tokio::io::AsyncWriteExt;

/// A node with a metrics port the system picks.
fn with_metrics(config: Config) -> Config {
    Config {
        metrics_port: Some(0),
        ..config
    }
}

/// Where the node's metrics port is, as `CONFIG GET metrics-port` says.
async fn metrics_addr(client: &mut RawClient, server: &TestServer) -> SocketAddr {
    let reply = client.cmd("CONFIG GET metrics-port").await;
    let Frame::Array(pair) = reply else {
        panic!("CONFIG GET answered {reply:?}");
    };
    let Some(Frame::Bulk(port)) = pair.get(1) else {
        panic!("CONFIG GET answered {pair:?}");
    };
    let port: u16 = std::str::from_utf8(port).unwrap().parse().unwrap();
    assert_ne!(port, 0, "the port bound, not the 0 asked for");
    SocketAddr::new(server.addr().ip(), port)
}

/// `GET path`: the status and the body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String, Option<String>) {
    let response = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    (status, response.text().await.unwrap(), content_type)
}

async fn scrape(addr: SocketAddr) -> Scrape {
    let (status, text, content_type) = get(addr, "/metrics").await;
    assert_eq!(status, 200, "{text}");
    let content_type = content_type.expect("a content type");
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    Scrape::parse(text.lines().map(|line| Ok(line.to_string()))).expect("Prometheus text")
}

/// The value of the one unlabelled sample of `name`.
fn value(scrape: &Scrape, name: &str) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name)
        .map(|s| match s.value {
            Value::Gauge(v) | Value::Counter(v) => v,
            ref other => panic!("{name}: {other:?}"),
        })
}

#[tokio::test]
async fn a_node_serves_its_figures_and_its_health_over_http() {
    let server = TestServer::start(with_metrics(Config::default())).await;
    let mut client = RawClient::resp(server.addr()).await;
    let addr = metrics_addr(&mut client, &server).await;

    for set in ["SET a 1", "SET b 2", "SET c 3 EX 100"] {
        assert_eq!(client.cmd(set).await, common::simple("OK"));
    }
    assert_eq!(client.cmd("GET a").await, common::bulk("1"));
    assert_eq!(client.cmd("GET nope").await, Frame::Null);
    let m = scrape(addr).await;
    assert_eq!(value(&m, "keycafe_node_keys"), Some(3.0));
    assert_eq!(value(&m, "keycafe_expires"), Some(1.0));
    // CONFIG GET and the five above; each batch is counted before its
    // replies are sent.
    assert_eq!(
        value(&m, "keycafe_node_commands_processed_total"),
        Some(6.0)
    );
    assert_eq!(value(&m, "keycafe_keyspace_hits_total"), Some(1.0));
    assert_eq!(value(&m, "keycafe_keyspace_misses_total"), Some(1.0));
    assert_eq!(value(&m, "keycafe_connected_clients"), Some(1.0));
    assert!(value(&m, "keycafe_node_used_memory_bytes").is_some_and(|b| b > 0.0));
    assert_eq!(value(&m, "keycafe_aof_enabled"), Some(0.0));
    assert_eq!(value(&m, "keycafe_node_slots"), None, "standalone");
    let info = m
        .samples
        .iter()
        .find(|s| s.metric == "keycafe_info")
        .expect("keycafe_info");
    assert_eq!(info.labels.get("mode"), Some("standalone"));
    assert_eq!(info.labels.get("role"), Some("primary"));

    // A scrape reads what INFO reads.
    // RESP2 has no verbatim strings: the text comes as a bulk string.
    let Frame::Bulk(text) = client.cmd("INFO keyspace").await else {
        panic!("INFO answers text");
    };
    let text = String::from_utf8_lossy(&text).into_owned();
    assert!(text.contains("db0:keys=3,expires=1,"), "{text}");

    assert_eq!(get(addr, "/health").await.0, 200);
    assert_eq!(get(addr, "/health").await.1, "ok\n");
    for path in ["/", "/metric", "/metrics/x", "/health/"] {
        assert_eq!(get(addr, path).await.0, 404, "{path}");
    }
    let posted = reqwest::Client::new()
        .post(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status().as_u16(), 404);
    server.stop().await;
}

#[tokio::test]
async fn in_cluster_mode_the_slots_and_the_epoch_are_the_nodes_own() {
    let mut coordinator = FakeCoordinator::start().await;
    let server = TestServer::start(with_metrics(cluster_config(&coordinator.addr))).await;
    let node = coordinator.registered.recv().await.unwrap();
    coordinator
        .push(&config(
            7,
            std::slice::from_ref(&node),
            vec![range(0, 99, &node)],
            vec![],
        ))
        .await;
    let mut client = RawClient::resp(server.addr()).await;
    let addr = metrics_addr(&mut client, &server).await;
    eventually("the configuration shows", async || {
        value(&scrape(addr).await, "keycafe_node_config_epoch") == Some(7.0)
    })
    .await;
    let m = scrape(addr).await;
    assert_eq!(value(&m, "keycafe_node_slots"), Some(100.0));
    let info = m
        .samples
        .iter()
        .find(|s| s.metric == "keycafe_info")
        .expect("keycafe_info");
    assert_eq!(info.labels.get("node"), Some(node.id.as_str()));
    assert_eq!(info.labels.get("mode"), Some("cluster"));
    server.stop().await;
}

#[tokio::test]
async fn a_taken_metrics_port_stops_the_start_and_says_which() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = taken.local_addr().unwrap().port();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = Config {
        metrics_port: Some(port),
        ..Config::default()
    };
    let run = keycafe_server::run(config, listener, std::future::pending());
    let result = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("the start fails at once");
    let err = format!("{:#}", result.expect_err("the port is taken"));
    assert!(
        err.contains(&format!("metrics_port {port}")),
        "the error names the port: {err}"
    );
}

#[tokio::test]
async fn a_stalled_metrics_connection_does_not_hold_up_the_shutdown() {
    let server = TestServer::start(with_metrics(Config::default())).await;
    let mut client = RawClient::resp(server.addr()).await;
    let addr = metrics_addr(&mut client, &server).await;
    drop(client);
    // Half a request head, then nothing.
    let mut stalled = tokio::net::TcpStream::connect(addr).await.unwrap();
    stalled
        .write_all(b"GET /metrics HTTP/1.1\r\n")
        .await
        .unwrap();
    // An idle keep-alive connection too.
    let idle = reqwest::Client::new();
    assert_eq!(
        idle.get(format!("http://{addr}/health"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    // Both are closed when the node stops (a second's grace for an answer
    // under way), not when their 10 s header timeout runs out.
    tokio::time::timeout(Duration::from_secs(5), server.stop())
        .await
        .expect("the node stops without waiting for the metrics connections");
    drop(stalled);
}
