//! The hand-over from the state to the writer tasks.

use std::sync::Arc;

use mq_protocol::{Frame, Role, Subscribe};
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::time::Instant;

use super::{Out, Shared};
use crate::core::{out_cost, Core};
use crate::journal::commit::tests::{connect, message};
use crate::BrokerConfig;

/// Everything queued for one connection: (frames in order, the cost each
/// hand-over declared).
fn drain(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Out>) -> (Vec<Frame>, Vec<usize>) {
    let (mut frames, mut costs) = (Vec::new(), Vec::new());
    while let Ok(out) = rx.try_recv() {
        let Out::Frames(f, cost) = out else {
            panic!("a Close was queued");
        };
        assert_eq!(cost, f.iter().map(out_cost).sum::<usize>(), "declared cost");
        frames.extend(f);
        costs.push(cost);
    }
    (frames, costs)
}

/// The sequence numbers of `frames`, every one of which must be a `kind`
/// frame (`"Reply"` or `"Deliver"`): anything else reached the wrong
/// connection.
fn seqs_of(frames: &[Frame], kind: &str) -> Vec<u64> {
    frames
        .iter()
        .map(|f| match f {
            Frame::Reply(r) if f.name() == kind => r.id.seq,
            Frame::Deliver(d) if f.name() == kind => d.id.seq,
            other => panic!("a {} where only {kind} belongs", other.name()),
        })
        .collect()
}

fn memory_shared() -> Arc<Shared> {
    shared_with(crate::Faults::none())
}

fn shared_with(faults: crate::Faults) -> Arc<Shared> {
    let config = BrokerConfig {
        faults,
        ..BrokerConfig::default()
    };
    Arc::new(Shared::new(
        config.clone(),
        Core::new(&config, StdRng::seed_from_u64(1)),
    ))
}

fn subscribe(group: &str) -> Frame {
    Frame::Subscribe(Subscribe {
        sub_id: 1,
        topic: "t".into(),
        group: group.into(),
        credit: 100,
    })
}

#[test]
fn one_dispatch_hands_each_connection_its_own_frames_in_order_in_one_send() {
    let shared = memory_shared();
    let (recv, mut recv_rx) = connect(&shared, Role::Receiver);
    let (send, mut send_rx) = connect(&shared, Role::Sender);
    let now = Instant::now();
    let mut st = shared.lock();
    st.process(recv, [subscribe("g")], now);
    let (subscribed, ok_cost) = drain(&mut recv_rx);
    assert!(matches!(subscribed[..], [Frame::SubscribeOk(_)]));
    // In memory each message's reply and its delivery come out of the same
    // dispatch, interleaved: Reply(0), Deliver(0), Reply(1), ...
    st.process(send, (0..5).map(|seq| message(1, seq)), now);
    let (replies, sends) = drain(&mut send_rx);
    let (delivers, deliveries) = drain(&mut recv_rx);
    assert_eq!(seqs_of(&replies, "Reply"), [0, 1, 2, 3, 4]);
    assert_eq!(seqs_of(&delivers, "Deliver"), [0, 1, 2, 3, 4]);
    // The whole dispatch crossed in one send per connection...
    assert_eq!((sends.len(), deliveries.len()), (1, 1));
    // ...and counts against each output bound exactly once (no writer
    // task here takes anything off).
    let queued = |conn| st.writers.get(&conn).map(|w| w.queue.queued());
    assert_eq!(queued(send), Some(sends[0]));
    assert_eq!(queued(recv), Some(ok_cost[0] + deliveries[0]));
}

#[test]
fn a_dispatch_to_more_connections_than_it_gathers_at_once_reaches_them_all_in_order() {
    let shared = memory_shared();
    let now = Instant::now();
    // One group per receiver: every message goes to each of them.
    let mut receivers: Vec<_> = (0..super::MAX_RUNS + 4)
        .map(|i| {
            let (conn, mut rx) = connect(&shared, Role::Receiver);
            shared
                .lock()
                .process(conn, [subscribe(&format!("g{i}"))], now);
            drain(&mut rx);
            rx
        })
        .collect();
    let (send, mut send_rx) = connect(&shared, Role::Sender);
    shared
        .lock()
        .process(send, (0..3).map(|seq| message(1, seq)), now);
    assert_eq!(drain(&mut send_rx).0.len(), 3);
    for (i, rx) in receivers.iter_mut().enumerate() {
        assert_eq!(seqs_of(&drain(rx).0, "Deliver"), [0, 1, 2], "receiver {i}");
    }
}

/// Every `Reply` seq queued so far, and what the hand-overs declared.
fn replies(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Out>) -> (Vec<u64>, usize) {
    let (frames, costs) = drain(rx);
    (seqs_of(&frames, "Reply"), costs.iter().sum())
}

#[test]
fn a_duplicated_frame_goes_out_twice_in_the_same_hand_over() {
    let shared = shared_with(crate::Faults {
        from_broker: crate::config::DirectionFaults {
            duplicate: 1.0,
            ..Default::default()
        },
        ..crate::Faults::none()
    });
    let (send, mut rx) = connect(&shared, Role::Sender);
    let mut st = shared.lock();
    st.process(send, (0..3).map(|seq| message(1, seq)), Instant::now());
    let (seqs, cost) = replies(&mut rx);
    assert_eq!(seqs, [0, 0, 1, 1, 2, 2]);
    assert_eq!(st.writers.get(&send).map(|w| w.queue.queued()), Some(cost));
}

#[test]
fn a_delayed_frame_reaches_its_writer_when_its_time_comes() {
    let max = std::time::Duration::from_millis(10);
    let shared = shared_with(crate::Faults {
        from_broker: crate::config::DirectionFaults {
            delay: 1.0,
            max_delay: max,
            ..Default::default()
        },
        ..crate::Faults::none()
    });
    let (send, mut rx) = connect(&shared, Role::Sender);
    let now = Instant::now();
    let mut st = shared.lock();
    st.process(send, (0..3).map(|seq| message(1, seq)), now);
    assert_eq!(replies(&mut rx).0, [] as [u64; 0], "held back");
    st.handle_timeout(now + max);
    let (mut seqs, cost) = replies(&mut rx);
    seqs.sort_unstable();
    assert_eq!(seqs, [0, 1, 2]);
    assert_eq!(st.writers.get(&send).map(|w| w.queue.queued()), Some(cost));
}
