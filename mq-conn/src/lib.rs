//! The client connection layer of the reliable-delivery MQ SDK, shared by
//! `mq-client-sender` and `mq-client-receiver`.
//!
//! | Piece | What it does |
//! |---|---|
//! | [`Connector`] | opens a byte stream to an address; object safe, so users plug in their own transport |
//! | [`TcpConnector`] | plain TCP, Nagle off (the default) |
//! | [`TlsConnector`], [`TlsConfig`] | TLS (rustls, `ring`) over any connector: system roots or a CA, optional client certificate, server-name override |
//! | [`Dialer`] | the handshake (`Hello` → `Welcome` or a refusal) within a timeout, over one address or a round over all |
//! | [`ConnectError`] | the one error both clients report when they cannot connect |
//! | [`ConnectionEvent`], [`Events`] | connected / lost / reconnecting / refused, as a broadcast stream |
//! | [`Heartbeat`] | sans-IO: when to ping, when the peer is dead |
//! | [`Reconnect`] | sans-IO: when the next round over the addresses starts (backoff) |
//!
//! # Address semantics
//!
//! Both clients treat their address list the same way: a connect *round*
//! tries every address once, in the configured order, each bounded by the
//! connect timeout; the first to complete the handshake wins. A lost
//! connection starts a round at once; after a failed round `n` the next
//! starts `reconnect.delay(n)` later. See [`Dialer`] and [`Reconnect`].
//!
//! # Examples
//!
//! TLS to a broker with a private CA:
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use mq_conn::{Dialer, TlsConfig, TlsConnector};
//! use mq_protocol::{Hello, Role};
//!
//! let tls = TlsConfig::with_ca_pem_file("ca.pem")?;
//! let dialer = Dialer::new(Arc::new(TlsConnector::new(&tls)?), Hello::new(Role::Sender, "me"));
//! let est = dialer.connect("broker.internal:7878").await?;
//! println!("connected to {}", est.welcome.server_name);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod connector;
mod dialer;
mod error;
mod events;
mod heartbeat;
mod reconnect;
mod tls;

#[cfg(feature = "testing")]
#[doc(hidden)]
pub mod testing;

pub use connector::{from_fn, BoxIo, Connector, FnConnector, Io, SharedConnector, TcpConnector};
pub use dialer::{heartbeat_interval, Dialer, Established, DEFAULT_CONNECT_TIMEOUT};
pub use error::{BoxError, ConnectError};
pub use events::{ConnectionEvent, Events};
pub use heartbeat::{Heartbeat, HeartbeatAction, DEAD_AFTER_INTERVALS};
pub use reconnect::Reconnect;
pub use tls::{client_transport, TlsConfig, TlsConfigError, TlsConnector};

/// The TLS library's error type (what [`ConnectError::Tls`] carries), so
/// callers can match on it without depending on rustls themselves.
pub use rustls;
