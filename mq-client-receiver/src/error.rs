//! One error enum per operation: configuring, connecting, settling a
//! delivery, running the receive loop, and the handler's own error.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use mq_protocol::BackoffError;

/// A [`crate::ReceiverConfig`] field that cannot work.
///
/// # Examples
///
/// ```
/// use mq_client_receiver::{ConfigError, ReceiverConfig};
/// let err = ReceiverConfig::default().validate().unwrap_err();
/// assert_eq!(err, ConfigError::NoAddresses);
/// println!("{err}"); // says what to change
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `addresses` is empty; add at least one `host:port`.
    #[error("no broker addresses configured; add at least one host:port")]
    NoAddresses,
    /// A required text field is empty; set it.
    #[error("{0} must not be empty")]
    Empty(&'static str),
    /// A text field is longer than the protocol allows; shorten it.
    #[error("{field} is longer than {max} bytes")]
    TooLong {
        /// The field.
        field: &'static str,
        /// The protocol's limit.
        max: usize,
    },
    /// A bound is zero; give it a positive value.
    #[error("{0} must be greater than zero")]
    ZeroBound(&'static str),
    /// More handler calls than credit could never all be busy; lower
    /// `max_concurrency` or raise `prefetch`.
    #[error("max_concurrency ({max_concurrency}) must be at most prefetch ({prefetch})")]
    ConcurrencyAbovePrefetch {
        /// The configured concurrency.
        max_concurrency: usize,
        /// The configured prefetch.
        prefetch: u32,
    },
    /// `max_frame_size` is below 64 bytes, too small for control frames.
    #[error("max_frame_size {0} is below the minimum of 64")]
    FrameSizeTooSmall(u32),
    /// A topic is named twice (in `topic` and `topics`, or twice in
    /// `topics`); subscribe to each once.
    #[error("topic {0:?} is subscribed to twice")]
    DuplicateTopic(String),
    /// The `reconnect` backoff is invalid; see the inner error for the field.
    #[error("reconnect backoff: {0}")]
    Reconnect(#[from] BackoffError),
}

/// Why [`crate::Receiver::connect`] (or `start`, `stream`) could not
/// subscribe: the one [`mq_conn::ConnectError`] both clients report. A
/// [`ConfigError`] arrives as [`ConnectError::Config`] (reach it with
/// `downcast_ref`); a refused subscription (bad topic or group, a broker
/// limit) as [`ConnectError::Refused`]. Once started, a receiver
/// reconnects by itself and reports connection trouble only as
/// [`crate::ConnectionEvent`]s and [`crate::ReceiverStats::reconnects`].
///
/// # Examples
///
/// ```no_run
/// use mq_client_receiver::{ConnectError, Delivery, HandlerError, Receiver, ReceiverConfig};
/// # async fn f(config: ReceiverConfig) {
/// match Receiver::connect(config, |_d: Delivery| async { Ok::<(), HandlerError>(()) }).await {
///     Ok(r) => drop(r),
///     Err(ConnectError::Refused { code, reason, .. }) => eprintln!("fix the token: {code} {reason}"),
///     Err(e) if e.is_transient() => eprintln!("retry later: {e}"),
///     Err(e) => eprintln!("fix the configuration: {e}"),
/// }
/// # }
/// ```
pub use mq_conn::ConnectError;

impl From<ConfigError> for ConnectError {
    fn from(e: ConfigError) -> Self {
        ConnectError::config(e)
    }
}

/// Why [`crate::Delivery::ack`] or [`crate::Delivery::nack`] did nothing.
///
/// # Examples
///
/// ```no_run
/// use mq_client_receiver::{AckError, Delivery};
/// # async fn f(d: Delivery) {
/// match d.ack().await {
///     Ok(()) | Err(AckError::AlreadySettled) => {}
///     Err(AckError::Closed) => eprintln!("receiver stopped; the broker will redeliver"),
///     Err(e) => eprintln!("{e}"),
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AckError {
    /// The receiver is in [`crate::AckMode::Auto`]: it settles from the
    /// handler's result. Return `Ok` or `Err` from the handler instead.
    #[error("the receiver is in automatic ack mode; return Ok/Err from the handler instead")]
    AutoMode,
    /// The receiver has shut down; the message was not recorded as processed.
    /// The broker redelivers it (to this group) after the connection closed.
    #[error("the receiver has shut down; the broker will redeliver this message")]
    Closed,
    /// The delivery was already settled (for example nacked by a handler
    /// error or by the shutdown deadline); nothing more to do.
    #[error("the delivery was already settled")]
    AlreadySettled,
}

/// Why the receive loop ended abnormally; returned by
/// [`crate::Receiver::shutdown`].
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use mq_client_receiver::RecvError;
/// # async fn f(r: mq_client_receiver::Receiver) {
/// if let Err(RecvError::ShutdownTimeout { abandoned }) = r.shutdown(Duration::from_secs(5)).await {
///     eprintln!("{abandoned} messages will be redelivered");
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// Handler calls (or manual deliveries) still unsettled at the shutdown
    /// deadline were abandoned: not acked, so the broker redelivers them.
    /// Give shutdown a longer deadline if handlers need more time.
    #[error("{abandoned} deliveries were still unsettled at the shutdown deadline")]
    ShutdownTimeout {
        /// Deliveries abandoned.
        abandoned: usize,
    },
    /// The receive loop stopped unexpectedly (a bug); nothing unprocessed was
    /// acked. Start a new receiver.
    #[error("the receive loop stopped unexpectedly: {0}")]
    DriverFailed(String),
}

/// A handler's failure: the delivery is nacked, never acked, and comes back.
///
/// Any error type converts into it, so `?` works in a handler; the
/// conversion keeps the error's text as the message (logged with the nack)
/// and the error itself as [`HandlerError::source`]. For that blanket
/// conversion to exist, `HandlerError` is not itself a
/// [`std::error::Error`]; it is [`Display`](std::fmt::Display) and `Debug`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use mq_client_receiver::{Delivery, HandlerError};
///
/// let e = HandlerError::new("database down").retry_after(Duration::from_secs(5));
/// assert_eq!(e.delay(), Some(Duration::from_secs(5)));
///
/// // `?` on any error in a handler nacks with that error's text.
/// async fn handle(d: Delivery) -> Result<(), HandlerError> {
///     let text = std::str::from_utf8(d.payload())?;
///     let _n: u64 = text.parse()?;
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone)]
pub struct HandlerError {
    message: String,
    delay: Option<Duration>,
    source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "handler failed: {}", self.message)
    }
}

