//! The disk broker: how long recovery takes, what a message costs on disk,
//! and the process's memory at its stored-bytes limit. Each runs in a fresh
//! child process (`--scenario recovery:N`, `--scenario rss-at-limit:MIB`).

use std::time::{Duration, Instant};

use mq_client_sender::{Sender, SenderConfig};
use mq_mock_broker::{BrokerConfig, DiskStorage, MockBroker, RestartMode, Storage};
use serde_json::{json, Value};

use crate::alloc::proc_status_bytes;
use crate::publish::{bench_dir, cleanup, message};
use crate::{BenchResult, Progress};

fn disk_config(max_messages: usize, max_bytes: usize) -> BrokerConfig {
    BrokerConfig {
        record_landings: false,
        max_stored_messages: max_messages,
        max_stored_bytes: max_bytes,
        storage: Storage::Disk(DiskStorage::new(bench_dir())),
        ..BrokerConfig::default()
    }
}

/// Publishes `n` messages of `payload` bytes with confirm (window 1000),
/// returning the rate.
async fn fill(broker: &MockBroker, n: u64, payload: usize, pb: &Progress) -> BenchResult<f64> {
    let sender =
        Sender::connect(SenderConfig::new(broker.addr().to_string()).max_in_flight(1000)).await?;
    let filler = vec![0x5Au8; payload.saturating_sub(8)];
    let started = Instant::now();
    let mut pending = std::collections::VecDeque::new();
    for i in 0..n {
        pending.push_back(sender.enqueue(message(payload, &filler)).await?);
        if pending.len() >= 2000 {
            if let Some(p) = pending.pop_front() {
                p.await?;
            }
        }
        pb.tick(i);
    }
    for p in pending {
        p.await?;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    sender.close(Duration::from_secs(10)).await;
    Ok(rate)
}

/// Stores `n` messages of 128 B (nobody consumes them), then measures a
/// crash restart (replay of the log) and a restart after a graceful
/// shutdown (replay of the checkpoint).
pub async fn recovery(n: u64, pb: &Progress) -> BenchResult<Value> {
    let config = disk_config(n as usize + 1024, (n as usize + 1024) * 512);
    let broker = MockBroker::start(config.clone()).await?;
    let rate = fill(&broker, n, 128, pb).await?;
    let before = broker.stats();

    let t = Instant::now();
    broker.restart(RestartMode::KeepStore).await?;
    let crash_ms = t.elapsed().as_secs_f64() * 1e3;
    let after_crash = broker.stats().stored_messages;

    broker.shutdown().await;
    let checkpoint_bytes = broker.stats().journal_bytes;
    drop(broker);
    let t = Instant::now();
    let broker = MockBroker::start(config.clone()).await?;
    let checkpoint_ms = t.elapsed().as_secs_f64() * 1e3;
    let after_checkpoint = broker.stats().stored_messages;
    let rss = proc_status_bytes("VmRSS");
    broker.shutdown().await;
    cleanup(&config);
    Ok(json!({
        "scenario": "durable-recovery",
        "messages": n,
        "payload": 128,
        "publish_confirm_msgs_s": rate.round(),
        "fdatasyncs": before.journal_syncs,
        "journal_bytes": before.journal_bytes,
        "disk_bytes_per_message": before.journal_bytes as f64 / n as f64,
        "crash_recovery_ms": crash_ms.round(),
        "recovered_after_crash": after_crash,
        "checkpoint_bytes": checkpoint_bytes,
        "checkpoint_bytes_per_message": checkpoint_bytes as f64 / n as f64,
        "checkpoint_recovery_ms": checkpoint_ms.round(),
        "recovered_after_checkpoint": after_checkpoint,
        "rss_after_recovery_bytes": rss,
    }))
}

/// Fills a disk broker with 4 KiB messages up to its stored-bytes limit
/// of `mib` MiB and reports the process's memory there.
pub async fn rss_at_limit(mib: usize, pb: &Progress) -> BenchResult<Value> {
    let limit = mib << 20;
    let config = disk_config(usize::MAX / 2, limit);
    let broker = MockBroker::start(config.clone()).await?;
    let payload = 4096;
    // Stop a little short of the limit: past it the broker answers
    // STORE_FULL, which the sender retries (a transient code).
    let n = (limit / (payload + 16)) as u64 - 64;
    fill(&broker, n, payload, pb).await?;
    let s = broker.stats();
    let rss = proc_status_bytes("VmRSS");
    broker.shutdown().await;
    cleanup(&config);
    Ok(json!({
        "scenario": "durable-rss-at-limit",
        "max_stored_bytes": limit,
        "stored_bytes": s.stored_bytes,
        "stored_messages": s.stored_messages,
        "journal_bytes": s.journal_bytes,
        "rss_bytes": rss,
        "rss_per_stored_byte": rss as f64 / s.stored_bytes.max(1) as f64,
    }))
}
