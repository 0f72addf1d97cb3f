//! Connection events: what happened to a client's connection, as a stream.

use std::time::Duration;

use mq_protocol::ErrorCode;
use tokio::sync::broadcast;

/// Something that happened to a client's connection.
///
/// # Examples
///
/// ```
/// use mq_conn::ConnectionEvent;
/// let e = ConnectionEvent::Connected { address: "127.0.0.1:7878".into() };
/// println!("{e:?}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionEvent {
    /// The handshake with `address` completed.
    Connected {
        /// The broker's address.
        address: String,
    },
    /// The live connection broke (read or write error, the broker's
    /// `Close`, missed heartbeats, a protocol error).
    Lost {
        /// Why, for a person.
        reason: String,
    },
    /// A reconnect round failed; the next starts after `delay`.
    Reconnecting {
        /// How many rounds failed in a row (1 after the first).
        attempt: u32,
        /// The wait before the next round.
        delay: Duration,
    },
    /// A broker refused the handshake.
    Refused {
        /// The broker's address.
        address: String,
        /// Why, as a code.
        code: ErrorCode,
        /// Why, for a person.
        reason: String,
    },
}

/// A broadcast channel of [`ConnectionEvent`]s: a client emits, any number
/// of observers [`subscribe`](Events::subscribe). Cloning shares the
/// channel. Emitting never blocks; an observer that falls more than the
/// capacity behind loses the oldest events (`RecvError::Lagged`).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use mq_conn::{ConnectionEvent, Events};
/// let events = Events::new(16);
/// let mut rx = events.subscribe();
/// events.emit(ConnectionEvent::Lost { reason: "reset".into() });
/// assert_eq!(rx.recv().await.unwrap(), ConnectionEvent::Lost { reason: "reset".into() });
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Events {
    tx: broadcast::Sender<ConnectionEvent>,
}

impl Default for Events {
    /// A channel keeping the last 64 events per observer.
    fn default() -> Self {
        Self::new(64)
    }
}

impl Events {
    /// A channel that keeps up to `capacity` (at least 1) events per
    /// observer.
    ///
    /// # Examples
    ///
    /// ```
    /// let events = mq_conn::Events::new(128);
    /// # drop(events);
    /// ```
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Self { tx }
    }

    /// A new observer; it sees the events emitted from now on.
    ///
    /// # Examples
    ///
    /// ```
    /// let events = mq_conn::Events::default();
    /// let rx = events.subscribe();
    /// # drop(rx);
    /// ```
    pub fn subscribe(&self) -> broadcast::Receiver<ConnectionEvent> {
        self.tx.subscribe()
    }

    /// Sends `event` to every observer (none is fine). Also logs it.
    ///
    /// # Examples
    ///
    /// ```
    /// mq_conn::Events::default().emit(mq_conn::ConnectionEvent::Connected { address: "b:1".into() });
    /// ```
    pub fn emit(&self, event: ConnectionEvent) {
        tracing::debug!(?event, "connection event");
        let _ = self.tx.send(event);
    }
}
