//! `keycafe-server`: parse the configuration, bind, and run the node.

use anyhow::Context;
use clap::Parser;
use keycafe_server::config::Flags;
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

    let addr = config.client_addr()?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    keycafe_server::run(config, listener, keycafe_server::shutdown_signal()).await
}
