//! The JetStream backend at a fixed rate (`--only jetstream`): a NATS
//! cluster of `replicas` nodes started here (`mq_e2e::nats`, with
//! `sync_interval: always`), then
//!
//! * `js-direct-rN`: JetStream itself, publish (with `Nats-Msg-Id`) to PubAck
//!   with async-nats, paced: the cost the gateway is compared with;
//! * `js-gw-confirm-rN`: one in-process gateway, the SDK sender, enqueue to
//!   confirm, paced the same;
//! * `js-gw-e2e-rN`: the same run, send to handler of one receiver group.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mq_broker::{BrokerConfig, Gateway, JetStreamConfig};
use mq_client_receiver::{Delivery, HandlerError, Receiver, ReceiverConfig};
use mq_client_sender::{PendingSend, Sender, SenderConfig};
use mq_e2e::nats::NatsCluster;
use tokio::sync::mpsc;

use crate::e2e::{MAX_CONCURRENCY, PREFETCH};
use crate::publish::message;
use crate::report::Row;
use crate::{now_us, pace_delay, BenchResult, Load, Progress};

static RUN: AtomicU64 = AtomicU64::new(0);

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("bounds")
}

/// All rows for one replica count.
pub async fn run(load: Load, replicas: usize, pb: &Progress) -> BenchResult<Vec<Row>> {
    let cluster = NatsCluster::start(replicas).await?;
    let direct = direct(&cluster, load, replicas, pb).await?;
    let mut rows = vec![direct];
    rows.extend(gateway(&cluster, load, replicas, pb).await?);
    Ok(rows)
}

async fn direct(
    cluster: &NatsCluster,
    load: Load,
    replicas: usize,
    pb: &Progress,
) -> BenchResult<Row> {
    let n = RUN.fetch_add(1, Relaxed);
    let js = async_nats::jetstream::new(cluster.client().await?);
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: format!("D{n}"),
        subjects: vec![format!("d{n}.>")],
        num_replicas: replicas,
        duplicate_window: Duration::from_secs(600),
        ..Default::default()
    })
    .await?;
    let (tx, mut rx) =
        mpsc::unbounded_channel::<(async_nats::jetstream::context::PublishAckFuture, u64)>();
    let collector = {
        let pb = pb.clone();
        tokio::spawn(async move {
            let mut h = hist();
            let mut ok = 0u64;
            while let Some((ack, t0)) = rx.recv().await {
                if ack.await.is_ok() {
                    let _ = h.record(now_us().saturating_sub(t0).max(1));
                    ok += 1;
                }
                pb.tick(ok);
            }
            (ok, h)
        })
    };
    let body = vec![0x5a; load.payload];
    let start = Instant::now();
    for seq in 0..load.count {
        if let Some(d) = load.rate.and_then(|r| pace_delay(start, seq, r)) {
            tokio::time::sleep(d).await;
        }
        let t0 = now_us();
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            format!("1-{seq}").as_str(),
        );
        let ack = js
            .publish_with_headers(format!("d{n}.bench"), headers, body.clone().into())
            .await?;
        let _ = tx.send((ack, t0));
    }
    drop(tx);
    let (ok, h) = collector.await?;
    if ok < load.count {
        return Err(format!(
            "direct: {} of {} not acknowledged",
            load.count - ok,
            load.count
        )
        .into());
    }
    let mut row = Row::new(
        &format!("js-direct-r{replicas}"),
        load.payload,
        load.window,
        ok,
        start.elapsed(),
    )
    .with_latency(&h);
    if let Some(r) = load.rate {
        row.extra.push(("offered_rate".into(), r.into()));
    }
    Ok(row)
}

