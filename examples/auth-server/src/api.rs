//! The JSON bodies of the API, public so that clients (auth-web, tests) use
//! the very types the server serialises. auth-web compiles this file into
//! itself rather than depend on this crate, so it names nothing else here.
//!
//! | route | request | success | errors (all [`ErrorBody`]) |
//! |---|---|---|---|
//! | `POST /api/v1/login` | [`LoginRequest`] | 200 [`LoginResponse`] | 400, 401, 429 (+ `Retry-After`), 503 |
//! | `GET /api/v1/user` | `Authorization: Bearer <token>` | 200 [`UserProfile`] | 401, 503 |
//! | `GET /api/v1/session` | `Authorization: Bearer <token>` | 200 [`SessionInfo`] | 401, 503 |
//! | `POST /api/v1/logout` | `Authorization: Bearer <token>` | 204, no body | 401, 503 |
//! | `GET /healthz` | — | 200 [`Health`] | 503 [`Health`] |
//!
//! Times are RFC 3339 strings in UTC (`2026-05-06T12:00:00Z`).
//!
//! A caller that knows the internal secret (auth-web) may say whom it asks
//! for: `X-Internal-Auth: <secret>` with `X-Forwarded-For: <client IP>`.
//! Without the secret, `X-Forwarded-For` is ignored.

use serde::{Deserialize, Serialize};

/// The header in which auth-web proves the secret it shares with
/// auth-server, so that its `X-Forwarded-For` is believed.
pub const INTERNAL_AUTH_HEADER: &str = "x-internal-auth";

/// `POST /api/v1/login`. The email is matched case-insensitively; the
/// password is used exactly as sent (never trimmed or truncated), up to
/// auth-server's `password::MAX_PASSWORD_BYTES`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginRequest {
    /// The account's email address.
    pub email: String,
    /// The password, in plaintext over the (loopback or TLS) connection.
    pub password: String,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("email", &self.email)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A successful login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginResponse {
    /// Opaque bearer token (256 random bits, base64url): send it as
    /// `Authorization: Bearer <token>`.
    pub token: String,
    /// When the session ends if it is not used (RFC 3339, UTC). Each
    /// authenticated request pushes this forward by the idle timeout, but
    /// never past the absolute limit counted from login.
    pub expires_at: String,
}

/// `GET /api/v1/user`: the signed-in user. Never carries the password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserProfile {
    /// Row id in SQLite.
    pub id: i64,
    /// Full name, e.g. "Lissa Impett".
    pub name: String,
    /// Email address as stored.
    pub email: String,
    /// As the user gave it.
    pub gender: String,
    /// Country name in English.
    pub country: String,
    /// Job title.
    pub job: String,
    /// When the account was created (RFC 3339, UTC).
    pub created_at: String,
}

/// `GET /api/v1/session`: where the caller's session lives in Keycafe, for
/// auth-web's teaching panel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// The Keycafe key (`session:` + SHA-256 of the token, so the key alone
    /// does not let anyone in).
    pub key: String,
    /// The key's hash slot (0..16384).
    pub slot: u16,
    /// `host:port` of the node that serves the slot, as the client knows it.
    pub node: Option<String>,
    /// Milliseconds before the key expires if the session is not used again
    /// (read just after this request slid the idle expiry forward); `None`
    /// if the key vanished in between.
    pub ttl_ms: Option<u64>,
    /// When the session ends at the latest, however much it is used (RFC 3339).
    pub absolute_expires_at: String,
}

/// Every error answer: a message that is safe to show to the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, e.g. "invalid email or password".
    pub error: String,
}

/// `GET /healthz`: 200 when both dependencies answer, 503 otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// `"ok"` or `"unavailable"`.
    pub status: String,
    /// `"ok"` or `"failing"`.
    pub sqlite: String,
    /// `"ok"` or `"failing"`.
    pub keycafe: String,
    /// Present when something failed: which, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
