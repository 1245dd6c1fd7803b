//! Records: the store's changes written as native-protocol requests, and
//! read back into a store.
//!
//! One format serves every place a change leaves the node or outlives the
//! process: the replication stream and a replica's full copy, the
//! append-only file and snapshots. A record is a key's whole new state,
//! never a delta, so applying one twice is harmless:
//!
//! | change | record |
//! |---|---|
//! | [`Change::Set`] | `SET key value` or `SET key value PXAT ms` |
//! | [`Change::Del`] | `DEL key` |
//! | [`Change::FlushAll`] | `FLUSHALL` |
//! | [`Change::Begin`], [`Change::Commit`] | `MULTI`, `EXEC` around a transaction's records |
//!
//! The replication stream also carries `PING` (an idle primary's heartbeat),
//! which changes nothing.

use bytes::BytesMut;
use keycafe_core::{Args, Protocol, ProtocolError, RequestParser};

use super::{Change, Expiry, ShardSet, Store, StoreError};

/// Appends the record of `change` to `out`.
pub fn encode(change: Change<'_>, out: &mut BytesMut) {
    match change {
        Change::Set {
            key,
            value,
            deadline,
        } => encode_set(key, value, deadline, out),
        Change::Del { key } => Protocol::Native.encode_request(&[b"DEL", key], out),
        Change::FlushAll => Protocol::Native.encode_request(&[b"FLUSHALL"], out),
        Change::Begin => Protocol::Native.encode_request(&[b"MULTI"], out),
        Change::Commit => Protocol::Native.encode_request(&[b"EXEC"], out),
    }
}

/// Appends the record `SET key value [PXAT deadline]`: a key's whole state,
/// in the stream and in a full copy alike.
pub fn encode_set(key: &[u8], value: &[u8], deadline: Option<u64>, out: &mut BytesMut) {
    match deadline {
        None => Protocol::Native.encode_request(&[b"SET", key, value], out),
        Some(ms) => {
            let mut digits = itoa::Buffer::new();
            let ms = digits.format(ms).as_bytes();
            Protocol::Native.encode_request(&[b"SET", key, value, b"PXAT", ms], out);
        }
    }
}

