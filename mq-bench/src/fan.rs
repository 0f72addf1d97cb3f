//! Fan-in, fan-out and many topics, with the broker in its own process so
//! its CPU time per message can be read from `/proc/PID/stat`.
//!
//! * fan-in: 8 senders (8 connections) → one topic → one group;
//! * fan-out: one sender → one topic → 4 groups (each message handled 4
//!   times, once per group);
//! * many topics: one sender round-robin over 1 000 topics, one group
//!   (one receiver, one connection) per topic.
//!
//! Each is end to end: the rate is handled deliveries per second, from the
//! first hand-over to the last handler call, and the latency is
//! send-to-handler (send time in the payload's first 8 bytes).
//!
//! Also here: the broker's resident memory per idle connection.

use std::process::Stdio;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use mq_client_receiver::{Receiver, ReceiverConfig};
use mq_client_sender::{OutgoingMessage, Sender, SenderConfig};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::e2e::Seen;
use crate::report::Row;
use crate::{now_us, BenchResult, Progress};

/// Linux reports process CPU time in `/proc` in units of `USER_HZ`, which
/// is 100 on every architecture Linux supports (it is part of the ABI).
const USER_HZ: u64 = 100;

/// One fan scenario's shape.
#[derive(Debug, Clone, Copy)]
pub struct Fan {
    pub name: &'static str,
    pub senders: usize,
    pub topics: usize,
    pub groups: usize,
}

/// The three shapes this module measures.
pub const SHAPES: [Fan; 3] = [
    Fan {
        name: "fan-in-8",
        senders: 8,
        topics: 1,
        groups: 1,
    },
    Fan {
        name: "fan-out-4",
        senders: 1,
        topics: 1,
        groups: 4,
    },
    Fan {
        name: "topics-1000",
        senders: 1,
        topics: 1000,
        groups: 1,
    },
];

/// The broker, running as `mq-bench --serve-broker` in a child process.
pub struct BrokerChild {
    child: Child,
    pid: u32,
    pub addr: String,
}

impl BrokerChild {
    /// Starts the child and waits for the address it listens on.
    pub async fn start() -> BenchResult<Self> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .arg("--serve-broker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().ok_or("broker child exited at once")?;
        let stdout = child.stdout.take().ok_or("no stdout from broker child")?;
        let mut line = String::new();
        let mut reader = BufReader::new(stdout);
        let read = reader.read_line(&mut line);
        tokio::time::timeout(Duration::from_secs(30), read).await??;
        let addr = line.trim().to_owned();
        if addr.is_empty() {
            return Err("broker child printed no address".into());
        }
        Ok(Self { child, pid, addr })
    }

