//! [`Outbox`]: opening the database, the shared handle, and wake-ups.

use std::sync::Arc;

#[cfg(feature = "postgres")]
use sqlx::PgPool;
#[cfg(feature = "sqlite")]
use sqlx::SqlitePool;
use tokio::sync::watch;

use crate::config::OutboxConfig;
use crate::dispatcher::{Dispatch, Dispatcher};
use crate::error::OpenError;
use crate::schema;

mq_db::open_target! {
    /// Where [`Outbox::open`] finds its database: a URL, or a pool the
    /// application already has (so the outbox shares the business tables'
    /// database and the caller's transactions can include outbox rows).
    ///
    /// # Examples
    ///
    /// ```
    /// let t: mq_outbox::OpenTarget = "sqlite::memory:".into();
    /// assert!(matches!(t, mq_outbox::OpenTarget::Url(_)));
    /// let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite::memory:".into());
    /// let t = mq_outbox::OpenTarget::from(&url); // a &String works too
    /// assert!(matches!(t, mq_outbox::OpenTarget::Url(_)));
    /// ```
}

/// The lease owner of an SQLite outbox without [`OutboxConfig::owner`]: one
/// producer process per database file.
#[cfg(feature = "sqlite")]
pub(crate) const SQLITE_SINGLE_PRODUCER: &str = "sqlite-single-producer";

/// Runs `$body` in a short write transaction on `$db`: `BEGIN IMMEDIATE` on
/// SQLite (take the write lock up front, so a busy database waits for
/// `busy_timeout` instead of failing on upgrade), plain `BEGIN` on Postgres.
/// `$lock` is `" FOR UPDATE SKIP LOCKED"` on Postgres and `""` on SQLite,
/// for claiming subqueries. `?` inside the body rolls back.
macro_rules! write_tx {
    ($db:expr, |$tx:ident, $lock:ident| $body:expr) => {
        match $db {
            #[cfg(feature = "sqlite")]
            $crate::outbox::Db::Sqlite(pool) => {
                let mut $tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                #[allow(unused_variables)]
                let $lock = "";
                let out = $body;
                $tx.commit().await?;
                out
            }
            #[cfg(feature = "postgres")]
            $crate::outbox::Db::Postgres(pool) => {
                let mut $tx = pool.begin().await?;
                #[allow(unused_variables)]
                let $lock = " FOR UPDATE SKIP LOCKED";
                let out = $body;
                $tx.commit().await?;
                out
            }
        }
    };
}
pub(crate) use write_tx;

/// Runs `$body` with a pooled connection `$conn` for reads.
macro_rules! read_conn {
    ($db:expr, |$conn:ident| $body:expr) => {
        match $db {
            #[cfg(feature = "sqlite")]
            $crate::outbox::Db::Sqlite(pool) => {
                let mut $conn = pool.acquire().await?;
                $body
            }
            #[cfg(feature = "postgres")]
            $crate::outbox::Db::Postgres(pool) => {
                let mut $conn = pool.acquire().await?;
                $body
            }
        }
    };
}
pub(crate) use read_conn;

pub(crate) struct Inner {
    pub(crate) db: Db,
    pub(crate) config: OutboxConfig,
    pub(crate) producer_id: u64,
    /// Who claims rows: `config.owner`, or on SQLite the database's single
    /// producer ([`SQLITE_SINGLE_PRODUCER`]); `None` (Postgres without an
    /// owner) means leases cannot be attributed.
    pub(crate) owner: Option<String>,
    /// Random per `open`: tells this run's leases from an earlier run's.
    pub(crate) instance: i64,
    /// Bumped by [`Outbox::notify`]; every dispatcher watches it.
    pub(crate) enqueued: watch::Sender<u64>,
    /// Bumped whenever a dispatcher confirms or fails rows.
    pub(crate) settled: watch::Sender<u64>,
}

/// A durable outbox on SQLite or Postgres. Cheap to clone (one `Arc`).
///
/// Open it once per process with [`Outbox::open`], write rows with
/// [`Outbox::enqueue`] inside your business transactions, call
/// [`Outbox::notify`] after committing, and run one
/// [`Dispatcher`] (see [`Outbox::dispatcher`]).
///
/// # Examples
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let outbox = mq_outbox::Outbox::open("sqlite::memory:", Default::default()).await?;
/// let handle = outbox.clone(); // shares the pool and the producer id
/// assert_eq!(handle.producer_id(), outbox.producer_id());
/// # Ok::<(), mq_outbox::OpenError>(()) }).unwrap();
/// ```
#[derive(Clone)]
pub struct Outbox {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("db", &self.inner.db.kind())
            .field(
                "producer_id",
                &format_args!("{:016x}", self.inner.producer_id),
            )
            .finish_non_exhaustive()
    }
}

