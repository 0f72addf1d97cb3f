//! What the callbacks and the handler observed, shared between them.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use dashmap::DashMap;
use mq_client_sender::{Receipt, SendError};
use mq_protocol::MessageId;
use tokio::sync::Notify;

/// One send's outcome as its callback saw it.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    Confirmed(Receipt),
    Failed(String, bool /* is a Timeout */),
}

pub(crate) struct Tally {
    /// Callback calls per message index.
    pub calls: Vec<AtomicU8>,
    pub outcomes: DashMap<u64, Outcome>,
    pub resolved: AtomicU64,
    pub resolved_changed: Notify,
    /// Successful handler calls per message ID, with the index in the payload.
    pub handled: DashMap<MessageId, (u32, u64)>,
    pub handler_calls: AtomicU64,
    pub bad_payloads: AtomicU64,
    pub handler_errors: Mutex<rand::rngs::StdRng>,
}

impl Tally {
    pub fn new(messages: u64, seed: u64) -> Self {
        use rand::SeedableRng;
        Self {
            calls: (0..messages).map(|_| AtomicU8::new(0)).collect(),
            outcomes: DashMap::new(),
            resolved: AtomicU64::new(0),
            resolved_changed: Notify::new(),
            handled: DashMap::new(),
            handler_calls: AtomicU64::new(0),
            bad_payloads: AtomicU64::new(0),
            handler_errors: Mutex::new(rand::rngs::StdRng::seed_from_u64(seed ^ 0x5eed)),
        }
    }

    pub fn record(&self, index: u64, outcome: Result<Receipt, SendError>) {
        if let Some(c) = self.calls.get(index as usize) {
            c.fetch_add(1, Ordering::SeqCst);
        }
        let o = match outcome {
            Ok(r) => Outcome::Confirmed(r),
            Err(e) => {
                let timeout = matches!(e, SendError::Timeout { .. });
                Outcome::Failed(format!("{e}"), timeout)
            }
        };
        self.outcomes.insert(index, o);
        self.resolved.fetch_add(1, Ordering::SeqCst);
        self.resolved_changed.notify_waiters();
    }

    /// Decides whether this handler call fails (seeded).
    pub fn handler_fails(&self, rate: f64) -> bool {
        use rand::Rng;
        rate > 0.0
            && self
                .handler_errors
                .lock()
                .map(|mut r| r.gen_bool(rate))
                .unwrap_or(false)
    }

    pub fn handle(&self, id: MessageId, payload: &Bytes) {
        self.handler_calls.fetch_add(1, Ordering::SeqCst);
        let index = payload
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes);
        let Some(index) = index else {
            self.bad_payloads.fetch_add(1, Ordering::SeqCst);
            return;
        };
        self.handled
            .entry(id)
            .and_modify(|(n, _)| *n += 1)
            .or_insert((1, index));
    }
}

pub(crate) fn payload(index: u64, size: usize) -> Bytes {
    let mut v = vec![0xa5u8; size.max(8)];
    v[..8].copy_from_slice(&index.to_be_bytes());
    Bytes::from(v)
}
