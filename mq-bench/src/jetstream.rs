//! The JetStream backend (`--only jetstream`): a NATS cluster of
//! `replicas` nodes started here (`mq_e2e::nats`, with
//! `sync_interval: always`), then, each paced at `--rate` and once at full
//! speed with `--e2e-window` messages in flight:
//!
//! * `js-direct-rN` (`-max`): JetStream itself, publish (with
//!   `Nats-Msg-Id`) to PubAck with async-nats, into a stream set up exactly
//!   as the gateway's (interest retention, file storage, discard new, the
//!   same duplicate window) with one durable consumer that is never pulled:
//!   the same work the gateway's stream does for a topic without a group
//!   (its holding consumer). The cost the gateway is compared with.
//! * `js-gw-confirm-rN` (`-max`): one in-process gateway, the SDK sender,
//!   enqueue to confirm, nothing consuming (the topic's holding consumer
//!   keeps the messages, as the direct stream's consumer does).
//! * `js-gw-e2e-rN`: then a receiver group on a second topic, send to
//!   handler at `--rate`; the same run's confirm latency is
//!   `js-gw-confirm-consumed-rN` (JetStream also delivering and taking
//!   acks).
//!
//! The direct run and the gateway's confirm run do the same JetStream work
//! one after the other on the same cluster, so their ratio is the
//! gateway's overhead (issue 12's target: at most 20 %).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use hdrhistogram::Histogram;
use mq_broker::{BrokerConfig, Gateway, JetStreamConfig};
use mq_client_receiver::{Delivery, HandlerError, Receiver, ReceiverConfig};
use mq_client_sender::{OutgoingMessage, PendingSend, Sender, SenderConfig, Topic};
use mq_e2e::nats::NatsCluster;
use tokio::sync::{mpsc, Semaphore};

use crate::e2e::{MAX_CONCURRENCY, PREFETCH};
use crate::publish::message;
use crate::report::Row;
use crate::{now_us, pace_delay, BenchResult, Load, Progress};

static RUN: AtomicU64 = AtomicU64::new(0);

/// Longest wait for a PubAck, direct and through the gateway (its
/// `publish_timeout` default).
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// Messages confirmed before each measurement (connections, consumers and
/// the topic's holding consumer set up outside the figures).
const WARM_UP: u64 = 200;

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("bounds")
}

/// All rows for one replica count: paced at `load.rate`, then full speed
/// with `load.window` in flight.
pub async fn run(load: Load, replicas: usize, pb: &Progress) -> BenchResult<Vec<Row>> {
    let cluster = NatsCluster::start(replicas).await?;
    let full = Load { rate: None, ..load };
    let mut rows = vec![
        direct(&cluster, load, replicas, "", pb).await?,
        direct(&cluster, full, replicas, "-max", pb).await?,
    ];
    rows.extend(gateway(&cluster, load, full, replicas, pb).await?);
    Ok(rows)
}

/// A stream like the gateway's (`mq_broker`'s `jetstream::setup`), with
/// one durable consumer that is never pulled.
async fn direct_stream(js: &jetstream::Context, n: u64, replicas: usize) -> BenchResult<()> {
    let s = js
        .get_or_create_stream(stream::Config {
            name: format!("D{n}"),
            subjects: vec![format!("d{n}.>")],
            retention: stream::RetentionPolicy::Interest,
            storage: stream::StorageType::File,
            num_replicas: replicas,
            duplicate_window: Duration::from_secs(600),
            discard: stream::DiscardPolicy::New,
            ..Default::default()
        })
        .await?;
    s.get_or_create_consumer(
        "H",
        consumer::pull::Config {
            durable_name: Some("H".into()),
            filter_subject: format!("d{n}.bench"),
            ack_policy: consumer::AckPolicy::Explicit,
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        },
    )
    .await?;
    Ok(())
}

async fn direct(
    cluster: &NatsCluster,
    load: Load,
    replicas: usize,
    suffix: &str,
    pb: &Progress,
) -> BenchResult<Row> {
    let n = RUN.fetch_add(1, Relaxed);
    let mut js = jetstream::new(cluster.client().await?);
    js.set_timeout(ACK_TIMEOUT);
    direct_stream(&js, n, replicas).await?;
    let subject = async_nats::Subject::from(format!("d{n}.bench"));
    let body = bytes::Bytes::from(vec![0x5a; load.payload]);
    let publish = |seq: u64| {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            format!("1-{seq}").as_str(),
        );
        js.publish_with_headers(subject.clone(), headers, body.clone())
    };
    for seq in 0..WARM_UP {
        publish(u64::MAX - seq).await?.await?;
    }
    let window = Arc::new(Semaphore::new(load.window));
    let (tx, mut rx) = mpsc::unbounded_channel::<(jetstream::context::PublishAckFuture, u64, _)>();
    let collector = {
        let pb = pb.clone();
        tokio::spawn(async move {
            let mut h = hist();
            let mut ok = 0u64;
            while let Some((ack, t0, permit)) = rx.recv().await {
                if ack.await.is_ok() {
                    let _ = h.record(now_us().saturating_sub(t0).max(1));
                    ok += 1;
                }
                drop(permit);
                pb.tick(ok);
            }
            (ok, h)
        })
    };
    let start = Instant::now();
    for seq in 0..load.count {
        if let Some(d) = load.rate.and_then(|r| pace_delay(start, seq, r)) {
            tokio::time::sleep(d).await;
        }
        let permit = window.clone().acquire_owned().await?;
        let t0 = now_us();
        let ack = publish(seq).await?;
        let _ = tx.send((ack, t0, permit));
    }
    drop(tx);
    let (ok, h) = collector.await?;
    let mut row = Row::new(
        &format!("js-direct-r{replicas}{suffix}"),
        load.payload,
        load.window,
        ok,
        start.elapsed(),
    )
    .with_latency(&h);
    row.extra
        .push(("unacknowledged".into(), (load.count - ok).into()));
    if let Some(r) = load.rate {
        row.extra.push(("offered_rate".into(), r.into()));
    }
    Ok(row)
}

