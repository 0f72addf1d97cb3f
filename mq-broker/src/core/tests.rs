//! The core stepped with explicit `now`: every timing rule without a socket,
//! a task or a sleep.

use std::time::Duration;

use mq_protocol::{
    Ack, Backoff, Credit, Deliver, ErrorCode, Frame, Headers, Message, MessageId, Nack,
    ReplyStatus, Role, Subscribe,
};
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::time::Instant;

use super::Core;
use crate::groups::ConnId;
use crate::BrokerConfig;

const SEED: u64 = 5;
const SENDER: ConnId = 100;
const MS: Duration = Duration::from_millis(1);

fn config() -> BrokerConfig {
    BrokerConfig {
        redelivery: Backoff {
            initial: 100 * MS,
            multiplier: 2.0,
            max: 1000 * MS,
            jitter: 0.0,
        },
        max_deliveries: 4,
        ..BrokerConfig::default()
    }
}

fn core(config: BrokerConfig) -> Core {
    eprintln!("seed {SEED}");
    let mut c = Core::new(&config, StdRng::seed_from_u64(SEED));
    c.open(SENDER, Role::Sender);
    c
}

fn msg(seq: u64, topic: &str) -> Frame {
    Frame::Message(Message {
        id: MessageId::new(1, seq),
        attempt: 1,
        topic: topic.into(),
        headers: Headers::new(),
        payload: bytes::Bytes::from_static(b"payload"),
    })
}

fn id(seq: u64) -> MessageId {
    MessageId::new(1, seq)
}

/// Publishes and returns the reply status.
fn publish(c: &mut Core, seq: u64, topic: &str, now: Instant) -> ReplyStatus {
    c.handle_frame(SENDER, msg(seq, topic), now)
        .expect("sender frame");
    let out = std::mem::take(&mut c.out);
    let reply = out.iter().find_map(|(conn, f)| match f {
        Frame::Reply(r) if *conn == SENDER => Some(r.status.clone()),
        _ => None,
    });
    // Put deliveries back for the caller.
    c.out = out
        .into_iter()
        .filter(|(_, f)| !matches!(f, Frame::Reply(_)))
        .collect();
    reply.expect("a reply")
}

fn receiver(c: &mut Core, conn: ConnId, sub_id: u32, credit: u32, group: &str, now: Instant) {
    c.open(conn, Role::Receiver);
    let sub = Subscribe {
        sub_id,
        credit,
        topic: "t".into(),
        group: group.into(),
    };
    c.handle_frame(conn, Frame::Subscribe(sub), now)
        .expect("subscribe");
}

fn delivers(c: &mut Core) -> Vec<(ConnId, Deliver)> {
    std::mem::take(&mut c.out)
        .into_iter()
        .filter_map(|(conn, f)| match f {
            Frame::Deliver(d) => Some((conn, d)),
            _ => None,
        })
        .collect()
}

fn ack(c: &mut Core, conn: ConnId, sub_id: u32, seq: u64, now: Instant) {
    c.handle_frame(
        conn,
        Frame::Ack(Ack {
            sub_id,
            id: id(seq),
        }),
        now,
    )
    .expect("ack");
}

#[test]
fn redelivery_follows_the_backoff_then_dead_letters() {
    let t0 = Instant::now();
    let mut c = core(config());
    receiver(&mut c, 1, 7, 100, "g", t0);
    assert_eq!(publish(&mut c, 1, "t", t0), ReplyStatus::Stored);
    let d = delivers(&mut c);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].1.delivery_attempt, 1);

    // Attempt n is redelivered base(n) after it was sent: 100, 200, 400 ms.
    let mut sent_at = t0;
    for (attempt, wait) in [(2u32, 100u64), (3, 200), (4, 400)] {
        let due = sent_at + Duration::from_millis(wait);
        assert_eq!(c.poll_timeout(), Some(due));
        c.handle_timeout(due - MS);
        assert!(delivers(&mut c).is_empty(), "redelivered early");
        c.handle_timeout(due);
        let d = delivers(&mut c);
        assert_eq!(d.len(), 1, "attempt {attempt} due at +{wait} ms");
        assert_eq!(d[0].1.delivery_attempt, attempt);
        sent_at = due;
    }
    // The 4th delivery (max_deliveries) times out: dead letter, not a 5th.
    let due = sent_at + 800 * MS;
    c.handle_timeout(due);
    assert!(delivers(&mut c).is_empty());
    let snap = c.inspect();
    assert_eq!(snap.dead_letters.len(), 1);
    assert_eq!(
        (snap.dead_letters[0].id, snap.dead_letters[0].deliveries),
        (id(1), 4)
    );
    assert!(!snap.is_stored(id(1)), "the only group gave up on it");
    let s = c.stats();
    assert_eq!(
        (s.deliveries_sent, s.redeliveries_sent, s.dead_lettered),
        (4, 3, 1)
    );
    assert_eq!(snap.subscriptions[0].unacked, 0);
}

