//! The replica's side: following whatever primary the configuration names.
//!
//! [`run`] watches the adopted configurations. While this node's entry says
//! `replica_of: P`, it keeps a link to P's cluster bus: `KC.PSYNC` with its
//! history id and offset, then either a full copy (flush, load every record
//! up to `KC.SYNCED`) or nothing, then the stream, applying each record and
//! keeping its bytes in its own backlog at the same offsets. It acknowledges
//! the offset it has applied (`KC.ACK`) after each read that empties the
//! socket (while more is queued, at most once a millisecond), and once a
//! second when idle. A link that breaks is re-made with backoff, resuming
//! from the offset; a primary silent for the node timeout is given up on
//! (the coordinator hears `link_up: false` and may fail it over).
//!
//! When a configuration makes this node a primary, it is promoted: a new
//! history id (remembering the old one up to here), recording on, expiry
//! on. When one makes it the replica of another node, it stops recording and
//! expiring and follows the new primary — a demoted primary keeps its data
//! until the new primary's answer says whether it can continue or must take
//! a full copy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use keycafe_core::cluster::NodeInfo;
use keycafe_core::{Args, Frame, Limits, Protocol, RequestParser};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{broadcast, watch};
use tracing::{info, warn};

use super::log::NO_ID;
use crate::cluster::ClusterState;
use crate::cluster::bus::BusClient;
use crate::state::Shared;
use crate::store::{Expiry, MAX_STRING_LEN, Role};

/// An idle replica still acknowledges this often (the primary's liveness check).
const ACK_EVERY: Duration = Duration::from_secs(1);
/// While more of the stream is queued, a replica acknowledges at most once
/// per this gap.
const ACK_GAP: Duration = Duration::from_millis(1);
/// Room made in the input buffer before each read.
const READ_CHUNK: usize = 64 * 1024;
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Frames a primary may send: one key and value, a handful of arguments.
const STREAM_LIMITS: Limits = Limits {
    max_bulk_len: MAX_STRING_LEN,
    max_args: 16,
    max_inline_len: 0,
    max_frame_len: 2 * MAX_STRING_LEN,
};

/// Follows the configuration's idea of this node's role until shutdown.
pub async fn run(shared: Arc<Shared>, mut shutdown: broadcast::Receiver<()>) {
    let Some(cluster) = shared.cluster.as_ref() else {
        return;
    };
    let mut changed = cluster.subscribe();
    let mut backoff = Duration::from_millis(50);
    loop {
        let primary = my_primary(cluster);
        match primary {
            None => {
                become_primary(&shared, cluster);
                tokio::select! {
                    result = changed.changed() => if result.is_err() { return },
                    _ = shutdown.recv() => return,
                }
            }
            Some(primary) => {
                shared.replication.log.stop_recording();
                shared.store.set_role(Role::Replica);
                // A primary demoted during a manual failover: its pause is
                // over (writes get MOVED now).
                shared.replication.gate.resume();
                shared.replication.set_upstream(|up| {
                    if up.primary.as_deref() != Some(primary.id.as_str()) {
                        up.primary = Some(primary.id.clone());
                        up.primary_addr = Some(primary.client_addr.clone());
                        up.link_up = false;
                    }
                });
                let result = tokio::select! {
                    result = follow(&shared, cluster, &primary) => result,
                    _ = primary_changes(&mut changed, cluster, &primary.id) => Ok(()),
                    _ = killed(&shared) => Err(anyhow::anyhow!("link killed (CLIENT KILL TYPE master)")),
                    _ = shutdown.recv() => return,
                };
                shared.replication.set_upstream(|up| up.link_up = false);
                if let Err(err) = result {
                    warn!(primary = %primary.client_addr, %err, "replication link down");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.recv() => return,
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                } else {
                    backoff = Duration::from_millis(50);
                }
            }
        }
    }
}

/// The primary this node should follow, per the adopted configuration.
fn my_primary(cluster: &ClusterState) -> Option<NodeInfo> {
    cluster.view().my_primary().cloned()
}

