//! Cross-site request forgery protection: a per-session secret that every
//! form carries back.
//!
//! A page on another site can make the visitor's browser POST to
//! `/logout` (or to `/login`, signing the visitor into the attacker's
//! account). The browser would attach our session cookie — `SameSite=Lax`
//! already stops that for cross-site POSTs in current browsers, but not for
//! sibling subdomains or older browsers, so the forms carry proof too:
//!
//! 1. The session holds a random 256-bit token ([`token`]), created the
//!    first time a form is rendered — also on the login page, which is why
//!    even an anonymous visitor gets a session there.
//! 2. Every form has it in a hidden `csrf_token` field.
//! 3. [`require_token`], a middleware, checks every request whose method
//!    can change something (anything but GET, HEAD, OPTIONS), before any
//!    handler runs, so a new POST route cannot forget the check. The
//!    comparison is constant-time, so response timing does not leak how
//!    many leading characters of a guess were right.
//!
//! Another site cannot read our pages (same-origin policy), so it cannot
//! learn the token. Signing in replaces the token ([`rotate`]), together
//! with the session id.

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;
use tower_sessions::Session;

use crate::error::AppError;

/// The form field (and session key) holding the token.
pub const FIELD: &str = "csrf_token";

/// Also accepted, for requests sent by scripts rather than forms.
pub const HEADER: &str = "x-csrf-token";

/// The largest body a form of this site produces, with room to spare.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// The session's token, created and stored on first use.
pub async fn token(session: &Session) -> Result<String, AppError> {
    if let Some(token) = session.get::<String>(FIELD).await? {
        return Ok(token);
    }
    rotate(session).await
}

/// Replaces the session's token with a fresh one and returns it.
pub async fn rotate(session: &Session) -> Result<String, AppError> {
    let token = new_token();
    session.insert(FIELD, &token).await?;
    Ok(token)
}

fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `given` is the session's token, in time that does not depend on
/// where the two differ.
fn matches(expected: &str, given: &str) -> bool {
    expected.as_bytes().ct_eq(given.as_bytes()).into()
}

/// Middleware: refuses (403, nothing changed) any state-changing request
/// that does not carry the session's token, in the `X-CSRF-Token` header or
/// the `csrf_token` field of a URL-encoded form body. Needs the session
/// layer outside it.
pub async fn require_token(request: Request, next: Next) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    match check(request).await {
        Ok(request) => next.run(request).await,
        Err(refusal) => refusal.into_response(),
    }
}

/// The request back (with its body, which had to be read) if it carries
/// the right token.
async fn check(request: Request) -> Result<Request, AppError> {
    let Some(session) = request.extensions().get::<Session>().cloned() else {
        tracing::error!("CSRF check without a session layer");
        return Err(AppError::Csrf);
    };
    // No token in the session: no form was ever rendered for it, so no
    // honest request can carry one. Reading does not create a session.
    let expected = session.get::<String>(FIELD).await?.ok_or(AppError::Csrf)?;

    let (parts, body) = request.into_parts();
    if let Some(given) = header_token(&parts.headers) {
        return if matches(&expected, given) {
            Ok(Request::from_parts(parts, body))
        } else {
            Err(AppError::Csrf)
        };
    }
    if !is_form(&parts.headers) {
        return Err(AppError::Csrf);
    }
    let bytes = to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| AppError::BodyTooLarge)?;
    let given = form_urlencoded::parse(&bytes)
        .find(|(name, _)| name == FIELD)
        .map(|(_, value)| value);
    match given {
        Some(given) if matches(&expected, &given) => {
            Ok(Request::from_parts(parts, Body::from(bytes)))
        }
        _ => Err(AppError::Csrf),
    }
}

fn header_token(headers: &HeaderMap) -> Option<&str> {
    headers.get(HEADER).and_then(|value| value.to_str().ok())
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| {
            mime.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_random_bits_in_hex() {
        let a = new_token();
        let b = new_token();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn only_the_exact_token_matches() {
        let token = new_token();
        assert!(matches(&token, &token));
        assert!(!matches(&token, ""));
        assert!(!matches(&token, &token[..63]));
        assert!(!matches(&token, &format!("{token}0")));
        let last = if token.ends_with('0') { "1" } else { "0" };
        assert!(!matches(&token, &format!("{}{last}", &token[..63])));
    }

    #[test]
    fn form_content_type_is_recognised_with_parameters() {
        let mut headers = HeaderMap::new();
        assert!(!is_form(&headers));
        headers.insert(
            CONTENT_TYPE,
            "Application/X-WWW-Form-URLEncoded; charset=UTF-8"
                .parse()
                .expect("valid header"),
        );
        assert!(is_form(&headers));
        headers.insert(CONTENT_TYPE, "application/json".parse().expect("valid"));
        assert!(!is_form(&headers));
    }
}