/// Two errors are equal when their message and delay are; the sources are
/// not compared.
impl PartialEq for HandlerError {
    fn eq(&self, other: &Self) -> bool {
        self.message == other.message && self.delay == other.delay
    }
}

impl Eq for HandlerError {}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for HandlerError {
    fn from(e: E) -> Self {
        Self {
            message: e.to_string(),
            delay: None,
            source: Some(Arc::new(e)),
        }
    }
}

impl HandlerError {
    /// A failure with a description for logs; the broker picks the
    /// redelivery delay.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = mq_client_receiver::HandlerError::new("oops");
    /// assert_eq!(e.message(), "oops");
    /// ```
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            delay: None,
            source: None,
        }
    }

    /// Asks the broker to redeliver after `delay` (rounded down to
    /// milliseconds, capped at `u32::MAX` ms).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let e = mq_client_receiver::HandlerError::new("x").retry_after(Duration::from_millis(10));
    /// assert_eq!(e.delay(), Some(Duration::from_millis(10)));
    /// ```
    pub fn retry_after(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// The description (for a converted error, its `Display` text).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(mq_client_receiver::HandlerError::new("a").message(), "a");
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The requested redelivery delay; `None` lets the broker choose.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(mq_client_receiver::HandlerError::new("a").delay(), None);
    /// ```
    pub fn delay(&self) -> Option<Duration> {
        self.delay
    }

    /// The error this was converted from (by `?` or `From`), if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_client_receiver::HandlerError;
    /// let e = HandlerError::from(std::io::Error::other("disk full"));
    /// assert_eq!(e.message(), "disk full");
    /// let io = e.source().and_then(|s| s.downcast_ref::<std::io::Error>());
    /// assert_eq!(io.map(|e| e.kind()), Some(std::io::ErrorKind::Other));
    /// assert!(HandlerError::new("x").source().is_none());
    /// ```
    pub fn source(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.source.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::HandlerError;

    #[derive(Debug, thiserror::Error)]
    #[error("row 7 is locked")]
    struct Locked;

    fn handler_step(fail: bool) -> Result<(), HandlerError> {
        if fail {
            Err(Locked)?;
        }
        Ok(())
    }

    #[test]
    fn question_mark_keeps_the_text_and_the_source() {
        let e = handler_step(true).unwrap_err();
        assert_eq!(e.message(), "row 7 is locked");
        assert_eq!(e.to_string(), "handler failed: row 7 is locked");
        assert!(e.source().is_some_and(|s| s.is::<Locked>()));
        assert_eq!(e.delay(), None);
        assert!(handler_step(false).is_ok());
        // Clone shares the source.
        assert!(e.clone().source().is_some_and(|s| s.is::<Locked>()));
    }
}
