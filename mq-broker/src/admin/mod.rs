//! The broker's admin web server (feature `admin`, on by default): pages
//! for a person, the same data and actions as a JSON API, and Prometheus
//! `/metrics`. Off unless started: `mq-broker --admin-listen
//! 127.0.0.1:7879 --admin-token ...`, or [`AdminServer::start`] in code
//! (the mock broker too, since `MockBroker` is [`Broker`]).
//!
//! # Security
//!
//! * **Actions** (requeue, purge) always need the admin token: an API
//!   client sends `Authorization: Bearer TOKEN`; a browser signs in once
//!   with the token (`POST /login`) and gets a random session cookie
//!   (`HttpOnly`, `SameSite=Strict`); every form then carries that
//!   session's CSRF token, checked on each POST. Without a configured token
//!   there are no actions at all.
//! * **Reads** (pages, `GET /api/...`, `/metrics`) need the token or a
//!   session too, unless [`AdminConfig::open_reads`] is set, which is
//!   refused on a non-loopback address.
//! * A non-loopback `listen` needs a token. The token is compared in
//!   constant time and never logged (the config's `Debug` hides it).
//! * Bad input (an unknown topic, a malformed key, a body that is not
//!   JSON) gets a 4xx with a message, never a 500.
//!
//! # Endpoints
//!
//! The JSON API is documented in `mq-broker/ADMIN.md`.
//!
//! # Layout
//!
//! * `auth`: token, sessions, CSRF.
//! * `api`: the JSON API and the actions.
//! * `pages`: the HTML pages; `html`: their layout, style and escaping.
//! * `metrics`: the Prometheus text format.
//! * `rates`: the sampler behind the per-second rates.

mod api;
mod auth;
mod html;
mod metrics;
mod pages;
mod rates;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, Weak};

use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::server::Inner;
use crate::Broker;

/// Where and how the admin server listens.
///
/// # Examples
///
/// ```
/// use mq_broker::admin::AdminConfig;
/// let c = AdminConfig::default().token("s3cret-token").open_reads(true);
/// assert!(c.validate().is_ok());
/// assert!(!format!("{c:?}").contains("s3cret-token"));
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct AdminConfig {
    /// Address to listen on. Default `127.0.0.1:7879`.
    pub listen: SocketAddr,
    /// The admin token: needed for every action, and for reads unless
    /// `open_reads`. Default none (then reads must be open and there are
    /// no actions).
    pub admin_token: Option<String>,
    /// Let anyone who can reach the (loopback) address read the pages,
    /// the JSON reads and `/metrics` without the token. Default false.
    pub open_reads: bool,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 7879)),
            admin_token: None,
            open_reads: false,
        }
    }
}

impl fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminConfig")
            .field("listen", &self.listen)
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<hidden>"),
            )
            .field("open_reads", &self.open_reads)
            .finish()
    }
}

impl AdminConfig {
    /// Sets the listen address.
    ///
    /// # Examples
    ///
    /// ```
    /// let c = mq_broker::admin::AdminConfig::default().listen(([127, 0, 0, 1], 0).into());
    /// assert_eq!(c.listen.port(), 0);
    /// ```
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Sets the admin token.
    ///
    /// # Examples
    ///
    /// ```
    /// let c = mq_broker::admin::AdminConfig::default().token("s3cret-token");
    /// assert!(c.admin_token.is_some());
    /// ```
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.admin_token = Some(token.into());
        self
    }

    /// Opens reads without the token (loopback only).
    ///
    /// # Examples
    ///
    /// ```
    /// let c = mq_broker::admin::AdminConfig::default().open_reads(true);
    /// assert!(c.validate().is_ok());
    /// ```
    pub fn open_reads(mut self, open: bool) -> Self {
        self.open_reads = open;
        self
    }

    /// Checks the rules of the module docs.
    ///
    /// # Errors
    ///
    /// [`AdminError::Config`] with the reason.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_broker::admin::AdminConfig;
    /// // Nothing could be read or done:
    /// assert!(AdminConfig::default().validate().is_err());
    /// // Open reads on a public address:
    /// let c = AdminConfig::default().listen(([0, 0, 0, 0], 7879).into()).token("t").open_reads(true);
    /// assert!(c.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<(), AdminError> {
        let err = |s: &str| Err(AdminError::Config(s.to_owned()));
        match &self.admin_token {
            Some(t) if t.len() < 8 => return err("the admin token must be at least 8 bytes"),
            Some(t) if t.chars().any(char::is_control) => {
                return err("the admin token must not contain control characters")
            }
            None if !self.open_reads => {
                return err("give an admin token, or open reads on loopback (--admin-open-reads)")
            }
            _ => {}
        }
        if !self.listen.ip().is_loopback() {
            if self.admin_token.is_none() {
                return err("a non-loopback admin address needs an admin token");
            }
            if self.open_reads {
                return err("open reads are allowed on a loopback admin address only");
            }
        }
        Ok(())
    }
}

