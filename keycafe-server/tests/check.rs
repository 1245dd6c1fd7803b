//! The real `keycafe-check` binary on good, torn and corrupt files: its
//! output, its exit status, and what `--repair` leaves behind. The
//! transcripts of `docs/persistence.md` ("Checking and repairing files") are
//! run here and must print exactly what the document shows.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};

use bytes::BytesMut;
use keycafe_server::persist::format::{
    HEADER_LEN, HeaderFields, Kind, encode_block, encode_end, encode_header,
};

const FIELDS: HeaderFields = HeaderFields {
    created_ms: 1_767_225_600_000,
    sequence: 42,
};

fn request(args: &[&str]) -> Vec<u8> {
    let mut out = BytesMut::new();
    keycafe_core::native::encode_request(args, &mut out);
    out.to_vec()
}

fn block(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_block(payload, &mut out).unwrap();
    out
}

fn header(kind: Kind) -> Vec<u8> {
    let mut out = Vec::new();
    encode_header(kind, FIELDS, &mut out);
    out
}

/// The snapshot of the document: one key, `k` = `v` (85 bytes).
fn snapshot() -> Vec<u8> {
    let mut out = header(Kind::Snapshot);
    out.extend(block(&request(&["SET", "k", "v"])));
    encode_end(1, &mut out);
    out
}

/// The append-only file of the document: one `DEL k` (63 bytes).
fn aof() -> Vec<u8> {
    [header(Kind::AppendOnly), block(&request(&["DEL", "k"]))].concat()
}

/// [`aof`] and the first 17 bytes of a block a crash cut short.
fn torn_aof() -> Vec<u8> {
    let next = block(&request(&["SET", "a", "1"]));
    [aof(), next[..17].to_vec()].concat()
}

/// [`aof`], a block with one payload byte flipped, and a good block after it.
fn corrupt_aof() -> Vec<u8> {
    let mut damaged = block(&[request(&["SET", "a", "1"]), request(&["SET", "b", "2"])].concat());
    damaged[20] ^= 0x01;
    [aof(), damaged, block(&request(&["DEL", "a"]))].concat()
}

struct Dir {
    temp: tempfile::TempDir,
}

impl Dir {
    fn new() -> Dir {
        let temp = tempfile::tempdir().unwrap();
        fs::create_dir_all(temp.path().join("data/appendonly")).unwrap();
        Dir { temp }
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.path(name);
        fs::write(&path, bytes).unwrap();
        path
    }

    fn path(&self, name: &str) -> PathBuf {
        self.temp.path().join(name)
    }

    /// Runs the binary in this directory.
    fn check(&self, args: &[&str]) -> Output {
        let output = Command::new(env!("CARGO_BIN_EXE_keycafe-check"))
            .args(args)
            .current_dir(self.temp.path())
            .output()
            .expect("keycafe-check runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        output
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("exited, not killed")
}

#[test]
fn good_files_are_ok() {
    let dir = Dir::new();
    dir.write("data/dump.kcs", &snapshot());
    dir.write("data/appendonly/incr.1.kca", &aof());
    dir.write("data/empty.kca", &header(Kind::AppendOnly));
    let output = dir.check(&[
        "data/dump.kcs",
        "data/appendonly/incr.1.kca",
        "data/empty.kca",
    ]);
    assert_eq!(code(&output), 0, "{}", stdout(&output));
    let text = stdout(&output);
    assert!(
        text.contains("data/dump.kcs: 1 blocks, 1 records, 85 bytes: ok\n"),
        "{text}"
    );
    assert!(
        text.contains("data/appendonly/incr.1.kca: 1 blocks, 1 records, 63 bytes: ok\n"),
        "{text}"
    );
    assert!(
        text.contains("data/empty.kca: 0 blocks, 0 records, 32 bytes: ok\n"),
        "{text}"
    );
}

#[test]
fn every_transcript_of_the_doc_prints_what_it_shows() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/persistence.md");
    let doc = fs::read_to_string(path).expect("docs/persistence.md exists");
    let section = doc
        .split("\n## ")
        .find(|section| section.starts_with("Checking and repairing files"))
        .expect("the section exists");
    let transcripts: Vec<&str> = section
        .split("```text\n")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap())
        .collect();
    // The files each transcript runs on, in the document's order.
    let setups: [fn(&Dir); 2] = [
        |dir| {
            dir.write("data/dump.kcs", &snapshot());
            dir.write("data/appendonly/incr.1.kca", &torn_aof());
        },
        |dir| {
            dir.write("data/appendonly/incr.1.kca", &corrupt_aof());
        },
    ];
    assert_eq!(transcripts.len(), setups.len(), "transcripts in the doc");
    for (transcript, setup) in transcripts.iter().zip(setups) {
        let (command, expected) = transcript.split_once('\n').unwrap();
        let args: Vec<&str> = command
            .strip_prefix("$ keycafe-check ")
            .expect("a transcript starts with the command")
            .split_whitespace()
            .collect();
        let dir = Dir::new();
        setup(&dir);
        let output = dir.check(&args);
        assert_eq!(stdout(&output), expected, "{command}");
        assert_eq!(code(&output), 1, "{command}");
    }
}

