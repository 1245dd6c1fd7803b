//! Golden scripts: readable command/reply transcripts in `tests/scripts/`.
//!
//! Each `.txt` file runs against a fresh node over RESP. A line `> CMD args`
//! sends a command (split with redis-cli's quoting rules); the lines after it,
//! up to the next command, are the expected reply exactly as redis-cli prints
//! it. `!sleep MS` pauses (used sparingly, for expiry). `#` starts a comment.
//! A failing script reports every mismatch with its file and line.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{RawClient, redis_cli_format};
use keycafe_server::test_util::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_scripts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/scripts exists")
        .map(|entry| entry.expect("readable dir entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "txt"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no scripts found in {}", dir.display());

    let mut failures = Vec::new();
    for path in &paths {
        let script = std::fs::read_to_string(path).expect("readable script");
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        failures.extend(run_script(&name, &script).await);
    }
    assert!(failures.is_empty(), "\n{}\n", failures.join("\n\n"));
}

/// One step of a script: a command, where it is, and the reply expected.
struct Step {
    line: usize,
    command: String,
    expected: Vec<String>,
}

fn parse_script(script: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    for (index, line) in script.lines().enumerate() {
        if let Some(command) = line.strip_prefix("> ") {
            steps.push(Step {
                line: index + 1,
                command: command.to_string(),
                expected: vec![],
            });
        } else if line.starts_with("!sleep ") {
            steps.push(Step {
                line: index + 1,
                command: line.to_string(),
                expected: vec![],
            });
        } else if line.starts_with('#') || line.trim().is_empty() {
            continue;
        } else if let Some(step) = steps.last_mut() {
            step.expected.push(line.to_string());
        } else {
            panic!("line {}: expected output before any command", index + 1);
        }
    }
    steps
}

async fn run_script(name: &str, script: &str) -> Vec<String> {
    let server = TestServer::standalone().await;
    let mut client = RawClient::resp(server.addr()).await;
    let mut failures = Vec::new();
    for step in parse_script(script) {
        if let Some(ms) = step.command.strip_prefix("!sleep ") {
            let ms: u64 = ms.trim().parse().expect("!sleep takes milliseconds");
            tokio::time::sleep(Duration::from_millis(ms)).await;
            continue;
        }
        let args = split_command(&step.command);
        let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        let reply = client.call(&args).await;
        let got = redis_cli_format(&reply);
        let expected = step.expected.join("\n");
        if got != expected {
            failures.push(format!(
                "{name}:{}: > {}\n  expected: {expected}\n  got:      {got}",
                step.line, step.command
            ));
        }
    }
    server.stop().await;
    failures
}

/// Splits a command line with redis-cli's quoting rules.
fn split_command(line: &str) -> Vec<Vec<u8>> {
    keycafe_core::resp::split_command_line(line.as_bytes()).expect("script command parses")
}
