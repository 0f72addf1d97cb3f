//! One error enum per operation: opening, enqueueing, dispatching and
//! administration.

use crate::config::ConfigError;

/// [`Outbox::open`](crate::Outbox::open) failed.
///
/// # Examples
///
/// ```
/// let e = mq_outbox::OpenError::SchemaTooNew { found: 9, supported: 1 };
/// assert_eq!(e.to_string(),
///     "database schema version 9 is newer than this library's 1; upgrade mq-outbox");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The configuration is invalid; fix the named field.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The URL is neither `sqlite:` nor `postgres:`/`postgresql:`.
    #[error("unsupported database URL {0:?}: expected sqlite:... or postgres://... (each needs its cargo feature of mq-outbox, `sqlite` or `postgres`; both are on by default)")]
    UnsupportedUrl(String),
    /// The database could not be reached or the URL is malformed; check the
    /// URL, credentials, file permissions and that the server runs.
    #[error("cannot connect to the outbox database: {0}")]
    Unreachable(#[source] sqlx::Error),
    /// A migration of the outbox tables failed; the transaction was rolled
    /// back and the schema is unchanged. See the inner error.
    #[error("outbox migration {version} ({description}) failed: {source}")]
    Migration {
        /// Version of the failed migration.
        version: i64,
        /// Its description.
        description: String,
        /// The database's error.
        #[source]
        source: sqlx::Error,
    },
    /// The tables were created by a newer mq-outbox; upgrade this program
    /// (older code could corrupt rows it does not understand).
    #[error("database schema version {found} is newer than this library's {supported}; upgrade mq-outbox")]
    SchemaTooNew {
        /// The version recorded in `mq_outbox_meta`.
        found: i64,
        /// The newest version this library knows.
        supported: i64,
    },
    /// A SQLite setting the outbox relies on for durability did not take
    /// (for example a pool opened elsewhere without WAL or with
    /// `synchronous=OFF`). Open the pool with the named setting.
    #[error("SQLite pragma {name} is {found:?} but the outbox needs {expected}")]
    Pragma {
        /// The pragma.
        name: &'static str,
        /// What the outbox needs.
        expected: &'static str,
        /// What the connection reported.
        found: String,
    },
    /// Another database error while preparing the outbox.
    #[error("outbox database error while opening: {0}")]
    Database(#[source] sqlx::Error),
}

// The shared opening and migration steps (`mq-db`) report in this crate's
// words: `From<mq_db::Error>`, variant by variant.
mq_db::open_error_from!(OpenError);

/// [`Outbox::enqueue`](crate::Outbox::enqueue) refused the message; the
/// caller's transaction is untouched and may still be committed or rolled back.
///
/// # Examples
///
/// ```
/// let e = mq_outbox::EnqueueError::TooLarge { size: 2_000_000, max: 1_048_576 };
/// assert!(e.to_string().contains("2000000"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnqueueError {
    /// The topic is empty or longer than [`mq_protocol::MAX_TOPIC_LEN`] bytes.
    #[error("invalid topic: length {0} is outside 1..=255 bytes")]
    InvalidTopic(usize),
    /// The headers break the protocol's bounds (count or total size).
    #[error("invalid headers: {0}")]
    InvalidHeaders(#[source] mq_protocol::ProtocolError),
    /// The message would exceed `OutboxConfig::max_message_bytes`; the
    /// broker could never accept it. Split it or store it elsewhere.
    #[error("message of {size} bytes exceeds the outbox maximum of {max} bytes")]
    TooLarge {
        /// Encoded size of the message.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The transaction belongs to another kind of database than the outbox
    /// (for example a SQLite transaction passed to a Postgres outbox).
    #[error("transaction is on {transaction} but the outbox is on {outbox}")]
    WrongDatabase {
        /// The outbox's database kind.
        outbox: &'static str,
        /// The transaction's database kind.
        transaction: &'static str,
    },
    /// The insert failed; the caller should roll its transaction back.
    #[error("outbox insert failed: {0}")]
    Database(#[from] sqlx::Error),
}

/// Why one attempt to hand a row to the broker did not end in a confirm.
/// Returned by a [`Dispatch`](crate::Dispatch) implementation.
///
/// # Examples
///
/// ```
/// let e = mq_outbox::DispatchError::Transient("connection reset".into());
/// assert!(!e.is_permanent());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DispatchError {
    /// The broker may accept the same message later (unreachable, timed
    /// out, transient rejection). The row is retried after a backoff until
    /// `max_attempts` is reached.
    #[error("transient dispatch failure: {0}")]
    Transient(String),
    /// Sending the same bytes again cannot succeed (permanent rejection).
    /// The row becomes failed at once.
    #[error("permanent dispatch failure: {0}")]
    Permanent(String),
}

impl DispatchError {
    /// True for [`DispatchError::Permanent`].
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(mq_outbox::DispatchError::Permanent("too big".into()).is_permanent());
    /// ```
    pub fn is_permanent(&self) -> bool {
        matches!(self, DispatchError::Permanent(_))
    }
}

/// An administrative call ([`Outbox::list_failed`](crate::Outbox::list_failed),
/// [`Outbox::requeue`](crate::Outbox::requeue), ...) failed; nothing was
/// changed (each call is one transaction).
///
/// # Examples
///
/// ```
/// let e = mq_outbox::AdminError::Timeout;
/// assert_eq!(e.to_string(), "timed out waiting for the outbox condition");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The database refused or could not be reached; retry later.
    #[error("outbox database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored row could not be decoded (corrupted headers or a negative
    /// sequence); the row is left as is for a person to inspect.
    #[error("outbox row {seq} is corrupt: {reason}")]
    CorruptRow {
        /// The row's sequence.
        seq: i64,
        /// What is wrong.
        reason: String,
    },
    /// [`Outbox::wait_for`](crate::Outbox::wait_for) gave up.
    #[error("timed out waiting for the outbox condition")]
    Timeout,
}
