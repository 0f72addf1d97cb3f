//! [`Inbox`]: opening the database and the shared handle.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[cfg(feature = "postgres")]
use sqlx::PgPool;
#[cfg(feature = "sqlite")]
use sqlx::SqlitePool;

use crate::config::InboxConfig;
use crate::error::OpenError;
use crate::schema;

mq_db::open_target! {
    /// Where [`Inbox::open`] finds its database: a URL, or a pool the
    /// application already has. Use the business tables' database, so that a
    /// handler's writes and the inbox mark can share one transaction.
    ///
    /// # Examples
    ///
    /// ```
    /// let t: mq_inbox::OpenTarget = "sqlite::memory:".into();
    /// assert!(matches!(t, mq_inbox::OpenTarget::Url(_)));
    /// ```
}

/// Counters of this process's inbox use (not persisted).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) applied: AtomicU64,
    pub(crate) found: AtomicU64,
    pub(crate) raced: AtomicU64,
    pub(crate) rolled_back: AtomicU64,
    pub(crate) forgotten: AtomicU64,
}

pub(crate) struct Inner {
    pub(crate) db: Db,
    pub(crate) config: InboxConfig,
    pub(crate) counters: Counters,
    /// Unix ms of the last retention pass started by `DedupStore::expire`.
    pub(crate) last_compact: AtomicU64,
}

/// A durable inbox on SQLite or Postgres: the set of processed message IDs,
/// kept as exact ranges per producer. Cheap to clone (one `Arc`).
///
/// Use it in one of two forms (see the [crate docs](crate)):
/// [`Inbox::handler`] (the handler's writes and the mark in one
/// transaction) or [`Inbox::dedup_store`] (a
/// [`DedupStore`](mq_client_receiver::DedupStore) marked after the handler
/// returns).
///
/// # Examples
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let inbox = mq_inbox::Inbox::open("sqlite::memory:", Default::default()).await?;
/// assert_eq!(inbox.stats().await.unwrap().ranges, 0);
/// # Ok::<(), mq_inbox::OpenError>(()) }).unwrap();
/// ```
#[derive(Clone)]
pub struct Inbox {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox")
            .field("db", &self.inner.db.kind())
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// What this process did through an [`Inbox`] since it was opened
/// (not persisted; the database holds the durable state).
///
/// # Examples
///
/// ```
/// let c = mq_inbox::InboxCounters::default();
/// assert_eq!(c.applied, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct InboxCounters {
    /// Deliveries whose handler transaction committed with a new mark.
    pub applied: u64,
    /// Deliveries found already processed before calling the handler
    /// (acked without calling it).
    pub found: u64,
    /// Deliveries whose mark found the ID processed by a concurrent
    /// transaction after the handler ran: rolled back, then acked.
    pub raced: u64,
    /// Handler transactions rolled back because of an error (nacked).
    pub rolled_back: u64,
    /// Ranges or producers this process deleted under the retention rule.
    pub forgotten: u64,
}

