//! Failover under load on the JetStream backend: three NATS nodes (R3),
//! two `mq-broker --backend jetstream` gateway processes, one sender and
//! two consumer groups (one receiver each), all clients listing both
//! gateways. During the load, at seeded numbers of confirmed messages:
//!
//! 1. SIGKILL the node leading the stream, restart it;
//! 2. SIGKILL gateway 0, restart it on the same port;
//! 3. SIGKILL all three NATS nodes, restart them.
//!
//! Then every confirmed ID must reach both groups' handlers, each exactly
//! once, and every send must have been confirmed (the sender saw only
//! transient errors: it retried through them). Replay a run with
//! `MQ_FAILOVER_SEED=<seed>`.

#[path = "../../tests/src/failover.rs"]
mod failover;
#[path = "../../tests/src/nats.rs"]
#[allow(dead_code)]
mod nats;

#[path = "support/spawn.rs"]
mod spawn;

use std::path::PathBuf;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use failover::{quick, receiver, Handled};
use mq_client_sender::{OutgoingMessage, Sender, SenderConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const MESSAGES: u64 = 1_500;

struct GatewayProc {
    child: Child,
    addr: String,
}

impl GatewayProc {
    fn start(urls: &[String], listen: &str, log: PathBuf) -> GatewayProc {
        let urls = urls.join(",");
        let args = [
            "--backend",
            "jetstream",
            "--nats",
            &urls,
            "--listen",
            listen,
            "--ack-wait-ms",
            "3000",
        ];
        let (child, addr) = spawn::spawn_listening(&args, &log);
        GatewayProc { child, addr }
    }

    fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }
}

