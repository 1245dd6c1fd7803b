//! [`run`]: start every part of the coordinator, and stop them all cleanly.
//!
//! Shutdown is one [`CancellationToken`]: [`run`] cancels it when the
//! `shutdown` future completes (or a part of the coordinator fails), and
//! every task watches a clone of it — the driver, the node listener, each
//! node connection, and the HTTP server's graceful shutdown. Every task runs
//! on one [`TaskTracker`], so once the token is cancelled [`run`] closes the
//! tracker and waits for it to empty: no connection outlives `run`. The
//! driver gets a last tick before it stops, so `migration_done` reports
//! already received are persisted.

use std::future::Future;
use std::time::Instant;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
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
    let tls = config.tls_acceptor()?;
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
    info!(nodes = %node_addr, tls = tls.is_some(), dashboard = %format!("http://{http_addr}/"), data_dir = %config.data_dir.display(), "coordinate-server ready");

    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    let (inputs, inputs_rx) = mpsc::channel(INPUT_QUEUE);

    let mut driver_task = tasks.spawn(driver.run(inputs_rx, stop.clone()));
    let secret: std::sync::Arc<str> = config.secret.as_deref().unwrap_or_default().into();
    tasks.spawn(nodes::serve(
        node_listener,
        tls,
        secret,
        inputs.clone(),
        stop.clone(),
        tasks.clone(),
    ));
    let mut http_task = tasks.spawn(http::serve(
        http_listener,
        Handle::new(inputs),
        &config,
        stop.clone().cancelled_owned(),
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

    stop.cancel();
    tasks.close();
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
    // The listeners, every node connection and the HTTP server (which lets
    // requests in progress finish).
    tasks.wait().await;
    match &outcome {
        Ok(()) => info!("stopped"),
        Err(err) => error!("stopped: {err:#}"),
    }
    outcome
}
