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
/// the peer is a trusted proxy (auth-web) — the client it names in
/// `X-Forwarded-For`.
pub struct ClientAddr(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip());
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok());
        Ok(ClientAddr(client_ip(
            peer,
            forwarded,
            &state.config.trusted_proxies,
        )))
    }
}

/// Walks `X-Forwarded-For` from the right (each proxy appends the address
/// it saw) past trusted proxies; the first other address is the client.
/// Anything unparsable ends the walk: what lies left of it is unverifiable.
fn client_ip<'a>(
    peer: IpAddr,
    forwarded: impl Iterator<Item = &'a str>,
    trusted: &[IpAddr],
) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let hops: Vec<&str> = forwarded.flat_map(|value| value.split(',')).collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !trusted.contains(&ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test IP")
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_peers() {
        let trusted = [ip("127.0.0.1")];
        let header = ["203.0.113.9"];
        assert_eq!(
            client_ip(ip("127.0.0.1"), header.into_iter(), &trusted),
            ip("203.0.113.9")
        );
        assert_eq!(
            client_ip(ip("198.51.100.7"), header.into_iter(), &trusted),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_ip(ip("127.0.0.1"), std::iter::empty(), &trusted),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn spoofed_left_entries_are_ignored() {
        let trusted = [ip("127.0.0.1"), ip("10.0.0.2")];
        // The client sent "1.1.1.1" itself; the proxies appended the rest.
        let header = ["1.1.1.1, 203.0.113.9", "10.0.0.2"];
        assert_eq!(
            client_ip(ip("127.0.0.1"), header.into_iter(), &trusted),
            ip("203.0.113.9")
        );
        let garbage = ["1.1.1.1, not-an-ip"];
        assert_eq!(
            client_ip(ip("127.0.0.1"), garbage.into_iter(), &trusted),
            ip("127.0.0.1")
        );
    }
}
