//! The listeners: accept connections, run background work, shut down
//! cleanly.
//!
//! Shutdown uses one [`CancellationToken`]: every task holds a clone and
//! stops when it is cancelled. Every task, connections included, is spawned
//! on one [`TaskTracker`], so [`run`] knows everyone is done when the
//! tracker is empty.
//!
//! Clients may arrive on two listeners ([`Listeners`]): plain TCP, and TLS
//! (`tls_port`). The bus listener speaks TLS when `tls_cluster` is on, and
//! then takes only members that present a certificate from the cluster's
//! CA. A TLS connection's handshake runs on the connection's own
//! task, under [`TLS_HANDSHAKE_TIMEOUT`], so a client that stalls in it (or
//! speaks plain text to the TLS port) holds up nobody else; a failed
//! handshake is logged at debug level and the socket closed.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use keycafe_core::tls::TlsAcceptor;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::clients::{self, Peer};
use crate::cluster;
use crate::cluster::coordinator::Registration;
use crate::config::Config;
use crate::connection::{Connection, Stream};
use crate::metrics;
use crate::persist::{self, Persistence};
use crate::replication;
use crate::state::Shared;

/// Longest a TLS client may take to complete its handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The sockets a node serves clients on. At least one must be given.
#[derive(Debug)]
pub struct Listeners {
    /// Plain TCP: the native protocol and RESP2.
    pub plain: Option<TcpListener>,
    /// The same protocols over TLS; needs `tls_cert_file` and `tls_key_file`.
    pub tls: Option<TcpListener>,
}

/// Serves clients on `listener` until `shutdown` completes, then waits for
/// every connection to finish its current batch.
///
/// `listener` is the client port (`service_port`). It speaks TLS when the
/// configuration says so ([`Config::client_port_is_tls`]); otherwise a
/// separate TLS listener is opened on `tls_port` if one is configured.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let listeners = if config.client_port_is_tls() {
        Listeners {
            plain: None,
            tls: Some(listener),
        }
    } else {
        let tls = match config.tls_port {
            Some(port) => {
                let addr = config.listen_addr(port)?;
                let tls = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen for TLS on {addr}"))?;
                Some(tls)
            }
            None => None,
        };
        Listeners {
            plain: Some(listener),
            tls,
        }
    };
    run_on(config, listeners, shutdown).await
}

