//! A real cluster: the coordinate-server and keycafe-server binaries as
//! separate processes on loopback, driven by keycafe-client and by Redis's own
//! tools.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cluster_tests::{Coordinator, Node, TempDir, is_fair, owner_of};
use keycafe_client::{KeycafeCluster, Ttl};
use keycafe_core::cluster::ClusterConfig;
use keycafe_core::key_slot;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

const SETTLE: Duration = Duration::from_secs(60);

async fn start_cluster(nodes: usize) -> (Coordinator, Vec<Node>, TempDir) {
    let dir = TempDir::new();
    let coordinator = Coordinator::start(dir.path.clone())
        .await
        .expect("coordinator starts");
    let mut started = Vec::new();
    for _ in 0..nodes {
        started.push(Node::start(&coordinator.addr()).await.expect("node starts"));
    }
    coordinator
        .wait_until("the cluster is fair", SETTLE, |c| is_fair(c, nodes))
        .await
        .expect("cluster forms");
    (coordinator, started, dir)
}

/// Sends one RESP command straight to a node and returns the raw reply line.
async fn resp(addr: &str, args: &[&str]) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut buf = vec![0u8; 64 * 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("reply in time")
        .expect("read");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Keys held by a node, from DBSIZE.
async fn dbsize(addr: &str) -> usize {
    let reply = resp(addr, &["DBSIZE"]).await;
    reply
        .trim_start_matches(':')
        .trim()
        .parse()
        .expect("DBSIZE is an integer")
}

/// Checks that each node holds exactly the keys whose slots it owns.
async fn assert_keys_on_owners(config: &ClusterConfig, keys: &[String]) {
    let map = config.slot_map();
    let mut expected: HashMap<String, usize> = HashMap::new();
    for key in keys {
        let owner = map
            .owner(key_slot(key.as_bytes()))
            .expect("every slot owned");
        *expected
            .entry(config.nodes[owner].client_addr.clone())
            .or_default() += 1;
    }
    for node in &config.nodes {
        let want = expected.get(&node.client_addr).copied().unwrap_or(0);
        assert_eq!(
            dbsize(&node.client_addr).await,
            want,
            "keys on {}",
            node.client_addr
        );
    }
}

/// Writes `key:0..1000` over and over, recording the last acknowledged value.
fn spawn_writer(kc: KeycafeCluster, stop: Arc<AtomicBool>) -> JoinHandle<HashMap<String, String>> {
    tokio::spawn(async move {
        let mut last = HashMap::new();
        let mut round = 0u64;
        while !stop.load(Ordering::Relaxed) {
            for i in 0..1000 {
                let (key, value) = (format!("key:{i}"), format!("round-{round}-{i}"));
                if kc.set(&key, &value).await.is_ok() {
                    last.insert(key, value);
                }
            }
            round += 1;
        }
        last
    })
}

/// Reads keys continuously; every read must find its key.
fn spawn_reader(kc: KeycafeCluster, stop: Arc<AtomicBool>) -> JoinHandle<usize> {
    tokio::spawn(async move {
        let mut reads = 0;
        while !stop.load(Ordering::Relaxed) {
            for i in (0..10_000).step_by(7) {
                if let Ok(value) = kc.get(format!("key:{i}")).await {
                    assert!(value.is_some(), "key:{i} vanished during a rebalance");
                    reads += 1;
                }
            }
        }
        reads
    })
}

async fn assert_values(kc: &KeycafeCluster, last: &HashMap<String, String>) {
    for i in 0..10_000 {
        let key = format!("key:{i}");
        let value = kc.get_string(&key).await.expect("read after rebalance");
        let expected = last
            .get(&key)
            .cloned()
            .unwrap_or_else(|| format!("initial-{i}"));
        assert_eq!(value.as_deref(), Some(expected.as_str()), "{key}");
    }
    for i in 0..500 {
        match kc.pttl(format!("ttl:{i}")).await.expect("pttl") {
            Ttl::ExpiresIn(left) => {
                assert!(left > Duration::from_secs(500), "ttl:{i} has {left:?}")
            }
            other => panic!("ttl:{i} lost its TTL: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_then_a_join_then_a_graceful_leave() {
    let (coordinator, mut nodes, _dir) = start_cluster(3).await;
    let kc = KeycafeCluster::connect(nodes[0].addr())
        .await
        .expect("client connects");

    let mut keys: Vec<String> = (0..10_000).map(|i| format!("key:{i}")).collect();
    for chunk in (0..10_000).collect::<Vec<_>>().chunks(500) {
        kc.mset(
            chunk
                .iter()
                .map(|i| (format!("key:{i}"), format!("initial-{i}"))),
        )
        .await
        .expect("mset");
    }
    for i in 0..500 {
        kc.set_ex(format!("ttl:{i}"), "v", Duration::from_secs(600))
            .await
            .expect("set_ex");
        keys.push(format!("ttl:{i}"));
    }
    let config = coordinator.config().await.unwrap();
    assert_keys_on_owners(&config, &keys).await;

    // A fourth node joins under load.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(kc.clone(), stop.clone());
    let reader = spawn_reader(kc.clone(), stop.clone());
    nodes.push(
        Node::start(&coordinator.addr())
            .await
            .expect("fourth node starts"),
    );
    let config = coordinator
        .wait_until("four nodes, fair", SETTLE, |c| is_fair(c, 4))
        .await
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    let last = writer.await.unwrap();
    assert!(reader.await.unwrap() > 0, "the reader read during the join");
    assert_values(&kc, &last).await;
    assert_keys_on_owners(&config, &keys).await;
    assert!(config.epoch > 1);

    // The second node leaves gracefully, again under load.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(kc.clone(), stop.clone());
    let reader = spawn_reader(kc.clone(), stop.clone());
    let leaving = nodes.remove(1);
    assert_eq!(
        resp(&leaving.addr(), &["CLUSTER", "LEAVE"]).await,
        "+OK\r\n"
    );
    let config = coordinator
        .wait_until("three nodes, fair, without the leaver", SETTLE, |c| {
            is_fair(c, 3) && c.nodes.iter().all(|n| n.client_addr != leaving.addr())
        })
        .await
        .unwrap();
    let mut leaving = leaving;
    let status = leaving
        .wait_exit(Duration::from_secs(30))
        .await
        .expect("the leaver exits");
    assert!(status.success(), "clean exit after leaving: {status:?}");
    stop.store(true, Ordering::Relaxed);
    let last = writer.await.unwrap();
    assert!(reader.await.unwrap() > 0);
    assert_values(&kc, &last).await;
    assert_keys_on_owners(&config, &keys).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_coordinator_dies_and_comes_back() {
    let (coordinator, nodes, dir) = start_cluster(3).await;
    let before = coordinator.config().await.unwrap();
    let kc = KeycafeCluster::connect(nodes[0].addr())
        .await
        .expect("client connects");
    for i in 0..1000 {
        kc.set(format!("k{i}"), format!("v{i}"))
            .await
            .expect("write");
    }
    let (port, http_port) = (coordinator.port, coordinator.http_port);
    coordinator.kill().await;

    // Without the coordinator no primary can renew its lease: within one
    // lease (half the 5 s node timeout) every node refuses writes, since a
    // coordinator it cannot reach might be promoting its replica. Reads go
    // on.
    let own_keys: Vec<(String, String)> = nodes
        .iter()
        .map(|node| {
            let addr = node.addr();
            let key = (0..)
                .map(|i| format!("w{i}"))
                .find(|k| owner_of(&before, k).as_deref() == Some(addr.as_str()))
                .unwrap();
            (addr, key)
        })
        .collect();
    for (addr, key) in &own_keys {
        let refused = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let reply = resp(addr, &["SET", key, "x"]).await;
                if reply.starts_with("-CLUSTERDOWN") {
                    return reply;
                }
                assert_eq!(reply, "+OK\r\n", "only OK until the lease runs out");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let refused = refused.await.expect("writes stop within the lease");
        println!("{addr} without the coordinator: {}", refused.trim_end());
    }
    for i in 0..1000 {
        assert_eq!(
            kc.get_string(format!("k{i}")).await.unwrap(),
            Some(format!("v{i}")),
            "reads are served while the coordinator is down"
        );
    }

    let coordinator = Coordinator::start_on(port, http_port, dir.path.clone())
        .await
        .expect("restarts");
    let after = coordinator.config().await.unwrap();
    assert!(
        after.epoch >= before.epoch,
        "epoch went back: {} < {}",
        after.epoch,
        before.epoch
    );
    assert_eq!(after.slots, before.slots, "same slot map after the restart");

    // The nodes register again and are granted leases: writes resume.
    for (addr, key) in &own_keys {
        let accepted = tokio::time::timeout(Duration::from_secs(10), async {
            while resp(addr, &["SET", key, "y"]).await != "+OK\r\n" {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        accepted.await.expect("writes resume with the coordinator");
    }

    // A join after the restart works.
    let _fourth = Node::start(&coordinator.addr())
        .await
        .expect("fourth node starts");
    coordinator
        .wait_until("four nodes, fair", SETTLE, |c| is_fair(c, 4))
        .await
        .unwrap();
    for i in 0..1000 {
        assert_eq!(
            kc.get_string(format!("k{i}")).await.unwrap(),
            Some(format!("v{i}"))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_tools_and_the_redis_crate_on_a_cluster() {
    use redis::AsyncCommands;
    let (_coordinator, nodes, _dir) = start_cluster(3).await;

    // redis-cli -c follows MOVED from whichever node it asks.
    let redis_cli = |port: u16, args: &[&str]| {
        let mut command = std::process::Command::new("redis-cli");
        command
            .args(["-c", "-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args);
        command
    };
    for key in ["alpha", "beta", "gamma", "delta"] {
        let out = redis_cli(nodes[0].port, &["SET", key, &format!("{key}-value")])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "OK", "{out:?}");
        let out = redis_cli(nodes[2].port, &["GET", key]).output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("{key}-value")
        );
    }

    // The redis crate's cluster client reads and writes keys in every range.
    let urls: Vec<String> = nodes
        .iter()
        .map(|n| format!("redis://{}/", n.addr()))
        .collect();
    let client = redis::cluster::ClusterClient::new(urls).unwrap();
    let mut con = client
        .get_async_connection()
        .await
        .expect("cluster client connects");
    for i in 0..2000 {
        let _: () = con.set(format!("r{i}"), i).await.unwrap();
    }
    let mut slots_seen = std::collections::HashSet::new();
    for i in 0..2000 {
        let value: i64 = con.get(format!("r{i}")).await.unwrap();
        assert_eq!(value, i);
        slots_seen.insert(key_slot(format!("r{i}").as_bytes()) * 3 / 16384);
    }
    assert_eq!(slots_seen.len(), 3, "keys covered every node's range");

    // redis-benchmark in cluster mode runs against the cluster.
    let out = std::process::Command::new("redis-benchmark")
        .args([
            "--cluster",
            "-h",
            "127.0.0.1",
            "-p",
            &nodes[1].port.to_string(),
        ])
        .args(["-t", "set,get", "-n", "3000", "-c", "10", "-q"])
        .output()
        .expect("redis-benchmark runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(text.contains("SET:") && text.contains("GET:"), "{text}");
}