#[test]
fn ack_stops_redelivery_and_deletes_only_after_every_group() {
    let t0 = Instant::now();
    let mut c = core(config());
    receiver(&mut c, 1, 1, 10, "a", t0);
    receiver(&mut c, 2, 1, 10, "b", t0);
    publish(&mut c, 1, "t", t0);
    assert_eq!(delivers(&mut c).len(), 2, "every group gets every message");
    ack(&mut c, 1, 1, 1, t0 + MS);
    assert!(c.inspect().is_stored(id(1)), "group b has not acked");
    c.handle_timeout(t0 + 100 * MS);
    let d = delivers(&mut c);
    assert_eq!(d.len(), 1, "only group b's delivery is redelivered");
    assert_eq!((d[0].0, d[0].1.delivery_attempt), (2, 2));
    ack(&mut c, 2, 1, 1, t0 + 101 * MS);
    assert!(!c.inspect().is_stored(id(1)));
    assert_eq!(c.stats().messages_deleted, 1);
    // Stale timers fire harmlessly.
    c.handle_timeout(t0 + 10_000 * MS);
    assert!(delivers(&mut c).is_empty());
    // Dedup outlives the message.
    assert_eq!(publish(&mut c, 1, "t", t0), ReplyStatus::Duplicate);
}

#[test]
fn stale_or_foreign_acks_are_ignored() {
    let t0 = Instant::now();
    let mut c = core(config());
    receiver(&mut c, 1, 1, 10, "g", t0);
    receiver(&mut c, 2, 1, 10, "g", t0);
    publish(&mut c, 1, "t", t0);
    let d = delivers(&mut c);
    let holder = d[0].0;
    let other = if holder == 1 { 2 } else { 1 };
    ack(&mut c, other, 1, 1, t0);
    assert!(c.inspect().is_stored(id(1)));
    ack(&mut c, holder, 1, 99, t0);
    assert_eq!(c.stats().acks_ignored, 2);
    let err = c
        .handle_frame(
            holder,
            Frame::Ack(Ack {
                sub_id: 9,
                id: id(1),
            }),
            t0,
        )
        .expect_err("unknown sub_id");
    assert_eq!(err.code, ErrorCode::UNKNOWN_SUBSCRIPTION);
}

#[test]
fn nack_delays_then_redelivers() {
    let t0 = Instant::now();
    let mut c = core(config());
    receiver(&mut c, 1, 1, 10, "g", t0);
    publish(&mut c, 1, "t", t0);
    delivers(&mut c);
    let nack = Nack {
        sub_id: 1,
        id: id(1),
        delay_ms: 50,
    };
    c.handle_frame(1, Frame::Nack(nack), t0 + 10 * MS)
        .expect("nack");
    c.handle_timeout(t0 + 59 * MS);
    assert!(delivers(&mut c).is_empty());
    c.handle_timeout(t0 + 60 * MS);
    assert_eq!(delivers(&mut c)[0].1.delivery_attempt, 2);
    // delay 0: the backoff of that attempt (200 ms for attempt 2).
    let nack = Nack {
        sub_id: 1,
        id: id(1),
        delay_ms: 0,
    };
    c.handle_frame(1, Frame::Nack(nack), t0 + 60 * MS)
        .expect("nack");
    c.handle_timeout(t0 + 259 * MS);
    assert!(delivers(&mut c).is_empty());
    c.handle_timeout(t0 + 260 * MS);
    assert_eq!(delivers(&mut c)[0].1.delivery_attempt, 3);
    assert_eq!(c.stats().nacks_received, 2);
}

#[test]
fn credit_bounds_deliveries_and_members_share() {
    let t0 = Instant::now();
    let mut c = core(config());
    receiver(&mut c, 1, 1, 2, "g", t0);
    for seq in 1..=5 {
        publish(&mut c, seq, "t", t0);
    }
    assert_eq!(delivers(&mut c).len(), 2, "credit 2");
    c.handle_frame(
        1,
        Frame::Credit(Credit {
            sub_id: 1,
            credit: 1,
        }),
        t0,
    )
    .expect("credit");
    assert_eq!(delivers(&mut c).len(), 1);
    receiver(&mut c, 2, 1, 10, "g", t0);
    let d = delivers(&mut c);
    assert_eq!(d.len(), 2, "the new member takes the rest");
    assert!(d.iter().all(|(conn, _)| *conn == 2));
    let snap = c.inspect();
    assert_eq!(snap.subscriptions[0].max_unacked, 3);
}

