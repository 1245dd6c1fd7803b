//! The cluster bus: node-to-node links on the bus port (client port + 10000).
//!
//! The bus speaks the native protocol (over mutual TLS when `tls_cluster` is
//! on), with commands of its own that the
//! client port does not accept: `KC.PING` (gossip), `KC.CONFIG` (fetch the
//! sender's configuration) and `KC.IMPORT` (receive migrated keys). A bus
//! connection opens with a mutual challenge-response on the cluster secret
//! (`KC.HELLO`, `KC.AUTH`; see `keycafe_core::auth`): the dialling node
//! checks the peer's proof before it sends anything else, and the peer
//! serves nothing before the dialler has proved itself. So a stranger can
//! neither read, push nor forge anything on the bus, nor pose as a peer.
//! `docs/protocol.md` ("Cluster bus") specifies the commands.
//!
//! Gossip: every second each node pings every peer with its id, epoch and slot
//! bitmap. A peer that stops answering is flagged `fail?` in CLUSTER NODES; a
//! peer that answers with a newer epoch is asked for its configuration, so a
//! node that missed a push from the coordinator (or lost the coordinator)
//! still converges on the newest layout.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use keycafe_core::auth::{self, Step};
use keycafe_core::cluster::{ClusterConfig, NodeId, NodeInfo};
use keycafe_core::handshake::Handshake;
use keycafe_core::tls::ClientStream;
use keycafe_core::{Frame, Limits, Protocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::ClusterState;
use super::peers::PeerStatus;

const GOSSIP_EVERY: Duration = Duration::from_secs(1);
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A client for another node's bus port.
pub struct BusClient {
    stream: ClientStream,
    buf: BytesMut,
}

impl BusClient {
    /// Connects (over TLS on a TLS cluster), says hello, and proves the
    /// cluster secret both ways: the peer's proof is checked before anything
    /// else is sent.
    pub async fn connect(addr: &str, cluster: &ClusterState) -> anyhow::Result<BusClient> {
        let connect = ClientStream::connect(addr, cluster.connector());
        let stream = tokio::time::timeout(CALL_TIMEOUT, connect)
            .await
            .map_err(|_| anyhow::anyhow!("no connection to {addr} within {CALL_TIMEOUT:?}"))??;
        let mut client = BusClient {
            stream,
            buf: BytesMut::new(),
        };
        let mut handshake = Handshake::new(None);
        let mut out = BytesMut::new();
        handshake.encode(&mut out);
        let ours = auth::nonce()?;
        let me = cluster.me.id.as_str();
        Protocol::Native.encode_request(&["KC.HELLO", me, &ours], &mut out);
        client.send(&out).await?;
        loop {
            match handshake.poll(&mut client.buf, &Limits::DEFAULT) {
                Ok(Some(())) => break,
                Ok(None) => client.read_more().await?,
                // A refusal shows as the peer's own reason.
                Err(err) => anyhow::bail!("handshake with bus peer at {addr} failed: {err}"),
            }
        }
        let answer = client.read_reply().await?;
        let secret = cluster.secret.as_bytes();
        let (theirs, proof) = match &answer {
            Frame::Array(items) => match &items[..] {
                [Frame::Bulk(theirs), Frame::Bulk(proof)] => (
                    String::from_utf8_lossy(theirs).into_owned(),
                    String::from_utf8_lossy(proof).into_owned(),
                ),
                _ => anyhow::bail!("bus peer at {addr} answered KC.HELLO with {answer:?}"),
            },
            _ => anyhow::bail!("bus peer at {addr} answered KC.HELLO with {answer:?}"),
        };
        if !auth::is_nonce(&theirs)
            || !auth::verify(secret, Step::BusServer, &ours, &theirs, "", &proof)
        {
            anyhow::bail!("bus peer at {addr} does not hold this cluster's secret");
        }
        let proof = auth::proof(secret, Step::BusClient, &theirs, &ours, me);
        client.call(&["KC.AUTH", proof.as_str()]).await?;
        Ok(client)
    }

    /// The next reply, error replies included.
    async fn read_reply(&mut self) -> anyhow::Result<Frame> {
        loop {
            if let Some(frame) = Protocol::Native.decode_frame(&mut self.buf, &Limits::DEFAULT)? {
                if let Frame::Error(text) = &frame {
                    anyhow::bail!("{}", String::from_utf8_lossy(text));
                }
                return Ok(frame);
            }
            self.read_more().await?;
        }
    }

    /// Sends one command and returns its reply; an error reply is an `Err`.
    pub async fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> anyhow::Result<Frame> {
        let mut out = BytesMut::new();
        Protocol::Native.encode_request(args, &mut out);
        self.send(&out).await?;
        self.read_reply().await
    }

    /// Writes and flushes (over TLS, the tail of a write can otherwise wait
    /// in the session until the next one).
    async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// The stream and whatever has been read but not yet decoded: for a
    /// conversation that stops being request and reply (replication).
    pub fn into_parts(self) -> (ClientStream, BytesMut) {
        (self.stream, self.buf)
    }

    async fn read_more(&mut self) -> anyhow::Result<()> {
        let read =
            tokio::time::timeout(CALL_TIMEOUT, self.stream.read_buf(&mut self.buf)).await??;
        anyhow::ensure!(read > 0, "bus peer closed the connection");
        Ok(())
    }
}

/// A slot bitmap: bit `s` set when slot `s` is claimed (2048 bytes).
pub fn slot_bitmap(slots: &[u16]) -> Vec<u8> {
    let mut bitmap = vec![0u8; usize::from(keycafe_core::SLOT_COUNT) / 8];
    for &slot in slots {
        if let Some(byte) = bitmap.get_mut(usize::from(slot / 8)) {
            *byte |= 1 << (slot % 8);
        }
    }
    bitmap
}

/// Pings every peer each second; pulls a newer configuration when a peer has
/// one.
///
/// A silent peer (a paused process, a host whose packets are dropped) must
/// not hold up the others, or they would look silent too: every peer is
/// pinged at once, each under a timeout well inside the node timeout.
pub async fn gossip(cluster: Arc<ClusterState>, node_timeout: Duration, stop: CancellationToken) {
    let timeout = (node_timeout / 2).clamp(Duration::from_millis(250), CALL_TIMEOUT);
    let mut links: HashMap<NodeId, BusClient> = HashMap::new();
    let mut ticker = tokio::time::interval(GOSSIP_EVERY);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.cancelled() => return,
        }
        tokio::select! {
            _ = gossip_round(&cluster, &mut links, timeout) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// Pings every peer once, all at the same time; a peer that has not
/// answered within `timeout` loses its link (it is made again next round).
async fn gossip_round(
    cluster: &Arc<ClusterState>,
    links: &mut HashMap<NodeId, BusClient>,
    timeout: Duration,
) {
    let view = cluster.view();
    let ping: Arc<[Vec<u8>]> = Arc::new([
        b"KC.PING".to_vec(),
        cluster.me.id.as_bytes().to_vec(),
        view.epoch().to_string().into_bytes(),
        slot_bitmap(&view.my_slots()),
    ]);
    links.retain(|id, _| view.config.node(id).is_some());
    let mut pings = JoinSet::new();
    for peer in view.config.nodes.iter().filter(|n| n.id != cluster.me.id) {
        let link = links.remove(&peer.id);
        let (peer, cluster, ping) = (peer.clone(), cluster.clone(), ping.clone());
        pings.spawn(async move {
            let exchange = ping_peer(link, &peer, &cluster, &ping);
            let outcome = tokio::time::timeout(timeout, exchange)
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("no pong within {timeout:?}")));
            (peer, outcome)
        });
    }
    while let Some(joined) = pings.join_next().await {
        let Ok((peer, outcome)) = joined else {
            continue; // the task panicked: a bug, already reported by tokio
        };
        let (mut link, (peer_epoch, claimed_slots)) = match outcome {
            Ok(answered) => answered,
            Err(err) => {
                debug!(peer = %peer.id, %err, "no pong");
                continue;
            }
        };
        cluster.peers.record(
            &peer.id,
            PeerStatus {
                last_pong: Some(Instant::now()),
                epoch: peer_epoch,
                claimed_slots,
            },
        );
        let index = view.config.nodes.iter().position(|n| n.id == peer.id);
        let expected = index.map_or(0, |i| view.map.slots_of(i).len());
        if peer_epoch == view.epoch() && claimed_slots != expected {
            // Same epoch, different ownership: one of us has a bug.
            warn!(peer = %peer.id, claimed_slots, expected, "peer disagrees about its slots");
        }
        if peer_epoch > cluster.epoch()
            && tokio::time::timeout(timeout, fetch_config(&mut link, cluster))
                .await
                .is_err()
        {
            continue; // the link is mid-reply: drop it
        }
        links.insert(peer.id, link);
    }
}

