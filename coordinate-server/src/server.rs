//! [`run`]: start every part of the coordinator, and stop them all cleanly.
//!
//! Shutdown follows mini-redis: dropping a broadcast sender tells every task
//! to stop, and each node connection holds a clone of an mpsc sender that it
//! drops when it ends, so [`run`] knows all of them are done when the
//! receiver sees the channel close. The driver gets a last tick before it
//! stops, so `migration_done` reports already received are persisted.

use std::future::Future;
use std::time::Instant;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};
use tracing::{error, info};

use crate::config::Config;
use crate::driver::{Driver, Handle};
use crate::persist::DataDir;
use crate::state::Coordinator;
use crate::{http, nodes};

/// Inputs (node messages, HTTP requests) queued for the driver.
const INPUT_QUEUE: usize = 4096;

/// Runs the coordinator: nodes connect on `node_listener`, the dashboard is
/// served on `http_listener`, until `shutdown` completes or the state can no
/// longer be persisted (then the error is returned).
pub async fn run(
    config: Config,
    node_listener: TcpListener,
    http_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    config.validate()?;
    let data = DataDir::open(&config.data_dir)?;
    let restored = data.load()?;
    let (coordinator, effects) = Coordinator::new(config.settings(), restored, Instant::now());
    let mut driver = Driver::new(coordinator, data);
    // The restart's epoch bump is on disk before anyone can connect.
    driver
        .execute(effects)
        .await
        .context("persisting the restarted state")?;

    let node_addr = node_listener.local_addr()?;
    let http_addr = http_listener.local_addr()?;
    info!(nodes = %node_addr, dashboard = %format!("http://{http_addr}/"), data_dir = %config.data_dir.display(), "coordinate-server ready");

    let (notify_shutdown, _) = broadcast::channel::<()>(1);
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let (inputs, inputs_rx) = mpsc::channel(INPUT_QUEUE);

    let mut driver_task = tokio::spawn(driver.run(inputs_rx, notify_shutdown.subscribe()));
    let nodes_task = tokio::spawn(nodes::serve(
        node_listener,
        inputs.clone(),
        notify_shutdown.clone(),
        done_tx.clone(),
    ));
    let mut http_shutdown = notify_shutdown.subscribe();
    let mut http_task = tokio::spawn(http::serve(
        http_listener,
        Handle::new(inputs),
        async move {
            let _ = http_shutdown.recv().await;
        },
    ));

    let mut outcome = Ok(());
    let mut driver_result = None;
    tokio::select! {
        _ = shutdown => info!("shutting down"),
        result = &mut driver_task => driver_result = Some(result),
        result = &mut http_task => {
            outcome = match result {
                Ok(Ok(())) => Err(anyhow::anyhow!("the HTTP server stopped unexpectedly")),
                Ok(Err(err)) => Err(anyhow::Error::from(err).context("HTTP server")),
                Err(err) => Err(anyhow::Error::from(err).context("HTTP server task")),
            };
        }
    }

    // Send, not only drop: the listener holds a clone of the sender (to
    // subscribe each new connection), so the channel does not close yet.
    let _ = notify_shutdown.send(());
    drop(notify_shutdown);
    drop(done_tx);
    let driver_result = match driver_result {
        Some(result) => result,
        None => driver_task.await,
    };
    match driver_result {
        Ok(Ok(())) => {}
        Ok(Err(err)) => outcome = outcome.and(Err(err)),
        Err(err) => {
            outcome = outcome.and(Err(anyhow::Error::from(err).context("coordinator task")))
        }
    }
    let _ = nodes_task.await;
    let _ = done_rx.recv().await;
    if !http_task.is_finished() {
        let _ = http_task.await;
    }
    match &outcome {
        Ok(()) => info!("stopped"),
        Err(err) => error!("stopped: {err:#}"),
    }
    outcome
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            error!(%err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                error!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