/// A record that cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("malformed record: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("unknown record {0}")]
    Unknown(String),
    #[error("malformed {0} record")]
    Malformed(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Applies every complete record at the start of `input` to `store`;
/// returns the bytes they used (a record cut short, or a transaction whose
/// `EXEC` has not arrived, is left for the next call). A transaction is
/// applied as one unit, so that no reader sees half of it.
///
/// `now` is the time expiry is judged by: a replica passes 0, so that
/// nothing counts as expired (its primary decides when keys expire and says
/// so with `DEL`); loading a file passes the clock, so that a key whose
/// deadline has passed is not loaded.
pub fn apply_stream(
    store: &Store,
    parser: &mut RequestParser,
    input: &[u8],
    now: u64,
) -> Result<usize, RecordError> {
    let mut used = 0;
    while let Some((args, len)) = parser.parse(Protocol::Native, &input[used..])? {
        if args.get(0) != Some(b"MULTI".as_slice()) {
            apply(store, args, now)?;
            used += len;
            continue;
        }
        let body = &input[used + len..];
        let Some((shards, body_len)) = transaction_extent(store, parser, body)? else {
            break;
        };
        store.atomically(&shards, true, || {
            apply_transaction(store, parser, &body[..body_len], now)
        })?;
        used += len + body_len;
    }
    Ok(used)
}

/// The shards a transaction's records touch and the length of its body up
/// to and including its `EXEC`; `None` if the `EXEC` has not arrived yet.
fn transaction_extent(
    store: &Store,
    parser: &mut RequestParser,
    body: &[u8],
) -> Result<Option<(ShardSet, usize)>, RecordError> {
    let mut keys: Vec<Vec<u8>> = Vec::new();
    let mut every_shard = false;
    let mut used = 0;
    while let Some((args, len)) = parser.parse(Protocol::Native, &body[used..])? {
        used += len;
        match args.get(0).unwrap_or_default() {
            b"EXEC" => {
                let shards = match every_shard {
                    true => ShardSet::All,
                    false => store.shards_of(keys.iter().map(Vec::as_slice)),
                };
                return Ok(Some((shards, used)));
            }
            b"SET" | b"DEL" => keys.push(arg(args, 1, "transaction")?.to_vec()),
            _ => every_shard = true,
        }
    }
    Ok(None)
}

/// Applies the records of a transaction's body, `EXEC` excluded.
fn apply_transaction(
    store: &Store,
    parser: &mut RequestParser,
    body: &[u8],
    now: u64,
) -> Result<(), RecordError> {
    let mut used = 0;
    while let Some((args, len)) = parser.parse(Protocol::Native, &body[used..])? {
        used += len;
        if args.get(0) == Some(b"EXEC".as_slice()) {
            break;
        }
        apply(store, args, now)?;
    }
    Ok(())
}

/// Applies one record (not `MULTI` or `EXEC`), judging expiry by `now`.
pub fn apply(store: &Store, args: Args<'_>, now: u64) -> Result<(), RecordError> {
    let name = args.get(0).unwrap_or_default();
    match (name, args.len()) {
        (b"SET", 3) | (b"SET", 5) => {
            let (key, value) = (arg(args, 1, "SET")?, arg(args, 2, "SET")?);
            let expiry = match args.get(4) {
                None => Expiry::Persist,
                Some(ms) => Expiry::At(
                    std::str::from_utf8(ms)
                        .ok()
                        .and_then(|ms| ms.parse().ok())
                        .ok_or(RecordError::Malformed("SET"))?,
                ),
            };
            // A deadline at or before `now` removes the key, as SET with
            // such a PXAT does.
            store.set(key, value, now, expiry)?;
        }
        (b"DEL", 2) => {
            store.remove(arg(args, 1, "DEL")?, now);
        }
        (b"FLUSHALL", 1) => store.flush_all(),
        (b"PING", 1) => {}
        _ => {
            return Err(RecordError::Unknown(
                String::from_utf8_lossy(name).into_owned(),
            ));
        }
    }
    Ok(())
}

fn arg<'a>(args: Args<'a>, index: usize, record: &'static str) -> Result<&'a [u8], RecordError> {
    args.get(index).ok_or(RecordError::Malformed(record))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::now_ms;
    use keycafe_core::Limits;

    fn stream(changes: &[Change<'_>]) -> BytesMut {
        let mut out = BytesMut::new();
        changes.iter().for_each(|&change| encode(change, &mut out));
        out
    }

    fn get(store: &Store, key: &[u8]) -> Option<Vec<u8>> {
        store.get_with(key, now_ms(), |v| v.map(<[u8]>::to_vec))
    }

    fn deadline(store: &Store, key: &[u8]) -> Option<u64> {
        store.read(key, now_ms(), |entry| entry.deadline())
    }

    #[test]
    fn records_replay_into_the_same_state() {
        let future = now_ms() + 60_000;
        let input = stream(&[
            Change::Set {
                key: b"a",
                value: b"1",
                deadline: None,
            },
            Change::Set {
                key: b"b",
                value: b"2",
                deadline: Some(future),
            },
            Change::Begin,
            Change::Del { key: b"a" },
            Change::Set {
                key: b"c",
                value: b"3",
                deadline: None,
            },
            Change::Commit,
        ]);
        let store = Store::new();
        let mut parser = RequestParser::new(Limits::default());
        let used = apply_stream(&store, &mut parser, &input, now_ms()).unwrap();
        assert_eq!(used, input.len());
        assert_eq!(get(&store, b"a"), None);
        assert_eq!(get(&store, b"b").as_deref(), Some(b"2".as_slice()));
        assert_eq!(get(&store, b"c").as_deref(), Some(b"3".as_slice()));
        assert_eq!(deadline(&store, b"b"), Some(future));

        // Twice is the same as once: every record is a whole state.
        apply_stream(&store, &mut parser, &input, now_ms()).unwrap();
        assert_eq!(store.len(now_ms()), 2);
    }

    #[test]
    fn a_transaction_waits_for_its_exec_and_a_cut_record_for_its_end() {
        let input = stream(&[
            Change::Set {
                key: b"x",
                value: b"1",
                deadline: None,
            },
            Change::Begin,
            Change::Set {
                key: b"y",
                value: b"2",
                deadline: None,
            },
        ]);
        let store = Store::new();
        let mut parser = RequestParser::new(Limits::default());
        let first = apply_stream(&store, &mut parser, &input, 0).unwrap();
        assert!(first < input.len(), "stops before the open transaction");
        assert_eq!(get(&store, b"y"), None);
        let cut = apply_stream(&store, &mut parser, &input[..first - 1], 0).unwrap();
        assert_eq!(cut, 0, "a record cut short is not applied");
    }

    #[test]
    fn a_key_past_its_deadline_is_not_loaded_but_a_replica_keeps_it() {
        let past = now_ms() - 1_000;
        let input = stream(&[Change::Set {
            key: b"old",
            value: b"v",
            deadline: Some(past),
        }]);
        let loaded = Store::new();
        apply_stream(
            &loaded,
            &mut RequestParser::new(Limits::default()),
            &input,
            now_ms(),
        )
        .unwrap();
        assert_eq!(loaded.len(now_ms()), 0);
        let replica = Store::new();
        apply_stream(
            &replica,
            &mut RequestParser::new(Limits::default()),
            &input,
            0,
        )
        .unwrap();
        assert_eq!(replica.len(0), 1);
    }

    #[test]
    fn unknown_and_malformed_records_are_errors() {
        let mut input = BytesMut::new();
        Protocol::Native.encode_request(&[b"INCR".as_slice(), b"k"], &mut input);
        let err = apply_stream(
            &Store::new(),
            &mut RequestParser::new(Limits::default()),
            &input,
            0,
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "unknown record INCR");
        let mut input = BytesMut::new();
        Protocol::Native.encode_request(
            &[b"SET".as_slice(), b"k", b"v", b"PXAT", b"soon"],
            &mut input,
        );
        let err = apply_stream(
            &Store::new(),
            &mut RequestParser::new(Limits::default()),
            &input,
            0,
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "malformed SET record");
    }
}
