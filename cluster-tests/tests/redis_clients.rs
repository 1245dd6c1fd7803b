//! Redis's own clients, with their default settings, against a standalone
//! node and a three-node cluster of the real binaries: redis-py
//! (`redis.Redis()`, `redis.cluster.RedisCluster()`) and node-redis
//! (`createClient()`, `createCluster()`), which open with `HELLO 3` by
//! default; the `redis` crate with RESP3 turned on; and `redis-cli -3`.
//!
//! Each client connects, pings, sets, reads and deletes a key, increments a
//! counter, sets and reads a TTL, reads several keys of one hash tag with
//! MGET, reads a missing key (a RESP3 null), runs a MULTI/EXEC transaction
//! on one slot and reads CONFIG GET (a RESP3 map).
//! The Python and JavaScript steps live in `clients/redis_py.py` and
//! `clients/node_redis.mjs`, one function each, so that a new step is
//! added in one place; `./test.sh` installs the libraries beside them (the
//! versions are pinned in `clients/requirements.txt` and
//! `clients/package.json`: redis-py 8.1.0 and node-redis 6.3.1 when this
//! was written). A client that is not installed fails its test and says
//! so: run `./test.sh`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use cluster_tests::replicated::{AUTO, ReplicatedCluster};
use cluster_tests::{Coordinator, Node, TempDir, binary, free_ports, is_fair, logs_dir};
use keycafe_core::Frame;
use redis::AsyncCommands;
use tokio::process::{Child, Command};

/// How long one client's whole run may take.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);
const SETTLE: Duration = Duration::from_secs(60);

/// A keycafe-server with no coordinator: a standalone node.
struct Standalone {
    addr: String,
    _child: Child,
}

impl Standalone {
    async fn start() -> Standalone {
        let [port, bus_port] = free_ports::<2>();
        let log = std::fs::File::create(logs_dir().join(format!("standalone-{port}.log")))
            .expect("a log file");
        let child = Command::new(binary("keycafe-server"))
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--cluster-port", &bus_port.to_string()])
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("keycafe-server starts");
        let addr = format!("127.0.0.1:{port}");
        cluster_tests::eventually("the node listens", Duration::from_secs(10), async || {
            Ok(tokio::net::TcpStream::connect(&addr).await.is_ok())
        })
        .await
        .expect("the node listens");
        Standalone {
            addr,
            _child: child,
        }
    }
}

/// A coordinator and three nodes that share the slots.
struct Cluster {
    _coordinator: Coordinator,
    nodes: Vec<Node>,
    _dir: TempDir,
}

impl Cluster {
    async fn start() -> Cluster {
        let dir = TempDir::new();
        let coordinator = Coordinator::start(dir.path.clone())
            .await
            .expect("coordinator starts");
        let mut nodes = Vec::new();
        for _ in 0..3 {
            nodes.push(Node::start(&coordinator.addr()).await.expect("node starts"));
        }
        coordinator
            .wait_until("the cluster is fair", SETTLE, |c| is_fair(c, 3))
            .await
            .expect("cluster forms");
        Cluster {
            _coordinator: coordinator,
            nodes,
            _dir: dir,
        }
    }

    /// The address clients are given: one node, from which they learn the
    /// others.
    fn seed(&self) -> String {
        self.nodes[0].addr()
    }
}

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients")
}

/// redis-py's interpreter, or a failure that says how to install it.
fn redis_py() -> PathBuf {
    let python = clients_dir().join(".venv/bin/python");
    let installed = std::process::Command::new(&python)
        .args(["-c", "import redis"])
        .output()
        .is_ok_and(|out| out.status.success());
    assert!(
        installed,
        "redis-py is not installed in {}: run ./test.sh, which installs \
         cluster-tests/clients/requirements.txt into that virtualenv",
        python.display()
    );
    python
}

/// Node.js, after checking that node-redis is installed.
fn node_redis() -> &'static str {
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    assert!(
        node,
        "Node.js (`node`) is not on PATH: run ./test.sh, which installs it and node-redis"
    );
    let module = clients_dir().join("node_modules/redis/package.json");
    assert!(
        module.exists(),
        "node-redis is not installed ({} is missing): run ./test.sh, which installs \
         cluster-tests/clients/package.json into cluster-tests/clients/node_modules",
        module.display()
    );
    "node"
}

