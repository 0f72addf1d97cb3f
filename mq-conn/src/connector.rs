//! Transports: the [`Connector`] trait, plain TCP, and closures as connectors.

use std::future::Future;
use std::io;
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite};

/// A byte stream to a broker: anything readable and writable, sendable
/// between threads. Implemented for every such type.
///
/// # Examples
///
/// ```
/// use mq_conn::{BoxIo, Io};
/// let (a, _b) = tokio::io::duplex(64);
/// let io: BoxIo = Box::new(a);
/// fn takes_io(_: &dyn Io) {}
/// takes_io(&*io);
/// ```
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A boxed byte stream, what a [`Connector`] returns.
///
/// # Examples
///
/// ```
/// let (a, _b) = tokio::io::duplex(64);
/// let io: mq_conn::BoxIo = Box::new(a);
/// # drop(io);
/// ```
pub type BoxIo = Box<dyn Io>;

/// A connector shared between a client and its driver.
///
/// # Examples
///
/// ```
/// use mq_conn::{SharedConnector, TcpConnector};
/// let c: SharedConnector = std::sync::Arc::new(TcpConnector::new());
/// # drop(c);
/// ```
pub type SharedConnector = Arc<dyn Connector>;

/// Opens a byte stream to an address (`host:port` for TCP and TLS; whatever
/// the implementation understands otherwise). Object safe: clients hold an
/// `Arc<dyn Connector>`.
///
/// The handshake, heartbeats and reconnects run on top of whatever stream
/// this returns, so a custom transport is all it takes to speak the
/// protocol over something other than TCP.
///
/// # Examples
///
/// A Unix-socket transport (the address is a path):
///
/// ```no_run
/// # #[cfg(unix)] {
/// use futures::future::BoxFuture;
/// use mq_conn::{BoxIo, Connector};
///
/// struct UnixConnector;
///
/// impl Connector for UnixConnector {
///     fn connect(&self, address: &str) -> BoxFuture<'static, std::io::Result<BoxIo>> {
///         let path = address.to_owned();
///         Box::pin(async move {
///             let s = tokio::net::UnixStream::connect(path).await?;
///             Ok(Box::new(s) as BoxIo)
///         })
///     }
/// }
///
/// let dialer = mq_conn::Dialer::new(
///     std::sync::Arc::new(UnixConnector),
///     mq_protocol::Hello::new(mq_protocol::Role::Sender, "me"),
/// );
/// # drop(dialer);
/// # }
/// ```
pub trait Connector: Send + Sync + 'static {
    /// Opens a stream to `address`. The future owns what it needs (it is
    /// `'static`), so a driver can keep it across turns of its loop.
    fn connect(&self, address: &str) -> BoxFuture<'static, io::Result<BoxIo>>;
}

impl<C: Connector + ?Sized> Connector for Arc<C> {
    fn connect(&self, address: &str) -> BoxFuture<'static, io::Result<BoxIo>> {
        (**self).connect(address)
    }
}

impl<C: Connector + ?Sized> Connector for Box<C> {
    fn connect(&self, address: &str) -> BoxFuture<'static, io::Result<BoxIo>> {
        (**self).connect(address)
    }
}

/// Plain TCP with Nagle's algorithm off (the clients coalesce writes
/// themselves). The default transport.
///
/// # Examples
///
/// ```no_run
/// # async fn f() -> std::io::Result<()> {
/// use mq_conn::{Connector, TcpConnector};
/// let io = TcpConnector::new().connect("127.0.0.1:7878").await?;
/// # drop(io); Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpConnector {
    _private: (),
}

impl TcpConnector {
    /// A TCP connector.
    ///
    /// # Examples
    ///
    /// ```
    /// let c = mq_conn::TcpConnector::new();
    /// # drop(c);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }
}

impl Connector for TcpConnector {
    fn connect(&self, address: &str) -> BoxFuture<'static, io::Result<BoxIo>> {
        let address = address.to_owned();
        Box::pin(async move {
            let s = tokio::net::TcpStream::connect(address).await?;
            s.set_nodelay(true)?;
            Ok(Box::new(s) as BoxIo)
        })
    }
}

/// A connector made from a closure `Fn(String) -> impl Future<Output =
/// io::Result<BoxIo>>`; see [`from_fn`].
///
/// # Examples
///
/// ```
/// let c = mq_conn::from_fn(|_addr: String| async {
///     let (a, _b) = tokio::io::duplex(64);
///     Ok(Box::new(a) as mq_conn::BoxIo)
/// });
/// # drop(c);
/// ```
#[derive(Clone)]
pub struct FnConnector<F> {
    f: F,
}

impl<F> std::fmt::Debug for FnConnector<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnConnector").finish_non_exhaustive()
    }
}

/// Turns a closure into a [`Connector`] (handy for tests with in-memory
/// pipes, or a transport that needs no state).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use mq_conn::{BoxIo, Connector};
/// let c = mq_conn::from_fn(|addr: String| async move {
///     assert_eq!(addr, "pipe");
///     let (a, _b) = tokio::io::duplex(64);
///     Ok(Box::new(a) as BoxIo)
/// });
/// assert!(c.connect("pipe").await.is_ok());
/// # }
/// ```
pub fn from_fn<F, Fut>(f: F) -> FnConnector<F>
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = io::Result<BoxIo>> + Send + 'static,
{
    FnConnector { f }
}

impl<F, Fut> Connector for FnConnector<F>
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = io::Result<BoxIo>> + Send + 'static,
{
    fn connect(&self, address: &str) -> BoxFuture<'static, io::Result<BoxIo>> {
        Box::pin((self.f)(address.to_owned()))
    }
}
