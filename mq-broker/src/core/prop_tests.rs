//! Property test: random interleavings of publishes, subscriptions, credit,
//! acks, nacks, disconnects and time, with the core's bookkeeping checked
//! against itself after every step.

use std::collections::HashMap;
use std::time::Duration;

use mq_protocol::{
    Ack, Backoff, Credit, Frame, Headers, Message, MessageId, Nack, Role, Subscribe,
};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::time::Instant;

use super::Core;
use crate::BrokerConfig;

const SENDER: u64 = 100;

#[derive(Debug, Clone)]
enum Op {
    Publish {
        seq: u64,
        topic: bool,
    },
    Subscribe {
        conn: u64,
        group: bool,
        topic: bool,
        credit: u32,
    },
    Credit {
        conn: u64,
        credit: u32,
    },
    Ack {
        conn: u64,
        seq: u64,
    },
    Nack {
        conn: u64,
        seq: u64,
        delay_ms: u32,
    },
    Close {
        conn: u64,
    },
    Advance {
        ms: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u64..12, any::<bool>()).prop_map(|(seq, topic)| Op::Publish { seq, topic }),
        2 => (1u64..4, any::<bool>(), any::<bool>(), 0u32..4)
            .prop_map(|(conn, group, topic, credit)| Op::Subscribe { conn, group, topic, credit }),
        2 => (1u64..4, 0u32..4).prop_map(|(conn, credit)| Op::Credit { conn, credit }),
        4 => (1u64..4, 0u64..12).prop_map(|(conn, seq)| Op::Ack { conn, seq }),
        1 => (1u64..4, 0u64..12, 0u32..300)
            .prop_map(|(conn, seq, delay_ms)| Op::Nack { conn, seq, delay_ms }),
        1 => (1u64..4).prop_map(|conn| Op::Close { conn }),
        3 => (0u64..400).prop_map(|ms| Op::Advance { ms }),
    ]
}

fn topic(b: bool) -> String {
    if b {
        "t".into()
    } else {
        "u".into()
    }
}

