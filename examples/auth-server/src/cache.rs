//! The user-row cache in Keycafe: `user:email:<normalised email>` → the row
//! as JSON, with a TTL ([`crate::Config::user_cache_ttl`]).
//!
//! Cache-aside: readers fill it ([`crate::users::find_by_email`]), and the
//! TTL bounds how stale it can be. The example never changes a user row; an
//! application that does would delete the key in the same code path.
//!
//! The row includes the password hash. That is the point (a cached login
//! must not touch SQLite), and it means Keycafe is as sensitive as the
//! database: keep it on a private network, with `requirepass`.

use std::time::Duration;

use keycafe_client::{KeycafeCluster, SetOptions};

use crate::users::User;

/// The cache key for a normalised email.
pub fn key(email: &str) -> String {
    format!("user:email:{email}")
}

/// The cached row, if any. A value that does not parse (written by an older
/// version, say) counts as a miss and is overwritten by the next fill.
pub async fn get(keycafe: &KeycafeCluster, email: &str) -> keycafe_client::Result<Option<User>> {
    let Some(bytes) = keycafe.get(key(email)).await? else {
        return Ok(None);
    };
    match serde_json::from_slice(&bytes) {
        Ok(user) => Ok(Some(user)),
        Err(error) => {
            tracing::warn!(%error, "ignoring a cached user row that does not parse");
            Ok(None)
        }
    }
}

/// Caches `user` under `email` for `ttl`.
pub async fn put(
    keycafe: &KeycafeCluster,
    email: &str,
    user: &User,
    ttl: Duration,
) -> keycafe_client::Result<()> {
    let json = serde_json::to_vec(user).expect("a User always serialises to JSON");
    let options = SetOptions::new().expire_in(ttl);
    keycafe.set_with(key(email), json, &options).await?;
    Ok(())
}
