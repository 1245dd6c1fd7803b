//! Starting from a directory: a new member's first files, or an existing
//! log read back, checked and reconciled with its snapshot (see the parent
//! module's docs).

use std::fs;
use std::path::Path;

use anyhow::{Context, anyhow};
use raft::prelude::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use tracing::warn;

use super::record::{self, Damage, Record};
use super::{
    BOOTSTRAP_INDEX, BOOTSTRAP_TERM, LOG_FILE, LOG_TEMP, SNAPSHOT_FILE, SNAPSHOT_TEMP, Start,
    write_atomically,
};

/// What a new or loaded directory holds, ready to put in memory.
pub(super) struct Loaded {
    pub start: Start,
    pub snapshot: Snapshot,
    /// The entries after the snapshot, in order.
    pub entries: Vec<Entry>,
    pub hard_state: HardState,
    pub torn_at: Option<u64>,
}

/// Starts a new member in an empty directory.
pub(super) fn create(dir: &Path, bootstrap: Option<ConfState>) -> anyhow::Result<Loaded> {
    let (start, snapshot, hard_state) = match bootstrap {
        Some(conf_state) => {
            let mut snapshot = Snapshot::default();
            let meta = snapshot.mut_metadata();
            meta.index = BOOTSTRAP_INDEX;
            meta.term = BOOTSTRAP_TERM;
            meta.set_conf_state(conf_state);
            let hard_state = HardState {
                term: BOOTSTRAP_TERM,
                commit: BOOTSTRAP_INDEX,
                ..HardState::default()
            };
            (Start::Bootstrapped, snapshot, hard_state)
        }
        None => (Start::Joining, Snapshot::default(), HardState::default()),
    };
    if !snapshot.is_empty() {
        let bytes = record::encode_snapshot(&snapshot)?;
        write_atomically(dir, SNAPSHOT_FILE, SNAPSHOT_TEMP, &bytes)?;
    }
    write_atomically(
        dir,
        LOG_FILE,
        LOG_TEMP,
        &record::encode_log(&hard_state, &[])?,
    )?;
    Ok(Loaded {
        start,
        snapshot,
        entries: Vec::new(),
        hard_state,
        torn_at: None,
    })
}

/// Loads an existing directory: the snapshot, then every record in order.
pub(super) fn load(dir: &Path, found_log: bool, found_snapshot: bool) -> anyhow::Result<Loaded> {
    let snapshot_path = dir.join(SNAPSHOT_FILE);
    let log_path = dir.join(LOG_FILE);
    let snapshot = match found_snapshot {
        true => {
            let bytes = fs::read(&snapshot_path)
                .with_context(|| format!("reading {}", snapshot_path.display()))?;
            record::read_snapshot(&bytes).map_err(|damage| damaged(&snapshot_path, &damage))?
        }
        false => Snapshot::default(),
    };
    let file = match found_log {
        true => {
            let bytes =
                fs::read(&log_path).with_context(|| format!("reading {}", log_path.display()))?;
            record::read_log(&bytes).map_err(|damage| damaged(&log_path, &damage))?
        }
        false => record::LogFile::default(),
    };
    if let Some(offset) = file.torn_at {
        warn!(
            path = %log_path.display(),
            offset,
            "cutting off a torn last record of the raft log (a crash in the middle of a write)"
        );
    }
    let torn_at = file.torn_at;
    let replay = replay(file.records).map_err(|damage| damaged(&log_path, &damage))?;
    let fitted = fit_to_snapshot(replay, snapshot.get_metadata())
        .map_err(|damage| damaged(&log_path, &damage))?;
    let mut hard_state = fitted.hard_state;
    let meta = snapshot.get_metadata();
    let commit_below_snapshot = hard_state.commit < meta.index;
    // Everything in a snapshot is committed, in its term or a later one.
    hard_state.commit = hard_state.commit.max(meta.index);
    hard_state.term = hard_state.term.max(meta.term);
    let last = fitted
        .entries
        .last()
        .map_or(meta.index, |entry| entry.index);
    if hard_state.commit > last {
        return Err(anyhow!(
            "{}: the hard state commits entry {} but the log ends at {last}; \
             restore the member from a backup, or remove its raft directory and add it to the group again",
            log_path.display(),
            hard_state.commit
        ));
    }
    if torn_at.is_some() || fitted.adjusted || commit_below_snapshot || !found_log {
        // Later appends must follow what was recovered, not what was cut.
        write_atomically(
            dir,
            LOG_FILE,
            LOG_TEMP,
            &record::encode_log(&hard_state, &fitted.entries)?,
        )?;
    }
    Ok(Loaded {
        start: Start::Restarted,
        snapshot,
        entries: fitted.entries,
        hard_state,
        torn_at,
    })
}

