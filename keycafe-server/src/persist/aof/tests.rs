//! The append-only file against a real directory: created, appended to,
//! loaded back, cut where torn, refused where damaged, rewritten.

use std::time::Duration;

use super::*;
use crate::store::{ChangeFeed, Expiry};

const STRICT: LoadPolicy = LoadPolicy {
    truncated: true,
    damaged: false,
};

/// A node's store with the two persistence subscribers, its AOF started
/// in `dir`.
struct Node {
    store: Arc<Store>,
    aof: Arc<AppendOnly>,
}

impl Node {
    fn start(dir: &Path, fsync: Fsync, policy: LoadPolicy) -> Result<Node, AofError> {
        let recorder = Arc::new(Recorder::default());
        let aof = Arc::new(AppendOnly::new(dir.to_path_buf(), fsync));
        let feed = ChangeFeed::new().with(recorder.clone()).with(aof.clone());
        let store = Arc::new(Store::with_feed(4, feed));
        AppendOnly::start(dir, store.clone(), recorder, aof.clone(), policy)?;
        Ok(Node { store, aof })
    }

    fn set(&self, key: &str, value: &str) {
        let store = &self.store;
        store
            .set(key.as_bytes(), value.as_bytes(), now_ms(), Expiry::Persist)
            .unwrap();
    }

    fn get(&self, key: &str) -> Option<String> {
        self.store.get_with(key.as_bytes(), now_ms(), |v| {
            v.map(|v| String::from_utf8(v.to_vec()).unwrap())
        })
    }

    /// Waits until everything appended so far is synced.
    fn settle(&self) {
        let target = self.aof.appended.load(Ordering::Acquire);
        let deadline = Instant::now() + Duration::from_secs(10);
        while *self.aof.durable.borrow() < target {
            assert!(Instant::now() < deadline, "the writer did not sync");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn stop(self) {
        self.aof.stop();
    }
}

fn last_increment(dir: &Path) -> PathBuf {
    let manifest = read_manifest(dir).unwrap().unwrap();
    dir.join(incr_name(manifest.last()))
}

#[test]
fn manifests_round_trip_and_malformed_ones_are_named() {
    let manifest = Manifest {
        base: 3,
        increments: vec![3, 4],
    };
    assert_eq!(
        manifest.text(),
        "base base.3.kcs\nincr incr.3.kca\nincr incr.4.kca\n"
    );
    assert_eq!(Manifest::parse(&manifest.text()), Ok(manifest));
    assert!(Manifest::parse("incr incr.1.kca\n").is_err());
    assert!(Manifest::parse("base base.1.kcs\n").is_err());
    assert!(Manifest::parse("base base.x.kcs\nincr incr.1.kca\n").is_err());
    assert!(Manifest::parse("base base.1.kcs\nbase base.2.kcs\nincr incr.1.kca\n").is_err());
}

#[test]
fn changes_survive_a_restart_and_a_transaction_is_one_unit() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), Fsync::Always, STRICT).unwrap();
    node.set("a", "1");
    node.set("b", "2");
    let shards = node.store.shards_of([b"c".as_slice(), b"d".as_slice()]);
    node.store.atomically(&shards, true, || {
        node.set("c", "3");
        node.set("d", "4");
    });
    node.store.remove(b"a", now_ms());
    node.settle();
    node.stop();

    let node = Node::start(dir.path(), Fsync::Always, STRICT).unwrap();
    assert_eq!(node.get("a"), None);
    assert_eq!(node.get("b").as_deref(), Some("2"));
    assert_eq!(node.get("d").as_deref(), Some("4"));
    node.stop();
}

#[test]
fn a_torn_tail_is_cut_off_unless_told_not_to() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), Fsync::Always, STRICT).unwrap();
    node.set("kept", "yes");
    node.settle();
    node.stop();
    // A crash in the middle of the next block: its length and a few bytes.
    let incr = last_increment(dir.path());
    let whole = size_of(&incr);
    let mut file = OpenOptions::new().append(true).open(&incr).unwrap();
    file.write_all(&[0, 0, 0, 40, 1, 2, 3, 4, 5]).unwrap();
    drop(file);

    let refused = LoadPolicy {
        truncated: false,
        damaged: false,
    };
    let err = Node::start(dir.path(), Fsync::Always, refused)
        .err()
        .unwrap();
    assert!(
        matches!(err, AofError::Damaged { offset, .. } if offset == whole),
        "{err}"
    );

    let node = Node::start(dir.path(), Fsync::Always, STRICT).unwrap();
    assert_eq!(node.get("kept").as_deref(), Some("yes"));
    assert_eq!(size_of(&incr), whole, "cut back to its last whole block");
    node.set("after", "cut");
    node.settle();
    node.stop();
    let node = Node::start(dir.path(), Fsync::Always, STRICT).unwrap();
    assert_eq!(node.get("after").as_deref(), Some("cut"));
    node.stop();
}

