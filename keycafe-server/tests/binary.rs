//! The real `keycafe-server` binary: configuration file, flags, logs, and a
//! clean exit on SIGTERM.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{RawClient, simple, start_binary};
use keycafe_core::Frame;
use tokio::process::{Child, Command};

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
    let (child, addr) = start_binary(&[config.to_str().unwrap(), "--port", "0"]).await;
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

#[tokio::test]
async fn bound_beyond_loopback_without_a_password_it_refuses_to_start() {
    let output = Command::new(env!("CARGO_BIN_EXE_keycafe-server"))
        .args(["--bind", "0.0.0.0", "--port", "0"])
        .output();
    let output = tokio::time::timeout(Duration::from_secs(10), output)
        .await
        .expect("exits at once")
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for says in ["protected mode", "requirepass", "protected_mode: false"] {
        assert!(stderr.contains(says), "says {says:?}: {stderr}");
    }
    // With a password it serves, on every address.
    let (_child, addr) =
        start_binary(&["--bind", "0.0.0.0", "--port", "0", "--requirepass", "pw"]).await;
    assert!(addr.ip().is_unspecified(), "{addr}");
    let mut client = RawClient::resp(addr).await;
    assert_eq!(client.cmd("AUTH pw").await, simple("OK"));
    assert_eq!(client.cmd("PING").await, simple("PONG"));
}

#[tokio::test]
async fn a_node_announces_the_host_and_port_it_is_told() {
    let bulk = |text: &str| Frame::Bulk(text.as_bytes().to_vec().into());
    let everywhere = ["--bind", "0.0.0.0", "--port", "0", "--requirepass", "pw"];
    let announced = [
        &everywhere[..],
        &[
            "--announce-host",
            "cache.example",
            "--announce-port",
            "7777",
        ],
    ]
    .concat();
    // Bound to every address without an announced host, a standalone node
    // names no host: as in Redis, clients use the one they asked.
    for (args, host, port) in [
        (&announced[..], "cache.example", Some(7777)),
        (&everywhere[..], "", None),
    ] {
        let (_child, addr) = start_binary(args).await;
        let mut client = RawClient::resp(addr).await;
        assert_eq!(client.cmd("AUTH pw").await, simple("OK"));
        let Frame::Array(ranges) = client.cmd("CLUSTER SLOTS").await else {
            panic!("CLUSTER SLOTS answers an array");
        };
        let [Frame::Array(range)] = &ranges[..] else {
            panic!("one range: {ranges:?}");
        };
        let Frame::Array(owner) = &range[2] else {
            panic!("the range names its owner: {range:?}");
        };
        let port = port.unwrap_or(addr.port());
        assert_eq!(
            owner[..2],
            [bulk(host), Frame::Integer(port.into())],
            "{args:?}"
        );
        let Frame::Bulk(nodes) = client.cmd("CLUSTER NODES").await else {
            panic!("CLUSTER NODES answers text");
        };
        let line = String::from_utf8_lossy(&nodes).into_owned();
        assert!(line.contains(&format!(" {host}:{port}@")), "{line}");
    }
}
