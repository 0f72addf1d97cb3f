//! The completion channel: one outcome, to the right future, woken once.

use std::future::poll_fn;
use std::mem::size_of;

use tokio_test::task;

use super::*;
use crate::driver::{done, Confirmed};
use crate::{Receipt, SendError};
use mq_protocol::MessageId;

fn receipt(seq: u64) -> Receipt {
    Receipt {
        id: MessageId::new(1, seq),
        attempts: 1,
        elapsed: std::time::Duration::from_nanos(seq),
        duplicate: false,
    }
}

fn ok(seq: u64) -> Done {
    done(Ok(receipt(seq)))
}

#[test]
fn an_outcome_sent_before_the_first_poll_is_ready() {
    let (tx, mut rx) = channel();
    tx.send(ok(3));
    let mut f = task::spawn(poll_fn(|cx| rx.poll(cx)));
    match f.poll() {
        Poll::Ready(Ok(Ok(c))) => assert_eq!(c, Confirmed::new(&receipt(3))),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_waiting_future_is_woken_by_the_outcome_and_gets_it() {
    let (tx, mut rx) = channel();
    let mut f = task::spawn(poll_fn(|cx| rx.poll(cx)));
    assert!(f.poll().is_pending());
    assert!(f.poll().is_pending(), "polling again keeps waiting");
    assert!(!f.is_woken());
    tx.send(done(Err(Box::new(SendError::Timeout {
        id: MessageId::new(1, 9),
        attempts: 4,
    }))));
    assert!(f.is_woken());
    match f.poll() {
        Poll::Ready(Ok(Err(e))) => {
            assert!(
                matches!(*e, SendError::Timeout { attempts: 4, .. }),
                "{e:?}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_latest_waker_is_the_one_woken() {
    let (tx, mut rx) = channel();
    let mut first = task::spawn(());
    let mut second = task::spawn(());
    assert!(first.enter(|cx, _| rx.poll(cx)).is_pending());
    assert!(second.enter(|cx, _| rx.poll(cx)).is_pending());
    tx.send(ok(1));
    assert!(second.is_woken());
    assert!(!first.is_woken());
}

#[test]
fn a_sender_dropped_without_an_outcome_wakes_the_future_with_stopped() {
    let (tx, mut rx) = channel();
    let mut f = task::spawn(poll_fn(|cx| rx.poll(cx)));
    assert!(f.poll().is_pending());
    drop(tx);
    assert!(f.is_woken());
    assert!(matches!(f.poll(), Poll::Ready(Err(Stopped))));
}

#[test]
fn the_outcome_is_taken_once_and_a_dropped_receiver_discards_it() {
    let (tx, mut rx) = channel();
    tx.send(ok(5));
    let mut f = task::spawn(());
    assert!(matches!(
        f.enter(|cx, _| rx.poll(cx)),
        Poll::Ready(Ok(Ok(_)))
    ));
    assert!(matches!(
        f.enter(|cx, _| rx.poll(cx)),
        Poll::Ready(Err(Stopped))
    ));
    // Receiver gone first: sending is harmless and frees the cell.
    let (tx, rx) = channel();
    let cell = Arc::downgrade(&rx.0);
    drop(rx);
    tx.send(ok(6));
    assert_eq!(cell.strong_count(), 0);
}

#[test]
fn outcomes_go_to_their_own_futures() {
    let pairs: Vec<_> = (0..4).map(|_| channel()).collect();
    let (txs, mut rxs): (Vec<_>, Vec<_>) = pairs.into_iter().unzip();
    for (seq, tx) in txs.into_iter().enumerate().rev() {
        tx.send(ok(seq as u64));
    }
    let mut f = task::spawn(());
    for (seq, rx) in rxs.iter_mut().enumerate() {
        match f.enter(|cx, _| rx.poll(cx)) {
            Poll::Ready(Ok(Ok(c))) => assert_eq!(c, Confirmed::new(&receipt(seq as u64))),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn one_allocation_of_at_most_48_bytes() {
    // `Arc` counts (16) and the mutex-guarded state; tokio's `oneshot`
    // took 72 bytes per in-flight message (docs/BENCHMARKS.md, round 3).
    assert!(2 * size_of::<usize>() + size_of::<Mutex<State>>() <= 48);
    assert_eq!(size_of::<CompletionTx>(), size_of::<usize>());
}

#[test]
fn debug_shows_the_state() {
    let (tx, mut rx) = channel();
    assert_eq!(format!("{rx:?}"), r#"CompletionRx("waiting")"#);
    tx.send(ok(1));
    assert_eq!(format!("{rx:?}"), r#"CompletionRx("ready")"#);
    let mut f = task::spawn(());
    let _ = f.enter(|cx, _| rx.poll(cx));
    assert_eq!(format!("{rx:?}"), r#"CompletionRx("closed")"#);
}
