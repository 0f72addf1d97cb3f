//! [`Ticket`]: the driver's per-message data, kept in the core next to
//! the message. Every in-flight message has one, so it is kept to two
//! words (16 bytes, where an enum of the two completions and the fields
//! took 32): the completion as one pointer, its kind and the explicit-ID
//! flag in the top bits of the flush index. The message's share of the
//! byte window is not stored: it is [`window_bytes`] of the frame size,
//! which the core computes again from the message it keeps.

use std::mem::ManuallyDrop;
use std::ptr::NonNull;

use super::Completion;
use crate::callback::CallbackOnce;
use crate::completion::CompletionTx;

/// The share of the byte window a message with a frame of `frame_size`
/// bytes takes: the frame and its length prefix. The hand-over takes it
/// and the driver gives it back, each computing it from the message.
pub(crate) fn window_bytes(frame_size: usize) -> u32 {
    // A frame fits `max_in_flight_bytes - 4` (at most `u32::MAX`), checked
    // before any permit is taken.
    u32::try_from(frame_size.saturating_add(4)).unwrap_or(u32::MAX)
}

/// [`Ticket::index`]'s bit for a message with an explicit sequence number.
const EXPLICIT: u64 = 1 << 63;
/// [`Ticket::index`]'s bit for a callback completion (else a future's).
const CALLBACK: u64 = 1 << 62;
/// The flush index bits. Flush indices count accepted messages: 2^62 of
/// them take 146 years at a billion a second.
const INDEX: u64 = CALLBACK - 1;

/// The driver's per-message data (see the module docs).
pub(crate) struct Ticket {
    /// A [`CompletionTx`] or a `Box<CallbackOnce>`, as `index` says.
    completion: NonNull<u8>,
    /// Flush index (see [`FlushTracker`](crate::flush::FlushTracker)) in
    /// the low bits, and the [`EXPLICIT`] and [`CALLBACK`] bits.
    index: u64,
}

// SAFETY: a ticket owns a `Completion` (kept as a pointer), which is `Send`
// (checked below), and has no `&self` access to it.
unsafe impl Send for Ticket {}

const _: () = {
    const fn send<T: Send>() {}
    send::<Completion>();
};

impl Ticket {
    pub(crate) fn new(completion: Completion, explicit: bool) -> Self {
        let (completion, kind) = match completion {
            Completion::Future(tx) => (tx.into_raw(), 0),
            Completion::Callback(cb) => (NonNull::from(Box::leak(cb)).cast::<u8>(), CALLBACK),
        };
        Self {
            completion,
            index: kind | if explicit { EXPLICIT } else { 0 },
        }
    }

    /// Rebuilds the completion `new` took apart.
    ///
    /// # Safety
    ///
    /// Once per ticket: the ticket must not be used or dropped after.
    unsafe fn rebuild(&self) -> Completion {
        // SAFETY: `new` made `completion` from an owner of the kind the
        // `CALLBACK` bit says and gave up its ownership; it is rebuilt once.
        unsafe {
            if self.index & CALLBACK != 0 {
                Completion::Callback(Box::from_raw(
                    self.completion.cast::<CallbackOnce>().as_ptr(),
                ))
            } else {
                Completion::Future(CompletionTx::from_raw(self.completion))
            }
        }
    }

    /// The completion, to resolve the message with.
    pub(crate) fn into_completion(self) -> Completion {
        let this = ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again.
        unsafe { this.rebuild() }
    }

    /// The message had an explicit sequence number.
    pub(crate) fn explicit(&self) -> bool {
        self.index & EXPLICIT != 0
    }

    /// Forgets that the message had an explicit sequence number (its ID
    /// stays registered for an earlier copy).
    pub(super) fn clear_explicit(&mut self) {
        self.index &= !EXPLICIT;
    }

    pub(super) fn index(&self) -> u64 {
        self.index & INDEX
    }

    pub(super) fn set_index(&mut self, index: u64) {
        self.index = (self.index & !INDEX) | (index & INDEX);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        // SAFETY: `drop` runs once, and nothing uses the ticket after it.
        drop(unsafe { self.rebuild() });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Context, Poll};

