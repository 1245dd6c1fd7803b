use std::fs;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use raft::prelude::{ConfState, Config, Entry, HardState, RawNode, Snapshot};
use raft::{GetEntriesContext, StateRole, Storage, StorageError};

use super::{LOG_FILE, LOG_TEMP, RaftLog, Recovery, SNAPSHOT_FILE, Start, record};

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        data: format!("entry {index} of term {term}").into_bytes().into(),
        ..Entry::default()
    }
}

fn entries(indexes: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
    indexes.map(|index| entry(index, term)).collect()
}

fn voters(ids: &[u64]) -> ConfState {
    ConfState {
        voters: ids.to_vec(),
        ..ConfState::default()
    }
}

fn hard_state(term: u64, vote: u64, commit: u64) -> HardState {
    HardState {
        term,
        vote,
        commit,
        ..HardState::default()
    }
}

/// A leader's snapshot of voters 1, 2 and 3.
fn leader_snapshot(index: u64, term: u64, data: &[u8]) -> Snapshot {
    let mut snapshot = Snapshot {
        data: data.to_vec().into(),
        ..Snapshot::default()
    };
    let meta = snapshot.mut_metadata();
    meta.index = index;
    meta.term = term;
    meta.set_conf_state(voters(&[1, 2, 3]));
    snapshot
}

fn open(dir: &Path) -> (RaftLog, Recovery) {
    RaftLog::open(dir, None).expect("the raft log opens")
}

fn bootstrap(dir: &Path) -> RaftLog {
    RaftLog::open(dir, Some(voters(&[1, 2, 3])))
        .expect("the raft log opens")
        .0
}

fn log_path(dir: &Path) -> PathBuf {
    dir.join(LOG_FILE)
}

/// Every entry the log holds.
fn all_entries(log: &RaftLog) -> Vec<Entry> {
    let (first, last) = (log.first_index().unwrap(), log.last_index().unwrap());
    if first > last {
        return Vec::new();
    }
    log.entries(first, last + 1, None, GetEntriesContext::empty(false))
        .unwrap()
}

/// The offsets of the log file's records, read from their length fields.
fn record_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut at = record::LOG_MAGIC.len();
    while at + 8 <= bytes.len() {
        offsets.push(at);
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        at += 8 + len;
    }
    offsets
}

/// What a reopened log must agree on with the one before it.
fn assert_same(reopened: &RaftLog, before: &RaftLog) {
    assert_eq!(reopened.first_index(), before.first_index());
    assert_eq!(reopened.last_index(), before.last_index());
    assert_eq!(all_entries(reopened), all_entries(before));
    let (first, last) = (before.first_index().unwrap(), before.last_index().unwrap());
    for index in first - 1..=last {
        assert_eq!(reopened.term(index), before.term(index), "term of {index}");
    }
    assert_eq!(reopened.hard_state(), before.hard_state());
    assert_eq!(reopened.conf_state(), before.conf_state());
    assert_eq!(reopened.last_snapshot(), before.last_snapshot());
}

#[test]
fn bootstrap_starts_a_group_from_a_snapshot_at_index_one() {
    let dir = tempfile::tempdir().unwrap();
    let (log, recovery) = RaftLog::open(dir.path(), Some(voters(&[1, 2, 3]))).unwrap();
    assert_eq!(
        recovery,
        Recovery {
            start: Start::Bootstrapped,
            snapshot_index: 1,
            last_index: 1,
            term: 1,
            commit: 1,
            torn_tail: None,
        }
    );
    assert_eq!((log.first_index(), log.last_index()), (Ok(2), Ok(1)));
    assert_eq!(log.term(1), Ok(1));
    assert_eq!(log.conf_state(), voters(&[1, 2, 3]));
    assert!(log.initial_state().unwrap().initialized());
    // The snapshot a joining member is sent names the voters.
    let sent = log.snapshot(0, 4).unwrap();
    assert_eq!(sent.get_metadata().index, 1);
    assert_eq!(sent.get_metadata().get_conf_state(), &voters(&[1, 2, 3]));

    drop(log);
    let (reopened, recovery) = RaftLog::open(dir.path(), None).unwrap();
    assert_eq!(recovery.start, Start::Restarted);
    assert_eq!(reopened.conf_state(), voters(&[1, 2, 3]));
    assert_eq!(reopened.hard_state(), hard_state(1, 0, 1));
}

