//! [`ApiClient`]: auth-server's JSON API as seen from the site.
//!
//! The site never sees a password hash or a user row; it forwards the
//! credentials once, keeps the opaque token auth-server returns, and asks
//! for the profile with it. The body types are the server's own
//! ([`bodies`]).

use std::net::IpAddr;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER};
// The request and response bodies are auth-server's `api.rs`, compiled into
// this crate from its source file: one definition keeps site and server in
// step, and the site need not link the server's database and hashing code.
// (A plain comment: rustdoc would resolve the file's own links from here.)
#[path = "../../auth-server/src/api.rs"]
pub mod bodies;

use crate::config::InternalSecret;
/// Where auth-server keeps the API session in Keycafe (named apart from the
/// browser's own session).
pub use bodies::SessionInfo as ApiSessionInfo;
use bodies::{INTERNAL_AUTH_HEADER, LoginRequest};
pub use bodies::{LoginResponse, UserProfile};

/// What a login attempt came to.
#[derive(Debug)]
pub enum LoginOutcome {
    /// The credentials were right.
    SignedIn(LoginResponse),
    /// Wrong email or password (auth-server does not say which).
    Invalid,
    /// Too many failures; try again after the given time, if known.
    Throttled(Option<Duration>),
    /// auth-server refused the request as malformed (e.g. an empty field).
    Rejected,
}

/// auth-server could not be asked, or answered something unexpected.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No answer: connection refused, timeout, ...
    #[error("auth-server unreachable: {0}")]
    Unreachable(#[source] reqwest::Error),
    /// It answered 503: one of its own dependencies is down.
    #[error("auth-server is unavailable (503)")]
    Unavailable,
    /// Any other status, or a body that is not what the API documents.
    #[error("unexpected answer from auth-server: {0}")]
    Unexpected(String),
}

/// A handle on auth-server; cheap to clone (one connection pool).
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base_url: String,
    internal_secret: Option<InternalSecret>,
}

impl ApiClient {
    /// A client for the API at `base_url` (e.g. `http://127.0.0.1:8080`),
    /// giving each request at most `timeout`, and proving `internal_secret`
    /// (if any) with each login.
    pub fn new(
        base_url: &str,
        timeout: Duration,
        internal_secret: Option<InternalSecret>,
    ) -> anyhow::Result<ApiClient> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(3)))
            // The API never redirects; following one would forward the token.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(ApiClient {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            internal_secret,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Tries `email` and `password`. `client_ip` (the browser's address) is
    /// sent as `X-Forwarded-For`, with the internal secret as
    /// `X-Internal-Auth`, so that auth-server throttles failed logins per
    /// browser rather than per web server. (Without the secret, auth-server
    /// ignores the address and counts every browser as this server.)
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<LoginOutcome, ApiError> {
        let mut request = self
            .http
            .post(self.url("/api/v1/login"))
            .json(&LoginRequest {
                email: email.to_string(),
                password: password.to_string(),
            });
        if let (Some(ip), Some(secret)) = (client_ip, &self.internal_secret) {
            let mut proof = HeaderValue::from_str(secret.expose()).map_err(|_| {
                ApiError::Unexpected("AUTH_INTERNAL_SECRET is not a valid header value".into())
            })?;
            proof.set_sensitive(true);
            request = request
                .header(INTERNAL_AUTH_HEADER, proof)
                .header("x-forwarded-for", ip.to_string());
        }
        let response = request.send().await.map_err(ApiError::Unreachable)?;
        match response.status() {
            StatusCode::OK => Ok(LoginOutcome::SignedIn(read_json(response).await?)),
            StatusCode::UNAUTHORIZED => Ok(LoginOutcome::Invalid),
            StatusCode::TOO_MANY_REQUESTS => {
                let retry_after = response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| value.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                Ok(LoginOutcome::Throttled(retry_after))
            }
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => {
                Ok(LoginOutcome::Rejected)
            }
            other => Err(unexpected(other)),
        }
    }

    /// The profile behind `token`, or `None` if auth-server no longer knows
    /// the token (expired, or logged out elsewhere).
    pub async fn user(&self, token: &str) -> Result<Option<UserProfile>, ApiError> {
        self.get_with_token("/api/v1/user", token).await
    }

    /// Where auth-server keeps this token's session, or `None` if it has ended.
    pub async fn session_info(&self, token: &str) -> Result<Option<ApiSessionInfo>, ApiError> {
        self.get_with_token("/api/v1/session", token).await
    }

    /// Ends the API session. A token auth-server no longer knows counts as
    /// ended too.
    pub async fn logout(&self, token: &str) -> Result<(), ApiError> {
        let response = self
            .http
            .post(self.url("/api/v1/logout"))
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .send()
            .await
            .map_err(ApiError::Unreachable)?;
        match response.status() {
            status if status.is_success() => Ok(()),
            StatusCode::UNAUTHORIZED => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// `GET /healthz`: whether auth-server says it is healthy.
    pub async fn healthy(&self) -> bool {
        match self.http.get(self.url("/healthz")).send().await {
            Ok(response) => response.status().is_success(),
            Err(_) => false,
        }
    }

    async fn get_with_token<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        token: &str,
    ) -> Result<Option<T>, ApiError> {
        let response = self
            .http
            .get(self.url(path))
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .send()
            .await
            .map_err(ApiError::Unreachable)?;
        match response.status() {
            StatusCode::OK => read_json(response).await.map(Some),
            StatusCode::UNAUTHORIZED => Ok(None),
            other => Err(unexpected(other)),
        }
    }
}

async fn read_json<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
) -> Result<T, ApiError> {
    response
        .json()
        .await
        .map_err(|e| ApiError::Unexpected(format!("unreadable body: {e}")))
}

fn unexpected(status: StatusCode) -> ApiError {
    if status == StatusCode::SERVICE_UNAVAILABLE {
        ApiError::Unavailable
    } else {
        ApiError::Unexpected(format!("status {status}"))
    }
}
