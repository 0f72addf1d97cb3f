//! The `mq-broker` binary on a real directory, SIGKILLed under load at
//! seeded moments and restarted on the same directory: every message a
//! sender saw confirmed reaches the handler exactly once.
//!
//! (SIGKILL leaves the page cache intact, so this shows recovery and the
//! protocol's retransmission and dedup across restarts; power loss is shown
//! on the simulated disk in `src/journal/tests.rs`.)

#[path = "support/spawn.rs"]
mod spawn;

use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mq_client_receiver::{Delivery, HandlerError, Receiver, ReceiverConfig};
use mq_client_sender::{OutgoingMessage, Sender, SenderConfig};
use mq_protocol::{Backoff, MessageId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const MESSAGES: u64 = 20_000;
const KILLS: usize = 5;

struct BrokerProc {
    child: Child,
    addr: String,
    log: PathBuf,
}

impl BrokerProc {
    fn start(dir: &Path, listen: &str, log: PathBuf) -> BrokerProc {
        let dir = dir.to_str().expect("utf-8 dir");
        let args = [
            "--data-dir",
            dir,
            "--listen",
            listen,
            "--stats-every-secs",
            "0",
        ];
        let (child, addr) = spawn::spawn_listening(&args, &log);
        BrokerProc { child, addr, log }
    }

    fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }

    /// SIGTERM, wait, and the last stats line of its log.
    fn terminate(mut self) -> String {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "graceful exit, got {status}");
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .rev()
            .find(|l| l.contains("stats "))
            .unwrap_or_default()
            .to_owned()
    }
}

impl Drop for BrokerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn stat(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{key} missing in {line:?}"))
}

fn quick() -> Backoff {
    Backoff {
        initial: Duration::from_millis(20),
        multiplier: 2.0,
        max: Duration::from_millis(300),
        jitter: 0.2,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_nothing_and_handles_each_once() {
    let seed: u64 = std::env::var("MQ_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("kill test seed {seed} (replay: MQ_KILL_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kill");
    let _ = std::fs::remove_dir_all(&tmp);
    let dir = tmp.join("data");
    std::fs::create_dir_all(&tmp).expect("tmp");

    let mut broker = BrokerProc::start(&dir, "127.0.0.1:0", tmp.join("broker-0.log"));
    let addr = broker.addr.clone();

    // The consumer group exists before the first publish.
    let handled: Arc<Mutex<std::collections::HashMap<MessageId, u32>>> = Arc::default();
    // Bumped after every handler call, so the end check waits on events.
    let (handled_tx, mut handled_rx) = tokio::sync::watch::channel(0u64);
    let handled_tx = Arc::new(handled_tx);
    let h = handled.clone();
    let receiver = Receiver::connect(
        ReceiverConfig::default()
            .addresses(vec![addr.clone()])
            .topic("orders")
            .group("billing")
            .prefetch(256)
            .reconnect(quick()),
        move |d: Delivery| {
            let (h, tx) = (h.clone(), handled_tx.clone());
            async move {
                *h.lock().expect("lock").entry(d.id()).or_insert(0) += 1;
                tx.send_modify(|n| *n += 1);
                Ok::<(), HandlerError>(())
            }
        },
    )
    .await
    .expect("receiver");

    let sender = Sender::connect(
        SenderConfig::new(addr.clone())
            .max_in_flight(1000)
            .retry(quick())
            // No attempt limit; a 120 s deadline per send (the defaults).
            .reconnect(quick())
            .seed(Some(seed)),
    )
    .await
    .expect("sender");

    // Kill points: after a seeded number of confirmed messages each.
    let mut kill_at: Vec<u64> = (0..KILLS)
        .map(|_| rng.gen_range(MESSAGES / 20..MESSAGES * 9 / 10))
        .collect();
    kill_at.sort_unstable();
    eprintln!("killing after {kill_at:?} confirms");

    let confirmed = Arc::new(Mutex::new(Vec::new()));
    let (count_tx, mut count_rx) = tokio::sync::watch::channel(0u64);
    let count = Arc::new(count_tx);
    let (c2, n2, s2) = (confirmed.clone(), count.clone(), sender.clone());
    let publisher = tokio::spawn(async move {
        let mut pending = Vec::new();
        for i in 0..MESSAGES {
            let p = s2
                .enqueue(OutgoingMessage::new("orders", format!("order {i}")))
                .await
                .expect("hand-over never fails (backpressure waits)");
            let (c, n) = (c2.clone(), n2.clone());
            pending.push(tokio::spawn(async move {
                let r = p
                    .await
                    .expect("confirmed: the sender retries without limit");
                c.lock().expect("lock").push(r.id);
                n.send_modify(|n| *n += 1);
            }));
        }
        for p in pending {
            p.await.expect("join");
        }
    });

    for (k, at) in kill_at.iter().enumerate() {
        count_rx
            .wait_for(|n| n >= at)
            .await
            .expect("the publisher is alive until every send resolved");
        broker.kill9();
        broker = BrokerProc::start(&dir, &addr, tmp.join(format!("broker-{}.log", k + 1)));
    }
    tokio::time::timeout(Duration::from_secs(120), publisher)
        .await
        .expect("every send resolved within 2 minutes")
        .expect("publisher");

    let confirmed = confirmed.lock().expect("lock").clone();
    assert_eq!(confirmed.len() as u64, MESSAGES);
    let all_handled = || {
        let h = handled.lock().expect("lock");
        confirmed.iter().all(|id| h.contains_key(id))
    };
    tokio::time::timeout(
        Duration::from_secs(60),
        handled_rx.wait_for(|_| all_handled()),
    )
    .await
    .unwrap_or_else(|_| panic!("seed {seed}: confirmed messages never reached the handler"))
    .expect("receiver alive");
    let h = handled.lock().expect("lock").clone();
    let twice = h.values().filter(|&&n| n > 1).count();
    let lost = confirmed.iter().filter(|id| !h.contains_key(id)).count();
    eprintln!(
        "seed {seed}: {} confirmed, {} handled, lost {lost}, handled twice {twice}",
        confirmed.len(),
        h.len()
    );
    assert_eq!(lost, 0);
    assert_eq!(twice, 0);

    sender.close(Duration::from_secs(5)).await;
    receiver
        .close(Duration::from_secs(5))
        .await
        .expect("receiver shutdown");
    let stats = broker.terminate();
    let (syncs, stored) = (
        stat(&stats, "journal_syncs"),
        stat(&stats, "messages_stored"),
    );
    eprintln!("last incarnation: {stored} messages stored with {syncs} fdatasyncs");
    assert!(
        stored == 0 || syncs < stored,
        "group commit: fewer fdatasyncs ({syncs}) than messages ({stored})"
    );
}
