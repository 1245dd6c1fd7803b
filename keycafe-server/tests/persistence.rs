//! A node's data directory across restarts and crashes, with the real
//! binary: every write acknowledged under `appendfsync always` survives
//! `kill -9`; under `everysec` about a second may go; snapshots come back;
//! a damaged or unusable directory stops the node with a clear message and
//! is left as it was. Every write's outcome is recorded and the history is
//! checked afterwards.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::{RawClient, bulk, simple, start_binary};
use keycafe_core::{Frame, Limits, Protocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// What became of one write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    Error,
    /// Sent, and the connection died before the reply: it may or may not
    /// have happened.
    Unknown,
}

/// One writer's history: the outcome of `SET w:i i` for i = 0, 1, …, and
/// when each reply came.
struct History {
    writer: usize,
    outcomes: Vec<(Outcome, Instant)>,
}

/// `SET w:i i` for i = 0, 1, …, sent [`BATCH`] at a time (pipelined, as
/// busy clients do), until the connection dies or `run_for` has passed.
async fn write_until_it_dies(addr: SocketAddr, writer: usize, run_for: Duration) -> History {
    const LIMIT: usize = 400_000;
    let mut history = History {
        writer,
        outcomes: Vec::new(),
    };
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return history;
    };
    let mut input = BytesMut::new();
    let started = Instant::now();
    while history.outcomes.len() < LIMIT && started.elapsed() < run_for {
        let first = history.outcomes.len();
        let mut out = BytesMut::new();
        for i in first..first + BATCH {
            let (key, value) = (format!("{writer}:{i}"), i.to_string());
            Protocol::Resp2.encode_request(&[b"SET", key.as_bytes(), value.as_bytes()], &mut out);
        }
        let sent = stream.write_all(&out).await.is_ok();
        for _ in 0..BATCH {
            let reply = match sent {
                true => read_reply(&mut stream, &mut input).await,
                false => None,
            };
            let outcome = match reply {
                Some(frame) if frame == simple("OK") => Outcome::Ok,
                Some(_) => Outcome::Error,
                None => Outcome::Unknown,
            };
            history.outcomes.push((outcome, Instant::now()));
        }
        if history
            .outcomes
            .last()
            .is_some_and(|(o, _)| *o == Outcome::Unknown)
        {
            break;
        }
    }
    history
}

/// Writes each writer pipelines.
const BATCH: usize = 8;

/// The next reply, or `None` once the connection is gone.
async fn read_reply(stream: &mut TcpStream, input: &mut BytesMut) -> Option<Frame> {
    loop {
        if let Some(frame) = Protocol::Resp2.decode_frame(input, &Limits::DEFAULT).ok()? {
            return Some(frame);
        }
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read_buf(input));
        match read.await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return None,
        }
    }
}

/// Runs `writers` writers against the node, kills it with SIGKILL after
/// `after`, and returns each writer's history and when the kill was sent.
async fn write_then_kill(
    child: &mut Child,
    addr: SocketAddr,
    writers: usize,
    after: Duration,
) -> (Vec<History>, Instant) {
    let tasks: Vec<_> = (0..writers)
        .map(|w| tokio::spawn(write_until_it_dies(addr, w, after * 3)))
        .collect();
    tokio::time::sleep(after).await;
    let killed = Instant::now();
    child.start_kill().expect("kill -9");
    child.wait().await.expect("reaped");
    let mut histories = Vec::new();
    for task in tasks {
        histories.push(task.await.expect("writer task"));
    }
    (histories, killed)
}

/// The values of `{w}:0` … `{w}:{count - 1}`, and of the one after them,
/// read with MGET in chunks.
async fn values_of(client: &mut RawClient, w: usize, count: usize) -> Vec<Option<String>> {
    let mut values = Vec::with_capacity(count + 1);
    let keys: Vec<String> = (0..=count).map(|i| format!("{w}:{i}")).collect();
    for chunk in keys.chunks(1000) {
        let mut args: Vec<&[u8]> = vec![b"MGET"];
        args.extend(chunk.iter().map(String::as_bytes));
        let Frame::Array(items) = client.call(&args).await else {
            panic!("MGET answers an array");
        };
        values.extend(items.into_iter().map(|item| match item {
            Frame::Bulk(value) => Some(String::from_utf8(value.to_vec()).unwrap()),
            _ => None,
        }));
    }
    values
}

