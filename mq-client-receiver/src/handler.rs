//! [`RecvCallback`]: the business handler (the seed's `RecvCallback`), and
//! the adapter that runs it with panics turned into errors.

use std::future::Future;

use futures::future::BoxFuture;

use crate::delivery::Delivery;
use crate::error::HandlerError;

/// The handler a [`crate::Receiver`] calls once per message (within the dedup
/// bounds), at most `max_concurrency` calls at a time.
///
/// Return `Ok(())` when the message is processed: in [`crate::AckMode::Auto`]
/// the receiver then records it and acks it. Return `Err` to have it
/// redelivered later: it is nacked, never acked. A panic counts as `Err`.
///
/// The handler's futures run inside the receiver's own task (no task per
/// message), so a handler must not block its thread: move CPU-heavy or
/// blocking work to `tokio::task::spawn_blocking` (or spawn a task) and
/// await it; while a handler blocks, the receiver reads and writes nothing.
///
/// Any `Fn(Delivery) -> impl Future<Output = Result<(), HandlerError>>`
/// closure is a `RecvCallback`. For a struct, implement `on_message` and
/// return a boxed `'static` future (clone what it needs out of `self`).
///
/// # Examples
///
/// ```
/// use futures::future::BoxFuture;
/// use mq_client_receiver::{Delivery, HandlerError, RecvCallback};
///
/// // A closure:
/// let h = |d: Delivery| async move {
///     println!("{}", d.id());
///     Ok::<(), HandlerError>(())
/// };
/// fn takes<H: RecvCallback>(_: H) {}
/// takes(h);
///
/// // A struct:
/// struct Billing;
/// impl RecvCallback for Billing {
///     fn on_message(&self, d: Delivery) -> BoxFuture<'static, Result<(), HandlerError>> {
///         Box::pin(async move {
///             if d.payload().is_empty() { return Err(HandlerError::new("empty")); }
///             Ok(())
///         })
///     }
/// }
/// takes(Billing);
/// ```
pub trait RecvCallback: Send + Sync + 'static {
    /// Processes one message.
    fn on_message(&self, msg: Delivery) -> BoxFuture<'static, Result<(), HandlerError>>;
}

impl<F, Fut> RecvCallback for F
where
    F: Fn(Delivery) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    fn on_message(&self, msg: Delivery) -> BoxFuture<'static, Result<(), HandlerError>> {
        Box::pin(self(msg))
    }
}

/// A panic payload as a [`HandlerError`].
pub(crate) fn panicked(p: Box<dyn std::any::Any + Send>) -> HandlerError {
    let what = p
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into());
    HandlerError::new(format!("handler panicked: {what}"))
}
