//! The completion channel: one outcome, to the right future, woken once.

use std::future::poll_fn;
use std::mem::size_of;
use std::sync::atomic::Ordering;

use tokio_test::task;

use super::*;
use crate::driver::{done, Confirmed};
use crate::{Receipt, SendError};
use mq_protocol::MessageId;
use std::cell::Cell;
use std::sync::Arc;

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
    let before = live();
    let (tx, rx) = channel();
    assert_eq!(live(), before + 1);
    drop(rx);
    tx.send(ok(6));
    assert_eq!(live(), before);
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
fn one_allocation_of_24_bytes() {
    // The state word and the 16-byte slot; `Arc<Mutex<State>>` took 48,
    // tokio's `oneshot` 72 (docs/BENCHMARKS.md, rounds 3 and 4).
    assert_eq!(size_of::<Inner>(), 24);
    assert_eq!(size_of::<CompletionTx>(), size_of::<usize>());
    assert_eq!(size_of::<Option<CompletionTx>>(), size_of::<usize>());
    assert_eq!(size_of::<CompletionRx>(), size_of::<usize>());
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

thread_local! {
    /// Cells allocated minus cells freed on this thread.
    static LIVE: Cell<i64> = const { Cell::new(0) };
}

/// Counts a cell allocated (`1`) or freed (`-1`) on this thread.
pub(super) fn live_cells(delta: i64) {
    LIVE.with(|c| c.set(c.get() + delta));
}

fn live() -> i64 {
    LIVE.with(Cell::get)
}

#[test]
fn the_cell_is_freed_by_whichever_half_goes_last() {
    let before = live();
    // Sender last, after an outcome the receiver never took.
    let (tx, rx) = channel();
    drop(rx);
    drop(tx);
    assert_eq!(live(), before);
    // Receiver last, with the outcome still in the slot.
    let (tx, rx) = channel();
    tx.send(ok(1));
    assert_eq!(live(), before + 1);
    drop(rx);
    assert_eq!(live(), before);
    // Receiver last, holding a waker, after the sender dropped unsent.
    let (tx, mut rx) = channel();
    let mut f = task::spawn(());
    assert!(f.enter(|cx, _| rx.poll(cx)).is_pending());
    drop(tx);
    assert_eq!(live(), before + 1);
    drop(rx);
    assert_eq!(live(), before);
    // Receiver first, holding a waker; then the outcome is discarded.
    let (tx, mut rx) = channel();
    assert!(f.enter(|cx, _| rx.poll(cx)).is_pending());
    drop(rx);
    assert_eq!(live(), before + 1);
    tx.send(ok(2));
    assert_eq!(live(), before);
    assert!(!f.is_woken(), "a dropped receiver's waker is not woken");
}

#[test]
fn a_stored_waker_is_released_with_the_cell() {
    // The waker's task is kept alive by the waker's reference; once the
    // cell goes, only the test's own handle remains.
    let waker = Arc::new(CountingWaker::default());
    let w = Waker::from(waker.clone());
    let mut cx = Context::from_waker(&w);
    let (tx, mut rx) = channel();
    assert!(rx.poll(&mut cx).is_pending());
    assert_eq!(Arc::strong_count(&waker), 3, "test, `w`, the cell");
    // Polling again with the same waker does not clone it again.
    assert!(rx.poll(&mut cx).is_pending());
    assert_eq!(Arc::strong_count(&waker), 3);
    // Another waker replaces it, and the first one's clone is dropped.
    let other = Arc::new(CountingWaker::default());
    let ow = Waker::from(other.clone());
    assert!(rx.poll(&mut Context::from_waker(&ow)).is_pending());
    assert_eq!(Arc::strong_count(&waker), 2);
    assert_eq!(Arc::strong_count(&other), 3);
    tx.send(ok(1));
    assert_eq!(other.woken.load(Ordering::SeqCst), 1);
    assert_eq!(waker.woken.load(Ordering::SeqCst), 0);
    assert_eq!(Arc::strong_count(&other), 2, "woken by value, then gone");
    drop(rx);
}

#[derive(Default)]
struct CountingWaker {
    woken: std::sync::atomic::AtomicUsize,
}

impl std::task::Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.woken.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_panicking_waker_clone_leaves_the_cell_usable() {
    use std::task::{RawWaker, RawWakerVTable};
    fn clone(_: *const ()) -> RawWaker {
        panic!("clone");
    }
    fn noop(_: *const ()) {}
    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, noop, noop, noop);
    // SAFETY: the vtable's functions ignore the data pointer.
    let bad = unsafe { Waker::from_raw(RawWaker::new(std::ptr::null(), &VTABLE)) };
    let (tx, mut rx) = channel();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rx.poll(&mut Context::from_waker(&bad))
    }));
    assert!(r.is_err());
    // Not left locked: the outcome still arrives.
    tx.send(ok(4));
    let mut f = task::spawn(());
    assert!(matches!(
        f.enter(|cx, _| rx.poll(cx)),
        Poll::Ready(Ok(Ok(_)))
    ));
}

