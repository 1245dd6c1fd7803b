//! `coordinate-server`: parse the configuration, bind, and run the coordinator.

use anyhow::Context;
use clap::Parser;
use coordinate_server::config::Flags;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Flags::parse().into_config()?;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log_level))
        .context("invalid log level")?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let node_addr = config.node_addr()?;
    let http_addr = config.http_addr()?;
    let nodes = TcpListener::bind(node_addr)
        .await
        .with_context(|| format!("cannot listen for nodes on {node_addr}"))?;
    let http = TcpListener::bind(http_addr)
        .await
        .with_context(|| format!("cannot serve the dashboard on {http_addr}"))?;
    coordinate_server::run(config, nodes, http, coordinate_server::shutdown_signal()).await
}
