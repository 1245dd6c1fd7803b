//! What golden scripts cannot pin down because it varies from run to run:
//! a slow command lands in the slow log (with its duration, time, client
//! address and name) and in the latency monitor, and INFO's commandstats and
//! errorstats count exactly what ran: pipelined, inside EXEC, refused.

mod common;

use common::RawClient;
use keycafe_core::Frame;
use keycafe_server::test_util::TestServer;

/// INFO `section` as `field -> value` pairs.
async fn info(client: &mut RawClient, section: &str) -> Vec<(String, String)> {
    let Frame::Bulk(text) = client.cmd(&format!("INFO {section}")).await else {
        panic!("INFO answers a bulk string");
    };
    String::from_utf8_lossy(&text)
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.split_once(':'))
        .map(|(field, value)| (field.to_string(), value.to_string()))
        .collect()
}

/// One command's `cmdstat_` line as numbers: calls, rejected, failed (usec
/// varies).
async fn cmdstat(client: &mut RawClient, name: &str) -> Option<(u64, u64, u64)> {
    let stats = info(client, "commandstats").await;
    let (_, value) = stats
        .into_iter()
        .find(|(field, _)| *field == format!("cmdstat_{name}"))?;
    let number = |key: &str| -> u64 {
        value
            .split(',')
            .find_map(|pair| pair.strip_prefix(&format!("{key}=")))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{key} in {value}"))
    };
    Some((
        number("calls"),
        number("rejected_calls"),
        number("failed_calls"),
    ))
}

