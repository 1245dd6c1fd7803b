//! [`HttpError`]: what an HTTP request can fail with, and the answer the
//! caller sees. The cause is logged; the body says only what is safe.

use axum::Json;
use axum::http::header::WWW_AUTHENTICATE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tracing::{error, warn};

use crate::error::{Error, Refusal};

/// A failed HTTP request.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The coordinator declined the request (unknown node, last node).
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// A POST that a page on another site made the browser send.
    #[error("cross-site request refused")]
    CrossSite,
    /// A write without the admin token, or with a wrong one.
    #[error("this needs the dashboard's admin token (Authorization: Bearer <token>)")]
    Unauthorized,
    /// The coordinator is shutting down or has stopped.
    #[error(transparent)]
    Coordinator(#[from] Error),
    /// A template failed to render: a bug.
    #[error("rendering the dashboard: {0}")]
    Render(#[from] askama::Error),
}

impl HttpError {
    fn status(&self) -> StatusCode {
        match self {
            HttpError::Refused(Refusal::UnknownNode(_)) => StatusCode::NOT_FOUND,
            HttpError::Refused(Refusal::LastNode(_)) => StatusCode::CONFLICT,
            HttpError::Refused(Refusal::NotLeader(_)) => StatusCode::MISDIRECTED_REQUEST,
            HttpError::Refused(Refusal::UnknownMember(_)) => StatusCode::NOT_FOUND,
            HttpError::Refused(Refusal::GroupBusy(_)) => StatusCode::CONFLICT,
            HttpError::CrossSite => StatusCode::FORBIDDEN,
            HttpError::Unauthorized => StatusCode::UNAUTHORIZED,
            HttpError::Coordinator(_) => StatusCode::SERVICE_UNAVAILABLE,
            HttpError::Render(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            HttpError::Refused(_) | HttpError::CrossSite | HttpError::Unauthorized => {
                warn!(error = %self, "HTTP request refused");
                self.to_string()
            }
            HttpError::Coordinator(_) => {
                warn!(error = %self, "HTTP request while the coordinator is stopping");
                "the coordinator is not running".to_string()
            }
            HttpError::Render(_) => {
                error!(error = %self, "HTTP request failed");
                "internal error".to_string()
            }
        };
        let mut response = (status, Json(json!({ "error": message }))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"keycafe-dashboard\""),
            );
        }
        response
    }
}
