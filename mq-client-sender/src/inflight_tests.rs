//! The core stepped with explicit instants: no runtime, no sleeps.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use mq_protocol::{Backoff, ErrorCode, Frame, Headers, Message, MessageId, Reply, ReplyStatus};

use crate::message::Wire;
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::SeedableRng;

use super::timer_tests::fire;
use super::*;

const MS: Duration = Duration::from_millis(1);

fn cfg(max_attempts: u32, jitter: f64, send_timeout: Option<Duration>) -> CoreConfig {
    CoreConfig {
        retry: Backoff {
            initial: 100 * MS,
            multiplier: 2.0,
            max: 1000 * MS,
            jitter,
        },
        max_attempts,
        send_timeout,
        // Small, so the ring slides and the side map takes stragglers.
        window: 8,
    }
}

fn core(c: CoreConfig, seed: u64) -> Inflight<u32, SmallRng> {
    Inflight::new(c, SmallRng::seed_from_u64(seed))
}

pub(super) fn msg(seq: u64) -> Wire {
    Wire {
        id: MessageId::new(7, seq),
        topic: "t".into(),
        headers: Headers::new(),
        payload: "p".into(),
    }
}

fn reply(seq: u64, attempt: u32, status: ReplyStatus) -> Reply {
    Reply {
        id: MessageId::new(7, seq),
        attempt,
        status,
    }
}

/// All frames ready to write, as (seq, attempt).
fn sent(c: &mut Inflight<u32, SmallRng>) -> Vec<(u64, u32)> {
    let mut out = Vec::new();
    while let Some(m) = c.poll_transmit(|m| (m.id.seq, m.attempt)) {
        out.push(m);
    }
    out
}

fn outcomes(c: &mut Inflight<u32, SmallRng>) -> Vec<(u64, Result<Receipt, SendError>)> {
    std::iter::from_fn(|| c.poll_outcome())
        .map(|o| (o.id.seq, o.result.map_err(|e| *e)))
        .collect()
}

