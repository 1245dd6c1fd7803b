//! The one Keycafe handle the server shares, connected on first use.
//!
//! [`KeycafeCluster::connect_with`] fails when no seed answers, and the
//! server should not refuse to start (or stay broken) because Keycafe was
//! down for a moment. So [`Keycafe`] connects lazily: the first request that
//! needs Keycafe connects, later ones reuse the handle, and after a failed
//! attempt the next request tries again — at most one attempt per
//! [`RETRY_PAUSE`], so an outage does not turn every request into a connect
//! timeout. Once connected, the client itself reconnects to nodes that come
//! back.
//!
//! Timeouts are short and the retry budget small (see [`client_config`]), so
//! that while Keycafe is down a request fails within about a second with a
//! 503 instead of hanging.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use keycafe_client::{ClientConfig, Error, KeycafeCluster};
use tokio::sync::OnceCell;

use crate::Config;

/// Least time between two connection attempts while Keycafe is unreachable.
pub const RETRY_PAUSE: Duration = Duration::from_millis(250);

/// A lazily connected, shared [`KeycafeCluster`].
pub struct Keycafe {
    config: ClientConfig,
    cluster: OnceCell<KeycafeCluster>,
    last_failure: Mutex<Option<(Instant, Error)>>,
}

impl Keycafe {
    /// A handle that will connect with `config` when first used.
    pub fn new(config: ClientConfig) -> Keycafe {
        Keycafe {
            config,
            cluster: OnceCell::new(),
            last_failure: Mutex::new(None),
        }
    }

    /// The connected cluster, connecting now if this is the first use (or
    /// every earlier attempt failed).
    pub async fn get(&self) -> Result<&KeycafeCluster, Error> {
        if let Some(cluster) = self.cluster.get() {
            return Ok(cluster);
        }
        if let Some(error) = self.recent_failure() {
            return Err(error);
        }
        self.cluster
            .get_or_try_init(|| async {
                let connected = KeycafeCluster::connect_with(self.config.clone()).await;
                match &connected {
                    Ok(_) => tracing::info!(seeds = ?self.config.seeds, "connected to Keycafe"),
                    Err(error) => {
                        tracing::warn!(%error, "cannot reach Keycafe");
                        *self.failures() = Some((Instant::now(), error.clone()));
                    }
                }
                connected
            })
            .await
    }

    fn recent_failure(&self) -> Option<Error> {
        match &*self.failures() {
            Some((at, error)) if at.elapsed() < RETRY_PAUSE => Some(error.clone()),
            _ => None,
        }
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, Option<(Instant, Error)>> {
        // The guarded value is a plain record; a panic elsewhere cannot leave
        // it half-written, so a poisoned lock is still usable.
        self.last_failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Client settings for the server: the seeds and password from `config`,
/// its Keycafe timeout for connecting and for each reply, and two retries.
pub fn client_config(config: &Config) -> ClientConfig {
    let keycafe = &config.keycafe;
    let mut client = ClientConfig::new(keycafe.seeds.iter().cloned())
        .connect_timeout(keycafe.timeout)
        .response_timeout(keycafe.timeout)
        .max_retries(2)
        .backoff(Duration::from_millis(20), Duration::from_millis(200));
    client.password = keycafe.password.clone();
    client
}

/// True for errors that mean "Keycafe is not there right now" (answered
/// with 503), as opposed to a wrong answer (500).
pub fn is_unavailable(error: &Error) -> bool {
    error.is_network()
        || matches!(error, Error::ClusterDown(_))
        || error.server_error().is_some_and(|e| e.is_transient())
}
