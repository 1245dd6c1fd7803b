//! The node's link to the coordinator.
//!
//! One task keeps a connection to the coordinator (over mutual TLS when
//! `tls_cluster` is on): it registers, adopts every
//! configuration the coordinator pushes, sends heartbeats, extends the
//! node's [lease](super::lease) with every grant that answers one, and
//! forwards what other parts of the node queue for the coordinator
//! (`migration_done`, `leave`). Heartbeats go every second, or three times
//! per lease if leases are shorter, and at once when the node becomes a
//! primary without a lease (a promoted replica should not wait a second to
//! take writes) or when its replication link goes up or down (a replica
//! that lost its primary says so at once). The coordinator answers every heartbeat (a replica's with
//! an empty lease), so a link on which nothing has arrived for the node
//! timeout is dead whatever TCP thinks of it — the coordinator's host may
//! have vanished, or packets may be dropped — and the node reconnects.
//! When the coordinator is unreachable the node keeps serving
//! reads with the configuration it has, writes until its lease runs out, and
//! reconnects with backoff; on reconnecting it registers again, so a
//! restarted coordinator learns of it at once.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use keycafe_core::auth::{self, Step};
use keycafe_core::coord::{self, CoordinatorMessage, NodeMessage, NodeReport};
use keycafe_core::tls::ClientStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::ClusterState;
use super::lease::{Renewals, now_ms};

/// Longest wait for the coordinator to accept a connection (and complete
/// the TLS handshake, on a TLS cluster).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Heartbeats go at least this often.
const HEARTBEAT_MS: u64 = 1000;
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// What the coordinator link needs to know about the rest of the node.
pub struct Registration {
    /// The primary this node was configured to follow (`replica_of`).
    pub primary: Option<String>,
    /// This node's heartbeat, made fresh each time.
    pub report: Box<dyn Fn() -> NodeReport + Send + Sync>,
    /// A coordinator link silent for this long (at least two heartbeats)
    /// is given up and reconnected.
    pub node_timeout: Duration,
    /// Ticks when this replica's link to its primary goes up or down: a
    /// heartbeat goes at once, so that a lost primary is replaced without
    /// waiting for the next beat.
    pub link_changes: watch::Receiver<bool>,
}

/// Runs the coordinator link until shutdown.
pub async fn run(cluster: Arc<ClusterState>, node: Registration, stop: CancellationToken) {
    let Some(mut outbox) = cluster.take_outbox() else {
        return;
    };
    let mut backoff = Duration::from_millis(100);
    let mut renewals = Renewals::default();
    loop {
        renewals.reset();
        let session = session(&cluster, &node, &mut outbox, &mut renewals);
        tokio::select! {
            result = session => {
                match result {
                    Ok(()) => debug!("coordinator closed the connection"),
                    Err(err) => warn!(coordinator = %cluster.coordinator, %err, "coordinator unreachable; serving with epoch {}", cluster.epoch()),
                }
            }
            _ = stop.cancelled() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.cancelled() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection's life: register, then exchange messages until it breaks.
async fn session(
    cluster: &ClusterState,
    node: &Registration,
    outbox: &mut mpsc::UnboundedReceiver<NodeMessage>,
    renewals: &mut Renewals,
) -> anyhow::Result<()> {
    // Bounded: a connect into a partition would otherwise wait out the
    // kernel's SYN retries (minutes), and then resume seconds after the heal.
    let connect = ClientStream::connect(&cluster.coordinator, cluster.connector());
    let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| anyhow::anyhow!("no answer to connect within {CONNECT_TIMEOUT:?}"))??;
    let mut input = BytesMut::with_capacity(64 * 1024);
    let proof = prove(cluster, &mut stream, &mut input).await?;
    let mut out = BytesMut::new();
    let register = NodeMessage::Register {
        node: cluster.me.clone(),
        epoch: cluster.registration_epoch(),
        proof,
        primary: node.primary.clone(),
    };
    coord::encode_message(&register, &mut out);
    if cluster.leaving.load(std::sync::atomic::Ordering::Relaxed) {
        coord::encode_message(&NodeMessage::Leave, &mut out);
    }
    send(&mut stream, &out).await?;
    out.clear();
    info!(coordinator = %cluster.coordinator, "registered with the coordinator");

    let mut changed = cluster.subscribe();
    let mut link_changes = node.link_changes.clone();
    link_changes.mark_unchanged();
    let mut next_heartbeat = tokio::time::Instant::now();
    let silence = node
        .node_timeout
        .max(Duration::from_millis(2 * HEARTBEAT_MS));
    let mut heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            read = stream.read_buf(&mut input) => {
                if read? == 0 {
                    return Ok(());
                }
                heard = tokio::time::Instant::now();
                while let Some(message) = coord::decode_message::<CoordinatorMessage>(&mut input)? {
                    match message {
                        CoordinatorMessage::Config(config) => {
                            cluster.adopt(config);
                        }
                        CoordinatorMessage::Lease { seq, ms } => {
                            if let Some(until) = renewals.granted(seq, ms) {
                                cluster.lease.extend(until);
                            }
                        }
                        CoordinatorMessage::Challenge { .. } => {
                            anyhow::bail!("the coordinator sent a second challenge");
                        }
                        // A refusal (a bad secret, a leave the coordinator
                        // will not allow) is logged; if the coordinator also
                        // closes the connection, the read above sees it and
                        // the node reconnects with backoff.
                        CoordinatorMessage::Error { message } => {
                            warn!(%message, "the coordinator refused a request");
                        }
                    }
                }
            }
            _ = tokio::time::sleep_until(next_heartbeat) => {
                heartbeat(node, renewals, &mut out);
                let interval = renewals.interval_ms(HEARTBEAT_MS);
                next_heartbeat = tokio::time::Instant::now() + Duration::from_millis(interval);
            }
            Ok(()) = changed.changed() => {
                // Promoted: ask for a lease now rather than at the next beat.
                let promoted = !cluster.view().is_replica() && !cluster.lease.holds(now_ms());
                if promoted {
                    heartbeat(node, renewals, &mut out);
                }
            }
            Ok(()) = link_changes.changed() => {
                heartbeat(node, renewals, &mut out);
            }
            Some(message) = outbox.recv() => {
                coord::encode_message(&message, &mut out);
            }
            _ = tokio::time::sleep_until(heard + silence) => {
                anyhow::bail!("nothing from the coordinator for {silence:?}");
            }
        }
        if !out.is_empty() {
            // A peer that stopped reading must not hold the link up either.
            tokio::time::timeout(silence, send(&mut stream, &out))
                .await
                .map_err(|_| anyhow::anyhow!("the coordinator stopped reading"))??;
            out.clear();
        }
    }
}

