//! End to end: sender → mock broker → receiver handler → ack, over loopback
//! TCP. Latency is send-to-handler: the send time is in the payload's first
//! 8 bytes (taken before `enqueue`), read in the handler.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use hdrhistogram::Histogram;
use mq_client_receiver::{Delivery, HandlerError, Receiver, ReceiverConfig, RecvCallback};
use mq_client_sender::SenderConfig;
use mq_mock_broker::MockBroker;
use tokio::sync::Notify;

use crate::publish::{broker_config, message};
use crate::report::Row;
use crate::{now_us, pace_delay, BenchResult, Load, Progress};

/// Receiver credit and handler concurrency used by the benchmark.
pub const PREFETCH: u32 = 1024;
pub const MAX_CONCURRENCY: usize = 64;

/// What the handlers saw: send-to-handler latencies, the count, and when
/// the last expected message arrived. Shared by the e2e and fan runs.
pub struct Seen {
    hist: Mutex<Histogram<u64>>,
    pub handled: AtomicU64,
    target: u64,
    last_us: AtomicU64,
    pub done: Notify,
    pb: Progress,
}

impl Seen {
    /// Expecting `target` handler calls.
    pub fn new(target: u64, pb: &Progress) -> BenchResult<Arc<Seen>> {
        Ok(Arc::new(Seen {
            hist: Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3)?),
            handled: AtomicU64::new(0),
            target,
            last_us: AtomicU64::new(0),
            done: Notify::new(),
            pb: pb.clone(),
        }))
    }

    /// A handler that records each delivery (the send time is in the
    /// payload's first 8 bytes) and acks it.
    pub fn handler(self: &Arc<Self>) -> SeenHandler {
        SeenHandler(self.clone())
    }

    /// From `start_us` to the last expected handler call.
    pub fn elapsed_since(&self, start_us: u64) -> Duration {
        Duration::from_micros(self.last_us.load(Relaxed).saturating_sub(start_us))
            .max(Duration::from_nanos(1))
    }

    /// The latency histogram so far.
    pub fn hist(&self) -> Histogram<u64> {
        self.hist
            .lock()
            .map(|h| h.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }
}

/// The handler of [`Seen::handler`]: one boxed future per delivery, as a
/// closure handler costs.
#[derive(Clone)]
pub struct SeenHandler(Arc<Seen>);

impl RecvCallback for SeenHandler {
    fn on_message(&self, d: Delivery) -> BoxFuture<'static, Result<(), HandlerError>> {
        let seen = self.0.clone();
        Box::pin(async move {
            let now = now_us();
            let sent = d
                .payload()
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map_or(now, u64::from_be_bytes);
            if let Ok(mut h) = seen.hist.lock() {
                let _ = h.record(now.saturating_sub(sent).max(1));
            }
            let n = seen.handled.fetch_add(1, Relaxed) + 1;
            seen.pb.tick(n);
            if n == seen.target {
                seen.last_us.store(now, Relaxed);
                seen.done.notify_one();
            }
            Ok(())
        })
    }
}

pub async fn run(load: Load, pb: &Progress) -> BenchResult<Row> {
    let config = broker_config(&load)?;
    let broker = MockBroker::start(config.clone()).await?;
    let addr = broker.addr().to_string();
    let seen = Seen::new(load.count, pb)?;
    let handler = seen.handler();
    let mut builder = Receiver::builder(
        ReceiverConfig::default()
            .addresses(vec![addr.clone()])
            .topic("bench")
            .group("bench")
            .prefetch(PREFETCH)
            .max_concurrency(MAX_CONCURRENCY),
    );
    if load.tls {
        builder = builder.tls(crate::tls::pki()?.client.clone());
    }
    let receiver = builder.connect(handler).await?;
    let sender =
        crate::tls::sender(SenderConfig::new(addr).max_in_flight(load.window), load.tls).await?;

    let filler = vec![0x5a; load.payload.max(8) - 8];
    let done = seen.done.notified();
    let start = Instant::now();
    let start_us = now_us();
    for seq in 0..load.count {
        if let Some(d) = load.rate.and_then(|r| pace_delay(start, seq, r)) {
            tokio::time::sleep(d).await;
        }
        // The outcome is counted by the handler; the confirm is not awaited.
        drop(sender.enqueue(message(load.payload, &filler)).await?);
    }
    let limit = Duration::from_secs(60) + Duration::from_secs_f64(load.count as f64 / 1000.0);
    if tokio::time::timeout(limit, done).await.is_err() {
        let got = seen.handled.load(Relaxed);
        return Err(format!("only {got} of {} handled within {limit:?}", load.count).into());
    }
    let elapsed = seen.elapsed_since(start_us);
    let _ = sender.close(Duration::from_secs(5)).await;
    let _ = receiver.close(Duration::from_secs(5)).await;
    broker.shutdown().await;
    crate::publish::cleanup(&config);
    let name = match (load.rate.is_some(), load.disk, load.tls) {
        (true, true, _) => "e2e-paced-disk",
        (false, true, _) => "e2e-disk",
        (true, false, true) => "e2e-paced-tls",
        (false, false, true) => "e2e-tls",
        (true, false, false) => "e2e-paced",
        (false, false, false) => "e2e",
    };
    let hist = seen.hist();
    let mut row =
        Row::new(name, load.payload, load.window, load.count, elapsed).with_latency(&hist);
    if let Some(r) = load.rate {
        row.extra.push(("offered_rate".into(), r.into()));
    }
    Ok(row)
}