    /// User plus system CPU time the broker has used so far.
    pub fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
        // Fields after the `(comm)`, which may contain spaces: state is
        // field 3, utime 14 and stime 15 (1-based), so 11 and 12 here.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
        Duration::from_millis(ticks * 1000 / USER_HZ)
    }

    /// The broker's resident set size in bytes.
    pub fn rss(&self) -> u64 {
        crate::alloc::status_bytes(self.pid, "VmRSS")
    }

    /// Closes the child's stdin (it shuts down gracefully) and waits.
    pub async fn stop(mut self) {
        drop(self.child.stdin.take());
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// The `--serve-broker` child: an in-memory broker with room for a whole
/// run, its address on stdout, running until stdin closes.
pub async fn serve_broker() -> BenchResult<()> {
    let config = mq_mock_broker::BrokerConfig {
        record_landings: false,
        max_stored_messages: 20_000_000,
        max_stored_bytes: 8 << 30,
        ..Default::default()
    };
    let broker = mq_mock_broker::MockBroker::start(config).await?;
    println!("{}", broker.addr());
    let mut sink = Vec::new();
    let _ = tokio::io::stdin().read_to_end(&mut sink).await;
    broker.shutdown().await;
    Ok(())
}

fn message(topic: String, payload: usize, filler: &[u8]) -> OutgoingMessage {
    let mut p = BytesMut::with_capacity(payload.max(8));
    p.put_u64(now_us());
    p.extend_from_slice(filler);
    OutgoingMessage::new(topic, p.freeze())
}

/// Runs one shape: `count` messages sent in all, each handled once per
/// group.
pub async fn run(
    shape: Fan,
    payload: usize,
    window: usize,
    count: u64,
    pb: &Progress,
) -> BenchResult<Row> {
    let broker = BrokerChild::start().await?;
    let addr = broker.addr.clone();
    let target = count * shape.groups as u64;
    let seen = Seen::new(target, pb)?;
    // Many receivers share the credit the single-topic runs give one.
    let prefetch = if shape.topics > 1 { 64 } else { 1024 };
    let mut receivers = Vec::new();
    for t in 0..shape.topics {
        for g in 0..shape.groups {
            let handler = seen.handler();
            let r = Receiver::connect(
                ReceiverConfig::default()
                    .addresses(vec![addr.clone()])
                    .topic(format!("t{t}"))
                    .group(format!("g{g}"))
                    .prefetch(prefetch)
                    .max_concurrency(64),
                handler,
            )
            .await?;
            receivers.push(r);
        }
    }
    let mut senders = Vec::new();
    for _ in 0..shape.senders {
        senders.push(Sender::connect(SenderConfig::new(addr.clone()).max_in_flight(window)).await?);
    }

    let done = seen.done.notified();
    let cpu0 = broker.cpu();
    let start_us = now_us();
    let per_sender = count / shape.senders as u64;
    let mut tasks = Vec::new();
    for (i, s) in senders.iter().enumerate() {
        let s = s.clone();
        let topics = shape.topics as u64;
        // The last sender takes the remainder.
        let n = if i + 1 == shape.senders {
            count - per_sender * (shape.senders as u64 - 1)
        } else {
            per_sender
        };
        tasks.push(tokio::spawn(async move {
            let filler = vec![0x5a; payload.max(8) - 8];
            for seq in 0..n {
                let topic = format!("t{}", seq % topics);
                // Counted by the handlers; the confirm is not awaited.
                drop(s.enqueue(message(topic, payload, &filler)).await?);
            }
            Ok::<(), mq_client_sender::SendError>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let limit = Duration::from_secs(60) + Duration::from_secs_f64(target as f64 / 1000.0);
    if tokio::time::timeout(limit, done).await.is_err() {
        let got = seen.handled.load(Relaxed);
        return Err(format!("{}: only {got} of {target} handled", shape.name).into());
    }
    let cpu = broker.cpu().saturating_sub(cpu0);
    let elapsed = seen.elapsed_since(start_us);
    for s in &senders {
        let _ = s.close(Duration::from_secs(5)).await;
    }
    for r in receivers {
        let _ = r.close(Duration::from_secs(5)).await;
    }
    broker.stop().await;
    let hist = seen.hist();
    let mut row = Row::new(shape.name, payload, window, target, elapsed).with_latency(&hist);
    let cpu_us = cpu.as_secs_f64() * 1e6;
    row.extra.push(("sent".into(), count.into()));
    row.extra.push((
        "broker_cpu_us_per_sent".into(),
        ((cpu_us / count as f64 * 100.0).round() / 100.0).into(),
    ));
    row.extra.push((
        "broker_cpu_us_per_delivery".into(),
        ((cpu_us / target as f64 * 100.0).round() / 100.0).into(),
    ));
    Ok(row)
}

/// The broker's resident memory per idle connection: `n` senders connect
/// (handshake done, heartbeats on) and stay idle.
pub async fn idle_connections(n: usize, pb: &Progress) -> BenchResult<Value> {
    let broker = BrokerChild::start().await?;
    // Let the broker's start-up allocations settle before the baseline.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss0 = broker.rss();
    let mut held = Vec::with_capacity(n);
    for i in 0..n {
        held.push(Sender::connect(SenderConfig::new(broker.addr.clone())).await?);
        pb.tick(i as u64 + 1);
    }
    // Every connection is accepted and past its handshake once connect
    // returned; give the broker's tasks a moment to reach their idle state.
    let settle = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss1 = broker.rss();
    let out = json!({
        "scenario": "memory-broker-idle-connection",
        "connections": n,
        "broker_rss_bytes_per_connection": (rss1.saturating_sub(rss0) as f64 / n as f64).round(),
        "broker_rss_bytes": rss1,
        "settle_ms": settle.elapsed().as_millis() as u64,
    });
    for s in &held {
        let _ = s.close(Duration::from_millis(200)).await;
    }
    broker.stop().await;
    Ok(out)
}
