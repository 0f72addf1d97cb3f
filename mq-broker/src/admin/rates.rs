//! Per-second rates: a sampler task keeps the last minute of counters, one
//! sample a second; a rate is the change since the sample about ten
//! seconds back, divided by the time between.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::App;
use crate::BrokerStats;

/// Samples kept (one a second).
const KEEP: usize = 61;
/// How far back a rate looks.
const WINDOW: Duration = Duration::from_secs(10);

/// Publish, deliver and ack rates, per second.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub(crate) struct RateView {
    pub(crate) publish_per_sec: f64,
    pub(crate) deliver_per_sec: f64,
    pub(crate) ack_per_sec: f64,
}

#[derive(Debug, Default)]
pub(crate) struct Rates {
    samples: VecDeque<(Instant, BrokerStats)>,
}

impl Rates {
    fn push(&mut self, at: Instant, s: BrokerStats) {
        if self.samples.len() >= KEEP {
            self.samples.pop_front();
        }
        self.samples.push_back((at, s));
    }

    /// Rates from the sample nearest `WINDOW` before `now` to `current`.
    pub(crate) fn view(&self, now: Instant, current: &BrokerStats) -> RateView {
        let base = self
            .samples
            .iter()
            .find(|(at, _)| now.saturating_duration_since(*at) <= WINDOW)
            .or(self.samples.back());
        let Some((at, old)) = base else {
            return RateView::default();
        };
        let secs = now.saturating_duration_since(*at).as_secs_f64();
        if secs < 0.5 {
            return RateView::default();
        }
        let rate = |a: u64, b: u64| a.saturating_sub(b) as f64 / secs;
        RateView {
            publish_per_sec: rate(current.messages_stored, old.messages_stored),
            deliver_per_sec: rate(current.deliveries_sent, old.deliveries_sent),
            ack_per_sec: rate(current.acks_received, old.acks_received),
        }
    }
}

/// Takes one sample a second until `stop` or the broker is gone.
pub(crate) async fn sample(app: Arc<App>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(broker) = app.broker() else { return };
        let s = broker.stats();
        drop(broker);
        if let Ok(mut r) = app.rates.lock() {
            r.push(Instant::now(), s);
        }
    }
}
