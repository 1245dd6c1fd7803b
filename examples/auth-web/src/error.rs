//! [`AppError`]: everything a handler can fail with, and the page the
//! visitor sees instead. The cause goes to the log; the page says only what
//! is safe and useful to the visitor.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};

use crate::api::ApiError;
use crate::templates::{ErrorPage, render_page};

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A POST without the session's CSRF token (or with a wrong one).
    #[error("missing or wrong CSRF token")]
    Csrf,
    /// A request body larger than the forms of this site can produce.
    #[error("request body too large")]
    BodyTooLarge,
    /// auth-server could not be asked.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The browser session could not be read or written (Keycafe).
    #[error("session store: {0}")]
    Session(#[from] tower_sessions::session::Error),
    /// The session layer could not save the session after the page was
    /// made (Keycafe); see [`explain_session_failures`].
    #[error("the session could not be saved (the session layer logged why)")]
    SessionNotSaved,
    /// A Keycafe command for the teaching panel failed.
    #[error("keycafe: {0}")]
    Keycafe(#[from] keycafe_client::Error),
    /// A template failed to render: a bug.
    #[error("rendering a template: {0}")]
    Render(#[from] askama::Error),
}

impl AppError {
    fn status(&self) -> StatusCode {
        match self {
            AppError::Csrf => StatusCode::FORBIDDEN,
            AppError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::Api(_)
            | AppError::Session(_)
            | AppError::SessionNotSaved
            | AppError::Keycafe(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Render(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn page(&self) -> ErrorPage {
        let (title, message) = match self {
            AppError::Csrf => (
                "This form has expired",
                "The form was not sent from this site's current page, or your session ended \
                 in the meantime. Nothing was changed. Go back, reload the page and try again.",
            ),
            AppError::BodyTooLarge => ("Request too large", "That was more than a form can hold."),
            AppError::Api(_) => (
                "Sign-in service unavailable",
                "The authentication service did not answer. Please try again in a moment.",
            ),
            AppError::Session(_) | AppError::SessionNotSaved | AppError::Keycafe(_) => (
                "Sessions unavailable",
                "Your session could not be reached right now. Please try again in a moment.",
            ),
            AppError::Render(_) => (
                "Something went wrong",
                "The page could not be displayed. The problem has been logged.",
            ),
        };
        ErrorPage {
            status: self.status().as_u16(),
            title,
            message,
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            AppError::Csrf | AppError::BodyTooLarge => tracing::warn!(%status, "refused: {self}"),
            _ => tracing::error!(%status, "request failed: {self}"),
        }
        match render_page(&self.page()) {
            Ok(html) => (status, html).into_response(),
            // Rendering the error page failed too: plain words will do.
            Err(_) => (status, Html(format!("<h1>{}</h1>", status.as_u16()))).into_response(),
        }
    }
}

/// Middleware just outside the session layer: turns the session layer's own
/// failure into the "Sessions unavailable" page.
///
/// tower-sessions saves the session *after* the handler has answered, and
/// if that save fails (Keycafe is down) it replaces the answer with a bare
/// `500` with no body and no headers at all. Every answer this site makes
/// has a `Content-Type`, so a 500 without one can only be that: it becomes
/// a 503 page saying to try again, like any other Keycafe failure.
pub async fn explain_session_failures(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if response.status() == StatusCode::INTERNAL_SERVER_ERROR
        && !response.headers().contains_key(CONTENT_TYPE)
    {
        return AppError::SessionNotSaved.into_response();
    }
    response
}
