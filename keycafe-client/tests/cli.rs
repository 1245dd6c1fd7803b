//! `keycafe-cli` as a real process against an in-process node on an
//! ephemeral port. stdout is a pipe here, so replies come out raw unless
//! `--no-raw` asks for the terminal format; both are checked byte for byte.

mod tool_support;

use std::net::SocketAddr;
use std::process::Output;
use std::time::Duration;

use keycafe_server::Config;
use keycafe_server::test_util::BlockingTestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tool_support::unused_port;

const CLI: &str = env!("CARGO_BIN_EXE_keycafe-cli");
const DEADLINE: Duration = Duration::from_secs(30);

/// Runs the CLI with `args`, feeding `stdin`, killing it after [`DEADLINE`].
fn cli(args: &[&str], stdin: &str) -> Output {
    tool_support::run(CLI, args, Some(stdin), DEADLINE)
}

fn stdout_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// One-shot commands: (args after `-p PORT`, expected stdout). Run in order
/// on one node, so later rows see earlier writes.
fn one_shot_table() -> Vec<(Vec<&'static str>, &'static str)> {
    vec![
        (vec!["SET", "greeting", "hello world"], "OK\n"),
        (vec!["GET", "greeting"], "hello world\n"),
        (vec!["--no-raw", "GET", "greeting"], "\"hello world\"\n"),
        (vec!["GET", "missing"], "\n"),
        (vec!["--no-raw", "GET", "missing"], "(nil)\n"),
        (vec!["SET", "counter", "-5"], "OK\n"),
        (vec!["INCR", "counter"], "-4\n"),
        (vec!["--no-raw", "INCRBY", "counter", "7"], "(integer) 3\n"),
        (vec!["--no-raw", "SET", "quoted", "a\"b\nc"], "OK\n"),
        (vec!["--no-raw", "GET", "quoted"], "\"a\\\"b\\nc\"\n"),
        (
            vec!["MGET", "greeting", "missing", "counter"],
            "hello world\n\n3\n",
        ),
        (
            vec!["--no-raw", "MGET", "greeting", "missing", "counter"],
            "1) \"hello world\"\n2) (nil)\n3) \"3\"\n",
        ),
        (
            vec!["--no-raw", "INCR", "greeting"],
            "(error) ERR value is not an integer or out of range\n",
        ),
        (
            vec!["INCR", "greeting"],
            "ERR value is not an integer or out of range\n\n",
        ),
        (
            vec!["--no-raw", "NOSUCHCOMMAND"],
            "(error) ERR unknown command 'NOSUCHCOMMAND', with args beginning with: \n",
        ),
        (
            vec!["--no-raw", "DEL", "greeting", "missing"],
            "(integer) 1\n",
        ),
    ]
}

#[test]
fn one_shot_commands_print_like_redis_cli_on_both_protocols() {
    for protocol in [None, Some("--resp")] {
        let node = BlockingTestServer::standalone();
        let port = node.port().to_string();
        for (args, expected) in one_shot_table() {
            let mut full = vec!["-p", port.as_str()];
            full.extend(protocol);
            full.extend(args.iter().copied());
            let output = cli(&full, "");
            assert!(output.status.success(), "{full:?} failed: {output:?}");
            assert_eq!(stdout_of(&output), expected, "output of {full:?}");
        }
    }
}

#[test]
fn arrays_nest_like_redis_cli() {
    let node = BlockingTestServer::standalone();
    let port = node.port().to_string();
    let output = cli(&["-p", &port, "--no-raw", "CLUSTER", "SLOTS"], "");
    let expected = format!(
        "1) 1) (integer) 0\n   2) (integer) 16383\n   3) 1) \"127.0.0.1\"\n      2) (integer) {port}\n      3) \""
    );
    let text = stdout_of(&output);
    assert!(text.starts_with(&expected), "{text}");
}

