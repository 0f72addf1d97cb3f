//! Applying a crate's embedded migrations under a version kept in its own
//! meta table, and reading the SQLite durability settings back.

use sqlx::migrate::Migrator;
#[cfg(feature = "postgres")]
use sqlx::PgPool;
#[cfg(feature = "sqlite")]
use sqlx::SqlitePool;

#[cfg(any(feature = "sqlite", feature = "postgres"))]
use crate::Error;

/// What a crate's tables are: the meta table that records their version,
/// the newest version the library knows, and the Postgres advisory lock
/// key that serialises concurrent migrations.
///
/// # Examples
///
/// ```
/// const SCHEMA: mq_db::Schema = mq_db::Schema {
///     meta_table: "my_meta",
///     version: 1,
///     pg_lock: 0x6d79_6d65_7461, // "mymeta"
/// };
/// assert_eq!(SCHEMA.version, 1);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    /// The meta table (`name TEXT PRIMARY KEY, value BIGINT NOT NULL`),
    /// created if missing. A trusted SQL identifier.
    pub meta_table: &'static str,
    /// The newest schema version this library knows: the newest
    /// migration's version.
    pub version: i64,
    /// Key of the transaction-scoped advisory lock taken on Postgres.
    pub pg_lock: i64,
}

impl Schema {
    /// Whether `migrator`'s newest migration is [`Schema::version`] (a
    /// crate's test that the constant was bumped with a new migration).
    ///
    /// # Examples
    ///
    /// ```
    /// let none = sqlx::migrate::Migrator::DEFAULT;
    /// let s = mq_db::Schema { meta_table: "m", version: 1, pg_lock: 1 };
    /// assert!(!s.matches(&none));
    /// ```
    pub fn matches(&self, migrator: &Migrator) -> bool {
        migrator.iter().map(|m| m.version).max() == Some(self.version)
    }
}

/// Applies the migrations in one transaction `$tx` (an open
/// `Transaction`), then seeds `$seed` and evaluates to its stored value.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
macro_rules! migrate_in {
    ($tx:ident, $schema:expr, $migrator:expr, $seed:expr) => {{
        let schema: &Schema = $schema;
        let table = schema.meta_table;
        let ddl = format!(
            "CREATE TABLE IF NOT EXISTS {table} (name TEXT PRIMARY KEY, value BIGINT NOT NULL)"
        );
        sqlx::raw_sql(&ddl)
            .execute(&mut *$tx)
            .await
            .map_err(Error::Database)?;
        let get = format!("SELECT value FROM {table} WHERE name = $1");
        let found: Option<i64> = sqlx::query_scalar(&get)
            .bind("schema_version")
            .fetch_optional(&mut *$tx)
            .await
            .map_err(Error::Database)?;
        let current = found.unwrap_or(0);
        if current > schema.version {
            return Err(Error::SchemaTooNew {
                found: current,
                supported: schema.version,
            });
        }
        for m in $migrator.iter().filter(|m| m.version > current) {
            if !m.migration_type.is_up_migration() {
                continue;
            }
            sqlx::raw_sql(&m.sql)
                .execute(&mut *$tx)
                .await
                .map_err(|source| Error::Migration {
                    version: m.version,
                    description: m.description.to_string(),
                    source,
                })?;
        }
        if current < schema.version {
            sqlx::query(&format!(
                "INSERT INTO {table} (name, value) VALUES ('schema_version', $1) \
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value"
            ))
            .bind(schema.version)
            .execute(&mut *$tx)
            .await
            .map_err(Error::Database)?;
        }
        let seed: Option<(&str, i64)> = $seed;
        match seed {
            None => None,
            Some((name, value)) => {
                sqlx::query(&format!(
                    "INSERT INTO {table} (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING"
                ))
                .bind(name)
                .bind(value)
                .execute(&mut *$tx)
                .await
                .map_err(Error::Database)?;
                let kept: i64 = sqlx::query_scalar(&get)
                    .bind(name)
                    .fetch_one(&mut *$tx)
                    .await
                    .map_err(Error::Database)?;
                Some(kept)
            }
        }
    }};
}

