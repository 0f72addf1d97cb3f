//! [`ConnectError`]: why a client could not connect. Both clients report
//! this one type.

use std::time::Duration;

use mq_protocol::ErrorCode;

use crate::TlsConfigError;

/// A boxed error, the source of [`ConnectError::Config`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a connection could not be established.
///
/// What to do depends on the variant: `Config` and `Tls` need a change in
/// the configuration; `Refused` names the broker's reason (usually
/// credentials); `Unreachable`, `Io` and `Timeout` may pass if the broker
/// comes up; `Handshake` means the peer does not speak this protocol.
///
/// # Examples
///
/// ```
/// use mq_conn::ConnectError;
/// use mq_protocol::ErrorCode;
/// let e = ConnectError::Refused {
///     address: "127.0.0.1:7878".into(),
///     code: ErrorCode::UNAUTHORIZED,
///     reason: "bad token".into(),
/// };
/// assert!(!e.is_transient());
/// println!("{e}");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The client's configuration is invalid; the source (the client's own
    /// `ConfigError`, reachable with `downcast_ref`) says what to change.
    #[error("invalid configuration: {0}")]
    Config(#[source] BoxError),
    /// The TLS configuration could not be built; the source says what to
    /// change.
    #[error("invalid TLS configuration: {0}")]
    TlsConfig(#[from] TlsConfigError),
    /// No address accepted a connection and completed the handshake (a
    /// whole round failed with transport errors or timeouts). Check that a
    /// broker is running and reachable.
    #[error("no broker reachable at {addresses:?} (last error: {last})")]
    Unreachable {
        /// The addresses tried, in order.
        addresses: Vec<String>,
        /// The error of the last address tried.
        #[source]
        last: std::io::Error,
    },
    /// Opening the transport to one address failed (refused, unreachable,
    /// DNS), or it broke during the handshake.
    #[error("connecting to {address}: {source}")]
    Io {
        /// The address.
        address: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The handshake with one address did not finish within the connect
    /// timeout.
    #[error("no Welcome from {address} within the connect timeout ({timeout:?})")]
    Timeout {
        /// The address.
        address: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The TLS handshake failed: an unknown CA, a name mismatch, or the
    /// broker refused our (missing) client certificate. Fix the CA, the
    /// server name or the client certificate; retrying unchanged fails again.
    #[error("TLS handshake with {address} failed: {source}")]
    Tls {
        /// The address.
        address: String,
        /// What rustls reported.
        #[source]
        source: rustls::Error,
    },
    /// The broker refused the handshake (e.g. a wrong token). Fix the cause
    /// the code names; retrying unchanged will be refused again.
    #[error("broker at {address} refused the connection: {code}: {reason}")]
    Refused {
        /// The refusing broker.
        address: String,
        /// Why, as a code.
        code: ErrorCode,
        /// Why, for a person.
        reason: String,
    },
    /// The peer answered with something this client does not understand
    /// (another protocol, version, an unexpected frame). Point the client
    /// at a broker implementing PROTOCOL.md version 1.
    #[error("handshake with {address} failed: {reason}")]
    Handshake {
        /// The peer.
        address: String,
        /// What went wrong.
        reason: String,
    },
    /// A client could not start its background thread or task; the system
    /// is out of threads or memory.
    #[error("could not start the client's background thread: {0}")]
    Spawn(#[source] std::io::Error),
}

impl ConnectError {
    /// Wraps a client's configuration error.
    ///
    /// # Examples
    ///
    /// ```
    /// #[derive(Debug, thiserror::Error)]
    /// #[error("addresses is empty")]
    /// struct MyConfigError;
    /// let e = mq_conn::ConnectError::config(MyConfigError);
    /// assert!(matches!(&e, mq_conn::ConnectError::Config(s) if s.downcast_ref::<MyConfigError>().is_some()));
    /// ```
    pub fn config(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Config(Box::new(e))
    }

    /// Whether trying again unchanged may succeed (the broker may come up or
    /// become reachable): true for `Unreachable`, `Io` and `Timeout`.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = mq_conn::ConnectError::Timeout {
    ///     address: "b:1".into(),
    ///     timeout: std::time::Duration::from_secs(5),
    /// };
    /// assert!(e.is_transient());
    /// ```
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Unreachable { .. } | Self::Io { .. } | Self::Timeout { .. }
        )
    }

    /// The transport error of one address: a TLS failure if the stream
    /// carries one, else `Io`.
    pub(crate) fn from_io(address: &str, source: std::io::Error) -> Self {
        match crate::tls::tls_cause(&source) {
            Some(t) => Self::Tls {
                address: address.to_owned(),
                source: t.clone(),
            },
            None => Self::Io {
                address: address.to_owned(),
                source,
            },
        }
    }
}