#[test]
fn damage_in_the_middle_stops_the_load_and_names_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), Fsync::Always, STRICT).unwrap();
    node.set("first", "1");
    node.settle();
    let first_end = size_of(&last_increment(dir.path()));
    node.set("second", "2");
    node.settle();
    node.stop();
    let incr = last_increment(dir.path());
    let mut bytes = fs::read(&incr).unwrap();
    // Flip a byte of the first block's payload: its CRC fails, and a
    // whole block follows, so no crash explains it.
    let at = format::HEADER_LEN + format::BLOCK_HEADER_LEN + 2;
    bytes[at] ^= 0x55;
    fs::write(&incr, &bytes).unwrap();

    let err = Node::start(dir.path(), Fsync::Always, STRICT)
        .err()
        .unwrap();
    let text = err.to_string();
    assert!(
        text.contains(&format!("at byte {}", format::HEADER_LEN)),
        "{text}"
    );
    assert!(text.contains("incr.1.kca"), "{text}");

    let salvage = LoadPolicy {
        truncated: true,
        damaged: true,
    };
    let node = Node::start(dir.path(), Fsync::Always, salvage).unwrap();
    assert_eq!(node.get("first"), None, "the damaged block is not applied");
    assert_eq!(node.get("second"), None, "nor anything after it");
    assert!(size_of(&incr) < first_end);
    node.stop();
}

#[test]
fn a_rewrite_makes_a_new_base_and_keeps_changes_made_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), Fsync::Everysec, STRICT).unwrap();
    for i in 0..5_000 {
        node.set(&format!("key:{i}"), "old");
    }
    for i in 0..5_000 {
        node.set(&format!("key:{i}"), "new");
    }
    assert!(node.aof.request_rewrite());
    // Changes while the base is being written.
    for i in 0..100 {
        node.set(&format!("during:{i}"), "x");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while node.aof.status().rewrites == 0 {
        assert!(Instant::now() < deadline, "the rewrite did not finish");
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = node.aof.status().clone();
    assert!(status.last_rewrite_ok);
    assert_eq!(
        status.manifest,
        Some(Manifest {
            base: 2,
            increments: vec![2]
        })
    );
    assert!(!dir.path().join(base_name(1)).exists());
    assert!(!dir.path().join(incr_name(1)).exists());
    node.set("after", "y");
    node.settle();
    node.stop();

    let node = Node::start(dir.path(), Fsync::Everysec, STRICT).unwrap();
    assert_eq!(node.store.len(now_ms()), 5_101);
    assert_eq!(node.get("key:4999").as_deref(), Some("new"));
    assert_eq!(node.get("during:99").as_deref(), Some("x"));
    assert_eq!(node.get("after").as_deref(), Some("y"));
    node.stop();
}

#[test]
fn under_always_a_batch_waits_for_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), Fsync::Always, STRICT).unwrap();
    node.set("k", "v");
    if let Some(offset) = node.aof.durable_at() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), node.aof.wait_durable(offset))
                .await
                .expect("synced within the timeout");
        });
    }
    assert_eq!(node.aof.durable_at(), None, "nothing left to wait for");
    node.aof.set_fsync(Fsync::No);
    node.set("k", "w");
    assert_eq!(node.aof.durable_at(), None, "only always waits");
    node.stop();
}

#[test]
fn a_part_the_manifest_names_but_the_directory_lacks_stops_the_load() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), Fsync::Always, STRICT).unwrap();
    node.set("k", "v");
    node.settle();
    node.stop();
    let incr = last_increment(dir.path());
    let saved = fs::read(&incr).unwrap();
    fs::remove_file(&incr).unwrap();
    let err = Node::start(dir.path(), Fsync::Always, STRICT)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("incr.1.kca"), "{err}");
    fs::write(&incr, saved).unwrap();
    fs::remove_file(dir.path().join(base_name(1))).unwrap();
    let err = Node::start(dir.path(), Fsync::Always, STRICT)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("base.1.kcs"), "{err}");
    // Nothing was made up in their place.
    assert!(!dir.path().join(base_name(1)).exists());
    assert_eq!(
        read_manifest(dir.path()).unwrap(),
        Some(Manifest {
            base: 1,
            increments: vec![1]
        })
    );
}