#[test]
fn damaged_files_exit_1_and_name_the_offset() {
    let dir = Dir::new();
    dir.write("torn.kca", &torn_aof());
    dir.write("corrupt.kca", &corrupt_aof());
    dir.write("incomplete.kcs", &snapshot()[..85 - 16]);
    dir.write("empty", b"");
    dir.write("other", b"REDIS0011\xfa\x09redis-ver");
    let mut frames = header(Kind::AppendOnly);
    frames.extend(block(&request(&["SET", "k", "v"])[..10]));
    dir.write("frames.kca", &frames);
    let cases = [
        ("torn.kca", "truncated at byte 63:"),
        ("corrupt.kca", "corrupt at byte 63: block checksum mismatch"),
        (
            "incomplete.kcs",
            "incomplete snapshot: it ends at byte 69 after 1 blocks, without an end marker",
        ),
        (
            "empty",
            "0 good blocks, 0 records, 0 bytes: truncated at byte 0:",
        ),
        (
            "other",
            "corrupt at byte 0: not a Keycafe file (bad magic bytes)",
        ),
        (
            "frames.kca",
            "corrupt at byte 32: the block's payload is not whole request frames: it ends inside a frame",
        ),
        (
            "missing",
            "missing: 0 good blocks, 0 records, 0 bytes: cannot read it:",
        ),
    ];
    for (name, expected) in cases {
        let output = dir.check(&[name]);
        assert_eq!(code(&output), 1, "{name}");
        let text = stdout(&output);
        assert!(text.contains(expected), "{name}: {text}");
    }
    // One bad file among good ones still fails the run.
    dir.write("good.kcs", &snapshot());
    assert_eq!(code(&dir.check(&["good.kcs", "torn.kca"])), 1);
}

#[test]
fn usage_errors_exit_2() {
    let dir = Dir::new();
    dir.write("good.kcs", &snapshot());
    assert_eq!(code(&dir.check(&[])), 2);
    assert_eq!(code(&dir.check(&["--truncate-corrupt", "good.kcs"])), 2);
    assert_eq!(code(&dir.check(&["--no-such-flag", "good.kcs"])), 2);
}

#[test]
fn repair_cuts_a_torn_tail_and_keeps_a_backup() {
    let dir = Dir::new();
    let path = dir.write("aof.kca", &torn_aof());
    let output = dir.check(&["--repair", "aof.kca"]);
    let text = stdout(&output);
    assert_eq!(code(&output), 0, "{text}");
    assert!(
        text.contains(
            "aof.kca: repaired: cut to 63 bytes, dropping 17 bytes (the torn block); \
             the original is in aof.kca.bak\n"
        ),
        "{text}"
    );
    assert!(
        text.ends_with("aof.kca: 1 blocks, 1 records, 63 bytes: ok\n"),
        "{text}"
    );
    assert_eq!(fs::read(&path).unwrap(), aof());
    assert_eq!(fs::read(dir.path("aof.kca.bak")).unwrap(), torn_aof());
    assert_eq!(code(&dir.check(&["aof.kca"])), 0);

    // A second repair would overwrite the backup: refused.
    dir.write("aof.kca", &torn_aof());
    let output = dir.check(&["--repair", "aof.kca"]);
    assert_eq!(code(&output), 1);
    assert!(
        stdout(&output).contains("aof.kca.bak exists already"),
        "{}",
        stdout(&output)
    );
    assert_eq!(fs::read(&path).unwrap(), torn_aof(), "untouched");
}

