//! The channel of one [`PendingSend`](crate::PendingSend): one outcome,
//! from the driver to the future, in one 24-byte allocation.
//!
//! Every in-flight message awaited as a future holds one, so its size is
//! part of the in-flight cost (issue 18). tokio's `oneshot` takes 72 bytes
//! here, an `Arc<Mutex<enum>>` 48 (two reference counts, the mutex word,
//! the enum's tag and its 16-byte value). This cell takes 24: one atomic
//! word that holds a tiny lock, which halves are alive and what the value
//! slot holds, and the 16-byte slot (the receiver's waker or the outcome,
//! never both). Each half clears its own "alive" bit; the one that clears
//! the last frees the cell, so no reference count is needed.
//!
//! The lock is a spin lock: it is taken once by the driver (`send`) and
//! once by the future per poll, and held only to move 16 bytes or clone a
//! waker, never across a wake, a drop or anything that blocks. A panic
//! while it is held (only a waker's `clone` can panic) releases it
//! unchanged ([`Guard`]).
//!
//! Semantics are `oneshot`'s: the outcome is delivered at most once; a
//! dropped receiver discards it; a sender dropped without sending (the
//! driver stopped) makes the receiver see [`Stopped`]. Polling is
//! cancel-safe.

use std::cell::UnsafeCell;
use std::mem::ManuallyDrop;
use std::panic::{RefUnwindSafe, UnwindSafe};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll, Waker};

use crate::driver::Done;

/// The sender dropped without an outcome: the driver stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stopped;

/// Bits of [`Inner::state`].
const LOCKED: u32 = 1;
/// The [`CompletionTx`] is alive.
const TX: u32 = 1 << 1;
/// The [`CompletionRx`] is alive.
const RX: u32 = 1 << 2;
/// What `slot` holds, in the bits of `PHASE`.
const PHASE: u32 = 0b11 << 3;
/// Nothing yet; the slot is empty.
const EMPTY: u32 = 0;
/// No outcome yet; the slot holds the waker of the last poll.
const WAKER: u32 = 1 << 3;
/// The slot holds the outcome.
const READY: u32 = 2 << 3;
/// The outcome was taken, or the sender dropped without one; the slot is
/// empty.
const CLOSED: u32 = 3 << 3;

/// The 16 bytes of the cell; which field is live is `state & PHASE`.
union Slot {
    empty: (),
    waker: ManuallyDrop<Waker>,
    done: ManuallyDrop<Done>,
}

struct Inner {
    state: AtomicU32,
    slot: UnsafeCell<Slot>,
}

/// The locked cell: the state as read when locked, written back (and the
/// lock released) when dropped, also on a panic.
///
/// It holds a raw pointer, not `&'a Inner`: `release` takes the guard by
/// value and its drop unlocks, after which the other half may free the
/// cell while `release` has not yet returned. A reference field would be a
/// protected function argument still live at that point (undefined
/// behaviour under Rust's aliasing model, rust-lang/rust#55005; Miri
/// reports it with a barrier-synchronised race); a pointer carries no such
/// promise.
struct Guard<'a> {
    inner: NonNull<Inner>,
    state: u32,
    _l: std::marker::PhantomData<&'a Inner>,
}

impl Inner {
    /// The lock if it is free.
    fn try_lock(&self) -> Option<Guard<'_>> {
        let s = self.state.load(Ordering::Relaxed);
        if s & LOCKED == 0
            && self
                .state
                .compare_exchange(s, s | LOCKED, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            return Some(Guard {
                inner: NonNull::from(self),
                state: s,
                _l: std::marker::PhantomData,
            });
        }
        None
    }

    fn lock(&self) -> Guard<'_> {
        let mut spins = 0u32;
        loop {
            if let Some(g) = self.try_lock() {
                return g;
            }
            // Held for a move of 16 bytes: spin, and give the holder the
            // core if it was descheduled.
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}