impl Drop for GatewayProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_under_load_loses_nothing_and_handles_each_once() {
    let seed: u64 = std::env::var("MQ_FAILOVER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("failover test seed {seed} (replay: MQ_FAILOVER_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let cluster = nats::NatsCluster::start(3)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let urls = cluster.urls();
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("jetstream-failover");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).expect("tmp");

    let mut gw0 = GatewayProc::start(&urls, "127.0.0.1:0", tmp.join("gw0-0.log"));
    let gw1 = GatewayProc::start(&urls, "127.0.0.1:0", tmp.join("gw1.log"));
    let addrs = vec![gw0.addr.clone(), gw1.addr.clone()];

    let (handled_tx, mut handled_rx) = tokio::sync::watch::channel(0u64);
    let handled_tx = Arc::new(handled_tx);
    let groups: Vec<Handled> = vec![Arc::default(), Arc::default()];
    let mut receivers = Vec::new();
    for (g, h) in ["billing", "audit"].iter().zip(&groups) {
        receivers.push(receiver(&addrs, g, h.clone(), handled_tx.clone(), seed).await);
    }

    let mut sc = SenderConfig::new(addrs[0].clone());
    sc.addresses = addrs.clone();
    let sender = Sender::connect(
        sc.max_in_flight(256)
            .retry(quick())
            .reconnect(quick())
            .seed(Some(seed)),
    )
    .await
    .expect("sender");

    // Disruption points: seeded, increasing, within the load.
    let mut at: Vec<u64> = (0..3)
        .map(|_| rng.gen_range(MESSAGES / 10..MESSAGES * 8 / 10))
        .collect();
    at.sort_unstable();
    eprintln!("disruptions after {at:?} confirms");

    let confirmed = Arc::new(Mutex::new(Vec::new()));
    let failed = Arc::new(Mutex::new(Vec::new()));
    let (count_tx, mut count_rx) = tokio::sync::watch::channel(0u64);
    let count = Arc::new(count_tx);
    let (c2, f2, n2, s2) = (
        confirmed.clone(),
        failed.clone(),
        count.clone(),
        sender.clone(),
    );
    let publisher = tokio::spawn(async move {
        let mut pending = Vec::new();
        for i in 0..MESSAGES {
            let p = s2
                .enqueue(OutgoingMessage::new("orders", format!("order {i}")))
                .await
                .expect("hand-over never fails (backpressure waits)");
            let (c, f, n) = (c2.clone(), f2.clone(), n2.clone());
            pending.push(tokio::spawn(async move {
                match p.await {
                    Ok(r) => c.lock().expect("lock").push(r.id),
                    Err(e) => f.lock().expect("lock").push(e.to_string()),
                }
                n.send_modify(|n| *n += 1);
            }));
        }
        for p in pending {
            p.await.expect("join");
        }
    });

    // Every wait is bounded: a stall fails with the seed instead of hanging.
    let bounded = Duration::from_secs(90);
    // 1. The stream leader node (found, never guessed: killing a follower
    // would not test a leader failover).
    tokio::time::timeout(bounded, count_rx.wait_for(|n| *n >= at[0]))
        .await
        .unwrap_or_else(|_| panic!("seed {seed}: stalled before the leader kill"))
        .expect("publisher alive");
    let leader = cluster
        .wait_stream_leader("MQ", Duration::from_secs(20))
        .await
        .unwrap_or_else(|| panic!("seed {seed}: stream MQ has no leader to kill"));
    eprintln!("SIGKILL NATS node n{leader} (stream leader)");
    cluster.kill(leader);
    tokio::time::timeout(bounded, count_rx.wait_for(|n| *n >= at[0] + 50))
        .await
        .unwrap_or_else(|_| panic!("seed {seed}: stalled with the leader down"))
        .expect("publisher alive");
    cluster
        .restart(leader)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // 2. A gateway.
    tokio::time::timeout(bounded, count_rx.wait_for(|n| *n >= at[1]))
        .await
        .unwrap_or_else(|_| panic!("seed {seed}: stalled before the gateway kill"))
        .expect("publisher alive");
    eprintln!("SIGKILL gateway 0");
    let addr0 = gw0.addr.clone();
    gw0.kill9();
    tokio::time::timeout(bounded, count_rx.wait_for(|n| *n >= at[1] + 50))
        .await
        .unwrap_or_else(|_| panic!("seed {seed}: stalled with a gateway down"))
        .expect("publisher alive");
    gw0 = GatewayProc::start(&urls, &addr0, tmp.join("gw0-1.log"));
    // 3. Every NATS node at once.
    tokio::time::timeout(bounded, count_rx.wait_for(|n| *n >= at[2]))
        .await
        .unwrap_or_else(|_| panic!("seed {seed}: stalled before the cluster kill"))
        .expect("publisher alive");
    eprintln!("SIGKILL all NATS nodes");
    cluster
        .restart_all()
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    tokio::time::timeout(Duration::from_secs(240), publisher)
        .await
        .unwrap_or_else(|_| panic!("seed {seed}: sends unresolved after 4 minutes"))
        .expect("publisher");
    let confirmed = confirmed.lock().expect("lock").clone();
    let failed = failed.lock().expect("lock").clone();
    assert!(
        failed.is_empty(),
        "seed {seed}: {} sends failed, first: {:?}",
        failed.len(),
        failed.first()
    );
    assert_eq!(confirmed.len() as u64, MESSAGES);
    // Only transient errors: nothing rejected for good, nothing timed out.
    let stats = sender.stats();
    assert_eq!(
        (stats.failed, stats.rejected),
        (0, 0),
        "seed {seed}: the sender saw a permanent error"
    );

    let all_handled = || {
        groups.iter().all(|g| {
            let h = g.lock().expect("lock");
            confirmed.iter().all(|id| h.contains_key(id))
        })
    };
    // Deliveries held by the killed gateway come back after ack_wait (3 s).
    tokio::time::timeout(
        Duration::from_secs(120),
        handled_rx.wait_for(|_| all_handled()),
    )
    .await
    .unwrap_or_else(|_| {
        let missing: Vec<usize> = groups
            .iter()
            .map(|g| {
                let h = g.lock().expect("lock");
                confirmed.iter().filter(|id| !h.contains_key(id)).count()
            })
            .collect();
        panic!("seed {seed}: confirmed messages missing per group: {missing:?}")
    })
    .expect("receivers alive");
    for (name, g) in ["billing", "audit"].iter().zip(&groups) {
        let h = g.lock().expect("lock");
        let twice = h.values().filter(|&&n| n > 1).count();
        eprintln!(
            "seed {seed}: group {name}: {} confirmed, {} handled, handled twice {twice}",
            confirmed.len(),
            h.len()
        );
        assert_eq!(twice, 0, "group {name}");
    }
    sender.close(Duration::from_secs(5)).await;
    for r in receivers {
        r.close(Duration::from_secs(5))
            .await
            .expect("receiver shutdown");
    }
    drop(gw0);
    drop(gw1);
}
