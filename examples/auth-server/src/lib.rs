//! # auth-server
//!
//! The JSON API of Keycafe's full-stack example: users live in SQLite (with
//! argon2id password hashes), and everything short-lived lives in Keycafe —
//! login sessions, a cache of user rows for login look-ups, and the counters
//! that throttle password guessing.
//!
//! | route | what it does |
//! |---|---|
//! | `POST /api/v1/login` | email + password → an opaque session token |
//! | `GET /api/v1/user` | the signed-in user's profile (`Authorization: Bearer`) |
//! | `GET /api/v1/session` | where that session lives in Keycafe: key, slot, node, TTL |
//! | `POST /api/v1/logout` | ends the session |
//! | `GET /healthz` | checks SQLite and Keycafe |
//!
//! The binary is a thin `main.rs` over [`run`]; tests call the same [`run`]
//! (or [`Server::start`] and [`Server::serve`], to look at [`Stats`]) on a
//! port-0 listener.
//!
//! ```no_run
//! use keycafe_core::process::EnvConfig;
//!
//! # async fn demo() -> anyhow::Result<()> {
//! let config = auth_server::Config::from_env()?;
//! let listener = tokio::net::TcpListener::bind(config.listen_addr).await?;
//! auth_server::run(config, listener, keycafe_core::process::shutdown_signal()).await
//! # }
//! ```
//!
//! # Layout
//!
//! - [`config`]: [`Config`], its defaults and the environment variables.
//! - [`api`]: the JSON bodies of every route, shared with clients (auth-web).
//! - [`http`]: the axum router, the handlers and their extractors.
//! - [`error`]: [`AppError`], which logs the cause and answers a safe message.
//! - [`password`]: argon2id hashing and verification, off the async threads.
//! - [`db`]: the SQLite pool and `sqlx::migrate!` at start-up.
//! - [`users`]: user rows: SQL look-up by email and the cache-aside path.
//! - [`keycafe`]: the shared Keycafe handle, connected lazily and re-tried.
//! - [`cache`]: the user-row cache in Keycafe.
//! - [`sessions`]: tokens, session records, sliding idle and absolute expiry.
//! - [`throttle`]: failed-login counters and the throttling policy.
//! - [`state`]: [`AppState`] shared by the handlers, and [`Stats`].

pub mod api;
pub mod cache;
pub mod config;
pub mod db;
pub mod error;
pub mod http;
pub mod keycafe;
pub mod password;
pub mod sessions;
pub mod state;
pub mod throttle;
pub mod users;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

pub use config::Config;
pub use error::AppError;
pub use state::{AppState, Stats};

/// Starts the API with `config` on `listener` and serves until `shutdown`
/// completes; then stops accepting and waits for requests in flight.
///
/// Fails if the database cannot be opened or migrated. Keycafe, by
/// contrast, may be down at start-up: requests that need it answer 503 until
/// it is reachable.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    Server::start(config).await?.serve(listener, shutdown).await
}

/// A started (database open and migrated) but not yet serving API.
///
/// [`run`] is `Server::start` then [`Server::serve`]; the two steps are
/// public so that tests can keep hold of [`Server::stats`].
pub struct Server {
    state: AppState,
}

impl Server {
    /// Opens and migrates the database and prepares the Keycafe handle.
    pub async fn start(config: Config) -> anyhow::Result<Server> {
        config.validate()?;
        let pool = db::connect(&config.database_url).await?;
        let state = AppState::new(config, pool).await?;
        Ok(Server { state })
    }

    /// The counters this server keeps (SQLite look-ups, cache hits, ...).
    pub fn stats(&self) -> Arc<Stats> {
        self.state.stats.clone()
    }

    /// Serves on `listener` until `shutdown` completes.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let addr = listener
            .local_addr()
            .context("reading the listen address")?;
        tracing::info!(%addr, "auth-server ready");
        let app =
            http::router(self.state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .context("serving HTTP")?;
        self.state.db.close().await;
        tracing::info!("auth-server stopped");
        Ok(())
    }
}
