//! What the two broker binaries (`mq-broker`, `mq-mock-broker`) share
//! around a running broker: the signals that stop it and the periodic
//! `stats` log line. Feature `signals` (on with `cli`); not part of the
//! library's stable API.

use std::time::Duration;

use crate::Broker;

/// SIGTERM and SIGINT, listened for from the moment this is created (so a
/// signal sent right after the `listening` line is not missed).
///
/// # Examples
///
/// ```no_run
/// # async fn f() {
/// let mut signals = mq_broker::process::Signals::new();
/// let why = signals.recv().await; // "SIGTERM" or "SIGINT"
/// # let _ = why; }
/// ```
pub struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Starts listening.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f() {
    /// let _signals = mq_broker::process::Signals::new();
    /// # }
    /// ```
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Signals {
            #[cfg(unix)]
            term: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok(),
        }
    }

    /// Waits for the next signal and names it.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(mut s: mq_broker::process::Signals) {
    /// println!("stopping on {}", s.recv().await);
    /// # }
    /// ```
    pub async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        if let Some(term) = self.term.as_mut() {
            return tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = tokio::signal::ctrl_c() => "SIGINT",
            };
        }
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}

/// Runs until a signal or a fatal broker error, logging a `stats key=value`
/// line every `every` when the figures changed (`every` zero: never).
/// Returns why it stopped ("SIGTERM", "SIGINT" or "a fatal error").
///
/// # Examples
///
/// ```no_run
/// # async fn f(broker: mq_broker::Broker) {
/// use std::time::Duration;
/// let mut signals = mq_broker::process::Signals::new();
/// let why = mq_broker::process::serve(&broker, &mut signals, Duration::from_secs(60)).await;
/// tracing::info!("shutting down on {why}");
/// broker.shutdown().await;
/// # }
/// ```
pub async fn serve(broker: &Broker, signals: &mut Signals, every: Duration) -> &'static str {
    let mut last = broker.stats();
    loop {
        let tick = async {
            if every.is_zero() {
                std::future::pending::<()>().await
            } else {
                tokio::time::sleep(every).await
            }
        };
        tokio::select! {
            s = signals.recv() => return s,
            _ = broker.stopped() => return "a fatal error",
            _ = tick => {
                let now = broker.stats();
                if now != last {
                    tracing::info!("stats {now}");
                    last = now;
                }
            }
        }
    }
}
