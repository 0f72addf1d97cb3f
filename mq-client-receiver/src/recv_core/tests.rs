//! The core stepped with explicit instants.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mq_protocol::{Ack, Credit, Deliver, Frame, Headers, MessageId, Nack};

use super::{CoreConfig, DeliverStep, RecvCore, Settled, CREDIT_FLUSH_DELAY};
use crate::config::AckMode;
use crate::delivery::Outcome;
use crate::stats::Counters;

fn core(prefetch: u32, mode: AckMode) -> RecvCore {
    core_subs(prefetch, mode, 1)
}

fn core_subs(prefetch: u32, mode: AckMode, subs: u32) -> RecvCore {
    RecvCore::new(
        CoreConfig {
            prefetch,
            mode,
            subs,
        },
        Arc::new(Counters::default()),
    )
}

fn id(seq: u64) -> MessageId {
    MessageId::new(1, seq)
}

fn deliver(sub_id: u32, seq: u64, attempt: u32) -> Deliver {
    Deliver {
        sub_id,
        id: id(seq),
        delivery_attempt: attempt,
        topic: "t".into(),
        headers: Headers::default(),
        payload: bytes::Bytes::from_static(b"x"),
    }
}

fn frames(c: &mut RecvCore) -> Vec<Frame> {
    std::iter::from_fn(|| c.poll_transmit()).collect()
}

/// Delivers `seq` (unseen) and returns its dispatch token.
fn dispatched(c: &mut RecvCore, now: Instant, seq: u64, attempt: u32) -> u64 {
    let DeliverStep::Lookup { token, deliver: d } = c.on_deliver(now, deliver(1, seq, attempt))
    else {
        panic!("expected a lookup");
    };
    let got = d.id;
    assert_eq!(got, id(seq));
    c.on_lookup(now, d, token, false);
    let d = c.poll_dispatch().expect("dispatched");
    assert_eq!((d.deliver.id, d.token), (got, token));
    token
}

#[test]
fn auto_ok_marks_then_acks_and_returns_credit_batched() {
    let t0 = Instant::now();
    let mut c = core(8, AckMode::Auto);
    c.on_connected(t0);
    let tok = dispatched(&mut c, t0, 1, 1);
    assert_eq!(c.poll_transmit(), None);
    assert_eq!(
        c.on_handler_done(t0, id(1), tok, Ok(())),
        Settled::Mark { id: id(1) }
    );
    // Nothing written before the mark is done.
    assert_eq!(c.poll_transmit(), None);
    assert!(c.is_in_progress(id(1)));
    c.on_marked(t0, id(1));
    assert_eq!(
        frames(&mut c),
        vec![Frame::Ack(Ack {
            sub_id: 1,
            id: id(1)
        })]
    );
    // One credit owed, below prefetch / 4 = 2: waits for the flush timer.
    assert_eq!(c.poll_timeout(), Some(t0 + CREDIT_FLUSH_DELAY));
    c.handle_timeout(t0 + CREDIT_FLUSH_DELAY - Duration::from_millis(1));
    assert_eq!(c.poll_transmit(), None);
    c.handle_timeout(t0 + CREDIT_FLUSH_DELAY);
    assert_eq!(
        frames(&mut c),
        vec![Frame::Credit(Credit {
            sub_id: 1,
            credit: 1
        })]
    );
    assert_eq!(c.poll_timeout(), None);
    assert_eq!(c.in_progress(), 0);
}

#[test]
fn credit_reaching_a_quarter_of_prefetch_leaves_at_once() {
    let t0 = Instant::now();
    let mut c = core(8, AckMode::Auto);
    c.on_connected(t0);
    let a = dispatched(&mut c, t0, 1, 1);
    let b = dispatched(&mut c, t0, 2, 1);
    for (seq, tok) in [(1, a), (2, b)] {
        assert!(matches!(
            c.on_handler_done(t0, id(seq), tok, Err(5)),
            Settled::Done
        ));
    }
    assert_eq!(
        frames(&mut c),
        vec![
            Frame::Nack(Nack {
                sub_id: 1,
                id: id(1),
                delay_ms: 5
            }),
            Frame::Nack(Nack {
                sub_id: 1,
                id: id(2),
                delay_ms: 5
            }),
            Frame::Credit(Credit {
                sub_id: 1,
                credit: 2
            }),
        ]
    );
}

#[test]
fn manual_mode_ok_leaves_the_delivery_to_its_owner() {
    let t0 = Instant::now();
    let mut c = core(4, AckMode::Manual);
    c.on_connected(t0);
    let tok = dispatched(&mut c, t0, 1, 1);
    assert_eq!(c.on_handler_done(t0, id(1), tok, Ok(())), Settled::Done);
    assert!(c.is_in_progress(id(1)));
    assert_eq!(
        c.settle(t0, id(1), tok, Outcome::Ack),
        Settled::Mark { id: id(1) }
    );
    // Settled once: a second settle of the same token is stale.
    assert_eq!(
        c.settle(t0, id(1), tok, Outcome::Nack { delay_ms: 0 }),
        Settled::Stale
    );
    c.on_marked(t0, id(1));
    assert!(!c.is_in_progress(id(1)));
    assert_eq!(
        c.settle(t0, id(1), tok, Outcome::Ack),
        Settled::Stale,
        "settled exactly once"
    );
}

