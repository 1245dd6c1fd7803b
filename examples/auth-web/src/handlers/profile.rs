//! The profile page, and the teaching panel that shows where this browser's
//! session (and auth-server's) lives in Keycafe.

use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use keycafe_client::{Ttl, key_slot};
use tower_sessions::Session;

use crate::api::ApiSessionInfo;
use crate::avatar::Avatar;
use crate::csrf;
use crate::error::AppError;
use crate::session::{self, SignedIn};
use crate::state::AppState;
use crate::templates::{ProfilePage, SessionPanel, render_page};

/// `GET /profile` (behind the login guard): the user as auth-server knows
/// them. If auth-server has ended the API session meanwhile, the browser
/// session ends too and the visitor is asked to sign in again.
pub async fn show(
    State(state): State<AppState>,
    SignedIn { session, api_token }: SignedIn,
) -> Result<Response, AppError> {
    let Some(user) = state.api.user(&api_token).await? else {
        session::end(&session).await?;
        session::set_flash(&session, "Your session has ended. Please sign in again.").await?;
        return Ok(Redirect::to("/login?next=%2Fprofile").into_response());
    };
    let mut sessions = vec![browser_panel(&state, &session).await];
    match state.api.session_info(&api_token).await {
        Ok(Some(info)) => sessions.push(api_panel(info)),
        Ok(None) => {}
        Err(e) => tracing::warn!("no API session info for the panel: {e}"),
    }
    let page = ProfilePage {
        csrf_token: csrf::token(&session).await?,
        avatar: Avatar::new(&user.name, &user.email),
        member_since: user
            .created_at
            .get(..10)
            .unwrap_or(&user.created_at)
            .to_string(),
        user,
        sessions,
    };
    Ok(render_page(&page)?.into_response())
}

/// Where the browser session lives: its key, slot, node and TTL.
///
/// The key holds a SHA-256 of the session id, not the id (the cookie's
/// secret, `HttpOnly` so that scripts cannot read it), so it can be shown
/// whole: it is what anyone listing Keycafe's keys sees, and it opens
/// nothing. The TTL is read before this request slides it forward again.
async fn browser_panel(state: &AppState, session: &Session) -> SessionPanel {
    let store = &state.sessions;
    let (key, shown_key) = match session.id() {
        Some(id) => {
            let key = store.key(&id);
            (key.clone(), key)
        }
        None => (String::new(), "(not saved yet)".to_string()),
    };
    let ttl = match store.client().pttl(&key).await {
        Ok(ttl) => describe_ttl(ttl),
        Err(e) => {
            tracing::warn!("PTTL for the session panel failed: {e}");
            "unknown (Keycafe did not answer)".to_string()
        }
    };
    SessionPanel {
        owner: "Browser session (auth-web)",
        about: "Your cookie holds only a random id; this key, named by a hash of \
                that id, holds the rest. Seeing the key does not let anyone in.",
        slot: key_slot(key.as_bytes()),
        node: store
            .client()
            .node_for_key(&key)
            .unwrap_or_else(|| "unknown".to_string()),
        key: shown_key,
        ttl,
        latest: None,
    }
}

/// Where auth-server keeps the API session, as it reports it.
fn api_panel(info: ApiSessionInfo) -> SessionPanel {
    SessionPanel {
        owner: "API session (auth-server)",
        about: "auth-server's record of your login, keyed by a hash of the token \
                that auth-web keeps for you.",
        key: info.key,
        slot: info.slot,
        node: info.node.unwrap_or_else(|| "unknown".to_string()),
        ttl: match info.ttl_ms {
            Some(ms) => describe_duration(Duration::from_millis(ms)),
            None => "expired".to_string(),
        },
        latest: Some(
            info.absolute_expires_at
                .replace('T', " ")
                .replace('Z', " UTC"),
        ),
    }
}

fn describe_ttl(ttl: Ttl) -> String {
    match ttl {
        Ttl::Missing => "expired".to_string(),
        Ttl::Persistent => "never".to_string(),
        Ttl::ExpiresIn(left) => describe_duration(left),
    }
}

/// `1 h 5 min`, `29 min 59 s`, `42 s`.
fn describe_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s} s"),
        (0, _) => format!("{m} min {s} s"),
        _ => format!("{h} h {m} min"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        let d = |secs| describe_duration(Duration::from_secs(secs));
        assert_eq!(d(0), "0 s");
        assert_eq!(d(42), "42 s");
        assert_eq!(d(1799), "29 min 59 s");
        assert_eq!(d(3900), "1 h 5 min");
        assert_eq!(describe_ttl(Ttl::Missing), "expired");
        assert_eq!(describe_ttl(Ttl::Persistent), "never");
    }
}
