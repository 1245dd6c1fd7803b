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

use anyhow::Context;
use keycafe_core::tls::{self, Connector, TlsAcceptor};
use raft::prelude::ConfState;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info};

use crate::config::Config;
use crate::driver::{Driver, Handle, Start};
use crate::group::log::{self, RaftLog};
use crate::group::transport::Transport;
use crate::group::{Member, MemberId};
use crate::persist::DataDir;
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
    let group_addr = config.group_listen_addr()?;
    let group_listener = TcpListener::bind(group_addr).await.with_context(|| {
        format!(
            "cannot listen for the other coordinators on {group_addr} (group_port {})",
            config.group_port
        )
    })?;
    let me = bound_member(&config, [&node_listener, &http_listener, &group_listener])?;
    let data = DataDir::open(&config.data_dir)?;
    let members = match config.members.is_empty() {
        true => vec![me.clone()],
        false => config.members.clone(),
    };
    let bootstrap = (!config.join).then(|| {
        let voters: Vec<MemberId> = members.iter().map(|m| m.id).collect();
        ConfState::from((voters, Vec::<MemberId>::new()))
    });
    let raft_dir = config.data_dir.join("raft");
    // A lone coordinator's state from before groups can be taken over only
    // by a group of one: in a new group of three, another member could lead
    // first and begin an empty cluster. Refused before anything is written.
    anyhow::ensure!(
        raft_dir.exists() || members.len() == 1 || data.load()?.is_none(),
        "{} holds a lone coordinator's cluster.json from before coordinator groups: start \
         this coordinator alone (without members) to take it over, then add the others \
         through its API (docs/coordinator-group.md, \"Membership changes\")",
        config.data_dir.display()
    );
    let (log, recovery) = RaftLog::open(&raft_dir, bootstrap)?;
    // A lone coordinator's state from before the group starts the group's
    // log; once the log exists it is the truth, and cluster.json only a copy.
    let upgraded = match recovery.start {
        log::Start::Bootstrapped => data.load()?,
        log::Start::Joining | log::Start::Restarted => None,
    };
    info!(member = me.id, start = ?recovery.start, last_index = recovery.last_index, term = recovery.term, "opened the group's log");

    let node_addr = node_listener.local_addr()?;
    let http_addr = http_listener.local_addr()?;
    info!(nodes = %node_addr, tls = tls.is_some(), dashboard = %format!("http://{http_addr}/"), group = %group_addr, data_dir = %config.data_dir.display(), "coordinate-server ready");

    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    let (inputs, inputs_rx) = mpsc::channel(INPUT_QUEUE);
    let (group_inbox, group_rx) = mpsc::channel(INPUT_QUEUE);
    let secret = config.secret.clone().unwrap_or_default();
    let transport = Transport::start(
        me.clone(),
        group_listener,
        secret.clone(),
        group_tls(&config)?,
        group_inbox,
        stop.clone(),
    );
    let driver = Driver::new(Start {
        settings: config.settings(),
        me,
        log,
        members,
        upgraded,
        election_timeout: config.election_timeout(),
        data,
        transport,
    })?;

    let mut driver_task = tasks.spawn(driver.run(inputs_rx, group_rx, stop.clone()));
    let secret: std::sync::Arc<str> = secret.into();
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

/// This coordinator as a member of its group: its entry in `members`, or,
/// alone or joining, its announced host with the ports actually bound (they
/// may have been 0, in tests).
fn bound_member(config: &Config, listeners: [&TcpListener; 3]) -> anyhow::Result<Member> {
    let me = config.me()?;
    if config.members.iter().any(|m| m.id == config.id) {
        return Ok(me);
    }
    let [nodes, http, group] = listeners.map(|l| l.local_addr().map(|a| a.port()));
    let host = keycafe_core::addr::split(&me.node_addr).map_or("127.0.0.1", |(host, _)| host);
    let join = keycafe_core::addr::join;
    Ok(Member {
        id: me.id,
        group_addr: join(host, group?),
        node_addr: join(host, nodes?),
        http_addr: Some(join(host, http?)),
    })
}

/// Mutual TLS between the coordinators, with the certificate files the
/// node port uses: the acceptor, and a connector presenting our own.
fn group_tls(config: &Config) -> anyhow::Result<Option<(TlsAcceptor, Connector)>> {
    let (Some(acceptor), Some(cert), Some(key), Some(ca)) = (
        config.tls_acceptor()?,
        &config.tls_cert_file,
        &config.tls_key_file,
        &config.tls_ca_cert_file,
    ) else {
        return Ok(None);
    };
    let client = tls::client_config(ca, Some((cert.as_path(), key.as_path())))
        .context("loading the TLS settings for the group's links")?;
    Ok(Some((acceptor, Connector::new(client))))
}