/// Why the admin server did not start.
///
/// # Examples
///
/// ```
/// let e = mq_broker::admin::AdminConfig::default().validate().unwrap_err();
/// assert!(e.to_string().contains("admin token"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The configuration breaks a rule; fix it.
    #[error("admin config: {0}")]
    Config(String),
    /// The address could not be bound (in use, or not ours).
    #[error("cannot bind the admin address {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// What every handler shares.
pub(crate) struct App {
    /// The broker; the admin server does not keep it alive.
    broker: Weak<Inner>,
    token: Option<String>,
    open_reads: bool,
    sessions: Mutex<auth::Sessions>,
    rates: Mutex<rates::Rates>,
}

impl App {
    /// The broker, or `None` once it is gone.
    fn broker(&self) -> Option<Broker> {
        self.broker.upgrade().map(|inner| Broker { inner })
    }
}

/// A running admin server. Stops on [`AdminServer::shutdown`], when
/// dropped, or when its broker stops.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use mq_broker::admin::{AdminConfig, AdminServer};
/// let broker = mq_broker::Broker::start(Default::default()).await?;
/// let config = AdminConfig::default().listen(([127, 0, 0, 1], 0).into()).token("s3cret-token");
/// let admin = AdminServer::start(&broker, config).await?;
/// println!("admin pages on http://{}", admin.addr());
/// admin.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct AdminServer {
    addr: SocketAddr,
    stop: CancellationToken,
    task: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl AdminServer {
    /// Validates `config`, binds its address and serves `broker`'s admin
    /// pages and API.
    ///
    /// # Errors
    ///
    /// [`AdminError::Config`] or [`AdminError::Bind`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing serves until it returns.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use mq_broker::admin::{AdminConfig, AdminServer};
    /// let broker = mq_broker::Broker::start(Default::default()).await?;
    /// let config = AdminConfig::default().listen(([127, 0, 0, 1], 0).into()).open_reads(true);
    /// let admin = AdminServer::start(&broker, config).await?;
    /// assert!(admin.addr().ip().is_loopback());
    /// # Ok(()) }
    /// ```
    pub async fn start(broker: &Broker, config: AdminConfig) -> Result<AdminServer, AdminError> {
        config.validate()?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| AdminError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| AdminError::Bind {
            addr: config.listen,
            source,
        })?;
        let app = Arc::new(App {
            broker: Arc::downgrade(&broker.inner),
            token: config.admin_token,
            open_reads: config.open_reads,
            sessions: Mutex::new(auth::Sessions::default()),
            rates: Mutex::new(rates::Rates::default()),
        });
        let stop = CancellationToken::new();
        tokio::spawn(rates::sample(app.clone(), stop.clone()));
        let router = router(app);
        // Stop with the broker (a clone of its token does not keep it alive).
        let broker_stopped = broker.inner.shared.shutdown.clone();
        let done = {
            let stop = stop.clone();
            async move {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = broker_stopped.cancelled() => {}
                }
            }
        };
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router)
                .with_graceful_shutdown(done)
                .await
            {
                tracing::warn!(error = %e, "admin server stopped");
            }
        });
        tracing::info!(%addr, open_reads = config.open_reads, "admin server listening");
        Ok(AdminServer {
            addr,
            stop,
            task: tokio::sync::Mutex::new(Some(task)),
        })
    }

    /// The bound address (the real port when `listen` had port 0).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use mq_broker::admin::{AdminConfig, AdminServer};
    /// # let broker = mq_broker::Broker::start(Default::default()).await?;
    /// # let config = AdminConfig::default().listen(([127, 0, 0, 1], 0).into()).open_reads(true);
    /// let admin = AdminServer::start(&broker, config).await?;
    /// assert_ne!(admin.addr().port(), 0);
    /// # Ok(()) }
    /// ```
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving; requests in progress finish first.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the server stops either way.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use mq_broker::admin::{AdminConfig, AdminServer};
    /// # let broker = mq_broker::Broker::start(Default::default()).await?;
    /// # let config = AdminConfig::default().listen(([127, 0, 0, 1], 0).into()).open_reads(true);
    /// let admin = AdminServer::start(&broker, config).await?;
    /// admin.shutdown().await;
    /// assert!(tokio::net::TcpStream::connect(admin.addr()).await.is_err());
    /// # Ok(()) }
    /// ```
    pub async fn shutdown(&self) {
        self.stop.cancel();
        if let Some(task) = self.task.lock().await.take() {
            let _ = task.await;
        }
    }
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(pages::overview))
        .route("/topics/{name}", get(pages::topic))
        .route("/dead-letters", get(pages::dead_letters))
        .route("/dead-letters/requeue", post(pages::requeue))
        .route("/dead-letters/purge", post(pages::purge))
        .route("/producers", get(pages::producers))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/api/overview", get(api::overview))
        .route("/api/topics/{name}", get(api::topic))
        .route("/api/dead-letters", get(api::dead_letters))
        .route("/api/dead-letters/requeue", post(api::requeue))
        .route("/api/dead-letters/purge", post(api::purge))
        .route("/api/producers", get(api::producers))
        .route("/metrics", get(metrics::metrics))
        .fallback(api::not_found)
        .with_state(app)
}