#[test]
fn password_protected_node() {
    let node = BlockingTestServer::start(Config {
        requirepass: Some("s3cret".to_string()),
        ..Config::default()
    });
    let port = node.port().to_string();
    let denied = cli(&["-p", &port, "--no-raw", "SET", "k", "v"], "");
    assert_eq!(
        stdout_of(&denied),
        "(error) NOAUTH Authentication required.\n"
    );

    let allowed = cli(&["-p", &port, "-a", "s3cret", "SET", "k", "v"], "");
    assert_eq!(stdout_of(&allowed), "OK\n");
    let stderr = String::from_utf8_lossy(&allowed.stderr);
    assert!(stderr.contains("Warning: Using a password"), "{stderr}");

    let quiet = cli(
        &[
            "-p",
            &port,
            "--resp",
            "-a",
            "s3cret",
            "--no-auth-warning",
            "GET",
            "k",
        ],
        "",
    );
    assert_eq!(
        (stdout_of(&quiet).as_str(), quiet.stderr.as_slice()),
        ("v\n", b"".as_slice())
    );

    let wrong = cli(&["-p", &port, "-a", "nope", "GET", "k"], "");
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("AUTH failed: WRONGPASS"),
        "{wrong:?}"
    );
    assert_eq!(stdout_of(&wrong), "NOAUTH Authentication required.\n\n");
}

#[test]
fn connection_failure_exits_non_zero() {
    let port = unused_port();
    let output = cli(&["-p", &port, "PING"], "");
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with(&format!("Could not connect to Keycafe at 127.0.0.1:{port}")),
        "{stderr}"
    );
}

#[test]
fn errexit_flag_fails_on_error_replies() {
    let node = BlockingTestServer::standalone();
    let output = cli(&["-p", &node.port().to_string(), "-e", "NOSUCHCOMMAND"], "");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).starts_with("ERR unknown command"));
}

#[test]
fn interactive_mode_reads_lines_from_a_pipe() {
    let node = BlockingTestServer::standalone();
    let script = "set k \"two words\"\nget k\n\n'unbalanced\n3 incr n\nget missing\nquit\nget k\n";
    let output = cli(&["-p", &node.port().to_string()], script);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        stdout_of(&output),
        "OK\ntwo words\nInvalid argument(s)\n1\n2\n3\n\n"
    );
}

#[test]
fn scan_lists_every_matching_key_and_a_transaction_runs_at_the_prompt() {
    let node = BlockingTestServer::standalone();
    let port = node.port().to_string();
    // 3,000 keys: more than one SCAN page.
    let mut script: String = (0..3000).map(|i| format!("set user:{i} x\n")).collect();
    script.push_str("set other y\nmulti\nincr n\nincr n\nexec\n");
    let output = cli(&["-p", &port], &script);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout_of(&output).ends_with("QUEUED\nQUEUED\n1\n2\n"),
        "MULTI/EXEC at the prompt"
    );

    for protocol in [None, Some("--resp")] {
        let mut args = vec!["-p", &port, "--scan", "--pattern", "user:*"];
        args.extend(protocol);
        let output = cli(&args, "");
        assert!(output.status.success(), "{output:?}");
        let listed = stdout_of(&output);
        let mut keys: Vec<&str> = listed.lines().collect();
        keys.sort_unstable();
        let mut expected: Vec<String> = (0..3000).map(|i| format!("user:{i}")).collect();
        expected.sort_unstable();
        assert_eq!(keys, expected);
    }
    let all = cli(&["-p", &port, "--scan"], "");
    assert_eq!(
        stdout_of(&all).lines().count(),
        3002,
        "every key, n included"
    );
}

/// A fake cluster node speaking RESP: answers every command of a connection
/// with the scripted replies, in order, and records what it received.
async fn fake_node(replies: Vec<&'static str>) -> (SocketAddr, tokio::task::JoinHandle<Vec<u8>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let task = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        let mut received = Vec::new();
        for reply in replies {
            let mut buf = [0u8; 1024];
            let n = socket.read(&mut buf).await.expect("read a request");
            received.extend_from_slice(&buf[..n]);
            socket.write_all(reply.as_bytes()).await.expect("reply");
        }
        received
    });
    (addr, task)
}