impl Guard<'_> {
    fn phase(&self) -> u32 {
        self.state & PHASE
    }

    fn set_phase(&mut self, phase: u32) {
        self.state = (self.state & !PHASE) | phase;
    }

    /// Moves the slot's content out and marks it `to` (an empty phase).
    fn take(&mut self, to: u32) -> Taken {
        // SAFETY: the lock is held, so nothing else reads or writes the
        // slot, and the phase says which field is live; it is marked empty
        // before the lock is released, so the value is read out only once.
        let taken = unsafe {
            let slot = &*self.inner.as_ref().slot.get();
            match self.phase() {
                WAKER => Taken::Waker(ManuallyDrop::into_inner(std::ptr::read(&slot.waker))),
                READY => Taken::Done(ManuallyDrop::into_inner(std::ptr::read(&slot.done))),
                _ => Taken::Nothing,
            }
        };
        self.set_phase(to);
        taken
    }

    /// Writes `slot` (the slot must be empty: taken before) and sets the
    /// phase that says what it holds.
    fn put(&mut self, slot: Slot, phase: u32) {
        debug_assert!(matches!(self.phase(), EMPTY | CLOSED));
        // SAFETY: the lock is held and the slot holds nothing live (its
        // phase is empty), so overwriting it leaks nothing.
        unsafe { self.inner.as_ref().slot.get().write(slot) };
        self.set_phase(phase);
    }

    /// Clears `half`'s alive bit and releases the lock. Returns true when
    /// the other half was gone already: the caller must free the cell.
    fn release(mut self, half: u32) -> bool {
        self.state &= !half;
        self.state & (TX | RX) == 0
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if self.state & (TX | RX) != 0 {
            unsafe { self.inner.as_ref() }
                .state
                .store(self.state & !LOCKED, Ordering::Release);
        }
        // Otherwise nobody else can reach the cell: the caller frees it.
    }
}

/// What was in the slot.
enum Taken {
    Nothing,
    Waker(Waker),
    Done(Done),
}

/// A new channel.
pub(crate) fn channel() -> (CompletionTx, CompletionRx) {
    let inner = Box::new(Inner {
        state: AtomicU32::new(TX | RX | EMPTY),
        slot: UnsafeCell::new(Slot { empty: () }),
    });
    #[cfg(test)]
    tests::live_cells(1);
    let ptr = NonNull::from(Box::leak(inner));
    (CompletionTx(ptr), CompletionRx(ptr))
}

/// Frees the cell; both halves are gone and its slot is empty.
///
/// # Safety
///
/// `ptr` came from [`channel`], both halves have released it (the caller
/// cleared the last alive bit) and nothing else holds it.
unsafe fn free(ptr: NonNull<Inner>) {
    // SAFETY: per the contract, the allocation is the `Box` of `channel`
    // and this is its only owner; the slot holds nothing live, and `Slot`
    // has no drop glue.
    drop(unsafe { Box::from_raw(ptr.as_ptr()) });
    #[cfg(test)]
    tests::live_cells(-1);
}

/// The driver's half: [`CompletionTx::send`] once, or drop.
pub(crate) struct CompletionTx(NonNull<Inner>);

// SAFETY: the cell is reached only under its lock (or by the last half
// alone), and what crosses threads through it (`Done`, `Waker`) is `Send`.
unsafe impl Send for CompletionTx {}
// SAFETY: its one `&self` method, `finish`, takes the cell's lock before it
// touches the slot, as every other access does.
unsafe impl Sync for CompletionTx {}
// What the `Send` impls above rely on, checked when this compiles.
const _: () = {
    const fn is_send<T: Send>() {}
    is_send::<Done>();
    is_send::<std::task::Waker>();
};
// As for `CompletionRx` below.
impl UnwindSafe for CompletionTx {}
impl RefUnwindSafe for CompletionTx {}

impl CompletionTx {
    /// The cell's pointer, to keep this half in one word with other data
    /// (a [`Ticket`](crate::driver::Ticket)); [`CompletionTx::from_raw`]
    /// takes it back.
    pub(crate) fn into_raw(self) -> NonNull<u8> {
        ManuallyDrop::new(self).0.cast()
    }

    /// The half `into_raw` gave up.
    ///
    /// # Safety
    ///
    /// `ptr` came from [`CompletionTx::into_raw`], once per call of it.
    pub(crate) unsafe fn from_raw(ptr: NonNull<u8>) -> Self {
        Self(ptr.cast())
    }

