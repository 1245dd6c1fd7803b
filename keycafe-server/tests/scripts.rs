//! Golden scripts: readable command/reply transcripts in `tests/scripts/`.
//!
//! Each `.txt` file runs against a fresh node over RESP. A line `> CMD args`
//! sends a command (split with redis-cli's quoting rules); the lines after it,
//! up to the next command, are the expected reply exactly as redis-cli prints
//! it. `!sleep MS` pauses (used sparingly, for expiry). `#` starts a comment.
//! A failing script reports every mismatch with its file and line.
//!
//! A script's connection starts in RESP2, as every Redis connection does;
//! `> HELLO 3` switches it to RESP3 (and `> HELLO 2` back), after which
//! replies print as `redis-cli -3` prints them: maps as `1# "key" => value`,
//! sets as `1~ ...`, `(double)`, `(true)`, `(nil)` for `_`, and verbatim
//! strings (INFO, CLIENT INFO, CLUSTER INFO) as their bare text, whose CRLF
//! line ends are written as plain lines here. The client's decoder reads
//! both versions, so only the server's side switches.
//!
//! What differs from one run to the next is written as a placeholder: the
//! node's id as `<node-id>`, its client port as `<port>`, its bus port as
//! `<bus-port>`; `<*>` stands for any run of characters other than spaces
//! and newlines (the client's own port, file descriptor and buffer sizes
//! in a CLIENT LIST line). An expected line that starts with `\` is taken
//! as it is after that backslash, for output that starts with `#` (INFO's
//! section headers), which would otherwise be a comment.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{RawClient, redis_cli_format};
use keycafe_core::Frame;
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
            let line = line.strip_prefix('\\').unwrap_or(line);
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
    let node_id = match client.cmd("CLUSTER MYID").await {
        Frame::Bulk(id) => String::from_utf8_lossy(&id).into_owned(),
        other => panic!("CLUSTER MYID answers a bulk string, not {other:?}"),
    };
    let port = server.addr().port().to_string();
    let bus_port = format!("@{}", server.config().bus_port());
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
        // Verbatim text ends its lines with CRLF (and redis-cli adds a
        // newline after it): compare it as the lines it prints.
        let got = redis_cli_format(&reply)
            .replace("\r\n", "\n")
            .replace(&node_id, "<node-id>")
            .replace(&bus_port, "@<bus-port>")
            .replace(&port, "<port>");
        let got = got.trim_end_matches('\n');
        let expected = step.expected.join("\n");
        if !matches_with_wildcards(&expected, got) {
            failures.push(format!(
                "{name}:{}: > {}\n  expected: {expected}\n  got:      {got}",
                step.line, step.command
            ));
        }
    }
    server.stop().await;
    failures
}

/// True if `got` is `expected`, each `<*>` in it standing for any run of
/// characters other than spaces and newlines.
fn matches_with_wildcards(expected: &str, got: &str) -> bool {
    let mut parts = expected.split("<*>");
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = got.strip_prefix(first) else {
        return false;
    };
    for part in parts {
        // The wildcard takes the shortest run after which `part` follows
        // (the whole run, for a wildcard that ends the text).
        let run = rest.find([' ', '\n']).unwrap_or(rest.len());
        let found = match part.is_empty() {
            true => Some(run),
            false => (0..=run).find(|&at| rest[at..].starts_with(part)),
        };
        let Some(at) = found else {
            return false;
        };
        rest = &rest[at + part.len()..];
    }
    rest.is_empty()
}

#[test]
fn wildcards_stand_for_one_word_at_most() {
    assert!(matches_with_wildcards("fd=<*> name=x", "fd=12 name=x"));
    assert!(matches_with_wildcards("a=<*>", "a=1"));
    assert!(matches_with_wildcards("a=<*> b", "a= b"));
    assert!(!matches_with_wildcards("a=<*> b", "a=1 2 b"));
    assert!(!matches_with_wildcards("a=<*>", "a=1\nb"));
    assert!(!matches_with_wildcards("a=1", "a=12"));
}

