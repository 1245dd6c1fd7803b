//! The primary's side: serving one replica over its bus connection.
//!
//! A replica sends `KC.PSYNC node-id replid offset client-addr`. If this node
//! is the replica's primary and its backlog still holds the bytes after
//! `offset` of history `replid`, the answer is `[CONTINUE, replid, offset]`
//! and the stream resumes there. Otherwise the answer is
//! `[FULLSYNC, replid, offset]`, followed by a full copy: one
//! `SET key value [PXAT ms]` record per key, slot by slot, each slot read
//! under its shard's lock only for as long as it takes to encode it (the node
//! keeps serving), then a `KC.SYNCED` marker, then the stream from `offset`.
//!
//! The copy is *fuzzy*: recording starts before the first slot is read, so a
//! write to a slot after it was copied is in the stream, and one before is
//! in the copy (and perhaps in the stream too). Because every record is a
//! key's whole new state, replaying a change the copy already holds is
//! harmless, and the replica ends up equal to the primary.
//!
//! Once streaming, the replica acknowledges with `KC.ACK offset` frames; the
//! acknowledged offsets are what `WAIT` counts. Under load the stream goes
//! out at most once a millisecond, in one write per replica: a write per
//! command would cost the primary more than the command itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use keycafe_core::{Limits, Protocol, RequestParser, SLOT_COUNT};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::log::NO_ID;
use super::{ReplicaLink, Replication};
use crate::config::OutputLimit;
use crate::store::{Store, records};

/// Send at most this much stream per write.
const CHUNK: usize = 256 * 1024;
/// An idle primary puts a `PING` in the stream this often.
const PING_EVERY: Duration = Duration::from_secs(1);
/// A busy link sends at most once per this gap (see [`more_to_send`]).
const COALESCE: Duration = Duration::from_millis(1);

/// What serving a replica needs of the node.
#[derive(Clone)]
pub struct Source {
    pub store: Arc<Store>,
    pub replication: Arc<Replication>,
    /// A replica silent for this long is dropped.
    pub node_timeout: Duration,
    /// How far a replica may fall behind the stream (the replica class of
    /// `client_output_buffer_limit`).
    pub output_limit: OutputLimit,
}

/// A replica's `KC.PSYNC`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRequest {
    pub node: String,
    pub replid: String,
    /// The replica's offset; `None` for a replica with no data.
    pub offset: Option<u64>,
    pub addr: String,
}

/// Serves one replica until it disconnects, falls too far behind, stops
/// acknowledging, is killed (`CLIENT KILL TYPE replica`), or the node stops.
/// `input` holds bytes the replica sent after its `KC.PSYNC`. The stream is
/// the bus connection: TCP, or TLS on a TLS cluster.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin + Send>(
    stream: S,
    input: BytesMut,
    source: Source,
    request: SyncRequest,
    conn: u64,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let replication = &source.replication;
    let mut kills = replication.replica_kills();
    kills.borrow_and_update();
    replication.attach(
        conn,
        ReplicaLink {
            node: request.node.clone(),
            addr: request.addr.clone(),
            syncing: true,
            acked: 0,
            last_ack: Instant::now(),
        },
    );
    let result = tokio::select! {
        result = stream_to(stream, input, &source, &request, conn) => result,
        _ = kills.changed() => {
            info!(replica = %request.addr, "replica link killed");
            Ok(())
        }
        _ = stop.cancelled() => Ok(()),
    };
    replication.detach(conn);
    if let Err(err) = &result {
        debug!(replica = %request.addr, %err, "replica link ended");
    }
    result
}

/// One stream, read and written by turns: a write runs in a `select!`
/// branch's handler, after the pending read has been dropped.
async fn stream_to<S: AsyncRead + AsyncWrite + Unpin + Send>(
    mut stream: S,
    mut input: BytesMut,
    source: &Source,
    request: &SyncRequest,
    conn: u64,
) -> std::io::Result<()> {
    let replication = &source.replication;
    let log = &replication.log;
    let mut out = BytesMut::with_capacity(CHUNK);

    let continues = request
        .offset
        .filter(|&offset| request.replid != NO_ID && log.can_continue(&request.replid, offset));
    let mut offset = match continues {
        Some(offset) => {
            replication
                .stats
                .partial_ok
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let position = log.position();
            info!(replica = %request.addr, offset, "replica continues from its offset");
            encode_reply(b"CONTINUE", &position.replid, offset, &mut out);
            send(&mut stream, &out).await?;
            out.clear();
            offset
        }
        None => {
            if request.offset.is_some() && request.replid != NO_ID {
                replication
                    .stats
                    .partial_err
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            replication
                .stats
                .full
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let position = log.start_recording();
            info!(replica = %request.addr, offset = position.offset, "sending a full copy");
            encode_reply(b"FULLSYNC", &position.replid, position.offset, &mut out);
            let keys = send_copy(&source.store, &mut stream, &mut out).await?;
            info!(replica = %request.addr, keys, "full copy sent");
            position.offset
        }
    };
    replication.update(conn, |link| {
        link.syncing = false;
        link.acked = offset;
        link.last_ack = Instant::now();
    });

    let mut parser = RequestParser::new(Limits::DEFAULT);
    let silence = source.node_timeout.max(Duration::from_secs(1));
    let mut ping = tokio::time::interval(PING_EVERY);
    let mut last_ack = Instant::now();
    let mut last_send = tokio::time::Instant::now();
    let mut over_soft_since: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = more_to_send(replication, offset, last_send) => {
                last_send = tokio::time::Instant::now();
                match log.read_from(offset, CHUNK, &mut out) {
                    Ok(n) => offset += n as u64,
                    Err(gone) => {
                        warn!(replica = %request.addr, "replica fell behind the backlog; closing its link");
                        return Err(std::io::Error::other(gone));
                    }
                }
                // What the replica has not taken yet: this chunk and the
                // stream after it.
                let behind = (log.offset() - offset) as usize + out.len();
                let over_for = over_soft_since.map(|since| since.elapsed());
                match source.output_limit.check(behind, over_for) {
                    Err(which) => {
                        warn!(replica = %request.addr, behind, "replica over its {which} output buffer limit; closing its link");
                        return Ok(());
                    }
                    Ok(Some(_)) => {
                        over_soft_since.get_or_insert_with(Instant::now);
                    }
                    Ok(None) => over_soft_since = None,
                }
                // A replica that stops reading (a paused process) must not
                // hold this task in a write for ever.
                match tokio::time::timeout(silence, send(&mut stream, &out)).await {
                    Ok(sent) => sent?,
                    Err(_) => {
                        warn!(replica = %request.addr, "replica stopped taking the stream; closing its link");
                        return Ok(());
                    }
                }
                out.clear();
            }
            read = stream.read_buf(&mut input) => {
                if read? == 0 {
                    return Ok(());
                }
                if let Some(acked) = read_acks(&mut parser, &mut input)? {
                    last_ack = Instant::now();
                    replication.update(conn, |link| {
                        link.acked = acked;
                        link.last_ack = last_ack;
                    });
                }
            }
            _ = ping.tick() => {
                if last_ack.elapsed() > silence {
                    warn!(replica = %request.addr, "replica stopped acknowledging; closing its link");
                    return Ok(());
                }
                // Not while paused for a failover: the replica taking over
                // should end exactly where this node stopped.
                if log.offset() == offset && !replication.gate.is_paused() {
                    log.record_ping();
                }
            }
        }
    }
}

