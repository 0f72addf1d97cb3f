//! The [`Dispatcher`]: claims due rows, hands them to a [`Dispatch`]
//! (normally the sender), and records each outcome.
//!
//! # Layout
//!
//! At start, the rows this owner's previous run had claimed are made due
//! at once (see `OutboxConfig::owner`), and rows waiting for another
//! dispatcher's lease are logged with when they expire.
//!
//! One task loops over: sweep exhausted rows (every `poll_interval`), claim
//! due rows up to `max_in_flight`, spawn one attempt per row, and wait for
//! an outcome, a [`Outbox::notify`], the next poll, or shutdown. Each attempt
//! runs in its own task bounded by 90 % of the lease, so it has ended
//! before any other dispatcher may claim the row again. No transaction or
//! row lock is held while an attempt waits for the broker.
//!
//! Outcomes: confirmed rows are set to status 1 (or deleted) in one
//! transaction per wake-up; a failed attempt gets `next_attempt_at = now +
//! backoff(attempts)`; a permanent failure or a failure of the last attempt
//! moves the row to the failure table at once.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mq_protocol::{Message, MessageId};
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::Retention;
use crate::enqueue::decode_headers;
use crate::error::DispatchError;
use crate::outbox::{now_ms, write_tx, Outbox};
use crate::sweeper::{self, ClaimedTuple};

/// Hands one message to the broker and waits for its confirm.
///
/// Implemented for `mq_client_sender::Sender`; implement it yourself to
/// route rows elsewhere or in tests. The message's `id` is the row's stable
/// [`MessageId`] and must be sent unchanged, so that a re-send after a
/// crash or a lost confirm is recognised by the broker as a duplicate.
///
/// The returned future is dropped when the attempt runs out of time (90 %
/// of the lease); an implementation must stop sending that message then.
///
/// # Examples
///
/// ```
/// use mq_outbox::{Dispatch, DispatchError};
/// use mq_protocol::Message;
///
/// struct Print;
/// impl Dispatch for Print {
///     async fn dispatch(&self, m: Message) -> Result<(), DispatchError> {
///         println!("{} -> {} ({} bytes)", m.id, m.topic, m.payload.len());
///         Ok(())
///     }
/// }
/// ```
pub trait Dispatch: Send + Sync + 'static {
    /// Sends `message` and resolves once the broker confirmed it (`Ok`), or
    /// with why not.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use mq_outbox::{Dispatch, DispatchError};
    /// use mq_protocol::{Headers, Message, MessageId};
    /// struct AlwaysDown;
    /// impl Dispatch for AlwaysDown {
    ///     async fn dispatch(&self, _: Message) -> Result<(), DispatchError> {
    ///         Err(DispatchError::Transient("broker unreachable".into()))
    ///     }
    /// }
    /// let m = Message { id: MessageId::new(1, 1), attempt: 1, topic: "t".into(),
    ///                   headers: Headers::new(), payload: "x".into() };
    /// assert!(AlwaysDown.dispatch(m).await.is_err());
    /// # });
    /// ```
    fn dispatch(&self, message: Message) -> impl Future<Output = Result<(), DispatchError>> + Send;
}

impl<D: Dispatch> Dispatch for Arc<D> {
    fn dispatch(&self, message: Message) -> impl Future<Output = Result<(), DispatchError>> + Send {
        (**self).dispatch(message)
    }
}

/// Sends an outbox's rows; created by [`Outbox::dispatcher`].
///
/// Run one per process (several are allowed and safe, in one process or
/// many sharing a Postgres table; claims keep them from sending the same row
/// at once).
///
/// # Examples
///
/// ```no_run
/// # async fn f(outbox: mq_outbox::Outbox, sender: mq_client_sender::Sender) {
/// let handle = outbox.dispatcher(sender).spawn();
/// handle.shutdown().await;
/// # }
/// ```
pub struct Dispatcher<D> {
    outbox: Outbox,
    dispatch: Arc<D>,
}

impl<D> std::fmt::Debug for Dispatcher<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("outbox", &self.outbox)
            .finish_non_exhaustive()
    }
}

