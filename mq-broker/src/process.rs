//! What the two broker binaries (`mq-broker`, `mq-mock-broker`) share
//! around a running broker: their TLS flags, the signals that stop it and
//! the periodic `stats` log line. Feature `signals` (on with `cli`); not part of the
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

/// The TLS listener the binaries' flags ask for (`--tls-listen`,
/// `--tls-cert`, `--tls-key`, `--tls-client-ca`): none without any of
/// them, TLS only when there is no plaintext `listen`. The error says
/// which flag to add.
///
/// # Errors
///
/// A message naming the missing flag or the unreadable file.
///
/// # Examples
///
/// ```
/// use mq_broker::process::tls_from_flags;
/// assert!(tls_from_flags(None, None, None, None, None).unwrap().is_none());
/// let e = tls_from_flags(None, Some("127.0.0.1:0".parse().unwrap()), None, None, None);
/// assert!(e.unwrap_err().contains("--tls-cert"));
/// ```
pub fn tls_from_flags(
    listen: Option<std::net::SocketAddr>,
    tls_listen: Option<std::net::SocketAddr>,
    cert: Option<&std::path::Path>,
    key: Option<&std::path::Path>,
    client_ca: Option<&std::path::Path>,
) -> Result<Option<crate::TlsConfig>, String> {
    let (addr, cert, key) = match (tls_listen, cert, key) {
        (None, None, None) => {
            if client_ca.is_some() {
                return Err("--tls-client-ca needs --tls-listen, --tls-cert and --tls-key".into());
            }
            return Ok(None);
        }
        (Some(addr), Some(cert), Some(key)) => (addr, cert, key),
        _ => return Err("TLS needs all three of --tls-listen, --tls-cert and --tls-key".into()),
    };
    let tls = crate::TlsConfig::from_pem_files(cert, key, client_ca).map_err(|e| e.to_string())?;
    Ok(Some(tls.listen(addr).tls_only(listen.is_none())))
}
