//! The dashboard against a stranger on the same machine: DNS rebinding (a
//! foreign `Host`), writes without the admin token, and the security headers
//! on every answer. Requests are written by hand over TCP, so that `Host`
//! is exactly what a rebinding browser would send.

mod common;

use std::net::SocketAddr;
use std::process::Stdio;

use common::{ADMIN_TOKEN, Coordinator, FakeNode, PATIENCE, node_info, settled};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Command;

/// An HTTP answer: status, headers (names lower case), body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Panics unless the security headers shared with auth-web are there.
    fn assert_security_headers(&self, what: &str) {
        let csp = self.header("content-security-policy").unwrap_or("");
        assert!(
            csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
            "{what}: CSP {csp:?}"
        );
        assert_eq!(self.header("x-frame-options"), Some("DENY"), "{what}");
        assert_eq!(
            self.header("x-content-type-options"),
            Some("nosniff"),
            "{what}"
        );
        assert_eq!(
            self.header("referrer-policy"),
            Some("same-origin"),
            "{what}"
        );
        assert_eq!(self.header("cache-control"), Some("no-store"), "{what}");
    }
}

/// The binary on ports 0 with `args`, the test secret, logs on stderr, and
/// `KEYCAFE_ADMIN_TOKEN` set to `token` (removed if `None`).
fn coordinator_binary(data_dir: &std::path::Path, args: &[&str], token: Option<&str>) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_coordinate-server"));
    command
        .args(args)
        .args(["--port", "0", "--http-port", "0", "--data-dir"])
        .arg(data_dir)
        .env("KEYCAFE_CLUSTER_SECRET", common::SECRET)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .env_remove("KEYCAFE_ADMIN_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(token) = token {
        command.env("KEYCAFE_ADMIN_TOKEN", token);
    }
    command
}

/// Sends `method path` to `addr` with `Host: host` and the extra header
/// lines, and reads the whole answer (the connection is closed after it).
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    host: &str,
    extra: &[(&str, &str)],
) -> Answer {
    let mut text = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    for (name, value) in extra {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(text.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        raw
    };
    let raw = tokio::time::timeout(PATIENCE, exchange)
        .await
        .expect("the dashboard answers in time");
    let raw = String::from_utf8(raw).expect("a text answer");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a complete answer");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_string(),
    }
}

/// A coordinator with two fake nodes that have settled the slots between
/// them.
async fn two_nodes(dir: &std::path::Path) -> (Coordinator, FakeNode, FakeNode) {
    let coordinator = Coordinator::start(dir, |_| {}).await;
    let mut a = FakeNode::start(coordinator.node_addr, node_info(1)).await;
    let b = FakeNode::start(coordinator.node_addr, node_info(2)).await;
    a.wait_for("two nodes", |s| s.latest().is_some_and(|c| settled(c, 2)))
        .await;
    (coordinator, a, b)
}

#[tokio::test]
async fn a_foreign_host_is_refused_for_reads_and_writes_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (coordinator, _a, b) = two_nodes(dir.path()).await;
    let addr = coordinator.http_addr;
    let port = addr.port();

    // What a rebinding page sends: its own name, with a matching Origin,
    // and even the right token (it might have learnt it elsewhere).
    let evil = format!("evil.example:{port}");
    let leave = format!("/api/nodes/{}/leave", b.info.id);
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let origin = format!("http://{evil}");
    for (method, path, extra) in [
        ("GET", "/", vec![]),
        ("GET", "/api/cluster", vec![]),
        ("GET", "/metrics", vec![]),
        (
            "POST",
            leave.as_str(),
            vec![
                ("Origin", origin.as_str()),
                ("Authorization", bearer.as_str()),
            ],
        ),
    ] {
        let answer = request(addr, method, path, &evil, &extra).await;
        assert_eq!(answer.status, 421, "{method} {path}");
        assert!(answer.body.contains("Misdirected"), "{}", answer.body);
        assert!(!answer.body.contains(&b.info.id), "no cluster data leaks");
        answer.assert_security_headers("421");
    }
    // The right name with another port is foreign too.
    let answer = request(addr, "GET", "/api/cluster", "localhost:1", &[]).await;
    assert_eq!(answer.status, 421);
    let view = coordinator.cluster().await;
    assert_eq!(view.nodes.len(), 2);
    assert!(view.nodes.iter().all(|n| !n.leaving), "nothing changed");

    // Every loopback name with the port is served.
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("LocalHost:{port}"),
        format!("[::1]:{port}"),
        // As HTTP/1.0 scripts send it: the name, no port.
        "127.0.0.1".to_string(),
    ] {
        let answer = request(addr, "GET", "/api/cluster", &host, &[]).await;
        assert_eq!(answer.status, 200, "{host}");
        assert!(answer.body.contains(&b.info.id));
    }
    coordinator.stop().await.unwrap();
}

