//! The router: which path goes to which handler, and the layers around
//! them, from the outside in:
//!
//! 1. tracing, and security headers on every response (a strict
//!    Content-Security-Policy: this site loads nothing from elsewhere and
//!    runs no script);
//! 2. for pages only (not `/static`, not `/healthz`): `Cache-Control:
//!    no-store`, so that neither the browser nor a proxy keeps a copy of a
//!    profile, or of a form with its CSRF token, after sign-out;
//! 3. a translation of the session layer's own failure (a bare 500 when it
//!    cannot save the session) into the "Sessions unavailable" 503 page
//!    ([`explain_session_failures`](crate::error::explain_session_failures));
//! 4. the session layer (tower-sessions with the Keycafe store): cookie
//!    `auth_web_session` (`__Host-auth_web_session` when Secure), HttpOnly,
//!    SameSite=Lax, Path=/, expiring after the idle timeout, which every
//!    request restarts;
//! 5. the CSRF check on every state-changing request.

use axum::Router;
use axum::http::HeaderValue;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::middleware::from_fn;
use axum::routing::{get, post};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::cookie::time::Duration as CookieDuration;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::config::Config;
use crate::handlers::{self, login, profile};
use crate::state::AppState;
use crate::{assets, csrf, error};

/// The session cookie's name. With `Secure`, the `__Host-` prefix makes the
/// browser insist on Secure, Path=/ and no Domain, so a sibling subdomain
/// cannot plant or overwrite it.
pub fn cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-auth_web_session"
    } else {
        "auth_web_session"
    }
}

const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The whole site.
pub fn router(state: AppState, config: &Config) -> Router {
    let idle = i64::try_from(config.session_idle.as_secs()).unwrap_or(i64::MAX);
    let sessions = SessionManagerLayer::new(state.sessions.clone())
        .with_name(cookie_name(config.secure_cookies))
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(config.secure_cookies)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(CookieDuration::seconds(idle)))
        // Save on every request, so that the idle expiry slides.
        .with_always_save(true);

    let pages = Router::new()
        .route("/", get(handlers::index))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/profile", get(profile::show))
        .layer(from_fn(csrf::require_token))
        .layer(sessions)
        .layer(from_fn(error::explain_session_failures))
        .layer(header(CACHE_CONTROL, "no-store"));

    Router::new()
        .merge(pages)
        .merge(assets::router())
        .route("/healthz", get(handlers::healthz))
        .fallback(handlers::not_found)
        .layer(header(CONTENT_SECURITY_POLICY, CSP))
        .layer(header(X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(header(X_FRAME_OPTIONS, "DENY"))
        .layer(header(REFERRER_POLICY, "same-origin"))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

fn header(
    name: axum::http::HeaderName,
    value: &'static str,
) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value))
}