/// Takes on the primary's duties; a promotion if this node was following
/// someone.
fn become_primary(shared: &Shared, cluster: &ClusterState) {
    let replication = &shared.replication;
    let was_following = replication.upstream().primary.is_some();
    if was_following && cluster.view().me.is_some() {
        let position = replication.log.promote();
        shared.store.set_role(Role::Primary);
        info!(replid = %position.replid, offset = position.offset, "promoted to primary");
        replication.set_upstream(|up| *up = Default::default());
    } else {
        shared.store.set_role(Role::Primary);
    }
}

/// Completes when the configuration names another primary for this node
/// (or none).
async fn primary_changes(changed: &mut watch::Receiver<u64>, cluster: &ClusterState, id: &str) {
    loop {
        if changed.changed().await.is_err() {
            return std::future::pending().await;
        }
        if my_primary(cluster).is_none_or(|p| p.id != id) {
            return;
        }
    }
}

async fn killed(shared: &Shared) {
    let mut kills = shared.replication.upstream_kills();
    kills.borrow_and_update();
    let _ = kills.changed().await;
}

/// One link's life: handshake, perhaps a full copy, then the stream.
async fn follow(shared: &Shared, cluster: &ClusterState, primary: &NodeInfo) -> anyhow::Result<()> {
    let replication = &shared.replication;
    let log = &replication.log;
    let mut link = BusClient::connect(&primary.bus_addr, cluster.secret.as_deref()).await?;
    // Whatever history we hold — our primary's, or our own as a demoted
    // primary — the primary decides whether it can continue it.
    // An empty history (offset 0) has nothing to continue.
    let position = log.position();
    let (replid, offset) = match position.offset {
        0 => (NO_ID.to_string(), "-1".to_string()),
        offset => (position.replid, offset.to_string()),
    };
    let answer = link
        .call(&[
            b"KC.PSYNC".as_slice(),
            cluster.me.id.as_bytes(),
            replid.as_bytes(),
            offset.as_bytes(),
            cluster.me.client_addr.as_bytes(),
        ])
        .await?;
    let (kind, primary_replid, start) = parse_psync_answer(&answer)?;
    let (stream, mut input) = link.into_parts();
    let (mut reader, mut writer) = stream.into_split();
    let mut parser = RequestParser::new(STREAM_LIMITS);

    if kind == "FULLSYNC" {
        info!(primary = %primary.client_addr, offset = start, "receiving a full copy");
        replication.set_upstream(|up| {
            up.syncing = true;
            up.synced = false;
        });
        // Until the copy is complete we hold no history anyone can continue.
        log.reset(NO_ID, 0);
        shared.store.flush_all();
        let keys = load_copy(shared, &mut reader, &mut input, &mut parser).await?;
        log.reset(&primary_replid, start);
        info!(keys, "full copy loaded");
    } else {
        log.follow(&primary_replid);
        info!(primary = %primary.client_addr, offset = start, "continuing from our offset");
    }
    replication.set_upstream(|up| {
        up.syncing = false;
        up.synced = true;
        up.link_up = true;
        up.last_io = Some(Instant::now());
    });
    send_ack(&mut writer, log.offset()).await?;

    let silence = Duration::from_millis(shared.config.node_timeout_ms.max(1000));
    let mut ack_timer = tokio::time::interval(ACK_EVERY);
    let mut last_ack = tokio::time::Instant::now();
    // An acknowledgement owed but held back to keep to one per ACK_GAP.
    let mut ack_owed = false;
    loop {
        let owed_at = last_ack + ACK_GAP;
        input.reserve(READ_CHUNK);
        let room = input.capacity() - input.len();
        tokio::select! {
            read = tokio::time::timeout(silence, reader.read_buf(&mut input)) => {
                let read = read.map_err(|_| anyhow::anyhow!("primary silent for {silence:?}"))??;
                anyhow::ensure!(read > 0, "primary closed the link");
                let used = apply_stream(shared, &mut parser, &input)?;
                log.append_raw(&input[..used]);
                input.advance(used);
                replication.set_upstream(|up| up.last_io = Some(Instant::now()));
                ack_owed = true;
                // Held back only while more is on its way: a read that
                // emptied the socket is acknowledged at once, so that a
                // WAIT is answered without a timer's delay.
                if last_ack.elapsed() < ACK_GAP && read == room {
                    continue;
                }
            }
            _ = tokio::time::sleep_until(owed_at), if ack_owed => {}
            _ = ack_timer.tick() => {}
        }
        send_ack(&mut writer, log.offset()).await?;
        last_ack = tokio::time::Instant::now();
        ack_owed = false;
    }
}

