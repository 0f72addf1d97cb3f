//! [`SendCallback`], the seed's callback API, as a thin adapter over the
//! outcome of a send, and the thread that runs callbacks away from the
//! connection's I/O.
//!
//! Callbacks run one at a time, in outcome order, on a dedicated thread
//! (`mq-sender-callbacks`) owned by the sender. A slow or blocking callback
//! therefore delays only later callbacks, never reads, writes, timers or the
//! futures of other sends. The message's in-flight slot is released after
//! its callback returns, so a callback that is slower than the broker makes
//! `send` wait (or fail under `Backpressure::Fail`) instead of queueing
//! outcomes without bound.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;

use mq_protocol::MessageId;

use crate::{Receipt, SendError};

/// Called exactly once with the outcome of a message accepted by
/// [`crate::Sender::send_with_callback`].
///
/// Any `FnOnce(Result<Receipt, SendError>) + Send + 'static` closure is a
/// `SendCallback`. Callbacks run on the sender's callback thread; a callback
/// may block, but blocks later callbacks while it does. A panicking callback
/// is caught and logged.
///
/// Do not wait for another send's hand-over from inside a callback (for
/// example with `block_on`): the window slot of the message being reported
/// is released only after its callback returns, so with a full window that
/// wait could never end. Hand the work to a task instead.
///
/// # Examples
///
/// ```
/// use mq_client_sender::{Receipt, SendCallback, SendError};
///
/// struct Log;
/// impl SendCallback for Log {
///     fn on_complete(self: Box<Self>, outcome: Result<Receipt, SendError>) {
///         match outcome {
///             Ok(r) => println!("{} stored", r.id),
///             Err(e) => eprintln!("failed: {e}"),
///         }
///     }
/// }
/// let _closure_works_too: Box<dyn SendCallback> = Box::new(|o: Result<Receipt, SendError>| drop(o));
/// ```
pub trait SendCallback: Send + 'static {
    /// Receives the message's one outcome.
    fn on_complete(self: Box<Self>, outcome: Result<Receipt, SendError>);
}

impl<F> SendCallback for F
where
    F: FnOnce(Result<Receipt, SendError>) + Send + 'static,
{
    fn on_complete(self: Box<Self>, outcome: Result<Receipt, SendError>) {
        (*self)(outcome)
    }
}

/// A callback that is called with `DriverStopped` if it is dropped without
/// having been called, so "exactly once" holds even if the driver dies.
pub(crate) struct CallbackOnce {
    cb: Option<Box<dyn SendCallback>>,
    id: MessageId,
}

impl CallbackOnce {
    pub(crate) fn new(cb: Box<dyn SendCallback>, id: MessageId) -> Self {
        Self { cb: Some(cb), id }
    }

    /// Drops the callback without calling it (the hand-over failed and the
    /// caller got the error directly).
    pub(crate) fn disarm(mut self) {
        self.cb = None;
    }

    /// Runs the callback, catching a panic.
    pub(crate) fn call(mut self, outcome: Result<Receipt, SendError>) {
        if let Some(cb) = self.cb.take() {
            run(cb, outcome, self.id);
        }
    }
}

impl Drop for CallbackOnce {
    fn drop(&mut self) {
        if let Some(cb) = self.cb.take() {
            run(cb, Err(SendError::DriverStopped { id: self.id }), self.id);
        }
    }
}

fn run(cb: Box<dyn SendCallback>, outcome: Result<Receipt, SendError>, id: MessageId) {
    if catch_unwind(AssertUnwindSafe(|| cb.on_complete(outcome))).is_err() {
        tracing::error!(id = %id, "SendCallback panicked; the panic was caught");
    }
}

/// Work for the callback thread.
pub(crate) enum Job {
    /// Call a callback; `release` (the window permits) is dropped after it returns.
    Call {
        cb: CallbackOnce,
        outcome: Result<Receipt, SendError>,
        release: Box<dyn Send>,
    },
    /// Run after every earlier job: used by `flush` and `close`, so they
    /// return only after the callbacks of the messages they waited for ran.
    Notify(Box<dyn FnOnce() + Send>),
}

impl Job {
    /// Runs the job: a callback with its window permits released after it,
    /// or a notification (whose panic is logged, not propagated).
    fn run(self) {
        match self {
            Job::Call {
                cb,
                outcome,
                release,
            } => {
                cb.call(outcome);
                drop(release);
            }
            Job::Notify(f) => {
                if catch_unwind(AssertUnwindSafe(f)).is_err() {
                    tracing::error!("callback-thread notification panicked");
                }
            }
        }
    }
}

/// The sending side of the callback thread's queue. The queue holds at most
/// one job per in-flight slot plus a few notifications.
#[derive(Clone)]
pub(crate) struct Callbacks {
    tx: mpsc::Sender<Job>,
}

impl Callbacks {
    /// Starts the callback thread. It ends when every `Callbacks` is dropped.
    pub(crate) fn start() -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("mq-sender-callbacks".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    job.run();
                }
            })?;
        Ok(Self { tx })
    }

    /// Queues a job. If the thread is gone (it never exits while a
    /// `Callbacks` lives, but a panic could end it), the job runs here.
    pub(crate) fn push(&self, job: Job) {
        if let Err(mpsc::SendError(job)) = self.tx.send(job) {
            job.run();
        }
    }
}