#[test]
fn a_joining_member_starts_empty_and_has_no_snapshot_to_send() {
    let dir = tempfile::tempdir().unwrap();
    let (log, recovery) = open(dir.path());
    assert_eq!(recovery.start, Start::Joining);
    assert_eq!((recovery.snapshot_index, recovery.last_index), (0, 0));
    assert_eq!((log.first_index(), log.last_index()), (Ok(1), Ok(0)));
    assert!(!log.initial_state().unwrap().initialized());
    assert_eq!(
        log.snapshot(0, 1),
        Err(raft::Error::Store(
            StorageError::SnapshotTemporarilyUnavailable
        ))
    );

    // An existing log is loaded whatever `bootstrap` says.
    drop(log);
    let (reopened, recovery) = RaftLog::open(dir.path(), Some(voters(&[1]))).unwrap();
    assert_eq!(recovery.start, Start::Restarted);
    assert_eq!(reopened.conf_state(), ConfState::default());
    assert_eq!(reopened.last_index(), Ok(0));
}

#[test]
fn persisted_entries_and_hard_state_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = bootstrap(dir.path());
    log.persist(&entries(2..=4, 2), Some(&hard_state(2, 1, 1)))
        .unwrap();
    log.persist(&entries(5..=6, 3), Some(&hard_state(3, 2, 5)))
        .unwrap();
    log.persist(&[], None).unwrap();
    assert_eq!(
        all_entries(&log),
        [entries(2..=4, 2), entries(5..=6, 3)].concat()
    );
    assert_eq!((log.term(4), log.term(6)), (Ok(2), Ok(3)));

    let (reopened, recovery) = open(dir.path());
    assert_same(&reopened, &log);
    assert_eq!(
        (recovery.last_index, recovery.term, recovery.commit),
        (6, 3, 5)
    );
    assert_eq!(reopened.hard_state(), hard_state(3, 2, 5));
}

#[test]
fn an_overwritten_suffix_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = bootstrap(dir.path());
    log.persist(&entries(2..=6, 2), Some(&hard_state(2, 1, 3)))
        .unwrap();
    // A new leader's log differs from entry 4 on and is shorter.
    log.persist(&entries(4..=5, 3), Some(&hard_state(3, 2, 3)))
        .unwrap();
    let expected = [entries(2..=3, 2), entries(4..=5, 3)].concat();
    assert_eq!(all_entries(&log), expected);

    let (reopened, _) = open(dir.path());
    assert_same(&reopened, &log);
    assert_eq!(all_entries(&reopened), expected);
    assert_eq!(reopened.last_index(), Ok(5));
}

#[test]
fn entries_that_do_not_fit_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = bootstrap(dir.path());
    log.persist(&entries(2..=3, 2), None).unwrap();
    let size = fs::metadata(log_path(dir.path())).unwrap().len();
    let refused = [
        (entries(5..=6, 2), None),
        (vec![entry(4, 2), entry(6, 2)], None),
        (entries(1..=2, 2), None),
        (entries(4..=4, 2), Some(hard_state(2, 0, 5))),
    ];
    for (batch, hard_state) in refused {
        let err = log.persist(&batch, hard_state.as_ref()).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    }
    assert_eq!(fs::metadata(log_path(dir.path())).unwrap().len(), size);
    assert_eq!(log.last_index(), Ok(3));
    // Still usable.
    log.persist(&entries(4..=4, 2), Some(&hard_state(2, 0, 4)))
        .unwrap();
    assert_same(&open(dir.path()).0, &log);
}