/// `[FULLSYNC|CONTINUE, replid, offset]`.
fn parse_psync_answer(answer: &Frame) -> anyhow::Result<(String, String, u64)> {
    let Frame::Array(items) = answer else {
        anyhow::bail!("unexpected KC.PSYNC answer {answer:?}");
    };
    let text = |i: usize| -> anyhow::Result<String> {
        let bytes = items
            .get(i)
            .and_then(Frame::as_bytes)
            .ok_or_else(|| anyhow::anyhow!("short KC.PSYNC answer"))?;
        Ok(String::from_utf8_lossy(bytes).into_owned())
    };
    let kind = text(0)?;
    anyhow::ensure!(
        kind == "FULLSYNC" || kind == "CONTINUE",
        "unexpected KC.PSYNC answer {kind}"
    );
    Ok((kind, text(1)?, text(2)?.parse()?))
}

/// Loads full-copy records until `KC.SYNCED`; returns the keys loaded.
async fn load_copy(
    shared: &Shared,
    reader: &mut tokio::net::tcp::OwnedReadHalf,
    input: &mut BytesMut,
    parser: &mut RequestParser,
) -> anyhow::Result<u64> {
    let mut keys = 0;
    loop {
        while let Some((args, used)) = parser.parse(Protocol::Native, input)? {
            if args.get(0) == Some(b"KC.SYNCED".as_slice()) {
                input.advance(used);
                return Ok(keys);
            }
            apply(shared, args)?;
            keys += 1;
            input.advance(used);
        }
        let read = reader.read_buf(input).await?;
        anyhow::ensure!(read > 0, "primary closed the link during the full copy");
    }
}

/// Applies every complete record in `input`; returns the bytes they used.
fn apply_stream(
    shared: &Shared,
    parser: &mut RequestParser,
    input: &[u8],
) -> anyhow::Result<usize> {
    let mut used = 0;
    while let Some((args, len)) = parser.parse(Protocol::Native, &input[used..])? {
        apply(shared, args)?;
        used += len;
    }
    Ok(used)
}

/// Applies one record. Time is 0 so that nothing counts as expired: the
/// primary decides when keys expire and says so with `DEL`.
fn apply(shared: &Shared, args: Args<'_>) -> anyhow::Result<()> {
    let store = &shared.store;
    let name = args.get(0).unwrap_or_default();
    match (name, args.len()) {
        (b"SET", 3) | (b"SET", 5) => {
            let (key, value) = (arg(args, 1)?, arg(args, 2)?);
            let expiry = match args.get(4) {
                None => Expiry::Persist,
                Some(ms) => Expiry::At(std::str::from_utf8(ms)?.parse()?),
            };
            store.set(key, value, 0, expiry)?;
        }
        (b"DEL", 2) => {
            store.remove(arg(args, 1)?, 0);
        }
        (b"FLUSHALL", 1) => store.flush_all(),
        (b"PING", 1) => {}
        _ => anyhow::bail!(
            "unknown replication record {}",
            String::from_utf8_lossy(name)
        ),
    }
    Ok(())
}

fn arg<'a>(args: Args<'a>, index: usize) -> anyhow::Result<&'a [u8]> {
    args.get(index)
        .ok_or_else(|| anyhow::anyhow!("short replication record"))
}

async fn send_ack(writer: &mut tokio::net::tcp::OwnedWriteHalf, offset: u64) -> anyhow::Result<()> {
    let mut out = BytesMut::new();
    Protocol::Native.encode_request(
        &[b"KC.ACK".as_slice(), offset.to_string().as_bytes()],
        &mut out,
    );
    writer.write_all(&out).await?;
    Ok(())
}
