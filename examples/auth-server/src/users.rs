//! User rows: the SQL look-up, and the cache-aside path logins use.
//!
//! A login looks its user up by email in Keycafe first ([`crate::cache`]);
//! only on a miss does it query SQLite, and then it stores the row in the
//! cache with a TTL. A burst of logins (or of profile views) for one account
//! therefore costs one SQLite query per TTL. The row carries the password
//! hash, because verifying the password is what a login needs; it never
//! leaves the server: [`User::profile`] is what clients get.
//!
//! Emails are matched case-insensitively: SQLite's `NOCASE` collation on the
//! column, and [`normalize_email`] (the same ASCII-only folding) for cache keys.

use sqlx::SqlitePool;

use crate::api::UserProfile;
use crate::state::Stats;
use crate::{AppError, AppState, cache};

/// A row of the `users` table.
#[derive(Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct User {
    /// Primary key.
    pub id: i64,
    /// Full name.
    pub name: String,
    /// Email address as stored.
    pub email: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// As given.
    pub gender: String,
    /// Country name.
    pub country: String,
    /// Job title.
    pub job: String,
    /// RFC 3339, UTC.
    pub created_at: String,
}

impl User {
    /// What a client may see: everything but the hash.
    pub fn profile(&self) -> UserProfile {
        UserProfile {
            id: self.id,
            name: self.name.clone(),
            email: self.email.clone(),
            gender: self.gender.clone(),
            country: self.country.clone(),
            job: self.job.clone(),
            created_at: self.created_at.clone(),
        }
    }
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

/// Longest email accepted (RFC 5321's 64 + 1 + 255).
pub const MAX_EMAIL_BYTES: usize = 320;

/// The form of an email used for cache and throttle keys: trimmed, ASCII
/// letters lower-cased (exactly what SQLite's NOCASE ignores).
pub fn normalize_email(email: &str) -> String {
    email.trim().to_ascii_lowercase()
}

/// Looks `email` up in SQLite (case-insensitively), counting the query.
pub async fn find_in_db(
    db: &SqlitePool,
    stats: &Stats,
    email: &str,
) -> Result<Option<User>, sqlx::Error> {
    Stats::bump(&stats.sqlite_user_lookups);
    sqlx::query_as::<_, User>(
        "SELECT id, name, email, password_hash, gender, country, job, created_at \
         FROM users WHERE email = ?1",
    )
    .bind(email)
    .fetch_optional(db)
    .await
}

/// The user with this (normalised) email: from the Keycafe cache, or from
/// SQLite and then cached. Unknown emails are not cached, so an account
/// created later is found at once.
pub async fn find_by_email(state: &AppState, email: &str) -> Result<Option<User>, AppError> {
    let keycafe = state.keycafe.get().await?;
    if let Some(user) = cache::get(keycafe, email).await? {
        Stats::bump(&state.stats.user_cache_hits);
        return Ok(Some(user));
    }
    let user = find_in_db(&state.db, &state.stats, email).await?;
    if let Some(user) = &user {
        cache::put(keycafe, email, user, state.config.user_cache_ttl).await?;
    }
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_matches_nocase() {
        assert_eq!(
            normalize_email("  LImpett0@SmugMug.COM "),
            "limpett0@smugmug.com"
        );
        // NOCASE folds ASCII only, and so do we.
        assert_eq!(normalize_email("ÉLISE@x.fr"), "Élise@x.fr");
    }

    #[test]
    fn profile_has_no_hash() {
        let user = User {
            id: 1,
            name: "Lissa Impett".into(),
            email: "limpett0@smugmug.com".into(),
            password_hash: "$argon2id$v=19$secret".into(),
            gender: "Female".into(),
            country: "Indonesia".into(),
            job: "Web Developer".into(),
            created_at: "2024-01-01T00:00:00Z".into(),
        };
        let json = serde_json::to_string(&user.profile()).expect("serialise");
        assert!(!json.contains("argon2"));
        assert!(!format!("{user:?}").contains("argon2"));
    }
}