fn dir_arg(dir: &Path) -> String {
    dir.to_str().expect("a UTF-8 temp path").to_string()
}

async fn start_with_dir(dir: &Path, extra: &[&str]) -> (Child, SocketAddr) {
    let dir = dir_arg(dir);
    let mut args = vec!["--port", "0", "--threads", "2", "--dir", &dir];
    args.extend_from_slice(extra);
    start_binary(&args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_appendfsync_always_every_acknowledged_write_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let always = ["--appendonly", "yes", "--appendfsync", "always"];
    let (mut child, addr) = start_with_dir(dir.path(), &always).await;
    let (histories, _) = write_then_kill(&mut child, addr, 8, Duration::from_millis(1500)).await;
    let acknowledged: usize = histories
        .iter()
        .map(|h| h.outcomes.iter().filter(|(o, _)| *o == Outcome::Ok).count())
        .sum();
    assert!(
        acknowledged > 100,
        "the writers got going ({acknowledged} writes)"
    );

    let (_child, addr) = start_with_dir(dir.path(), &always).await;
    let mut client = RawClient::resp(addr).await;
    for history in &histories {
        let w = history.writer;
        let found = values_of(&mut client, w, history.outcomes.len()).await;
        for (i, (outcome, _)) in history.outcomes.iter().enumerate() {
            match outcome {
                Outcome::Ok => {
                    assert_eq!(found[i], Some(i.to_string()), "acknowledged {w}:{i} lost")
                }
                Outcome::Unknown => assert!(found[i].is_none() || found[i] == Some(i.to_string())),
                Outcome::Error => panic!("write {w}:{i} was refused"),
            }
        }
        // Nothing this writer never sent.
        assert_eq!(found[history.outcomes.len()], None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_everysec_a_crash_loses_about_a_second_at_most() {
    let dir = tempfile::tempdir().unwrap();
    let everysec = ["--appendonly", "yes", "--appendfsync", "everysec"];
    let (mut child, addr) = start_with_dir(dir.path(), &everysec).await;
    let (histories, killed) =
        write_then_kill(&mut child, addr, 4, Duration::from_millis(2500)).await;

    let (_child, addr) = start_with_dir(dir.path(), &everysec).await;
    let mut client = RawClient::resp(addr).await;
    // The writer thread syncs once a second; a sync takes a while on a
    // busy machine: what was acknowledged more than 2 s before the kill
    // must be on disk.
    let safe_before = killed - Duration::from_secs(2);
    let mut checked = 0;
    for history in &histories {
        let w = history.writer;
        let found = values_of(&mut client, w, history.outcomes.len()).await;
        let mut lost_from = None;
        for (i, (outcome, at)) in history.outcomes.iter().enumerate() {
            if *outcome == Outcome::Ok && *at < safe_before {
                assert_eq!(
                    found[i],
                    Some(i.to_string()),
                    "{w}:{i} acknowledged 2 s before the kill is lost"
                );
                checked += 1;
            }
            // What survives is a prefix of each writer's writes.
            match (found[i].is_some(), lost_from) {
                (false, None) => lost_from = Some(i),
                (true, Some(gap)) => panic!("{w}:{i} is back but {w}:{gap} is not"),
                _ => {}
            }
        }
    }
    assert!(checked > 0, "some writes were old enough to check");
}

#[tokio::test]
async fn a_snapshot_brings_back_keys_and_deadlines_after_a_clean_stop_or_a_save() {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = start_with_dir(dir.path(), &["--save", ""]).await;
    let mut client = RawClient::resp(addr).await;
    assert_eq!(client.cmd("SET plain v").await, simple("OK"));
    assert_eq!(client.cmd("SET timed t PX 600000").await, simple("OK"));
    let before = client.cmd("LASTSAVE").await;
    assert_eq!(client.cmd("SAVE").await, simple("OK"));
    let Frame::Integer(after) = client.cmd("LASTSAVE").await else {
        panic!("LASTSAVE is an integer");
    };
    assert!(matches!(before, Frame::Integer(b) if b <= after));
    assert_eq!(
        client.cmd("BGSAVE").await,
        simple("Background saving started")
    );
    // A write after the snapshot, lost by a crash (no save rules, no AOF).
    assert_eq!(client.cmd("SET later x").await, simple("OK"));
    let info = client.cmd("INFO persistence").await;
    let Frame::Bulk(text) = info else {
        panic!("INFO is a bulk")
    };
    let text = String::from_utf8_lossy(&text);
    assert!(text.contains("aof_enabled:0"), "{text}");
    drop(client);
    kill_9(child).await;

    let (child, addr) = start_with_dir(dir.path(), &["--save", ""]).await;
    let mut client = RawClient::resp(addr).await;
    assert_eq!(client.cmd("GET plain").await, bulk("v"));
    assert_eq!(client.cmd("GET later").await, Frame::Null);
    let Frame::Integer(pttl) = client.cmd("PTTL timed").await else {
        panic!("PTTL is an integer")
    };
    assert!(pttl > 500_000 && pttl <= 600_000, "deadline kept: {pttl}");

    // A clean stop with save rules takes a last snapshot.
    let (child2, addr2) = {
        drop(client);
        sigterm_and_wait(child).await;
        start_with_dir(dir.path(), &["--save", "3600 1"]).await
    };
    let mut client = RawClient::resp(addr2).await;
    assert_eq!(client.cmd("SET at-stop s").await, simple("OK"));
    drop(client);
    sigterm_and_wait(child2).await;
    let (_child, addr) = start_with_dir(dir.path(), &["--save", ""]).await;
    let mut client = RawClient::resp(addr).await;
    assert_eq!(client.cmd("GET at-stop").await, bulk("s"));
}

#[tokio::test]
async fn a_node_without_a_directory_says_so_and_one_per_directory() {
    let (_child, addr) = start_binary(&["--port", "0"]).await;
    let mut client = RawClient::resp(addr).await;
    let Frame::Error(text) = client.cmd("SAVE").await else {
        panic!("SAVE without a data directory is an error");
    };
    assert!(String::from_utf8_lossy(&text).contains("data directory"));

    let dir = tempfile::tempdir().unwrap();
    let (_first, _) = start_with_dir(dir.path(), &[]).await;
    let output = run_to_exit(&["--port", "0", "--dir", &dir_arg(dir.path())]).await;
    assert!(
        output.contains("in use by another keycafe-server"),
        "{output}"
    );
}

#[tokio::test]
async fn damage_or_an_unusable_directory_stops_the_node_and_changes_nothing() {
    // Damage in the middle of the append-only file.
    let dir = tempfile::tempdir().unwrap();
    let always = ["--appendonly", "yes", "--appendfsync", "always"];
    let (child, addr) = start_with_dir(dir.path(), &always).await;
    let mut client = RawClient::resp(addr).await;
    for i in 0..20 {
        assert_eq!(client.cmd(&format!("SET k{i} v")).await, simple("OK"));
    }
    drop(client);
    sigterm_and_wait(child).await;
    let incr = dir.path().join("appendonly/incr.1.kca");
    let mut bytes = std::fs::read(&incr).unwrap();
    bytes[40] ^= 0xff; // inside the first block's payload
    std::fs::write(&incr, &bytes).unwrap();
    let mut args = vec!["--port", "0"];
    let dir_text = dir_arg(dir.path());
    args.extend(["--dir", &dir_text]);
    args.extend_from_slice(&always);
    let output = run_to_exit(&args).await;
    assert!(
        output.contains("incr.1.kca") && output.contains("at byte 32"),
        "names the file and the offset: {output}"
    );
    assert_eq!(
        std::fs::read(&incr).unwrap(),
        bytes,
        "the file is left as it was"
    );

    // A directory that cannot be made.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let under_file = file.join("data");
    let output = run_to_exit(&["--port", "0", "--dir", &dir_arg(&under_file)]).await;
    assert!(
        output.contains("a-file/data"),
        "names the directory: {output}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"not a directory");
}

async fn kill_9(mut child: Child) {
    child.start_kill().expect("kill -9");
    child.wait().await.expect("reaped");
}

async fn sigterm_and_wait(mut child: Child) {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let exited = tokio::time::timeout(Duration::from_secs(20), child.wait()).await;
    assert!(
        exited
            .expect("exits within 20 s")
            .expect("status")
            .success()
    );
}

/// Runs the binary expecting it to stop by itself with an error; returns
/// its log.
async fn run_to_exit(args: &[&str]) -> String {
    let output = tokio::time::timeout(
        Duration::from_secs(20),
        Command::new(env!("CARGO_BIN_EXE_keycafe-server"))
            .args(args)
            .env("NO_COLOR", "1")
            .output(),
    )
    .await
    .expect("stops within 20 s")
    .expect("runs");
    assert!(!output.status.success(), "refuses to start");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn config_set_turns_the_append_only_file_on_while_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = start_with_dir(dir.path(), &["--save", ""]).await;
    let mut client = RawClient::resp(addr).await;
    let dir_text = dir_arg(dir.path());
    assert_eq!(
        client.cmd("CONFIG GET dir").await,
        Frame::Array(vec![bulk("dir"), bulk(&dir_text)])
    );
    assert_eq!(client.cmd("SET before on").await, simple("OK"));
    assert_eq!(client.cmd("CONFIG SET appendonly yes").await, simple("OK"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let Frame::Bulk(info) = client.cmd("INFO persistence").await else {
            panic!("INFO is a bulk");
        };
        if String::from_utf8_lossy(&info).contains("aof_enabled:1") {
            break;
        }
        assert!(Instant::now() < deadline, "the append-only file started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        client.cmd("CONFIG SET appendfsync always").await,
        simple("OK")
    );
    assert_eq!(
        client.cmd("CONFIG GET appendfsync").await,
        Frame::Array(vec![bulk("appendfsync"), bulk("always")])
    );
    assert_eq!(client.cmd("SET after on").await, simple("OK"));
    let Frame::Error(bad) = client.cmd("CONFIG SET appendfsync sometimes").await else {
        panic!("a bad value is refused");
    };
    assert!(String::from_utf8_lossy(&bad).contains("always"));
    drop(client);
    kill_9(child).await;

    let (_child, addr) = start_with_dir(dir.path(), &["--appendonly", "yes"]).await;
    let mut client = RawClient::resp(addr).await;
    assert_eq!(client.cmd("GET before").await, bulk("on"));
    assert_eq!(client.cmd("GET after").await, bulk("on"));

    // Without a data directory there is nothing to turn on.
    let (_plain, addr) = start_binary(&["--port", "0"]).await;
    let mut client = RawClient::resp(addr).await;
    let Frame::Error(text) = client.cmd("CONFIG SET appendonly yes").await else {
        panic!("refused without a data directory");
    };
    assert!(
        String::from_utf8_lossy(&text).contains("data directory"),
        "{text:?}"
    );
}

/// A small tmpfs the test mounts (as root) and unmounts when dropped: a
/// disk that fills up.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "this test mounts a small tmpfs to fill a disk: it needs root (./test.sh runs as root)"
        );
        SmallDisk { dir }
    }

    fn grow(&self, size: &str) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.dir.path())
            .status()
            .expect("mount runs");
        assert!(status.success(), "remount");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test]
async fn a_full_disk_refuses_writes_loses_nothing_acknowledged_and_recovers() {
    let disk = SmallDisk::mount("512k");
    let data = disk.dir.path().join("node");
    let always = [
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--save",
        "",
    ];
    let (child, addr) = start_with_dir(&data, &always).await;
    let mut writer = RawClient::resp(addr).await;
    let value = "x".repeat(16 * 1024);
    // Fill the disk. The write that finds it full gets no reply (its
    // change is not on disk, so it is not acknowledged) until there is
    // room again.
    let mut acknowledged = Vec::new();
    let stuck = loop {
        let key = format!("big:{}", acknowledged.len());
        writer
            .send(&[b"SET", key.as_bytes(), value.as_bytes()])
            .await;
        let reply = tokio::time::timeout(Duration::from_secs(3), writer.read_frame()).await;
        match reply {
            Ok(Some(frame)) if frame == simple("OK") => acknowledged.push(key),
            Ok(other) => panic!("{key}: {other:?}"),
            Err(_) => break key,
        }
        assert!(acknowledged.len() < 100, "the disk never filled up");
    };
    assert!(!acknowledged.is_empty());

    // Meanwhile every other write is refused, and reads work.
    let mut other = RawClient::resp(addr).await;
    let Frame::Error(text) = other.cmd("SET small v").await else {
        panic!("a write on a full disk is refused");
    };
    let text = String::from_utf8_lossy(&text).into_owned();
    assert!(
        text.starts_with("MISCONF Errors writing to the AOF file"),
        "{text}"
    );
    assert_eq!(
        other.cmd(&format!("STRLEN {}", acknowledged[0])).await,
        Frame::Integer(16384)
    );

    // Room again: the stuck write is written and answered, and writes work.
    disk.grow("8m");
    let reply = tokio::time::timeout(Duration::from_secs(10), writer.read_frame()).await;
    assert_eq!(
        reply.expect("answered once there is room"),
        Some(simple("OK"))
    );
    acknowledged.push(stuck);
    let deadline = Instant::now() + Duration::from_secs(10);
    while other.cmd("SET small v").await != simple("OK") {
        assert!(Instant::now() < deadline, "writes accepted again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop((writer, other));
    kill_9(child).await;

    let (_child, addr) = start_with_dir(&data, &always).await;
    let mut client = RawClient::resp(addr).await;
    for key in &acknowledged {
        assert_eq!(
            client.cmd(&format!("STRLEN {key}")).await,
            Frame::Integer(16384),
            "{key}"
        );
    }
    assert_eq!(client.cmd("GET small").await, bulk("v"));
}

#[tokio::test]
async fn the_append_only_file_is_rewritten_once_it_has_grown() {
    let dir = tempfile::tempdir().unwrap();
    let aof = ["--appendonly", "yes", "--save", ""];
    let (child, addr) = start_with_dir(dir.path(), &aof).await;
    let mut client = RawClient::resp(addr).await;
    assert_eq!(
        client
            .cmd("CONFIG SET auto-aof-rewrite-min-size 64kb auto-aof-rewrite-percentage 100")
            .await,
        simple("OK")
    );
    // The same ten keys over and over: the increments grow, the data not.
    let value = "v".repeat(1000);
    for i in 0..200 {
        let key = format!("k{}", i % 10);
        assert_eq!(
            client
                .call(&[b"SET", key.as_bytes(), value.as_bytes()])
                .await,
            simple("OK")
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let Frame::Bulk(info) = client.cmd("INFO persistence").await else {
            panic!("INFO is a bulk");
        };
        let info = String::from_utf8_lossy(&info).into_owned();
        let field = |name: &str| -> u64 {
            let line = info.lines().find(|l| l.starts_with(name)).expect(name);
            line[name.len() + 1..].parse().unwrap()
        };
        if field("aof_rewrites") >= 1 && field("aof_rewrite_in_progress") == 0 {
            assert!(field("aof_current_size") < 64 * 1024, "{info}");
            break;
        }
        assert!(Instant::now() < deadline, "a rewrite ran: {info}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(client);
    kill_9(child).await;
    let (_child, addr) = start_with_dir(dir.path(), &aof).await;
    let mut client = RawClient::resp(addr).await;
    assert_eq!(client.cmd("DBSIZE").await, Frame::Integer(10));
    assert_eq!(client.cmd("STRLEN k9").await, Frame::Integer(1000));
}
