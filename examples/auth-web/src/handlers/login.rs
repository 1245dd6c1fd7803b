//! Signing in and out.
//!
//! The password passes through this server exactly once, on its way to
//! auth-server; what stays is auth-server's opaque token, in the browser
//! session (in Keycafe), never in the browser itself. The CSRF token of
//! every POST here has been checked by [`csrf::require_token`]
//! before these handlers run.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::Form;
use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::http::header::RETRY_AFTER;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tower_sessions::Session;

use crate::api::LoginOutcome;
use crate::error::AppError;
use crate::redirect::{after_login, safe_next};
use crate::state::AppState;
use crate::templates::{LoginPage, render_page};
use crate::{csrf, session};

/// The same words whether the email is unknown or the password wrong, as
/// auth-server itself answers: which of the two it was is none of an
/// attacker's business.
pub const INVALID_CREDENTIALS: &str = "Invalid email or password.";

/// `?next=` on the login page.
#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// The login form's fields. Missing ones are empty, and refused as such.
#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

/// `GET /login`: the form, with a CSRF token — which is what gives an
/// anonymous visitor a session. A signed-in visitor goes straight on.
pub async fn form(session: Session, Query(query): Query<LoginQuery>) -> Result<Response, AppError> {
    if session::api_token(&session).await?.is_some() {
        return Ok(Redirect::to(after_login(query.next.as_deref())).into_response());
    }
    let page = LoginPage {
        csrf_token: csrf::token(&session).await?,
        next: query
            .next
            .as_deref()
            .and_then(safe_next)
            .unwrap_or("")
            .to_string(),
        email: String::new(),
        error: None,
        notice: session::take_flash(&session).await?,
    };
    Ok(render_page(&page)?.into_response())
}

/// `POST /login`: asks auth-server; on success starts a fresh session id
/// holding the token and redirects (303) to `next` or the profile; on
/// failure shows the form again with the reason, the email kept and the
/// password not.
pub async fn submit(
    State(state): State<AppState>,
    session: Session,
    ClientIp(client_ip): ClientIp,
    Form(form): Form<LoginForm>,
) -> Result<Response, AppError> {
    let email = form.email.trim();
    let outcome = if email.is_empty() || form.password.is_empty() {
        Ok(LoginOutcome::Rejected)
    } else {
        state.api.login(email, &form.password, client_ip).await
    };
    let (status, error, retry_after) = match outcome {
        Ok(LoginOutcome::SignedIn(login)) => {
            // Signing in again over an existing login: end the old API session.
            if let Some(old) = session::api_token(&session).await?
                && let Err(e) = state.api.logout(&old).await
            {
                tracing::warn!("could not end the previous API session: {e}");
            }
            session::sign_in(&session, &login.token).await?;
            return Ok(Redirect::to(after_login(Some(&form.next))).into_response());
        }
        Ok(LoginOutcome::Invalid) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            INVALID_CREDENTIALS.to_string(),
            None,
        ),
        Ok(LoginOutcome::Rejected) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "Please enter your email address and password.".to_string(),
            None,
        ),
        Ok(LoginOutcome::Throttled(retry_after)) => (
            StatusCode::TOO_MANY_REQUESTS,
            throttle_message(retry_after),
            retry_after,
        ),
        Err(e) => {
            tracing::error!("login could not reach auth-server: {e}");
            let error = "Signing in is unavailable right now. Please try again in a moment.";
            (StatusCode::SERVICE_UNAVAILABLE, error.to_string(), None)
        }
    };
    let page = LoginPage {
        csrf_token: csrf::token(&session).await?,
        next: safe_next(&form.next).unwrap_or("").to_string(),
        email: email.to_string(),
        error: Some(error),
        notice: None,
    };
    let mut response = (status, render_page(&page)?).into_response();
    if let Some(after) = retry_after {
        let seconds = HeaderValue::from(after.as_secs());
        response.headers_mut().insert(RETRY_AFTER, seconds);
    }
    Ok(response)
}

fn throttle_message(retry_after: Option<Duration>) -> String {
    let wait = match retry_after.map(|d| d.as_secs()) {
        Some(secs) if secs > 90 => format!("about {} minutes", secs.div_ceil(60)),
        Some(secs) if secs > 1 => format!("{secs} seconds"),
        _ => "a few minutes".to_string(),
    };
    format!("Too many failed sign-in attempts. Please wait {wait} and try again.")
}

/// `POST /logout`: ends the API session at auth-server, then the browser
/// session (deleted from Keycafe), and shows the login page with a notice.
/// If auth-server cannot be reached, the browser session still ends and the
/// API session expires on its own.
pub async fn logout(State(state): State<AppState>, session: Session) -> Result<Redirect, AppError> {
    if let Some(api_token) = session::api_token(&session).await?
        && let Err(e) = state.api.logout(&api_token).await
    {
        tracing::warn!("could not end the API session at logout: {e}");
    }
    session::end(&session).await?;
    session::set_flash(&session, "You have been signed out.").await?;
    Ok(Redirect::to("/login"))
}

/// The browser's IP address, as the listener saw it (`None` when the
/// router is served without connect info).
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<ClientIp, Self::Rejection> {
        let addr = parts.extensions.get::<ConnectInfo<SocketAddr>>();
        Ok(ClientIp(addr.map(|ConnectInfo(addr)| addr.ip())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_message_names_a_sensible_wait() {
        let message = |secs| throttle_message(Some(Duration::from_secs(secs)));
        assert!(message(900).contains("about 15 minutes"));
        assert!(message(91).contains("about 2 minutes"));
        assert!(message(30).contains("30 seconds"));
        assert!(throttle_message(None).contains("a few minutes"));
    }
}
