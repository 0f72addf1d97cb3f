//! Opening a pool from a URL, with the settings the crates rely on.

#[cfg(feature = "sqlite")]
use std::str::FromStr;
#[cfg(feature = "sqlite")]
use std::time::Duration;

#[cfg(feature = "postgres")]
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
#[cfg(feature = "sqlite")]
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

#[cfg(any(feature = "sqlite", feature = "postgres"))]
use crate::Error;

/// Whether `url` names a SQLite database (`sqlite:...`).
///
/// # Examples
///
/// ```
/// assert!(mq_db::is_sqlite_url("sqlite::memory:"));
/// assert!(!mq_db::is_sqlite_url("postgres://db/app"));
/// ```
pub fn is_sqlite_url(url: &str) -> bool {
    url.starts_with("sqlite:")
}

/// Whether `url` names a Postgres database (`postgres:` or
/// `postgresql:`).
///
/// # Examples
///
/// ```
/// assert!(mq_db::is_postgres_url("postgresql://app@db/orders"));
/// assert!(!mq_db::is_postgres_url("mysql://db"));
/// ```
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres:") || url.starts_with("postgresql:")
}

/// Opens a SQLite pool: the file is created if missing, with WAL,
/// `synchronous=FULL` and `busy_timeout` on every connection. An
/// in-memory database (`:memory:` or `mode=memory`) keeps one connection
/// open for good (the database lives as long as one connection to it
/// does); with `one_memory_connection` it also has only that one (for a
/// URL whose connections would each get their own database).
///
/// # Errors
///
/// [`Error::Unreachable`]: a malformed URL, or the file cannot be opened.
///
/// # Examples
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::time::Duration;
/// let pool = mq_db::connect_sqlite("sqlite::memory:", 4, Duration::from_secs(5), false).await?;
/// mq_db::check_sqlite_pragmas(&pool).await?;
/// # Ok::<(), mq_db::Error>(()) }).unwrap();
/// ```
#[cfg(feature = "sqlite")]
pub async fn connect_sqlite(
    url: &str,
    max_connections: u32,
    busy_timeout: Duration,
    one_memory_connection: bool,
) -> Result<SqlitePool, Error> {
    let opts = SqliteConnectOptions::from_str(url)
        .map_err(Error::Unreachable)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(busy_timeout);
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    let mut pool = SqlitePoolOptions::new().max_connections(max_connections);
    if in_memory {
        if one_memory_connection {
            pool = pool.max_connections(1);
        }
        pool = pool
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None);
    }
    pool.connect_with(opts).await.map_err(Error::Unreachable)
}

/// Opens a Postgres pool of at most `max_connections`.
///
/// # Errors
///
/// [`Error::Unreachable`]: a malformed URL, or the server cannot be
/// reached or refuses the credentials.
///
/// # Examples
///
/// ```no_run
/// # async fn f() -> Result<(), mq_db::Error> {
/// let pool = mq_db::connect_postgres("postgres://app:pw@db/orders", 8).await?;
/// # Ok(()) }
/// ```
#[cfg(feature = "postgres")]
pub async fn connect_postgres(url: &str, max_connections: u32) -> Result<PgPool, Error> {
    let opts = url
        .parse::<PgConnectOptions>()
        .map_err(Error::Unreachable)?;
    PgPoolOptions::new()
        .max_connections(max_connections)
        .connect_with(opts)
        .await
        .map_err(Error::Unreachable)
}

/// The URL without anything that could be a password (for error
/// messages and logs).
///
/// # Examples
///
/// ```
/// assert_eq!(mq_db::redact("postgres://u:pw@h/db"), "postgres://***@h/db");
/// ```
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***{}", &url[..s], &url[at..]),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("mysql://u:pw@h/db"), "mysql://***@h/db");
        assert_eq!(redact("nope"), "nope");
    }
}
