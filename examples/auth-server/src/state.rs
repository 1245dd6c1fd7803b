//! [`AppState`], what every handler shares, and [`Stats`], the counters that
//! make the server's behaviour observable (tests assert on them: "a cached
//! login does not touch SQLite" is a statement about
//! [`Stats::sqlite_user_lookups`], not about timing).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::SqlitePool;

use crate::Config;
use crate::keycafe::{Keycafe, client_config};
use crate::password::DummyHash;

/// Shared by all handlers; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The settings the server started with.
    pub config: Arc<Config>,
    /// The users database.
    pub db: SqlitePool,
    /// Sessions, the user cache and the throttle counters.
    pub keycafe: Arc<Keycafe>,
    /// Verified against when a login names no user (see [`crate::password`]).
    pub dummy_hash: DummyHash,
    /// Counters.
    pub stats: Arc<Stats>,
}

impl AppState {
    /// State over an open, migrated `db`; Keycafe is connected on first use.
    pub async fn new(config: Config, db: SqlitePool) -> anyhow::Result<AppState> {
        Ok(AppState {
            keycafe: Arc::new(Keycafe::new(client_config(&config))),
            config: Arc::new(config),
            db,
            dummy_hash: DummyHash::generate().await?,
            stats: Arc::new(Stats::default()),
        })
    }
}

/// Counters since start-up. All are monotonic.
#[derive(Debug, Default)]
pub struct Stats {
    pub(crate) sqlite_user_lookups: AtomicU64,
    pub(crate) user_cache_hits: AtomicU64,
    pub(crate) password_verifications: AtomicU64,
    pub(crate) logins_succeeded: AtomicU64,
    pub(crate) logins_failed: AtomicU64,
    pub(crate) logins_throttled: AtomicU64,
    pub(crate) logins_slowed: AtomicU64,
}

impl Stats {
    /// Queries that looked a user up in SQLite (cache misses).
    pub fn sqlite_user_lookups(&self) -> u64 {
        self.sqlite_user_lookups.load(Ordering::Relaxed)
    }

    /// User look-ups answered from the Keycafe cache.
    pub fn user_cache_hits(&self) -> u64 {
        self.user_cache_hits.load(Ordering::Relaxed)
    }

    /// argon2 verifications run, including the dummy one for unknown users.
    pub fn password_verifications(&self) -> u64 {
        self.password_verifications.load(Ordering::Relaxed)
    }

    /// Logins that returned a token.
    pub fn logins_succeeded(&self) -> u64 {
        self.logins_succeeded.load(Ordering::Relaxed)
    }

    /// Logins refused with "invalid email or password".
    pub fn logins_failed(&self) -> u64 {
        self.logins_failed.load(Ordering::Relaxed)
    }

    /// Logins refused with 429 before any password check.
    pub fn logins_throttled(&self) -> u64 {
        self.logins_throttled.load(Ordering::Relaxed)
    }

    /// Login attempts made to wait because their account was in slow mode
    /// (many failures from many addresses).
    pub fn logins_slowed(&self) -> u64 {
        self.logins_slowed.load(Ordering::Relaxed)
    }

    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