/// Splits a command line with redis-cli's quoting rules.
fn split_command(line: &str) -> Vec<Vec<u8>> {
    keycafe_core::resp::split_command_line(line.as_bytes()).expect("script command parses")
}

/// The formatter prints RESP3's types as redis-cli 7.0 (`redis-cli -3`)
/// printed them: each case is the bytes redis-server sent and what
/// redis-cli showed for them. (Doubles and booleans, which no Keycafe
/// command answers with yet, came from `EVAL "redis.setresp(3); return ..."`.)
#[test]
fn the_formatter_prints_what_redis_cli_prints() {
    let cases: &[(&[u8], &str)] = &[
        (b",1.5\r\n", "(double) 1.5"),
        (b"#t\r\n", "(true)"),
        (b"#f\r\n", "(false)"),
        (b"_\r\n", "(nil)"),
        (b"%1\r\n$1\r\na\r\n:1\r\n", "1# \"a\" => (integer) 1"),
        (b"~1\r\n$1\r\na\r\n", "1~ \"a\""),
        (b"=15\r\ntxt:hello\nworld\r\n", "hello\nworld"),
        (
            b"*4\r\n%1\r\n$1\r\nx\r\n*2\r\n:1\r\n:2\r\n~0\r\n%0\r\n,-1.0000000000000001e+300\r\n",
            "1) 1# \"x\" => \n      1) (integer) 1\n      2) (integer) 2\n2) (empty set)\n\
             3) (empty hash)\n4) (double) -1.0000000000000001e+300",
        ),
        // Redis 7.0's COMMAND INFO get: a map whose value takes several
        // lines starts on a line of its own; one that takes one stays.
        (
            b"*1\r\n*10\r\n$3\r\nget\r\n:2\r\n~2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n\
              ~3\r\n+@read\r\n+@string\r\n+@fast\r\n~0\r\n~1\r\n%3\r\n$5\r\nflags\r\n~2\r\n\
              +RO\r\n+access\r\n$12\r\nbegin_search\r\n%2\r\n$4\r\ntype\r\n$5\r\nindex\r\n\
              $4\r\nspec\r\n%1\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n%2\r\n$4\r\ntype\r\n\
              $5\r\nrange\r\n$4\r\nspec\r\n%3\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n\
              $5\r\nlimit\r\n:0\r\n~0\r\n",
            concat!(
                "1)  1) \"get\"\n",
                "    2) (integer) 2\n",
                "    3) 1~ readonly\n",
                "       2~ fast\n",
                "    4) (integer) 1\n",
                "    5) (integer) 1\n",
                "    6) (integer) 1\n",
                "    7) 1~ @read\n",
                "       2~ @string\n",
                "       3~ @fast\n",
                "    8) (empty set)\n",
                "    9) 1~ 1# \"flags\" => \n",
                "             1~ RO\n",
                "             2~ access\n",
                "          2# \"begin_search\" => \n",
                "             1# \"type\" => \"index\"\n",
                "             2# \"spec\" => 1# \"index\" => (integer) 1\n",
                "          3# \"find_keys\" => \n",
                "             1# \"type\" => \"range\"\n",
                "             2# \"spec\" => \n",
                "                1# \"lastkey\" => (integer) 0\n",
                "                2# \"keystep\" => (integer) 1\n",
                "                3# \"limit\" => (integer) 0\n",
                "   10) (empty set)",
            ),
        ),
    ];
    for (bytes, printed) in cases {
        let mut buf = bytes::BytesMut::from(*bytes);
        let frame = keycafe_core::Protocol::Resp3
            .decode_frame(&mut buf, &keycafe_core::Limits::DEFAULT)
            .expect("well-formed")
            .expect("whole");
        assert!(buf.is_empty(), "{bytes:?} decoded whole");
        assert_eq!(redis_cli_format(&frame), *printed, "{bytes:?}");
    }
}
