//! The SQLite database: open (creating the file if needed) and migrate.
//!
//! The migrations in the repository's `migrations/` folder are embedded in
//! the binary by `sqlx::migrate!` at compile time (`build.rs` makes cargo
//! rebuild when they change) and applied at start-up, so a fresh checkout
//! needs no database tooling and the build needs no live database. Queries
//! elsewhere are plain `sqlx::query` with static SQL, not the compile-time
//! checked macros, for the same reason.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

/// The embedded migrations (`../../migrations`, relative to this crate).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// Opens the database at `url` (e.g. `sqlite://auth-example.db?mode=rwc`),
/// creating it if missing, and applies any pending migration.
pub async fn connect(url: &str) -> anyhow::Result<SqlitePool> {
    let options = SqliteConnectOptions::from_str(url)
        .with_context(|| format!("DATABASE_URL {url:?} is not a SQLite URL"))?
        .create_if_missing(true)
        // WAL lets readers proceed while a writer commits.
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
        .with_context(|| format!("opening the SQLite database {url:?}"))?;
    MIGRATOR
        .run(&pool)
        .await
        .context("applying the database migrations")?;
    Ok(pool)
}

/// A trivial query, for `/healthz`.
pub async fn ping(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1").execute(pool).await.map(|_| ())
}
