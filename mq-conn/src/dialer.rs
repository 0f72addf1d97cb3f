//! The handshake over a [`Connector`]: `Hello` out, `Welcome` (or a refusal)
//! back, within a timeout; one address, or a round over several.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures::future::BoxFuture;
use mq_protocol::{Codec, Frame, Hello, Welcome, DEFAULT_MAX_FRAME_SIZE, PROTOCOL_VERSION};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::Decoder;

use crate::{BoxIo, ConnectError, ConnectionEvent, Connector, Events};

/// Default bound on one address's connect plus handshake.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection past the handshake.
///
/// `leftover` holds bytes that arrived right behind the `Welcome` (already
/// read, not yet decoded): a client must decode them before reading more,
/// e.g. with `tokio_util::codec::FramedParts { read_buf: leftover, .. }`.
///
/// # Examples
///
/// ```no_run
/// # async fn f(dialer: mq_conn::Dialer) -> Result<(), mq_conn::ConnectError> {
/// let est = dialer.connect("127.0.0.1:7878").await?;
/// println!("{} at {} speaks v{}", est.welcome.server_name, est.address, est.welcome.version);
/// # Ok(()) }
/// ```
#[non_exhaustive]
pub struct Established {
    /// The stream, positioned after the `Welcome`.
    pub io: BoxIo,
    /// The broker's `Welcome`.
    pub welcome: Welcome,
    /// Bytes read after the `Welcome`, not yet decoded.
    pub leftover: BytesMut,
    /// The address that answered.
    pub address: String,
}

