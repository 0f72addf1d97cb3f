//! The driver over duplex pipes with paused time. Durations asserted here
//! are exact schedule positions of the paused clock, not speed claims.

use std::sync::atomic::Ordering;
use std::time::Duration;

use mq_protocol::{Close, ErrorCode, Frame, MessageId, Refuse, ReplyStatus};
use tokio::time::Instant;

use super::*;
use crate::{Backpressure, ConnectError, OutgoingMessage, SendError};

const S: Duration = Duration::from_secs(1);

fn msg(i: u32) -> OutgoingMessage {
    OutgoingMessage::new("t", format!("m{i}"))
}

#[tokio::test(start_paused = true)]
async fn retransmits_on_schedule_and_confirms_duplicate_once() {
    let (sender, _net, mut peer) = start(config(), welcome(0, 1 << 20)).await;
    let t0 = Instant::now();
    let pending = sender.enqueue(msg(1)).await.unwrap();
    let m1 = peer.recv_msg().await;
    assert_eq!((m1.id, m1.attempt), (MessageId::new(0xabc, 1), 1));
    // No reply: attempt 2 exactly retry.delay(1) = 1 s later, same ID.
    let m2 = peer.recv_msg().await;
    assert_eq!(
        (m2.id, m2.attempt, m2.payload.clone()),
        (m1.id, 2, m1.payload.clone())
    );
    assert_eq!(t0.elapsed(), S);
    // The broker had stored attempt 1; it answers the retransmit Duplicate.
    peer.reply(&m2, ReplyStatus::Duplicate).await;
    let r = pending.await.unwrap();
    assert_eq!((r.attempts, r.duplicate, r.elapsed), (2, true, S));
    // The late reply to attempt 1 is ignored and counted.
    peer.reply(&m1, stored()).await;
    sender.flush().await.expect("flush");
    let st = sender.stats();
    assert_eq!(
        (
            st.sent,
            st.confirmed,
            st.duplicates,
            st.retransmitted,
            st.in_flight
        ),
        (1, 1, 1, 1, 0)
    );
    let report = sender.close(S).await;
    assert!(report.unresolved.is_empty());
    assert_eq!(sender.stats().late_replies, 1);
}

