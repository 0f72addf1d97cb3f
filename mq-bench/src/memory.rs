//! Memory: bytes per in-flight message (a sender held against a broker that
//! never replies) and dedup memory per producer. Each runs in a fresh child
//! process of the bench binary (`--scenario NAME`), so its peak RSS
//! (`VmHWM`) is its own; the child prints one JSON object on stdout.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use mq_client_receiver::{DedupConfig, DedupWindow};
use mq_client_sender::{Sender, SenderConfig};
use mq_protocol::{Backoff, Codec, Frame, MessageId, Welcome, PROTOCOL_VERSION};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::codec::Framed;

use crate::alloc::{live, proc_status_bytes};
use crate::publish::message;
use crate::{BenchResult, Load, Progress};

/// A broker that completes the handshake (`Hello` → `Welcome`, no
/// heartbeat) and then reads and discards every frame without replying.
async fn silent_broker() -> std::io::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut framed = Framed::new(sock, Codec::default());
                if !matches!(framed.next().await, Some(Ok(Frame::Hello(_)))) {
                    return;
                }
                let welcome = Frame::Welcome(Welcome {
                    version: PROTOCOL_VERSION,
                    max_frame_size: 1 << 20,
                    heartbeat_ms: 0,
                    server_name: "silent".into(),
                    max_message_size: None,
                });
                if framed.send(welcome).await.is_err() {
                    return;
                }
                while let Some(Ok(_)) = framed.next().await {}
            });
        }
    });
    Ok(addr)
}

/// Holds `count` messages of `payload` bytes in flight (each with its
/// `PendingSend` kept, as a caller would) and reports what they cost.
pub async fn in_flight(payload: usize, count: usize, pb: &Progress) -> BenchResult<Value> {
    let addr = silent_broker().await?;
    let sender = Sender::connect(
        SenderConfig::new(addr.to_string())
            .max_in_flight(count)
            .max_in_flight_bytes(count * (payload + 1024))
            // No retransmission while we measure.
            .retry(Backoff {
                initial: Duration::from_secs(600),
                max: Duration::from_secs(600),
                ..Backoff::default()
            })
            .send_timeout(None)
            // A count bound, since there is no deadline (the default has none).
            .max_attempts(5)
            .heartbeat(None),
    )
    .await?;
    let filler = vec![0x5a; payload.max(8) - 8];
    let mut held = Vec::with_capacity(count);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (live0, rss0) = (live(), proc_status_bytes("VmRSS"));
    for i in 0..count {
        held.push(sender.enqueue(message(payload, &filler)).await?);
        pb.tick(i as u64 + 1);
    }
    // Let the driver take every message and write it out.
    let t = Instant::now();
    while sender.stats().sent < count as u64 && t.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (live1, rss1) = (live(), proc_status_bytes("VmRSS"));
    let per_msg_heap = (live1 - live0) as f64 / count as f64;
    let per_msg_rss = rss1.saturating_sub(rss0) as f64 / count as f64;
    drop(held);
    let _ = sender.close(Duration::from_millis(100)).await;
    Ok(json!({
        "scenario": "memory-in-flight",
        "payload": payload,
        "messages": count,
        "heap_bytes_per_msg": per_msg_heap.round(),
        "rss_bytes_per_msg": per_msg_rss.round(),
        "overhead_bytes_per_msg": (per_msg_heap - payload as f64).round(),
        "peak_rss_bytes": proc_status_bytes("VmHWM"),
    }))
}

/// Dedup memory after contiguous IDs: `producers` producers with
/// `ids / producers` consecutive sequences each, through the window's
/// public API, and the heap it really took (counting allocator).
pub fn dedup(producers: u64, ids: u64, pb: &Progress) -> BenchResult<Value> {
    let (live0, rss0) = (live(), proc_status_bytes("VmRSS"));
    let mut w = DedupWindow::new(DedupConfig::default());
    let now = Instant::now();
    let per = ids / producers;
    for seq in 0..per {
        for p in 0..producers {
            w.insert(now, MessageId::new(p + 1, seq));
        }
        if seq % 1024 == 0 {
            pb.tick((seq + 1) * producers);
        }
    }
    let heap = (live() - live0) as f64;
    let reported = w.memory_bytes() as f64;
    let rss = proc_status_bytes("VmRSS").saturating_sub(rss0) as f64;
    let p = producers as f64;
    let out = json!({
        "scenario": "memory-dedup",
        "producers": producers,
        "ids_per_producer": per,
        "reported_bytes_per_producer": (reported / p).round(),
        "heap_bytes_per_producer": (heap / p).round(),
        "rss_bytes_per_producer": (rss / p).round(),
        "ranges": w.total_ranges(),
        "peak_rss_bytes": proc_status_bytes("VmHWM"),
    });
    drop(w);
    Ok(out)
}

/// The broker's dedup table after contiguous IDs, as [`dedup`] measures
/// the receiver's: `producers` producers with `ids / producers` consecutive
/// sequences each, inserted round-robin into the exact type the broker's
/// core keeps (`mq_broker::probe::DedupProbe`, with the broker's default
/// bounds, raised to hold every producer), and the heap it took.
pub fn broker_dedup(producers: u64, ids: u64, pb: &Progress) -> BenchResult<Value> {
    let defaults = mq_broker::BrokerConfig::default();
    let (live0, rss0) = (live(), proc_status_bytes("VmRSS"));
    let mut d = mq_broker::probe::DedupProbe::new(
        defaults.dedup_max_producers.max(producers as usize),
        defaults.dedup_max_ranges_per_producer,
    );
    let per = ids / producers;
    for seq in 0..per {
        for p in 0..producers {
            d.insert(p + 1, seq);
        }
        if seq % 1024 == 0 {
            pb.tick((seq + 1) * producers);
        }
    }
    let heap = (live() - live0) as f64;
    let reported = d.memory_bytes() as f64;
    let rss = proc_status_bytes("VmRSS").saturating_sub(rss0) as f64;
    let p = producers as f64;
    let out = json!({
        "scenario": "memory-broker-dedup",
        "reported_bytes_per_producer": (reported / p).round(),
        "producers": producers,
        "ids_per_producer": per,
        "heap_bytes_per_producer": (heap / p).round(),
        "rss_bytes_per_producer": (rss / p).round(),
        "tracked_producers": d.producers(),
        "ranges": d.ranges(),
        "peak_rss_bytes": proc_status_bytes("VmHWM"),
    });
    drop(d);
    Ok(out)
}

/// Peak RSS of a whole end-to-end run at full speed, in its own process.
pub async fn e2e_peak(load: Load, pb: &Progress) -> BenchResult<Value> {
    let row = crate::e2e::run(load, pb).await?;
    Ok(json!({
        "scenario": "memory-e2e-peak",
        "payload": load.payload,
        "window": load.window,
        "messages": load.count,
        "msgs_per_s": row.rate().round(),
        "peak_rss_bytes": proc_status_bytes("VmHWM"),
    }))
}
