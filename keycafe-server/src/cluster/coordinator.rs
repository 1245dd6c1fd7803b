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
//!
//! A replicated coordinator is a group (`docs/coordinator-group.md`): the
//! node is given every member's address (`coordinator: "a:9800,b:9800"`)
//! and talks to the leader. A member that is not the leader answers
//! `not_leader`, naming the leader if it knows it; the node connects there
//! at once, and otherwise tries the next address in the list.

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
const MIN_BACKOFF: Duration = Duration::from_millis(100);
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
    let mut coordinators = Coordinators::new(&cluster.coordinator);
    let mut backoff = MIN_BACKOFF;
    let mut renewals = Renewals::default();
    loop {
        renewals.reset();
        let target = coordinators.current().to_string();
        let session = session(&cluster, &target, &node, &mut outbox, &mut renewals);
        let ended = tokio::select! {
            ended = session => ended,
            _ = stop.cancelled() => return,
        };
        let wait = match ended {
            Ok(Ended::Redirected(Some(leader))) => {
                info!(from = %target, %leader, "not the coordinators' leader; following the redirect");
                coordinators.follow(leader);
                backoff = MIN_BACKOFF;
                // Redirects between members that disagree for a moment
                // (an election) must not spin.
                MIN_BACKOFF
            }
            Ok(Ended::Redirected(None)) => {
                debug!(coordinator = %target, "not the leader, and no leader known; trying the next");
                coordinators.next();
                backoff
            }
            Ok(Ended::Closed) => {
                debug!(coordinator = %target, "coordinator closed the connection");
                coordinators.next();
                backoff
            }
            Err(err) => {
                warn!(coordinator = %target, %err, "coordinator unreachable; serving with epoch {}", cluster.epoch());
                coordinators.next();
                backoff
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => return,
        }
        if wait == backoff {
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

/// How a session with a coordinator ended, short of an error.
enum Ended {
    /// The coordinator closed the connection.
    Closed,
    /// It is not the group's leader; the leader's address, if it said.
    Redirected(Option<String>),
}

/// The coordinators a node may talk to, and which one it tries now: the
/// configured list (`a:9800,b:9800,c:9800`), in turn, or a leader a
/// member redirected to.
struct Coordinators {
    configured: Vec<String>,
    next: usize,
    current: String,
}

impl Coordinators {
    fn new(configured: &str) -> Coordinators {
        let configured: Vec<String> = configured
            .split(',')
            .map(str::trim)
            .filter(|addr| !addr.is_empty())
            .map(String::from)
            .collect();
        let current = configured.first().cloned().unwrap_or_default();
        Coordinators {
            configured,
            next: 1,
            current,
        }
    }

    fn current(&self) -> &str {
        &self.current
    }

    /// The next configured address, round the list.
    fn next(&mut self) {
        if let Some(addr) = self
            .configured
            .get(self.next % self.configured.len().max(1))
        {
            self.current = addr.clone();
        }
        self.next = self.next.wrapping_add(1);
    }

    /// The leader a member named.
    fn follow(&mut self, leader: String) {
        self.current = leader;
    }
}

/// One connection's life: register, then exchange messages until it breaks.
async fn session(
    cluster: &ClusterState,
    coordinator: &str,
    node: &Registration,
    outbox: &mut mpsc::UnboundedReceiver<NodeMessage>,
    renewals: &mut Renewals,
) -> anyhow::Result<Ended> {
    // Bounded: a connect into a partition would otherwise wait out the
    // kernel's SYN retries (minutes), and then resume seconds after the heal.
    let connect = ClientStream::connect(coordinator, cluster.connector());
    let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| anyhow::anyhow!("no answer to connect within {CONNECT_TIMEOUT:?}"))??;
    let mut input = BytesMut::with_capacity(64 * 1024);
    let proof = prove(cluster, coordinator, &mut stream, &mut input).await?;
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
    debug!(%coordinator, "registering with the coordinator");

    let mut changed = cluster.subscribe();
    let mut link_changes = node.link_changes.clone();
    link_changes.mark_unchanged();
    let mut next_heartbeat = tokio::time::Instant::now();
    let silence = node
        .node_timeout
        .max(Duration::from_millis(2 * HEARTBEAT_MS));
    let mut heard = tokio::time::Instant::now();
    let mut registered = false;
    loop {
        tokio::select! {
            read = stream.read_buf(&mut input) => {
                if read? == 0 {
                    return Ok(Ended::Closed);
                }
                heard = tokio::time::Instant::now();
                while let Some(message) = coord::decode_message::<CoordinatorMessage>(&mut input)? {
                    match message {
                        CoordinatorMessage::Config(config) => {
                            if !registered {
                                info!(%coordinator, "registered with the coordinator");
                                registered = true;
                            }
                            cluster.adopt(config);
                        }
                        CoordinatorMessage::NotLeader { leader } => {
                            return Ok(Ended::Redirected(leader));
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
    coordinator: &str,
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
        _ => anyhow::bail!("the coordinator at {coordinator} does not hold this cluster's secret"),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinators_are_tried_in_turn_and_redirects_followed() {
        let mut coordinators = Coordinators::new("a:1, b:2,,c:3");
        assert_eq!(coordinators.current(), "a:1");
        coordinators.next();
        assert_eq!(coordinators.current(), "b:2");
        coordinators.follow("z:9".into());
        assert_eq!(coordinators.current(), "z:9");
        coordinators.next();
        assert_eq!(coordinators.current(), "c:3");
        coordinators.next();
        assert_eq!(coordinators.current(), "a:1");
        let mut alone = Coordinators::new("a:1");
        alone.next();
        assert_eq!(alone.current(), "a:1");
    }
}