impl std::fmt::Debug for Established {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Established")
            .field("welcome", &self.welcome)
            .field("leftover", &self.leftover.len())
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// The heartbeat interval a connection uses: the client's own setting if
/// it has one, else the broker's from the `Welcome` (`heartbeat_ms == 0`:
/// off).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let w = mq_protocol::Welcome { version: 1, max_frame_size: 1 << 20, heartbeat_ms: 0,
///                                server_name: "broker".into(), max_message_size: None };
/// assert_eq!(mq_conn::heartbeat_interval(None, &w), None);
/// assert_eq!(mq_conn::heartbeat_interval(Some(Duration::from_secs(1)), &w), Some(Duration::from_secs(1)));
/// ```
pub fn heartbeat_interval(configured: Option<Duration>, welcome: &Welcome) -> Option<Duration> {
    match configured {
        Some(h) => Some(h),
        None if welcome.heartbeat_ms == 0 => None,
        None => Some(Duration::from_millis(u64::from(welcome.heartbeat_ms))),
    }
}

/// Connects and says hello: a [`Connector`], the `Hello` to send, the
/// largest frame to accept and the timeout of one address. Cheap to clone
/// (shared parts); its futures are `'static`, so a driver can keep one
/// across turns of its loop.
///
/// # Address semantics (both clients)
///
/// [`Dialer::connect_round`] is one *round*: every address once, in the
/// configured order, each bounded by the connect timeout, with no pause
/// between them; the first to complete the handshake wins. A client that
/// loses its connection starts a new round from the first address, and
/// after a failed round waits the reconnect backoff
/// ([`crate::Reconnect`]) before the next.
///
/// # Events
///
/// With [`Dialer::events`], the dialer emits [`ConnectionEvent::Connected`]
/// and [`ConnectionEvent::Refused`]; the client's driver emits `Lost` and
/// `Reconnecting`.
///
/// # Examples
///
/// ```no_run
/// # async fn f() -> Result<(), mq_conn::ConnectError> {
/// use std::sync::Arc;
/// use mq_conn::{Dialer, TcpConnector};
/// use mq_protocol::{Hello, Role};
/// let dialer = Dialer::new(Arc::new(TcpConnector::new()), Hello::new(Role::Sender, "me"));
/// let est = dialer
///     .connect_round(&["10.0.0.1:7878".to_owned(), "10.0.0.2:7878".to_owned()])
///     .await?;
/// # drop(est); Ok(()) }
/// ```
#[derive(Clone)]
pub struct Dialer {
    connector: Arc<dyn Connector>,
    hello: Arc<Hello>,
    max_frame_size: u32,
    timeout: Duration,
    events: Option<Events>,
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialer")
            .field("hello", &self.hello)
            .field("max_frame_size", &self.max_frame_size)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Dialer {
    /// A dialer with [`DEFAULT_CONNECT_TIMEOUT`] and
    /// [`mq_protocol::DEFAULT_MAX_FRAME_SIZE`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// let d = mq_conn::Dialer::new(
    ///     Arc::new(mq_conn::TcpConnector::new()),
    ///     mq_protocol::Hello::new(mq_protocol::Role::Receiver, "worker-1"),
    /// );
    /// # drop(d);
    /// ```
    pub fn new(connector: Arc<dyn Connector>, hello: Hello) -> Self {
        Self {
            connector,
            hello: Arc::new(hello),
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            timeout: DEFAULT_CONNECT_TIMEOUT,
            events: None,
        }
    }

    /// Bounds one address's connect and handshake (TLS included).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn f(d: mq_conn::Dialer) {
    /// let d = d.connect_timeout(std::time::Duration::from_secs(2));
    /// # }
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The largest frame accepted during the handshake.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn f(d: mq_conn::Dialer) {
    /// let d = d.max_frame_size(64 * 1024);
    /// # }
    /// ```
    pub fn max_frame_size(mut self, max: u32) -> Self {
        self.max_frame_size = max;
        self
    }

    /// Emit `Connected` and `Refused` on this channel.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn f(d: mq_conn::Dialer) {
    /// let events = mq_conn::Events::default();
    /// let mut rx = events.subscribe();
    /// let d = d.events(events);
    /// # }
    /// ```
    pub fn events(mut self, events: Events) -> Self {
        self.events = Some(events);
        self
    }

    /// The connector used.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn f(d: mq_conn::Dialer) {
    /// let c = d.connector().clone();
    /// # }
    /// ```
    pub fn connector(&self) -> &Arc<dyn Connector> {
        &self.connector
    }

    /// Connects to one address and completes the handshake, within the
    /// connect timeout.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(d: mq_conn::Dialer) {
    /// match d.connect("127.0.0.1:7878").await {
    ///     Ok(est) => println!("connected to {}", est.welcome.server_name),
    ///     Err(e) => eprintln!("{e}"),
    /// }
    /// # }
    /// ```
    pub fn connect(&self, address: &str) -> BoxFuture<'static, Result<Established, ConnectError>> {
        let d = self.clone();
        let address = address.to_owned();
        Box::pin(async move {
            let r = d.connect_one(&address).await;
            d.report(&r);
            r
        })
    }

    /// One round over `addresses` (see the type's docs): the first
    /// address that completes the handshake. When all fail: the last
    /// refusal, TLS or handshake error if any (a configuration problem
    /// worth reporting), else [`ConnectError::Unreachable`] with the last
    /// transport error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(d: mq_conn::Dialer) -> Result<(), mq_conn::ConnectError> {
    /// let est = d.connect_round(&["b1:7878".to_owned(), "b2:7878".to_owned()]).await?;
    /// println!("using {}", est.address);
    /// # Ok(()) }
    /// ```
    pub fn connect_round(
        &self,
        addresses: &[String],
    ) -> BoxFuture<'static, Result<Established, ConnectError>> {
        let d = self.clone();
        let addresses = addresses.to_vec();
        Box::pin(async move {
            let mut last: Option<ConnectError> = None;
            let mut last_io = io::Error::new(io::ErrorKind::NotFound, "no address configured");
            for address in &addresses {
                let r = d.connect_one(address).await;
                d.report(&r);
                match r {
                    Ok(est) => return Ok(est),
                    Err(ConnectError::Io { source, .. }) => last_io = source,
                    Err(ConnectError::Timeout { timeout, .. }) => {
                        last_io = io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("no Welcome within the connect timeout ({timeout:?})"),
                        );
                    }
                    Err(e) => last = Some(e),
                }
            }
            Err(last.unwrap_or(ConnectError::Unreachable {
                addresses,
                last: last_io,
            }))
        })
    }

