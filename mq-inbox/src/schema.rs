//! The inbox tables: embedded migrations, the schema-version check, and the
//! SQLite durability pragmas (the same conventions as mq-outbox).
//!
//! # Layout
//!
//! The SQL lives in `migrations/sqlite` and `migrations/postgres` and is
//! embedded at build time with `sqlx::migrate!`. It is applied by
//! `mq_db::migrate_sqlite` / `migrate_postgres` (shared with mq-outbox)
//! rather than `Migrator::run`, and the applied version is kept in
//! `mq_inbox_meta` (`name TEXT PRIMARY KEY, value BIGINT`) rather than
//! `_sqlx_migrations` (the `mq-db` docs say why). Recording the version
//! ourselves also gives the clear "schema too new" error when an older
//! binary opens a newer database. `mq_inbox_meta` also holds `forgotten`, the number of
//! ranges and producers deleted by the retention rule.

use sqlx::migrate::Migrator;
#[cfg(feature = "postgres")]
use sqlx::PgPool;
#[cfg(feature = "sqlite")]
use sqlx::SqlitePool;

use crate::error::OpenError;

/// The newest schema version this library knows. Opening a database whose
/// `mq_inbox_meta.schema_version` is higher fails with
/// [`OpenError::SchemaTooNew`].
///
/// # Examples
///
/// ```
/// assert!(mq_inbox::SCHEMA_VERSION >= 1);
/// ```
pub const SCHEMA_VERSION: i64 = 1;

/// The inbox's tables for `mq_db`: the meta table, the version, and the
/// key of the advisory lock that serialises concurrent `open`s on Postgres.
const SCHEMA: mq_db::Schema = mq_db::Schema {
    meta_table: "mq_inbox_meta",
    version: SCHEMA_VERSION,
    pg_lock: 0x6d71_696e_626f_7821, // "mqinbox!"
};

#[cfg(feature = "sqlite")]
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
#[cfg(feature = "postgres")]
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// Checks the pragmas, creates or upgrades the SQLite tables.
#[cfg(feature = "sqlite")]
pub(crate) async fn open_sqlite(pool: &SqlitePool) -> Result<(), OpenError> {
    mq_db::check_sqlite_pragmas(pool).await?;
    mq_db::migrate_sqlite(pool, &SCHEMA, &SQLITE_MIGRATIONS, None).await?;
    Ok(())
}

/// Creates or upgrades the Postgres tables.
#[cfg(feature = "postgres")]
pub(crate) async fn open_postgres(pool: &PgPool) -> Result<(), OpenError> {
    mq_db::migrate_postgres(pool, &SCHEMA, &POSTGRES_MIGRATIONS, None).await?;
    Ok(())
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
