//! Certificates generated in the test (rcgen) and a raw tokio-rustls
//! client: a CA, a server certificate for `localhost` / 127.0.0.1, a client
//! certificate from the same CA, and one from an unrelated CA. Included by
//! path (`#[path = ".../certs.rs"] mod certs;`) by the TLS tests of
//! mq-broker and mq-mock-broker.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// A certificate and its key, in PEM.
#[derive(Clone)]
pub struct Pair {
    pub cert: String,
    pub key: String,
}

/// Everything a TLS test needs, in PEM.
pub struct Pki {
    /// The CA that signed `server` and `client`.
    pub ca: String,
    pub server: Pair,
    /// A client certificate signed by `ca`.
    pub client: Pair,
    /// A client certificate signed by another CA.
    pub stranger: Pair,
}

fn new_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key")).expect("CA")
}

fn leaf(issuer: &CertifiedIssuer<'static, KeyPair>, names: &[&str]) -> Pair {
    let key = KeyPair::generate().expect("key");
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let cert = CertificateParams::new(names)
        .expect("params")
        .signed_by(&key, issuer)
        .expect("sign");
    Pair {
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

/// A fresh CA with a server and a client certificate, and a stranger's.
pub fn pki() -> Pki {
    let ca = new_ca("mq test CA");
    let other = new_ca("someone else's CA");
    Pki {
        ca: ca.pem(),
        server: leaf(&ca, &["localhost", "127.0.0.1"]),
        client: leaf(&ca, &["client.test"]),
        stranger: leaf(&other, &["stranger.test"]),
    }
}

/// The files `from_pem_files` and the binaries read.
pub struct Files {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Pki {
    /// Writes the CA, the server certificate and its key into `dir`.
    pub fn write(&self, dir: &Path) -> Files {
        std::fs::create_dir_all(dir).expect("dir");
        let f = Files {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        };
        std::fs::write(&f.ca, &self.ca).expect("write ca");
        std::fs::write(&f.cert, &self.server.cert).expect("write cert");
        std::fs::write(&f.key, &self.server.key).expect("write key");
        f
    }

    /// A broker `TlsConfig` with this server certificate, verifying client
    /// certificates against the CA if `mutual`.
    pub fn server_config(&self, mutual: bool) -> mq_broker::TlsConfig {
        let ca = mutual.then_some(self.ca.as_bytes());
        mq_broker::TlsConfig::from_pem(self.server.cert.as_bytes(), self.server.key.as_bytes(), ca)
            .expect("server TLS config")
    }

    /// A client trusting this CA, presenting `cert` if given.
    pub fn client(&self, cert: Option<&Pair>) -> TlsConnector {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(self.ca.as_bytes()) {
            roots.add(c.expect("CA pem")).expect("CA root");
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots);
        let config = match cert {
            None => builder.with_no_client_auth(),
            Some(p) => {
                let chain = CertificateDer::pem_slice_iter(p.cert.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .expect("client cert");
                let key = PrivateKeyDer::from_pem_slice(p.key.as_bytes()).expect("client key");
                builder
                    .with_client_auth_cert(chain, key)
                    .expect("client auth")
            }
        };
        TlsConnector::from(Arc::new(config))
    }
}

/// Connects over TLS to `addr`, checking the certificate for `localhost`.
pub async fn connect(
    connector: &TlsConnector,
    addr: SocketAddr,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").expect("name");
    connector.connect(name, tcp).await
}