    fn report(&self, r: &Result<Established, ConnectError>) {
        match r {
            Ok(est) => {
                tracing::debug!(address = %est.address, server = %est.welcome.server_name, "handshake complete");
                if let Some(ev) = &self.events {
                    ev.emit(ConnectionEvent::Connected {
                        address: est.address.clone(),
                    });
                }
            }
            Err(ConnectError::Refused {
                address,
                code,
                reason,
            }) => {
                tracing::warn!(%address, %code, %reason, "broker refused the handshake");
                if let Some(ev) = &self.events {
                    ev.emit(ConnectionEvent::Refused {
                        address: address.clone(),
                        code: *code,
                        reason: reason.clone(),
                    });
                }
            }
            Err(e @ (ConnectError::Tls { .. } | ConnectError::Handshake { .. })) => {
                tracing::warn!(error = %e, "connect failed");
            }
            Err(e) => tracing::debug!(error = %e, "connect failed"),
        }
    }

    async fn connect_one(&self, address: &str) -> Result<Established, ConnectError> {
        match tokio::time::timeout(self.timeout, self.handshake(address)).await {
            Ok(r) => r,
            Err(_) => Err(ConnectError::Timeout {
                address: address.to_owned(),
                timeout: self.timeout,
            }),
        }
    }

    async fn handshake(&self, address: &str) -> Result<Established, ConnectError> {
        let io_err = |e: io::Error| ConnectError::from_io(address, e);
        let bad = |reason: String| ConnectError::Handshake {
            address: address.to_owned(),
            reason,
        };
        let mut io = self.connector.connect(address).await.map_err(io_err)?;
        let mut buf = BytesMut::new();
        Frame::Hello((*self.hello).clone())
            .encode(&mut buf)
            .map_err(|e| bad(format!("cannot encode Hello: {e}")))?;
        let written = async {
            io.write_all(&buf).await?;
            io.flush().await
        }
        .await;
        if let Err(e) = written {
            // A TLS peer that refused us (e.g. no client certificate) may
            // have closed before our Hello went out; its alert, waiting to
            // be read, says why better than the broken pipe does.
            let mut probe = BytesMut::with_capacity(256);
            return Err(match io.read_buf(&mut probe).await {
                Err(r) if crate::tls::tls_cause(&r).is_some() => io_err(r),
                _ => io_err(e),
            });
        }
        buf.clear();
        let mut codec = Codec::new(self.max_frame_size);
        let frame = loop {
            match codec.decode(&mut buf) {
                Ok(Some(f)) => break f,
                Ok(None) => {}
                Err(e) => return Err(bad(e.to_string())),
            }
            let n = io.read_buf(&mut buf).await.map_err(io_err)?;
            if n == 0 {
                return Err(io_err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the broker closed the connection during the handshake",
                )));
            }
        };
        match frame {
            Frame::Welcome(w) if w.version == PROTOCOL_VERSION => Ok(Established {
                io,
                welcome: w,
                leftover: buf,
                address: address.to_owned(),
            }),
            Frame::Welcome(w) => Err(bad(format!(
                "broker chose protocol version {}, this client speaks {PROTOCOL_VERSION}",
                w.version
            ))),
            Frame::Refuse(r) => Err(ConnectError::Refused {
                address: address.to_owned(),
                code: r.code,
                reason: r.reason,
            }),
            Frame::Close(c) => Err(ConnectError::Refused {
                address: address.to_owned(),
                code: c.code,
                reason: c.reason,
            }),
            other => Err(bad(format!("expected Welcome, got {}", other.name()))),
        }
    }
}