/// Sends `load` through `sender` (each message stamped with its send
/// time), paced or not; confirmed count, their latencies, elapsed.
async fn confirm(
    sender: &Sender,
    load: Load,
    topic: &str,
    pb: &Progress,
) -> BenchResult<(u64, Histogram<u64>, Duration)> {
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
    // One shared topic for the run: each message clones an `Arc`.
    let topic = Topic::shared(topic);
    let start = Instant::now();
    for seq in 0..load.count {
        if let Some(d) = load.rate.and_then(|r| pace_delay(start, seq, r)) {
            tokio::time::sleep(d).await;
        }
        let m = message(load.payload, &filler);
        let m = OutgoingMessage::new(topic.clone(), m.payload().clone());
        let t0 = now_us();
        let pending = sender.enqueue(m).await?;
        let _ = tx.send((pending, t0));
    }
    drop(tx);
    let (ok, h) = collector.await?;
    Ok((ok, h, start.elapsed()))
}

async fn gateway(
    cluster: &NatsCluster,
    load: Load,
    full: Load,
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
    let sender =
        Sender::connect(SenderConfig::new(addr.clone()).max_in_flight(load.window)).await?;
    let warm = Load {
        count: WARM_UP,
        rate: None,
        ..load
    };
    confirm(&sender, warm, "bench", pb).await?;
    let mut rows = Vec::new();
    for (l, suffix) in [(load, ""), (full, "-max")] {
        let (ok, h, elapsed) = confirm(&sender, l, "bench", pb).await?;
        let mut row = Row::new(
            &format!("js-gw-confirm-r{replicas}{suffix}"),
            l.payload,
            l.window,
            ok,
            elapsed,
        )
        .with_latency(&h);
        row.extra
            .push(("unconfirmed".into(), (l.count - ok).into()));
        rows.push(row);
    }

    // End to end, on a topic of its own (the first one's messages stay
    // held for a group that never comes).
    let e2e = Arc::new(Mutex::new(hist()));
    let handled = Arc::new(AtomicU64::new(0));
    let done = Arc::new(tokio::sync::Notify::new());
    let target = load.count + WARM_UP;
    let handler = {
        let (e2e, handled, done) = (e2e.clone(), handled.clone(), done.clone());
        move |d: Delivery| {
            let (e2e, handled, done) = (e2e.clone(), handled.clone(), done.clone());
            async move {
                let now = now_us();
                let sent = d
                    .payload()
                    .get(..8)
                    .and_then(|b| b.try_into().ok())
                    .map_or(now, u64::from_be_bytes);
                let seen = handled.fetch_add(1, Relaxed) + 1;
                if seen > WARM_UP {
                    if let Ok(mut h) = e2e.lock() {
                        let _ = h.record(now.saturating_sub(sent).max(1));
                    }
                }
                if seen == target {
                    done.notify_one();
                }
                Ok::<(), HandlerError>(())
            }
        }
    };
    let receiver = Receiver::connect(
        ReceiverConfig::default()
            .addresses(vec![addr.clone()])
            .topic("bench-e2e")
            .group("bench")
            .prefetch(PREFETCH)
            .max_concurrency(MAX_CONCURRENCY),
        handler,
    )
    .await?;
    let all_handled = done.notified();
    confirm(&sender, warm, "bench-e2e", pb).await?;
    let (ok, confirmed, elapsed) = confirm(&sender, load, "bench-e2e", pb).await?;
    let start = Instant::now() - elapsed;
    if tokio::time::timeout(Duration::from_secs(120), all_handled)
        .await
        .is_err()
    {
        return Err(format!("only {} of {target} handled", handled.load(Relaxed)).into());
    }
    let e2e_elapsed = start.elapsed();
    let _ = sender.close(Duration::from_secs(5)).await;
    let _ = receiver.close(Duration::from_secs(5)).await;
    gw.shutdown().await;
    let e2e = e2e
        .lock()
        .map(|h| h.clone())
        .unwrap_or_else(|e| e.into_inner().clone());
    rows.push(
        Row::new(
            &format!("js-gw-confirm-consumed-r{replicas}"),
            load.payload,
            load.window,
            ok,
            elapsed,
        )
        .with_latency(&confirmed),
    );
    rows.push(
        Row::new(
            &format!("js-gw-e2e-r{replicas}"),
            load.payload,
            load.window,
            ok,
            e2e_elapsed,
        )
        .with_latency(&e2e),
    );
    if let Some(r) = load.rate {
        for row in &mut rows {
            if !row.scenario.ends_with("-max") {
                row.extra.push(("offered_rate".into(), r.into()));
            }
        }
    }
    Ok(rows)
}