#[tokio::test(start_paused = true)]
async fn broker_gone_for_good_fails_on_the_senders_own_timer() {
    let (sender, net, mut peer) = start(config(), welcome(0, 1 << 20)).await;
    let t0 = Instant::now();
    let pending = sender.enqueue(msg(1)).await.unwrap();
    peer.recv_msg().await;
    net.down.store(true, Ordering::SeqCst);
    drop(peer);
    match pending.await {
        Err(e @ SendError::Timeout { attempts: 3, .. }) => {
            assert!(e.to_string().contains("3 attempt(s)"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    // 1 s + 2 s + 4 s after acceptance, while reconnects kept failing.
    assert_eq!(t0.elapsed(), 7 * S);
    assert_eq!(sender.stats().failed, 1);
}

#[tokio::test(start_paused = true)]
async fn reconnect_resends_everything_unconfirmed() {
    let (sender, mut net, mut peer) = start(config(), welcome(0, 1 << 20)).await;
    let mut pending = Vec::new();
    for i in 0..3 {
        pending.push(sender.enqueue(msg(i)).await.unwrap());
    }
    for _ in 0..3 {
        assert_eq!(peer.recv_msg().await.attempt, 1);
    }
    // The broker closes the connection instead of replying.
    peer.send(Frame::Close(Close {
        code: ErrorCode::SHUTTING_DOWN,
        reason: "bye".into(),
    }))
    .await;
    drop(peer);
    let mut peer = net.accept(welcome(0, 1 << 20)).await;
    for _ in 0..3 {
        let m = peer.recv_msg().await;
        assert_eq!(m.attempt, 2, "re-sent with the next attempt number");
        peer.reply(&m, stored()).await;
    }
    for p in pending {
        assert_eq!(p.await.unwrap().attempts, 2);
    }
    assert_eq!(sender.stats().reconnects, 1);
}

#[tokio::test(start_paused = true)]
async fn protocol_error_from_broker_reconnects() {
    let (sender, mut net, mut peer) = start(config(), welcome(0, 1 << 20)).await;
    let pending = sender.enqueue(msg(1)).await.unwrap();
    peer.recv_msg().await;
    // A frame a broker must never send to a sender.
    peer.send(Frame::Welcome(welcome(0, 1 << 20))).await;
    match peer.recv().await {
        Some(Frame::Close(c)) => assert_eq!(c.code, ErrorCode::UNEXPECTED_FRAME),
        other => panic!("{other:?}"),
    }
    let mut peer = net.accept(welcome(0, 1 << 20)).await;
    let m = peer.recv_msg().await;
    peer.reply(&m, stored()).await;
    assert!(pending.await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn reconnect_backs_off_between_rounds() {
    let (sender, mut net, peer) = start(config(), welcome(0, 1 << 20)).await;
    net.down.store(true, Ordering::SeqCst);
    let t0 = Instant::now();
    drop(peer);
    // Rounds at 0, 100, 300, 700 ms fail; then the broker is back.
    let down = net.down.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(650)).await;
        down.store(false, Ordering::SeqCst);
    });
    let _peer = net.accept(welcome(0, 1 << 20)).await;
    assert_eq!(t0.elapsed(), Duration::from_millis(700));
    sender.flush().await.expect("flush");
    assert_eq!(sender.stats().reconnects, 1);
}

#[tokio::test(start_paused = true)]
async fn transient_rejection_retries_permanent_does_not() {
    let (sender, _net, mut peer) = start(config(), welcome(0, 1 << 20)).await;
    let a = sender.enqueue(msg(1)).await.unwrap();
    let b = sender.enqueue(msg(2)).await.unwrap();
    let ma = peer.recv_msg().await;
    let mb = peer.recv_msg().await;
    let t0 = Instant::now();
    peer.reply(
        &ma,
        ReplyStatus::Rejected {
            code: ErrorCode::STORE_FULL,
            reason: "full".into(),
        },
    )
    .await;
    peer.reply(
        &mb,
        ReplyStatus::Rejected {
            code: ErrorCode::INVALID_HEADERS,
            reason: "no".into(),
        },
    )
    .await;
    match b.await {
        Err(SendError::Rejected {
            code, attempts: 1, ..
        }) => assert_eq!(code, ErrorCode::INVALID_HEADERS),
        other => panic!("{other:?}"),
    }
    let again = peer.recv_msg().await;
    assert_eq!((again.id, again.attempt), (ma.id, 2));
    assert_eq!(t0.elapsed(), S);
    peer.reply(&again, stored()).await;
    assert_eq!(a.await.unwrap().attempts, 2);
    assert_eq!(sender.stats().rejected, 1);
}

#[tokio::test(start_paused = true)]
async fn backpressure_fail_gives_the_message_back_and_wait_waits() {
    let cfg = config().max_in_flight(2).backpressure(Backpressure::Fail);
    let (sender, _net, mut peer) = start(cfg, welcome(0, 1 << 20)).await;
    let a = sender.enqueue(msg(1)).await.unwrap();
    let _b = sender.enqueue(msg(2)).await.unwrap();
    match sender.enqueue(msg(3)).await {
        Err(SendError::Backpressure(m)) => assert_eq!(m, msg(3)),
        other => panic!("{other:?}"),
    }
    let m = peer.recv_msg().await;
    peer.reply(&m, stored()).await;
    a.await.unwrap();
    assert!(sender.enqueue(msg(3)).await.is_ok());

    let cfg = config().max_in_flight(1);
    let (sender, _net, mut peer) = start(cfg, welcome(0, 1 << 20)).await;
    let _a = sender.enqueue(msg(1)).await.unwrap();
    let s2 = sender.clone();
    let mut waiting = tokio::spawn(async move { s2.enqueue(msg(2)).await.map(|p| p.id()) });
    let m = peer.recv_msg().await;
    // Bounded: the second message is not on the wire and not accepted.
    assert!(futures::poll!(&mut waiting).is_pending());
    assert_eq!(sender.stats().sent, 1);
    peer.reply(&m, stored()).await;
    let id2 = waiting.await.unwrap().unwrap();
    assert_eq!(peer.recv_msg().await.id, id2);
}

#[tokio::test(start_paused = true)]
async fn byte_window_bounds_in_flight_bytes() {
    // Room for one 1000-byte payload frame but not two.
    let cfg = config()
        .max_in_flight_bytes(1500)
        .backpressure(Backpressure::Fail);
    let (sender, _net, _peer) = start(cfg, welcome(0, 1 << 20)).await;
    let big = || OutgoingMessage::new("t", vec![0u8; 1000]);
    let _a = sender.enqueue(big()).await.unwrap();
    assert!(matches!(
        sender.enqueue(big()).await,
        Err(SendError::Backpressure(_))
    ));
    assert!(
        sender.enqueue(msg(1)).await.is_ok(),
        "a small one still fits"
    );
}

#[tokio::test(start_paused = true)]
async fn oversized_and_invalid_are_refused_before_taking_a_slot() {
    let cfg = config().max_in_flight(1);
    // The broker's Welcome says 200 bytes: smaller than ours, so it wins.
    let (sender, _net, _peer) = start(cfg, welcome(0, 200)).await;
    match sender
        .enqueue(OutgoingMessage::new("t", vec![0u8; 300]))
        .await
    {
        Err(SendError::TooLarge {
            max: 200, message, ..
        }) => assert_eq!(message.payload().len(), 300),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        sender.enqueue(OutgoingMessage::new("", "x")).await,
        Err(SendError::InvalidMessage { .. })
    ));
    let mut many = OutgoingMessage::new("t", "x");
    for i in 0..=mq_protocol::MAX_HEADERS {
        many = many.header(format!("h{i}"), "v");
    }
    assert!(matches!(
        sender.enqueue(many).await,
        Err(SendError::InvalidMessage { .. })
    ));
    // No slot was taken: the one-slot window is still free.
    assert!(sender.enqueue(msg(1)).await.is_ok());
    assert_eq!(sender.stats().sent, 1);
}

#[tokio::test(start_paused = true)]
async fn explicit_sequence_in_flight_is_refused_and_freed_after_outcome() {
    let (sender, _net, mut peer) = start(config(), welcome(0, 1 << 20)).await;
    let a = sender.enqueue(msg(1).sequence(42)).await.unwrap();
    assert_eq!(a.id(), MessageId::new(0xabc, 42));
    match sender.enqueue(msg(2).sequence(42)).await {
        Err(SendError::AlreadyInFlight { id, message }) => {
            assert_eq!(id, MessageId::new(0xabc, 42));
            assert_eq!(message.explicit_sequence(), Some(42));
        }
        other => panic!("{other:?}"),
    }
    let m = peer.recv_msg().await;
    peer.reply(&m, stored()).await;
    a.await.unwrap();
    // Resolved: the same explicit ID may be sent again (the broker will
    // answer Duplicate).
    let again = sender.enqueue(msg(1).sequence(42)).await.unwrap();
    let m = peer.recv_msg().await;
    peer.reply(&m, ReplyStatus::Duplicate).await;
    assert!(again.await.unwrap().duplicate);
}

#[tokio::test(start_paused = true)]
async fn dropped_pending_send_keeps_retransmitting_and_frees_its_slot() {
    let cfg = config().max_in_flight(1).backpressure(Backpressure::Fail);
    let (sender, _net, mut peer) = start(cfg, welcome(0, 1 << 20)).await;
    drop(sender.enqueue(msg(1)).await.unwrap());
    assert_eq!(peer.recv_msg().await.attempt, 1);
    let m = peer.recv_msg().await;
    assert_eq!(m.attempt, 2, "still retransmitted");
    assert!(matches!(
        sender.enqueue(msg(2)).await,
        Err(SendError::Backpressure(_))
    ));
    peer.reply(&m, stored()).await;
    sender.flush().await.expect("flush");
    assert_eq!(sender.stats().confirmed, 1);
    assert!(sender.enqueue(msg(2)).await.is_ok(), "slot released");
}

#[tokio::test(start_paused = true)]
async fn a_blocking_callback_does_not_delay_other_confirms() {
    let (sender, _net, mut peer) = start(config(), welcome(0, 1 << 20)).await;
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let done = done_tx.clone();
    sender
        .send_with_callback(msg(1), move |outcome: Result<crate::Receipt, SendError>| {
            // Blocks its thread until the test releases it.
            let _ = release_rx.recv();
            let _ = done.send((1, outcome.is_ok()));
        })
        .await
        .unwrap();
    let other = sender.enqueue(msg(2)).await.unwrap();
    let m1 = peer.recv_msg().await;
    let m2 = peer.recv_msg().await;
    peer.reply(&m1, stored()).await;
    peer.reply(&m2, stored()).await;
    // Confirm 2 arrives while callback 1 is still blocked.
    assert!(other.await.is_ok());
    assert!(done_rx.try_recv().is_err());
    // Heartbeats and further sends keep working too.
    let third = sender.enqueue(msg(3)).await.unwrap();
    let m3 = peer.recv_msg().await;
    peer.reply(&m3, stored()).await;
    assert!(third.await.is_ok());
    release_tx.send(()).unwrap();
    sender.flush().await.expect("flush");
    assert_eq!(done_rx.recv().await, Some((1, true)));
}

#[tokio::test(start_paused = true)]
async fn callback_called_exactly_once_even_when_abandoned_at_close() {
    let (sender, _net, mut peer) = start(config(), welcome(0, 1 << 20)).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let id = sender
        .send_with_callback(msg(1), move |o: Result<crate::Receipt, SendError>| {
            let _ = tx.send(o);
        })
        .await
        .unwrap();
    peer.recv_msg().await;
    let report = sender.close(Duration::from_millis(500)).await;
    assert_eq!(report.unresolved, vec![id]);
    assert!(matches!(
        rx.recv().await,
        Some(Err(SendError::Abandoned { attempts: 1, .. }))
    ));
    assert!(rx.recv().await.is_none(), "called once, then dropped");
    assert!(matches!(
        sender.send(msg(2)).await,
        Err(SendError::Closed(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn close_flushes_within_the_deadline() {
    let (sender, _net, mut peer) = start(config(), welcome(0, 1 << 20)).await;
    let a = sender.enqueue(msg(1)).await.unwrap();
    let m = peer.recv_msg().await;
    let s2 = sender.clone();
    let closing = tokio::spawn(async move { s2.close(10 * S).await });
    peer.reply(&m, stored()).await;
    let report = closing.await.unwrap();
    assert!(report.unresolved.is_empty());
    assert!(a.await.is_ok());
    // The driver said goodbye.
    match peer.recv().await {
        Some(Frame::Close(c)) => assert_eq!(c.code, ErrorCode::NORMAL),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn heartbeat_pings_when_idle_and_drops_a_silent_broker() {
    let (sender, mut net, mut peer) = start(config(), welcome(1000, 1 << 20)).await;
    let t0 = Instant::now();
    match peer.recv().await {
        Some(Frame::Ping(_)) => assert_eq!(t0.elapsed(), S),
        other => panic!("{other:?}"),
    }
    // The broker never answers: after 3 heartbeats of silence the sender
    // says why, gives up on the connection and reconnects.
    let _peer2 = net.accept(welcome(0, 1 << 20)).await;
    assert_eq!(t0.elapsed(), 3 * S);
    loop {
        match peer.recv().await {
            Some(Frame::Ping(_)) => continue,
            Some(Frame::Close(c)) => break assert_eq!(c.code, ErrorCode::HEARTBEAT_TIMEOUT),
            other => panic!("{other:?}"),
        }
    }
    sender.flush().await.expect("flush");
    assert_eq!(sender.stats().reconnects, 1);
}

#[tokio::test(start_paused = true)]
async fn connect_errors_are_typed() {
    let (connector, mut net) = net();
    let (r, ()) = tokio::join!(
        Sender::connect_with(config(), connector),
        net.accept_with(Frame::Refuse(Refuse {
            code: ErrorCode::UNAUTHORIZED,
            reason: "token".into()
        }))
    );
    assert!(matches!(
        r,
        Err(ConnectError::Refused {
            code: ErrorCode::UNAUTHORIZED,
            ..
        })
    ));

    let (connector, net) = super::net();
    net.down.store(true, Ordering::SeqCst);
    let cfg = config().addresses(vec!["a:1".into(), "b:2".into()]);
    match Sender::connect_with(cfg, connector).await {
        Err(ConnectError::Unreachable { addresses, .. }) => assert_eq!(addresses.len(), 2),
        other => panic!("{other:?}"),
    }
    let bad = config().max_attempts(0);
    assert!(matches!(
        Sender::connect(bad).await,
        Err(ConnectError::Config(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn dropping_every_handle_still_resolves_every_message() {
    let (sender, _net, mut peer) = start(config(), welcome(0, 1 << 20)).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    sender
        .send_with_callback(msg(1), move |o: Result<crate::Receipt, SendError>| {
            let _ = tx.send(o.is_ok());
        })
        .await
        .unwrap();
    drop(sender);
    let m = peer.recv_msg().await;
    peer.reply(&m, stored()).await;
    assert_eq!(rx.recv().await, Some(true));
}

#[tokio::test(start_paused = true)]
async fn message_too_large_for_the_broker_reached_after_a_reconnect_is_given_back() {
    let (sender, mut net, mut peer) = start(config(), welcome(0, 1 << 20)).await;
    let pending = sender
        .enqueue(OutgoingMessage::new("t", vec![1u8; 500]))
        .await
        .unwrap();
    peer.recv_msg().await;
    drop(peer);
    // The next broker accepts only 200-byte frames.
    let _peer = net.accept(welcome(0, 200)).await;
    match pending.await {
        Err(SendError::TooLarge {
            max: 200, message, ..
        }) => assert_eq!(message.payload().len(), 500),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn close_wakes_hand_overs_waiting_for_a_slot_with_their_message() {
    let cfg = config().max_in_flight(1);
    let (sender, _net, _peer) = start(cfg, welcome(0, 1 << 20)).await;
    let _a = sender.enqueue(msg(1)).await.unwrap();
    let s2 = sender.clone();
    let waiting = tokio::spawn(async move { s2.enqueue(msg(2)).await });
    tokio::task::yield_now().await;
    let report = sender.close(Duration::ZERO).await;
    assert_eq!(report.unresolved.len(), 1);
    match waiting.await.unwrap() {
        Err(SendError::Closed(m)) => assert_eq!(m, msg(2)),
        other => panic!("{other:?}"),
    }
}

/// Cancel safety of the hand-over, polled by hand with `tokio_test`: a
/// hand-over cancelled while it waits for a slot takes no slot and never
/// reaches the wire; a `PendingSend` stays pending until its reply and is
/// woken by it.
#[tokio::test(start_paused = true)]
async fn cancelled_hand_over_takes_no_slot_and_pending_send_wakes_on_its_reply() {
    use tokio_test::{assert_pending, assert_ready, task};

    let cfg = config().max_in_flight(1);
    let (sender, _net, mut peer) = start(cfg, welcome(0, 1 << 20)).await;
    let first = sender.enqueue(msg(1)).await.unwrap();
    let mut first = task::spawn(first);
    assert_pending!(first.poll());

    // The window is full: the second hand-over waits; cancel it.
    let mut waiting = task::spawn(sender.enqueue(msg(2)));
    assert_pending!(waiting.poll());
    drop(waiting);

    let m1 = peer.recv_msg().await;
    assert_eq!(m1.payload, "m1");
    assert!(!first.is_woken());
    peer.reply(&m1, stored()).await;
    // The driver resolves the receipt; wait for the wake-up, not for time.
    for _ in 0..10_000 {
        if first.is_woken() {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(first.is_woken(), "the reply did not wake the PendingSend");
    let receipt = assert_ready!(first.poll()).unwrap();
    assert_eq!(receipt.id, m1.id);

    // The cancelled message took no slot: a third one goes straight out,
    // and the wire never carries "m2".
    let third = sender.enqueue(msg(3)).await.unwrap();
    let m3 = peer.recv_msg().await;
    assert_eq!(m3.payload, "m3");
    peer.reply(&m3, stored()).await;
    third.await.unwrap();
    assert_eq!(sender.stats().sent, 2);
}

#[tokio::test(start_paused = true)]
async fn flush_reports_ok_before_and_after_close() {
    let (sender, _net, mut peer) = start(config(), welcome(0, 1 << 20)).await;
    let pending = sender.enqueue(msg(1)).await.unwrap();
    let m = peer.recv_msg().await;
    peer.reply(&m, stored()).await;
    assert_eq!(sender.flush().await, Ok(()));
    assert!(pending.await.is_ok());
    let report = sender.close(Duration::from_secs(1)).await;
    assert!(report.unresolved.is_empty());
    // The driver is gone after an orderly close: everything was decided.
    assert_eq!(sender.flush().await, Ok(()));
}
