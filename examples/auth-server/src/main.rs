//! `auth-server`: reads [`auth_server::Config`] from the environment, binds,
//! and serves until SIGINT or SIGTERM. See the crate's README for the
//! variables.

use std::io::IsTerminal;

use anyhow::Context;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args()
        .skip(1)
        .any(|arg| arg == "-h" || arg == "--help")
    {
        println!("{}", HELP);
        return Ok(());
    }
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let config = auth_server::Config::from_env()?;
    let listener = tokio::net::TcpListener::bind(config.listen_addr)
        .await
        .with_context(|| format!("binding {}", config.listen_addr))?;
    auth_server::run(config, listener, shutdown_signal()).await
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutdown signal received");
}

const HELP: &str = "\
auth-server: the Keycafe example's JSON API (login, profile, logout)

Usage: auth-server            (configured through environment variables)

  AUTH_SERVER_ADDR            listen address            [127.0.0.1:8080]
  DATABASE_URL                SQLite database           [sqlite://auth-example.db?mode=rwc]
  KEYCAFE_SEEDS               Keycafe node(s), a,b,...  [127.0.0.1:9814]
  KEYCAFE_PASSWORD            Keycafe AUTH password     [none]
  KEYCAFE_TIMEOUT_MS          Keycafe connect/reply     [1000]
  AUTH_SESSION_IDLE_SECS      idle session expiry       [1800]
  AUTH_SESSION_ABSOLUTE_SECS  absolute session expiry   [43200]
  AUTH_USER_CACHE_TTL_SECS    user cache TTL            [300]
  AUTH_LOGIN_MAX_FAILURES     failures before 429       [5]
  AUTH_LOGIN_WINDOW_SECS      failure counting window   [900]
  AUTH_TRUSTED_PROXIES        IPs whose X-Forwarded-For is believed, a,b,... [none]
  RUST_LOG                    log filter                [info]";