#[test]
fn threads_racing_send_poll_and_drop_lose_nothing() {
    // Each round: the outcome is sent on another thread while this one
    // polls (or drops the receiver); the future always ends with the one
    // outcome, and no cell is left behind (checked with the thread's own
    // count: cells made here may be freed on the other thread).
    // Under Miri (which also checks the interleavings for data races and
    // leaks) a few rounds, with several scheduling seeds.
    let rounds = if cfg!(miri) { 12 } else { 2000 };
    for round in 0..rounds {
        let (tx, mut rx) = channel();
        let t = std::thread::spawn(move || tx.send(ok(round)));
        if round % 3 == 0 {
            drop(rx);
            t.join().unwrap();
            continue;
        }
        let got = futures::executor::block_on(poll_fn(|cx| rx.poll(cx)));
        t.join().unwrap();
        match got {
            Ok(Ok(c)) => assert_eq!(c, Confirmed::new(&receipt(round))),
            other => panic!("round {round}: {other:?}"),
        }
    }
}

#[test]
fn a_pending_send_keeps_its_auto_traits() {
    fn check<T: Send + Sync + Unpin + std::panic::UnwindSafe + std::panic::RefUnwindSafe>() {}
    check::<crate::PendingSend>();
    check::<crate::OutgoingMessage>();
    check::<CompletionTx>();
}

#[test]
fn the_lock_excludes_and_is_released_with_the_state_written_back() {
    let (tx, rx) = channel();
    let inner = rx.inner();
    let mut g = inner.try_lock().expect("free");
    assert!(inner.try_lock().is_none(), "held");
    assert_eq!(g.phase(), EMPTY);
    g.set_phase(CLOSED);
    drop(g);
    // Released, with what the holder wrote.
    let g = inner.try_lock().expect("released");
    assert_eq!(g.phase(), CLOSED);
    assert_eq!(g.state & (TX | RX), TX | RX);
    drop(g);
    assert_eq!(format!("{rx:?}"), r#"CompletionRx("closed")"#);
    drop(tx);
    drop(rx);
}

/// A payload that counts its drops: an outcome carrying it shows whether
/// the outcome was dropped (and not leaked with its cell).
struct DropProbe(Arc<std::sync::atomic::AtomicUsize>);

impl AsRef<[u8]> for DropProbe {
    fn as_ref(&self) -> &[u8] {
        b"probe"
    }
}

impl Drop for DropProbe {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn probed_error(drops: &Arc<std::sync::atomic::AtomicUsize>) -> Done {
    let payload = bytes::Bytes::from_owner(DropProbe(drops.clone()));
    let msg = crate::OutgoingMessage::new("t", payload);
    done(Err(Box::new(SendError::Closed(msg))))
}

#[test]
fn an_outcome_nobody_will_read_is_dropped_not_leaked() {
    let drops = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // Receiver gone before the send.
    let (tx, rx) = channel();
    drop(rx);
    tx.send(probed_error(&drops));
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    // Receiver dropped with the outcome untaken.
    let (tx, rx) = channel();
    tx.send(probed_error(&drops));
    assert_eq!(drops.load(Ordering::SeqCst), 1, "kept for the receiver");
    drop(rx);
    assert_eq!(drops.load(Ordering::SeqCst), 2);
    // Taken by the receiver: dropped by whoever holds it, once.
    let (tx, mut rx) = channel();
    tx.send(probed_error(&drops));
    let mut f = task::spawn(());
    let got = f.enter(|cx, _| rx.poll(cx));
    assert!(matches!(got, Poll::Ready(Ok(Err(_)))));
    drop(rx);
    assert_eq!(drops.load(Ordering::SeqCst), 2);
    drop(got);
    assert_eq!(drops.load(Ordering::SeqCst), 3);
}

/// Both halves released at the same instant (a barrier), thousands of
/// times: send or drop against poll, re-poll with another waker, drop.
/// Under Miri with many seeds this found a use of the cell after the
/// other half freed it (the guard's `&Inner`, now a pointer).
#[test]
fn halves_released_at_a_barrier_free_the_cell_once_and_drop_every_waker() {
    use std::sync::Barrier;
    let rounds: u64 = if cfg!(miri) { 60 } else { 3000 };
    let w1 = Arc::new(CountingWaker::default());
    let w2 = Arc::new(CountingWaker::default());
    for round in 0..rounds {
        let (tx, mut rx) = channel();
        let bar = Arc::new(Barrier::new(2));
        let b2 = bar.clone();
        let t = std::thread::spawn(move || {
            b2.wait();
            if round % 2 == 0 {
                tx.send(ok(round))
            } else {
                drop(tx)
            }
        });
        let (a, b) = (Waker::from(w1.clone()), Waker::from(w2.clone()));
        bar.wait();
        match round % 4 {
            0 | 1 => {
                let _ = rx.poll(&mut Context::from_waker(&a));
                let _ = rx.poll(&mut Context::from_waker(&b));
                drop(rx);
            }
            2 => drop(rx),
            _ => {
                let r = futures::executor::block_on(poll_fn(|cx| {
                    let _ = rx.poll(&mut Context::from_waker(&a));
                    rx.poll(cx)
                }));
                assert!(r.is_err());
                drop(rx);
            }
        }
        t.join().expect("sender thread");
        drop((a, b));
        assert_eq!(Arc::strong_count(&w1), 1, "round {round}");
        assert_eq!(Arc::strong_count(&w2), 1, "round {round}");
    }
}