/// One ping over `link` (made first if there is none): the link back and
/// what the pong says, `(epoch, slots claimed)`.
async fn ping_peer(
    link: Option<BusClient>,
    peer: &NodeInfo,
    cluster: &ClusterState,
    ping: &[Vec<u8>],
) -> anyhow::Result<(BusClient, (u64, usize))> {
    let mut link = match link {
        Some(link) => link,
        None => BusClient::connect(&peer.bus_addr, cluster).await?,
    };
    let answer = link.call(ping).await?;
    let pong = parse_pong(answer).ok_or_else(|| anyhow::anyhow!("malformed pong"))?;
    Ok((link, pong))
}

/// `KC.PING` answers `[id, epoch, bitmap]`: the epoch and how many slots the
/// peer claims.
fn parse_pong(frame: Frame) -> Option<(u64, usize)> {
    let Frame::Array(items) = frame else {
        return None;
    };
    let epoch = std::str::from_utf8(items.get(1)?.as_bytes()?)
        .ok()?
        .parse()
        .ok()?;
    let bitmap = items.get(2)?.as_bytes()?;
    let claimed = bitmap.iter().map(|b| b.count_ones() as usize).sum();
    Some((epoch, claimed))
}

async fn fetch_config(link: &mut BusClient, cluster: &ClusterState) {
    match link.call(&[b"KC.CONFIG"]).await {
        Ok(Frame::Bulk(json)) => match serde_json::from_slice::<ClusterConfig>(&json) {
            Ok(config) => {
                if cluster.adopt(config) {
                    debug!("adopted a newer configuration from a peer");
                }
            }
            Err(err) => warn!(%err, "peer sent an unreadable configuration"),
        },
        Ok(other) => warn!(?other, "unexpected KC.CONFIG reply"),
        Err(err) => debug!(%err, "KC.CONFIG failed"),
    }
}
