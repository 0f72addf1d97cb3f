//! [`RecvCallback`]: the business handler (the seed's `RecvCallback`), and
//! the adapter that runs it with panics turned into errors.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::future::BoxFuture;
use futures::FutureExt;

use crate::delivery::Delivery;
use crate::error::HandlerError;

/// The handler a [`crate::Receiver`] calls once per message (within the dedup
/// bounds), at most `max_concurrency` calls at a time.
///
/// Return `Ok(())` when the message is processed: in [`crate::AckMode::Auto`]
/// the receiver then records it and acks it. Return `Err` to have it
/// redelivered later: it is nacked, never acked. A panic counts as `Err`.
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

/// Calls the handler; a panic, in the call or in its future, becomes an `Err`.
pub(crate) async fn call(handler: &dyn RecvCallback, msg: Delivery) -> Result<(), HandlerError> {
    let fut = match std::panic::catch_unwind(AssertUnwindSafe(|| handler.on_message(msg))) {
        Ok(fut) => fut,
        Err(p) => return Err(panicked(p)),
    };
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(r) => r,
        Err(p) => Err(panicked(p)),
    }
}

fn panicked(p: Box<dyn std::any::Any + Send>) -> HandlerError {
    let what = p
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into());
    HandlerError::new(format!("handler panicked: {what}"))
}