/// Controls a dispatcher started with [`Dispatcher::spawn`].
///
/// Dropping the handle does not stop the dispatcher; call
/// [`DispatcherHandle::shutdown`].
///
/// # Examples
///
/// ```no_run
/// # async fn f(handle: mq_outbox::DispatcherHandle) {
/// handle.shutdown().await;
/// # }
/// ```
#[derive(Debug)]
pub struct DispatcherHandle {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl DispatcherHandle {
    /// Stops claiming rows, waits for the attempts in flight to end (at
    /// most 90 % of the lease), records their outcomes and returns. Rows
    /// still pending are sent by the next dispatcher to run.
    ///
    /// # Cancel safety
    ///
    /// Cancelling stops waiting; the dispatcher still winds down by itself.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(handle: mq_outbox::DispatcherHandle) {
    /// handle.shutdown().await;
    /// # }
    /// ```
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Err(e) = (&mut self.task).await {
            tracing::error!(error = %e, "outbox dispatcher task ended abnormally");
        }
    }

    /// Stops the dispatcher at once, as a crash would: attempts in flight
    /// are abandoned and their rows are retried after their lease.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn f(handle: mq_outbox::DispatcherHandle) {
    /// handle.abort();
    /// # }
    /// ```
    pub fn abort(self) {
        self.task.abort();
    }
}

/// The end of one attempt.
struct Outcome {
    seq: i64,
    attempts: i32,
    result: Result<(), DispatchError>,
}

impl<D: Dispatch> Dispatcher<D> {
    pub(crate) fn new(outbox: Outbox, dispatch: D) -> Self {
        Self {
            outbox,
            dispatch: Arc::new(dispatch),
        }
    }

    /// Runs the dispatcher on a new tokio task.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(outbox: mq_outbox::Outbox, sender: mq_client_sender::Sender) {
    /// let handle = outbox.dispatcher(sender).spawn();
    /// # }
    /// ```
    pub fn spawn(self) -> DispatcherHandle {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(self.run(async move {
            let _ = stopped.await;
        }));
        DispatcherHandle {
            stop: Some(stop),
            task,
        }
    }

