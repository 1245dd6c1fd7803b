//! redis-cli (Debian's redis-tools), run as a real process against a node.

use keycafe_server::Config;
use keycafe_server::test_util::TestServer;
use tokio::process::Command;

/// Runs `redis-cli -p PORT args...` and returns its standard output. (Its
/// exit status is not checked: redis-cli reports error replies with a
/// non-zero status, and some tests expect errors.)
async fn redis_cli(port: u16, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .await
        .expect("redis-cli is installed (test.sh installs redis-tools)");
    String::from_utf8(output.stdout).expect("utf-8 output")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shot_commands() {
    let server = TestServer::standalone().await;
    let port = server.port();
    assert_eq!(redis_cli(port, &["PING"]).await, "PONG\n");
    assert_eq!(
        redis_cli(port, &["SET", "example_key", "KEY"]).await,
        "OK\n"
    );
    assert_eq!(redis_cli(port, &["GET", "example_key"]).await, "KEY\n");
    assert_eq!(redis_cli(port, &["GET", "no_key"]).await, "\n");
    assert_eq!(redis_cli(port, &["INCRBY", "n", "7"]).await, "7\n");
    assert_eq!(
        redis_cli(port, &["MGET", "example_key", "n"]).await,
        "KEY\n7\n"
    );
    assert_eq!(
        redis_cli(port, &["DELETE", "example_key", "n"]).await,
        "2\n"
    );
    assert_eq!(
        redis_cli(port, &["CLUSTER", "KEYSLOT", "{user1000}.a"]).await,
        redis_cli(port, &["CLUSTER", "KEYSLOT", "{user1000}.b"]).await
    );
    let info = redis_cli(port, &["INFO", "server"]).await;
    assert!(info.contains("redis_version:"), "{info}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_mode_and_password() {
    let config = Config {
        requirepass: Some("s3cret".into()),
        ..Config::default()
    };
    let server = TestServer::start(config).await;
    let port = server.port();
    let refused = redis_cli(port, &["GET", "k"]).await;
    assert!(refused.contains("NOAUTH"), "{refused}");
    let args = ["-a", "s3cret", "--no-auth-warning", "-c"];
    assert_eq!(
        redis_cli(port, &[&args[..], &["SET", "k", "v"]].concat()).await,
        "OK\n"
    );
    assert_eq!(
        redis_cli(port, &[&args[..], &["GET", "k"]].concat()).await,
        "v\n"
    );
    let wrong = redis_cli(port, &["-a", "nope", "--no-auth-warning", "PING"]).await;
    assert!(
        wrong.contains("WRONGPASS") || wrong.contains("NOAUTH"),
        "{wrong}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipe_mode_loads_many_keys() {
    use std::process::Stdio;
    use tokio::io::AsyncWriteExt;

    let server = TestServer::standalone().await;
    let mut child = Command::new("redis-cli")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &server.port().to_string(),
            "--pipe",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("redis-cli starts");
    let mut input = Vec::new();
    for i in 0..5000 {
        let (key, value) = (format!("pipe:{i}"), format!("value-{i}"));
        input.extend_from_slice(
            format!(
                "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n{value}\r\n",
                key.len(),
                value.len()
            )
            .as_bytes(),
        );
    }
    let mut stdin = child.stdin.take().expect("stdin piped");
    stdin.write_all(&input).await.unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("errors: 0, replies: 5000"), "{text}");
    assert_eq!(redis_cli(server.port(), &["DBSIZE"]).await, "5000\n");
    assert_eq!(
        redis_cli(server.port(), &["GET", "pipe:4999"]).await,
        "value-4999\n"
    );
    server.stop().await;
}