#[test]
fn seen_ids_are_acked_from_dedup_without_dispatch() {
    let t0 = Instant::now();
    let mut c = core(1, AckMode::Auto);
    c.on_connected(t0);
    let DeliverStep::Lookup { token, deliver: d } = c.on_deliver(t0, deliver(1, 9, 2)) else {
        panic!()
    };
    let i = d.id;
    c.on_lookup(t0, d, token, true);
    assert!(c.poll_dispatch().is_none());
    assert_eq!(
        frames(&mut c),
        vec![
            Frame::Ack(Ack { sub_id: 1, id: i }),
            Frame::Credit(Credit {
                sub_id: 1,
                credit: 1
            })
        ]
    );
}

#[test]
fn redelivery_of_an_id_in_progress_is_tied_and_its_credit_returned_with_it() {
    let t0 = Instant::now();
    let mut c = core(4, AckMode::Auto);
    c.on_connected(t0);
    let tok = dispatched(&mut c, t0, 1, 1);
    // A transport copy (same attempt): ignored, not charged.
    assert_eq!(c.on_deliver(t0, deliver(1, 1, 1)), DeliverStep::Ignored);
    // A real redelivery (higher attempt): tied, one more credit held.
    assert_eq!(c.on_deliver(t0, deliver(1, 1, 2)), DeliverStep::Tied);
    assert!(c.poll_dispatch().is_none());
    c.on_handler_done(t0, id(1), tok, Ok(()));
    c.on_marked(t0, id(1));
    assert_eq!(
        frames(&mut c),
        vec![
            Frame::Ack(Ack {
                sub_id: 1,
                id: id(1)
            }),
            Frame::Credit(Credit {
                sub_id: 1,
                credit: 2
            })
        ]
    );
}

#[test]
fn disconnect_keeps_in_progress_and_never_returns_old_credit() {
    let t0 = Instant::now();
    let mut c = core(4, AckMode::Auto);
    c.on_connected(t0);
    let tok = dispatched(&mut c, t0, 1, 1);
    let other = dispatched(&mut c, t0, 2, 1);
    c.on_disconnected();
    assert_eq!(c.in_progress(), 2);
    // Deliveries while disconnected are not ours to take.
    assert_eq!(c.on_deliver(t0, deliver(1, 3, 1)), DeliverStep::Ignored);
    // Settled while disconnected: recorded, nothing written.
    assert_eq!(
        c.on_handler_done(t0, id(2), other, Ok(())),
        Settled::Mark { id: id(2) }
    );
    c.on_marked(t0, id(2));
    assert_eq!(c.poll_transmit(), None);
    c.on_connected(t0);
    // The broker returns #1 on the new connection: tied to the running call.
    assert_eq!(c.on_deliver(t0, deliver(1, 1, 2)), DeliverStep::Tied);
    c.on_handler_done(t0, id(1), tok, Ok(()));
    c.on_marked(t0, id(1));
    c.handle_timeout(t0 + CREDIT_FLUSH_DELAY);
    // Exactly the one credit charged on this connection comes back.
    assert_eq!(
        frames(&mut c),
        vec![
            Frame::Ack(Ack {
                sub_id: 1,
                id: id(1)
            }),
            Frame::Credit(Credit {
                sub_id: 1,
                credit: 1
            })
        ]
    );
}

#[test]
fn nack_on_an_older_connection_is_not_written() {
    let t0 = Instant::now();
    let mut c = core(4, AckMode::Auto);
    c.on_connected(t0);
    let tok = dispatched(&mut c, t0, 1, 1);
    c.on_disconnected();
    c.on_connected(t0);
    assert_eq!(c.on_handler_done(t0, id(1), tok, Err(0)), Settled::Done);
    assert_eq!(c.poll_transmit(), None);
    assert_eq!(c.in_progress(), 0);
}

#[test]
fn stale_lookup_answers_and_unknown_subscriptions_are_ignored() {
    let t0 = Instant::now();
    let mut c = core_subs(4, AckMode::Auto, 2);
    c.on_connected(t0);
    assert_eq!(c.on_deliver(t0, deliver(3, 1, 1)), DeliverStep::Ignored);
    assert_eq!(c.on_deliver(t0, deliver(0, 1, 1)), DeliverStep::Ignored);
    let DeliverStep::Lookup { token, deliver: d } = c.on_deliver(t0, deliver(2, 1, 1)) else {
        panic!()
    };
    let i = d.id;
    c.on_lookup(t0, d.clone(), token + 1, false);
    assert!(c.poll_dispatch().is_none());
    c.on_lookup(t0, d, token, false);
    let d = c.poll_dispatch().expect("dispatched");
    assert_eq!(d.deliver.sub_id, 2);
    // The nack names the subscription it came on.
    c.on_handler_done(t0, i, token, Err(0));
    assert_eq!(
        c.poll_transmit(),
        Some(Frame::Nack(Nack {
            sub_id: 2,
            id: i,
            delay_ms: 0
        }))
    );
}

#[test]
fn closing_stops_dispatch_and_credit() {
    let t0 = Instant::now();
    let mut c = core(1, AckMode::Auto);
    c.on_connected(t0);
    let tok = dispatched(&mut c, t0, 1, 1);
    let DeliverStep::Lookup { token, deliver: d } = c.on_deliver(t0, deliver(1, 2, 1)) else {
        panic!()
    };
    let i = d.id;
    c.close();
    assert!(c.is_closing());
    c.on_lookup(t0, d, token, false);
    assert!(c.poll_dispatch().is_none());
    assert!(!c.is_in_progress(i), "left to the broker");
    c.on_handler_done(t0, id(1), tok, Ok(()));
    c.on_marked(t0, id(1));
    assert_eq!(
        frames(&mut c),
        vec![Frame::Ack(Ack {
            sub_id: 1,
            id: id(1)
        })],
        "the ack leaves, the credit does not"
    );
    assert_eq!(c.poll_timeout(), None);
}