impl Outbox {
    /// Opens (and creates or upgrades) the outbox tables.
    ///
    /// SQLite URLs get WAL, `synchronous=FULL` and `busy_timeout`; the
    /// pragmas are read back and a setting that did not take is an error.
    /// The first open of a database draws the outbox's producer id; later
    /// opens, in any process, read the same one.
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
    /// # async fn f() -> Result<(), mq_outbox::OpenError> {
    /// use mq_outbox::{Outbox, OutboxConfig};
    /// let outbox = Outbox::open("sqlite:orders.db", OutboxConfig::default()).await?;
    /// let shared = Outbox::open("postgres://app:pw@db/orders", OutboxConfig::default()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn open(
        target: impl Into<OpenTarget>,
        config: OutboxConfig,
    ) -> Result<Outbox, OpenError> {
        config.validate()?;
        // In memory: a shared-cache pool of `max_connections`.
        let (n, busy) = (config.max_connections, config.busy_timeout);
        let db = Db::connect(target.into(), n, busy, false).await?;
        let producer_id = match &db {
            #[cfg(feature = "sqlite")]
            Db::Sqlite(pool) => schema::open_sqlite(pool).await?,
            #[cfg(feature = "postgres")]
            Db::Postgres(pool) => schema::open_postgres(pool).await?,
        };
        let owner = match (&config.owner, &db) {
            (Some(o), _) => Some(o.clone()),
            #[cfg(feature = "sqlite")]
            (None, Db::Sqlite(_)) => Some(SQLITE_SINGLE_PRODUCER.to_owned()),
            #[cfg(feature = "postgres")]
            (None, Db::Postgres(_)) => None,
        };
        let instance = rand::Rng::gen_range(&mut rand::thread_rng(), 1..=i64::MAX);
        tracing::debug!(
            db = db.kind(),
            producer_id,
            ?owner,
            instance,
            "outbox opened"
        );
        Ok(Outbox {
            inner: Arc::new(Inner {
                db,
                config,
                producer_id,
                owner,
                instance,
                enqueued: watch::channel(0).0,
                settled: watch::channel(0).0,
            }),
        })
    }

    /// The outbox's stable producer id: the `producer` half of every row's
    /// [`MessageId`](mq_protocol::MessageId). Give it to the sender
    /// (`SenderConfig::producer_id`) that dispatches the rows.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let a = mq_outbox::Outbox::open("sqlite::memory:", Default::default()).await.unwrap();
    /// println!("{:016x}", a.producer_id());
    /// # });
    /// ```
    pub fn producer_id(&self) -> u64 {
        self.inner.producer_id
    }

    /// The configuration the outbox was opened with.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let o = mq_outbox::Outbox::open("sqlite::memory:", Default::default()).await.unwrap();
    /// assert_eq!(o.config().max_attempts, 5);
    /// # });
    /// ```
    pub fn config(&self) -> &OutboxConfig {
        &self.inner.config
    }

    /// The SQLite pool, when the outbox is on SQLite. Begin business
    /// transactions with `pool.begin_with("BEGIN IMMEDIATE")` so that a
    /// busy database makes them wait instead of failing mid-way.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let o = mq_outbox::Outbox::open("sqlite::memory:", Default::default()).await.unwrap();
    /// assert!(o.sqlite_pool().is_some() && o.pg_pool().is_none());
    /// # });
    /// ```
    #[cfg(feature = "sqlite")]
    pub fn sqlite_pool(&self) -> Option<&SqlitePool> {
        match &self.inner.db {
            Db::Sqlite(p) => Some(p),
            #[cfg(feature = "postgres")]
            Db::Postgres(_) => None,
        }
    }

    /// The Postgres pool, when the outbox is on Postgres.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// let o = mq_outbox::Outbox::open("postgres://app@db/orders", Default::default()).await?;
    /// let mut tx = o.pg_pool().ok_or("not postgres")?.begin().await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "postgres")]
    pub fn pg_pool(&self) -> Option<&PgPool> {
        match &self.inner.db {
            Db::Postgres(p) => Some(p),
            #[cfg(feature = "sqlite")]
            Db::Sqlite(_) => None,
        }
    }

    /// Wakes this process's dispatchers so they send newly committed rows
    /// at once instead of at the next poll. Call it after committing a
    /// transaction that enqueued rows. Calling it without new rows is
    /// harmless; forgetting it only delays sending by up to
    /// `poll_interval`.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let o = mq_outbox::Outbox::open("sqlite::memory:", Default::default()).await.unwrap();
    /// o.notify();
    /// # });
    /// ```
    pub fn notify(&self) {
        self.inner.enqueued.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A dispatcher that sends this outbox's rows through `dispatch`
    /// (usually an `mq_client_sender::Sender` whose producer id is
    /// [`Outbox::producer_id`]). Start it with [`Dispatcher::spawn`] or
    /// [`Dispatcher::run`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(outbox: mq_outbox::Outbox, sender: mq_client_sender::Sender) {
    /// let handle = outbox.dispatcher(sender).spawn();
    /// // ... later, on shutdown:
    /// handle.shutdown().await;
    /// # }
    /// ```
    pub fn dispatcher<D: Dispatch>(&self, dispatch: D) -> Dispatcher<D> {
        Dispatcher::new(self.clone(), dispatch)
    }

    pub(crate) fn db(&self) -> &Db {
        &self.inner.db
    }

    pub(crate) fn settled(&self) {
        self.inner.settled.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// Wall-clock unix milliseconds: the time base of every stored timestamp
/// and lease. Processes sharing one database need synchronised clocks
/// (NTP); keep the lease far above the skew.
pub(crate) use mq_db::now_ms;
