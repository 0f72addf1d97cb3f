//! One error enum per operation: opening, marking, administration.

use crate::config::ConfigError;

/// [`Inbox::open`](crate::Inbox::open) failed.
///
/// # Examples
///
/// ```
/// let e = mq_inbox::OpenError::SchemaTooNew { found: 9, supported: 1 };
/// assert_eq!(e.to_string(),
///     "inbox schema version 9 is newer than this library's 1; upgrade mq-inbox");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The configuration is invalid; fix the named field.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The URL is neither `sqlite:` nor `postgres:`/`postgresql:`.
    #[error("unsupported database URL {0:?}: expected sqlite:... or postgres://... (each needs its cargo feature of mq-inbox, `sqlite` or `postgres`; both are on by default)")]
    UnsupportedUrl(String),
    /// The database could not be reached or the URL is malformed; check the
    /// URL, credentials, file permissions and that the server runs.
    #[error("cannot connect to the inbox database: {0}")]
    Unreachable(#[source] sqlx::Error),
    /// A migration of the inbox tables failed; the transaction was rolled
    /// back and the schema is unchanged. See the inner error.
    #[error("inbox migration {version} ({description}) failed: {source}")]
    Migration {
        /// Version of the failed migration.
        version: i64,
        /// Its description.
        description: String,
        /// The database's error.
        #[source]
        source: sqlx::Error,
    },
    /// The tables were created by a newer mq-inbox; upgrade this program
    /// (older code could misread ranges it does not understand).
    #[error(
        "inbox schema version {found} is newer than this library's {supported}; upgrade mq-inbox"
    )]
    SchemaTooNew {
        /// The version recorded in `mq_inbox_meta`.
        found: i64,
        /// The newest version this library knows.
        supported: i64,
    },
    /// A SQLite setting the inbox relies on for durability did not take
    /// (for example a pool opened elsewhere without WAL or with
    /// `synchronous=OFF`). Open the pool with the named setting.
    #[error("SQLite pragma {name} is {found:?} but the inbox needs {expected}")]
    Pragma {
        /// The pragma.
        name: &'static str,
        /// What the inbox needs.
        expected: &'static str,
        /// What the connection reported.
        found: String,
    },
    /// Another database error while preparing the inbox.
    #[error("inbox database error while opening: {0}")]
    Database(#[source] sqlx::Error),
}

// The shared opening and migration steps (`mq-db`) report in this crate's
// words: `From<mq_db::Error>`, variant by variant.
mq_db::open_error_from!(OpenError);

/// Looking up or marking an ID failed. Inside a handler transaction: the
/// transaction must be rolled back (the transactional handler does it and
/// nacks, so the message comes back).
///
/// # Examples
///
/// ```
/// let e = mq_inbox::InboxError::WrongDatabase { inbox: "Postgres", transaction: "SQLite" };
/// assert!(e.to_string().contains("SQLite"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InboxError {
    /// The transaction or handler belongs to another kind of database than
    /// the inbox; open the inbox on the business database.
    #[error("transaction is on {transaction} but the inbox is on {inbox}")]
    WrongDatabase {
        /// The inbox's database kind.
        inbox: &'static str,
        /// The transaction's database kind.
        transaction: &'static str,
    },
    /// The database failed; retry later (the message is redelivered).
    #[error("inbox database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// An administrative call ([`Inbox::stats`](crate::Inbox::stats),
/// [`Inbox::compact`](crate::Inbox::compact), a purge) failed; each call is
/// one transaction, so nothing was changed.
///
/// # Examples
///
/// ```
/// let e = mq_inbox::AdminError::Database(sqlx::Error::PoolClosed);
/// assert!(e.to_string().starts_with("inbox admin"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The database failed; nothing was changed.
    #[error("inbox admin query failed: {0}")]
    Database(#[from] sqlx::Error),
}