    /// Runs until `shutdown` completes, then winds down as
    /// [`DispatcherHandle::shutdown`] describes. Database errors are
    /// logged (`tracing`) and retried every `poll_interval`; they never end
    /// the loop.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future is like a crash: nothing is lost, attempts in
    /// flight are retried after their lease.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(outbox: mq_outbox::Outbox, sender: mq_client_sender::Sender) {
    /// outbox.dispatcher(sender).run(async { let _ = tokio::signal::ctrl_c().await; }).await;
    /// # }
    /// ```
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let outbox = self.outbox.clone();
        let cfg = outbox.config().clone();
        let mut rng = match cfg.rng_seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_entropy(),
        };
        let (tx, mut rx) = mpsc::unbounded_channel::<Outcome>();
        let mut enqueued = outbox.inner.enqueued.subscribe();
        tokio::pin!(shutdown);
        let mut stopping = false;
        let mut in_flight = 0usize;
        let mut next_sweep = Instant::now();
        let mut next_due: Option<Instant> = None;
        // Claim only when something may have become due: start, a notify,
        // a timer, or a full batch last time. Recording outcomes alone does
        // not make rows due, and a needless claim is a write transaction.
        let mut claim_needed = true;
        announce_leases(&outbox).await;

        loop {
            let mut more = false;
            if !stopping {
                if Instant::now() >= next_sweep {
                    if let Err(e) = sweeper::sweep(&outbox, now_ms()).await {
                        tracing::warn!(error = %e, "outbox sweep failed; retrying");
                    }
                    next_sweep = Instant::now() + cfg.poll_interval;
                }
                if claim_needed && in_flight < cfg.max_in_flight {
                    claim_needed = false;
                    enqueued.borrow_and_update();
                    let free = cfg.max_in_flight - in_flight;
                    let want = u32::try_from(free).unwrap_or(u32::MAX).min(cfg.batch_size);
                    // The attempt deadline is measured from before the
                    // claim, so it always falls inside the lease.
                    let deadline = Instant::now() + cfg.attempt_timeout();
                    let now = now_ms();
                    let lease_until = now.saturating_add(millis(cfg.lease));
                    match sweeper::claim(&outbox, want, lease_until, now).await {
                        Ok(rows) => {
                            more = rows.len() == want as usize;
                            claim_needed = more;
                            if next_due.is_some_and(|d| d <= Instant::now()) {
                                next_due = None;
                            }
                            for row in rows {
                                in_flight += 1;
                                self.start(&outbox, row, deadline, &tx);
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "outbox claim failed; retrying"),
                    }
                }
            }
            if stopping && in_flight == 0 {
                return;
            }
            if more && in_flight < cfg.max_in_flight {
                // A full batch: there may be more due rows right now.
                let outcomes = drain(&mut rx);
                in_flight -= outcomes.len();
                record(&outbox, outcomes, &mut rng, &mut next_due).await;
                continue;
            }
            let wake = next_due.map_or(next_sweep, |d| d.min(next_sweep));
            tokio::select! {
                Some(first) = rx.recv() => {
                    let mut outcomes = drain(&mut rx);
                    outcomes.push(first);
                    in_flight -= outcomes.len();
                    record(&outbox, outcomes, &mut rng, &mut next_due).await;
                }
                Ok(()) = enqueued.changed(), if !stopping => claim_needed = true,
                _ = tokio::time::sleep_until(wake), if !stopping => claim_needed = true,
                _ = &mut shutdown, if !stopping => {
                    tracing::debug!(in_flight, "outbox dispatcher stopping");
                    stopping = true;
                }
            }
        }
    }

    /// Spawns one attempt for a claimed row.
    fn start(
        &self,
        outbox: &Outbox,
        row: ClaimedTuple,
        deadline: Instant,
        tx: &mpsc::UnboundedSender<Outcome>,
    ) {
        let (seq, topic, headers, payload, attempts) = row;
        let tx = tx.clone();
        let headers = decode_headers(&headers);
        let dispatch = self.dispatch.clone();
        let timeout = outbox.config().attempt_timeout();
        let id = MessageId::new(outbox.producer_id(), u64::try_from(seq).unwrap_or(0));
        tokio::spawn(async move {
            let result = match headers {
                Err(e) => Err(DispatchError::Permanent(format!("corrupt row: {e}"))),
                Ok(headers) => {
                    let message = Message {
                        id,
                        attempt: u32::try_from(attempts).unwrap_or(1),
                        topic: topic.into(),
                        headers,
                        payload: Bytes::from(payload),
                    };
                    match tokio::time::timeout_at(deadline, dispatch.dispatch(message)).await {
                        Ok(r) => r,
                        Err(_) => Err(DispatchError::Transient(format!(
                            "no confirm within {timeout:?}"
                        ))),
                    }
                }
            };
            let _ = tx.send(Outcome {
                seq,
                attempts,
                result,
            });
        });
    }
}

/// At start: takes back at once the rows this owner's previous run had
/// claimed (see [`OutboxConfig::owner`](crate::OutboxConfig::owner)), and
/// says which pending rows must wait for someone else's lease, and how long.
async fn announce_leases(outbox: &Outbox) {
    let now = now_ms();
    let owner = outbox.inner.owner.as_deref().unwrap_or("");
    match sweeper::take_back_own_leases(outbox, now).await {
        Ok(0) => {}
        Ok(rows) => tracing::info!(
            rows,
            owner,
            "outbox: took back the rows this producer's previous run had claimed; sending them now"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "outbox: cannot take back this producer's earlier leases; they expire after the lease")
        }
    }
    match sweeper::leased_elsewhere(outbox, now).await {
        Ok((rows, first, last)) if rows > 0 => {
            let after = |t: Option<i64>| {
                Duration::from_millis(u64::try_from(t.unwrap_or(now) - now).unwrap_or(0))
            };
            tracing::info!(
                rows,
                first_in = ?after(first),
                last_in = ?after(last),
                owner,
                "outbox: pending rows are leased by another dispatcher or by an earlier run this one \
                 cannot identify (set OutboxConfig::owner to a name stable across restarts); \
                 they are sent when the leases expire"
            );
        }
        Ok(_) => {}
        Err(e) => tracing::debug!(error = %e, "outbox: cannot count leased rows"),
    }
}