#[test]
fn retransmits_on_exact_deadlines_then_times_out() {
    let t0 = Instant::now();
    let mut c = core(cfg(4, 0.0, None), 1);
    c.on_connected(t0);
    c.insert(t0, msg(1), 0).unwrap();
    assert_eq!(sent(&mut c), vec![(1, 1)]);
    assert_eq!(c.poll_timeout(), Some(t0 + 100 * MS));

    c.handle_timeout(t0 + 99 * MS);
    assert!(sent(&mut c).is_empty());
    c.handle_timeout(t0 + 100 * MS);
    assert_eq!(sent(&mut c), vec![(1, 2)]);
    assert_eq!(c.poll_timeout(), Some(t0 + 300 * MS));
    c.handle_timeout(t0 + 300 * MS);
    assert_eq!(sent(&mut c), vec![(1, 3)]);
    assert_eq!(c.poll_timeout(), Some(t0 + 700 * MS));
    c.handle_timeout(t0 + 700 * MS);
    assert_eq!(sent(&mut c), vec![(1, 4)]);
    assert_eq!(c.poll_timeout(), Some(t0 + 1500 * MS));
    assert!(outcomes(&mut c).is_empty());

    c.handle_timeout(t0 + 1500 * MS);
    assert!(sent(&mut c).is_empty());
    let out = outcomes(&mut c);
    assert_eq!(out.len(), 1);
    match &out[0].1 {
        Err(e @ SendError::Timeout { attempts: 4, .. }) => {
            assert!(e.to_string().contains("after 4 attempt(s)"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert!(c.is_empty());
    assert_eq!(c.poll_timeout(), None);
    assert_eq!(c.counters().retransmitted, 3);
}

#[test]
fn reply_to_an_earlier_attempt_after_a_retransmit_confirms_once() {
    let t0 = Instant::now();
    let mut c = core(cfg(5, 0.0, None), 1);
    c.on_connected(t0);
    c.insert(t0, msg(1), 0).unwrap();
    sent(&mut c);
    c.handle_timeout(t0 + 100 * MS);
    assert_eq!(sent(&mut c), vec![(1, 2)]);
    assert_eq!(
        c.handle_reply(t0 + 150 * MS, reply(1, 2, ReplyStatus::Duplicate)),
        ReplyEffect::Resolved
    );
    let out = outcomes(&mut c);
    let receipt = out[0].1.as_ref().unwrap();
    assert_eq!(
        (receipt.attempts, receipt.duplicate, receipt.elapsed),
        (2, true, 150 * MS)
    );
    // The answer to attempt 1, arriving later, is ignored and counted.
    assert_eq!(
        c.handle_reply(t0 + 160 * MS, reply(1, 1, ReplyStatus::Stored)),
        ReplyEffect::Ignored
    );
    assert!(outcomes(&mut c).is_empty());
    assert_eq!(c.counters().late_replies, 1);
}

#[test]
fn late_reply_after_failure_is_ignored() {
    let t0 = Instant::now();
    let mut c = core(cfg(1, 0.0, None), 1);
    c.on_connected(t0);
    c.insert(t0, msg(1), 0).unwrap();
    sent(&mut c);
    c.handle_timeout(t0 + 100 * MS);
    assert!(matches!(
        outcomes(&mut c)[..],
        [(1, Err(SendError::Timeout { attempts: 1, .. }))]
    ));
    assert_eq!(
        c.handle_reply(t0 + 200 * MS, reply(1, 1, ReplyStatus::Stored)),
        ReplyEffect::Ignored
    );
    assert!(outcomes(&mut c).is_empty());
    assert_eq!(c.counters().late_replies, 1);
}

#[test]
fn permanent_rejection_resolves_at_once() {
    let t0 = Instant::now();
    let mut c = core(cfg(5, 0.0, None), 1);
    c.on_connected(t0);
    c.insert(t0, msg(1), 0).unwrap();
    sent(&mut c);
    let status = ReplyStatus::Rejected {
        code: ErrorCode::INVALID_TOPIC,
        reason: "bad".into(),
    };
    assert_eq!(
        c.handle_reply(t0 + MS, reply(1, 1, status)),
        ReplyEffect::Resolved
    );
    match &outcomes(&mut c)[..] {
        [(
            1,
            Err(SendError::Rejected {
                code, attempts: 1, ..
            }),
        )] => assert_eq!(*code, ErrorCode::INVALID_TOPIC),
        other => panic!("{other:?}"),
    }
    assert!(sent(&mut c).is_empty());
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn transient_rejection_backs_off_then_retries_then_reports_the_code() {
    let t0 = Instant::now();
    let mut c = core(cfg(2, 0.0, None), 1);
    c.on_connected(t0);
    c.insert(t0, msg(1), 0).unwrap();
    sent(&mut c);
    let busy = || ReplyStatus::Rejected {
        code: ErrorCode::BUSY,
        reason: "busy".into(),
    };
    assert_eq!(
        c.handle_reply(t0 + 10 * MS, reply(1, 1, busy())),
        ReplyEffect::Retrying
    );
    // Not re-sent before the backoff of attempt 1 (100 ms from the rejection).
    assert_eq!(c.poll_timeout(), Some(t0 + 110 * MS));
    c.handle_timeout(t0 + 109 * MS);
    assert!(sent(&mut c).is_empty());
    c.handle_timeout(t0 + 110 * MS);
    assert_eq!(sent(&mut c), vec![(1, 2)]);
    // Last attempt rejected again: the outcome carries the code.
    assert_eq!(
        c.handle_reply(t0 + 120 * MS, reply(1, 2, busy())),
        ReplyEffect::Resolved
    );
    match &outcomes(&mut c)[..] {
        [(
            1,
            Err(SendError::Rejected {
                code, attempts: 2, ..
            }),
        )] => assert_eq!(*code, ErrorCode::BUSY),
        other => panic!("{other:?}"),
    }
}

#[test]
fn total_deadline_wins_over_attempts() {
    let t0 = Instant::now();
    let mut c = core(cfg(10, 0.0, Some(250 * MS)), 1);
    c.on_connected(t0);
    c.insert(t0, msg(1), 0).unwrap();
    sent(&mut c);
    c.handle_timeout(t0 + 100 * MS);
    assert_eq!(sent(&mut c), vec![(1, 2)]);
    // Attempt 2 would wait until 300 ms; the total deadline is 250 ms.
    assert_eq!(c.poll_timeout(), Some(t0 + 250 * MS));
    c.handle_timeout(t0 + 250 * MS);
    assert!(matches!(
        outcomes(&mut c)[..],
        [(1, Err(SendError::Timeout { attempts: 2, .. }))]
    ));
}

#[test]
fn deadlines_run_while_disconnected_and_reconnect_resends_everything() {
    let t0 = Instant::now();
    let mut c = core(cfg(3, 0.0, None), 1);
    c.on_connected(t0);
    c.insert(t0, msg(1), 0).unwrap();
    assert_eq!(sent(&mut c), vec![(1, 1)]);
    c.on_disconnect();
    // Inserted while disconnected: attempt 1 counts, nothing written.
    c.insert(t0 + 10 * MS, msg(2), 0).unwrap();
    assert!(sent(&mut c).is_empty());
    // Message 1's attempt 2 starts while disconnected (not written).
    c.handle_timeout(t0 + 100 * MS);
    assert!(sent(&mut c).is_empty());
    // Reconnect at 150 ms: both go out under their current attempt (neither
    // current attempt was on the wire), deadlines unchanged.
    c.on_connected(t0 + 150 * MS);
    assert_eq!(sent(&mut c), vec![(1, 2), (2, 1)]);
    assert_eq!(c.poll_timeout(), Some(t0 + 110 * MS));
    // Lose the connection again: both were on the wire, so reconnect starts
    // the next attempt at once with fresh deadlines.
    c.on_disconnect();
    c.on_connected(t0 + 160 * MS);
    assert_eq!(sent(&mut c), vec![(1, 3), (2, 2)]);
    // Message 1's last attempt (3) was on the lost connection: a
    // retransmission needs a higher attempt number and none is left, so it
    // is not written again and fails at its deadline (160 + 400 ms).
    c.on_disconnect();
    c.on_connected(t0 + 170 * MS);
    assert_eq!(sent(&mut c), vec![(2, 3)]);
    c.handle_timeout(t0 + 559 * MS);
    assert!(outcomes(&mut c).is_empty());
    c.handle_timeout(t0 + 560 * MS);
    assert!(matches!(
        outcomes(&mut c)[..],
        [(1, Err(SendError::Timeout { attempts: 3, .. }))]
    ));
}

#[test]
fn failure_arrives_on_time_when_the_broker_never_returns() {
    let t0 = Instant::now();
    let mut c = core(cfg(3, 0.0, None), 1);
    c.on_connected(t0);
    c.insert(t0, msg(1), 0).unwrap();
    sent(&mut c);
    c.on_disconnect();
    let mut now = t0;
    while let Some(t) = c.poll_timeout() {
        now = t;
        c.handle_timeout(now);
    }
    // 100 + 200 + 400 ms.
    assert_eq!(now, t0 + 700 * MS);
    assert!(matches!(
        outcomes(&mut c)[..],
        [(1, Err(SendError::Timeout { attempts: 3, .. }))]
    ));
}

#[test]
fn duplicate_insert_is_refused_and_abandon_resolves_all() {
    let t0 = Instant::now();
    let mut c = core(cfg(3, 0.0, None), 1);
    c.insert(t0, msg(1), 10).unwrap();
    let (m, data) = c.insert(t0, msg(1), 11).unwrap_err();
    assert_eq!((m.id.seq, data), (1, 11));
    c.insert(t0, msg(2), 12).unwrap();
    assert!(c.contains(MessageId::new(7, 2)) && !c.contains(MessageId::new(7, 3)));
    assert_eq!(
        c.abandon_all(),
        vec![MessageId::new(7, 1), MessageId::new(7, 2)]
    );
    let out: Vec<_> = std::iter::from_fn(|| c.poll_outcome())
        .map(|o| o.data)
        .collect();
    assert_eq!(out, vec![10, 12]);
    assert!(c.is_empty() && c.poll_timeout().is_none());
}

/// One step of the model test.
#[derive(Debug, Clone)]
enum Op {
    Insert(u64),
    Advance(u64),
    Reply(u64, u8),
    Disconnect,
    Connect,
    Write,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u64..20).prop_map(Op::Insert),
        3 => (0u64..400).prop_map(Op::Advance),
        4 => ((1u64..20), 0u8..5).prop_map(|(s, k)| Op::Reply(s, k)),
        1 => Just(Op::Disconnect),
        1 => Just(Op::Connect),
        3 => Just(Op::Write),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Done,
}

proptest! {
    /// Against a map id → state: every inserted message gets exactly one
    /// outcome, no outcome for anything else, attempts never exceed the
    /// maximum, and with time running out everything resolves.
    #[test]
    fn every_inserted_message_gets_exactly_one_outcome(
        ops in proptest::collection::vec(op(), 1..200),
        seed: u64,
        max_attempts in 1u32..5,
        timeout in proptest::option::of(50u64..2000),
        jitter in prop_oneof![Just(0.0), Just(0.3)],
    ) {
        let c0 = cfg(max_attempts, jitter, timeout.map(Duration::from_millis));
        let mut c = core(c0, seed);
        let t0 = Instant::now();
        let mut now = t0;
        let mut model: HashMap<u64, State> = HashMap::new();
        let mut outcomes_seen = 0usize;
        let mut check = |c: &mut Inflight<u32, SmallRng>, model: &mut HashMap<u64, State>| -> Result<(), TestCaseError> {
            while let Some(o) = c.poll_outcome() {
                let st = model.get_mut(&o.id.seq);
                prop_assert_eq!(st.as_deref(), Some(&State::Pending), "outcome for {} not pending", o.id);
                if let Some(st) = st { *st = State::Done; }
                match o.result.as_ref().map_err(|e| &**e) {
                    Ok(r) => prop_assert!(r.attempts <= max_attempts),
                    Err(SendError::Timeout { attempts, .. } | SendError::Rejected { attempts, .. }) => {
                        prop_assert!(*attempts <= max_attempts)
                    }
                    Err(e) => prop_assert!(false, "unexpected {e:?}"),
                }
                outcomes_seen += 1;
            }
            Ok(())
        };
        for op in ops {
            match op {
                Op::Insert(s) => {
                    let pending = model.get(&s) == Some(&State::Pending);
                    let r = c.insert(now, msg(s), 0);
                    prop_assert_eq!(r.is_err(), pending);
                    if !pending { model.insert(s, State::Pending); }
                }
                Op::Advance(ms) => { now += Duration::from_millis(ms); c.handle_timeout(now); }
                Op::Reply(s, k) => {
                    let status = match k {
                        0 => ReplyStatus::Stored,
                        1 => ReplyStatus::Duplicate,
                        2 => ReplyStatus::Rejected { code: ErrorCode::BUSY, reason: String::new() },
                        3 => ReplyStatus::Rejected { code: ErrorCode::MESSAGE_TOO_LARGE, reason: String::new() },
                        _ => ReplyStatus::Stored,
                    };
                    let effect = c.handle_reply(now, reply(s, max_attempts, status));
                    if model.get(&s) != Some(&State::Pending) {
                        prop_assert_eq!(effect, ReplyEffect::Ignored);
                    }
                }
                Op::Disconnect => c.on_disconnect(),
                Op::Connect => c.on_connected(now),
                Op::Write => {
                    while let Some((seq, attempt)) = c.poll_transmit(|m| (m.id.seq, m.attempt)) {
                        prop_assert!(attempt >= 1 && attempt <= max_attempts);
                        prop_assert_eq!(model.get(&seq), Some(&State::Pending));
                    }
                }
            }
            check(&mut c, &mut model)?;
            prop_assert_eq!(c.len(), model.values().filter(|s| **s == State::Pending).count());
            // No deadline missed, none hidden: every live deadline is
            // after `now`, and `poll_timeout` is at or before the earliest
            // (exactly it without jitter).
            if let Some(epoch) = c.epoch {
                let now_tick = tick(epoch, now);
                let earliest = c.entries.iter().map(|(_, e)| e.deadline(&c.cfg)).min();
                if let Some(d) = earliest {
                    prop_assert!(d > now_tick, "deadline {} missed at {}", d, now_tick);
                }
                let polled = c.poll_timeout().map(|t| tick(epoch, t));
                prop_assert_eq!(polled.is_some(), earliest.is_some());
                if let (Some(p), Some(d)) = (polled, earliest) {
                    prop_assert!(p <= d, "poll_timeout {} after deadline {}", p, d);
                    if jitter == 0.0 {
                        prop_assert_eq!(p, d);
                    }
                }
            }
        }
        // Let every timer run out: everything resolves.
        while let Some(t) = c.poll_timeout() {
            now = now.max(t);
            c.handle_timeout(now);
        }
        check(&mut c, &mut model)?;
        prop_assert!(model.values().all(|s| *s == State::Done));
        prop_assert!(c.is_empty());
        let _ = outcomes_seen;
    }
}

/// The default schedule, from `SenderConfig::default()`.
fn default_cfg() -> CoreConfig {
    let d = crate::SenderConfig::default();
    CoreConfig {
        retry: d.retry,
        max_attempts: d.max_attempts,
        send_timeout: d.send_timeout,
        window: d.max_in_flight,
    }
}

#[test]
fn default_config_retries_at_most_2s_apart_until_the_120s_deadline() {
    let t0 = Instant::now();
    let mut c = core(default_cfg(), 3);
    c.on_connected(t0);
    c.insert(t0, msg(1), 0).unwrap();
    assert_eq!(sent(&mut c), vec![(1, 1)]);
    // Every frame is lost: step from deadline to deadline.
    let mut last = t0;
    let mut attempts = 1;
    while let Some(t) = c.poll_timeout() {
        assert!(
            t - last <= Duration::from_secs(2),
            "attempt {attempts} waited {:?}",
            t - last
        );
        c.handle_timeout(t);
        attempts += sent(&mut c).len() as u32;
        last = t;
    }
    assert_eq!(last - t0, Duration::from_secs(120), "fails at send_timeout");
    // 1 s, then at most 2 s apart (at least 1.6 s with jitter): 60..=75.
    assert!((60..=75).contains(&attempts), "{attempts} attempts");
    match outcomes(&mut c).as_slice() {
        [(1, Err(SendError::Timeout { attempts: a, .. }))] => assert_eq!(*a, attempts),
        other => panic!("{other:?}"),
    }
}

#[test]
fn default_config_confirms_after_many_losses_in_a_row() {
    // The issue-19 case: under 5 % drops each way and 10 % lost replies a
    // few messages in 10 000 lose 5 attempts in a row; with a count limit
    // of 5 they failed although stored. Twenty losses in a row still end
    // in a confirm well inside the deadline.
    let t0 = Instant::now();
    let mut c = core(default_cfg(), 4);
    c.on_connected(t0);
    c.insert(t0, msg(1), 0).unwrap();
    sent(&mut c);
    let mut now = t0;
    for _ in 0..20 {
        now = fire(&mut c);
        assert_eq!(sent(&mut c).len(), 1);
    }
    assert!(now - t0 < Duration::from_secs(45), "{:?}", now - t0);
    c.handle_reply(now, reply(1, 21, ReplyStatus::Duplicate));
    match outcomes(&mut c).as_slice() {
        [(1, Ok(r))] => assert!(r.duplicate && r.attempts == 21),
        other => panic!("{other:?}"),
    }
}

/// Every in-flight message holds one ring slot (no key, no load factor; see
/// `slots.rs`) and one channel allocation holding a `Done`: these sizes are
/// most of its memory cost beyond the payload (docs/BENCHMARKS.md, round 2).
/// Growing them must be a decision, not an accident.
#[test]
fn in_flight_structures_stay_dense() {
    use std::mem::size_of;
    // Was 320 bytes (Frame 112, four instants, two semaphore permits, an
    // inline callback) before round 2. A slot is an `Option` of an entry,
    // the same size (the entry has a niche).
    // 128 before round 4 (the rejection moved to a side map).
    assert!(size_of::<Entry<crate::driver::Ticket>>() <= 120);
    assert_eq!(
        size_of::<Option<Entry<crate::driver::Ticket>>>(),
        size_of::<Entry<crate::driver::Ticket>>()
    );
    assert!(size_of::<Body>() <= 64);
    assert!(size_of::<crate::driver::Ticket>() <= 32);
    // Was `Result<Receipt, SendError>`, 120 bytes.
    assert!(size_of::<crate::driver::Done>() <= 16);
}

#[test]
fn confirmed_round_trips_a_receipt() {
    use crate::driver::{done, Confirmed};
    let r = Receipt {
        id: MessageId::new(7, 9),
        attempts: 3,
        elapsed: Duration::new(5, 123_456_789),
        duplicate: true,
    };
    assert_eq!(Confirmed::new(&r).receipt(r.id), r);
    let other = MessageId::new(1, 2);
    assert_eq!(Confirmed::new(&r).receipt(other).id, other);
    match done(Err(Box::new(SendError::Timeout {
        id: r.id,
        attempts: 2,
    }))) {
        Err(e) => assert!(matches!(*e, SendError::Timeout { attempts: 2, .. })),
        Ok(c) => panic!("an error became {c:?}"),
    }
    // An elapsed time beyond u64 nanoseconds saturates instead of wrapping.
    let long = Receipt {
        elapsed: Duration::MAX,
        ..r
    };
    assert_eq!(
        Confirmed::new(&long).receipt(r.id).elapsed,
        Duration::from_nanos(u64::MAX)
    );
}

#[test]
fn permits_merge_and_go_back_to_the_window() {
    use crate::driver::Permits;
    let mut p = Permits::default();
    p.merge(Permits::one(100));
    p.merge(Permits::one(28));
    assert_eq!(
        p,
        Permits {
            count: 2,
            bytes: 128
        }
    );
}

/// Every attempt carries the message as handed over, byte for byte (topic,
/// headers, payload, ID), with only the attempt number changed; and a
/// message failed after it was on the wire is given back whole.
#[test]
fn retransmissions_carry_the_same_message() {
    let t0 = Instant::now();
    let mut c = core(cfg(5, 0.0, None), 1);
    c.on_connected(t0);
    let headers: Headers = [("k", "v"), ("k", "w")].into_iter().collect();
    let original = Wire {
        id: MessageId::new(7, 1),
        topic: "orders".into(),
        headers,
        payload: vec![9u8; 300].into(),
    };
    let plain = Wire {
        id: MessageId::new(7, 2),
        headers: Headers::new(),
        ..original.clone()
    };
    // What a `Message` of these parts would be on the wire.
    let owned = |w: &Wire, attempt: u32| Message {
        id: w.id,
        attempt,
        topic: w.topic.to_string().into(),
        headers: w.headers.clone(),
        payload: w.payload.clone(),
    };
    c.insert(t0, original.clone(), 0).unwrap();
    c.insert(t0, plain.clone(), 0).unwrap();
    let mut frames = Vec::new();
    let mut now = t0;
    for _ in 0..3 {
        while let Some(f) = c.poll_transmit(|m| {
            let mut buf = bytes::BytesMut::new();
            m.encode(&mut buf).map(|()| buf)
        }) {
            frames.push(f.expect("encodes"));
        }
        now += 1000 * MS;
        c.handle_timeout(now);
    }
    assert_eq!(frames.len(), 6);
    for (i, bytes) in frames.iter().enumerate() {
        let want = if i % 2 == 0 { &original } else { &plain };
        let attempt = i as u32 / 2 + 1;
        let mut expected = bytes::BytesMut::new();
        Frame::Message(owned(want, attempt))
            .encode(&mut expected)
            .expect("encodes");
        assert_eq!(*bytes, expected, "frame {i}");
    }
    c.fail_too_large(MessageId::new(7, 1), 10);
    match outcomes(&mut c).pop() {
        Some((1, Err(SendError::TooLarge { message, size, .. }))) => {
            assert_eq!(size, Frame::Message(owned(&original, 1)).frame_size());
            assert_eq!(message, OutgoingMessage::from_wire(original, false));
        }
        other => panic!("expected TooLarge with the message, got {other:?}"),
    }
}

/// Entries keep instants as nanoseconds after the first insert: a later
/// message's deadline and elapsed time stay exact to the nanosecond, and
/// an instant before that epoch fires nothing.
#[test]
fn tick_instants_are_exact() {
    let t0 = Instant::now();
    let odd = Duration::from_nanos(123_457);
    let mut c = core(cfg(3, 0.0, Some(150 * MS)), 1);
    c.on_connected(t0);
    c.insert(t0, msg(1), 0).unwrap();
    c.insert(t0 + odd, msg(2), 0).unwrap();
    assert_eq!(sent(&mut c), vec![(1, 1), (2, 1)]);
    c.handle_timeout(t0.checked_sub(MS).unwrap_or(t0));
    assert!(sent(&mut c).is_empty());
    c.handle_reply(t0 + 100 * MS, reply(1, 2, ReplyStatus::Stored));
    c.handle_timeout(t0 + odd + 100 * MS - Duration::from_nanos(1));
    assert!(sent(&mut c).is_empty(), "one nanosecond early");
    assert_eq!(c.poll_timeout(), Some(t0 + odd + 100 * MS));
    c.handle_timeout(t0 + odd + 100 * MS);
    assert_eq!(sent(&mut c), vec![(2, 2)]);
    // The total deadline (150 ms) comes before the second retry (200 ms).
    assert_eq!(c.poll_timeout(), Some(t0 + odd + 150 * MS));
    let at = t0 + odd + 120 * MS + Duration::from_nanos(3);
    c.handle_reply(at, reply(2, 2, ReplyStatus::Stored));
    match outcomes(&mut c).as_slice() {
        [(1, Ok(r1)), (2, Ok(r2))] => {
            assert_eq!(r1.elapsed, 100 * MS);
            assert_eq!(r2.elapsed, 120 * MS + Duration::from_nanos(3));
        }
        other => panic!("{other:?}"),
    }
}
