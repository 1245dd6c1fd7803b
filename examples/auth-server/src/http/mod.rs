//! The HTTP layer: the router, and the extractors the handlers share.
//!
//! - [`login`]: `POST /api/v1/login`.
//! - [`session`]: `GET /api/v1/user`, `GET /api/v1/session`, `POST /api/v1/logout`.
//! - [`health`]: `GET /healthz`.
//!
//! Every error answer is JSON ([`crate::api::ErrorBody`]): handler errors
//! through [`AppError`], unknown routes through the fallback, and malformed
//! request bodies through [`JsonBody`].

pub mod health;
pub mod login;
pub mod session;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, FromRequestParts, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::routing::{get, post};
use axum::{Json, Router};
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use tracing::Level;

use crate::api::INTERNAL_AUTH_HEADER;
use crate::{AppError, AppState};

/// Largest request body accepted. A login is well under 2 KiB.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The whole API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/login", post(login::login))
        .route("/api/v1/user", get(session::user))
        .route("/api/v1/session", get(session::session_info))
        .route("/api/v1/logout", post(session::logout))
        .route("/healthz", get(health::healthz))
        .fallback(|| async { AppError::NotFound })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // Requests at debug; failures are logged once, with their cause, by
        // `AppError`, so the trace layer only notes them at debug too.
        .layer(TraceLayer::new_for_http().on_failure(DefaultOnFailure::new().level(Level::DEBUG)))
        .with_state(state)
}

/// `Json<T>` whose rejections (wrong content type, bad JSON, missing
/// fields, too large) answer with an [`crate::api::ErrorBody`] like every
/// other error.
pub struct JsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(request: Request, state: &S) -> Result<Self, AppError> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(JsonBody(value)),
            Err(rejection) => Err(AppError::BadRequest(rejection.body_text())),
        }
    }
}

/// The token from `Authorization: Bearer <token>`; 401 without one.
pub struct BearerToken(pub String);

impl<S: Send + Sync> FromRequestParts<S> for BearerToken {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AppError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .ok_or(AppError::Unauthorized)?;
        let (scheme, token) = header
            .trim()
            .split_once(' ')
            .ok_or(AppError::Unauthorized)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(AppError::Unauthorized);
        }
        Ok(BearerToken(token.trim().to_string()))
    }
}

/// The address failed logins are counted against: the TCP peer, or — when
/// the request proves the internal secret (auth-web does) — the client it
/// names in `X-Forwarded-For`.
///
/// Why a secret and not a list of proxy addresses: in the demo every process
/// is at 127.0.0.1, so "the peer is 127.0.0.1" says nothing about *which*
/// local process is asking; any of them could name a new client address on
/// each guess and never be throttled. Knowing the secret is what sets
/// auth-web apart. `trusted_proxies`, when set, narrows it further to those
/// peers.
pub struct ClientAddr(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip());
        let config = &state.config;
        let vouched = config.internal_secret.as_ref().is_some_and(|secret| {
            parts
                .headers
                .get(INTERNAL_AUTH_HEADER)
                .is_some_and(|offered| secret.matches(offered.as_bytes()))
        }) && (config.trusted_proxies.is_empty()
            || config.trusted_proxies.contains(&peer));
        if !vouched {
            return Ok(ClientAddr(peer));
        }
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok());
        Ok(ClientAddr(forwarded_client(forwarded).unwrap_or(peer)))
    }
}

/// The address the vouched-for proxy appended last to `X-Forwarded-For`
/// (the rightmost entry): the client it saw. Entries left of it came from
/// further away, possibly from the client itself, and are not believed.
fn forwarded_client<'a>(forwarded: impl Iterator<Item = &'a str>) -> Option<IpAddr> {
    forwarded
        .flat_map(|value| value.split(','))
        .last()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rightmost_forwarded_entry_is_the_client() {
        let ip = |text: &str| text.parse::<IpAddr>().expect("test IP");
        assert_eq!(
            forwarded_client(["203.0.113.9"].into_iter()),
            Some(ip("203.0.113.9"))
        );
        // The client sent "1.1.1.1" itself; the proxy appended the rest.
        assert_eq!(
            forwarded_client(["1.1.1.1, 203.0.113.9"].into_iter()),
            Some(ip("203.0.113.9"))
        );
        assert_eq!(
            forwarded_client(["1.1.1.1", "::1"].into_iter()),
            Some(ip("::1"))
        );
        assert_eq!(forwarded_client(["1.1.1.1, not-an-ip"].into_iter()), None);
        assert_eq!(forwarded_client(std::iter::empty()), None);
    }
}
