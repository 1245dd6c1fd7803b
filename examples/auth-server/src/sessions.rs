//! Login sessions in Keycafe.
//!
//! A login returns an opaque **token**: 32 bytes (256 bits) from the thread's
//! cryptographic RNG, hex-encoded. The token itself is never stored: the
//! session lives under `session:<SHA-256 of the token, hex>`, so anyone who
//! can read keys (a `KEYS` listing, a log line, the teaching panel) still
//! cannot sign in as anyone. A 256-bit random token needs no slow hash.
//!
//! Two expiries bound a session:
//!
//! - **idle**: the key's TTL. Each authenticated request resets it with
//!   `PEXPIRE`, so an active user stays signed in and an abandoned session
//!   disappears from Keycafe by itself.
//! - **absolute**: stored in the value ([`SessionRecord::absolute_expiry_ms`]).
//!   Sliding never pushes the TTL past it, and a session found past it (clock
//!   skew, an old value) is deleted and refused.
//!
//! Logout deletes the key; there is nothing else to revoke.

use std::time::{Duration, SystemTime};

use keycafe_client::{KeycafeCluster, SetOptions};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::AppError;

/// Bytes of randomness in a token.
pub const TOKEN_BYTES: usize = 32;

/// What Keycafe holds for one session (as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The signed-in user.
    pub user_id: i64,
    /// Their normalised email (the user cache's key).
    pub email: String,
    /// Login time, Unix milliseconds.
    pub created_at_ms: u64,
    /// The session ends at this Unix millisecond whatever happens.
    pub absolute_expiry_ms: u64,
}

/// A live session, after [`touch`] slid its idle expiry.
#[derive(Debug, Clone)]
pub struct Session {
    /// Its Keycafe key.
    pub key: String,
    /// Its contents.
    pub record: SessionRecord,
    /// When it now expires unless used again, Unix milliseconds.
    pub expires_at_ms: u64,
}

/// A fresh random token.
pub fn new_token() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::fill(&mut bytes[..]);
    hex(&bytes)
}

/// True if `token` has the shape [`new_token`] gives (so garbage never
/// reaches Keycafe).
pub fn is_well_formed(token: &str) -> bool {
    token.len() == TOKEN_BYTES * 2
        && token
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The Keycafe key of the session `token` opens.
pub fn key_for(token: &str) -> String {
    format!("session:{}", hex(&Sha256::digest(token.as_bytes())))
}

/// Stores a new session for `record` and returns its token and idle expiry
/// (Unix ms). `SET NX` guards against the (astronomically unlikely) reuse
/// of a live token: on a collision a new token is drawn.
pub async fn create(
    keycafe: &KeycafeCluster,
    record: &SessionRecord,
    idle: Duration,
) -> Result<(String, u64), AppError> {
    let value = serde_json::to_vec(record).expect("a SessionRecord always serialises to JSON");
    let ttl = idle.min(Duration::from_millis(
        record
            .absolute_expiry_ms
            .saturating_sub(record.created_at_ms),
    ));
    for _ in 0..3 {
        let token = new_token();
        let options = SetOptions::new().nx().expire_in(ttl);
        if keycafe
            .set_with(key_for(&token), &value, &options)
            .await?
            .written
        {
            return Ok((token, record.created_at_ms.saturating_add(millis(ttl))));
        }
    }
    Err(AppError::Internal(anyhow::anyhow!(
        "three random session tokens in a row were taken; is the RNG broken?"
    )))
}

/// Looks up the session `token` opens and, if it is live, slides its idle
/// expiry (never past the absolute one). `None` if there is no live session.
pub async fn touch(
    keycafe: &KeycafeCluster,
    token: &str,
    idle: Duration,
) -> keycafe_client::Result<Option<Session>> {
    if !is_well_formed(token) {
        return Ok(None);
    }
    let key = key_for(token);
    let Some(bytes) = keycafe.get(&key).await? else {
        return Ok(None);
    };
    let record: SessionRecord = match serde_json::from_slice(&bytes) {
        Ok(record) => record,
        Err(error) => {
            tracing::warn!(%error, "deleting a session value that does not parse");
            keycafe.delete(&key).await?;
            return Ok(None);
        }
    };
    let now = now_ms();
    let left = record.absolute_expiry_ms.saturating_sub(now);
    if left == 0 {
        keycafe.delete(&key).await?;
        return Ok(None);
    }
    let ttl = millis(idle).min(left);
    // False if the key vanished since the GET (a concurrent logout or expiry).
    if !keycafe.pexpire(&key, ttl).await? {
        return Ok(None);
    }
    Ok(Some(Session {
        key,
        record,
        expires_at_ms: now.saturating_add(ttl),
    }))
}

/// Ends the session `token` opens; true if there was one.
pub async fn delete(keycafe: &KeycafeCluster, token: &str) -> keycafe_client::Result<bool> {
    if !is_well_formed(token) {
        return Ok(false);
    }
    keycafe.delete(key_for(token)).await
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    millis(since_epoch)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Unix milliseconds as RFC 3339 in UTC, to the second (rounded down).
pub fn rfc3339(unix_ms: u64) -> String {
    let secs = i64::try_from(unix_ms / 1000).unwrap_or(i64::MAX);
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|at| {
            at.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "9999-12-31T23:59:59Z".to_string())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_well_formed() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(is_well_formed(&a));
        assert!(!is_well_formed(&a[1..]));
        assert!(!is_well_formed(&a.to_uppercase()));
        assert!(!is_well_formed(""));
    }

    #[test]
    fn keys_hide_the_token() {
        let token = new_token();
        let key = key_for(&token);
        assert!(key.starts_with("session:"));
        assert!(!key.contains(&token));
        assert_eq!(key, key_for(&token));
        assert_eq!(key.len(), "session:".len() + 64);
    }

    #[test]
    fn rfc3339_formatting() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_778_068_800_999), "2026-05-06T12:00:00Z");
    }
}