#[test]
fn a_write_that_cannot_be_cut_back_stops_the_log_until_it_is_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = bootstrap(dir.path());
    log.persist(&entries(2..=3, 2), Some(&hard_state(2, 1, 3)))
        .unwrap();
    // A handle that can neither write nor cut: the state of the file
    // after the failure is unknown to the log.
    log.file = fs::File::open(log_path(dir.path())).unwrap();
    assert!(log.persist(&entries(4..=4, 2), None).is_err());
    assert_eq!(
        log.last_index(),
        Ok(3),
        "memory follows only what was written"
    );
    let refused = log.persist(&entries(4..=4, 2), None).unwrap_err();
    assert!(refused.to_string().contains("restart"), "{refused}");
    assert!(log.compact(3, Vec::new(), voters(&[1, 2, 3])).is_err());

    let (mut reopened, _) = open(dir.path());
    assert_eq!(all_entries(&reopened), entries(2..=3, 2));
    reopened.persist(&entries(4..=4, 2), None).unwrap();
}

#[test]
fn a_snapshot_from_the_leader_replaces_the_log_and_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = bootstrap(dir.path());
    log.persist(&entries(2..=6, 2), Some(&hard_state(2, 1, 4)))
        .unwrap();
    let mut snapshot = leader_snapshot(10, 3, b"the state at 10");
    snapshot
        .mut_metadata()
        .set_conf_state(voters(&[1, 2, 3, 4]));
    log.apply_snapshot(snapshot.clone()).unwrap();

    assert_eq!((log.first_index(), log.last_index()), (Ok(11), Ok(10)));
    assert_eq!(log.term(10), Ok(3));
    assert_eq!(log.hard_state(), hard_state(3, 1, 10));
    assert_eq!(log.conf_state(), voters(&[1, 2, 3, 4]));
    assert_eq!(log.last_snapshot(), &snapshot);
    assert_eq!(log.snapshot(0, 5), Ok(snapshot.clone()));

    let (reopened, recovery) = open(dir.path());
    assert_same(&reopened, &log);
    assert_eq!((recovery.snapshot_index, recovery.commit), (10, 10));

    // The log goes on after it, across another reopen.
    drop(reopened);
    log.persist(&entries(11..=12, 3), Some(&hard_state(3, 1, 12)))
        .unwrap();
    let (reopened, _) = open(dir.path());
    assert_same(&reopened, &log);

    // An older snapshot is refused.
    snapshot.mut_metadata().index = 5;
    assert!(log.apply_snapshot(snapshot).is_err());
}

#[test]
fn a_joining_member_takes_the_leaders_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(dir.path());
    log.apply_snapshot(leader_snapshot(1, 1, b"")).unwrap();
    log.persist(&entries(2..=3, 2), Some(&hard_state(2, 0, 3)))
        .unwrap();
    let (reopened, recovery) = open(dir.path());
    assert_eq!(recovery.start, Start::Restarted);
    assert_eq!(reopened.conf_state(), voters(&[1, 2, 3]));
    assert_same(&reopened, &log);
}

