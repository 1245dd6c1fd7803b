//! The pages, as askama templates (`templates/*.html`), checked at compile
//! time and HTML-escaped by default. Each page is a struct holding exactly
//! what it shows; handlers fill one in and call [`render_page`].
//!
//! askama 0.16 has no axum integration of its own: rendering is a plain
//! `Result<String>`, wrapped here in [`Html`]; a render error becomes
//! [`AppError::Render`](crate::error::AppError::Render) through `?`.

use askama::Template;
use axum::response::Html;

use crate::api::UserProfile;
use crate::avatar::Avatar;

/// Renders `page` as an HTML response body.
pub fn render_page<T: Template>(page: &T) -> Result<Html<String>, askama::Error> {
    page.render().map(Html)
}

/// `GET /login`, and `POST /login` when the sign-in failed.
#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    /// The session's CSRF token, for the hidden field.
    pub csrf_token: String,
    /// Where to go after signing in (already checked to be a local path), or empty.
    pub next: String,
    /// The email typed last time, so the visitor need not type it again.
    pub email: String,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// A one-shot message from the previous page ("You have been signed out.").
    pub notice: Option<String>,
}

/// `GET /profile`.
#[derive(Template)]
#[template(path = "profile.html")]
pub struct ProfilePage {
    /// The session's CSRF token, for the sign-out form.
    pub csrf_token: String,
    /// The user, as auth-server describes them.
    pub user: UserProfile,
    /// Initials and colour.
    pub avatar: Avatar,
    /// The date part of `created_at`.
    pub member_since: String,
    /// The teaching panel: where this browser's session lives in Keycafe,
    /// then auth-server's (when it says).
    pub sessions: Vec<SessionPanel>,
}

/// One half of the teaching panel: a session's place in Keycafe.
#[derive(Debug, Clone)]
pub struct SessionPanel {
    /// Who keeps this session.
    pub owner: &'static str,
    /// What the cookie or token is, in a sentence.
    pub about: &'static str,
    /// The key, possibly shortened (see the profile handler).
    pub key: String,
    /// The key's hash slot.
    pub slot: u16,
    /// `host:port` of the node serving the slot.
    pub node: String,
    /// Remaining time to live, in words.
    pub ttl: String,
    /// An absolute limit, if the session has one.
    pub latest: Option<String>,
}

/// Any error.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    /// HTTP status code.
    pub status: u16,
    /// Headline.
    pub title: &'static str,
    /// What happened and what to do, for the visitor.
    pub message: &'static str,
}