    use mq_protocol::MessageId;

    use super::*;
    use crate::completion::{self, Stopped};
    use crate::{Receipt, SendError};

    #[test]
    fn the_window_share_is_the_frame_and_its_length_prefix() {
        assert_eq!(window_bytes(29), 33);
        assert_eq!(window_bytes(0), 4);
        assert_eq!(window_bytes(u32::MAX as usize - 4), u32::MAX);
        assert_eq!(window_bytes(u32::MAX as usize), u32::MAX, "saturates");
        assert_eq!(window_bytes(usize::MAX), u32::MAX, "saturates");
    }

    #[test]
    fn two_words() {
        assert_eq!(std::mem::size_of::<Ticket>(), 16);
    }

    #[test]
    fn index_and_flags_do_not_disturb_each_other() {
        let (tx, _rx) = completion::channel();
        let mut t = Ticket::new(Completion::Future(tx), true);
        assert!(t.explicit());
        assert_eq!(t.index(), 0);
        t.set_index(INDEX);
        assert_eq!(t.index(), INDEX);
        assert!(t.explicit());
        t.set_index(7);
        assert_eq!(t.index(), 7);
        t.clear_explicit();
        assert!(!t.explicit());
        assert_eq!(t.index(), 7);
        assert!(matches!(t.into_completion(), Completion::Future(_)));
        let t = Ticket::new(Completion::Future(completion::channel().0), false);
        assert!(!t.explicit());
        assert_eq!(t.index(), 0);
    }

    #[test]
    fn a_future_completion_comes_back_and_a_dropped_one_stops_its_future() {
        let (tx, mut rx) = completion::channel();
        let mut t = Ticket::new(Completion::Future(tx), false);
        t.set_index(INDEX);
        let Completion::Future(tx) = t.into_completion() else {
            panic!("a future's completion")
        };
        let id = MessageId::new(1, 2);
        let r = Receipt {
            id,
            attempts: 1,
            elapsed: std::time::Duration::ZERO,
            duplicate: false,
        };
        tx.send(super::super::done(Ok(r)));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(matches!(rx.poll(&mut cx), Poll::Ready(Ok(Ok(_)))));

        let (tx, mut rx) = completion::channel();
        drop(Ticket::new(Completion::Future(tx), true));
        assert!(matches!(rx.poll(&mut cx), Poll::Ready(Err(Stopped))));
    }

    #[test]
    fn a_callback_completion_comes_back_and_a_dropped_one_is_dropped_once() {
        struct Probe(Arc<AtomicUsize>);
        impl Drop for Probe {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let calls = Arc::new(AtomicUsize::new(0));
        let drops = Arc::new(AtomicUsize::new(0));
        let cb = {
            let (calls, probe) = (calls.clone(), Probe(drops.clone()));
            move |_: Result<Receipt, SendError>| {
                let _keep = &probe;
                calls.fetch_add(1, Ordering::SeqCst);
            }
        };
        let once = CallbackOnce::new(Box::new(cb), MessageId::new(1, 3));
        let mut t = Ticket::new(Completion::Callback(Box::new(once)), true);
        t.set_index(5);
        assert!(t.explicit());
        let Completion::Callback(cb) = t.into_completion() else {
            panic!("a callback")
        };
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        (*cb).disarm();
        assert_eq!(drops.load(Ordering::SeqCst), 1, "dropped once, by disarm");
        assert_eq!(calls.load(Ordering::SeqCst), 0);

        // A ticket dropped unresolved (the driver stopped): the callback
        // runs once, with `DriverStopped`, and is dropped once.
        let (tx, rx) = std::sync::mpsc::channel();
        let probe = Probe(drops.clone());
        let cb = move |o: Result<Receipt, SendError>| {
            let _keep = &probe;
            let _ = tx.send(matches!(o, Err(SendError::DriverStopped { .. })));
        };
        let once = CallbackOnce::new(Box::new(cb), MessageId::new(1, 4));
        drop(Ticket::new(Completion::Callback(Box::new(once)), false));
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), vec![true]);
        assert_eq!(drops.load(Ordering::SeqCst), 2);
    }
}
