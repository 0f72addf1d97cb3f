//! Drives the broker core with a byte string read as a sequence of
//! operations from several connections: frames (built from the bytes, or
//! decoded from them by the real codec), connection opens and closes, time
//! passing, and the journal's durable watermark advancing. After every step
//! the core's cross-references are checked. For the `broker_core` fuzz
//! target (`fuzz/`) and the proptest that runs the same in CI; not an API.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use mq_protocol::{
    Ack, Codec, Credit, Frame, Headers, Message, MessageId, Nack, Ping, Role, Subscribe,
};
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::time::Instant;
use tokio_util::codec::Decoder;

use crate::core::Core;
use crate::journal::Appender;
use crate::BrokerConfig;

struct Bytes2<'a>(&'a [u8]);

impl Bytes2<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
}

/// Runs `data` against a fresh core (with a journal when the first byte is
/// odd, so the durable path is driven too). Panics on a broken invariant.
pub fn drive_core(data: &[u8]) {
    let mut r = Bytes2(data);
    let durable = r.u8().is_some_and(|b| b & 1 == 1);
    let config = BrokerConfig {
        max_deliveries: 3,
        max_frame_size: 4096,
        max_message_size: 1024,
        max_subscriptions_per_connection: 4,
        max_groups_per_topic: 3,
        max_topics: 4,
        ..BrokerConfig::default()
    };
    let mut c = Core::new(&config, StdRng::seed_from_u64(7));
    if durable {
        c.journal = Some(Appender {
            max_disk_bytes: 1 << 20,
            ..Appender::default()
        });
    }
    let mut now = Instant::now();
    let mut open: [Option<Role>; 4] = [None; 4];
    let topics = ["a", "b", "", "c"];
    // Each operation: an op byte (connection in the top two bits, kind in
    // the low four), `a` (small choices: ID, sub_id, topic, group) and `b`
    // (sizes: credit, payload length, delay, time).
    while let Some(op) = r.u8() {
        let conn = u64::from(op >> 6);
        let i = conn as usize;
        let a = r.u8().unwrap_or(0);
        let b = r.u8().unwrap_or(0);
        // Eight IDs in all, so acks and retransmits meet their messages.
        let id = MessageId::new(u64::from(a >> 7), u64::from(a & 3));
        let topic = topics[usize::from(a >> 2) % 4];
        let frame = match op & 0x0f {
            0 => {
                if open[i].is_none() {
                    let role = if b & 1 == 0 {
                        Role::Sender
                    } else {
                        Role::Receiver
                    };
                    c.open(conn, role);
                    open[i] = Some(role);
                }
                None
            }
            1 => {
                c.close(conn, now);
                open[i] = None;
                None
            }
            2 => {
                now += Duration::from_millis(u64::from(b) * 8);
                c.handle_timeout(now);
                None
            }
            3 => {
                let lsn = c.journal.as_ref().map(|j| j.appended);
                if let Some(lsn) = lsn {
                    c.on_durable(lsn, now);
                }
                None
            }
            4 | 5 => Some(Frame::Message(Message {
                id,
                attempt: 1 + u32::from(op & 1),
                topic: topic.into(),
                headers: Headers::new(),
                payload: Bytes::from(vec![a; usize::from(b & 0x3f)]),
            })),
            6 => Some(Frame::Subscribe(Subscribe {
                sub_id: u32::from(a & 1),
                credit: u32::from(b & 7),
                topic: topic.into(),
                group: if a & 0x40 == 0 { "g" } else { "h" }.into(),
            })),
            7 | 8 => Some(Frame::Ack(Ack {
                sub_id: u32::from(b & 1),
                id,
            })),
            9 => Some(Frame::Nack(Nack {
                sub_id: u32::from(b & 1),
                id,
                delay_ms: u32::from(b) * 1000,
            })),
            10 => Some(Frame::Credit(Credit {
                sub_id: u32::from(a & 1),
                credit: u32::from(b & 7),
            })),
            11 => Some(Frame::Ping(Ping {
                nonce: u64::from(b),
            })),
            _ => {
                // Raw bytes through the real decoder (the only kind that
                // reads more than its three bytes from the input).
                let mut buf = BytesMut::from(r.take(usize::from(b)));
                match Codec::new(4096).decode(&mut buf) {
                    Ok(Some(f)) => Some(f),
                    _ => None,
                }
            }
        };
        // Structured frames go to a connection of the role that may send
        // them (a wrong-role frame only closes the connection, which the
        // raw-decoder kind still exercises); decoded frames go anywhere.
        let raw = op & 0x0f >= 12;
        let fits = |f: &Frame| match f {
            Frame::Message(_) => open[i] == Some(Role::Sender),
            Frame::Ping(_) => open[i].is_some(),
            _ => open[i] == Some(Role::Receiver),
        };
        if let Some(f) = frame.filter(|f| open[i].is_some() && (raw || fits(f))) {
            if c.handle_frame(conn, f, now).is_err() {
                // The driver closes a connection after a protocol error.
                c.close(conn, now);
                open[i] = None;
            }
        }
        c.out.clear();
        c.check_invariants();
    }
}