#[test]
fn compaction_shrinks_the_file_and_keeps_the_entries_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = bootstrap(dir.path());
    log.persist(&entries(2..=40, 2), Some(&hard_state(2, 1, 36)))
        .unwrap();
    let before = fs::metadata(log_path(dir.path())).unwrap().len();

    log.compact(30, b"the state at 30".to_vec(), voters(&[1, 2, 3]))
        .unwrap();
    let after = fs::metadata(log_path(dir.path())).unwrap().len();
    assert!(after < before / 2, "{after} bytes after, {before} before");
    assert_eq!((log.first_index(), log.last_index()), (Ok(31), Ok(40)));
    assert_eq!(log.term(30), Ok(2));
    assert_eq!(
        log.term(29),
        Err(raft::Error::Store(StorageError::Compacted))
    );
    assert_eq!(all_entries(&log), entries(31..=40, 2));
    assert_eq!(log.hard_state(), hard_state(2, 1, 36));
    let sent = log.snapshot(0, 2).unwrap();
    assert_eq!(sent.get_metadata().index, 30);
    assert_eq!(&sent.data[..], b"the state at 30");

    let (reopened, recovery) = open(dir.path());
    assert_same(&reopened, &log);
    assert_eq!(recovery.snapshot_index, 30);

    // At or below the snapshot does nothing; past the log is refused.
    log.compact(30, b"other".to_vec(), voters(&[1])).unwrap();
    log.compact(12, b"other".to_vec(), voters(&[1])).unwrap();
    assert_eq!(&log.last_snapshot().data[..], b"the state at 30");
    assert!(log.compact(41, Vec::new(), voters(&[1])).is_err());
    // Appends go on after a compaction, across a reopen.
    log.persist(&entries(41..=42, 3), Some(&hard_state(3, 1, 42)))
        .unwrap();
    assert_same(&open(dir.path()).0, &log);
}

#[test]
fn a_compaction_cut_short_before_the_log_rewrite_loads() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = bootstrap(dir.path());
    log.persist(&entries(2..=20, 2), Some(&hard_state(2, 1, 20)))
        .unwrap();
    let old_log = fs::read(log_path(dir.path())).unwrap();
    log.compact(15, b"the state at 15".to_vec(), voters(&[1, 2, 3]))
        .unwrap();
    // A crash after the new snapshot was in place, before the log was.
    fs::write(log_path(dir.path()), &old_log).unwrap();

    let (reopened, _) = open(dir.path());
    assert_same(&reopened, &log);
    assert_eq!(reopened.first_index(), Ok(16));
    drop(reopened);
    // The log was rewritten to follow the snapshot; appends load after it.
    let (mut reopened, _) = open(dir.path());
    reopened
        .persist(&entries(21..=21, 2), Some(&hard_state(2, 1, 21)))
        .unwrap();
    assert_eq!(open(dir.path()).0.last_index(), Ok(21));
}

#[test]
fn a_leader_snapshot_cut_short_before_the_log_rewrite_drops_the_old_log() {
    // Entries of a term whose leader lost, disagreeing with the snapshot
    // the new leader sends: ending short of it, or going past it.
    for old_last in [9, 15] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = bootstrap(dir.path());
        log.persist(&entries(2..=old_last, 2), Some(&hard_state(2, 1, 3)))
            .unwrap();
        let old_log = fs::read(log_path(dir.path())).unwrap();
        log.apply_snapshot(leader_snapshot(12, 4, b"the state at 12"))
            .unwrap();
        // A crash after the snapshot was in place, before the new log was.
        fs::write(log_path(dir.path()), &old_log).unwrap();

        let (reopened, recovery) = open(dir.path());
        assert_same(&reopened, &log);
        assert_eq!((recovery.last_index, recovery.commit), (12, 12));
        assert_eq!(reopened.hard_state(), hard_state(4, 1, 12));

        // The log was rewritten to follow the snapshot; appends load after it.
        let (mut log, _) = open(dir.path());
        log.persist(&entries(13..=13, 4), Some(&hard_state(4, 1, 13)))
            .unwrap();
        let (reopened, _) = open(dir.path());
        assert_eq!(all_entries(&reopened), entries(13..=13, 4));
    }
}

#[test]
fn a_torn_tail_is_cut_reported_and_the_log_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = bootstrap(dir.path());
    log.persist(&entries(2..=5, 2), Some(&hard_state(2, 1, 5)))
        .unwrap();
    log.persist(&entries(6..=6, 2), None).unwrap();
    drop(log);
    let path = log_path(dir.path());
    let bytes = fs::read(&path).unwrap();
    let last_record = *record_offsets(&bytes).last().unwrap();
    // The last write reached the disk only in part.
    fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();

    let (mut log, recovery) = open(dir.path());
    assert_eq!(recovery.torn_tail, Some(last_record as u64));
    assert_eq!(recovery.last_index, 5);
    assert_eq!(all_entries(&log), entries(2..=5, 2));
    log.persist(&entries(6..=7, 3), Some(&hard_state(3, 1, 7)))
        .unwrap();

    let (reopened, recovery) = open(dir.path());
    assert_eq!(recovery.torn_tail, None);
    assert_same(&reopened, &log);
    assert_eq!(reopened.last_index(), Ok(7));
}