/// [`run`] on listeners the caller has bound: tests bind both on port 0.
pub async fn run_on(
    mut config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let tls = config.tls_acceptor()?;
    anyhow::ensure!(
        listeners.tls.is_none() || tls.is_some(),
        "a TLS listener needs tls_cert_file and tls_key_file"
    );
    // The client port actually bound (it may have been 0): the plain one,
    // or on a TLS-only node the TLS one. What the node announces is made
    // from it unless `announce_host` / `announce_port` say otherwise.
    let bound = match (&listeners.plain, &listeners.tls) {
        (Some(plain), _) => plain.local_addr()?,
        (None, Some(tls)) => tls.local_addr()?,
        (None, None) => anyhow::bail!("a node needs a plain or a TLS listener for clients"),
    };
    config.bind = bound.ip().to_string();
    config.service_port = bound.port();
    if let Some(tls) = &listeners.tls {
        config.tls_port = Some(tls.local_addr()?.port());
    }
    let bus_listener = match config.coordinator {
        Some(_) => {
            let addr = config.listen_addr(config.bus_port())?;
            let bus = TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on cluster bus {addr}"))?;
            config.cluster_port = Some(bus.local_addr()?.port());
            Some(bus)
        }
        None => None,
    };
    let metrics_listener = metrics::bind(&config).await?;
    if let Some(listener) = &metrics_listener {
        // The port bound, for CONFIG GET metrics-port (it may have been 0).
        config.metrics_port = Some(listener.local_addr()?.port());
    }
    let shared = Arc::new(Shared::new(config)?);
    let tls_addr = listeners
        .tls
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()?;
    info!(addr = %bound, announced = %shared.config.announced_client_addr(), tls = ?tls_addr, node_id = %shared.node_id, "keycafe-server ready");

    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();

    tasks.spawn(active_expiry(shared.clone(), stop.clone()));
    tasks.spawn(client_clock(shared.clone(), stop.clone()));
    if let Some(persistence) = &shared.persistence {
        tasks.spawn(persistence_cron(
            shared.clone(),
            persistence.clone(),
            stop.clone(),
        ));
        if let Some(cluster) = &shared.cluster {
            tasks.spawn(remember_epochs(
                cluster.clone(),
                persistence.clone(),
                stop.clone(),
            ));
            tasks.spawn(drop_foreign_keys(
                shared.clone(),
                cluster.clone(),
                stop.clone(),
            ));
        }
    }
    if let (Some(bus), Some(cluster)) = (bus_listener, shared.cluster.clone()) {
        info!(bus = %bus.local_addr()?, coordinator = ?shared.config.coordinator, tls = cluster.tls.is_some(), "cluster mode");
        // On a TLS cluster, only members with a certificate from the CA.
        let bus_tls = cluster.tls.as_ref().map(|tls| tls.acceptor.clone());
        tasks.spawn(accept_loop(
            bus,
            Port::Bus,
            bus_tls,
            shared.clone(),
            stop.clone(),
            tasks.clone(),
        ));
        let node_timeout = Duration::from_millis(shared.config.node_timeout_ms);
        let node = {
            let shared = shared.clone();
            Registration {
                primary: shared.config.replica_of.clone(),
                node_timeout,
                link_changes: shared.replication.link_changes(),
                report: Box::new(move || shared.report()),
            }
        };
        tasks.spawn(cluster::coordinator::run(
            cluster.clone(),
            node,
            stop.clone(),
        ));
        tasks.spawn(cluster::bus::gossip(
            cluster.clone(),
            node_timeout,
            stop.clone(),
        ));
        let store = shared.store.clone();
        tasks.spawn(cluster::migration::run(
            cluster.clone(),
            store,
            stop.clone(),
        ));
        if let Some(parts) = shared.replication_parts() {
            tasks.spawn(replication::replica::run(parts, stop.clone()));
        }
    }
    if let Some(listener) = metrics_listener {
        info!(metrics = %format!("http://{}/metrics", listener.local_addr()?), "metrics port");
        tasks.spawn(metrics::serve(
            listener,
            shared.clone(),
            stop.clone(),
            tasks.clone(),
        ));
    }
    for (listener, tls) in [(listeners.plain, None), (listeners.tls, tls)] {
        if let Some(listener) = listener {
            tasks.spawn(accept_loop(
                listener,
                Port::Client,
                tls,
                shared.clone(),
                stop.clone(),
                tasks.clone(),
            ));
        }
    }
    tokio::select! {
        _ = shutdown => info!("shutting down"),
        _ = left_the_cluster(&shared) => info!("left the cluster; shutting down"),
    }

    if shared.persistence.is_some() {
        let_replicas_catch_up(&shared).await;
    }
    stop.cancel();
    tasks.close();
    tasks.wait().await;
    // Last: every connection is gone, so nothing changes any more.
    if let Some(persistence) = &shared.persistence {
        let position = shared.replication.log.position();
        let position = persist::Position {
            replid: position.replid,
            offset: position.offset,
        };
        persistence.shutdown(&shared.store, position).await;
    }
    info!("stopped");
    Ok(())
}

/// Which port a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Port {
    /// Clients: counted, and limited to `maxclients`.
    Client,
    /// The cluster bus: other nodes, bus commands only, after proving the
    /// cluster secret; limited to `bus_maxclients`.
    Bus,
}

