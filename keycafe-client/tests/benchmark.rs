//! `keycafe-benchmark` as a real process against an in-process node on an
//! ephemeral port, with small request counts. The `--json` document is
//! parsed and checked for sanity; speed itself is never asserted.

mod tool_support;

use std::process::Output;
use std::time::{Duration, Instant};

use keycafe_server::Config;
use keycafe_server::test_util::BlockingTestServer;
use serde_json::Value;
use tool_support::unused_port;

const BENCHMARK: &str = env!("CARGO_BIN_EXE_keycafe-benchmark");
const DEADLINE: Duration = Duration::from_secs(60);

/// Runs the benchmark with `args`, killing it after [`DEADLINE`].
fn benchmark(args: &[&str]) -> Output {
    tool_support::run(BENCHMARK, args, None, DEADLINE)
}

/// Runs with `--json`, checks the exit status and parses the document.
fn benchmark_json(args: &[&str]) -> Value {
    // Options go first: everything after a command's name belongs to it.
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    let output = benchmark(&full);
    assert!(
        output.status.success(),
        "{full:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!(
            "--json output is not JSON ({err}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// Checks one test entry: the right name and count, no errors, and
/// percentiles that are positive and ordered.
fn check_test(test: &Value, name: &str, requests: u64) {
    assert_eq!(test["name"], name, "{test}");
    assert_eq!(test["requests"].as_u64(), Some(requests), "{test}");
    assert_eq!(test["errors"].as_u64(), Some(0), "{test}");
    let number = |v: &Value| {
        v.as_f64()
            .unwrap_or_else(|| panic!("not a number in {test}"))
    };
    assert!(number(&test["seconds"]) > 0.0, "{test}");
    assert!(number(&test["ops_per_sec"]) > 0.0, "{test}");
    let latency = &test["latency_ms"];
    let [p50, p95, p99, p999, max] =
        ["p50", "p95", "p99", "p999", "max"].map(|field| number(&latency[field]));
    assert!(
        p50 > 0.0 && p50 <= p95 && p95 <= p99 && p99 <= p999 && p999 <= max,
        "{test}"
    );
}

#[test]
fn json_report_is_sane_on_both_protocols_and_pipelines() {
    let node = BlockingTestServer::standalone();
    let port = node.port().to_string();
    for protocol in ["native", "resp"] {
        for pipeline in ["1", "16"] {
            let args = [
                "-p",
                &port,
                "--protocol",
                protocol,
                "-P",
                pipeline,
                "-n",
                "2000",
                "-c",
                "8",
                "-r",
                "1000",
                "-d",
                "16",
                "-t",
                "ping,set,get,incr,mset,mget",
            ];
            let doc = benchmark_json(&args);
            assert_eq!(doc["protocol"], protocol);
            assert_eq!(doc["pipeline"].as_u64(), pipeline.parse().ok());
            assert_eq!(doc["clients"], 8);
            let tests = doc["tests"].as_array().expect("tests array");
            let names = [
                "PING",
                "SET",
                "GET",
                "INCR",
                "MSET (10 keys)",
                "MGET (10 keys)",
            ];
            assert_eq!(tests.len(), names.len());
            for (test, name) in tests.iter().zip(names) {
                check_test(test, name, 2000);
            }
        }
    }
}

#[test]
fn writes_really_reach_the_node() {
    let node = BlockingTestServer::standalone();
    let port = node.port().to_string();
    // Without -r every INCR hits the literal key `counter:__rand_int__`.
    let doc = benchmark_json(&[
        "-p", &port, "-n", "1234", "-c", "5", "-P", "7", "-t", "incr",
    ]);
    check_test(&doc["tests"][0], "INCR", 1234);
    let doc = benchmark_json(&[
        "-p",
        &port,
        "-n",
        "1",
        "-c",
        "1",
        "INCRBY",
        "counter:__rand_int__",
        "0",
    ]);
    check_test(&doc["tests"][0], "INCRBY counter:__rand_int__ 0", 1);

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let value = runtime.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut socket = tokio::net::TcpStream::connect(node.addr())
            .await
            .expect("connect");
        socket
            .write_all(b"GET counter:__rand_int__\r\n")
            .await
            .expect("send");
        let mut buf = vec![0u8; 64];
        let n = socket.read(&mut buf).await.expect("read");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    });
    assert_eq!(value, "$4\r\n1234\r\n");
}

