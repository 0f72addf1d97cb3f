//! The heartbeat rule, sans IO: when to send a `Ping`, when the peer is
//! dead. Stepped with an explicit `now`.

use std::time::{Duration, Instant};

/// Silence from the peer for this many intervals means it is dead
/// (PROTOCOL.md: each side sends something at least once per interval).
pub const DEAD_AFTER_INTERVALS: u32 = 3;

/// What [`Heartbeat::poll`] asks the driver to do.
///
/// # Examples
///
/// ```
/// let a = mq_conn::HeartbeatAction::SendPing { nonce: 1 };
/// assert_ne!(a, mq_conn::HeartbeatAction::Idle);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeartbeatAction {
    /// Nothing due.
    Idle,
    /// Nothing was written for one interval: write a `Ping` with this
    /// nonce (the write is already counted).
    SendPing {
        /// The nonce to put in the `Ping`.
        nonce: u64,
    },
    /// Nothing was read for [`DEAD_AFTER_INTERVALS`] intervals: close the
    /// connection (`HEARTBEAT_TIMEOUT`) and reconnect.
    PeerDead,
}

/// The heartbeat state of one connection: when it last read and last wrote.
///
/// The rule: write something (a `Ping` when idle) at least once per
/// interval; the peer is dead after [`DEAD_AFTER_INTERVALS`] intervals
/// without a byte from it. `None` as the interval turns both off.
///
/// A ping is due only while the driver's write buffer is empty
/// (`write_idle`): with bytes pending, the write itself is the sign of life
/// and a stuck socket must not make the loop spin.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use mq_conn::{Heartbeat, HeartbeatAction};
/// let t0 = Instant::now();
/// let s = Duration::from_secs(1);
/// let mut hb = Heartbeat::new(Some(s), t0);
/// assert_eq!(hb.poll(t0, true), HeartbeatAction::Idle);
/// assert_eq!(hb.poll(t0 + s, true), HeartbeatAction::SendPing { nonce: 1 });
/// hb.on_read(t0 + s);
/// assert_eq!(hb.poll(t0 + s * 4, true), HeartbeatAction::PeerDead);
/// ```
#[derive(Debug, Clone)]
pub struct Heartbeat {
    interval: Option<Duration>,
    last_read: Instant,
    last_write: Instant,
    nonce: u64,
}

impl Heartbeat {
    /// A fresh connection at `now` with this interval (`None`: off).
    ///
    /// # Examples
    ///
    /// ```
    /// let hb = mq_conn::Heartbeat::new(None, std::time::Instant::now());
    /// assert_eq!(hb.next_wake(true), None);
    /// ```
    pub fn new(interval: Option<Duration>, now: Instant) -> Self {
        Self {
            interval: interval.filter(|i| !i.is_zero()),
            last_read: now,
            last_write: now,
            nonce: 0,
        }
    }

    /// The interval, `None` when off.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let hb = mq_conn::Heartbeat::new(Some(Duration::from_secs(5)), Instant::now());
    /// assert_eq!(hb.interval(), Some(Duration::from_secs(5)));
    /// ```
    pub fn interval(&self) -> Option<Duration> {
        self.interval
    }

    /// Bytes arrived from the peer at `now`.
    ///
    /// # Examples
    ///
    /// ```
    /// # let mut hb = mq_conn::Heartbeat::new(None, std::time::Instant::now());
    /// hb.on_read(std::time::Instant::now());
    /// ```
    pub fn on_read(&mut self, now: Instant) {
        self.last_read = now;
    }

    /// Bytes were written to the peer at `now`.
    ///
    /// # Examples
    ///
    /// ```
    /// # let mut hb = mq_conn::Heartbeat::new(None, std::time::Instant::now());
    /// hb.on_write(std::time::Instant::now());
    /// ```
    pub fn on_write(&mut self, now: Instant) {
        self.last_write = now;
    }

    /// When the peer counts as dead if nothing arrives before.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let t0 = Instant::now();
    /// let hb = mq_conn::Heartbeat::new(Some(Duration::from_secs(1)), t0);
    /// assert_eq!(hb.dead_at(), Some(t0 + Duration::from_secs(3)));
    /// ```
    pub fn dead_at(&self) -> Option<Instant> {
        self.interval
            .map(|i| self.last_read + i * DEAD_AFTER_INTERVALS)
    }

    /// When a `Ping` is due if nothing is written before.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let t0 = Instant::now();
    /// let hb = mq_conn::Heartbeat::new(Some(Duration::from_secs(1)), t0);
    /// assert_eq!(hb.ping_at(), Some(t0 + Duration::from_secs(1)));
    /// ```
    pub fn ping_at(&self) -> Option<Instant> {
        self.interval.map(|i| self.last_write + i)
    }

    /// The earliest instant at which [`Heartbeat::poll`] may act. With
    /// `write_idle == false` only the dead-peer deadline counts.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let t0 = Instant::now();
    /// let hb = mq_conn::Heartbeat::new(Some(Duration::from_secs(1)), t0);
    /// assert_eq!(hb.next_wake(true), Some(t0 + Duration::from_secs(1)));
    /// assert_eq!(hb.next_wake(false), Some(t0 + Duration::from_secs(3)));
    /// ```
    pub fn next_wake(&self, write_idle: bool) -> Option<Instant> {
        let dead = self.dead_at();
        match (dead, self.ping_at().filter(|_| write_idle)) {
            (Some(d), Some(p)) => Some(d.min(p)),
            (d, p) => d.or(p),
        }
    }

    /// What is due at `now`. A dead peer wins over a ping; a ping counts as
    /// a write at `now`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use mq_conn::{Heartbeat, HeartbeatAction};
    /// let t0 = Instant::now();
    /// let mut hb = Heartbeat::new(Some(Duration::from_secs(1)), t0);
    /// // A full write buffer: no ping.
    /// assert_eq!(hb.poll(t0 + Duration::from_secs(2), false), HeartbeatAction::Idle);
    /// ```
    pub fn poll(&mut self, now: Instant, write_idle: bool) -> HeartbeatAction {
        if self.dead_at().is_some_and(|d| now >= d) {
            return HeartbeatAction::PeerDead;
        }
        if write_idle && self.ping_at().is_some_and(|p| now >= p) {
            self.last_write = now;
            self.nonce += 1;
            return HeartbeatAction::SendPing { nonce: self.nonce };
        }
        HeartbeatAction::Idle
    }
}

#[cfg(test)]
#[path = "heartbeat_tests.rs"]
mod tests;
