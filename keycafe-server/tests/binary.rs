//! The real `keycafe-server` binary: configuration file, flags, logs, and a
//! clean exit on SIGTERM.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{RawClient, simple, start_binary};
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
