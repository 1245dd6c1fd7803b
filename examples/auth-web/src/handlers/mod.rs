//! The handlers, one file per part of the site. Each takes what it needs
//! through extractors ([`SignedIn`](crate::session::SignedIn) is the login
//! guard) and returns a page, a redirect or an [`AppError`].
//!
//! | route | handler |
//! |---|---|
//! | `GET /` | [`index`]: to `/profile` or `/login` |
//! | `GET /login`, `POST /login` | [`login::form`], [`login::submit`] |
//! | `POST /logout` | [`login::logout`] |
//! | `GET /profile` | [`profile::show`] |
//! | `GET /healthz` | [`healthz`] |

pub mod login;
pub mod profile;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::json;
use tower_sessions::Session;

use crate::error::AppError;
use crate::session;
use crate::state::AppState;
use crate::templates::{ErrorPage, render_page};

/// `GET /`: the profile for a signed-in browser, the login page otherwise.
pub async fn index(session: Session) -> Result<Redirect, AppError> {
    Ok(match session::api_token(&session).await? {
        Some(_) => Redirect::to("/profile"),
        None => Redirect::to("/login"),
    })
}

/// `GET /healthz`: 200 when Keycafe and auth-server both answer, else 503.
pub async fn healthz(State(state): State<AppState>) -> Response {
    let keycafe = state.sessions.client().ping().await.is_ok();
    let auth_server = state.api.healthy().await;
    let word = |ok: bool| if ok { "ok" } else { "failing" };
    let status = if keycafe && auth_server {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if status.is_success() { "ok" } else { "unavailable" },
        "keycafe": word(keycafe),
        "auth_server": word(auth_server),
    });
    (status, Json(body)).into_response()
}

/// Any other path.
pub async fn not_found() -> Response {
    let page = ErrorPage {
        status: 404,
        title: "Page not found",
        message: "There is nothing at this address.",
    };
    match render_page(&page) {
        Ok(html) => (StatusCode::NOT_FOUND, html).into_response(),
        Err(e) => AppError::from(e).into_response(),
    }
}
