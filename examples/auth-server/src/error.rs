//! [`AppError`]: every way a request can fail, and the answer each gets.
//!
//! Handlers return `Result<_, AppError>` and use `?` freely; the conversion
//! to a response happens once, here. The user sees a short, safe message in
//! an [`ErrorBody`]; the cause (a SQL error, a Keycafe timeout) goes to the
//! log only, as in realworld-axum-sqlx's `http/error.rs`.
//!
//! One rule matters for security: a wrong password and an unknown email are
//! the *same* variant, [`AppError::InvalidCredentials`], so their answers are
//! byte-for-byte identical.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::api::ErrorBody;

/// The message for any failed login, whatever the reason.
pub const INVALID_CREDENTIALS: &str = "invalid email or password";

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Unknown email or wrong password (deliberately indistinguishable).
    #[error("{INVALID_CREDENTIALS}")]
    InvalidCredentials,
    /// No bearer token, or one that names no live session.
    #[error("missing, invalid or expired session token")]
    Unauthorized,
    /// The request itself is malformed (bad JSON, absurd lengths).
    #[error("{0}")]
    BadRequest(String),
    /// Too many failed logins for this account or address.
    #[error("too many failed login attempts; try again later")]
    Throttled {
        /// How long until the counter that tripped expires.
        retry_after: Duration,
    },
    /// No such route.
    #[error("not found")]
    NotFound,
    /// Keycafe did not answer (down, unreachable, timed out).
    #[error("the session store (Keycafe) is unavailable; try again shortly")]
    KeycafeUnavailable(#[source] keycafe_client::Error),
    /// Keycafe answered something unexpected.
    #[error("internal server error")]
    Keycafe(#[source] keycafe_client::Error),
    /// SQLite failed.
    #[error("internal server error")]
    Database(#[from] sqlx::Error),
    /// Anything else that is our fault.
    #[error("internal server error")]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::InvalidCredentials | AppError::Unauthorized => StatusCode::UNAUTHORIZED,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::KeycafeUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Database(sqlx::Error::PoolTimedOut) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Keycafe(_) | AppError::Database(_) | AppError::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}

impl From<keycafe_client::Error> for AppError {
    fn from(error: keycafe_client::Error) -> AppError {
        if crate::keycafe::is_unavailable(&error) {
            AppError::KeycafeUnavailable(error)
        } else {
            AppError::Keycafe(error)
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            AppError::KeycafeUnavailable(cause) => tracing::warn!(%cause, "Keycafe unavailable"),
            AppError::Keycafe(cause) => tracing::error!(%cause, "Keycafe error"),
            AppError::Database(cause) => tracing::error!(%cause, "SQLite error"),
            AppError::Internal(cause) => {
                tracing::error!(cause = format!("{cause:#}"), "internal error")
            }
            _ => {}
        }
        let message = match &self {
            AppError::Database(sqlx::Error::PoolTimedOut) => {
                "the database is busy; try again shortly".to_string()
            }
            other => other.to_string(),
        };
        let mut response = (status, Json(ErrorBody { error: message })).into_response();
        let headers = response.headers_mut();
        match &self {
            AppError::Throttled { retry_after } => {
                // Whole seconds, rounded up, so a client that waits this long
                // is not refused again.
                let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                headers.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
            }
            AppError::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            AppError::KeycafeUnavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(AppError::InvalidCredentials.status(), 401);
        assert_eq!(AppError::BadRequest("x".into()).status(), 400);
        let down = keycafe_client::Error::ClusterDown("no node".into());
        assert_eq!(AppError::from(down).status(), 503);
        let refused = keycafe_client::Error::Server(keycafe_client::ServerError::new("ERR nope"));
        assert_eq!(AppError::from(refused).status(), 500);
    }

    #[test]
    fn retry_after_rounds_up() {
        let response = AppError::Throttled {
            retry_after: Duration::from_millis(1500),
        }
        .into_response();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
    }

    #[test]
    fn internal_causes_stay_out_of_the_message() {
        let error = AppError::Internal(anyhow::anyhow!("secret path /etc/x"));
        assert_eq!(error.to_string(), "internal server error");
    }
}