fn ok() -> Frame {
    common::simple("OK")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_keys_lands_in_the_slowlog_and_the_latency_monitor() {
    let server = TestServer::standalone().await;
    let mut client = RawClient::resp(server.addr()).await;
    assert_eq!(client.cmd("CLIENT SETNAME slow-one").await, ok());
    // 200,000 keys: KEYS takes well over a millisecond to list them, even
    // in an optimised build, and a PING does not.
    for batch in 0..200 {
        let mut args: Vec<Vec<u8>> = vec![b"MSET".to_vec()];
        for i in 0..1000 {
            args.push(format!("key:{batch}:{i}").into_bytes());
            args.push(b"v".to_vec());
        }
        let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        assert_eq!(client.call(&args).await, ok());
    }
    assert_eq!(client.cmd("SLOWLOG RESET").await, ok());
    assert_eq!(
        client.cmd("CONFIG SET latency-monitor-threshold 5").await,
        ok()
    );
    let Frame::Array(keys) = client.cmd("KEYS *").await else {
        panic!("KEYS answers an array");
    };
    assert_eq!(keys.len(), 200_000);

    let Frame::Array(entries) = client.cmd("SLOWLOG GET -1").await else {
        panic!("SLOWLOG GET answers an array");
    };
    let keys_entry = entries
        .iter()
        .find_map(|entry| match entry {
            Frame::Array(fields)
                if fields.get(3)
                    == Some(&Frame::Array(vec![common::bulk("KEYS"), common::bulk("*")])) =>
            {
                Some(fields.clone())
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("KEYS * in the slow log: {entries:?}"));
    let [
        Frame::Integer(_id),
        Frame::Integer(time),
        Frame::Integer(micros),
        _,
        Frame::Bulk(addr),
        Frame::Bulk(name),
    ] = &keys_entry[..]
    else {
        panic!("six fields: {keys_entry:?}");
    };
    assert!(
        *micros >= 10_000,
        "logged at {micros} µs, under the threshold"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - 60..=now).contains(time), "{time} is not now ({now})");
    let addr = String::from_utf8_lossy(addr);
    let (ip, port) = addr.rsplit_once(':').expect("ip:port");
    assert_eq!(ip, "127.0.0.1");
    assert_ne!(
        port.parse::<u16>().ok(),
        Some(server.port()),
        "the client's port"
    );
    assert_eq!(&name[..], b"slow-one");
    assert!(
        matches!(client.cmd("SLOWLOG LEN").await, Frame::Integer(n) if n >= 1),
        "SLOWLOG LEN counts it"
    );

    // The latency monitor saw a `command` event at least as long.
    let Frame::Array(events) = client.cmd("LATENCY LATEST").await else {
        panic!("LATENCY LATEST answers an array");
    };
    let command = events
        .iter()
        .find(|event| matches!(event, Frame::Array(f) if f[0] == common::bulk("command")))
        .unwrap_or_else(|| panic!("a command event: {events:?}"));
    let Frame::Array(fields) = command else {
        unreachable!()
    };
    assert!(matches!(fields[3], Frame::Integer(max) if max >= 1));
    let Frame::Array(history) = client.cmd("LATENCY HISTORY command").await else {
        panic!("LATENCY HISTORY answers an array");
    };
    assert!(!history.is_empty());
    assert_eq!(client.cmd("LATENCY RESET").await, Frame::Integer(1));

    // SLOWLOG RESET empties it; the log then holds only what comes after.
    assert_eq!(client.cmd("SLOWLOG RESET").await, ok());
    assert_eq!(
        client.cmd("CONFIG SET slowlog-log-slower-than -1").await,
        ok()
    );
    client.cmd("KEYS *").await;
    assert_eq!(client.cmd("SLOWLOG LEN").await, Frame::Integer(0));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commandstats_count_what_ran() {
    let server = TestServer::standalone().await;
    let mut client = RawClient::resp(server.addr()).await;
    assert_eq!(client.cmd("CONFIG RESETSTAT").await, ok());

    // A pipeline of 100 SETs and 50 GETs in one write: one batch.
    let mut pipeline = Vec::new();
    for i in 0..100 {
        pipeline.extend_from_slice(format!("SET k{i} v\r\n").as_bytes());
    }
    for i in 0..50 {
        pipeline.extend_from_slice(format!("GET k{i}\r\n").as_bytes());
    }
    client.send_raw(&pipeline).await;
    for _ in 0..150 {
        client.read_frame().await.expect("a reply");
    }
    assert_eq!(cmdstat(&mut client, "set").await, Some((100, 0, 0)));
    assert_eq!(cmdstat(&mut client, "get").await, Some((50, 0, 0)));

    // Refused before running (arity), failed while running (not a number).
    client.cmd("GET").await;
    client.cmd("SET s text").await;
    client.cmd("INCR s").await;
    assert_eq!(cmdstat(&mut client, "get").await, Some((50, 1, 0)));
    assert_eq!(cmdstat(&mut client, "incr").await, Some((1, 0, 1)));

    // Queuing is not a call; EXEC runs, and counts, each command.
    assert_eq!(client.cmd("MULTI").await, ok());
    client.cmd("INCR counter").await;
    client.cmd("INCR counter").await;
    client.cmd("EXEC").await;
    assert_eq!(cmdstat(&mut client, "incr").await, Some((3, 0, 1)));
    assert_eq!(cmdstat(&mut client, "exec").await, Some((1, 0, 0)));
    assert_eq!(cmdstat(&mut client, "multi").await, Some((1, 0, 0)));

    // Subcommands are counted apart; unknown commands and subcommands only
    // as errors.
    client.cmd("CONFIG GET maxmemory").await;
    client.cmd("CONFIG NOSUCH").await;
    client.cmd("NOSUCHCOMMAND").await;
    assert_eq!(cmdstat(&mut client, "config|get").await, Some((1, 0, 0)));
    assert_eq!(cmdstat(&mut client, "config").await, None);
    let stats = info(&mut client, "stats").await;
    let errors = stats
        .iter()
        .find(|(field, _)| field == "total_error_replies")
        .map(|(_, value)| value.clone());
    // GET (arity), INCR s, CONFIG NOSUCH, NOSUCHCOMMAND.
    assert_eq!(errors.as_deref(), Some("4"));
    let errorstats = info(&mut client, "errorstats").await;
    assert_eq!(
        errorstats,
        [("errorstat_ERR".to_string(), "count=4".to_string())]
    );

    // Other connections' counts reach the node's at the end of their
    // batches, and RESETSTAT starts every counter again.
    let mut other = RawClient::resp(server.addr()).await;
    other.cmd("GET k1").await;
    assert_eq!(cmdstat(&mut client, "get").await, Some((51, 1, 0)));
    assert_eq!(client.cmd("CONFIG RESETSTAT").await, ok());
    assert_eq!(cmdstat(&mut client, "get").await, None);
    let errorstats = info(&mut client, "errorstats").await;
    assert!(errorstats.is_empty(), "{errorstats:?}");
    // RESETSTAT itself is counted after the reset, as in Redis.
    assert_eq!(
        cmdstat(&mut client, "config|resetstat").await,
        Some((1, 0, 0))
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_has_the_cpu_persistence_and_every_section_for_all() {
    let server = TestServer::standalone().await;
    let mut client = RawClient::resp(server.addr()).await;
    client.cmd("SET a 1").await;
    let cpu = info(&mut client, "cpu").await;
    let fields: Vec<&str> = cpu.iter().map(|(field, _)| field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "used_cpu_sys",
            "used_cpu_user",
            "used_cpu_sys_children",
            "used_cpu_user_children",
            "used_cpu_sys_main_thread",
            "used_cpu_user_main_thread"
        ]
    );
    let persistence = info(&mut client, "persistence").await;
    let field = |name: &str| {
        persistence
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    };
    assert_eq!(field("loading"), Some("0"));
    assert_eq!(field("aof_enabled"), Some("0"));
    assert_eq!(field("rdb_changes_since_last_save"), Some("1"));

    let Frame::Bulk(all) = client.cmd("INFO all").await else {
        panic!("INFO answers a bulk string");
    };
    let headers: Vec<String> = String::from_utf8_lossy(&all)
        .lines()
        .filter(|line| line.starts_with("# "))
        .map(str::to_string)
        .collect();
    assert_eq!(
        headers,
        [
            "# Server",
            "# Clients",
            "# Memory",
            "# Persistence",
            "# Stats",
            "# Replication",
            "# CPU",
            "# Commandstats",
            "# Errorstats",
            "# Cluster",
            "# Keyspace"
        ]
    );
    let Frame::Bulk(default) = client.cmd("INFO").await else {
        panic!("INFO answers a bulk string");
    };
    let default = String::from_utf8_lossy(&default);
    assert!(default.contains("# CPU") && !default.contains("# Commandstats"));
    server.stop().await;
}
