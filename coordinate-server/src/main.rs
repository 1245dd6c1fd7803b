//! `coordinate-server`: parse the configuration, bind, and run the coordinator.

use anyhow::Context;
use clap::Parser;
use coordinate_server::config::Flags;
use keycafe_core::process::{init_tracing, shutdown_signal};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Flags::parse().into_config()?;
    init_tracing(&config.log_level)?;

    let node_addr = config.node_addr()?;
    let http_addr = config.http_addr()?;
    let nodes = TcpListener::bind(node_addr)
        .await
        .with_context(|| format!("cannot listen for nodes on {node_addr}"))?;
    let http = TcpListener::bind(http_addr)
        .await
        .with_context(|| format!("cannot serve the dashboard on {http_addr}"))?;
    coordinate_server::run(config, nodes, http, shutdown_signal()).await
}
