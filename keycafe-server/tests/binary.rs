//! The real `keycafe-server` binary: configuration file, flags, logs, and a
//! clean exit on SIGTERM.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::{RawClient, simple};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Starts the binary with `args` and waits for its "ready" log line, which
/// carries the address it actually bound (the tests use port 0).
async fn start(args: &[&str]) -> (Child, std::net::SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keycafe-server"))
        .args(args)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("keycafe-server starts");
    let stderr = child.stderr.take().expect("stderr piped");
    let mut lines = BufReader::new(stderr).lines();
    let find_ready = async {
        while let Some(line) = lines.next_line().await.expect("readable log") {
            if let Some(rest) = line.split("addr=").nth(1) {
                let addr = rest.split_whitespace().next().unwrap_or_default();
                return addr.parse().expect("ready line has an address");
            }
        }
        panic!("keycafe-server exited before it was ready");
    };
    let addr = tokio::time::timeout(Duration::from_secs(10), find_ready)
        .await
        .expect("ready within 10 s");
    // Keep draining the log so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

/// Writes `text` to the file `name` in `dir`, for the binary to read.
fn config_file(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write the config file");
    path
}

fn sigterm(child: &Child) {
    let pid = child.id().expect("child is running");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

#[tokio::test]
async fn config_file_flags_and_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(
        &dir,
        "node.yaml",
        "service_port: 1\nrequirepass: from-file\nlog_level: info\n",
    );
    // The flag overrides the file's port; the file's password stays.
    let (child, addr) = start(&[config.to_str().unwrap(), "--port", "0"]).await;
    let mut client = RawClient::resp(addr).await;
    assert_eq!(client.cmd("AUTH from-file").await, simple("OK"));
    assert_eq!(client.cmd("SET k v").await, simple("OK"));

    sigterm(&child);
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("exits within 10 s of SIGTERM")
        .expect("exit status");
    assert!(status.status.success(), "clean exit: {:?}", status.status);
    assert_eq!(
        client.read_frame().await,
        None,
        "connections closed at shutdown"
    );
}

#[tokio::test]
async fn a_bad_config_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(&dir, "bad.yaml", "service_prot: 9814\n");
    let output = Command::new(env!("CARGO_BIN_EXE_keycafe-server"))
        .arg(&config)
        .output()
        .await
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bad.yaml") && stderr.contains("service_prot"),
        "{stderr}"
    );
}
