//! `POST /api/v1/login`: email and password in, session token out.
//!
//! The order of the steps is the security design:
//!
//! 1. Validate lengths (400). Nothing is truncated: a 1000-character
//!    password is hashed as sent.
//! 2. Count the attempt against the account from this address, the address
//!    and the account, and refuse with 429 if either of the first two is past
//!    its limit — before any password is checked, so a throttled attacker
//!    learns nothing, not even from a correct guess. If the account has had
//!    many failures from many addresses, wait a moment instead (never a
//!    lockout). [`crate::throttle`] explains the policy and why counting
//!    comes first.
//! 3. Find the user (Keycafe cache, then SQLite).
//! 4. Verify the password with argon2 on the blocking pool. For an unknown
//!    email, verify against the dummy hash anyway: both paths cost one
//!    argon2 run, and both end in the same [`AppError::InvalidCredentials`].
//! 5. On success give the attempt back (clearing the account's counter) and
//!    create the session; a failure stays counted.

use axum::Json;
use axum::extract::State;

use super::{ClientAddr, JsonBody};
use crate::api::{LoginRequest, LoginResponse};
use crate::password::{self, MAX_PASSWORD_BYTES};
use crate::sessions::{self, SessionRecord};
use crate::state::Stats;
use crate::throttle::{Limits, LoginCounters, Verdict};
use crate::users::{self, MAX_EMAIL_BYTES};
use crate::{AppError, AppState};

/// The handler.
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    JsonBody(request): JsonBody<LoginRequest>,
) -> Result<Json<LoginResponse>, AppError> {
    let email = users::normalize_email(&request.email);
    if email.is_empty() || request.password.is_empty() {
        return Err(AppError::BadRequest(
            "email and password are required".into(),
        ));
    }
    if email.len() > MAX_EMAIL_BYTES || request.password.len() > MAX_PASSWORD_BYTES {
        return Err(AppError::BadRequest(format!(
            "email is limited to {MAX_EMAIL_BYTES} bytes and password to {MAX_PASSWORD_BYTES}"
        )));
    }
    let config = &state.config;
    let keycafe = state.keycafe.get().await?;
    let counters = LoginCounters::new(&email, client);
    match counters
        .attempt(keycafe, Limits::from_config(config))
        .await?
    {
        Verdict::Refused { retry_after } => {
            Stats::bump(&state.stats.logins_throttled);
            tracing::info!(%email, %client, "login throttled");
            return Err(AppError::Throttled { retry_after });
        }
        Verdict::Proceed { slow: true } => {
            Stats::bump(&state.stats.logins_slowed);
            tracing::info!(%email, %client, "login slowed: many failures for this account");
            tokio::time::sleep(config.login_account_delay).await;
        }
        Verdict::Proceed { slow: false } => {}
    }

    let user = users::find_by_email(&state, &email).await?;
    let hash = match &user {
        Some(user) => user.password_hash.clone(),
        None => state.dummy_hash.phc().to_string(),
    };
    Stats::bump(&state.stats.password_verifications);
    let matches = password::verify(request.password, hash).await?;
    let user = match user {
        Some(user) if matches => user,
        _ => {
            // Already counted by `attempt`.
            Stats::bump(&state.stats.logins_failed);
            tracing::info!(%email, %client, "login failed");
            return Err(AppError::InvalidCredentials);
        }
    };

    counters.succeeded(keycafe, config.login_window).await?;
    let now = sessions::now_ms();
    let absolute = u64::try_from(config.session_absolute.as_millis()).unwrap_or(u64::MAX);
    let record = SessionRecord {
        user_id: user.id,
        email,
        created_at_ms: now,
        absolute_expiry_ms: now.saturating_add(absolute),
    };
    let (token, expires_at_ms) = sessions::create(keycafe, &record, config.session_idle).await?;
    Stats::bump(&state.stats.logins_succeeded);
    tracing::info!(user_id = user.id, %client, "login succeeded");
    Ok(Json(LoginResponse {
        token,
        expires_at: sessions::rfc3339(expires_at_ms),
    }))
}
