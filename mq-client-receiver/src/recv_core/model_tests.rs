//! The core against a model: an honest broker that respects credit, a store
//! that never forgets and answers whenever the test says, and handlers that
//! finish in any order. Random sequences of deliveries, transport copies,
//! store answers, handler results, disconnects and clock ticks.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mq_protocol::{Deliver, Frame, Headers, MessageId};
use proptest::prelude::*;

use super::{CoreConfig, DeliverStep, RecvCore, Settled};
use crate::config::AckMode;
use crate::delivery::Outcome;
use crate::stats::Counters;

#[derive(Debug, Clone)]
enum Op {
    /// The broker delivers ID `k` (if it has credit and is connected).
    Deliver(u8),
    /// A transport copy of the last frame of ID `k`.
    Copy(u8),
    /// The store answers the `i`-th pending lookup.
    Lookup(u8),
    /// The store finishes the `i`-th pending mark.
    Mark(u8),
    /// The `i`-th running handler call finishes, Ok or Err.
    Done(u8, bool),
    Disconnect,
    Connect,
    Tick(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..8).prop_map(Op::Deliver),
        1 => (0u8..8).prop_map(Op::Copy),
        3 => any::<u8>().prop_map(Op::Lookup),
        2 => any::<u8>().prop_map(Op::Mark),
        3 => (any::<u8>(), any::<bool>()).prop_map(|(i, ok)| Op::Done(i, ok)),
        1 => Just(Op::Disconnect),
        1 => Just(Op::Connect),
        1 => (0u8..20).prop_map(Op::Tick),
    ]
}

struct Model {
    core: RecvCore,
    prefetch: u32,
    mode: AckMode,
    now: Instant,
    connected: bool,
    /// Subscriptions; ID `k` always comes on `k % subs + 1`.
    subs: u32,
    /// Broker side, this connection: credit left per subscription.
    credit: Vec<i64>,
    attempts: HashMap<MessageId, u32>,
    /// The last attempt of each ID sent on this connection.
    sent: HashMap<MessageId, u32>,
    broker_acked: HashSet<MessageId>,
    /// Store: IDs marked (never forgotten).
    store: HashSet<MessageId>,
    lookups: Vec<(Deliver, u64)>,
    marks: Vec<MessageId>,
    /// Handler calls running: (id, token).
    running: Vec<(MessageId, u64)>,
    /// IDs whose handler succeeded: must never be dispatched again.
    processed: HashSet<MessageId>,
}

fn mid(k: u8) -> MessageId {
    MessageId::new(7, u64::from(k) + 1)
}

impl Model {
    fn new(prefetch: u32, mode: AckMode, subs: u32) -> Self {
        let now = Instant::now();
        let mut core = RecvCore::new(
            CoreConfig {
                prefetch,
                mode,
                subs,
            },
            Arc::new(Counters::default()),
        );
        core.on_connected(now);
        Self {
            core,
            prefetch,
            mode,
            now,
            connected: true,
            subs,
            credit: vec![i64::from(prefetch); subs as usize],
            attempts: HashMap::new(),
            sent: HashMap::new(),
            broker_acked: HashSet::new(),
            store: HashSet::new(),
            lookups: Vec::new(),
            marks: Vec::new(),
            running: Vec::new(),
            processed: HashSet::new(),
        }
    }

    fn sub_of(&self, id: MessageId) -> u32 {
        (id.seq % u64::from(self.subs)) as u32 + 1
    }

    fn frame(&self, id: MessageId, attempt: u32) -> Deliver {
        Deliver {
            sub_id: self.sub_of(id),
            id,
            delivery_attempt: attempt,
            topic: "t".into(),
            headers: Headers::default(),
            payload: bytes::Bytes::new(),
        }
    }

    fn deliver(&mut self, d: Deliver) {
        match self.core.on_deliver(self.now, d) {
            DeliverStep::Lookup { token, deliver } => self.lookups.push((deliver, token)),
            DeliverStep::Tied | DeliverStep::Ignored => {}
        }
    }

