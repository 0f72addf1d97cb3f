//! The admin web pages' shared parts, written once for every product of
//! the MQ SDK that serves pages: the broker's admin server
//! (`mq_broker::admin`) and the outbox's failed-rows page
//! (`mq_outbox::web`). A product describes itself with a [`Site`], holds a
//! [`Gate`] in its handlers' state, builds its own routes on
//! [`pages::sign_in_routes`] and serves them with [`Server::start`].
//!
//! What it guarantees:
//!
//! * **Actions** need the admin token: an API client sends
//!   `Authorization: Bearer TOKEN`; a browser signs in once with the token
//!   (`POST /login`) and gets a random session cookie (`HttpOnly`,
//!   `SameSite=Strict`); every form then carries that session's CSRF
//!   token. Without a configured token there are no actions at all.
//! * **Reads** need the token or a session too, unless
//!   [`Config::open_reads`], which only a loopback address allows. A
//!   non-loopback address needs a token. Tokens and session ids are
//!   compared in constant time and never logged.
//! * Everything a page shows goes through [`html::esc`]; a sign-in's
//!   `next` is only ever a local path (no open redirect).
//!
//! What it does not do: TLS (put the port behind a reverse proxy, or keep
//! it on loopback), user accounts, or persistence of sessions (a restart
//! signs everyone out).
//!
//! # Layout
//!
//! * `site`: [`Site`], what a product says about itself (name,
//!   navigation, default address, sign-in hint).
//! * `config`: [`Config`] (address, token, open reads, and their rules)
//!   and [`StartError`].
//! * `gate`: [`Gate`], who may read and who may act: token, sessions,
//!   CSRF; [`Caller`], [`Session`], [`Refusal`].
//! * [`html`]: the page frame, style, refresh script, escaping and number
//!   formatting.
//! * [`pages`]: the shared pages and handlers: errors, sign in and out,
//!   action forms, JSON errors.
//! * `server`: [`Server`], the HTTP server that stops on demand.
//!
//! # Examples
//!
//! ```
//! use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
//! use std::sync::Arc;
//! use axum::extract::State;
//! use axum::http::HeaderMap;
//! use axum::response::{Html, IntoResponse, Response};
//! use mq_admin_web::{html, pages, Config, Gate, Server, Site};
//!
//! struct Demo;
//! impl Site for Demo {
//!     const PRODUCT: &'static str = "demo";
//!     const NAV: &'static [(&'static str, &'static str)] = &[("/", "Home")];
//!     const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7000));
//!     const OPEN_READS_FLAG: &'static str = "--open-reads";
//!     const TOKEN_HINT: &'static str = "The token given to <code>demo --admin-token</code>.";
//! }
//!
//! struct App { gate: Gate }
//! impl AsRef<Gate> for App {
//!     fn as_ref(&self) -> &Gate { &self.gate }
//! }
//!
//! async fn home(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
//!     let caller = match pages::read_page::<Demo>(&app.gate, &headers, "/") {
//!         Ok(c) => c,
//!         Err(r) => return *r,
//!     };
//!     let body = format!("<h1>Hello</h1><p>{}</p>", html::esc("<b>escaped</b>"));
//!     Html(html::page::<Demo>("/", "Home", &(&caller).into(), 0, &body)).into_response()
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::<Demo>::default().listen(([127, 0, 0, 1], 0).into()).token("s3cret-token");
//! let app = Arc::new(App { gate: config.gate() });
//! let router = axum::Router::new()
//!     .route("/", axum::routing::get(home))
//!     .merge(pages::sign_in_routes::<Demo, App>())
//!     .with_state(app);
//! let server = Server::start(&config, router, std::future::pending()).await?;
//! println!("pages on http://{}", server.addr());
//! server.shutdown().await;
//! # Ok(()) }
//! ```

mod config;
mod gate;
pub mod html;
pub mod pages;
mod server;
mod site;

pub use config::{Config, StartError};
pub use gate::{clear_cookie, set_cookie, Caller, Gate, Refusal, Session, COOKIE};
pub use server::Server;
pub use site::Site;
