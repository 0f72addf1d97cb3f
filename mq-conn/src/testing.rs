//! Test support (feature `testing`): certificates generated with rcgen.
//! Not part of the stable API.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::{TlsConfig, TlsConfigError};

/// A throw-away PKI: a CA, a server certificate for `localhost` and
/// `127.0.0.1`, and a client certificate, all as PEM.
///
/// # Examples
///
/// ```
/// let pki = mq_conn::testing::TestPki::generate().unwrap();
/// let server = pki.server_config(true).unwrap(); // requires a client certificate
/// let client = pki.client_tls_with_cert().unwrap();
/// # drop((server, client));
/// ```
#[derive(Debug, Clone)]
pub struct TestPki {
    /// The CA certificate.
    pub ca_pem: String,
    /// The server certificate (SANs `localhost`, `127.0.0.1`), signed by the CA.
    pub server_cert_pem: String,
    /// The server's private key.
    pub server_key_pem: String,
    /// A client certificate (SAN `client`), signed by the CA.
    pub client_cert_pem: String,
    /// The client's private key.
    pub client_key_pem: String,
}

fn leaf(
    names: &[&str],
    issuer: &CertifiedIssuer<'_, KeyPair>,
) -> Result<(String, String), rcgen::Error> {
    let key = KeyPair::generate()?;
    let params = CertificateParams::new(names.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())?;
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

impl TestPki {
    /// Generates a fresh PKI.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = mq_conn::testing::TestPki::generate().unwrap();
    /// let b = mq_conn::testing::TestPki::generate().unwrap();
    /// assert_ne!(a.ca_pem, b.ca_pem);
    /// ```
    pub fn generate() -> Result<Self, rcgen::Error> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            // A distinct name per PKI: two test CAs must not look like the
            // same issuer (else a wrong CA shows as a bad signature).
            .push(
                rcgen::DnType::CommonName,
                format!("mq test CA {:016x}", rand::random::<u64>()),
            );
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
        let (server_cert_pem, server_key_pem) = leaf(&["localhost", "127.0.0.1"], &ca)?;
        let (client_cert_pem, client_key_pem) = leaf(&["client"], &ca)?;
        Ok(Self {
            ca_pem: ca.pem(),
            server_cert_pem,
            server_key_pem,
            client_cert_pem,
            client_key_pem,
        })
    }

    /// A client config trusting this CA, without a client certificate.
    ///
    /// # Examples
    ///
    /// ```
    /// let tls = mq_conn::testing::TestPki::generate().unwrap().client_tls().unwrap();
    /// # drop(tls);
    /// ```
    pub fn client_tls(&self) -> Result<TlsConfig, TlsConfigError> {
        TlsConfig::with_ca_pem(self.ca_pem.as_bytes())
    }

    /// A client config trusting this CA and presenting the client
    /// certificate.
    ///
    /// # Examples
    ///
    /// ```
    /// let tls = mq_conn::testing::TestPki::generate().unwrap().client_tls_with_cert().unwrap();
    /// # drop(tls);
    /// ```
    pub fn client_tls_with_cert(&self) -> Result<TlsConfig, TlsConfigError> {
        self.client_tls()?.client_cert_pem(
            self.client_cert_pem.as_bytes(),
            self.client_key_pem.as_bytes(),
        )
    }

    /// A rustls server config (ring provider) with the server certificate;
    /// with `require_client_cert`, clients must present a certificate
    /// signed by the CA.
    ///
    /// # Examples
    ///
    /// ```
    /// let pki = mq_conn::testing::TestPki::generate().unwrap();
    /// let acceptor = tokio_rustls::TlsAcceptor::from(pki.server_config(false).unwrap());
    /// # drop(acceptor);
    /// ```
    pub fn server_config(
        &self,
        require_client_cert: bool,
    ) -> Result<Arc<rustls::ServerConfig>, TlsConfigError> {
        let pem = |what, e| TlsConfigError::Pem { what, source: e };
        let certs = CertificateDer::pem_slice_iter(self.server_cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem("the server certificate", e))?;
        let key = PrivateKeyDer::from_pem_slice(self.server_key_pem.as_bytes())
            .map_err(|e| pem("the server key", e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(TlsConfigError::Rustls)?;
        let builder = if require_client_cert {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
                roots
                    .add(c.map_err(|e| pem("the CA certificate", e))?)
                    .map_err(TlsConfigError::BadCa)?;
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .map_err(|e| TlsConfigError::Rustls(rustls::Error::General(e.to_string())))?;
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let config = builder
            .with_single_cert(certs, key)
            .map_err(TlsConfigError::Rustls)?;
        Ok(Arc::new(config))
    }
}
