//! TLS over any [`Connector`]: rustls (the `ring` provider) via tokio-rustls.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::{BoxIo, Connector, SharedConnector, TcpConnector};

/// Why a [`TlsConfig`] could not be built. Each message says what to change.
///
/// # Examples
///
/// ```
/// let err = mq_conn::TlsConfig::with_ca_pem(b"not a certificate").unwrap_err();
/// assert!(err.to_string().contains("BEGIN CERTIFICATE"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// A file could not be read: fix the path or its permissions.
    #[error("cannot read {what} file {path}: {source}")]
    Read {
        /// What the file should hold ("CA certificate", "client key", ...).
        what: &'static str,
        /// The path given.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The PEM text is malformed: give a PEM file as written by openssl or
    /// rcgen.
    #[error("{what} is not valid PEM ({source}); give a PEM file with -----BEGIN ...----- blocks")]
    Pem {
        /// What the PEM should hold.
        what: &'static str,
        /// The parser's complaint.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// The PEM holds no certificate: give a file with at least one
    /// `-----BEGIN CERTIFICATE-----` block.
    #[error("no certificate found in {what}; give PEM with at least one -----BEGIN CERTIFICATE----- block")]
    NoCertificate {
        /// What the PEM should hold.
        what: &'static str,
    },
    /// The PEM holds no private key: give a PKCS#8, PKCS#1 or SEC1 key
    /// (`-----BEGIN PRIVATE KEY-----` and friends).
    #[error("no private key found in {what}; give PEM with a -----BEGIN PRIVATE KEY----- (or RSA/EC PRIVATE KEY) block")]
    NoPrivateKey {
        /// What the PEM should hold.
        what: &'static str,
    },
    /// A CA certificate was rejected as a trust anchor: give a valid X.509
    /// CA certificate.
    #[error("CA certificate rejected as a trust anchor: {0}; give a valid X.509 CA certificate")]
    BadCa(#[source] rustls::Error),
    /// The operating system's certificate store gave no usable root: install
    /// CA certificates (e.g. the `ca-certificates` package) or give a CA
    /// with [`TlsConfig::with_ca_pem`].
    #[error("no usable root certificate in the system store ({errors}); install CA certificates or give a CA with TlsConfig::with_ca_pem")]
    NoSystemRoots {
        /// The loader's errors, joined.
        errors: String,
    },
    /// The server-name override is neither a DNS name nor an IP address.
    #[error("server name {0:?} is neither a DNS name nor an IP address")]
    ServerName(String),
    /// rustls refused the configuration (e.g. a client key that does not
    /// match its certificate).
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[source] rustls::Error),
}

/// Where the server's certificate chain must lead.
#[derive(Clone)]
enum Roots {
    System,
    Ca(Vec<CertificateDer<'static>>),
}

/// What a client needs for TLS: whom to trust, optionally a client
/// certificate (mutual TLS), optionally the name to verify.
///
/// `Debug` never prints the client key.
///
/// # Examples
///
/// ```no_run
/// # fn f() -> Result<(), mq_conn::TlsConfigError> {
/// use mq_conn::TlsConfig;
/// // The system's roots:
/// let public = TlsConfig::system_roots();
/// // A private CA, a client certificate, and the name in the broker's certificate:
/// let private = TlsConfig::with_ca_pem_file("ca.pem")?
///     .client_cert_files("client.pem", "client-key.pem")?
///     .server_name("broker.internal")?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TlsConfig {
    roots: Roots,
    client: Option<(Vec<CertificateDer<'static>>, Arc<PrivateKeyDer<'static>>)>,
    server_name: Option<ServerName<'static>>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let roots = match &self.roots {
            Roots::System => "system".to_owned(),
            Roots::Ca(c) => format!("{} CA certificate(s)", c.len()),
        };
        f.debug_struct("TlsConfig")
            .field("roots", &roots)
            .field(
                "client_cert",
                &self
                    .client
                    .as_ref()
                    .map(|_| "<certificate and redacted key>"),
            )
            .field("server_name", &self.server_name)
            .finish()
    }
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsConfigError> {
    std::fs::read(path).map_err(|source| TlsConfigError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

fn parse_certs(
    what: &'static str,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsConfigError::Pem { what, source })?;
    if certs.is_empty() {
        return Err(TlsConfigError::NoCertificate { what });
    }
    Ok(certs)
}

fn parse_key(what: &'static str, pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    match PrivateKeyDer::from_pem_slice(pem) {
        Ok(k) => Ok(k),
        Err(rustls_pki_types::pem::Error::NoItemsFound) => {
            Err(TlsConfigError::NoPrivateKey { what })
        }
        Err(source) => Err(TlsConfigError::Pem { what, source }),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsConfig {
    /// Trust the operating system's root certificates (loaded when the
    /// connector is built, by [`TlsConnector::new`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let tls = mq_conn::TlsConfig::system_roots();
    /// # drop(tls);
    /// ```
    pub fn system_roots() -> Self {
        Self {
            roots: Roots::System,
            client: None,
            server_name: None,
        }
    }

    /// Trust the CA certificate(s) in this PEM text (and nothing else).
    ///
    /// # Examples
    ///
    /// ```
    /// let err = mq_conn::TlsConfig::with_ca_pem(b"").unwrap_err();
    /// assert!(matches!(err, mq_conn::TlsConfigError::NoCertificate { .. }));
    /// ```
    pub fn with_ca_pem(pem: &[u8]) -> Result<Self, TlsConfigError> {
        let certs = parse_certs("the CA certificate PEM", pem)?;
        // Fail now rather than at the first connect.
        let mut store = RootCertStore::empty();
        for c in &certs {
            store.add(c.clone()).map_err(TlsConfigError::BadCa)?;
        }
        Ok(Self {
            roots: Roots::Ca(certs),
            client: None,
            server_name: None,
        })
    }

    /// Trust the CA certificate(s) in this PEM file.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = mq_conn::TlsConfig::with_ca_pem_file("/no/such/ca.pem").unwrap_err();
    /// assert!(err.to_string().contains("/no/such/ca.pem"));
    /// ```
    pub fn with_ca_pem_file(path: impl AsRef<Path>) -> Result<Self, TlsConfigError> {
        Self::with_ca_pem(&read_file("CA certificate", path.as_ref())?)
    }

    /// Present this certificate chain and key (PEM) to the broker: mutual
    /// TLS.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = mq_conn::TlsConfig::system_roots()
    ///     .client_cert_pem(b"garbage", b"garbage")
    ///     .unwrap_err();
    /// println!("{err}");
    /// ```
    pub fn client_cert_pem(
        mut self,
        cert_pem: &[u8],
        key_pem: &[u8],
    ) -> Result<Self, TlsConfigError> {
        let certs = parse_certs("the client certificate PEM", cert_pem)?;
        let key = parse_key("the client key PEM", key_pem)?;
        self.client = Some((certs, Arc::new(key)));
        Ok(self)
    }

    /// Like [`TlsConfig::client_cert_pem`], reading both from files.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = mq_conn::TlsConfig::system_roots()
    ///     .client_cert_files("/no/cert.pem", "/no/key.pem")
    ///     .unwrap_err();
    /// assert!(err.to_string().contains("client certificate"));
    /// ```
    pub fn client_cert_files(
        self,
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, TlsConfigError> {
        let c = read_file("client certificate", cert.as_ref())?;
        let k = read_file("client key", key.as_ref())?;
        self.client_cert_pem(&c, &k)
    }

    /// Verify the broker's certificate against this name instead of the
    /// host part of the address (useful when connecting by IP to a broker
    /// whose certificate names a host).
    ///
    /// # Examples
    ///
    /// ```
    /// let tls = mq_conn::TlsConfig::system_roots().server_name("broker.internal").unwrap();
    /// assert!(mq_conn::TlsConfig::system_roots().server_name("not a name!").is_err());
    /// # drop(tls);
    /// ```
    pub fn server_name(mut self, name: &str) -> Result<Self, TlsConfigError> {
        let n = ServerName::try_from(name.to_owned())
            .map_err(|_| TlsConfigError::ServerName(name.to_owned()))?;
        self.server_name = Some(n);
        Ok(self)
    }

    /// The rustls client configuration (ring provider, safe default
    /// protocol versions).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn f(tls: mq_conn::TlsConfig) -> Result<(), mq_conn::TlsConfigError> {
    /// let rustls_config = tls.client_config()?;
    /// # drop(rustls_config); Ok(()) }
    /// ```
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TlsConfigError> {
        let mut store = RootCertStore::empty();
        match &self.roots {
            Roots::Ca(certs) => {
                for c in certs {
                    store.add(c.clone()).map_err(TlsConfigError::BadCa)?;
                }
            }
            Roots::System => {
                let loaded = rustls_native_certs::load_native_certs();
                let (added, _ignored) = store.add_parsable_certificates(loaded.certs);
                if added == 0 {
                    let errors = loaded
                        .errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ");
                    return Err(TlsConfigError::NoSystemRoots { errors });
                }
            }
        }
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(TlsConfigError::Rustls)?
            .with_root_certificates(store);
        let config = match &self.client {
            Some((certs, key)) => builder
                .with_client_auth_cert(certs.clone(), key.clone_key())
                .map_err(TlsConfigError::Rustls)?,
            None => builder.with_no_client_auth(),
        };
        Ok(Arc::new(config))
    }
}

/// The host part of `host:port`, `[v6]:port`, or the whole address when it
/// has no port.
pub(crate) fn host_of(address: &str) -> &str {
    if let Some(rest) = address.strip_prefix('[') {
        if let Some(end) = rest.find(']') {
            return &rest[..end];
        }
    }
    match address.rsplit_once(':') {
        // A bare IPv6 address has several colons and no port.
        Some((host, _)) if !host.contains(':') => host,
        _ => address,
    }
}

/// A TLS error from a rustls stream, if `e` wraps one: what a failed
/// handshake (ours or the server's alert) looks like through tokio-rustls.
pub(crate) fn tls_cause(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref().and_then(|r| r.downcast_ref::<rustls::Error>())
}

/// TLS over an inner connector (TCP by default). The server name checked is
/// the [`TlsConfig::server_name`] override, else the host part of the
/// address.
///
/// A handshake failure (unknown CA, a name mismatch, the server's alert
/// for a missing client certificate) comes back as an `io::Error` wrapping
/// the [`rustls::Error`]; [`crate::Dialer`] turns it into
/// [`crate::ConnectError::Tls`].
///
/// # Examples
///
/// ```no_run
/// # fn f() -> Result<(), mq_conn::TlsConfigError> {
/// use std::sync::Arc;
/// use mq_conn::{Dialer, TlsConfig, TlsConnector};
/// use mq_protocol::{Hello, Role};
/// let tls = TlsConnector::new(&TlsConfig::with_ca_pem_file("ca.pem")?)?;
/// let dialer = Dialer::new(Arc::new(tls), Hello::new(Role::Sender, "me"));
/// # drop(dialer); Ok(()) }
/// ```
#[derive(Clone)]
pub struct TlsConnector<C = TcpConnector> {
    inner: C,
    tls: tokio_rustls::TlsConnector,
    server_name: Option<ServerName<'static>>,
}

impl<C> fmt::Debug for TlsConnector<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnector")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl TlsConnector<TcpConnector> {
    /// TLS over TCP.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn f() -> Result<(), mq_conn::TlsConfigError> {
    /// let c = mq_conn::TlsConnector::new(&mq_conn::TlsConfig::system_roots())?;
    /// # drop(c); Ok(()) }
    /// ```
    pub fn new(config: &TlsConfig) -> Result<Self, TlsConfigError> {
        Self::with_inner(TcpConnector::new(), config)
    }
}

impl<C: Connector> TlsConnector<C> {
    /// TLS over another transport.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn f() -> Result<(), mq_conn::TlsConfigError> {
    /// use mq_conn::{TcpConnector, TlsConfig, TlsConnector};
    /// let c = TlsConnector::with_inner(TcpConnector::new(), &TlsConfig::system_roots())?;
    /// # drop(c); Ok(()) }
    /// ```
    pub fn with_inner(inner: C, config: &TlsConfig) -> Result<Self, TlsConfigError> {
        Ok(Self {
            inner,
            tls: tokio_rustls::TlsConnector::from(config.client_config()?),
            server_name: config.server_name.clone(),
        })
    }
}

impl<C: Connector> Connector for TlsConnector<C> {
    fn connect(&self, address: &str) -> BoxFuture<'static, io::Result<BoxIo>> {
        let name = match &self.server_name {
            Some(n) => Ok(n.clone()),
            None => ServerName::try_from(host_of(address).to_owned()).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "{address:?} has no valid host name to verify; set TlsConfig::server_name"
                    ),
                )
            }),
        };
        let inner = self.inner.connect(address);
        let tls = self.tls.clone();
        Box::pin(async move {
            let name = name?;
            let io = inner.await?;
            let s = tls.connect(name, io).await?;
            Ok(Box::new(s) as BoxIo)
        })
    }
}

/// The transport a client dials with: `connector` (plain TCP when `None`),
/// with TLS on top when `tls` is given. What both clients' builders do
/// with their `.connector(..)` and `.tls(..)` settings.
///
/// # Errors
///
/// [`TlsConfigError`] when the TLS settings cannot make a client config.
///
/// # Examples
///
/// ```
/// let plain = mq_conn::client_transport(None, None)?;
/// # drop(plain);
/// # Ok::<(), mq_conn::TlsConfigError>(())
/// ```
pub fn client_transport(
    connector: Option<SharedConnector>,
    tls: Option<&TlsConfig>,
) -> Result<SharedConnector, TlsConfigError> {
    let base: SharedConnector = connector.unwrap_or_else(|| Arc::new(TcpConnector::new()));
    Ok(match tls {
        Some(tls) => Arc::new(TlsConnector::with_inner(base, tls)?),
        None => base,
    })
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn host_part_of_addresses() {
        assert_eq!(host_of("localhost:7878"), "localhost");
        assert_eq!(host_of("10.0.0.1:1"), "10.0.0.1");
        assert_eq!(host_of("[::1]:7878"), "::1");
        assert_eq!(host_of("::1"), "::1");
        assert_eq!(host_of("broker"), "broker");
    }
}