#[test]
fn cluster_mode_follows_moved_and_ask() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let node = BlockingTestServer::standalone();
    let port = node.port().to_string();
    let real = node.addr();

    // MOVED: the first node sends us to the real node, which answers.
    let moved = format!("-MOVED 1234 {real}\r\n").leak();
    let (first, first_task) = runtime.block_on(fake_node(vec![moved]));
    let output = cli(
        &[
            "-c",
            "--resp",
            "-p",
            &first.port().to_string(),
            "SET",
            "k",
            "moved",
        ],
        "",
    );
    assert_eq!(stdout_of(&output), "OK\n", "{output:?}");
    let check = cli(&["-p", &port, "GET", "k"], "");
    assert_eq!(stdout_of(&check), "moved\n");
    runtime.block_on(first_task).expect("fake node");

    // ASK: the retry goes to the target, preceded by ASKING.
    let (target, target_task) = runtime.block_on(fake_node(vec!["+OK\r\n", "$3\r\nyes\r\n"]));
    let ask = format!("-ASK 99 {target}\r\n").leak();
    let (source, source_task) = runtime.block_on(fake_node(vec![ask]));
    let output = cli(
        &["-c", "--resp", "-p", &source.port().to_string(), "GET", "k"],
        "",
    );
    assert_eq!(stdout_of(&output), "yes\n", "{output:?}");
    let received = runtime.block_on(target_task).expect("fake target");
    assert_eq!(
        received,
        b"*1\r\n$6\r\nASKING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
    );
    runtime.block_on(source_task).expect("fake source");

    // At the prompt, the redirect is announced as redis-cli does.
    let moved = format!("-MOVED 1234 {real}\r\n").leak();
    let (first, first_task) = runtime.block_on(fake_node(vec![moved]));
    let output = cli(
        &["-c", "--resp", "-p", &first.port().to_string()],
        "get k\n",
    );
    let expected = format!("-> Redirected to slot [1234] located at {real}\nmoved\n");
    assert_eq!(stdout_of(&output), expected, "{output:?}");
    runtime.block_on(first_task).expect("fake node");

    // Without -c a redirect is just an error reply.
    let (plain, plain_task) = runtime.block_on(fake_node(vec!["-MOVED 1 127.0.0.1:1\r\n"]));
    let output = cli(&["--resp", "-p", &plain.port().to_string(), "GET", "k"], "");
    assert_eq!(stdout_of(&output), "MOVED 1 127.0.0.1:1\n\n");
    runtime.block_on(plain_task).expect("fake node");
}

#[test]
fn tls_flags_like_redis_cli() {
    let dir = tempfile::tempdir().unwrap();
    let pki = keycafe_core::tls::test_pki::TestPki::generate(dir.path());
    let node = BlockingTestServer::start_tls(Config {
        tls_cert_file: Some(pki.server_cert.clone()),
        tls_key_file: Some(pki.server_key.clone()),
        tls_ca_cert_file: Some(pki.ca_cert.clone()),
        ..Config::default()
    });
    let port = node.port().to_string();
    let path = |p: &std::path::Path| p.to_str().expect("a UTF-8 temp path").to_string();
    let (ca, cert, key) = (
        path(&pki.ca_cert),
        path(&pki.client_cert),
        path(&pki.client_key),
    );
    let tls = ["--tls", "--cacert", &ca, "--cert", &cert, "--key", &key];
    for protocol in [None, Some("--resp")] {
        let mut args = vec!["-p", port.as_str()];
        args.extend(tls);
        args.extend(protocol);
        let set: Vec<&str> = args.iter().copied().chain(["SET", "k", "v"]).collect();
        assert_eq!(stdout_of(&cli(&set, "")), "OK\n", "{set:?}");
        let get: Vec<&str> = args.iter().copied().chain(["GET", "k"]).collect();
        assert_eq!(stdout_of(&cli(&get, "")), "v\n", "{get:?}");
        let sni: Vec<&str> = args
            .iter()
            .copied()
            .chain(["--sni", "localhost", "PING"])
            .collect();
        assert_eq!(stdout_of(&cli(&sni, "")), "PONG\n", "{sni:?}");
    }

    // Without a client certificate the node refuses the connection; without
    // --tls the CLI is not served either; --tls without --cacert is an error.
    for args in [
        vec!["-p", port.as_str(), "--tls", "--cacert", &ca, "PING"],
        vec!["-p", port.as_str(), "PING"],
        vec!["-p", port.as_str(), "--tls", "PING"],
    ] {
        let output = cli(&args, "");
        assert!(!output.status.success(), "{args:?}: {output:?}");
        assert!(output.stdout.is_empty(), "{args:?}: {output:?}");
    }
}
