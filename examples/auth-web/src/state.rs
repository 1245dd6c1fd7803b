//! [`AppState`]: what every handler shares — the auth-server client and the
//! Keycafe-backed session store (whose client also answers the teaching
//! panel's questions).

use anyhow::Context;
use keycafe_client::{ClientConfig, KeycafeSessionStore};

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
        let mut keycafe = ClientConfig::new(settings.seeds.iter().cloned())
            .connect_timeout(settings.timeout)
            .response_timeout(settings.timeout);
        keycafe.password = settings.password.clone();
        let keycafe = keycafe
            .connect()
            .await
            .with_context(|| format!("connecting to Keycafe at {}", settings.seeds.join(", ")))?;
        let sessions = KeycafeSessionStore::new(keycafe).with_prefix(config.session_prefix.clone());
        let api = ApiClient::new(&config.auth_server_url, config.api_timeout)
            .context("building the auth-server client")?;
        Ok(AppState { api, sessions })
    }
}
