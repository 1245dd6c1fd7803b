//! The routes that take a session token: the profile, the session's place in
//! Keycafe, and logout.
//!
//! Each use of a token slides the session's idle expiry ([`sessions::touch`]);
//! an unknown, expired or malformed token is a 401 with
//! `WWW-Authenticate: Bearer`, whichever it was.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use keycafe_client::{KeycafeCluster, Ttl, key_slot};

use super::BearerToken;
use crate::api::{SessionInfo, UserProfile};
use crate::sessions::{self, Session};
use crate::{AppError, AppState, users};

/// `GET /api/v1/user`: the profile of the session's user.
pub async fn user(
    State(state): State<AppState>,
    BearerToken(token): BearerToken,
) -> Result<Json<UserProfile>, AppError> {
    let (keycafe, session) = live_session(&state, &token).await?;
    match users::find_by_email(&state, &session.record.email).await? {
        Some(user) if user.id == session.record.user_id => Ok(Json(user.profile())),
        // The account is gone (or the email now belongs to someone else):
        // the session must not outlive it.
        _ => {
            keycafe.delete(&session.key).await?;
            Err(AppError::Unauthorized)
        }
    }
}

/// `GET /api/v1/session`: where the session lives in Keycafe (key, slot,
/// node, remaining TTL), for auth-web's teaching panel.
pub async fn session_info(
    State(state): State<AppState>,
    BearerToken(token): BearerToken,
) -> Result<Json<SessionInfo>, AppError> {
    let (keycafe, session) = live_session(&state, &token).await?;
    let ttl_ms = match keycafe.pttl(&session.key).await? {
        Ttl::ExpiresIn(left) => Some(u64::try_from(left.as_millis()).unwrap_or(u64::MAX)),
        Ttl::Missing | Ttl::Persistent => None,
    };
    Ok(Json(SessionInfo {
        slot: key_slot(session.key.as_bytes()),
        node: keycafe.node_for_key(&session.key),
        ttl_ms,
        absolute_expires_at: sessions::rfc3339(session.record.absolute_expiry_ms),
        key: session.key,
    }))
}

/// `POST /api/v1/logout`: deletes the session. 204 whether or not it still
/// existed, so that logging out twice (or after expiry) is not an error.
pub async fn logout(
    State(state): State<AppState>,
    BearerToken(token): BearerToken,
) -> Result<StatusCode, AppError> {
    if !sessions::is_well_formed(&token) {
        return Err(AppError::Unauthorized);
    }
    let keycafe = state.keycafe.get().await?;
    if sessions::delete(keycafe, &token).await? {
        tracing::info!("logged out");
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The live session `token` opens (its idle expiry slid), or 401.
async fn live_session<'a>(
    state: &'a AppState,
    token: &str,
) -> Result<(&'a KeycafeCluster, Session), AppError> {
    if !sessions::is_well_formed(token) {
        return Err(AppError::Unauthorized);
    }
    let keycafe = state.keycafe.get().await?;
    let session = sessions::touch(keycafe, token, state.config.session_idle)
        .await?
        .ok_or(AppError::Unauthorized)?;
    Ok((keycafe, session))
}