/// The log file's records played in order.
#[derive(Debug, Default)]
struct Replay {
    entries: Vec<Entry>,
    /// The offset of the record of `entries[0]`.
    first_offset: u64,
    hard_state: HardState,
}

fn replay(records: Vec<(u64, Record)>) -> Result<Replay, Damage> {
    let mut replay = Replay::default();
    for (offset, record) in records {
        match record {
            Record::HardState(hard_state) => replay.hard_state = hard_state,
            Record::Entry(entry) => add_entry(&mut replay, offset, entry)?,
        }
    }
    Ok(replay)
}

/// Adds an entry, replacing every entry from its index on.
fn add_entry(replay: &mut Replay, offset: u64, entry: Entry) -> Result<(), Damage> {
    let damage = |reason: String| Damage { offset, reason };
    let index = entry.index;
    if index == 0 {
        return Err(damage("an entry at index 0".into()));
    }
    let Some((first, last)) = replay.entries.first().zip(replay.entries.last()) else {
        replay.first_offset = offset;
        replay.entries.push(entry);
        return Ok(());
    };
    let (first, last) = (first.index, last.index);
    if index < first {
        return Err(damage(format!(
            "entry {index} comes before the log's first entry, {first}"
        )));
    }
    if index > last + 1 {
        return Err(damage(format!(
            "entry {index} leaves a gap after entry {last}"
        )));
    }
    replay.entries.truncate((index - first) as usize);
    replay.entries.push(entry);
    Ok(())
}

/// The replayed log made to start right after the snapshot.
struct Fitted {
    entries: Vec<Entry>,
    hard_state: HardState,
    /// Whether entries were dropped to fit.
    adjusted: bool,
}

fn fit_to_snapshot(replay: Replay, meta: &SnapshotMetadata) -> Result<Fitted, Damage> {
    let Replay {
        mut entries,
        first_offset,
        hard_state,
    } = replay;
    let (index, term) = (meta.index, meta.term);
    let Some(first) = entries.first().map(|entry| entry.index) else {
        return Ok(Fitted {
            entries,
            hard_state,
            adjusted: false,
        });
    };
    if first > index + 1 {
        return Err(Damage {
            offset: first_offset,
            reason: format!(
                "the log starts at entry {first} but the snapshot ends at entry {index}: \
                 the entries between are missing"
            ),
        });
    }
    if first == index + 1 {
        return Ok(Fitted {
            entries,
            hard_state,
            adjusted: false,
        });
    }
    let at_snapshot = entries.get((index - first) as usize);
    if at_snapshot.is_some_and(|entry| entry.term == term) {
        // A compaction that stopped before rewriting the log.
        entries.drain(..=(index - first) as usize);
    } else {
        warn!(
            snapshot_index = index,
            "dropping raft log entries that a snapshot from the leader replaced"
        );
        entries.clear();
    }
    Ok(Fitted {
        entries,
        hard_state,
        adjusted: true,
    })
}

fn damaged(path: &Path, damage: &Damage) -> anyhow::Error {
    anyhow!(
        "{} is damaged {damage}; this is not a crash in the middle of a write, so nothing is \
         cut off: restore the member from a backup, or remove its raft directory and add it to \
         the group again",
        path.display()
    )
}