fn drain(rx: &mut mpsc::UnboundedReceiver<Outcome>) -> Vec<Outcome> {
    let mut v = Vec::new();
    while let Ok(o) = rx.try_recv() {
        v.push(o);
    }
    v
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Writes the outcomes of finished attempts. Database errors are logged:
/// the rows stay claimed and are retried after their lease, which is
/// safe (the broker answers a re-sent confirmed row with Duplicate).
async fn record(
    outbox: &Outbox,
    outcomes: Vec<Outcome>,
    rng: &mut StdRng,
    next_due: &mut Option<Instant>,
) {
    if outcomes.is_empty() {
        return;
    }
    let cfg = outbox.config();
    let now = now_ms();
    let mut confirmed = Vec::new();
    for o in outcomes {
        match o.result {
            Ok(()) => confirmed.push(o.seq),
            Err(e) => {
                let last = u32::try_from(o.attempts).unwrap_or(u32::MAX) >= cfg.max_attempts;
                if e.is_permanent() || last {
                    match sweeper::fail_row(outbox.db(), o.seq, o.attempts, &e.to_string(), now)
                        .await
                    {
                        Ok(Some(row)) => sweeper::alert(outbox, vec![row]),
                        Ok(None) => {}
                        Err(db) => {
                            tracing::warn!(seq = o.seq, error = %db, "cannot mark outbox row failed")
                        }
                    }
                } else {
                    let n = u32::try_from(o.attempts).unwrap_or(1);
                    let delay = cfg.backoff.delay_with(n, rand::Rng::gen(rng));
                    tracing::debug!(seq = o.seq, attempts = o.attempts, error = %e, ?delay, "outbox attempt failed; backing off");
                    let due = Instant::now() + delay;
                    *next_due = Some(next_due.map_or(due, |d| d.min(due)));
                    if let Err(db) =
                        retry_later(outbox, o.seq, o.attempts, now + millis(delay), &e, now).await
                    {
                        tracing::warn!(seq = o.seq, error = %db, "cannot record outbox retry");
                    }
                }
            }
        }
    }
    if !confirmed.is_empty() {
        match confirm(outbox, &confirmed, now).await {
            Ok(()) => outbox.settled(),
            Err(e) => {
                tracing::warn!(rows = confirmed.len(), error = %e, "cannot record outbox confirms; they will be re-sent")
            }
        }
    }
}

async fn retry_later(
    outbox: &Outbox,
    seq: i64,
    attempts: i32,
    at: i64,
    error: &DispatchError,
    now: i64,
) -> Result<(), sqlx::Error> {
    let msg = error.to_string();
    write_tx!(outbox.db(), |tx, _lock| {
        sqlx::query(
            "UPDATE mq_outbox SET next_attempt_at = $1, last_error = $2, updated_at = $3, \
             lease_owner = NULL, lease_instance = NULL \
             WHERE seq = $4 AND status = 0 AND attempts = $5",
        )
        .bind(at)
        .bind(&msg)
        .bind(now)
        .bind(seq)
        .bind(attempts)
        .execute(&mut *tx)
        .await?;
    });
    Ok(())
}

async fn confirm(outbox: &Outbox, seqs: &[i64], now: i64) -> Result<(), sqlx::Error> {
    let delete = outbox.config().retention == Retention::Delete;
    for chunk in seqs.chunks(500) {
        write_tx!(outbox.db(), |tx, _lock| {
            let mut qb = if delete {
                sqlx::QueryBuilder::new("DELETE FROM mq_outbox WHERE status = 0 AND seq IN (")
            } else {
                let mut qb = sqlx::QueryBuilder::new(
                    "UPDATE mq_outbox SET status = 1, last_error = NULL, updated_at = ",
                );
                qb.push_bind(now);
                qb.push(" WHERE status = 0 AND seq IN (");
                qb
            };
            let mut list = qb.separated(", ");
            for &s in chunk {
                list.push_bind(s);
            }
            qb.push(")");
            qb.build().execute(&mut *tx).await?;
        });
    }
    Ok(())
}