#[test]
fn a_bad_checksum_on_the_last_record_or_a_zero_tail_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = bootstrap(dir.path());
    log.persist(&entries(2..=4, 2), Some(&hard_state(2, 1, 4)))
        .unwrap();
    drop(log);
    let path = log_path(dir.path());
    let whole = fs::read(&path).unwrap();

    let mut flipped_last = whole.clone();
    *flipped_last.last_mut().unwrap() ^= 0x40;
    let mut zero_tail = whole.clone();
    zero_tail.extend_from_slice(&[0; 100]);
    let mut flipped_then_zeros = flipped_last.clone();
    flipped_then_zeros.extend_from_slice(&[0; 4096]);
    for (name, bytes, torn_at) in [
        (
            "flipped last",
            &flipped_last,
            *record_offsets(&whole).last().unwrap(),
        ),
        ("zero tail", &zero_tail, whole.len()),
        (
            "flipped then zeros",
            &flipped_then_zeros,
            *record_offsets(&whole).last().unwrap(),
        ),
    ] {
        fs::write(&path, bytes).unwrap();
        let (_, recovery) = open(dir.path());
        assert_eq!(recovery.torn_tail, Some(torn_at as u64), "{name}");
    }
}

#[test]
fn a_flipped_byte_in_the_middle_is_an_error_naming_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = bootstrap(dir.path());
    log.persist(&entries(2..=6, 2), Some(&hard_state(2, 1, 6)))
        .unwrap();
    drop(log);
    let path = log_path(dir.path());
    let mut bytes = fs::read(&path).unwrap();
    let offsets = record_offsets(&bytes);
    let damaged = offsets[3];
    // A byte of the record's payload, well before the end of the file.
    bytes[damaged + 8 + 5] ^= 0x01;
    fs::write(&path, &bytes).unwrap();

    let message = format!("{:#}", RaftLog::open(dir.path(), None).err().unwrap());
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(
        message.contains(&format!("at byte {damaged}:")),
        "{message}"
    );
    // Nothing was cut: the file is as it was.
    assert_eq!(fs::read(&path).unwrap(), bytes);
}

#[test]
fn a_foreign_log_file_or_a_damaged_snapshot_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    drop(bootstrap(dir.path()));
    let snapshot_path = dir.path().join(SNAPSHOT_FILE);
    let good_snapshot = fs::read(&snapshot_path).unwrap();

    // Not a log file at all.
    fs::write(log_path(dir.path()), b"{\"not\": \"a raft log\"}").unwrap();
    let message = format!("{:#}", RaftLog::open(dir.path(), None).err().unwrap());
    assert!(message.contains("at byte 0:"), "{message}");

    // A snapshot file with a flipped byte.
    let mut snapshot = good_snapshot;
    let middle = snapshot.len() - 3;
    snapshot[middle] ^= 0x10;
    fs::write(&snapshot_path, &snapshot).unwrap();
    fs::write(
        log_path(dir.path()),
        record::encode_log(&hard_state(1, 0, 1), &[]).unwrap(),
    )
    .unwrap();
    let message = format!("{:#}", RaftLog::open(dir.path(), None).err().unwrap());
    assert!(
        message.contains(&snapshot_path.display().to_string()),
        "{message}"
    );
    assert!(message.contains("at byte 8:"), "{message}");
}

