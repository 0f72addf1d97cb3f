//! The HTTP server a site runs: validate, bind, serve until told to stop.

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{Config, Site, StartError};

/// A running server. Stops on [`Server::shutdown`], when dropped, or when
/// the `until` future given to [`Server::start`] completes.
///
/// # Examples
///
/// ```
/// # use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
/// # struct Demo;
/// # impl mq_admin_web::Site for Demo {
/// #     const PRODUCT: &'static str = "demo";
/// #     const NAV: &'static [(&'static str, &'static str)] = &[("/", "Home")];
/// #     const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7000));
/// #     const OPEN_READS_FLAG: &'static str = "--open-reads";
/// #     const TOKEN_HINT: &'static str = "";
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use mq_admin_web::{Config, Server};
/// let config = Config::<Demo>::default().listen(([127, 0, 0, 1], 0).into()).open_reads(true);
/// let server = Server::start(&config, axum::Router::new(), std::future::pending()).await?;
/// server.shutdown().await;
/// assert!(tokio::net::TcpStream::connect(server.addr()).await.is_err());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    stop: CancellationToken,
    task: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Server {
    /// Validates `config`, binds its address and serves `router` until
    /// [`Server::shutdown`], a drop, or `until` completes (for example the
    /// application stopping).
    ///
    /// # Errors
    ///
    /// [`StartError::Config`] or [`StartError::Bind`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing serves until it returns.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
    /// # struct Demo;
    /// # impl mq_admin_web::Site for Demo {
    /// #     const PRODUCT: &'static str = "demo";
    /// #     const NAV: &'static [(&'static str, &'static str)] = &[("/", "Home")];
    /// #     const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7000));
    /// #     const OPEN_READS_FLAG: &'static str = "--open-reads";
    /// #     const TOKEN_HINT: &'static str = "";
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use mq_admin_web::{Config, Server};
    /// let config = Config::<Demo>::default().listen(([127, 0, 0, 1], 0).into()).token("s3cret-token");
    /// let server = Server::start(&config, axum::Router::new(), std::future::pending()).await?;
    /// assert!(server.addr().ip().is_loopback());
    /// # Ok(()) }
    /// ```
    pub async fn start<S: Site>(
        config: &Config<S>,
        router: Router,
        until: impl Future<Output = ()> + Send + 'static,
    ) -> Result<Server, StartError> {
        config.validate()?;
        let bind_error = |source| StartError::Bind {
            addr: config.listen,
            source,
        };
        let listener = TcpListener::bind(config.listen).await.map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        let stop = CancellationToken::new();
        let done = {
            let stop = stop.clone();
            async move {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = until => stop.cancel(),
                }
            }
        };
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router)
                .with_graceful_shutdown(done)
                .await
            {
                tracing::warn!(site = S::PRODUCT, error = %e, "admin web server stopped");
            }
        });
        tracing::info!(site = S::PRODUCT, %addr, open_reads = config.open_reads, "admin web server listening");
        Ok(Server {
            addr,
            stop,
            task: tokio::sync::Mutex::new(Some(task)),
        })
    }

    /// The bound address (the real port when `listen` had port 0).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
    /// # struct Demo;
    /// # impl mq_admin_web::Site for Demo {
    /// #     const PRODUCT: &'static str = "demo";
    /// #     const NAV: &'static [(&'static str, &'static str)] = &[("/", "Home")];
    /// #     const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7000));
    /// #     const OPEN_READS_FLAG: &'static str = "--open-reads";
    /// #     const TOKEN_HINT: &'static str = "";
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use mq_admin_web::{Config, Server};
    /// # let config = Config::<Demo>::default().listen(([127, 0, 0, 1], 0).into()).open_reads(true);
    /// let server = Server::start(&config, axum::Router::new(), std::future::pending()).await?;
    /// assert_ne!(server.addr().port(), 0);
    /// # Ok(()) }
    /// ```
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A token cancelled when the server stops, for the site's own
    /// background tasks (a sampler, say) to stop with it.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
    /// # struct Demo;
    /// # impl mq_admin_web::Site for Demo {
    /// #     const PRODUCT: &'static str = "demo";
    /// #     const NAV: &'static [(&'static str, &'static str)] = &[("/", "Home")];
    /// #     const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7000));
    /// #     const OPEN_READS_FLAG: &'static str = "--open-reads";
    /// #     const TOKEN_HINT: &'static str = "";
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use mq_admin_web::{Config, Server};
    /// # let config = Config::<Demo>::default().listen(([127, 0, 0, 1], 0).into()).open_reads(true);
    /// let server = Server::start(&config, axum::Router::new(), std::future::pending()).await?;
    /// let stopping = server.stopping();
    /// server.shutdown().await;
    /// assert!(stopping.is_cancelled());
    /// # Ok(()) }
    /// ```
    pub fn stopping(&self) -> CancellationToken {
        self.stop.child_token()
    }

    /// Stops serving; requests in progress finish first.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the server stops either way.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
    /// # struct Demo;
    /// # impl mq_admin_web::Site for Demo {
    /// #     const PRODUCT: &'static str = "demo";
    /// #     const NAV: &'static [(&'static str, &'static str)] = &[("/", "Home")];
    /// #     const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7000));
    /// #     const OPEN_READS_FLAG: &'static str = "--open-reads";
    /// #     const TOKEN_HINT: &'static str = "";
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use mq_admin_web::{Config, Server};
    /// # let config = Config::<Demo>::default().listen(([127, 0, 0, 1], 0).into()).open_reads(true);
    /// let server = Server::start(&config, axum::Router::new(), std::future::pending()).await?;
    /// server.shutdown().await;
    /// assert!(tokio::net::TcpStream::connect(server.addr()).await.is_err());
    /// # Ok(()) }
    /// ```
    pub async fn shutdown(&self) {
        self.stop.cancel();
        if let Some(task) = self.task.lock().await.take() {
            let _ = task.await;
        }
    }
}
