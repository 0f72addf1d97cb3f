//! The reconnect rule, sans IO: when the next round over the addresses
//! starts. Stepped with an explicit `now`.

use std::time::{Duration, Instant};

use mq_protocol::Backoff;

/// When to start the next connect round (see [`crate::Dialer`] for what a
/// round is).
///
/// The rule: a lost connection starts a round at once; after a failed round
/// `n` (1, 2, ...), the next starts `backoff.delay(n)` later; a completed
/// handshake resets the count. At most one round is in progress: the driver
/// calls [`Reconnect::poll_start`] and, when it says so, runs one round,
/// then reports [`Reconnect::on_connected`] or [`Reconnect::on_failed`].
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use mq_conn::Reconnect;
/// use mq_protocol::Backoff;
/// let backoff = Backoff { initial: Duration::from_millis(100), multiplier: 2.0,
///                         max: Duration::from_secs(1), jitter: 0.0 };
/// let t0 = Instant::now();
/// let mut r = Reconnect::new(backoff);
/// r.on_lost(t0);
/// assert!(r.poll_start(t0));            // first round at once
/// let (attempt, delay) = r.on_failed(t0, rand::random::<f64>());
/// assert_eq!((attempt, delay), (1, Duration::from_millis(100)));
/// assert!(!r.poll_start(t0));
/// assert!(r.poll_start(t0 + delay));
/// r.on_connected();
/// assert_eq!(r.failed_rounds(), 0);
/// ```
#[derive(Debug, Clone)]
pub struct Reconnect {
    backoff: Backoff,
    failed: u32,
    at: Option<Instant>,
    running: bool,
}

impl Reconnect {
    /// Idle (connected, or not yet started), with this backoff between
    /// failed rounds.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = mq_conn::Reconnect::new(mq_protocol::Backoff::default());
    /// assert_eq!(r.next_wake(), None);
    /// ```
    pub fn new(backoff: Backoff) -> Self {
        Self {
            backoff,
            failed: 0,
            at: None,
            running: false,
        }
    }

    /// The connection was lost at `now` (or the client starts without one):
    /// a round is due at once, unless one is already running or scheduled.
    ///
    /// # Examples
    ///
    /// ```
    /// # let mut r = mq_conn::Reconnect::new(mq_protocol::Backoff::default());
    /// let now = std::time::Instant::now();
    /// r.on_lost(now);
    /// assert_eq!(r.next_wake(), Some(now));
    /// ```
    pub fn on_lost(&mut self, now: Instant) {
        if !self.running && self.at.is_none() {
            self.at = Some(now);
        }
    }

    /// Whether a round should start now. Returns true once per round; the
    /// round then counts as running.
    ///
    /// # Examples
    ///
    /// ```
    /// # let mut r = mq_conn::Reconnect::new(mq_protocol::Backoff::default());
    /// let now = std::time::Instant::now();
    /// r.on_lost(now);
    /// assert!(r.poll_start(now));
    /// assert!(!r.poll_start(now)); // already running
    /// ```
    pub fn poll_start(&mut self, now: Instant) -> bool {
        if self.at.is_some_and(|t| t <= now) {
            self.at = None;
            self.running = true;
            return true;
        }
        false
    }

    /// The running round failed at `now`: schedules the next. `unit` is a
    /// uniform random sample in `0.0..1.0` for the backoff's jitter
    /// ([`Backoff::delay_with`](mq_protocol::Backoff::delay_with)), drawn by
    /// the caller from any source (no random-number type in this API).
    /// Returns the number of failed rounds in a row and the delay (for a
    /// [`crate::ConnectionEvent::Reconnecting`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # let mut r = mq_conn::Reconnect::new(mq_protocol::Backoff::default());
    /// let now = std::time::Instant::now();
    /// let (attempt, delay) = r.on_failed(now, 0.5);
    /// assert_eq!(attempt, 1);
    /// assert_eq!(r.next_wake(), Some(now + delay));
    /// ```
    pub fn on_failed(&mut self, now: Instant, unit: f64) -> (u32, Duration) {
        self.running = false;
        self.failed = self.failed.saturating_add(1);
        let delay = self.backoff.delay_with(self.failed, unit);
        self.at = Some(now + delay);
        (self.failed, delay)
    }

    /// A round completed the handshake: idle again, the count reset.
    ///
    /// # Examples
    ///
    /// ```
    /// # let mut r = mq_conn::Reconnect::new(mq_protocol::Backoff::default());
    /// r.on_connected();
    /// assert_eq!(r.failed_rounds(), 0);
    /// ```
    pub fn on_connected(&mut self) {
        self.running = false;
        self.failed = 0;
        self.at = None;
    }

    /// Failed rounds since the last connection.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = mq_conn::Reconnect::new(mq_protocol::Backoff::default());
    /// assert_eq!(r.failed_rounds(), 0);
    /// ```
    pub fn failed_rounds(&self) -> u32 {
        self.failed
    }

    /// Whether a round is running (started and not yet reported).
    ///
    /// # Examples
    ///
    /// ```
    /// let r = mq_conn::Reconnect::new(mq_protocol::Backoff::default());
    /// assert!(!r.is_running());
    /// ```
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// When the next round is due, if one is scheduled.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = mq_conn::Reconnect::new(mq_protocol::Backoff::default());
    /// assert_eq!(r.next_wake(), None);
    /// ```
    pub fn next_wake(&self) -> Option<Instant> {
        self.at
    }
}

#[cfg(test)]
#[path = "reconnect_tests.rs"]
mod tests;