#[test]
fn a_gap_in_the_log_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    drop(bootstrap(dir.path()));
    let mut bytes = record::encode_log(&hard_state(2, 1, 1), &entries(2..=3, 2)).unwrap();
    let gap_at = bytes.len();
    record::push_entry(&mut bytes, &entry(5, 2)).unwrap();
    fs::write(log_path(dir.path()), &bytes).unwrap();
    let message = format!("{:#}", RaftLog::open(dir.path(), None).err().unwrap());
    assert!(
        message.contains(&format!(
            "at byte {gap_at}: entry 5 leaves a gap after entry 3"
        )),
        "{message}"
    );
}

#[test]
fn a_commit_past_the_end_of_the_log_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    drop(bootstrap(dir.path()));
    let bytes = record::encode_log(&hard_state(2, 1, 9), &entries(2..=3, 2)).unwrap();
    fs::write(log_path(dir.path()), &bytes).unwrap();
    let message = format!("{:#}", RaftLog::open(dir.path(), None).err().unwrap());
    assert!(
        message.contains("commits entry 9 but the log ends at 3"),
        "{message}"
    );
}

#[test]
fn a_leftover_temporary_file_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = bootstrap(dir.path());
    log.persist(&entries(2..=3, 2), None).unwrap();
    fs::write(dir.path().join(LOG_TEMP), b"KCRAFTL1 half a rewrite").unwrap();
    let (reopened, _) = open(dir.path());
    assert_same(&reopened, &log);
    assert!(!dir.path().join(LOG_TEMP).exists());
}

