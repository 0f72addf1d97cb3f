//! The channel of one [`PendingSend`](crate::PendingSend): one outcome,
//! from the driver to the future, in one 48-byte allocation.
//!
//! Every in-flight message awaited as a future holds one, so its size is
//! part of the in-flight cost (issue 18). tokio's `oneshot` takes 72 bytes
//! here (reference counts, a state word, two waker slots, the value); this
//! takes 48: the `Arc` counts and a `Mutex` around one state that is either
//! the receiver's waker or the value. The lock is taken once by the driver
//! (`send`) and once or twice by the future (`poll`), never held across
//! anything but a move, so it is uncontended in practice.
//!
//! Semantics are `oneshot`'s: the outcome is delivered at most once; a
//! dropped receiver discards it; a sender dropped without sending (the
//! driver stopped) makes the receiver see [`Stopped`]. Polling is
//! cancel-safe.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::driver::Done;

/// The sender dropped without an outcome: the driver stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stopped;

enum State {
    /// No outcome yet; the waker of the last poll.
    Waiting(Option<Waker>),
    Ready(Done),
    /// The outcome was taken, or the sender dropped without one.
    Closed,
}

type Cell = Arc<Mutex<State>>;

fn lock(cell: &Cell) -> MutexGuard<'_, State> {
    // Nothing panics while holding the lock; a poisoned one is still sound.
    cell.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A new channel.
pub(crate) fn channel() -> (CompletionTx, CompletionRx) {
    let cell = Arc::new(Mutex::new(State::Waiting(None)));
    (CompletionTx(cell.clone()), CompletionRx(cell))
}

/// The driver's half: [`CompletionTx::send`] once, or drop.
pub(crate) struct CompletionTx(Cell);

impl CompletionTx {
    /// Hands `done` to the receiver (discarded if it was dropped).
    pub(crate) fn send(self, done: Done) {
        self.finish(State::Ready(done));
    }

    fn finish(&self, to: State) {
        let waker = {
            let mut state = lock(&self.0);
            match std::mem::replace(&mut *state, to) {
                State::Waiting(waker) => waker,
                // Sent already (the `Drop` after `send`): keep the outcome.
                old => {
                    *state = old;
                    None
                }
            }
        };
        // Woken outside the lock: the woken task may poll at once.
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl Drop for CompletionTx {
    fn drop(&mut self) {
        self.finish(State::Closed);
    }
}

/// The future's half.
pub(crate) struct CompletionRx(Cell);

impl CompletionRx {
    /// The outcome once sent, [`Stopped`] if the sender dropped without one
    /// (or the outcome was taken by an earlier poll).
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<Done, Stopped>> {
        let mut state = lock(&self.0);
        match &mut *state {
            State::Waiting(w) => {
                match w {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *w = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            State::Ready(_) => match std::mem::replace(&mut *state, State::Closed) {
                State::Ready(done) => Poll::Ready(Ok(done)),
                _ => Poll::Ready(Err(Stopped)),
            },
            State::Closed => Poll::Ready(Err(Stopped)),
        }
    }
}

impl std::fmt::Debug for CompletionRx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &*lock(&self.0) {
            State::Waiting(_) => "waiting",
            State::Ready(_) => "ready",
            State::Closed => "closed",
        };
        f.debug_tuple("CompletionRx").field(&state).finish()
    }
}

#[cfg(test)]
#[path = "completion_tests.rs"]
mod tests;