/// Runs a client script to its end and fails with everything it printed
/// unless every step passed.
async fn run_client(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) {
    let child = Command::new(program.as_ref())
        .args(args)
        .current_dir(clients_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|err| panic!("starting {:?}: {err}", program.as_ref()));
    let what = format!("{} {}", program.as_ref().to_string_lossy(), args.join(" "));
    let output = tokio::time::timeout(CLIENT_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {CLIENT_TIMEOUT:?}"))
        .expect("the client's output");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{what} failed:\n{printed}");
    assert!(
        printed.contains("ok ") && !printed.contains("FAILED"),
        "{what} ran no step:\n{printed}"
    );
}

#[tokio::test]
async fn redis_py_with_its_defaults() {
    let python = redis_py();
    let script = clients_dir().join("redis_py.py");
    let script = script.to_str().expect("a UTF-8 path");
    let node = Standalone::start().await;
    run_client(&python, &[script, "standalone", &node.addr]).await;
    // A standalone node is a cluster of one, for cluster clients too.
    run_client(&python, &[script, "cluster", &node.addr]).await;
    let cluster = Cluster::start().await;
    run_client(&python, &[script, "cluster", &cluster.seed()]).await;
}

#[tokio::test]
async fn node_redis_with_its_defaults() {
    let node_js = node_redis();
    let script = clients_dir().join("node_redis.mjs");
    let script = script.to_str().expect("a UTF-8 path");
    let node = Standalone::start().await;
    run_client(node_js, &[script, "standalone", &node.addr]).await;
    run_client(node_js, &[script, "cluster", &node.addr]).await;
    let cluster = Cluster::start().await;
    run_client(node_js, &[script, "cluster", &cluster.seed()]).await;
}

/// The same steps through the `redis` crate, on a plain or a cluster
/// connection with RESP3 turned on.
async fn redis_crate_steps(con: &mut impl AsyncCommands, mode: &str) {
    use redis::Value;
    let hello: Value = redis::cmd("HELLO").query_async(con).await.unwrap();
    let Value::Map(fields) = &hello else {
        panic!("HELLO answers a RESP3 map, not {hello:?}");
    };
    let field = |name: &str| {
        fields
            .iter()
            .find(|(key, _)| *key == Value::BulkString(name.into()))
            .map(|(_, value)| value.clone())
    };
    assert_eq!(field("proto"), Some(Value::Int(3)), "{hello:?}");
    assert_eq!(
        field("mode"),
        Some(Value::BulkString(mode.into())),
        "{hello:?}"
    );

    let pong: String = redis::cmd("PING").query_async(con).await.unwrap();
    assert_eq!(pong, "PONG");

    let _: () = con.set("{rs}greeting", "hello").await.unwrap();
    let value: Option<String> = con.get("{rs}greeting").await.unwrap();
    assert_eq!(value.as_deref(), Some("hello"));
    let deleted: i64 = con.del("{rs}greeting").await.unwrap();
    assert_eq!(deleted, 1);

    let n: i64 = con.incr("{rs}counter", 1).await.unwrap();
    assert_eq!(n, 1);
    let n: i64 = con.incr("{rs}counter", 41).await.unwrap();
    assert_eq!(n, 42);

    let _: () = con.set("{rs}session", "data").await.unwrap();
    let set: bool = con.expire("{rs}session", 100).await.unwrap();
    assert!(set);
    let ttl: i64 = con.ttl("{rs}session").await.unwrap();
    assert!((99..=100).contains(&ttl), "ttl {ttl}");

    let _: () = con
        .mset(&[("{user4}.name", "alan"), ("{user4}.lang", "en")])
        .await
        .unwrap();
    let values: Vec<Option<String>> = con
        .mget(&["{user4}.name", "{user4}.missing", "{user4}.lang"])
        .await
        .unwrap();
    assert_eq!(values, [Some("alan".into()), None, Some("en".into())]);

    // MULTI ... EXEC, on one slot.
    let (set, n, missing): (String, i64, Option<String>) = redis::pipe()
        .atomic()
        .set("{rs}tx", 1)
        .incr("{rs}tx", 1)
        .get("{rs}missing")
        .query_async(con)
        .await
        .unwrap();
    assert_eq!((set.as_str(), n, missing), ("OK", 2, None));

    // A missing key is RESP3's null.
    let missing: Value = redis::cmd("GET")
        .arg("{rs}never-set")
        .query_async(con)
        .await
        .unwrap();
    assert_eq!(missing, Value::Nil);

    let config: Value = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory")
        .query_async(con)
        .await
        .unwrap();
    assert_eq!(
        config,
        Value::Map(vec![(
            Value::BulkString(b"maxmemory".to_vec()),
            Value::BulkString(b"0".to_vec())
        )])
    );
}

#[tokio::test]
async fn redis_crate_with_resp3() {
    use redis::ProtocolVersion;
    use redis::cluster::ClusterClient;

    let node = Standalone::start().await;
    let url = format!("redis://{}/?protocol=resp3", node.addr);
    let client = redis::Client::open(url.as_str()).expect("a valid URL");
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .expect("connects with HELLO 3");
    redis_crate_steps(&mut con, "standalone").await;

    let cluster = Cluster::start().await;
    let client = ClusterClient::builder(vec![format!("redis://{}/", cluster.seed())])
        .use_protocol(ProtocolVersion::RESP3)
        .build()
        .expect("a valid cluster client");
    let mut con = client
        .get_async_connection()
        .await
        .expect("connects to the cluster with HELLO 3");
    redis_crate_steps(&mut con, "cluster").await;
}

/// What `redis-cli -3` prints for the steps, one command per line on its
/// standard input (one connection; with `-c` it follows redirects).
const REDIS_CLI_STEPS: &[(&str, &str)] = &[
    ("PING", "PONG"),
    ("SET {cli}greeting hello", "OK"),
    ("GET {cli}greeting", "\"hello\""),
    ("DEL {cli}greeting", "(integer) 1"),
    ("GET {cli}greeting", "(nil)"),
    ("INCR {cli}counter", "(integer) 1"),
    ("INCRBY {cli}counter 41", "(integer) 42"),
    ("EXPIRE {cli}counter 1000", "(integer) 1"),
    ("PERSIST {cli}counter", "(integer) 1"),
    ("TTL {cli}counter", "(integer) -1"),
    // (On the node of {cli}'s slot already: no redirect inside MULTI.)
    ("MULTI", "OK"),
    ("SET {cli}tx 1", "QUEUED"),
    ("INCR {cli}tx", "QUEUED"),
    ("GET {cli}missing", "QUEUED"),
    ("EXEC", "1) OK\n2) (integer) 2\n3) (nil)"),
    ("MSET {user5}.a x {user5}.b y", "OK"),
    (
        "MGET {user5}.a {user5}.missing {user5}.b",
        "1) \"x\"\n2) (nil)\n3) \"y\"",
    ),
    ("CONFIG GET maxmemory", "1# \"maxmemory\" => \"0\""),
];

async fn redis_cli_steps(addr: &str, cluster: bool) {
    let (host, port) = addr.rsplit_once(':').expect("host:port");
    let mut args = vec!["-3", "--no-raw", "-h", host, "-p", port];
    if cluster {
        args.push("-c");
    }
    let mut child = Command::new("redis-cli")
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-cli starts (./test.sh installs redis-tools)");
    let input: String = REDIS_CLI_STEPS
        .iter()
        .map(|(command, _)| format!("{command}\n"))
        .collect();
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().expect("stdin piped");
        stdin
            .write_all(input.as_bytes())
            .await
            .expect("commands sent");
    }
    let output = tokio::time::timeout(CLIENT_TIMEOUT, child.wait_with_output())
        .await
        .expect("redis-cli finishes in time")
        .expect("redis-cli's output");
    // (With -c, redis-cli says where it was redirected to; the keys' slots
    // decide whether it is.)
    let printed: String = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.starts_with("-> Redirected to slot"))
        .map(|line| format!("{line}\n"))
        .collect();
    let expected: String = REDIS_CLI_STEPS
        .iter()
        .map(|(_, reply)| format!("{reply}\n"))
        .collect();
    assert_eq!(
        printed,
        expected,
        "redis-cli {} (stderr: {})",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn redis_cli_with_resp3() {
    let node = Standalone::start().await;
    redis_cli_steps(&node.addr, false).await;
    let cluster = Cluster::start().await;
    redis_cli_steps(&cluster.seed(), true).await;
}

/// HELLO tells a client what it connected to: `mode` is `cluster` on a
/// cluster's node, and `role` is `replica` on a replica.
#[tokio::test]
async fn hello_reports_the_mode_and_the_role() {
    let cluster = ReplicatedCluster::start(1, &[AUTO; 2], 1, 1).await;
    let config = cluster.config().await;
    for node in &cluster.nodes {
        let addr = node.addr();
        let role = match cluster_tests::node_at(&config, &addr) {
            Some(info) if info.is_replica() => "replica",
            _ => "master",
        };
        let mut client = node.client().await.expect("connects");
        let Frame::Map(fields) = client.cmd(&["HELLO", "3"]).await.expect("HELLO") else {
            panic!("HELLO 3 answers a map");
        };
        let field = |name: &str| {
            fields
                .iter()
                .find(|(key, _)| key.as_bytes() == Some(name.as_bytes()))
                .map(|(_, value)| value.clone())
        };
        assert_eq!(field("mode"), Some(Frame::bulk("cluster")), "{addr}");
        assert_eq!(field("role"), Some(Frame::bulk(role)), "{addr}");
        assert_eq!(field("proto"), Some(Frame::Integer(3)), "{addr}");
    }
}
