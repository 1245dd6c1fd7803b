//! [`AppState`]: what every handler shares — the auth-server client and the
//! Keycafe-backed session store (whose client also answers the teaching
//! panel's questions).

use std::time::Duration;

use anyhow::Context;
use keycafe_client::{ClientConfig, KeycafeSessionStore};
use keycafe_core::process::KeycafeSettings;

use crate::api::ApiClient;
use crate::config::Config;

/// Shared by all handlers; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// auth-server's API.
    pub api: ApiClient,
    /// Browser sessions in Keycafe.
    pub sessions: KeycafeSessionStore,
}

impl AppState {
    /// Connects to Keycafe (learning the cluster's slot map) and prepares
    /// the API client. Fails if no Keycafe seed answers: the site cannot
    /// keep a single session without it. Once connected, the client
    /// reconnects to nodes by itself.
    pub async fn connect(config: &Config) -> anyhow::Result<AppState> {
        let settings = &config.keycafe;
        let keycafe = keycafe_client_config(settings)
            .connect()
            .await
            .with_context(|| format!("connecting to Keycafe at {}", settings.seeds.join(", ")))?;
        let sessions = KeycafeSessionStore::new(keycafe).with_prefix(config.session_prefix.clone());
        let api = ApiClient::new(
            &config.auth_server_url,
            config.api_timeout,
            config.internal_secret.clone(),
        )
        .context("building the auth-server client")?;
        Ok(AppState { api, sessions })
    }
}

/// The client settings for browser sessions: the seeds and password, the
/// configured timeout for connecting and for each reply, and a retry
/// budget of one, with a short backoff.
///
/// The client's default budget (16 retries, about 11 s) is made to ride out
/// a failover; a person waiting for a page is better served by a prompt
/// "try again in a moment" (a 503 page within about two timeouts, 2 s by
/// default, when every node is down) than by a page that hangs until it
/// fails anyway.
pub fn keycafe_client_config(settings: &KeycafeSettings) -> ClientConfig {
    let mut keycafe = ClientConfig::new(settings.seeds.iter().cloned())
        .connect_timeout(settings.timeout)
        .response_timeout(settings.timeout)
        .max_retries(1)
        .backoff(Duration::from_millis(20), Duration::from_millis(100));
    keycafe.password = settings.password.clone();
    keycafe
}
