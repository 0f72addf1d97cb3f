//! TLS on the broker's listener: the server certificate and key, optional
//! client-certificate verification (mutual TLS) and the per-connection
//! handshake.
//!
//! rustls with the `ring` provider, TLS 1.2 and 1.3, no ALPN. The handshake
//! of each accepted connection runs in that connection's own task, bounded
//! by `BrokerConfig::handshake_timeout`, so a peer that never finishes it
//! holds nothing but its own socket; a failed handshake is logged, counted
//! (`BrokerStats::tls_handshake_failures`) and closes that connection only.
//! The protocol's own handshake (`Hello` within `handshake_timeout`) starts
//! after it.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::ConfigError;

/// TLS for a broker (or a JetStream gateway): where its TLS listener
/// binds, its certificate, whether clients must present a certificate, and
/// whether the plaintext listener is kept.
///
/// Build one from PEM files ([`TlsConfig::from_pem_files`]), PEM bytes
/// ([`TlsConfig::from_pem`]) or a ready rustls `ServerConfig`
/// ([`TlsConfig::from_server_config`]), and set it as
/// `BrokerConfig::tls`.
///
/// # Examples
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use mq_broker::{Broker, BrokerConfig, TlsConfig};
///
/// let tls = TlsConfig::from_pem_files("server.pem", "server.key", Some("clients-ca.pem".as_ref()))?
///     .listen("0.0.0.0:7443".parse()?)
///     .tls_only(true);
/// let broker = Broker::start(BrokerConfig { tls: Some(tls), ..Default::default() }).await?;
/// println!("TLS on {:?}", broker.tls_addr());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TlsConfig {
    listen: SocketAddr,
    tls_only: bool,
    client_auth: bool,
    server: Arc<ServerConfig>,
}

impl fmt::Debug for TlsConfig {
    /// Where it listens and what it requires; never the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("listen", &self.listen)
            .field("tls_only", &self.tls_only)
            .field("client_auth", &self.client_auth)
            .finish_non_exhaustive()
    }
}

/// What a PEM input is, for error messages.
const CERT: &str = "TLS certificate";
const KEY: &str = "TLS private key";
const CLIENT_CA: &str = "TLS client CA";

fn err(what: &'static str, file: Option<&Path>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Tls {
        what,
        file: file.map(Path::to_path_buf),
        reason: reason.into(),
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| err(what, Some(path), format!("cannot read it: {e}")))
}

fn certs(
    what: &'static str,
    file: Option<&Path>,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(what, file, format!("not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(err(
            what,
            file,
            "no certificate in it (expected a PEM block BEGIN CERTIFICATE)",
        ));
    }
    Ok(certs)
}

impl TlsConfig {
    /// Reads the server's certificate chain (PEM, leaf first), its private
    /// key (PEM: PKCS#8, PKCS#1 or SEC1) and, for mutual TLS, the CA
    /// certificates (PEM) a client's certificate must chain to. With a
    /// client CA, a client without a valid certificate is refused during
    /// the TLS handshake. Listens on `127.0.0.1:0` next to the plaintext
    /// listener until told otherwise ([`TlsConfig::listen`],
    /// [`TlsConfig::tls_only`]).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Tls`] naming the file and what is wrong with it
    /// (unreadable, no certificate or key in it, a key that does not match
    /// the certificate).
    ///
    /// # Examples
    ///
    /// ```
    /// let e = mq_broker::TlsConfig::from_pem_files("/no/such.pem", "/no/such.key", None).unwrap_err();
    /// assert!(e.to_string().contains("/no/such.pem"), "{e}");
    /// ```
    pub fn from_pem_files(
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
        client_ca: Option<&Path>,
    ) -> Result<TlsConfig, ConfigError> {
        let (cert, key) = (cert.as_ref(), key.as_ref());
        let cert_pem = read(CERT, cert)?;
        let key_pem = read(KEY, key)?;
        let ca_pem = client_ca.map(|p| read(CLIENT_CA, p)).transpose()?;
        build(
            (Some(cert), &cert_pem),
            (Some(key), &key_pem),
            ca_pem.as_deref().map(|pem| (client_ca, pem)),
        )
    }

    /// As [`TlsConfig::from_pem_files`], from PEM text in memory (errors
    /// name no file).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Tls`] saying which input is wrong and why.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = mq_broker::TlsConfig::from_pem(b"", b"", None).unwrap_err();
    /// assert!(e.to_string().contains("no certificate"), "{e}");
    /// ```
    pub fn from_pem(
        cert_pem: &[u8],
        key_pem: &[u8],
        client_ca_pem: Option<&[u8]>,
    ) -> Result<TlsConfig, ConfigError> {
        build(
            (None, cert_pem),
            (None, key_pem),
            client_ca_pem.map(|pem| (None, pem)),
        )
    }