    /// Hands `done` to the receiver (discarded if it was dropped).
    pub(crate) fn send(self, done: Done) {
        let this = ManuallyDrop::new(self);
        this.finish(Some(done));
    }

    fn finish(&self, done: Option<Done>) {
        // SAFETY: the receiver half does not free the cell while this
        // half's alive bit is set.
        let inner = unsafe { self.0.as_ref() };
        let mut g = inner.lock();
        let (waker, discarded) = if g.state & RX == 0 {
            // Nobody will read it.
            (g.take(CLOSED), done)
        } else {
            let waker = g.take(EMPTY);
            match done {
                Some(d) => g.put(
                    Slot {
                        done: ManuallyDrop::new(d),
                    },
                    READY,
                ),
                None => g.set_phase(CLOSED),
            }
            (waker, None)
        };
        if g.release(TX) {
            // SAFETY: both halves are gone and the slot was emptied above.
            unsafe { free(self.0) };
        }
        // Dropped and woken outside the lock: a woken task may poll at once.
        drop(discarded);
        if let Taken::Waker(w) = waker {
            w.wake();
        }
    }
}

impl Drop for CompletionTx {
    fn drop(&mut self) {
        self.finish(None);
    }
}

/// The future's half.
pub(crate) struct CompletionRx(NonNull<Inner>);

// SAFETY: as for `CompletionTx`; the only `&self` access (`Debug`) is one
// atomic load.
unsafe impl Send for CompletionRx {}
// SAFETY: see above.
unsafe impl Sync for CompletionRx {}
// A panic inside `poll` (only a waker's `clone` can panic) leaves the cell
// as it was before the call, so it is safe to observe after unwinding, as
// the `Mutex` this replaces was.
impl UnwindSafe for CompletionRx {}
impl RefUnwindSafe for CompletionRx {}

impl CompletionRx {
    fn inner(&self) -> &Inner {
        // SAFETY: the cell is not freed while this half's alive bit is set,
        // and it is cleared only in `drop`.
        unsafe { self.0.as_ref() }
    }

    /// The outcome once sent, [`Stopped`] if the sender dropped without one
    /// (or the outcome was taken by an earlier poll).
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<Done, Stopped>> {
        let mut g = self.inner().lock();
        match g.phase() {
            EMPTY => {
                // A panicking `clone` leaves the cell empty and unlocked.
                let w = cx.waker().clone();
                g.put(
                    Slot {
                        waker: ManuallyDrop::new(w),
                    },
                    WAKER,
                );
                Poll::Pending
            }
            WAKER => {
                // SAFETY: the lock is held and the phase says the slot
                // holds a waker.
                let same = unsafe { (*g.inner.as_ref().slot.get()).waker.will_wake(cx.waker()) };
                if same {
                    return Poll::Pending;
                }
                let w = cx.waker().clone();
                let old = g.take(EMPTY);
                g.put(
                    Slot {
                        waker: ManuallyDrop::new(w),
                    },
                    WAKER,
                );
                drop(g);
                drop(old);
                Poll::Pending
            }
            READY => match g.take(CLOSED) {
                Taken::Done(d) => Poll::Ready(Ok(d)),
                _ => Poll::Ready(Err(Stopped)),
            },
            _ => Poll::Ready(Err(Stopped)),
        }
    }
}

impl Drop for CompletionRx {
    fn drop(&mut self) {
        let mut g = self.inner().lock();
        let taken = g.take(CLOSED);
        if g.release(RX) {
            // SAFETY: both halves are gone and the slot was emptied above.
            unsafe { free(self.0) };
        }
        // The outcome (or our waker) dropped outside the lock.
        drop(taken);
    }
}

impl std::fmt::Debug for CompletionRx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.inner().state.load(Ordering::Acquire) & PHASE {
            EMPTY | WAKER => "waiting",
            READY => "ready",
            _ => "closed",
        };
        f.debug_tuple("CompletionRx").field(&state).finish()
    }
}

#[cfg(test)]
#[path = "completion_tests.rs"]
mod tests;
