//! The outbox's web page (feature `web`, on by default): the failed rows
//! (status 2) with their last error and attempts, requeue and purge, and
//! the pending count and age: seed 000's "manual handling" from a browser.
//! `mq-outbox serve --database-url URL --listen 127.0.0.1:7880`, or
//! [`WebServer::start`] in code. It looks like the broker's admin pages
//! and follows the same security rules:
//!
//! * **Actions** (requeue, purge) need the admin token: `Authorization:
//!   Bearer TOKEN` for API clients; a browser signs in with the token
//!   (`POST /login`), gets a random `HttpOnly`, `SameSite=Strict` session
//!   cookie, and every form carries the session's CSRF token.
//! * **Reads** need the token or a session unless
//!   [`WebConfig::open_reads`], which only a loopback address allows. A
//!   non-loopback address needs a token. The token is never logged.
//! * Bad input gets a 4xx with a message, never a 500.
//!
//! # Endpoints
//!
//! | method and path | what |
//! |---|---|
//! | `GET /` | the page: counts, oldest pending age, failed rows |
//! | `POST /failed/requeue`, `POST /failed/purge` | form actions (`csrf`, `seq` repeated, or `one`) |
//! | `GET /api/stats` | `{"pending","confirmed","failed","oldest_pending_ms"}` |
//! | `GET /api/failed` | the failed rows: `seq`, `id`, `topic`, `attempts`, `last_error`, `failed_at_ms`, `headers`, `payload_len`, `payload_preview` |
//! | `POST /api/failed/requeue`, `POST /api/failed/purge` | body `{"seqs":[1,2]}`; answers `{"done":[..],"not_failed":[..]}` |
//! | `GET /login`, `POST /login`, `POST /logout` | browser sessions |
//!
//! Requeued rows are sent by the application's dispatchers at their next
//! poll (`OutboxConfig::poll_interval`); this server sends nothing itself.
//!
//! # Layout
//!
//! * `auth`: token, sessions, CSRF (as the broker's).
//! * `pages`: the page, the JSON API and the actions; `html`: layout,
//!   style and escaping (a copy of the broker's).

mod auth;
mod html;
mod pages;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::Outbox;

/// Where and how the admin server listens.
///
/// # Examples
///
/// ```
/// use mq_outbox::web::WebConfig;
/// let c = WebConfig::default().token("s3cret-token").open_reads(true);
/// assert!(c.validate().is_ok());
/// assert!(!format!("{c:?}").contains("s3cret-token"));
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct WebConfig {
    /// Address to listen on. Default `127.0.0.1:7880`.
    pub listen: SocketAddr,
    /// The admin token: needed for every action, and for reads unless
    /// `open_reads`. Default none (then reads must be open and there are
    /// no actions).
    pub admin_token: Option<String>,
    /// Let anyone who can reach the (loopback) address read the pages,
    /// the JSON reads and `/metrics` without the token. Default false.
    pub open_reads: bool,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 7880)),
            admin_token: None,
            open_reads: false,
        }
    }
}

impl fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebConfig")
            .field("listen", &self.listen)
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<hidden>"),
            )
            .field("open_reads", &self.open_reads)
            .finish()
    }
}