    /// Uses a rustls `ServerConfig` built by the caller (another crypto
    /// provider, a certificate resolver, ALPN). `client_auth` is what
    /// [`TlsConfig::requires_client_cert`] reports; it does not change
    /// `server`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn f(server: std::sync::Arc<rustls::ServerConfig>) {
    /// let tls = mq_broker::TlsConfig::from_server_config(server, false);
    /// # let _ = tls; }
    /// ```
    pub fn from_server_config(server: Arc<ServerConfig>, client_auth: bool) -> TlsConfig {
        TlsConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            tls_only: false,
            client_auth,
            server,
        }
    }

    /// Sets the TLS listener's address (default `127.0.0.1:0`, an
    /// ephemeral port: read it back with `Broker::tls_addr`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn f(tls: mq_broker::TlsConfig) {
    /// let tls = tls.listen("0.0.0.0:7443".parse().unwrap());
    /// # let _ = tls; }
    /// ```
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// TLS only: no plaintext listener (`BrokerConfig::listen` is then
    /// unused). Default `false`: both listeners.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn f(tls: mq_broker::TlsConfig) {
    /// assert!(tls.tls_only(true).is_tls_only());
    /// # }
    /// ```
    pub fn tls_only(mut self, only: bool) -> Self {
        self.tls_only = only;
        self
    }

    /// The TLS listener's configured address.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn f(tls: mq_broker::TlsConfig) {
    /// println!("{}", tls.listen_addr());
    /// # }
    /// ```
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    /// True if the plaintext listener is off.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn f(tls: mq_broker::TlsConfig) {
    /// assert!(!tls.tls_only(false).is_tls_only());
    /// # }
    /// ```
    pub fn is_tls_only(&self) -> bool {
        self.tls_only
    }

    /// True if clients must present a certificate signed by the client CA.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn f(tls: mq_broker::TlsConfig) {
    /// if tls.requires_client_cert() { println!("mutual TLS"); }
    /// # }
    /// ```
    pub fn requires_client_cert(&self) -> bool {
        self.client_auth
    }

    /// The acceptor every TLS connection is handshaken with.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.server.clone())
    }
}

type Input<'a> = (Option<&'a Path>, &'a [u8]);

fn build(
    (cert_file, cert_pem): Input<'_>,
    (key_file, key_pem): Input<'_>,
    client_ca: Option<Input<'_>>,
) -> Result<TlsConfig, ConfigError> {
    let chain = certs(CERT, cert_file, cert_pem)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
        let why = match e {
            rustls_pki_types::pem::Error::NoItemsFound => {
                "no private key in it (expected a PEM block BEGIN PRIVATE KEY, \
                 BEGIN RSA PRIVATE KEY or BEGIN EC PRIVATE KEY)"
                    .to_owned()
            }
            other => format!("not a valid PEM private key: {other}"),
        };
        err(KEY, key_file, why)
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| err(CERT, cert_file, format!("rustls: {e}")))?;
    let client_auth = client_ca.is_some();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some((ca_file, ca_pem)) => {
            let mut roots = RootCertStore::empty();
            for c in certs(CLIENT_CA, ca_file, ca_pem)? {
                roots.add(c).map_err(|e| {
                    err(
                        CLIENT_CA,
                        ca_file,
                        format!("not a usable CA certificate: {e}"),
                    )
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| err(CLIENT_CA, ca_file, format!("cannot verify with it: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let server = builder.with_single_cert(chain, key).map_err(|e| {
        let why = match key_file {
            Some(k) => format!(
                "does not go with the key in {} (or either is unusable): {e}",
                k.display()
            ),
            None => format!("does not go with the key (or either is unusable): {e}"),
        };
        err(CERT, cert_file, why)
    })?;
    Ok(TlsConfig {
        listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        tls_only: false,
        client_auth,
        server: Arc::new(server),
    })
}

/// Runs the TLS handshake of one accepted connection, within `limit`.
/// On failure `failed` gets the reason (the peer's or rustls's, or the
/// timeout) before the socket is closed, so the failure is counted by the
/// time the peer sees the connection end.
pub(crate) async fn handshake(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
    limit: Duration,
    failed: impl FnOnce(String),
) -> Option<TlsStream<TcpStream>> {
    let accept = acceptor.accept(tcp).into_fallible();
    tokio::pin!(accept);
    tokio::select! {
        r = &mut accept => match r {
            Ok(tls) => Some(tls),
            Err((e, tcp)) => {
                failed(e.to_string());
                drop(tcp);
                None
            }
        },
        _ = tokio::time::sleep(limit) => {
            failed(format!("TLS handshake not finished within {} ms", limit.as_millis()));
            None // the socket closes with `accept`
        }
    }
}

/// The file a [`ConfigError::Tls`] names, for display.
pub(crate) fn file_suffix(file: &Option<PathBuf>) -> String {
    file.as_ref()
        .map(|f| format!(" {}", f.display()))
        .unwrap_or_default()
}
