//! SCAN under concurrent writes: every key present for the whole scan is
//! returned, exactly once, while other clients insert and delete keys —
//! including keys of the very slots being scanned, so that their tables grow
//! and shrink (rehash) between the steps of the scan (docs/keyspace.md).
//! And in a cluster: SCAN, KEYS and RANDOMKEY show the keys of the node's
//! own slots only, and two-key commands need one slot. And the tools built
//! on SCAN work: `redis-cli --scan` and `--bigkeys`, the `redis` crate's
//! `scan_match`.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::RawClient;
use common::cluster::{FakeCoordinator, config, eventually, range};
use keycafe_core::cluster::NodeInfo;
use keycafe_core::{Frame, key_slot};
use keycafe_server::test_util::{TestServer, cluster_config};

/// Hash tags shared by stable and churning keys: the slots that rehash.
const HOT_TAGS: [&str; 4] = ["{hot0}", "{hot1}", "{hot2}", "{hot3}"];
/// Keys written before the scans and never touched again.
const STABLE_PLAIN: usize = 1200;
const STABLE_PER_TAG: usize = 100;
/// Keys one churn round adds to a hot slot and then deletes: enough to
/// grow its table several times over, and to shrink it back.
const CHURN_BATCH: usize = 400;
const CHURNERS: usize = 2;
/// Full scans to run, and churn rounds that must complete while they run.
const SCANS: usize = 6;
const ROUNDS_DURING_SCANS: u64 = 4;
/// Time allowed for all of it (the work itself takes a second or two).
const DEADLINE: Duration = Duration::from_secs(60);

fn stable_keys() -> Vec<String> {
    let plain = (0..STABLE_PLAIN).map(|i| format!("stable:{i}"));
    let tagged = HOT_TAGS
        .iter()
        .flat_map(|tag| (0..STABLE_PER_TAG).map(move |i| format!("{tag}stable:{i}")));
    plain.chain(tagged).collect()
}

/// Sends every command, then reads every reply: one round trip per batch.
async fn pipeline(client: &mut RawClient, commands: &[Vec<Vec<u8>>]) {
    for command in commands {
        let args: Vec<&[u8]> = command.iter().map(Vec::as_slice).collect();
        client.send(&args).await;
    }
    for _ in commands {
        let reply = client.read_frame().await.expect("a reply");
        assert!(!matches!(reply, Frame::Error(_)), "{reply:?}");
    }
}

fn command(words: &[&str]) -> Vec<Vec<u8>> {
    words.iter().map(|w| w.as_bytes().to_vec()).collect()
}

/// Inserts a batch into each hot slot, then deletes it, until told to stop
/// (or a bounded number of rounds). Counts completed rounds.
async fn churn(
    addr: std::net::SocketAddr,
    id: usize,
    stop: Arc<AtomicBool>,
    rounds: Arc<AtomicU64>,
) {
    let mut client = RawClient::resp(addr).await;
    for round in 0..10_000 {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let tag = HOT_TAGS[round % HOT_TAGS.len()];
        let keys: Vec<String> = (0..CHURN_BATCH)
            .map(|i| format!("{tag}churn:{id}:{round}:{i}"))
            .collect();
        let sets: Vec<_> = keys.iter().map(|k| command(&["SET", k, "x"])).collect();
        pipeline(&mut client, &sets).await;
        let dels: Vec<_> = keys.iter().map(|k| command(&["DEL", k])).collect();
        pipeline(&mut client, &dels).await;
        rounds.fetch_add(1, Ordering::Relaxed);
    }
}