/// Accepts connections until `stop` is cancelled, each served on its own
/// task (over TLS when `tls` is given).
async fn accept_loop(
    listener: TcpListener,
    port: Port,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    stop: CancellationToken,
    tasks: TaskTracker,
) {
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.cancelled() => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                backoff = Duration::from_millis(10);
                accepted
            }
            Err(err) => {
                // Out of file descriptors and the like: wait and retry rather
                // than spin or give up on every other client.
                warn!(%err, ?port, "accept failed; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        match port {
            Port::Client => {
                let stats = &shared.stats;
                stats.connections_received.fetch_add(1, Ordering::Relaxed);
                let open = stats.connected_clients.fetch_add(1, Ordering::Relaxed);
                if open >= shared.runtime.maxclients() {
                    // Refused before it costs a task or a buffer: a flood of
                    // silent connections cannot hold more than maxclients.
                    stats.connected_clients.fetch_sub(1, Ordering::Relaxed);
                    stats.rejected_connections.fetch_add(1, Ordering::Relaxed);
                    if tls.is_none() {
                        refuse_at_accept(stream);
                    }
                    continue;
                }
            }
            Port::Bus => {
                let open = shared.stats.bus_connections.fetch_add(1, Ordering::Relaxed);
                if open >= shared.config.bus_maxclients {
                    shared.stats.bus_connections.fetch_sub(1, Ordering::Relaxed);
                    debug!(%peer, "bus connection refused: bus_maxclients reached");
                    continue;
                }
            }
        }
        // After the limits: a refused connection costs no more than before.
        let (socket, peer) = (peer, peer_of(&stream, peer));
        let (shared, stop, tls) = (shared.clone(), stop.clone(), tls.clone());
        tasks.spawn(async move {
            let addr = peer.addr.clone();
            let served = match tls {
                None => serve(stream, port, (peer, socket), &shared, stop).await,
                Some(acceptor) => match tls_handshake(&acceptor, stream, &addr, &stop).await {
                    Some(stream) => serve(stream, port, (peer, socket), &shared, stop).await,
                    None => Ok(()),
                },
            };
            if let Err(err) = served {
                debug!(peer = %addr, %err, ?port, "connection ended with an error");
            }
            let open = match port {
                Port::Client => &shared.stats.connected_clients,
                Port::Bus => &shared.stats.bus_connections,
            };
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// What a client over `maxclients` is told, as Redis tells it: a RESP
/// error, which a native client's hello also reads as a refusal (no native
/// frame starts with `-`).
const MAX_CLIENTS_REACHED: &[u8] = b"-ERR max number of clients reached\r\n";

/// Best effort, without waiting: the error goes out if the socket takes it
/// at once (a fresh socket does), and the socket is closed. On a TLS port
/// the socket is just closed: running a handshake to say why would cost what
/// the limit is there to save.
fn refuse_at_accept(stream: TcpStream) {
    let _ = stream.try_write(MAX_CLIENTS_REACHED);
}

/// What CLIENT LIST shows of where a connection comes from.
fn peer_of(stream: &TcpStream, peer: SocketAddr) -> Peer {
    #[cfg(unix)]
    let fd = std::os::fd::AsRawFd::as_raw_fd(stream);
    #[cfg(not(unix))]
    let fd = -1;
    Peer {
        addr: peer.to_string(),
        laddr: stream
            .local_addr()
            .map_or_else(|_| "?:0".to_string(), |addr| addr.to_string()),
        fd,
    }
}

/// Serves one connection on `port` until it ends.
async fn serve<S: Stream>(
    stream: S,
    port: Port,
    (peer, socket): (Peer, SocketAddr),
    shared: &Arc<Shared>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let connection = match port {
        Port::Client => Connection::new(stream, shared.clone(), peer),
        Port::Bus => Connection::for_bus(stream, shared.clone(), peer),
    }
    .with_addr(socket);
    connection.run(stop).await
}

/// Runs the server side of a TLS handshake. `None` (and the socket closed)
/// if it fails, takes longer than [`TLS_HANDSHAKE_TIMEOUT`], or the node
/// shuts down meanwhile. A failure is the client's business (a plain-text
/// client, an untrusted or missing certificate), so it is logged at debug.
async fn tls_handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    peer: &str,
    stop: &CancellationToken,
) -> Option<keycafe_core::tls::server::TlsStream<TcpStream>> {
    let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream));
    tokio::select! {
        done = handshake => match done {
            Ok(Ok(stream)) => Some(stream),
            Ok(Err(err)) => {
                debug!(%peer, %err, "TLS handshake failed; closing");
                None
            }
            Err(_) => {
                debug!(%peer, "TLS handshake timed out; closing");
                None
            }
        },
        _ = stop.cancelled() => None,
    }
}

