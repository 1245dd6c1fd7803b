//! # auth-web
//!
//! The web front end of Keycafe's full-stack example: server-rendered pages
//! (axum + askama) that sign a visitor in through auth-server's JSON API
//! and keep the visitor's browser session in Keycafe, through the
//! tower-sessions store that `keycafe-client` provides
//! ([`KeycafeSessionStore`](keycafe_client::KeycafeSessionStore)).
//!
//! | route | page |
//! |---|---|
//! | `GET /` | redirects to `/profile` or `/login` |
//! | `GET /login`, `POST /login` | the sign-in form; on success, on to `next` or `/profile` |
//! | `GET /profile` | name, email, country, job, avatar, and where the session lives in Keycafe |
//! | `POST /logout` | ends the API session and the browser session |
//! | `GET /healthz` | checks Keycafe and auth-server |
//!
//! Security, in one place each: sessions in [`session`] (id cycled at
//! login), CSRF tokens on every POST in [`csrf`], `next` restricted to local
//! paths in [`redirect`], cookie attributes and response headers in
//! [`routes`].
//!
//! The binary is a thin `main.rs` over [`run`]; tests call the same [`run`]
//! on a port-0 listener.
//!
//! ```no_run
//! use keycafe_core::process::EnvConfig;
//!
//! # async fn demo() -> anyhow::Result<()> {
//! let config = auth_web::Config::from_env()?;
//! let listener = tokio::net::TcpListener::bind(config.listen_addr).await?;
//! auth_web::run(config, listener, keycafe_core::process::shutdown_signal()).await
//! # }
//! ```
//!
//! # Layout
//!
//! - [`config`]: [`Config`], its defaults and the environment variables.
//! - [`state`]: [`AppState`]: the auth-server client and the session store.
//! - [`routes`]: the router, the session layer (cookie attributes) and headers.
//! - [`handlers`]: the pages: index, login and logout, profile, health.
//! - [`session`]: what the browser session holds, the login guard, flash messages.
//! - [`csrf`]: per-session tokens and the middleware that checks every POST.
//! - [`redirect`]: `next` after login, restricted to local paths.
//! - [`api`]: [`ApiClient`](api::ApiClient), auth-server's API over HTTP.
//! - [`templates`]: the askama page structs (`templates/*.html`).
//! - [`avatar`]: initials-and-colour avatars, drawn as inline SVG.
//! - [`assets`]: the stylesheet and logo, compiled in (`static/`).
//! - [`error`]: [`AppError`], which logs the cause and shows a safe page.

pub mod api;
pub mod assets;
pub mod avatar;
pub mod config;
pub mod csrf;
pub mod error;
pub mod handlers;
pub mod redirect;
pub mod routes;
pub mod session;
pub mod state;
pub mod templates;

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::TcpListener;

pub use config::Config;
pub use error::AppError;
pub use state::AppState;

/// Connects to Keycafe, then serves the site on `listener` until `shutdown`
/// completes; then stops accepting and waits for requests in flight.
///
/// Fails if no Keycafe seed answers at start-up. auth-server, by contrast,
/// may come and go: pages that need it show a "try again" message meanwhile.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    config.validate()?;
    let state = AppState::connect(&config).await?;
    let addr = listener
        .local_addr()
        .context("reading the listen address")?;
    tracing::info!(
        "auth-web ready on http://{addr} (auth-server: {})",
        config.auth_server_url
    );
    let app = routes::router(state, &config).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving HTTP")?;
    tracing::info!("auth-web stopped");
    Ok(())
}
