//! The listeners: accept connections, run background work, shut down
//! cleanly.
//!
//! Shutdown uses one [`CancellationToken`]: every task holds a clone and
//! stops when it is cancelled. Every task, connections included, is spawned
//! on one [`TaskTracker`], so [`run`] knows everyone is done when the
//! tracker is empty.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::cluster;
use crate::cluster::coordinator::Registration;
use crate::config::Config;
use crate::connection::Connection;
use crate::replication;
use crate::state::Shared;

/// Serves clients on `listener` until `shutdown` completes, then waits for
/// every connection to finish its current batch.
pub async fn run(
    mut config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    // Advertise the address actually bound (the port may have been 0).
    let local = listener.local_addr()?;
    config.bind = local.ip().to_string();
    config.service_port = local.port();
    let bus_listener = match config.coordinator {
        Some(_) => {
            let addr = format!("{}:{}", config.bind, config.bus_port());
            let bus = TcpListener::bind(&addr)
                .await
                .with_context(|| format!("cannot listen on cluster bus {addr}"))?;
            config.cluster_port = Some(bus.local_addr()?.port());
            Some(bus)
        }
        None => None,
    };
    let shared = Arc::new(Shared::new(config));
    info!(addr = %local, node_id = %shared.node_id, "keycafe-server ready");

    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();

    tasks.spawn(active_expiry(shared.clone(), stop.clone()));
    if let (Some(bus), Some(cluster)) = (bus_listener, shared.cluster.clone()) {
        info!(bus = %bus.local_addr()?, coordinator = ?shared.config.coordinator, "cluster mode");
        tasks.spawn(accept_loop(
            bus,
            Port::Bus,
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
    let clients = accept_loop(
        listener,
        Port::Client,
        shared.clone(),
        stop.clone(),
        tasks.clone(),
    );
    tokio::select! {
        _ = clients => {}
        _ = shutdown => info!("shutting down"),
        _ = left_the_cluster(&shared) => info!("left the cluster; shutting down"),
    }

    stop.cancel();
    tasks.close();
    tasks.wait().await;
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
/// task.
async fn accept_loop(
    listener: TcpListener,
    port: Port,
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
        let connection = match port {
            Port::Client => {
                let stats = &shared.stats;
                stats.connections_received.fetch_add(1, Ordering::Relaxed);
                stats.connected_clients.fetch_add(1, Ordering::Relaxed);
                Connection::new(stream, shared.clone())
            }
            Port::Bus => {
                let open = shared.stats.bus_connections.fetch_add(1, Ordering::Relaxed);
                if open >= shared.config.bus_maxclients {
                    shared.stats.bus_connections.fetch_sub(1, Ordering::Relaxed);
                    debug!(%peer, "bus connection refused: bus_maxclients reached");
                    continue;
                }
                Connection::for_bus(stream, shared.clone())
            }
        };
        let (shared, stop) = (shared.clone(), stop.clone());
        tasks.spawn(async move {
            if let Err(err) = connection.run(stop).await {
                debug!(%peer, %err, ?port, "connection ended with an error");
            }
            let open = match port {
                Port::Client => &shared.stats.connected_clients,
                Port::Bus => &shared.stats.bus_connections,
            };
            open.fetch_sub(1, Ordering::Relaxed);
        });
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