/// Completes when the stream has grown beyond `offset` — but, if the last
/// send was less than [`COALESCE`] ago, not before that much time has
/// passed. An idle link sends a write at once; a busy one sends what a
/// millisecond of writes added, in one write, instead of waking this task
/// and making a system call for every command. A WAIT in progress cuts the
/// pause short: someone is waiting for these bytes.
async fn more_to_send(replication: &Replication, offset: u64, last_send: tokio::time::Instant) {
    let batch_until = last_send + COALESCE;
    if tokio::time::Instant::now() < batch_until && !replication.anyone_waiting() {
        tokio::select! {
            _ = tokio::time::sleep_until(batch_until) => {}
            _ = replication.a_wait_started() => {}
        }
    }
    replication.log.grown(offset).await;
}

/// `[kind, replid, offset]`, the answer to `KC.PSYNC`.
fn encode_reply(kind: &[u8], replid: &str, offset: u64, out: &mut BytesMut) {
    let offset = offset.to_string();
    let frame = keycafe_core::Frame::Array(vec![
        keycafe_core::Frame::Simple(kind.to_vec().into()),
        keycafe_core::Frame::Bulk(replid.as_bytes().to_vec().into()),
        keycafe_core::Frame::Bulk(offset.into_bytes().into()),
    ]);
    Protocol::Native.encode_frame(&frame, out);
}

/// Sends every key, slot by slot, then the `KC.SYNCED` marker. Returns the
/// number of keys sent.
async fn send_copy(
    store: &Store,
    writer: &mut (impl AsyncWrite + Unpin),
    out: &mut BytesMut,
) -> std::io::Result<u64> {
    let now = crate::store::now_ms();
    let mut keys = 0;
    for slot in 0..SLOT_COUNT {
        store.for_each_in_slot(slot, |key, value, deadline| {
            // Already expired here: its DEL follows in the stream.
            if deadline.is_none_or(|ms| ms >= now) {
                records::encode_set(key, value, deadline, out);
                keys += 1;
            }
        });
        if out.len() >= CHUNK {
            send(writer, out).await?;
            out.clear();
        }
    }
    Protocol::Native.encode_request(&[b"KC.SYNCED"], out);
    send(writer, out).await?;
    out.clear();
    Ok(keys)
}

/// Writes `bytes` and flushes: over TLS, the tail of a write can otherwise
/// wait in the TLS session until the next one.
async fn send(writer: &mut (impl AsyncWrite + Unpin), bytes: &[u8]) -> std::io::Result<()> {
    writer.write_all(bytes).await?;
    writer.flush().await
}

/// The newest offset among the `KC.ACK offset` frames in `input`.
fn read_acks(parser: &mut RequestParser, input: &mut BytesMut) -> std::io::Result<Option<u64>> {
    let mut newest = None;
    loop {
        let (ack, used) = match parser.parse(Protocol::Native, input) {
            Ok(Some((args, used))) => {
                let is_ack = args
                    .get(0)
                    .is_some_and(|n| n.eq_ignore_ascii_case(b"KC.ACK"));
                let offset = args
                    .get(1)
                    .and_then(|o| std::str::from_utf8(o).ok())
                    .and_then(|o| o.parse::<u64>().ok());
                (is_ack.then_some(offset).flatten(), used)
            }
            Ok(None) => return Ok(newest),
            Err(err) => return Err(std::io::Error::other(err.reply_text())),
        };
        let Some(ack) = ack else {
            return Err(std::io::Error::other(
                "replica sent something other than KC.ACK",
            ));
        };
        newest = Some(ack);
        input.advance(used);
    }
}