/// Creates or upgrades a crate's SQLite tables in one `BEGIN IMMEDIATE`
/// transaction: the meta table, every migration of `migrator` newer than
/// the recorded version, the new version. `seed` (`name`, `value`) is
/// stored if the meta table has no `name` yet; the answer is the value
/// stored under it (the first process's, forever after).
///
/// # Errors
///
/// [`Error::SchemaTooNew`], [`Error::Migration`] (rolled back),
/// [`Error::Unreachable`] or [`Error::Database`].
///
/// # Examples
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::time::Duration;
/// static NONE: sqlx::migrate::Migrator = sqlx::migrate::Migrator::DEFAULT;
/// let schema = mq_db::Schema { meta_table: "my_meta", version: 0, pg_lock: 1 };
/// let pool = mq_db::connect_sqlite("sqlite::memory:", 1, Duration::from_secs(5), true).await?;
/// let first = mq_db::migrate_sqlite(&pool, &schema, &NONE, Some(("id", 7))).await?;
/// let again = mq_db::migrate_sqlite(&pool, &schema, &NONE, Some(("id", 8))).await?;
/// assert_eq!((first, again), (Some(7), Some(7)));
/// # Ok::<(), mq_db::Error>(()) }).unwrap();
/// ```
#[cfg(feature = "sqlite")]
pub async fn migrate_sqlite(
    pool: &SqlitePool,
    schema: &Schema,
    migrator: &Migrator,
    seed: Option<(&str, i64)>,
) -> Result<Option<i64>, Error> {
    let mut tx = pool
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(Error::Unreachable)?;
    let kept = migrate_in!(tx, schema, migrator, seed);
    tx.commit().await.map_err(Error::Database)?;
    Ok(kept)
}

/// `migrate_sqlite` on Postgres: the same steps in one transaction that
/// first takes the advisory lock [`Schema::pg_lock`].
///
/// # Errors
///
/// As `migrate_sqlite`.
///
/// # Examples
///
/// ```no_run
/// # async fn f(pool: sqlx::PgPool) -> Result<(), mq_db::Error> {
/// static NONE: sqlx::migrate::Migrator = sqlx::migrate::Migrator::DEFAULT;
/// let schema = mq_db::Schema { meta_table: "my_meta", version: 0, pg_lock: 1 };
/// mq_db::migrate_postgres(&pool, &schema, &NONE, None).await?;
/// # Ok(()) }
/// ```
#[cfg(feature = "postgres")]
pub async fn migrate_postgres(
    pool: &PgPool,
    schema: &Schema,
    migrator: &Migrator,
    seed: Option<(&str, i64)>,
) -> Result<Option<i64>, Error> {
    let mut tx = pool.begin().await.map_err(Error::Unreachable)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(schema.pg_lock)
        .execute(&mut *tx)
        .await
        .map_err(Error::Database)?;
    let kept = migrate_in!(tx, schema, migrator, seed);
    tx.commit().await.map_err(Error::Database)?;
    Ok(kept)
}

/// Reads the durability pragmas back and fails if they did not take:
/// WAL journal (or `memory` for an in-memory database), a positive
/// `busy_timeout`, and `synchronous` FULL or EXTRA.
///
/// # Errors
///
/// [`Error::Pragma`] naming the setting, or [`Error::Unreachable`] /
/// [`Error::Database`].
///
/// # Examples
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::str::FromStr;
/// use sqlx::sqlite::SqliteConnectOptions;
/// // A pool opened elsewhere, where writers would fail instead of waiting:
/// let opts = SqliteConnectOptions::from_str("sqlite::memory:")
///     .unwrap()
///     .busy_timeout(std::time::Duration::ZERO);
/// let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
/// let e = mq_db::check_sqlite_pragmas(&pool).await.unwrap_err();
/// assert!(e.to_string().contains("busy_timeout"));
/// # });
/// ```
#[cfg(feature = "sqlite")]
pub async fn check_sqlite_pragmas(pool: &SqlitePool) -> Result<(), Error> {
    let mut conn = pool.acquire().await.map_err(Error::Unreachable)?;
    let file: Option<String> =
        sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
            .fetch_optional(&mut *conn)
            .await
            .map_err(Error::Database)?;
    let in_memory = file.as_deref().unwrap_or("").is_empty();
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut *conn)
        .await
        .map_err(Error::Database)?;
    let journal = journal.to_ascii_lowercase();
    if !(journal == "wal" || (in_memory && journal == "memory")) {
        return Err(Error::Pragma {
            name: "journal_mode",
            expected: "WAL",
            found: journal,
        });
    }
    let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(&mut *conn)
        .await
        .map_err(Error::Database)?;
    let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
        .fetch_one(&mut *conn)
        .await
        .map_err(Error::Database)?;
    if busy <= 0 {
        return Err(Error::Pragma {
            name: "busy_timeout",
            expected: "a positive timeout (writers wait instead of failing)",
            found: busy.to_string(),
        });
    }
    if sync < 2 && !in_memory {
        return Err(Error::Pragma {
            name: "synchronous",
            expected: "FULL (2) or EXTRA (3)",
            found: sync.to_string(),
        });
    }
    Ok(())
}