    fn step(&mut self, op: Op) {
        match op {
            Op::Deliver(k) => {
                let id = mid(k);
                let sub = self.sub_of(id) as usize - 1;
                if !self.connected || self.credit[sub] <= 0 || self.broker_acked.contains(&id) {
                    return;
                }
                self.credit[sub] -= 1;
                let a = self.attempts.entry(id).or_insert(0);
                *a += 1;
                let attempt = *a;
                self.sent.insert(id, attempt);
                self.deliver(self.frame(id, attempt));
            }
            Op::Copy(k) => {
                let id = mid(k);
                if let (true, Some(&a)) = (self.connected, self.sent.get(&id)) {
                    self.deliver(self.frame(id, a));
                }
            }
            Op::Lookup(i) => {
                if self.lookups.is_empty() {
                    return;
                }
                let (d, token) = self.lookups.remove(usize::from(i) % self.lookups.len());
                let seen = self.store.contains(&d.id);
                self.core.on_lookup(self.now, d, token, seen);
            }
            Op::Mark(i) => {
                if self.marks.is_empty() {
                    return;
                }
                let id = self.marks.remove(usize::from(i) % self.marks.len());
                self.store.insert(id);
                self.core.on_marked(self.now, id);
            }
            Op::Done(i, ok) => {
                if self.running.is_empty() {
                    return;
                }
                let (id, token) = self.running.remove(usize::from(i) % self.running.len());
                self.finish(id, token, ok);
            }
            Op::Disconnect => {
                self.core.on_disconnected();
                self.connected = false;
            }
            Op::Connect => {
                if !self.connected {
                    self.core.on_connected(self.now);
                    self.connected = true;
                    self.credit = vec![i64::from(self.prefetch); self.subs as usize];
                    self.sent.clear();
                }
            }
            Op::Tick(ms) => {
                self.now += Duration::from_millis(u64::from(ms));
                if self.core.poll_timeout().is_some_and(|t| t <= self.now) {
                    self.core.handle_timeout(self.now);
                }
            }
        }
        self.drain();
    }

    fn finish(&mut self, id: MessageId, token: u64, ok: bool) {
        let settled = match (self.mode, ok) {
            (AckMode::Auto, ok) => {
                self.core
                    .on_handler_done(self.now, id, token, if ok { Ok(()) } else { Err(0) })
            }
            (_, true) => self.core.settle(self.now, id, token, Outcome::Ack),
            (_, false) => self
                .core
                .settle(self.now, id, token, Outcome::Nack { delay_ms: 0 }),
        };
        match settled {
            Settled::Mark { id: m } => {
                assert!(ok);
                assert_eq!(m, id);
                self.processed.insert(id);
                self.marks.push(id);
            }
            Settled::Done => assert!(!ok, "an Ok must mark"),
            Settled::Stale => panic!("the current dispatch of {id} was not settled"),
        }
        // Exactly once: the same token never settles again.
        let again = self.core.settle(self.now, id, token, Outcome::Ack);
        assert_eq!(again, Settled::Stale);
    }

    fn drain(&mut self) {
        while let Some(d) = self.core.poll_dispatch() {
            let id = d.deliver.id;
            assert!(
                !self.processed.contains(&id),
                "{id} reached the handler after it was processed"
            );
            assert!(
                !self.running.iter().any(|(r, _)| *r == id),
                "{id} reached the handler twice at once"
            );
            self.running.push((id, d.token));
        }
        while let Some(f) = self.core.poll_transmit() {
            assert!(self.connected, "a frame written while disconnected");
            match f {
                Frame::Credit(c) => {
                    let left = &mut self.credit[c.sub_id as usize - 1];
                    *left += i64::from(c.credit);
                    assert!(
                        *left <= i64::from(self.prefetch),
                        "credit {left} of sub {} above prefetch {}",
                        c.sub_id,
                        self.prefetch
                    );
                }
                Frame::Ack(a) => {
                    assert!(self.store.contains(&a.id), "acked before it was marked");
                    assert_eq!(a.sub_id, self.sub_of(a.id), "ack on the wrong subscription");
                    self.broker_acked.insert(a.id);
                }
                Frame::Nack(n) => {
                    assert_eq!(
                        n.sub_id,
                        self.sub_of(n.id),
                        "nack on the wrong subscription"
                    );
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        // Nothing running is forgotten, connected or not.
        for (id, _) in &self.running {
            assert!(self.core.is_in_progress(*id), "{id} forgotten");
        }
        for id in &self.marks {
            assert!(
                self.core.is_in_progress(*id),
                "{id} forgotten while marking"
            );
        }
    }

    /// Lets everything finish: every delivery on this connection is then
    /// settled and all its credit is back.
    fn quiesce(&mut self) {
        self.step(Op::Connect);
        for _ in 0..1000 {
            if !self.lookups.is_empty() {
                self.step(Op::Lookup(0));
            } else if !self.running.is_empty() {
                self.step(Op::Done(0, true));
            } else if !self.marks.is_empty() {
                self.step(Op::Mark(0));
            } else {
                break;
            }
        }
        self.step(Op::Tick(20));
        assert_eq!(self.core.in_progress(), 0, "something never settled");
        for left in &self.credit {
            assert_eq!(*left, i64::from(self.prefetch), "credit not returned");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn core_keeps_its_promises(
        prefetch in 1u32..6,
        manual in any::<bool>(),
        subs in 1u32..=2,
        ops in proptest::collection::vec(op(), 0..120),
    ) {
        let mode = if manual { AckMode::Manual } else { AckMode::Auto };
        let mut m = Model::new(prefetch, mode, subs);
        for op in ops {
            m.step(op);
        }
        m.quiesce();
    }
}
