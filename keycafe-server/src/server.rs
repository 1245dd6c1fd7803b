//! The listener: accept connections, run background work, shut down cleanly.
//!
//! Shutdown follows mini-redis: a broadcast channel tells every task to stop,
//! and each task holds a clone of an mpsc sender that it drops when it ends,
//! so [`run`] knows everyone is done when the receiver sees the channel close.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};
use tracing::{debug, info, warn};

use crate::cluster;
use crate::config::Config;
use crate::connection::Connection;
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

    let (notify_shutdown, _) = broadcast::channel::<()>(1);
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);

    spawn_task(
        active_expiry(shared.clone(), notify_shutdown.subscribe()),
        &done_tx,
    );
    if let Some(bus) = bus_listener {
        info!(bus = %bus.local_addr()?, coordinator = ?shared.config.coordinator, "cluster mode");
        let listen = cluster::bus::listen(
            bus,
            shared.clone(),
            notify_shutdown.subscribe(),
            done_tx.clone(),
        );
        spawn_task(listen, &done_tx);
        spawn_task(
            cluster::coordinator::run(shared.clone(), notify_shutdown.subscribe()),
            &done_tx,
        );
        spawn_task(
            cluster::bus::gossip(shared.clone(), notify_shutdown.subscribe()),
            &done_tx,
        );
        spawn_task(
            cluster::migration::run(shared.clone(), notify_shutdown.subscribe()),
            &done_tx,
        );
        spawn_task(
            crate::replication::replica::run(shared.clone(), notify_shutdown.subscribe()),
            &done_tx,
        );
    }

    tokio::select! {
        result = accept_loop(&listener, &shared, &notify_shutdown, &done_tx) => result?,
        _ = shutdown => info!("shutting down"),
        _ = left_the_cluster(&shared) => info!("left the cluster; shutting down"),
    }

    drop(notify_shutdown);
    drop(done_tx);
    let _ = done_rx.recv().await;
    info!("stopped");
    Ok(())
}

async fn accept_loop(
    listener: &TcpListener,
    shared: &Arc<Shared>,
    notify_shutdown: &broadcast::Sender<()>,
    done: &mpsc::Sender<()>,
) -> anyhow::Result<()> {
    let mut backoff = Duration::from_millis(10);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => {
                backoff = Duration::from_millis(10);
                accepted
            }
            Err(err) => {
                // Out of file descriptors and the like: wait and retry rather
                // than spin or give up on every other client.
                warn!(%err, "accept failed; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let stats = &shared.stats;
        stats.connections_received.fetch_add(1, Ordering::Relaxed);
        stats.connected_clients.fetch_add(1, Ordering::Relaxed);
        let connection = Connection::new(stream, shared.clone());
        let shutdown = notify_shutdown.subscribe();
        let shared = shared.clone();
        let done = done.clone();
        tokio::spawn(async move {
            if let Err(err) = connection.run(shutdown).await {
                debug!(%peer, %err, "connection ended with an error");
            }
            shared
                .stats
                .connected_clients
                .fetch_sub(1, Ordering::Relaxed);
            drop(done);
        });
    }
}

/// Spawns a background task that `run` waits for at shutdown.
fn spawn_task(task: impl Future<Output = ()> + Send + 'static, done: &mpsc::Sender<()>) {
    let done = done.clone();
    tokio::spawn(async move {
        task.await;
        drop(done);
    });
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
async fn active_expiry(shared: Arc<Shared>, mut shutdown: broadcast::Receiver<()>) {
    let period = Duration::from_millis(shared.config.expiry_interval_ms);
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.recv() => return,
        }
        let removed = shared.store.expire_cycle(crate::store::now_ms());
        if removed > 0 {
            debug!(removed, "active expiry");
        }
    }
}
