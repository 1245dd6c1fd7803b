//! The browser session: what auth-web keeps in it, the login guard, and
//! one-shot flash messages.
//!
//! The session itself is tower-sessions' [`Session`], stored in Keycafe by
//! [`KeycafeSessionStore`](keycafe_client::KeycafeSessionStore): the
//! browser holds only a random id in an `HttpOnly` cookie, and the record —
//! here just the auth-server token, the CSRF token and perhaps a flash
//! message — lives under `web:session:<SHA-256 of the id>` (so that listing
//! keys reveals no cookie) with a TTL equal to the idle
//! timeout, slid forward on every request.
//!
//! Signed in means "the session holds an API token" ([`SignedIn`]). Whether
//! auth-server still honours the token is its call, asked on each page.

use axum::extract::FromRequestParts;
use axum::http::Method;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use tower_sessions::Session;

use crate::csrf;
use crate::error::AppError;
use crate::redirect;

/// Session key of auth-server's bearer token.
const API_TOKEN: &str = "api_token";
/// Session key of the message shown once on the next page.
const FLASH: &str = "flash";

/// The API token, if this browser is signed in.
pub async fn api_token(session: &Session) -> Result<Option<String>, AppError> {
    Ok(session.get::<String>(API_TOKEN).await?)
}

/// Records a successful login: a new session id first (so that an id
/// planted in the browser before login — session fixation — is worth
/// nothing afterwards), then the token, and a new CSRF token.
pub async fn sign_in(session: &Session, api_token: &str) -> Result<(), AppError> {
    session.cycle_id().await?;
    session.insert(API_TOKEN, api_token).await?;
    csrf::rotate(session).await?;
    Ok(())
}

/// Forgets everything: deletes the record from Keycafe and drops the id,
/// so the cookie is removed unless something new is stored afterwards.
pub async fn end(session: &Session) -> Result<(), AppError> {
    session.flush().await?;
    // `flush` keeps the record's id for whatever is stored next (the
    // sign-out notice), which would give the signed-out session the
    // signed-in one's id. Draw a new one.
    session.cycle_id().await?;
    Ok(())
}

/// Leaves a message for the next page (which shows it once).
pub async fn set_flash(session: &Session, message: &str) -> Result<(), AppError> {
    session.insert(FLASH, message).await?;
    Ok(())
}

/// The message left by the previous request, removed as it is read.
pub async fn take_flash(session: &Session) -> Result<Option<String>, AppError> {
    Ok(session.remove::<String>(FLASH).await?)
}

/// The login guard: an extractor that yields the session and its API
/// token, or sends the visitor to `/login` — remembering the page they
/// wanted (`?next=`) for GET requests, where going back to it makes sense.
pub struct SignedIn {
    /// The browser session.
    pub session: Session,
    /// auth-server's bearer token.
    pub api_token: String,
}

impl<S: Send + Sync> FromRequestParts<S> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<SignedIn, Response> {
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        match api_token(&session).await {
            Ok(Some(api_token)) => Ok(SignedIn { session, api_token }),
            Ok(None) if parts.method == Method::GET => {
                Err(Redirect::to(&redirect::login_url_for(&parts.uri)).into_response())
            }
            Ok(None) => Err(Redirect::to("/login").into_response()),
            Err(e) => Err(e.into_response()),
        }
    }
}