/// One full SCAN: how many times each key came back.
async fn full_scan(client: &mut RawClient) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    let mut cursor = b"0".to_vec();
    for _ in 0..=16384 {
        let reply = client.call(&[b"SCAN", &cursor, b"COUNT", b"20"]).await;
        let Frame::Array(parts) = reply else {
            panic!("SCAN answers an array, not {reply:?}");
        };
        let [Frame::Bulk(next), Frame::Array(page)] = &parts[..] else {
            panic!("SCAN answers a cursor and a page, not {parts:?}");
        };
        for key in page {
            let Frame::Bulk(key) = key else {
                panic!("a key is a bulk string, not {key:?}");
            };
            *seen
                .entry(String::from_utf8_lossy(key).into_owned())
                .or_insert(0) += 1;
        }
        if &next[..] == b"0" {
            return seen;
        }
        cursor = next.to_vec();
    }
    panic!("SCAN never returned cursor 0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_returns_every_key_present_throughout_while_others_write() {
    let server = TestServer::standalone().await;
    let addr = server.addr();
    let mut client = RawClient::resp(addr).await;
    let stable = stable_keys();
    let sets: Vec<_> = stable.iter().map(|k| command(&["SET", k, "v"])).collect();
    pipeline(&mut client, &sets).await;

    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicU64::new(0));
    let churners: Vec<_> = (0..CHURNERS)
        .map(|id| tokio::spawn(churn(addr, id, stop.clone(), rounds.clone())))
        .collect();
    let started = Instant::now();
    while rounds.load(Ordering::Relaxed) == 0 {
        assert!(started.elapsed() < DEADLINE, "the churn never got going");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let rounds_before = rounds.load(Ordering::Relaxed);
    let (mut scans, mut churn_keys_seen) = (0, 0);
    while scans < SCANS || rounds.load(Ordering::Relaxed) - rounds_before < ROUNDS_DURING_SCANS {
        assert!(
            started.elapsed() < DEADLINE,
            "{scans} scans and {} churn rounds in {DEADLINE:?}",
            rounds.load(Ordering::Relaxed) - rounds_before
        );
        let seen = full_scan(&mut client).await;
        for key in &stable {
            assert_eq!(seen.get(key), Some(&1), "scan {scans}: {key} returned once");
        }
        for (key, times) in &seen {
            assert!(
                key.contains("stable:") || key.contains("churn:"),
                "scan {scans} returned {key}, which nobody wrote"
            );
            if key.contains("churn:") {
                // Present at some point during the step that read its slot.
                assert_eq!(*times, 1, "{key} returned {times} times in one scan");
                churn_keys_seen += 1;
            }
        }
        scans += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for churner in churners {
        churner.await.expect("churn task finished cleanly");
    }
    assert!(
        churn_keys_seen > 0,
        "no scan ever met a churning key: the writes did not overlap the scans"
    );
    // What the churn left behind is exactly the stable keys.
    let after = full_scan(&mut client).await;
    assert_eq!(after.len(), stable.len());
    server.stop().await;
}

/// The keys of a reply that is an array of bulk strings.
fn key_names(reply: Frame) -> Vec<String> {
    let Frame::Array(keys) = reply else {
        panic!("an array of keys, not {reply:?}");
    };
    let mut names: Vec<String> = keys
        .into_iter()
        .map(|key| match key {
            Frame::Bulk(key) => String::from_utf8_lossy(&key).into_owned(),
            other => panic!("a key is a bulk string, not {other:?}"),
        })
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_cluster_a_node_shows_the_keys_of_its_own_slots() {
    let mut coordinator = FakeCoordinator::start().await;
    let server = TestServer::start(cluster_config(&coordinator.addr)).await;
    let me = coordinator
        .registered
        .recv()
        .await
        .expect("the node registers");
    let other = NodeInfo {
        id: "elsewhere".into(),
        client_addr: "127.0.0.1:1".into(),
        bus_addr: "127.0.0.1:2".into(),
        replica_of: None,
    };
    let nodes = [me.clone(), other.clone()];
    let mut client = RawClient::resp(server.addr()).await;

    // Epoch 1: every slot is this node's; keys land all over.
    coordinator
        .push(&config(1, &nodes, vec![range(0, 16383, &me)], vec![]))
        .await;
    eventually("the node serves", async || {
        client.cmd("SET probe v").await == common::simple("OK")
    })
    .await;
    let keys: Vec<String> = (0..200).map(|i| format!("key:{i}")).collect();
    for key in &keys {
        assert_eq!(
            client.cmd(&format!("SET {key} v")).await,
            common::simple("OK")
        );
    }
    assert_eq!(client.cmd("DEL probe").await, Frame::Integer(1));

    // Epoch 2: the upper half goes elsewhere (no migration: its keys stay
    // here, unserved).
    coordinator
        .push(&config(
            2,
            &nodes,
            vec![range(0, 8191, &me), range(8192, 16383, &other)],
            vec![],
        ))
        .await;
    let upper = keys
        .iter()
        .find(|k| key_slot(k.as_bytes()) >= 8192)
        .unwrap();
    eventually("the upper half has moved", async || {
        matches!(client.cmd(&format!("GET {upper}")).await, Frame::Error(e) if e.starts_with(b"MOVED"))
    })
    .await;

    let mut mine: Vec<String> = keys
        .iter()
        .filter(|k| key_slot(k.as_bytes()) < 8192)
        .cloned()
        .collect();
    mine.sort();
    assert!(!mine.is_empty() && mine.len() < keys.len());
    assert_eq!(key_names(client.cmd("KEYS *").await), mine);
    let mut scanned: Vec<String> = full_scan(&mut client).await.into_keys().collect();
    scanned.sort();
    assert_eq!(scanned, mine);
    for _ in 0..20 {
        let Frame::Bulk(key) = client.cmd("RANDOMKEY").await else {
            panic!("RANDOMKEY finds a key");
        };
        assert!(
            key_slot(&key) < 8192,
            "RANDOMKEY showed a key of a slot served elsewhere"
        );
    }

    // Two keys of two slots: CROSSSLOT; of one slot: served.
    let crossslot = common::error("CROSSSLOT Keys in request don't hash to the same slot");
    let (a, b) = (&mine[0], &mine[1]);
    assert_ne!(key_slot(a.as_bytes()), key_slot(b.as_bytes()));
    assert_eq!(client.cmd(&format!("RENAME {a} {b}")).await, crossslot);
    assert_eq!(client.cmd(&format!("COPY {a} {b}")).await, crossslot);
    let tag = (0..)
        .map(|i| format!("{{t{i}}}"))
        .find(|tag| key_slot(tag.as_bytes()) < 8192)
        .expect("some tag hashes to this node's half");
    assert_eq!(
        client.cmd(&format!("SET {tag}a 1")).await,
        common::simple("OK")
    );
    assert_eq!(
        client.cmd(&format!("RENAME {tag}a {tag}b")).await,
        common::simple("OK")
    );
    assert_eq!(
        client.cmd(&format!("COPY {tag}b {tag}c")).await,
        Frame::Integer(1)
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_tools_that_scan_work() {
    let server = TestServer::standalone().await;
    let mut client = RawClient::resp(server.addr()).await;
    for i in 1..=30 {
        let value = "v".repeat(i);
        assert_eq!(
            client.cmd(&format!("SET key:{i} {value}")).await,
            common::simple("OK")
        );
    }
    let port = server.port().to_string();
    let redis_cli = |args: &[&str]| {
        let mut command = tokio::process::Command::new("redis-cli");
        command.args(["-h", "127.0.0.1", "-p", &port]).args(args);
        command
    };
    let output = redis_cli(&["--scan", "--pattern", "key:2?"])
        .output()
        .await
        .expect("redis-cli is installed (test.sh installs redis-tools)");
    let mut found: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    found.sort();
    let expected: Vec<String> = (20..=29).map(|i| format!("key:{i}")).collect();
    assert_eq!(found, expected);

    let output = redis_cli(&["--bigkeys"])
        .output()
        .await
        .expect("redis-cli runs");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(report.contains("Sampled 30 keys"), "{report}");
    assert!(
        report.contains("Biggest string found '\"key:30\"' has 30 bytes"),
        "{report}"
    );

    let url = format!("redis://{}/", server.addr());
    let redis = redis::Client::open(url).unwrap();
    let mut con = redis.get_multiplexed_async_connection().await.unwrap();
    let mut iter: redis::AsyncIter<String> = redis::AsyncCommands::scan_match(&mut con, "key:1*")
        .await
        .unwrap();
    let mut matched = Vec::new();
    while let Some(key) = iter.next_item().await {
        matched.push(key.unwrap());
    }
    matched.sort();
    let mut expected: Vec<String> = std::iter::once(1)
        .chain(10..=19)
        .map(|i| format!("key:{i}"))
        .collect();
    expected.sort();
    assert_eq!(matched, expected);
    server.stop().await;
}
