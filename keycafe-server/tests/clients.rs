//! CLIENT LIST, CLIENT KILL, CLIENT PAUSE, CLIENT REPLY, CLIENT NO-EVICT,
//! RESET and MONITOR with several connections at once: what one connection
//! sees of the others and does to them. (One connection alone:
//! `tests/scripts/client.txt`.)

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::cluster::{FakeCoordinator, config, eventually, range};
use common::{RawClient, bulk, error, simple};
use keycafe_core::Frame;
use keycafe_server::Config;
use keycafe_server::test_util::{TestServer, cluster_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A CLIENT LIST line's fields.
type Fields = HashMap<String, String>;

fn text(frame: &Frame) -> String {
    match frame {
        Frame::Bulk(bytes) | Frame::Verbatim { text: bytes, .. } => {
            String::from_utf8_lossy(bytes).into()
        }
        other => panic!("expected text, got {other:?}"),
    }
}

fn parse_lines(text: &str) -> Vec<Fields> {
    text.lines()
        .map(|line| {
            line.split(' ')
                .filter_map(|field| field.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

async fn client_list(client: &mut RawClient, filter: &str) -> Vec<Fields> {
    parse_lines(&text(&client.cmd(&format!("CLIENT LIST {filter}")).await))
}

/// A connection's own CLIENT INFO.
async fn own(client: &mut RawClient) -> Fields {
    parse_lines(&text(&client.cmd("CLIENT INFO").await)).remove(0)
}

/// `Some(fields)` of connection `id`, as another connection lists it.
async fn listed(by: &mut RawClient, id: &str) -> Option<Fields> {
    client_list(by, &format!("ID {id}")).await.pop()
}

/// True once the server has closed `client` (it is read to its end).
async fn closed(client: &mut RawClient) -> bool {
    for _ in 0..100_000 {
        if client.read_frame().await.is_none() {
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_list_shows_every_connection_as_of_its_last_batch() {
    let server = TestServer::standalone().await;
    let mut admin = RawClient::resp(server.addr()).await;
    let mut named = RawClient::resp(server.addr()).await;
    let mut in_multi = RawClient::resp(server.addr()).await;
    let mut watching = RawClient::resp(server.addr()).await;
    let ids = [
        own(&mut admin).await,
        own(&mut named).await,
        own(&mut watching).await,
        own(&mut in_multi).await,
    ];
    assert_eq!(named.cmd("CLIENT SETNAME alpha").await, simple("OK"));
    assert_eq!(
        named.cmd("CLIENT SETINFO LIB-NAME redis-py").await,
        simple("OK")
    );
    assert_eq!(
        named.cmd("CLIENT SETINFO LIB-VER 8.0.0").await,
        simple("OK")
    );
    assert_eq!(in_multi.cmd("MULTI").await, simple("OK"));
    assert_eq!(in_multi.cmd("SET k v").await, simple("QUEUED"));
    assert_eq!(watching.cmd("WATCH a b c").await, simple("OK"));
    assert_eq!(watching.cmd("CLIENT NO-EVICT on").await, simple("OK"));
    assert!(matches!(watching.cmd("HELLO 3").await, Frame::Map(_)));

    let all = client_list(&mut admin, "").await;
    assert_eq!(all.len(), 4, "{all:?}");
    let by_id: HashMap<String, Fields> = all.into_iter().map(|f| (f["id"].clone(), f)).collect();
    let me = &by_id[&ids[0]["id"]];
    assert_eq!(me["cmd"], "client|list");
    assert_eq!(me["addr"], ids[0]["addr"]);
    assert_eq!(me["laddr"], server.addr().to_string());
    let alpha = &by_id[&ids[1]["id"]];
    assert_eq!(alpha["name"], "alpha");
    assert_eq!(alpha["lib-name"], "redis-py");
    assert_eq!(alpha["lib-ver"], "8.0.0");
    assert_eq!(alpha["cmd"], "client|setinfo");
    assert_eq!(alpha["addr"], ids[1]["addr"]);
    assert_eq!(alpha["flags"], "N");
    let queued = &by_id[&ids[3]["id"]];
    assert_eq!(queued["flags"], "x");
    assert_eq!(queued["multi"], "1");
    assert_eq!(queued["cmd"], "set", "a queued command is the last one");
    assert!(queued["multi-mem"].parse::<usize>().unwrap() > 0);
    let watcher = &by_id[&ids[2]["id"]];
    assert_eq!(watcher["watch"], "3");
    assert_eq!(watcher["flags"], "e");
    assert_eq!(watcher["resp"], "3");
    for fields in by_id.values() {
        assert_eq!(fields["user"], "default");
        assert_eq!(fields["db"], "0");
        assert_eq!(fields.len(), 31, "every field of Redis 7.2's line");
    }

    // Filters: by id (unknown ids are skipped), by type.
    let two = client_list(
        &mut admin,
        &format!("ID {} 999999 {}", ids[1]["id"], ids[2]["id"]),
    )
    .await;
    let two: Vec<&str> = two.iter().map(|f| f["id"].as_str()).collect();
    assert_eq!(two, [ids[1]["id"].as_str(), ids[2]["id"].as_str()]);
    assert_eq!(client_list(&mut admin, "TYPE normal").await.len(), 4);
    assert!(client_list(&mut admin, "TYPE replica").await.is_empty());

    // A connection that leaves is no longer listed.
    drop(named);
    eventually("the closed connection is gone", async || {
        listed(&mut admin, &ids[1]["id"]).await.is_none()
    })
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_kill_closes_what_each_filter_names() {
    let server = TestServer::standalone().await;
    let mut admin = RawClient::resp(server.addr()).await;
    let admin_id = own(&mut admin).await["id"].clone();

    // ID.
    let mut victim = RawClient::resp(server.addr()).await;
    let id = own(&mut victim).await["id"].clone();
    assert_eq!(
        admin.cmd(&format!("CLIENT KILL ID {id}")).await,
        Frame::Integer(1)
    );
    assert!(closed(&mut victim).await);
    assert!(listed(&mut admin, &id).await.is_none());

    // The old form, by address: OK, then no such client.
    let mut victim = RawClient::resp(server.addr()).await;
    let addr = own(&mut victim).await["addr"].clone();
    assert_eq!(
        admin.cmd(&format!("CLIENT KILL {addr}")).await,
        simple("OK")
    );
    assert!(closed(&mut victim).await);
    assert_eq!(
        admin.cmd(&format!("CLIENT KILL {addr}")).await,
        error("ERR No such client")
    );

    // ADDR, with other filters that must match too.
    let mut victim = RawClient::resp(server.addr()).await;
    let fields = own(&mut victim).await;
    let wrong_id = format!("CLIENT KILL ADDR {} ID {admin_id}", fields["addr"]);
    assert_eq!(admin.cmd(&wrong_id).await, Frame::Integer(0));
    let right = format!("CLIENT KILL ADDR {} TYPE normal", fields["addr"]);
    assert_eq!(admin.cmd(&right).await, Frame::Integer(1));
    assert!(closed(&mut victim).await);

    // LADDR and USER name every connection but the one asking (SKIPME).
    let mut first = RawClient::resp(server.addr()).await;
    let mut second = RawClient::resp(server.addr()).await;
    own(&mut first).await;
    own(&mut second).await;
    let laddr = format!("CLIENT KILL LADDR {}", server.addr());
    assert_eq!(admin.cmd(&laddr).await, Frame::Integer(2));
    assert!(closed(&mut first).await && closed(&mut second).await);
    let mut third = RawClient::resp(server.addr()).await;
    own(&mut third).await;
    assert_eq!(
        admin.cmd("CLIENT KILL USER default").await,
        Frame::Integer(1)
    );
    assert!(closed(&mut third).await);

    // MAXAGE: only connections at least that old.
    let mut old = RawClient::resp(server.addr()).await;
    own(&mut old).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut young = RawClient::resp(server.addr()).await;
    let young_id = own(&mut young).await["id"].clone();
    // The admin is old too: SKIPME keeps it.
    assert_eq!(admin.cmd("CLIENT KILL MAXAGE 1").await, Frame::Integer(1));
    assert!(closed(&mut old).await);
    assert!(listed(&mut admin, &young_id).await.is_some());

    // SKIPME no: a connection may close itself, after its reply.
    assert_eq!(
        young
            .cmd(&format!("CLIENT KILL ID {young_id} SKIPME no"))
            .await,
        Frame::Integer(1)
    );
    assert!(closed(&mut young).await);
    assert_eq!(client_list(&mut admin, "").await.len(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_write_waits_and_then_completes() {
    let server = TestServer::standalone().await;
    let mut admin = RawClient::resp(server.addr()).await;
    let mut writer = RawClient::resp(server.addr()).await;
    let mut reader = RawClient::resp(server.addr()).await;
    let writer_id = own(&mut writer).await["id"].clone();
    assert_eq!(admin.cmd("CLIENT PAUSE 60000 WRITE").await, simple("OK"));
    // A request that would fail anyway is answered at once.
    assert_eq!(
        writer.cmd("SET k").await,
        error("ERR wrong number of arguments for 'set' command")
    );
    writer.send(&[b"SET", b"k", b"v"]).await;
    eventually("the write waits (flag b)", async || {
        listed(&mut admin, &writer_id)
            .await
            .is_some_and(|f| f["flags"] == "b")
    })
    .await;
    assert!(text(&admin.cmd("INFO clients").await).contains("blocked_clients:1\r\n"));
    // Reads go on, and see nothing of the paused write.
    assert_eq!(reader.cmd("GET k").await, Frame::Null);
    assert_eq!(admin.cmd("CLIENT UNPAUSE").await, simple("OK"));
    assert_eq!(writer.read_frame().await, Some(simple("OK")));
    assert_eq!(reader.cmd("GET k").await, bulk("v"));
    assert_eq!(listed(&mut admin, &writer_id).await.unwrap()["flags"], "N");
    assert!(text(&admin.cmd("INFO clients").await).contains("blocked_clients:0\r\n"));

    // A transaction's EXEC waits if it writes; its queuing was before.
    assert_eq!(writer.cmd("MULTI").await, simple("OK"));
    assert_eq!(writer.cmd("INCR n").await, simple("QUEUED"));
    assert_eq!(admin.cmd("CLIENT PAUSE 60000 WRITE").await, simple("OK"));
    writer.send(&[b"EXEC"]).await;
    eventually("EXEC waits", async || {
        listed(&mut admin, &writer_id)
            .await
            .is_some_and(|f| f["flags"].contains('b'))
    })
    .await;
    assert_eq!(reader.cmd("GET n").await, Frame::Null);
    assert_eq!(admin.cmd("CLIENT UNPAUSE").await, simple("OK"));
    assert_eq!(
        writer.read_frame().await,
        Some(Frame::Array(vec![Frame::Integer(1)]))
    );

    // ALL holds every command, CLIENT UNPAUSE included, until it runs out.
    let started = Instant::now();
    assert_eq!(admin.cmd("CLIENT PAUSE 300 ALL").await, simple("OK"));
    assert_eq!(reader.cmd("PING").await, simple("PONG"));
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "PING waited {:?}",
        started.elapsed()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_sees_other_clients_commands_as_redis_prints_them() {
    let server = TestServer::standalone().await;
    let mut monitor = RawClient::resp(server.addr()).await;
    let mut client = RawClient::resp(server.addr()).await;
    let addr = own(&mut client).await["addr"].clone();
    assert_eq!(monitor.cmd("MONITOR").await, simple("OK"));
    assert_eq!(client.cmd("SET k v").await, simple("OK"));
    assert!(matches!(client.cmd("AUTH secret").await, Frame::Error(_)));
    client.cmd("CLIENT LIST").await; // administrative: not shown
    client.cmd("NOSUCH").await; // refused before it ran: not shown
    assert_eq!(client.cmd("GET k").await, bulk("v"));
    assert_eq!(client.cmd("MULTI").await, simple("OK"));
    assert_eq!(client.cmd("INCR n").await, simple("QUEUED"));
    assert_eq!(
        client.cmd("EXEC").await,
        Frame::Array(vec![Frame::Integer(1)])
    );
    client.call(&[b"ECHO", b"tab\there \"quoted\" \x01"]).await;
    let expected = [
        r#""SET" "k" "v""#,
        r#""AUTH" "(redacted)""#,
        r#""GET" "k""#,
        r#""MULTI""#,
        r#""INCR" "n""#,
        r#""EXEC""#,
        r#""ECHO" "tab\there \"quoted\" \x01""#,
    ];
    for want in expected {
        let Some(Frame::Simple(line)) = monitor.read_frame().await else {
            panic!("a monitor line for {want}");
        };
        let line = String::from_utf8_lossy(&line).into_owned();
        let (time, rest) = line.split_once(' ').expect("a timestamp first");
        let (seconds, micros) = time.split_once('.').expect("seconds.micros");
        assert!(
            seconds.parse::<u64>().is_ok() && micros.len() == 6,
            "{line}"
        );
        assert_eq!(rest, format!("[0 {addr}] {want}"));
    }
    // A monitor may not touch the keyspace; RESET ends monitoring.
    assert_eq!(
        monitor.cmd("GET k").await,
        error("ERR Replica can't interact with the keyspace")
    );
    let line = monitor.cmd("PING").await;
    assert_eq!(line, simple("PONG"));
    assert!(
        matches!(monitor.read_frame().await, Some(Frame::Simple(l)) if l.ends_with(b"\"PING\"")),
        "a monitor sees its own PING"
    );
    assert_eq!(monitor.cmd("RESET").await, simple("RESET"));
    assert_eq!(client.cmd("SET k w").await, simple("OK"));
    assert_eq!(monitor.cmd("GET k").await, bulk("w"), "nothing more shown");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_that_does_not_read_is_cut_off_at_its_limit() {
    let server = TestServer::standalone().await;
    let mut admin = RawClient::resp(server.addr()).await;
    // Normal clients have no output limit (Redis's default), so a monitor
    // is held to the replica class's.
    let limit = "CONFIG SET client-output-buffer-limit \"replica 1mb 0 0\"";
    let set: Vec<Vec<u8>> = keycafe_core::resp::split_command_line(limit.as_bytes()).unwrap();
    let set: Vec<&[u8]> = set.iter().map(Vec::as_slice).collect();
    assert_eq!(admin.call(&set).await, simple("OK"));
    let mut monitor = RawClient::resp(server.addr()).await;
    let monitor_id = own(&mut monitor).await["id"].clone();
    assert_eq!(monitor.cmd("MONITOR").await, simple("OK"));
    // The monitor reads nothing from here on.
    let value = vec![b'x'; 64 << 10];
    let mut cut = false;
    for round in 0..1000 {
        assert_eq!(admin.call(&[b"SET", b"big", &value]).await, simple("OK"));
        if round % 16 == 15 && listed(&mut admin, &monitor_id).await.is_none() {
            cut = true;
            break;
        }
    }
    assert!(cut, "the monitor is still connected after 64 MB of lines");
    assert!(closed(&mut monitor).await);
    assert_eq!(admin.cmd("GET big").await, bulk(&value));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_returns_a_connection_to_its_first_state() {
    let server = TestServer::start(Config {
        requirepass: Some("pw".into()),
        ..Config::default()
    })
    .await;
    let mut client = RawClient::resp(server.addr()).await;
    assert_eq!(client.cmd("AUTH pw").await, simple("OK"));
    assert!(matches!(
        client.cmd("HELLO 3 SETNAME named").await,
        Frame::Map(_)
    ));
    assert_eq!(client.cmd("CLIENT NO-EVICT on").await, simple("OK"));
    assert_eq!(client.cmd("WATCH w").await, simple("OK"));
    assert_eq!(client.cmd("MULTI").await, simple("OK"));
    assert_eq!(client.cmd("SET a 1").await, simple("QUEUED"));
    assert_eq!(client.cmd("RESET").await, simple("RESET"));
    // Not authenticated any more; RESET itself needs no password.
    assert_eq!(
        client.cmd("GET a").await,
        error("NOAUTH Authentication required.")
    );
    assert_eq!(client.cmd("RESET").await, simple("RESET"));
    assert_eq!(client.cmd("AUTH pw").await, simple("OK"));
    // RESP2 again: TRACKINGINFO is an array, not a map.
    assert!(matches!(
        client.cmd("CLIENT TRACKINGINFO").await,
        Frame::Array(_)
    ));
    assert_eq!(client.cmd("CLIENT GETNAME").await, Frame::Null);
    assert_eq!(client.cmd("EXEC").await, error("ERR EXEC without MULTI"));
    assert_eq!(client.cmd("GET a").await, Frame::Null);
    let fields = own(&mut client).await;
    assert_eq!(
        (&fields["flags"][..], &fields["watch"][..]),
        ("N", "0"),
        "{fields:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_reply_off_and_skip_drop_replies() {
    let server = TestServer::standalone().await;
    let mut client = RawClient::resp(server.addr()).await;
    client
        .send_raw(
            b"CLIENT REPLY OFF\r\nSET a 1\r\nWAIT 0 0\r\nGET a\r\nCLIENT REPLY ON\r\n\
              GET a\r\nCLIENT REPLY SKIP\r\nGET a\r\nPING\r\n",
        )
        .await;
    assert_eq!(client.read_frame().await, Some(simple("OK")));
    assert_eq!(client.read_frame().await, Some(bulk("1")));
    assert_eq!(client.read_frame().await, Some(simple("PONG")));
    assert_eq!(client.cmd("CLIENT REPLY ON").await, simple("OK"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_evict_keeps_a_client_past_maxmemory_clients() {
    let server = TestServer::start(Config {
        maxmemory_clients: 2 << 20,
        ..Config::default()
    })
    .await;
    let mut kept = RawClient::resp(server.addr()).await;
    assert_eq!(kept.cmd("CLIENT NO-EVICT on").await, simple("OK"));
    let value = vec![b'x'; 8 << 20];
    assert_eq!(kept.call(&[b"SET", b"big", &value]).await, simple("OK"));
    // The same request from a client without the flag closes it.
    let mut other = TcpStream::connect(server.addr()).await.unwrap();
    let mut request = BytesMut::new();
    keycafe_core::Protocol::Resp2
        .encode_request(&[b"SET".as_slice(), b"other", &value], &mut request);
    // The node closes it mid-request, so the send may fail too.
    let _ = other.write_all(&request).await;
    let mut answer = Vec::new();
    let closing = other.read_to_end(&mut answer);
    tokio::time::timeout(Duration::from_secs(10), closing)
        .await
        .expect("the client without NO-EVICT is closed")
        .ok();
    assert!(!answer.starts_with(b"+OK"), "its SET ran");
    assert_eq!(kept.cmd("EXISTS big other").await, Frame::Integer(1));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_stream_is_listed_with_flag_s_and_bus_links_are_not() {
    let mut coordinator = FakeCoordinator::start().await;
    let node = |addr: String| async move {
        TestServer::start(Config {
            node_timeout_ms: 2000,
            ..cluster_config(&addr)
        })
        .await
    };
    let primary = node(coordinator.addr.clone()).await;
    let p = coordinator.registered.recv().await.unwrap();
    let replica = node(coordinator.addr.clone()).await;
    let mut r = coordinator.registered.recv().await.unwrap();
    r.replica_of = Some(p.id.clone());
    coordinator
        .push(&config(
            1,
            &[p.clone(), r.clone()],
            vec![range(0, 16383, &p)],
            vec![],
        ))
        .await;
    let mut admin = RawClient::resp(primary.addr()).await;
    eventually("the replica attached", async || {
        client_list(&mut admin, "TYPE replica").await.len() == 1
    })
    .await;
    let link = client_list(&mut admin, "TYPE slave").await.remove(0);
    assert_eq!(link["flags"], "S");
    assert_eq!(link["cmd"], "kc.psync");
    // The admin and the replica's stream; no gossip or coordinator link.
    assert_eq!(client_list(&mut admin, "").await.len(), 2);
    assert!(client_list(&mut admin, "TYPE normal").await.len() == 1);
    // Killed, it is made again at once, with a new id.
    assert_eq!(
        admin.cmd("CLIENT KILL TYPE replica").await,
        Frame::Integer(1)
    );
    eventually("the replica came back", async || {
        client_list(&mut admin, "TYPE replica")
            .await
            .first()
            .is_some_and(|again| again["id"] != link["id"])
    })
    .await;
    replica.stop().await;
    primary.stop().await;
}
