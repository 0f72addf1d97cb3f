//! The SQL plumbing `mq-outbox` and `mq-inbox` share, written once:
//! opening a database with the settings durability needs, reading them
//! back, and applying a crate's embedded migrations.
//!
//! What it guarantees: a SQLite database opened by `connect_sqlite` uses
//! WAL, `synchronous=FULL` and a busy timeout, and `check_sqlite_pragmas`
//! refuses a pool (opened anywhere) where those did not take. A migration
//! by `migrate_sqlite` or `migrate_postgres` is one transaction
//! (serialised between processes: `BEGIN IMMEDIATE` on SQLite, an advisory
//! lock on Postgres): it applies every embedded migration newer than the
//! version recorded in the crate's meta table, records the new version, and
//! refuses a database whose version is newer than the library's
//! ([`Error::SchemaTooNew`]).
//!
//! What it does not do: down migrations, or any query of the crates' own
//! tables.
//!
//! # Layout
//!
//! * `connect`: `connect_sqlite`, `connect_postgres`, [`is_sqlite_url`],
//!   [`is_postgres_url`], [`redact`].
//! * `schema`: [`Schema`], `migrate_sqlite`, `migrate_postgres`,
//!   `check_sqlite_pragmas`.
//! * `target`: [`open_target!`], the crates' `OpenTarget` and `Db` enums.
//! * this file: [`Error`], [`open_error_from!`], [`now_ms`].
//!
//! Why the version lives in the crate's own table (`name TEXT PRIMARY KEY,
//! value BIGINT`) and not in `_sqlx_migrations`: an application that runs
//! its own sqlx migrations on the same database would otherwise see our
//! versions as "previously applied but missing" (and the version numbers
//! could collide). The same table holds other values a crate keeps
//! (`seed` in `migrate_sqlite`: the outbox's producer id).
//!
//! Features `sqlite` and `postgres` choose the databases compiled in.

use std::time::{SystemTime, UNIX_EPOCH};

mod connect;
mod schema;
mod target;

#[cfg(feature = "postgres")]
pub use connect::connect_postgres;
#[cfg(feature = "sqlite")]
pub use connect::connect_sqlite;
pub use connect::{is_postgres_url, is_sqlite_url, redact};
#[cfg(feature = "postgres")]
pub use schema::migrate_postgres;
pub use schema::Schema;
#[cfg(feature = "sqlite")]
pub use schema::{check_sqlite_pragmas, migrate_sqlite};

/// Opening or migrating failed. Each crate turns it into its own
/// `OpenError` (whose messages name the crate).
///
/// # Examples
///
/// ```
/// let e = mq_db::Error::SchemaTooNew { found: 9, supported: 1 };
/// assert_eq!(e.to_string(), "database schema version 9 is newer than this library's 1");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL is neither `sqlite:` nor `postgres:`/`postgresql:`, or
    /// names a kind the crate was built without (the URL is redacted).
    #[error("unsupported database URL {0:?}: expected sqlite:... or postgres://...")]
    UnsupportedUrl(String),
    /// The database could not be reached or the URL is malformed.
    #[error("cannot connect to the database: {0}")]
    Unreachable(#[source] sqlx::Error),
    /// A migration failed; the transaction was rolled back.
    #[error("migration {version} ({description}) failed: {source}")]
    Migration {
        /// Version of the failed migration.
        version: i64,
        /// Its description.
        description: String,
        /// The database's error.
        #[source]
        source: sqlx::Error,
    },
    /// The tables were created by a newer library.
    #[error("database schema version {found} is newer than this library's {supported}")]
    SchemaTooNew {
        /// The version recorded in the meta table.
        found: i64,
        /// The newest version this library knows.
        supported: i64,
    },
    /// A SQLite setting durability relies on did not take.
    #[error("SQLite pragma {name} is {found:?} but {expected} is needed")]
    Pragma {
        /// The pragma.
        name: &'static str,
        /// What is needed.
        expected: &'static str,
        /// What the connection reported.
        found: String,
    },
    /// Another database error.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
}

/// Wall-clock unix milliseconds: the time base of the crates' stored
/// timestamps and leases. Processes sharing one database need
/// synchronised clocks (NTP).
///
/// # Examples
///
/// ```
/// assert!(mq_db::now_ms() > 1_600_000_000_000);
/// ```
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Implements `From<mq_db::Error>` for a crate's own open error, an enum
/// with the variants `UnsupportedUrl(String)`, `Unreachable(sqlx::Error)`, `Migration { version,
/// description, source }`, `SchemaTooNew { found, supported }`, `Pragma {
/// name, expected, found }` and `Database(sqlx::Error)` (whose messages
/// name that crate). A variant added here later arrives as `Database`.
///
/// # Examples
///
/// ```
/// #[derive(Debug)]
/// enum OpenError {
///     UnsupportedUrl(String),
///     Unreachable(sqlx::Error),
///     Migration { version: i64, description: String, source: sqlx::Error },
///     SchemaTooNew { found: i64, supported: i64 },
///     Pragma { name: &'static str, expected: &'static str, found: String },
///     Database(sqlx::Error),
/// }
/// mq_db::open_error_from!(OpenError);
/// let e: OpenError = mq_db::Error::SchemaTooNew { found: 3, supported: 2 }.into();
/// assert!(matches!(e, OpenError::SchemaTooNew { found: 3, supported: 2 }));
/// ```
#[macro_export]
macro_rules! open_error_from {
    ($t:ty) => {
        impl ::core::convert::From<$crate::Error> for $t {
            fn from(e: $crate::Error) -> Self {
                match e {
                    $crate::Error::UnsupportedUrl(url) => Self::UnsupportedUrl(url),
                    $crate::Error::Unreachable(e) => Self::Unreachable(e),
                    $crate::Error::Migration {
                        version,
                        description,
                        source,
                    } => Self::Migration {
                        version,
                        description,
                        source,
                    },
                    $crate::Error::SchemaTooNew { found, supported } => {
                        Self::SchemaTooNew { found, supported }
                    }
                    $crate::Error::Pragma {
                        name,
                        expected,
                        found,
                    } => Self::Pragma {
                        name,
                        expected,
                        found,
                    },
                    $crate::Error::Database(e) => Self::Database(e),
                    other => Self::Database(::sqlx::Error::Protocol(other.to_string())),
                }
            }
        }
    };
}