/// Completes once this node has asked to leave (CLUSTER LEAVE) and a
/// configuration without it has arrived: its slots have all moved away.
async fn left_the_cluster(shared: &Shared) {
    let Some(cluster) = shared.cluster.as_ref() else {
        return std::future::pending().await;
    };
    let mut changed = cluster.subscribe();
    loop {
        let view = cluster.view();
        if cluster.leaving.load(Ordering::Relaxed) && view.epoch() > 0 && view.me.is_none() {
            return;
        }
        if changed.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// Keeps the clock that CLIENT LIST's idle times are measured with.
async fn client_clock(shared: Arc<Shared>, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(clients::CLOCK_TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => shared.clients.tick(),
            _ = stop.cancelled() => return,
        }
    }
}

/// How long a stopping primary waits for its replicas to catch up.
const CATCH_UP_AT_STOP: Duration = Duration::from_secs(2);

/// Before a primary with replicas stops: writes are paused (and with them
/// the stream's pings) and the replicas given a moment to acknowledge
/// everything, as Redis 7 does at shutdown. Restarted from their data
/// directories, primary and replicas then stand at the same offset of one
/// history, and the replicas continue it instead of copying everything.
async fn let_replicas_catch_up(shared: &Shared) {
    let replication = &shared.replication;
    let replicas = replication.replicas().len();
    if shared.cluster.is_none() || replicas == 0 {
        return;
    }
    replication.gate.pause(CATCH_UP_AT_STOP).await;
    let caught_up = replication
        .wait_for_acks(replicas, Some(CATCH_UP_AT_STOP))
        .await;
    info!(caught_up, replicas, "replicas caught up before stopping");
}

/// Runs the save rules (see `persist::rules`).
async fn persistence_cron(
    shared: Arc<Shared>,
    persistence: Arc<Persistence>,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(persist::CRON);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => persistence.cron(&shared.store),
            _ = stop.cancelled() => return,
        }
    }
}

/// Keeps the newest adopted configuration epoch in the data directory.
async fn remember_epochs(
    cluster: Arc<cluster::ClusterState>,
    persistence: Arc<Persistence>,
    stop: CancellationToken,
) {
    let mut changed = cluster.subscribe();
    loop {
        tokio::select! {
            result = changed.changed() => if result.is_err() { return },
            _ = stop.cancelled() => return,
        }
        let epoch = *changed.borrow_and_update();
        let persistence = persistence.clone();
        // A small file, written through fsync: off the async threads.
        let _ = tokio::task::spawn_blocking(move || persistence.note_epoch(epoch)).await;
    }
}

/// Once, at the first configuration this node is in after a start with a
/// data directory: drops the keys of slots another node owns (see
/// `ClusterView::foreign_slots`), slot by slot, checking each slot again
/// against the newest view just before.
async fn drop_foreign_keys(
    shared: Arc<Shared>,
    cluster: Arc<cluster::ClusterState>,
    stop: CancellationToken,
) {
    let mut changed = cluster.subscribe();
    let view = loop {
        tokio::select! {
            result = changed.changed() => if result.is_err() { return },
            _ = stop.cancelled() => return,
        }
        let view = cluster.view();
        if view.me.is_some() {
            break view;
        }
    };
    let mut dropped = 0;
    for slot in view.foreign_slots() {
        loop {
            let now_view = cluster.view();
            let still_foreign = !now_view.is_replica()
                && matches!(now_view.state(slot), cluster::view::SlotState::Other(_));
            let keys = match still_foreign {
                true => shared.store.keys_in_slot(slot, 1000),
                false => Vec::new(),
            };
            if keys.is_empty() {
                break;
            }
            let now = crate::store::now_ms();
            for key in keys {
                dropped += usize::from(shared.store.remove(&key, now));
            }
            tokio::task::yield_now().await;
        }
    }
    if dropped > 0 {
        warn!(
            dropped,
            "dropped the keys this node held in slots other nodes own"
        );
    }
}

/// Reclaims expired keys that nobody touches, every `expiry_interval_ms`.
async fn active_expiry(shared: Arc<Shared>, stop: CancellationToken) {
    let period = Duration::from_millis(shared.config.expiry_interval_ms);
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.cancelled() => return,
        }
        let removed = shared.store.expire_cycle(crate::store::now_ms());
        if removed > 0 {
            debug!(removed, "active expiry");
        }
    }
}