#[test]
fn every_cut_of_a_log_is_a_torn_tail_never_damage() {
    let bytes = record::encode_log(&hard_state(2, 1, 4), &entries(2..=6, 2)).unwrap();
    let starts = record_offsets(&bytes);
    for cut in record::LOG_MAGIC.len()..=bytes.len() {
        let file = record::read_log(&bytes[..cut]).unwrap();
        let whole = starts.iter().filter(|&&start| start < cut).count();
        let on_a_boundary = cut == bytes.len() || starts.contains(&cut);
        match on_a_boundary {
            true => {
                assert_eq!(file.torn_at, None, "cut at {cut}");
                assert_eq!(file.records.len(), whole, "cut at {cut}");
            }
            false => {
                assert_eq!(file.torn_at, Some(starts[whole - 1] as u64), "cut at {cut}");
                assert_eq!(file.records.len(), whole - 1, "cut at {cut}");
            }
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(tail in prop::collection::vec(any::<u8>(), 0..300)) {
        for magic in [record::LOG_MAGIC, record::SNAPSHOT_MAGIC] {
            let mut bytes = magic.to_vec();
            bytes.extend_from_slice(&tail);
            let _ = record::read_log(&bytes);
            let _ = record::read_snapshot(&bytes);
        }
        let _ = record::read_log(&tail);
    }

    #[test]
    fn a_flipped_bit_is_never_read_as_a_different_log(bit in 0usize..2000) {
        let bytes = record::encode_log(&hard_state(2, 1, 4), &entries(2..=6, 2)).unwrap();
        let bit = bit % ((bytes.len() - record::LOG_MAGIC.len()) * 8);
        let mut flipped = bytes.clone();
        flipped[record::LOG_MAGIC.len() + bit / 8] ^= 1 << (bit % 8);
        let whole = record::read_log(&bytes).unwrap().records;
        // Damage, or a torn tail that leaves a prefix of the true records.
        if let Ok(file) = record::read_log(&flipped) {
            prop_assert!(file.torn_at.is_some());
            prop_assert_eq!(&file.records[..], &whole[..file.records.len()]);
        }
    }
}

/// Drives `node` until it has nothing left to do, as the coordinator's
/// driver does: persist, then advance; returns the entries it committed.
fn run_until_idle(node: &mut RawNode<RaftLog>) -> Vec<Entry> {
    let mut committed = Vec::new();
    for _ in 0..100 {
        if !node.has_ready() {
            return committed;
        }
        let mut ready = node.ready();
        if !ready.snapshot().is_empty() {
            let snapshot = ready.snapshot().clone();
            node.mut_store().apply_snapshot(snapshot).unwrap();
        }
        committed.extend(ready.take_committed_entries());
        node.mut_store()
            .persist(ready.entries(), ready.hs())
            .unwrap();
        let mut light = node.advance(ready);
        if let Some(commit) = light.commit_index() {
            let mut hard_state = node.store().hard_state();
            hard_state.commit = commit;
            node.mut_store().persist(&[], Some(&hard_state)).unwrap();
        }
        committed.extend(light.take_committed_entries());
        node.advance_apply();
    }
    panic!("the node still had work after 100 rounds");
}

fn raft_config() -> Config {
    Config {
        id: 1,
        election_tick: 10,
        heartbeat_tick: 3,
        ..Config::default()
    }
}

fn proposals(committed: &[Entry]) -> Vec<Vec<u8>> {
    committed
        .iter()
        .filter(|entry| !entry.data.is_empty())
        .map(|entry| entry.data.to_vec())
        .collect()
}

#[test]
fn a_raw_node_elects_itself_commits_and_restarts_where_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let (log, _) = RaftLog::open(dir.path(), Some(voters(&[1]))).unwrap();
    let mut node = RawNode::new(&raft_config(), log, &logger).unwrap();
    node.campaign().unwrap();
    let mut committed = run_until_idle(&mut node);
    assert_eq!(node.raft.state, StateRole::Leader);
    let decisions: Vec<Vec<u8>> = (1..=3)
        .map(|n| format!("decision {n}").into_bytes())
        .collect();
    for decision in &decisions {
        node.propose(Vec::new(), decision.clone()).unwrap();
        committed.extend(run_until_idle(&mut node));
    }
    assert_eq!(proposals(&committed), decisions);
    let (commit, term) = (node.raft.raft_log.committed, node.raft.term);
    assert_eq!(commit, node.raft.raft_log.last_index());
    assert_eq!(node.store().hard_state().commit, commit);
    drop(node);

    let (log, recovery) = RaftLog::open(dir.path(), None).unwrap();
    assert_eq!((recovery.commit, recovery.term), (commit, term));
    let mut node = RawNode::new(&raft_config(), log, &logger).unwrap();
    assert_eq!(node.raft.raft_log.committed, commit);
    assert_eq!(node.raft.term, term);
    // What was committed is handed to the state machine again from the
    // snapshot on, as a restarted coordinator rebuilds its state.
    assert_eq!(proposals(&run_until_idle(&mut node)), decisions);
    node.campaign().unwrap();
    run_until_idle(&mut node);
    assert_eq!(node.raft.state, StateRole::Leader);
    assert_eq!(node.raft.term, term + 1);
}

/// A step of the model test. The numbers pick among the valid choices.
#[derive(Debug, Clone)]
enum Step {
    /// Appends `count` entries from `back` entries before the end (never
    /// over a committed entry), in the current term or the next.
    Append {
        back: u8,
        count: u8,
        new_term: bool,
    },
    /// Moves the commit index forward.
    Commit(u8),
    /// Compacts at an index between the snapshot and the commit index.
    Compact(u8),
    /// Installs a leader's snapshot past the commit index.
    LeaderSnapshot(u8),
    Reopen,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0u8..4, 1u8..5, any::<bool>())
            .prop_map(|(back, count, new_term)| Step::Append { back, count, new_term }),
        2 => any::<u8>().prop_map(Step::Commit),
        1 => any::<u8>().prop_map(Step::Compact),
        1 => any::<u8>().prop_map(Step::LeaderSnapshot),
        1 => Just(Step::Reopen),
    ]
}

/// What the log should hold, kept as plainly as possible.
struct Model {
    snapshot_index: u64,
    snapshot_term: u64,
    snapshot_data: Vec<u8>,
    entries: Vec<Entry>,
    hard_state: HardState,
}

