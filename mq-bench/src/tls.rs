//! TLS for the `--transport tls` runs: one CA and one server certificate
//! per bench process (rcgen, through mq-conn's test PKI), the broker on a
//! TLS-only listener, both clients trusting that CA. rustls with `ring`,
//! TLS 1.3 as negotiated by default.

use std::sync::OnceLock;

use crate::BenchResult;

/// The broker's and the clients' halves of the run's certificates.
pub struct Pki {
    pub broker: mq_mock_broker::TlsConfig,
    pub client: mq_conn::TlsConfig,
}

static PKI: OnceLock<Result<Pki, String>> = OnceLock::new();

fn make() -> Result<Pki, String> {
    let pki = mq_conn::testing::TestPki::generate().map_err(|e| e.to_string())?;
    let broker = mq_mock_broker::TlsConfig::from_pem(
        pki.server_cert_pem.as_bytes(),
        pki.server_key_pem.as_bytes(),
        None,
    )
    .map_err(|e| e.to_string())?
    .tls_only(true);
    let client = pki.client_tls().map_err(|e| e.to_string())?;
    Ok(Pki { broker, client })
}

/// The process's certificates, made on first use.
pub fn pki() -> BenchResult<&'static Pki> {
    PKI.get_or_init(make)
        .as_ref()
        .map_err(|e| format!("TLS set-up: {e}").into())
}

/// A sender for `config`, over TLS when `tls`.
pub async fn sender(
    config: mq_client_sender::SenderConfig,
    tls: bool,
) -> BenchResult<mq_client_sender::Sender> {
    let mut b = mq_client_sender::Sender::builder(config);
    if tls {
        b = b.tls(pki()?.client.clone());
    }
    Ok(b.connect().await?)
}
