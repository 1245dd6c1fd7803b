//! [`ApiClient`]: auth-server's JSON API as seen from the site.
//!
//! The site never sees a password hash or a user row; it forwards the
//! credentials once, keeps the opaque token auth-server returns, and asks
//! for the profile with it. The body types mirror `auth_server::api` (the
//! server's own types); they are declared here so that the web front end
//! does not depend on the API's crate, and the integration tests run both
//! together to keep them in step.

use std::net::IpAddr;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, RETRY_AFTER};
use serde::{Deserialize, Serialize};

/// `POST /api/v1/login` body.
#[derive(Serialize)]
struct LoginRequest<'a> {
    email: &'a str,
    password: &'a str,
}

/// A successful login.
#[derive(Debug, Clone, Deserialize)]
pub struct LoginResponse {
    /// Opaque bearer token; the site keeps it in the browser's session.
    pub token: String,
    /// When auth-server will end the session if unused (RFC 3339).
    pub expires_at: String,
}

/// `GET /api/v1/user`: the signed-in user.
#[derive(Debug, Clone, Deserialize)]
pub struct UserProfile {
    /// Row id.
    pub id: i64,
    /// Full name.
    pub name: String,
    /// Email address.
    pub email: String,
    /// As the user gave it.
    pub gender: String,
    /// Country name.
    pub country: String,
    /// Job title.
    pub job: String,
    /// When the account was created (RFC 3339).
    pub created_at: String,
}

/// `GET /api/v1/session`: where auth-server keeps the API session in Keycafe.
#[derive(Debug, Clone, Deserialize)]
pub struct ApiSessionInfo {
    /// The Keycafe key (a hash of the token, safe to show).
    pub key: String,
    /// The key's slot.
    pub slot: u16,
    /// The node serving the slot.
    pub node: Option<String>,
    /// Milliseconds until the session ends if unused.
    pub ttl_ms: Option<u64>,
    /// When it ends at the latest (RFC 3339).
    pub absolute_expires_at: String,
}

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
}

impl ApiClient {
    /// A client for the API at `base_url` (e.g. `http://127.0.0.1:8080`),
    /// giving each request at most `timeout`.
    pub fn new(base_url: &str, timeout: Duration) -> anyhow::Result<ApiClient> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(3)))
            // The API never redirects; following one would forward the token.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(ApiClient {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Tries `email` and `password`. `client_ip` (the browser's address) is
    /// sent as `X-Forwarded-For`, so that auth-server throttles failed
    /// logins per browser rather than per web server when it trusts us.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<LoginOutcome, ApiError> {
        let mut request = self
            .http
            .post(self.url("/api/v1/login"))
            .json(&LoginRequest { email, password });
        if let Some(ip) = client_ip {
            request = request.header("x-forwarded-for", ip.to_string());
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