/// The first half of the conversation: `hello` with our challenge, and the
/// coordinator's `challenge`, whose proof must show that it holds the
/// cluster secret (a stranger listening on the coordinator's address must
/// not be able to hand us a configuration). Returns our proof, for
/// `register`.
async fn prove(
    cluster: &ClusterState,
    stream: &mut ClientStream,
    input: &mut BytesMut,
) -> anyhow::Result<String> {
    let ours = auth::nonce()?;
    let mut out = BytesMut::new();
    let hello = NodeMessage::Hello {
        node: cluster.me.id.clone(),
        nonce: ours.clone(),
    };
    coord::encode_message(&hello, &mut out);
    send(stream, &out).await?;
    let answer = loop {
        if let Some(message) = coord::decode_message::<CoordinatorMessage>(input)? {
            break message;
        }
        let read = tokio::time::timeout(CONNECT_TIMEOUT * 5, stream.read_buf(input));
        anyhow::ensure!(read.await?? > 0, "the coordinator closed the connection");
    };
    let secret = cluster.secret.as_bytes();
    match answer {
        CoordinatorMessage::Challenge { nonce, proof }
            if auth::is_nonce(&nonce)
                && auth::verify(secret, Step::Coordinator, &ours, &nonce, "", &proof) =>
        {
            Ok(auth::proof(
                secret,
                Step::CoordinatorClient,
                &nonce,
                &ours,
                &cluster.me.id,
            ))
        }
        CoordinatorMessage::Error { message } => {
            anyhow::bail!("the coordinator refused: {message}")
        }
        _ => anyhow::bail!(
            "the coordinator at {} does not hold this cluster's secret",
            cluster.coordinator
        ),
    }
}

/// Writes and flushes (over TLS, the tail of a write can otherwise wait in
/// the session until the next one).
async fn send(stream: &mut ClientStream, bytes: &[u8]) -> std::io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

/// Appends a fresh heartbeat to `out`, numbered so that the lease that
/// answers it can be dated from now.
fn heartbeat(node: &Registration, renewals: &mut Renewals, out: &mut BytesMut) {
    let mut report = (node.report)();
    report.seq = renewals.sent(now_ms());
    coord::encode_message(&NodeMessage::Heartbeat(report), out);
}
