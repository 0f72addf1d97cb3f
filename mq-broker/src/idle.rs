//! An inactivity timer that costs nothing per event: the connection tasks'
//! heartbeat (writer) and silence (reader) deadlines.
//!
//! Wrapping every wait in `tokio::time::timeout` registers a timer entry
//! with the runtime and removes it again on every wake-up: when each
//! wake-up carries one frame (a connection per topic, each receiving one
//! delivery at a time) that is two timer-wheel operations per message.
//! [`IdleTimer`] keeps one `Sleep` per connection instead; an event only
//! records its instant ([`IdleTimer::touch`]) and the sleep, when it fires,
//! re-arms itself at the last event plus the limit if that is later.

use std::future::pending;
use std::pin::Pin;
use std::time::Duration;

use tokio::time::{sleep_until, Instant, Sleep};

/// Completes `limit` after the last [`IdleTimer::touch`] (never without a
/// limit). Cancel safe: dropping an `expired` future loses nothing.
#[derive(Debug)]
pub(crate) struct IdleTimer {
    sleep: Pin<Box<Sleep>>,
    limit: Option<Duration>,
    last: Instant,
}

impl IdleTimer {
    /// A timer whose first deadline is `limit` after `now`.
    pub(crate) fn new(limit: Option<Duration>, now: Instant) -> Self {
        // Without a limit the sleep is never awaited; any deadline will do.
        let first = limit.and_then(|l| now.checked_add(l)).unwrap_or(now);
        Self {
            sleep: Box::pin(sleep_until(first)),
            limit,
            last: now,
        }
    }

    /// Something happened at `now`: the deadline moves to `now + limit`
    /// (lazily, with no timer operation).
    pub(crate) fn touch(&mut self, now: Instant) {
        self.last = self.last.max(now);
    }

    /// Completes once `limit` has passed since the last touch.
    pub(crate) async fn expired(&mut self) {
        let Some(limit) = self.limit else {
            return pending().await;
        };
        loop {
            self.sleep.as_mut().await;
            let Some(due) = self.last.checked_add(limit) else {
                return pending().await;
            };
            if self.sleep.deadline() >= due {
                return;
            }
            self.sleep.as_mut().reset(due);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    const LIMIT: Duration = Duration::from_secs(5);

    #[tokio::test(start_paused = true)]
    async fn fires_a_limit_after_the_last_touch() {
        let t0 = Instant::now();
        let mut idle = IdleTimer::new(Some(LIMIT), t0);
        tokio::time::advance(Duration::from_secs(3)).await;
        idle.touch(Instant::now());
        // The first deadline (t0 + 5 s) passes without firing: re-armed.
        idle.expired().await;
        assert_eq!(Instant::now(), t0 + Duration::from_secs(8));
    }

    #[tokio::test(start_paused = true)]
    async fn fires_again_after_a_touch_following_expiry() {
        let t0 = Instant::now();
        let mut idle = IdleTimer::new(Some(LIMIT), t0);
        idle.expired().await;
        assert_eq!(Instant::now(), t0 + LIMIT);
        assert!(
            idle.expired().now_or_never().is_some(),
            "no touch since: still expired"
        );
        idle.touch(Instant::now());
        assert!(
            idle.expired().now_or_never().is_none(),
            "touched: not expired"
        );
        idle.expired().await;
        assert_eq!(Instant::now(), t0 + LIMIT * 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_wait_keeps_the_deadline() {
        let t0 = Instant::now();
        let mut idle = IdleTimer::new(Some(LIMIT), t0);
        let cut = tokio::time::timeout(Duration::from_secs(2), idle.expired()).await;
        assert!(cut.is_err());
        idle.expired().await;
        assert_eq!(Instant::now(), t0 + LIMIT);
    }

    #[tokio::test(start_paused = true)]
    async fn never_fires_without_a_limit() {
        let mut idle = IdleTimer::new(None, Instant::now());
        let waited = tokio::time::timeout(Duration::from_secs(3600), idle.expired()).await;
        assert!(waited.is_err());
    }
}