async fn gateway(
    cluster: &NatsCluster,
    load: Load,
    replicas: usize,
    pb: &Progress,
) -> BenchResult<Vec<Row>> {
    let n = RUN.fetch_add(1, Relaxed);
    let js = JetStreamConfig::new(cluster.urls())
        .replicas(replicas)
        .names(format!("G{n}"), format!("g{n}"));
    let gw = Gateway::start(
        BrokerConfig {
            listen: "127.0.0.1:0".parse()?,
            ..BrokerConfig::default()
        },
        js,
    )
    .await?;
    let addr = gw.addr().to_string();
    let e2e = Arc::new(Mutex::new(hist()));
    let handled = Arc::new(AtomicU64::new(0));
    let done = Arc::new(tokio::sync::Notify::new());
    let handler = {
        let (e2e, handled, done, target) = (e2e.clone(), handled.clone(), done.clone(), load.count);
        move |d: Delivery| {
            let (e2e, handled, done) = (e2e.clone(), handled.clone(), done.clone());
            async move {
                let now = now_us();
                let sent = d
                    .payload()
                    .get(..8)
                    .and_then(|b| b.try_into().ok())
                    .map_or(now, u64::from_be_bytes);
                if let Ok(mut h) = e2e.lock() {
                    let _ = h.record(now.saturating_sub(sent).max(1));
                }
                if handled.fetch_add(1, Relaxed) + 1 == target {
                    done.notify_one();
                }
                Ok::<(), HandlerError>(())
            }
        }
    };
    let receiver = Receiver::connect(
        ReceiverConfig::default()
            .addresses(vec![addr.clone()])
            .topic("bench")
            .group("bench")
            .prefetch(PREFETCH)
            .max_concurrency(MAX_CONCURRENCY),
        handler,
    )
    .await?;
    let sender = Sender::connect(SenderConfig::new(addr).max_in_flight(load.window)).await?;
    let (tx, mut rx) = mpsc::unbounded_channel::<(PendingSend, u64)>();
    let collector = {
        let pb = pb.clone();
        tokio::spawn(async move {
            let mut h = hist();
            let mut ok = 0u64;
            while let Some((p, t0)) = rx.recv().await {
                if p.await.is_ok() {
                    let _ = h.record(now_us().saturating_sub(t0).max(1));
                    ok += 1;
                }
                pb.tick(ok);
            }
            (ok, h)
        })
    };
    let filler = vec![0x5a; load.payload.max(8) - 8];
    let all_handled = done.notified();
    let start = Instant::now();
    for seq in 0..load.count {
        if let Some(d) = load.rate.and_then(|r| pace_delay(start, seq, r)) {
            tokio::time::sleep(d).await;
        }
        let pending = sender.enqueue(message(load.payload, &filler)).await?;
        let _ = tx.send((pending, now_us()));
    }
    drop(tx);
    let (ok, confirm) = collector.await?;
    let confirm_elapsed = start.elapsed();
    if tokio::time::timeout(Duration::from_secs(120), all_handled)
        .await
        .is_err()
    {
        return Err(format!("only {} of {} handled", handled.load(Relaxed), load.count).into());
    }
    let e2e_elapsed = start.elapsed();
    let _ = sender.close(Duration::from_secs(5)).await;
    let _ = receiver.close(Duration::from_secs(5)).await;
    gw.shutdown().await;
    if ok < load.count {
        return Err(format!(
            "gateway: {} of {} not confirmed",
            load.count - ok,
            load.count
        )
        .into());
    }
    let e2e = e2e
        .lock()
        .map(|h| h.clone())
        .unwrap_or_else(|e| e.into_inner().clone());
    let mut rows = vec![
        Row::new(
            &format!("js-gw-confirm-r{replicas}"),
            load.payload,
            load.window,
            ok,
            confirm_elapsed,
        )
        .with_latency(&confirm),
        Row::new(
            &format!("js-gw-e2e-r{replicas}"),
            load.payload,
            load.window,
            ok,
            e2e_elapsed,
        )
        .with_latency(&e2e),
    ];
    if let Some(r) = load.rate {
        for row in &mut rows {
            row.extra.push(("offered_rate".into(), r.into()));
        }
    }
    Ok(rows)
}