#[test]
fn cluster_mode_routes_by_cluster_slots() {
    let node = BlockingTestServer::standalone();
    let port = node.port().to_string();
    let doc = benchmark_json(&[
        "-p",
        &port,
        "--cluster",
        "-n",
        "2000",
        "-c",
        "4",
        "-P",
        "16",
        "-r",
        "100000",
        "-t",
        "set,get,mset,ping",
    ]);
    assert_eq!(doc["cluster"], true);
    assert_eq!(doc["nodes"], 1);
    for (test, name) in
        doc["tests"]
            .as_array()
            .expect("tests")
            .iter()
            .zip(["SET", "GET", "MSET (10 keys)", "PING"])
    {
        check_test(test, name, 2000);
    }
}

#[test]
fn password_and_error_reporting() {
    let node = BlockingTestServer::start(Config {
        requirepass: Some("pw".to_string()),
        ..Config::default()
    });
    let port = node.port().to_string();
    let doc = benchmark_json(&[
        "-p", &port, "-a", "pw", "-n", "500", "-c", "3", "-t", "set,get",
    ]);
    check_test(&doc["tests"][1], "GET", 500);

    // Without the password every reply is NOAUTH: reported, and the exit code says so.
    let output = benchmark(&["-p", &port, "-n", "100", "-c", "2", "-t", "get", "--json"]);
    assert!(!output.status.success());
    let doc: Value = serde_json::from_slice(&output.stdout).expect("JSON even when requests fail");
    assert_eq!(doc["tests"][0]["errors"].as_u64(), Some(100));
    let first = doc["tests"][0]["first_error"]
        .as_str()
        .expect("first error");
    assert!(first.starts_with("NOAUTH"), "{first}");

    let output = benchmark(&["-p", &port, "-a", "wrong", "-n", "10", "-t", "get"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("WRONGPASS"));
}

#[test]
fn quiet_and_text_reports() {
    let node = BlockingTestServer::standalone();
    let port = node.port().to_string();
    let output = benchmark(&["-p", &port, "-n", "300", "-c", "3", "-t", "set,get", "-q"]);
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("SET: ") && lines[0].ends_with(" msec"),
        "{text}"
    );
    assert!(lines[1].contains(" requests per second, p50="), "{text}");
    // No progress bar when stderr is not a terminal.
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let output = benchmark(&["-p", &port, "-n", "300", "-c", "3", "-t", "ping"]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.starts_with("====== PING ======\n  300 requests completed in "),
        "{text}"
    );
    assert!(text.contains("latency (msec): p50="), "{text}");

    let output = benchmark(&["-p", &port, "-t", "lpush"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown test \"lpush\""));
}

#[test]
fn unreachable_node_fails_fast() {
    let port = unused_port();
    let output = benchmark(&["-p", &port, "-n", "10"]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains(&format!("connecting to 127.0.0.1:{port}"))
    );
}

#[test]
fn a_node_that_stops_answering_fails_the_run() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let port = listener.local_addr().expect("address").port().to_string();
    // Accepts, swallows every request, never replies.
    runtime.spawn(async move {
        use tokio::io::AsyncReadExt;
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut sink = [0u8; 4096];
                while matches!(socket.read(&mut sink).await, Ok(n) if n > 0) {}
            });
        }
    });
    let started = Instant::now();
    let output = benchmark(&[
        "-p",
        &port,
        "--protocol",
        "resp",
        "-c",
        "2",
        "-n",
        "10",
        "--timeout",
        "0.5",
        "-t",
        "get",
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no reply for 500ms"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn benchmark_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let pki = keycafe_core::tls::test_pki::TestPki::generate(dir.path());
    let node = BlockingTestServer::start_tls(Config {
        tls_cert_file: Some(pki.server_cert.clone()),
        tls_key_file: Some(pki.server_key.clone()),
        ..Config::default()
    });
    let port = node.port().to_string();
    let ca = pki.ca_cert.to_str().expect("a UTF-8 temp path");
    for protocol in ["native", "resp"] {
        let args = [
            "-p",
            &port,
            "--tls",
            "--cacert",
            ca,
            "--protocol",
            protocol,
            "-P",
            "8",
            "-n",
            "1000",
            "-c",
            "4",
            "-t",
            "set,get",
        ];
        let doc = benchmark_json(&args);
        assert_eq!(doc["tls"], true);
        let tests = doc["tests"].as_array().expect("tests array");
        check_test(&tests[0], "SET", 1000);
        check_test(&tests[1], "GET", 1000);
    }
    // Trusting another CA, the benchmark cannot connect and says why.
    let other = pki.other_ca_cert.to_str().expect("a UTF-8 temp path");
    let output = benchmark(&["-p", &port, "--tls", "--cacert", other, "-n", "10"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("certificate"), "{stderr}");
    node.stop();
}