/// Every cross-reference of the core agrees, and the credit the test
/// granted matches what was delivered.
fn check(c: &Core, granted: &HashMap<u64, u64>, delivered: &HashMap<u64, u64>) {
    c.check_invariants();
    for sub in c.subs.values() {
        let g = granted.get(&sub.conn).copied().unwrap_or(0);
        let d = delivered.get(&sub.conn).copied().unwrap_or(0);
        assert!(d <= g, "conn {}: {d} deliveries on {g} credit", sub.conn);
        assert_eq!(u64::from(sub.credit), g - d);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn bookkeeping_stays_consistent(seed: u64, ops in proptest::collection::vec(op(), 1..120)) {
        let config = BrokerConfig {
            redelivery: Backoff {
                initial: Duration::from_millis(50),
                multiplier: 2.0,
                max: Duration::from_millis(400),
                jitter: 0.5,
            },
            max_deliveries: 3,
            ..BrokerConfig::default()
        };
        let mut c = Core::new(&config, StdRng::seed_from_u64(seed));
        c.open(SENDER, Role::Sender);
        let mut now = Instant::now();
        // Per open receiver connection (one subscription each, sub_id 1):
        // credit granted and deliveries received.
        let mut granted: HashMap<u64, u64> = HashMap::new();
        let mut delivered: HashMap<u64, u64> = HashMap::new();
        for op in ops {
            let (conn, frame) = match op {
                Op::Publish { seq, topic: t } => (SENDER, Frame::Message(Message {
                    id: MessageId::new(1, seq), attempt: 1, topic: topic(t).into(),
                    headers: Headers::new(), payload: bytes::Bytes::from_static(b"p"),
                })),
                Op::Subscribe { conn, group, topic: t, credit } => {
                    if granted.contains_key(&conn) {
                        continue;
                    }
                    c.open(conn, Role::Receiver);
                    granted.insert(conn, u64::from(credit));
                    delivered.insert(conn, 0);
                    let g = if group { "a" } else { "b" };
                    (conn, Frame::Subscribe(Subscribe { sub_id: 1, credit, topic: topic(t), group: g.into() }))
                }
                Op::Credit { conn, credit } => {
                    let Some(g) = granted.get_mut(&conn) else { continue };
                    *g += u64::from(credit);
                    (conn, Frame::Credit(Credit { sub_id: 1, credit }))
                }
                Op::Ack { conn, seq } => {
                    if !granted.contains_key(&conn) { continue; }
                    (conn, Frame::Ack(Ack { sub_id: 1, id: MessageId::new(1, seq) }))
                }
                Op::Nack { conn, seq, delay_ms } => {
                    if !granted.contains_key(&conn) { continue; }
                    (conn, Frame::Nack(Nack { sub_id: 1, id: MessageId::new(1, seq), delay_ms }))
                }
                Op::Close { conn } => {
                    c.close(conn, now);
                    granted.remove(&conn);
                    delivered.remove(&conn);
                    (0, Frame::Ping(mq_protocol::Ping { nonce: 0 }))
                }
                Op::Advance { ms } => {
                    now += Duration::from_millis(ms);
                    c.handle_timeout(now);
                    (0, Frame::Ping(mq_protocol::Ping { nonce: 0 }))
                }
            };
            if conn != 0 {
                prop_assert!(c.handle_frame(conn, frame, now).is_ok());
            }
            for (to, f) in std::mem::take(&mut c.out) {
                if let Frame::Deliver(d) = f {
                    prop_assert!(d.delivery_attempt <= 3);
                    *delivered.entry(to).or_default() += 1;
                }
            }
            check(&c, &granted, &delivered);
            prop_assert!(c.landed_count(MessageId::new(1, 0)) <= 1);
        }
    }

    /// A sender publishes, a receiver subscribed first acks: the shortest
    /// path through both halves, as the fuzz driver reads it.
    #[test]
    fn fuzz_driver_reaches_an_ack(durable: bool) {
        let d = [
            u8::from(durable),
            0, 0, 0, // conn 0 opens as a sender
            0x40, 0, 1, // conn 1 opens as a receiver
            0x46, 0, 7, // conn 1 subscribes (sub 0, topic a, group g, credit 7)
            4, 0, 0, // conn 0 publishes id (0, 0) on topic a
            3, 0, 0, // the journal (if any) is durable
            0x47, 0, 0, // conn 1 acks (0, 0) on sub 0
        ];
        crate::fuzzing::drive_core(&d);
    }

    /// The fuzz target's driver (crate::fuzzing): arbitrary bytes as
    /// operations from several connections, memory and journal cores.
    #[test]
    fn arbitrary_operations_keep_the_core_consistent(
        durable: bool,
        ops in proptest::collection::vec(
            // Weighted towards what makes both halves meet: opens,
            // publishes, subscribes, acks and durability.
            (
                prop_oneof![
                    3 => Just(0u8), 4 => Just(4u8), 2 => Just(6u8), 4 => Just(7u8),
                    2 => Just(3u8), 1 => Just(2u8), 1 => Just(9u8), 1 => Just(10u8),
                    1 => Just(1u8), 1 => Just(11u8),
                ],
                0u8..3,
                any::<u8>(),
                any::<u8>(),
            ),
            0..200,
        )
    ) {
        let mut data = vec![u8::from(durable)];
        for (kind, conn, a, b) in ops {
            data.extend_from_slice(&[conn << 6 | kind, a, b]);
        }
        crate::fuzzing::drive_core(&data);
    }

    /// Unstructured bytes too (the raw-decoder path reads frames from them).
    #[test]
    fn arbitrary_bytes_keep_the_core_consistent(
        data in proptest::collection::vec(any::<u8>(), 0..400)
    ) {
        crate::fuzzing::drive_core(&data);
    }
}
