//! Shared test helpers: a seeded RNG, a fake `Dispatch`, test configs.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mq_outbox::{Dispatch, DispatchError, OutboxConfig};
use mq_protocol::{Backoff, Message, MessageId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The test seed: `MQ_TEST_SEED` or a fresh one, printed so a failure can be replayed.
pub fn seed(test: &str) -> u64 {
    let seed = std::env::var("MQ_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    println!("{test}: seed = {seed} (replay with MQ_TEST_SEED={seed})");
    seed
}

/// Fast timings for tests (generous lease, short backoff and poll).
pub fn fast_config(seed: u64) -> OutboxConfig {
    let mut c = OutboxConfig::default();
    c.lease = Duration::from_secs(2);
    c.max_attempts = 3;
    c.backoff = Backoff {
        initial: Duration::from_millis(5),
        multiplier: 2.0,
        max: Duration::from_millis(40),
        jitter: 0.5,
    };
    c.poll_interval = Duration::from_millis(50);
    c.rng_seed = Some(seed);
    c
}

/// A fake broker link: records every attempt, can be "down", can add a
/// random delay, and checks that no id is ever dispatched twice at once.
#[derive(Clone)]
pub struct FakeDispatch {
    pub down: Arc<AtomicBool>,
    pub permanent: Arc<Mutex<HashSet<u64>>>,
    pub attempts: Arc<Mutex<HashMap<MessageId, u32>>>,
    pub confirmed: Arc<Mutex<HashMap<MessageId, u32>>>,
    pub in_flight: Arc<Mutex<HashSet<MessageId>>>,
    pub overlaps: Arc<AtomicUsize>,
    pub payloads: Arc<Mutex<Vec<bytes::Bytes>>>,
    pub max_delay_ms: u64,
    pub fail_ratio: f64,
    /// Share of attempts that never answer (until dropped).
    pub hang_ratio: f64,
    rng: Arc<Mutex<StdRng>>,
}

impl FakeDispatch {
    pub fn new(seed: u64) -> Self {
        Self {
            down: Arc::new(AtomicBool::new(false)),
            permanent: Default::default(),
            attempts: Default::default(),
            confirmed: Default::default(),
            in_flight: Default::default(),
            overlaps: Arc::new(AtomicUsize::new(0)),
            payloads: Default::default(),
            max_delay_ms: 0,
            fail_ratio: 0.0,
            hang_ratio: 0.0,
            rng: Arc::new(Mutex::new(StdRng::seed_from_u64(seed))),
        }
    }

    pub fn attempts_of(&self, id: MessageId) -> u32 {
        self.attempts.lock().unwrap().get(&id).copied().unwrap_or(0)
    }

    pub fn confirmed_count(&self) -> usize {
        self.confirmed.lock().unwrap().len()
    }

    pub fn total_attempts(&self) -> u32 {
        self.attempts.lock().unwrap().values().sum()
    }
}

impl Dispatch for FakeDispatch {
    async fn dispatch(&self, m: Message) -> Result<(), DispatchError> {
        let id = m.id;
        *self.attempts.lock().unwrap().entry(id).or_default() += 1;
        self.payloads.lock().unwrap().push(m.payload.clone());
        if !self.in_flight.lock().unwrap().insert(id) {
            self.overlaps.fetch_add(1, Ordering::SeqCst);
            eprintln!("OVERLAP: {id} dispatched while already in flight");
        }
        struct Guard<'a>(&'a Mutex<HashSet<MessageId>>, MessageId);
        impl Drop for Guard<'_> {
            fn drop(&mut self) {
                self.0.lock().unwrap().remove(&self.1);
            }
        }
        let _g = Guard(&self.in_flight, id);
        let (delay, fail, hang) = {
            let mut r = self.rng.lock().unwrap();
            let d = if self.max_delay_ms > 0 {
                r.gen_range(0..=self.max_delay_ms)
            } else {
                0
            };
            (d, r.gen_bool(self.fail_ratio), r.gen_bool(self.hang_ratio))
        };
        if hang {
            // The confirm never comes; the dispatcher must drop this
            // attempt before its lease expires.
            std::future::pending::<()>().await;
        }
        if delay > 0 {
            // Simulated broker latency (not synchronisation).
            tokio::time::sleep(Duration::from_millis(delay)).await;
        } else {
            tokio::task::yield_now().await;
        }
        if self.permanent.lock().unwrap().contains(&id.seq) {
            return Err(DispatchError::Permanent("rejected: too large".into()));
        }
        if self.down.load(Ordering::SeqCst) {
            return Err(DispatchError::Transient("broker unreachable".into()));
        }
        if fail {
            return Err(DispatchError::Transient("reply lost".into()));
        }
        *self.confirmed.lock().unwrap().entry(id).or_default() += 1;
        Ok(())
    }
}

/// Reports every dispatch on a channel, then answers `Ok`, or never
/// answers (`hang`, as a process killed mid-attempt).
pub struct Announce {
    pub tx: tokio::sync::mpsc::UnboundedSender<MessageId>,
    pub hang: bool,
}

impl Dispatch for Announce {
    async fn dispatch(&self, m: Message) -> Result<(), DispatchError> {
        let _ = self.tx.send(m.id);
        if self.hang {
            std::future::pending::<()>().await;
        }
        Ok(())
    }
}
