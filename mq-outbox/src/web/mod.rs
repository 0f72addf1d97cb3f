//! The outbox's web page (feature `web`, on by default): the failed rows
//! (status 2) with their last error and attempts, requeue and purge, and
//! the pending count and age: seed 000's "manual handling" from a browser.
//! `mq-outbox serve --database-url URL --listen 127.0.0.1:7880`, or
//! [`WebServer::start`] in code. It is built on `mq-admin-web`, as the
//! broker's admin pages are: the same look, and the same security rules:
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
//! * this file: [`WebConfig`], [`WebServer`], the routes.
//! * `pages`: the page, the JSON API and the actions. Signing in and out,
//!   the token, sessions and CSRF ([`mq_admin_web::Gate`]), the page frame
//!   and escaping are `mq-admin-web`'s.

mod pages;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use mq_admin_web::{Gate, Server, Site};

use crate::Outbox;

/// The outbox's page as an `mq-admin-web` site: its name, navigation and
/// default address (`127.0.0.1:7880`). [`WebConfig`] is
/// `mq_admin_web::Config<OutboxSite>`.
///
/// # Examples
///
/// ```
/// use mq_admin_web::Site;
/// assert_eq!(mq_outbox::web::OutboxSite::DEFAULT_LISTEN.port(), 7880);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct OutboxSite;

impl Site for OutboxSite {
    const PRODUCT: &'static str = "mq-outbox";
    const NAV: &'static [(&'static str, &'static str)] = &[("/", "Failed rows")];
    const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7880));
    const OPEN_READS_FLAG: &'static str = "--open-reads";
    const TOKEN_HINT: &'static str =
        "The token given to <code>mq-outbox serve --admin-token</code>.";
}

/// Where and how the web page listens: address (default
/// `127.0.0.1:7880`), admin token, open reads.
///
/// # Examples
///
/// ```
/// use mq_outbox::web::WebConfig;
/// let c = WebConfig::default().token("s3cret-token").open_reads(true);
/// assert!(c.validate().is_ok());
/// assert!(!format!("{c:?}").contains("s3cret-token"));
/// assert_eq!(WebConfig::default().listen.port(), 7880);
/// ```
pub type WebConfig = mq_admin_web::Config<OutboxSite>;

/// Why the web server did not start.
///
/// # Examples
///
/// ```
/// let e = mq_outbox::web::WebConfig::default().validate().unwrap_err();
/// assert!(e.to_string().contains("admin token"));
/// ```
pub type WebError = mq_admin_web::StartError;

/// What every handler shares.
pub(crate) struct App {
    outbox: Outbox,
    gate: Gate,
}

impl AsRef<Gate> for App {
    fn as_ref(&self) -> &Gate {
        &self.gate
    }
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
    server: Server,
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
        let app = Arc::new(App {
            outbox,
            gate: config.gate(),
        });
        let server = Server::start(&config, router(app), std::future::pending()).await?;
        Ok(WebServer { server })
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
        self.server.addr()
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
        self.server.shutdown().await;
    }
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(pages::index))
        .route("/failed/requeue", post(pages::requeue_form))
        .route("/failed/purge", post(pages::purge_form))
        .route("/api/stats", get(pages::api_stats))
        .route("/api/failed", get(pages::api_failed))
        .route("/api/failed/requeue", post(pages::api_requeue))
        .route("/api/failed/purge", post(pages::api_purge))
        .merge(mq_admin_web::pages::sign_in_routes::<OutboxSite, App>())
        .fallback(pages::not_found)
        .with_state(app)
}
