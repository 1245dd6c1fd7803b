//! `GET /healthz`: one cheap query to SQLite and one `PING` to Keycafe, run
//! concurrently and each bounded by [`CHECK_TIMEOUT`]. 200 when both answer,
//! 503 naming what failed otherwise — what `run-demo.sh` and load balancers
//! wait for.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::api::Health;
use crate::{AppState, db};

/// Longest each check may take.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The handler.
pub async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let sqlite = async {
        match tokio::time::timeout(CHECK_TIMEOUT, db::ping(&state.db)).await {
            Ok(Ok(())) => true,
            Ok(Err(error)) => {
                tracing::warn!(%error, "health check: SQLite failed");
                false
            }
            Err(_) => {
                tracing::warn!("health check: SQLite timed out");
                false
            }
        }
    };
    let keycafe = async {
        let ping = async { state.keycafe.get().await?.ping().await };
        match tokio::time::timeout(CHECK_TIMEOUT, ping).await {
            Ok(Ok(())) => true,
            Ok(Err(error)) => {
                tracing::warn!(%error, "health check: Keycafe failed");
                false
            }
            Err(_) => {
                tracing::warn!("health check: Keycafe timed out");
                false
            }
        }
    };
    let (sqlite, keycafe) = tokio::join!(sqlite, keycafe);
    let word = |ok: bool| if ok { "ok" } else { "failing" }.to_string();
    let error = match (sqlite, keycafe) {
        (true, true) => None,
        (false, true) => Some("SQLite is not answering"),
        (true, false) => Some("Keycafe is not answering"),
        (false, false) => Some("SQLite and Keycafe are not answering"),
    };
    let status = if error.is_none() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let health = Health {
        status: if error.is_none() { "ok" } else { "unavailable" }.to_string(),
        sqlite: word(sqlite),
        keycafe: word(keycafe),
        error: error.map(str::to_string),
    };
    (status, Json(health))
}