impl Model {
    fn last_index(&self) -> u64 {
        self.entries.last().map_or(self.snapshot_index, |e| e.index)
    }

    fn last_term(&self) -> u64 {
        self.entries.last().map_or(self.snapshot_term, |e| e.term)
    }

    fn term(&self, index: u64) -> u64 {
        match index == self.snapshot_index {
            true => self.snapshot_term,
            false => self.entries[(index - self.snapshot_index - 1) as usize].term,
        }
    }

    fn check(&self, log: &RaftLog) {
        assert_eq!(log.first_index(), Ok(self.snapshot_index + 1));
        assert_eq!(log.last_index(), Ok(self.last_index()));
        assert_eq!(all_entries(log), self.entries);
        for index in self.snapshot_index..=self.last_index() {
            assert_eq!(log.term(index), Ok(self.term(index)), "term of {index}");
        }
        assert_eq!(log.hard_state(), self.hard_state);
        assert_eq!(
            log.last_snapshot().get_metadata().index,
            self.snapshot_index
        );
        assert_eq!(&log.last_snapshot().data[..], &self.snapshot_data[..]);
    }
}

fn apply(step: &Step, log: &mut RaftLog, model: &mut Model, dir: &Path) {
    let commit = model.hard_state.commit;
    let last = model.last_index();
    match *step {
        Step::Append {
            back,
            count,
            new_term,
        } => {
            let start = (last + 1).saturating_sub(u64::from(back)).max(commit + 1);
            let term = model.hard_state.term.max(model.last_term()) + u64::from(new_term);
            let batch: Vec<Entry> = (start..start + u64::from(count))
                .map(|index| entry(index, term))
                .collect();
            model.hard_state.term = term;
            log.persist(&batch, Some(&model.hard_state)).unwrap();
            model
                .entries
                .truncate((start - model.snapshot_index - 1) as usize);
            model.entries.extend(batch);
        }
        Step::Commit(pick) => {
            model.hard_state.commit = commit + u64::from(pick) % (last - commit + 1);
            log.persist(&[], Some(&model.hard_state)).unwrap();
        }
        Step::Compact(pick) => {
            let applied =
                model.snapshot_index + u64::from(pick) % (commit - model.snapshot_index + 1);
            let data = format!("the state at {applied}").into_bytes();
            log.compact(applied, data.clone(), voters(&[1, 2, 3]))
                .unwrap();
            if applied > model.snapshot_index {
                model.snapshot_term = model.term(applied);
                model
                    .entries
                    .drain(..(applied - model.snapshot_index) as usize);
                model.snapshot_index = applied;
                model.snapshot_data = data;
            }
        }
        Step::LeaderSnapshot(pick) => {
            let index = commit + 1 + u64::from(pick % 8);
            let term = model.hard_state.term.max(model.last_term());
            let data = format!("the leader's state at {index}").into_bytes();
            let snapshot = leader_snapshot(index, term, &data);
            log.apply_snapshot(snapshot.clone()).unwrap();
            model.snapshot_index = index;
            model.snapshot_term = term;
            model.snapshot_data = snapshot.data.to_vec();
            model.entries.clear();
            model.hard_state.commit = index;
        }
        Step::Reopen => {
            let (reopened, recovery) = RaftLog::open(dir, None).unwrap();
            assert_eq!(recovery.torn_tail, None);
            assert_eq!(recovery.last_index, model.last_index());
            *log = reopened;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn the_log_matches_a_model_across_reopens(steps in prop::collection::vec(step(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = bootstrap(dir.path());
        let mut model = Model {
            snapshot_index: 1,
            snapshot_term: 1,
            snapshot_data: Vec::new(),
            entries: Vec::new(),
            hard_state: hard_state(1, 0, 1),
        };
        for step in &steps {
            apply(step, &mut log, &mut model, dir.path());
            model.check(&log);
        }
        drop(log);
        model.check(&open(dir.path()).0);
    }
}
