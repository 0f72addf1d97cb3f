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
//! * this file: [`AdminConfig`], [`AdminServer`], the routes.
//! * `api`: the JSON API and the actions.
//! * `pages`: the HTML pages.
//! * `metrics`: the Prometheus text format.
//! * `rates`: the sampler behind the per-second rates.
//!
//! The token, sessions and CSRF ([`mq_admin_web::Gate`]), signing in and
//! out, the page frame, style and escaping, and the HTTP server are
//! `mq-admin-web`'s, shared with `mq-outbox serve`.

mod api;
mod metrics;
mod pages;
mod rates;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex, Weak};

use axum::routing::{get, post};
use axum::Router;
use mq_admin_web::{Gate, Server, Site};

use crate::server::Inner;
use crate::Broker;

/// The broker's admin pages as an `mq-admin-web` site: its name,
/// navigation and default address (`127.0.0.1:7879`). [`AdminConfig`] is
/// `mq_admin_web::Config<BrokerSite>`.
///
/// # Examples
///
/// ```
/// use mq_admin_web::Site;
/// assert_eq!(mq_broker::admin::BrokerSite::DEFAULT_LISTEN.port(), 7879);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct BrokerSite;

impl Site for BrokerSite {
    const PRODUCT: &'static str = "mq-broker admin";
    const NAV: &'static [(&'static str, &'static str)] = &[
        ("/", "Overview"),
        ("/dead-letters", "Dead letters"),
        ("/producers", "Producers"),
    ];
    const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7879));
    const OPEN_READS_FLAG: &'static str = "--admin-open-reads";
    const TOKEN_HINT: &'static str = "The token is the broker's <code>--admin-token</code>.";
}

/// Where and how the admin server listens: address (default
/// `127.0.0.1:7879`), admin token, open reads (which also open
/// `/metrics`).
///
/// # Examples
///
/// ```
/// use mq_broker::admin::AdminConfig;
/// let c = AdminConfig::default().token("s3cret-token").open_reads(true);
/// assert!(c.validate().is_ok());
/// assert!(!format!("{c:?}").contains("s3cret-token"));
/// assert_eq!(AdminConfig::default().listen.port(), 7879);
/// ```
pub type AdminConfig = mq_admin_web::Config<BrokerSite>;

/// Why the admin server did not start.
///
/// # Examples
///
/// ```
/// let e = mq_broker::admin::AdminConfig::default().validate().unwrap_err();
/// assert!(e.to_string().contains("admin token"));
/// ```
pub type AdminError = mq_admin_web::StartError;

/// What every handler shares.
pub(crate) struct App {
    /// The broker; the admin server does not keep it alive.
    broker: Weak<Inner>,
    gate: Gate,
    rates: Mutex<rates::Rates>,
}

impl AsRef<Gate> for App {
    fn as_ref(&self) -> &Gate {
        &self.gate
    }
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
    server: Server,
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
        let app = Arc::new(App {
            broker: Arc::downgrade(&broker.inner),
            gate: config.gate(),
            rates: Mutex::new(rates::Rates::default()),
        });
        // Stop with the broker (a clone of its token does not keep it alive).
        let broker_stopped = broker.inner.shared.shutdown.clone();
        let until = async move { broker_stopped.cancelled().await };
        let server = Server::start(&config, router(app.clone()), until).await?;
        tokio::spawn(rates::sample(app, server.stopping()));
        Ok(AdminServer { server })
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
        self.server.shutdown().await;
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
        .route("/api/overview", get(api::overview))
        .route("/api/topics/{name}", get(api::topic))
        .route("/api/dead-letters", get(api::dead_letters))
        .route("/api/dead-letters/requeue", post(api::requeue))
        .route("/api/dead-letters/purge", post(api::purge))
        .route("/api/producers", get(api::producers))
        .route("/metrics", get(metrics::metrics))
        .merge(mq_admin_web::pages::sign_in_routes::<BrokerSite, App>())
        .fallback(api::not_found)
        .with_state(app)
}
