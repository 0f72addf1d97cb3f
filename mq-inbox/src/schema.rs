//! The inbox tables: embedded migrations, the schema-version check, and the
//! SQLite durability pragmas (the same conventions as mq-outbox).
//!
//! # Layout
//!
//! The SQL lives in `migrations/sqlite` and `migrations/postgres` and is
//! embedded at build time with `sqlx::migrate!`. It is applied by the
//! `migrate_*` functions rather than `Migrator::run`, and the applied
//! version is kept in `mq_inbox_meta` (`name TEXT PRIMARY KEY, value
//! BIGINT`) rather than `_sqlx_migrations`: the application's own sqlx
//! migrations on the same database would otherwise see our versions as
//! "previously applied but missing". Recording the version ourselves also
//! gives the clear "schema too new" error when an older binary opens a
//! newer database. `mq_inbox_meta` also holds `forgotten`, the number of
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

#[cfg(feature = "sqlite")]
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
#[cfg(feature = "postgres")]
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

const META_DDL: &str =
    "CREATE TABLE IF NOT EXISTS mq_inbox_meta (name TEXT PRIMARY KEY, value BIGINT NOT NULL)";

/// Key of the advisory lock that serialises concurrent `open`s on Postgres.
#[cfg(feature = "postgres")]
const PG_MIGRATION_LOCK: i64 = 0x6d71_696e_626f_7821; // "mqinbox!"

/// Creates or upgrades the tables in one transaction.
macro_rules! migrate_in {
    ($tx:ident, $migrator:expr) => {{
        sqlx::raw_sql(META_DDL)
            .execute(&mut *$tx)
            .await
            .map_err(OpenError::Database)?;
        let found: Option<i64> =
            sqlx::query_scalar("SELECT value FROM mq_inbox_meta WHERE name = 'schema_version'")
                .fetch_optional(&mut *$tx)
                .await
                .map_err(OpenError::Database)?;
        let current = found.unwrap_or(0);
        if current > SCHEMA_VERSION {
            return Err(OpenError::SchemaTooNew {
                found: current,
                supported: SCHEMA_VERSION,
            });
        }
        for m in $migrator.iter().filter(|m| m.version > current) {
            if !m.migration_type.is_up_migration() {
                continue;
            }
            sqlx::raw_sql(&m.sql)
                .execute(&mut *$tx)
                .await
                .map_err(|source| OpenError::Migration {
                    version: m.version,
                    description: m.description.to_string(),
                    source,
                })?;
        }
        if current < SCHEMA_VERSION {
            sqlx::query(
                "INSERT INTO mq_inbox_meta (name, value) VALUES ('schema_version', $1) \
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            )
            .bind(SCHEMA_VERSION)
            .execute(&mut *$tx)
            .await
            .map_err(OpenError::Database)?;
        }
    }};
}

/// Creates or upgrades the SQLite tables.
#[cfg(feature = "sqlite")]
pub(crate) async fn migrate_sqlite(pool: &SqlitePool) -> Result<(), OpenError> {
    let mut tx = pool
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(OpenError::Unreachable)?;
    migrate_in!(tx, SQLITE_MIGRATIONS.migrations);
    tx.commit().await.map_err(OpenError::Database)?;
    Ok(())
}

/// Creates or upgrades the Postgres tables.
#[cfg(feature = "postgres")]
pub(crate) async fn migrate_postgres(pool: &PgPool) -> Result<(), OpenError> {
    let mut tx = pool.begin().await.map_err(OpenError::Unreachable)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(PG_MIGRATION_LOCK)
        .execute(&mut *tx)
        .await
        .map_err(OpenError::Database)?;
    migrate_in!(tx, POSTGRES_MIGRATIONS.migrations);
    tx.commit().await.map_err(OpenError::Database)?;
    Ok(())
}

/// Reads the durability pragmas back and fails if they did not take:
/// WAL journal (or `memory` for an in-memory database), a positive
/// `busy_timeout`, and `synchronous` FULL or EXTRA.
#[cfg(feature = "sqlite")]
pub(crate) async fn check_sqlite_pragmas(pool: &SqlitePool) -> Result<(), OpenError> {
    let mut conn = pool.acquire().await.map_err(OpenError::Unreachable)?;
    let file: Option<String> =
        sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
            .fetch_optional(&mut *conn)
            .await
            .map_err(OpenError::Database)?;
    let in_memory = file.as_deref().unwrap_or("").is_empty();
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut *conn)
        .await
        .map_err(OpenError::Database)?;
    let journal = journal.to_ascii_lowercase();
    if !(journal == "wal" || (in_memory && journal == "memory")) {
        return Err(OpenError::Pragma {
            name: "journal_mode",
            expected: "WAL",
            found: journal,
        });
    }
    let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(&mut *conn)
        .await
        .map_err(OpenError::Database)?;
    let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
        .fetch_one(&mut *conn)
        .await
        .map_err(OpenError::Database)?;
    if busy <= 0 {
        return Err(OpenError::Pragma {
            name: "busy_timeout",
            expected: "a positive timeout (writers wait instead of failing)",
            found: busy.to_string(),
        });
    }
    if sync < 2 && !in_memory {
        return Err(OpenError::Pragma {
            name: "synchronous",
            expected: "FULL (2) or EXTRA (3)",
            found: sync.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_version_matches_newest_migration() {
        #[cfg(feature = "sqlite")]
        let sqlite = [&SQLITE_MIGRATIONS];
        #[cfg(not(feature = "sqlite"))]
        let sqlite: [&Migrator; 0] = [];
        #[cfg(feature = "postgres")]
        let postgres = [&POSTGRES_MIGRATIONS];
        #[cfg(not(feature = "postgres"))]
        let postgres: [&Migrator; 0] = [];
        for m in sqlite.into_iter().chain(postgres) {
            let newest = m.migrations.iter().map(|m| m.version).max();
            assert_eq!(newest, Some(SCHEMA_VERSION));
        }
    }
}