impl WebConfig {
    /// Sets the listen address.
    ///
    /// # Examples
    ///
    /// ```
    /// let c = mq_outbox::web::WebConfig::default().listen(([127, 0, 0, 1], 0).into());
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
    /// let c = mq_outbox::web::WebConfig::default().token("s3cret-token");
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
    /// let c = mq_outbox::web::WebConfig::default().open_reads(true);
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
    /// [`WebError::Config`] with the reason.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_outbox::web::WebConfig;
    /// // Nothing could be read or done:
    /// assert!(WebConfig::default().validate().is_err());
    /// // Open reads on a public address:
    /// let c = WebConfig::default().listen(([0, 0, 0, 0], 7880).into()).token("t").open_reads(true);
    /// assert!(c.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<(), WebError> {
        let err = |s: &str| Err(WebError::Config(s.to_owned()));
        match &self.admin_token {
            Some(t) if t.len() < 8 => return err("the admin token must be at least 8 bytes"),
            Some(t) if t.chars().any(char::is_control) => {
                return err("the admin token must not contain control characters")
            }
            None if !self.open_reads => {
                return err("give an admin token, or open reads on loopback (--open-reads)")
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
/// let e = mq_outbox::web::WebConfig::default().validate().unwrap_err();
/// assert!(e.to_string().contains("admin token"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebError {
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
    outbox: Outbox,
    token: Option<String>,
    open_reads: bool,
    sessions: Mutex<auth::Sessions>,
}

/// A running web server. Stops on [`WebServer::shutdown`] or when dropped.
///
/// # Examples
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use mq_outbox::web::{WebConfig, WebServer};
/// let outbox = mq_outbox::Outbox::open("sqlite::memory:", Default::default()).await?;
/// let config = WebConfig::default().listen(([127, 0, 0, 1], 0).into()).token("s3cret-token");
/// let web = WebServer::start(outbox, config).await?;
/// println!("failed rows on http://{}", web.addr());
/// web.shutdown().await;
/// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
#[derive(Debug)]
pub struct WebServer {
    addr: SocketAddr,
    stop: CancellationToken,
    task: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Drop for WebServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl WebServer {
    /// Validates `config`, binds its address and serves `outbox`'s page
    /// and API.
    ///
    /// # Errors
    ///
    /// [`WebError::Config`] or [`WebError::Bind`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing serves until it returns.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use mq_outbox::web::{WebConfig, WebServer};
    /// let outbox = mq_outbox::Outbox::open("sqlite::memory:", Default::default()).await?;
    /// let config = WebConfig::default().listen(([127, 0, 0, 1], 0).into()).open_reads(true);
    /// let web = WebServer::start(outbox, config).await?;
    /// assert!(web.addr().ip().is_loopback());
    /// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub async fn start(outbox: Outbox, config: WebConfig) -> Result<WebServer, WebError> {
        config.validate()?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| WebError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| WebError::Bind {
            addr: config.listen,
            source,
        })?;
        let app = Arc::new(App {
            outbox,
            token: config.admin_token,
            open_reads: config.open_reads,
            sessions: Mutex::new(auth::Sessions::default()),
        });
        let stop = CancellationToken::new();
        let router = router(app);
        let done = {
            let stop = stop.clone();
            async move { stop.cancelled().await }
        };
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router)
                .with_graceful_shutdown(done)
                .await
            {
                tracing::warn!(error = %e, "outbox web server stopped");
            }
        });
        tracing::info!(%addr, open_reads = config.open_reads, "outbox web server listening");
        Ok(WebServer {
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
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # use mq_outbox::web::{WebConfig, WebServer};
    /// # let outbox = mq_outbox::Outbox::open("sqlite::memory:", Default::default()).await?;
    /// # let config = WebConfig::default().listen(([127, 0, 0, 1], 0).into()).open_reads(true);
    /// let web = WebServer::start(outbox, config).await?;
    /// assert_ne!(web.addr().port(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
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
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # use mq_outbox::web::{WebConfig, WebServer};
    /// # let outbox = mq_outbox::Outbox::open("sqlite::memory:", Default::default()).await?;
    /// # let config = WebConfig::default().listen(([127, 0, 0, 1], 0).into()).open_reads(true);
    /// let web = WebServer::start(outbox, config).await?;
    /// web.shutdown().await;
    /// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
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
        .route("/", get(pages::index))
        .route("/failed/requeue", post(pages::requeue_form))
        .route("/failed/purge", post(pages::purge_form))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/api/stats", get(pages::api_stats))
        .route("/api/failed", get(pages::api_failed))
        .route("/api/failed/requeue", post(pages::api_requeue))
        .route("/api/failed/purge", post(pages::api_purge))
        .fallback(pages::not_found)
        .with_state(app)
}
