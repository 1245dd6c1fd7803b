//! `auth-server`: reads [`auth_server::Config`] from the environment, binds,
//! and serves until SIGINT or SIGTERM. See the crate's README for the
//! variables.

use anyhow::Context;
use keycafe_core::process::{EnvConfig, init_tracing, shutdown_signal};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args()
        .skip(1)
        .any(|arg| arg == "-h" || arg == "--help")
    {
        println!("{}", HELP);
        return Ok(());
    }
    init_tracing("info")?;

    let config = auth_server::Config::from_env()?;
    let listener = tokio::net::TcpListener::bind(config.listen_addr)
        .await
        .with_context(|| format!("binding {}", config.listen_addr))?;
    auth_server::run(config, listener, shutdown_signal()).await
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
  AUTH_LOGIN_MAX_FAILURES     failures of one account from one address before 429 [5]
  AUTH_LOGIN_MAX_ADDRESS_FAILURES  failures from one address before 429 [20]
  AUTH_LOGIN_WINDOW_SECS      failure counting window   [900]
  AUTH_LOGIN_ACCOUNT_SLOW_AFTER  failures of one account before its logins slow down [20]
  AUTH_LOGIN_ACCOUNT_DELAY_MS    ... by this much each  [1000]
  AUTH_INTERNAL_SECRET        shared with auth-web; with it in X-Internal-Auth a
                              request may name the client in X-Forwarded-For [none]
  AUTH_TRUSTED_PROXIES        if set, only these peer IPs may do so, a,b,... [none]
  RUST_LOG                    log filter                [info]";
