//! Publish with confirm: one sender against the mock broker, `window`
//! messages in flight, confirm latency from the hand-over to the confirm
//! as the sender's driver measured it (`Receipt::elapsed`).

use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use hdrhistogram::Histogram;
use mq_client_sender::{OutgoingMessage, PendingSend, SenderConfig};
use mq_mock_broker::{BrokerConfig, DiskStorage, MockBroker, Storage};
use tokio::sync::mpsc;

use crate::report::Row;
use crate::{now_us, BenchResult, Load, Progress};

/// A broker tuned for measuring: no landing log, and room to store every
/// message of the run (nobody consumes them here).
pub fn broker_config(load: &Load) -> BenchResult<BrokerConfig> {
    Ok(BrokerConfig {
        record_landings: false,
        max_stored_messages: load.count as usize + 1024,
        max_stored_bytes: (load.count as usize + 1024) * (load.payload + 256),
        storage: if load.disk {
            Storage::Disk(DiskStorage::new(bench_dir()))
        } else {
            Storage::Memory
        },
        tls: if load.tls {
            Some(crate::tls::pki()?.broker.clone())
        } else {
            None
        },
        ..Default::default()
    })
}

/// A fresh data directory for a disk broker: under `MQ_BENCH_DIR` (a real
/// disk, for real fdatasyncs) or the system's temporary directory.
pub fn bench_dir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let base = std::env::var_os("MQ_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let d = base.join(format!(
        "mq-bench-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Removes a disk broker's data directory after its run.
pub fn cleanup(config: &BrokerConfig) {
    if let Storage::Disk(d) = &config.storage {
        let _ = std::fs::remove_dir_all(&d.data_dir);
    }
}

/// A message of `payload` bytes whose first 8 bytes are the send time.
pub fn message(payload: usize, filler: &[u8]) -> OutgoingMessage {
    let mut p = BytesMut::with_capacity(payload.max(8));
    p.put_u64(now_us());
    p.extend_from_slice(filler);
    OutgoingMessage::new("bench", p.freeze())
}

pub async fn run(load: Load, pb: &Progress) -> BenchResult<Row> {
    let config = broker_config(&load)?;
    let broker = MockBroker::start(config.clone()).await?;
    let sender = crate::tls::sender(
        SenderConfig::new(broker.addr().to_string()).max_in_flight(load.window),
        load.tls,
    )
    .await?;

    // The latency is the sender's own `Receipt::elapsed` (hand-over to
    // confirm, taken by the driver when the confirm arrives), not the time
    // this collector sees the future resolve: one task awaiting futures in
    // order on a busy 2-core machine lags behind by up to tens of
    // milliseconds, and that lag is the bench's, not the SDK's.
    let (tx, mut rx) = mpsc::unbounded_channel::<PendingSend>();
    let collector = {
        let pb = pb.clone();
        tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
            let mut confirmed = 0u64;
            let mut failed = 0u64;
            while let Some(pending) = rx.recv().await {
                match pending.await {
                    Ok(receipt) => {
                        let us = u64::try_from(receipt.elapsed.as_micros()).unwrap_or(u64::MAX);
                        let _ = hist.record(us.max(1));
                        confirmed += 1;
                    }
                    Err(_) => failed += 1,
                }
                pb.tick(confirmed);
            }
            (confirmed, failed, hist)
        })
    };

    let filler = vec![0x5a; load.payload.max(8) - 8];
    let start = Instant::now();
    for _ in 0..load.count {
        let pending = sender.enqueue(message(load.payload, &filler)).await?;
        let _ = tx.send(pending);
    }
    drop(tx);
    let (confirmed, failed, hist) = collector.await?;
    let elapsed = start.elapsed().max(Duration::from_nanos(1));
    let _ = sender.close(Duration::from_secs(5)).await;
    broker.shutdown().await;
    let syncs = broker.stats().journal_syncs;
    cleanup(&config);
    if failed > 0 {
        return Err(format!("{failed} sends failed").into());
    }
    let mut row = Row::new(
        match (load.disk, load.tls) {
            (true, _) => "publish-confirm-disk",
            (false, true) => "publish-confirm-tls",
            (false, false) => "publish-confirm",
        },
        load.payload,
        load.window,
        confirmed,
        elapsed,
    )
    .with_latency(&hist);
    if load.disk {
        row.extra.push(("fdatasyncs".into(), syncs.into()));
    }
    Ok(row)
}