impl Inbox {
    /// Opens (and creates or upgrades) the inbox tables `mq_inbox_meta`,
    /// `mq_inbox_producers` and `mq_inbox_ranges`.
    ///
    /// SQLite URLs get WAL, `synchronous=FULL` and `busy_timeout`; the
    /// pragmas are read back and a setting that did not take is an error.
    ///
    /// # Errors
    ///
    /// [`OpenError`]: invalid config, unreachable database, failed
    /// migration, a schema newer than this library, or missing pragmas.
    ///
    /// # Cancel safety
    ///
    /// Cancelling leaves the database as it was or fully migrated (the
    /// migration is one transaction).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), mq_inbox::OpenError> {
    /// use mq_inbox::{Inbox, InboxConfig};
    /// let local = Inbox::open("sqlite:billing.db", InboxConfig::default()).await?;
    /// let shared = Inbox::open("postgres://app:pw@db/billing", InboxConfig::default()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn open(
        target: impl Into<OpenTarget>,
        config: InboxConfig,
    ) -> Result<Inbox, OpenError> {
        config.validate()?;
        // In memory, one connection: each connection of a `mode=memory`
        // URL would otherwise get its own database.
        let (n, busy) = (config.max_connections, config.busy_timeout);
        let db = Db::connect(target.into(), n, busy, true).await?;
        match &db {
            #[cfg(feature = "sqlite")]
            Db::Sqlite(pool) => schema::open_sqlite(pool).await?,
            #[cfg(feature = "postgres")]
            Db::Postgres(pool) => schema::open_postgres(pool).await?,
        }
        tracing::debug!(db = db.kind(), "inbox opened");
        Ok(Inbox {
            inner: Arc::new(Inner {
                db,
                config,
                counters: Counters::default(),
                last_compact: AtomicU64::new(now_ms() as u64),
            }),
        })
    }

    /// The configuration the inbox was opened with.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let i = mq_inbox::Inbox::open("sqlite::memory:", Default::default()).await.unwrap();
    /// assert_eq!(i.config().max_connections, 8);
    /// # });
    /// ```
    pub fn config(&self) -> &InboxConfig {
        &self.inner.config
    }

    /// The SQLite pool, when the inbox is on SQLite. Begin business
    /// transactions with `pool.begin_with("BEGIN IMMEDIATE")`.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let i = mq_inbox::Inbox::open("sqlite::memory:", Default::default()).await.unwrap();
    /// assert!(i.sqlite_pool().is_some() && i.pg_pool().is_none());
    /// # });
    /// ```
    #[cfg(feature = "sqlite")]
    pub fn sqlite_pool(&self) -> Option<&SqlitePool> {
        match &self.inner.db {
            #[cfg(feature = "sqlite")]
            Db::Sqlite(p) => Some(p),
            #[cfg(feature = "postgres")]
            Db::Postgres(_) => None,
        }
    }

    /// The Postgres pool, when the inbox is on Postgres.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// let i = mq_inbox::Inbox::open("postgres://app@db/billing", Default::default()).await?;
    /// let mut tx = i.pg_pool().ok_or("not postgres")?.begin().await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "postgres")]
    pub fn pg_pool(&self) -> Option<&PgPool> {
        match &self.inner.db {
            #[cfg(feature = "postgres")]
            Db::Postgres(p) => Some(p),
            #[cfg(feature = "sqlite")]
            Db::Sqlite(_) => None,
        }
    }

    /// `"SQLite"` or `"Postgres"`.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let i = mq_inbox::Inbox::open("sqlite::memory:", Default::default()).await.unwrap();
    /// assert_eq!(i.kind(), "SQLite");
    /// # });
    /// ```
    pub fn kind(&self) -> &'static str {
        self.inner.db.kind()
    }

    /// This process's counters.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let i = mq_inbox::Inbox::open("sqlite::memory:", Default::default()).await.unwrap();
    /// assert_eq!(i.counters().found, 0);
    /// # });
    /// ```
    pub fn counters(&self) -> InboxCounters {
        let c = &self.inner.counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        InboxCounters {
            applied: g(&c.applied),
            found: g(&c.found),
            raced: g(&c.raced),
            rolled_back: g(&c.rolled_back),
            forgotten: g(&c.forgotten),
        }
    }

    pub(crate) fn db(&self) -> &Db {
        &self.inner.db
    }

    pub(crate) fn count(&self, f: impl FnOnce(&Counters) -> &AtomicU64, n: u64) {
        f(&self.inner.counters).fetch_add(n, Ordering::Relaxed);
    }
}

/// Wall-clock unix milliseconds: the time base of `last_active`. Hosts
/// sharing one database need synchronised clocks (NTP); the retention's
/// idle expiry should be far above the skew.
pub(crate) use mq_db::now_ms;