#[tokio::test]
async fn a_leave_needs_the_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let (coordinator, mut a, b) = two_nodes(dir.path()).await;
    let addr = coordinator.http_addr;
    let host = addr.to_string();
    let leave = format!("/api/nodes/{}/leave", b.info.id);

    let wrong_length = format!("Bearer {ADMIN_TOKEN}x");
    let truncated = format!("Bearer {}", &ADMIN_TOKEN[..ADMIN_TOKEN.len() - 1]);
    let not_bearer = format!("Basic {ADMIN_TOKEN}");
    for auth in [
        None,
        Some(wrong_length.as_str()),
        Some(truncated.as_str()),
        Some(not_bearer.as_str()),
        Some("Bearer "),
    ] {
        let extra: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
        let answer = request(addr, "POST", &leave, &host, &extra).await;
        assert_eq!(answer.status, 401, "{auth:?}");
        assert!(
            answer
                .header("www-authenticate")
                .is_some_and(|v| v.starts_with("Bearer")),
            "{auth:?}"
        );
        assert!(answer.body.contains("admin token"), "{}", answer.body);
        answer.assert_security_headers("401");
    }
    let view = coordinator.cluster().await;
    assert!(view.nodes.iter().all(|n| !n.leaving), "nothing changed");
    assert_eq!(view.nodes.len(), 2);

    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let answer = request(addr, "POST", &leave, &host, &[("Authorization", &bearer)]).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    answer.assert_security_headers("202");
    a.wait_for("b gone", |s| s.latest().is_some_and(|c| settled(c, 1)))
        .await;
    coordinator.stop().await.unwrap();
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(dir.path(), |_| {}).await;
    let addr = coordinator.http_addr;
    let host = addr.to_string();
    for (path, status) in [
        ("/", 200),
        ("/api/cluster", 200),
        ("/nodes/nobody/leave", 404),
        ("/no/such/page", 404),
    ] {
        let answer = request(addr, "GET", path, &host, &[]).await;
        assert_eq!(answer.status, status, "{path}");
        answer.assert_security_headers(path);
    }
    coordinator.stop().await.unwrap();
}

/// The binary with no admin token configured draws one, logs it once at
/// INFO, and accepts it; one set through `KEYCAFE_ADMIN_TOKEN` is used as is
/// and not logged.
#[tokio::test]
async fn the_binary_generates_and_logs_a_token_or_takes_one_from_the_environment() {
    for configured in [None, Some("from-the-environment-0123456789")] {
        let dir = tempfile::tempdir().unwrap();
        let mut child = coordinator_binary(dir.path(), &[], configured)
            .spawn()
            .expect("coordinate-server starts");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr piped")).lines();
        // Read up to the "ready" line (the token line, if any, comes right after).
        let mut log = Vec::new();
        let read = async {
            while let Some(line) = lines.next_line().await.expect("readable log") {
                let done = line.contains("dashboard admin token") || {
                    configured.is_some() && line.contains("coordinate-server ready")
                };
                log.push(line);
                if done {
                    break;
                }
            }
        };
        tokio::time::timeout(PATIENCE, read)
            .await
            .expect("logs in time");
        let ready = log
            .iter()
            .find(|line| line.contains("coordinate-server ready"))
            .expect("a ready line");
        let http: SocketAddr = ready
            .split("dashboard=http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|addr| addr.parse().ok())
            .expect("the dashboard's address");
        let token = match configured {
            Some(token) => {
                assert!(
                    !log.iter().any(|line| line.contains(token)),
                    "a configured token is not logged: {log:?}"
                );
                token.to_string()
            }
            None => {
                let line = log.last().expect("the token line");
                assert!(line.contains("INFO"), "{line}");
                let token = line
                    .rsplit(' ')
                    .next()
                    .expect("the token ends the line")
                    .to_string();
                assert_eq!(token.len(), 32, "128 bits in hex: {line}");
                assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{line}");
                token
            }
        };
        let leave = "/api/nodes/nobody/leave";
        let host = http.to_string();
        let refused = request(http, "POST", leave, &host, &[]).await;
        assert_eq!(refused.status, 401);
        // Past the token check, to the coordinator's own answer.
        let bearer = format!("Bearer {token}");
        let answer = request(http, "POST", leave, &host, &[("Authorization", &bearer)]).await;
        assert_eq!(answer.status, 404, "{}", answer.body);
        child.kill().await.expect("stopped");
    }
}

/// Bound beyond loopback, the binary wants an admin token of its own
/// choosing (protected mode); with one, the dashboard answers to the
/// announced host and not to `0.0.0.0`.
#[tokio::test]
async fn bound_beyond_loopback_it_wants_a_chosen_token_and_answers_the_announced_host() {
    let dir = tempfile::tempdir().unwrap();
    let everywhere = ["--bind", "0.0.0.0", "--announce-host", "coord.example"];
    let command = |token| coordinator_binary(dir.path(), &everywhere, token);
    let refused = tokio::time::timeout(PATIENCE, command(None).output())
        .await
        .expect("exits at once")
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    for says in ["protected mode", "admin_token", "protected_mode: false"] {
        assert!(stderr.contains(says), "says {says:?}: {stderr}");
    }

    let mut child = command(Some("a-token-chosen-by-the-operator"))
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let ready = async {
        while let Some(line) = lines.next_line().await.expect("readable log") {
            if let Some(rest) = line.split("dashboard=http://").nth(1) {
                return rest
                    .split('/')
                    .next()
                    .unwrap()
                    .parse::<SocketAddr>()
                    .unwrap();
            }
        }
        panic!("coordinate-server exited before it was ready");
    };
    let http = tokio::time::timeout(PATIENCE, ready)
        .await
        .expect("ready in time");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let port = http.port();
    let local = SocketAddr::from(([127, 0, 0, 1], port));
    let announced = request(
        local,
        "GET",
        "/api/cluster",
        &format!("coord.example:{port}"),
        &[],
    )
    .await;
    assert_eq!(announced.status, 200, "{}", announced.body);
    let everywhere = request(
        local,
        "GET",
        "/api/cluster",
        &format!("0.0.0.0:{port}"),
        &[],
    )
    .await;
    assert_eq!(everywhere.status, 421);
}