#[test]
fn repair_cuts_corruption_only_when_told() {
    let dir = Dir::new();
    let path = dir.write("aof.kca", &corrupt_aof());
    let output = dir.check(&["--repair", "aof.kca"]);
    assert_eq!(code(&output), 1);
    assert!(
        stdout(&output).contains("not repaired"),
        "{}",
        stdout(&output)
    );
    assert_eq!(fs::read(&path).unwrap(), corrupt_aof(), "untouched");
    assert!(!dir.path("aof.kca.bak").exists());

    let output = dir.check(&["--repair", "--truncate-corrupt", "aof.kca"]);
    let text = stdout(&output);
    assert_eq!(code(&output), 0, "{text}");
    assert!(
        text.contains(
            "repaired: cut to 63 bytes, dropping 97 bytes \
             (the damaged block and 1 readable block after it)"
        ),
        "{text}"
    );
    assert_eq!(fs::read(&path).unwrap(), aof());
    assert_eq!(fs::read(dir.path("aof.kca.bak")).unwrap(), corrupt_aof());
}

#[test]
fn snapshots_and_unreadable_headers_are_never_repaired() {
    let dir = Dir::new();
    let torn_snapshot = &snapshot()[..80];
    dir.write("dump.kcs", torn_snapshot);
    dir.write("short.kca", &header(Kind::AppendOnly)[..20]);
    dir.write("foreign", b"hello, world");
    for (name, why) in [
        ("dump.kcs", "a snapshot is never repaired"),
        ("short.kca", "the header itself is incomplete"),
        ("foreign", "the header is damaged"),
    ] {
        let output = dir.check(&["--repair", "--truncate-corrupt", name]);
        assert_eq!(code(&output), 1, "{name}");
        assert!(stdout(&output).contains(why), "{name}: {}", stdout(&output));
        assert!(!dir.path(&format!("{name}.bak")).exists(), "{name}");
    }
    assert_eq!(fs::read(dir.path("dump.kcs")).unwrap(), torn_snapshot);
}

/// Every prefix of a file, and bytes flipped through it: the tool answers
/// with 0 or 1, never a crash; only the whole file (or, for an append-only
/// file, a cut at a block boundary) is ok.
#[test]
fn damage_anywhere_never_crashes_the_tool() {
    let dir = Dir::new();
    let original = corrupt_aof_fixed();
    let mut names = Vec::new();
    for cut in (0..original.len()).step_by(7) {
        let name = format!("cut{cut}.kca");
        dir.write(&name, &original[..cut]);
        names.push(name);
    }
    for at in (0..original.len()).step_by(11) {
        let mut damaged = original.clone();
        damaged[at] ^= 0x10;
        let name = format!("flip{at}.kca");
        dir.write(&name, &damaged);
        names.push(name);
    }
    let args: Vec<&str> = names.iter().map(String::as_str).collect();
    let output = dir.check(&args);
    assert_eq!(code(&output), 1);
    let text = stdout(&output);
    let ok: Vec<&str> = text
        .lines()
        .filter(|line| line.ends_with(": ok"))
        .map(|line| line.split(':').next().unwrap())
        .collect();
    // Block boundaries of the file: after the header, 63, 129, 160.
    assert_eq!(ok, ["cut63.kca"], "{text}");
    assert_eq!(
        text.lines()
            .filter(|line| line.contains(" bytes: "))
            .count(),
        names.len()
    );
}

/// [`corrupt_aof`] without its damage.
fn corrupt_aof_fixed() -> Vec<u8> {
    let middle = block(&[request(&["SET", "a", "1"]), request(&["SET", "b", "2"])].concat());
    [aof(), middle, block(&request(&["DEL", "a"]))].concat()
}

#[test]
fn the_example_files_have_the_sizes_the_doc_gives() {
    assert_eq!(snapshot().len(), 85);
    assert_eq!(aof().len(), 63);
    assert_eq!(torn_aof().len(), 80);
    assert_eq!(corrupt_aof().len(), 160);
    assert_eq!(HEADER_LEN, 32);
}
