//! The outbox tables: embedded migrations, the schema-version check, the
//! stable producer id, and the SQLite durability pragmas.
//!
//! # Layout
//!
//! The SQL lives in `migrations/sqlite` and `migrations/postgres` and is
//! embedded at build time with `sqlx::migrate!`. It is applied by
//! `mq_db::migrate_sqlite` / `migrate_postgres` (shared with mq-inbox)
//! rather than `Migrator::run`, and the applied version is kept in
//! `mq_outbox_meta` rather than `_sqlx_migrations` (the `mq-db` docs say
//! why). Recording the version ourselves also gives the clear "schema too
//! new" error when an older binary opens a newer database.
//!
//! `mq_outbox_meta` (`name TEXT PRIMARY KEY, value BIGINT`) holds:
//! * `schema_version`: the newest migration applied;
//! * `producer_id`: a random non-zero `u64` (stored as `i64`) drawn once when
//!   the tables are created. Every row's [`MessageId`](mq_protocol::MessageId)
//!   is `(producer_id, seq)`, so it is the same in every process and after
//!   every restart, and the broker answers a re-send with "Duplicate".

use sqlx::migrate::Migrator;
#[cfg(feature = "postgres")]
use sqlx::PgPool;
#[cfg(feature = "sqlite")]
use sqlx::SqlitePool;

use crate::error::OpenError;

/// The newest schema version this library knows. Opening a database whose
/// `mq_outbox_meta.schema_version` is higher fails with
/// [`OpenError::SchemaTooNew`].
///
/// # Examples
///
/// ```
/// assert!(mq_outbox::SCHEMA_VERSION >= 1);
/// ```
pub const SCHEMA_VERSION: i64 = 2;

/// The outbox's tables for `mq_db`: the meta table, the version, and the
/// key of the advisory lock that serialises concurrent `open`s on Postgres.
const SCHEMA: mq_db::Schema = mq_db::Schema {
    meta_table: "mq_outbox_meta",
    version: SCHEMA_VERSION,
    pg_lock: 0x6d71_6f75_7462_6f78, // "mqoutbox"
};

#[cfg(feature = "sqlite")]
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
#[cfg(feature = "postgres")]
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// The producer id kept in the meta table (a new random one is stored by
/// the first `open`).
fn producer_id(kept: Option<i64>) -> Result<u64, OpenError> {
    kept.map(|id| id as u64)
        .ok_or(OpenError::Database(sqlx::Error::RowNotFound))
}

/// Checks the pragmas, creates or upgrades the SQLite tables; returns the
/// producer id.
#[cfg(feature = "sqlite")]
pub(crate) async fn open_sqlite(pool: &SqlitePool) -> Result<u64, OpenError> {
    mq_db::check_sqlite_pragmas(pool).await?;
    let seed = Some(("producer_id", new_producer_id()));
    producer_id(mq_db::migrate_sqlite(pool, &SCHEMA, &SQLITE_MIGRATIONS, seed).await?)
}

/// Creates or upgrades the Postgres tables; returns the producer id.
#[cfg(feature = "postgres")]
pub(crate) async fn open_postgres(pool: &PgPool) -> Result<u64, OpenError> {
    let seed = Some(("producer_id", new_producer_id()));
    producer_id(mq_db::migrate_postgres(pool, &SCHEMA, &POSTGRES_MIGRATIONS, seed).await?)
}

/// A random non-zero producer id.
fn new_producer_id() -> i64 {
    let id: u64 = rand::Rng::gen_range(&mut rand::thread_rng(), 1..=u64::MAX);
    id as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_version_matches_newest_migration() {
        #[cfg(feature = "sqlite")]
        assert!(SCHEMA.matches(&SQLITE_MIGRATIONS));
        #[cfg(feature = "postgres")]
        assert!(SCHEMA.matches(&POSTGRES_MIGRATIONS));
    }
}