#[test]
fn closed_receiver_returns_its_deliveries_at_once() {
    let t0 = Instant::now();
    let mut c = core(config());
    receiver(&mut c, 1, 1, 10, "g", t0);
    publish(&mut c, 1, "t", t0);
    publish(&mut c, 2, "t", t0);
    assert_eq!(delivers(&mut c).len(), 2);
    receiver(&mut c, 2, 5, 10, "g", t0);
    assert!(delivers(&mut c).is_empty());
    c.close(1, t0 + MS);
    let d = delivers(&mut c);
    let got: Vec<_> = d
        .iter()
        .map(|(conn, d)| (*conn, d.id, d.delivery_attempt))
        .collect();
    assert_eq!(got, vec![(2, id(1), 2), (2, id(2), 2)]);
}

#[test]
fn late_group_adopts_stored_messages() {
    let t0 = Instant::now();
    let mut c = core(config());
    publish(&mut c, 1, "t", t0);
    publish(&mut c, 2, "other", t0);
    receiver(&mut c, 1, 1, 10, "g", t0);
    let d = delivers(&mut c);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].1.id, id(1));
}

#[test]
fn limits_reject_with_codes_and_nothing_is_stored() {
    let t0 = Instant::now();
    let mut c = core(BrokerConfig {
        max_stored_messages: 2,
        max_stored_bytes: 20,
        max_message_size: 10,
        ..config()
    });
    publish(&mut c, 1, "t", t0);
    publish(&mut c, 2, "t", t0);
    let full = publish(&mut c, 3, "t", t0);
    assert!(matches!(full, ReplyStatus::Rejected { code, .. } if code == ErrorCode::STORE_FULL));
    let bad = publish(&mut c, 4, "", t0);
    assert!(matches!(bad, ReplyStatus::Rejected { code, .. } if code == ErrorCode::INVALID_TOPIC));
    assert_eq!(c.inspect().stored.len(), 2);
    assert_eq!(c.landed_count(id(3)), 0);
    // Once room is made, a retransmit of the rejected message is judged afresh.
    receiver(&mut c, 1, 1, 10, "g", t0);
    delivers(&mut c);
    ack(&mut c, 1, 1, 1, t0);
    assert_eq!(publish(&mut c, 3, "t", t0), ReplyStatus::Stored);
    assert_eq!(c.stats().rejected, 2);
}

#[test]
fn role_rules_close_with_unexpected_frame() {
    let t0 = Instant::now();
    let mut c = core(config());
    let sub = Subscribe {
        sub_id: 1,
        credit: 1,
        topic: "t".into(),
        group: "g".into(),
    };
    let err = c
        .handle_frame(SENDER, Frame::Subscribe(sub.clone()), t0)
        .expect_err("sender may not subscribe");
    assert_eq!(err.code, ErrorCode::UNEXPECTED_FRAME);
    receiver(&mut c, 1, 1, 1, "g", t0);
    let err = c
        .handle_frame(1, Frame::Subscribe(sub), t0)
        .expect_err("duplicate sub_id");
    assert_eq!(err.code, ErrorCode::UNEXPECTED_FRAME);
    let err = c
        .handle_frame(1, msg(1, "t"), t0)
        .expect_err("receiver may not publish");
    assert_eq!(err.code, ErrorCode::UNEXPECTED_FRAME);
    let ext = Frame::Extension {
        frame_type: 0x90,
        body: bytes::Bytes::new(),
    };
    assert!(c.handle_frame(1, ext, t0).is_ok(), "extensions are ignored");
}

#[test]
fn keep_store_requeues_and_lose_store_forgets() {
    let t0 = Instant::now();
    let mut c = core(config());
    receiver(&mut c, 1, 1, 10, "g", t0);
    publish(&mut c, 1, "t", t0);
    delivers(&mut c);
    c.close_all(t0);
    let g = c.inspect();
    let g = g.group("t", "g").expect("group kept");
    assert_eq!((g.ready, g.unacked), (1, 0));
    c.open(SENDER, Role::Sender);
    assert_eq!(publish(&mut c, 1, "t", t0), ReplyStatus::Duplicate);
    c.lose_store(t0);
    let snap = c.inspect();
    assert!(snap.stored.is_empty() && snap.groups.is_empty());
    c.open(SENDER, Role::Sender);
    assert_eq!(publish(&mut c, 1, "t", t0), ReplyStatus::Stored);
}
