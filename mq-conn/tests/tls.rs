//! TLS end to end: a small in-test TLS server (tokio-rustls acceptor) that
//! answers the protocol handshake, certificates generated with rcgen.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use mq_conn::testing::TestPki;
use mq_conn::{ConnectError, Dialer, TlsConfig, TlsConfigError, TlsConnector};
use mq_protocol::{Codec, Frame, Hello, Role, Welcome, PROTOCOL_VERSION};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::codec::Decoder;

/// Accepts TLS connections forever; answers each `Hello` with a `Welcome`.
/// Returns the address and a channel of each connection's outcome
/// (`Ok(client name)` or the server-side TLS error).
async fn tls_server(
    config: Arc<rustls::ServerConfig>,
) -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<Result<String, String>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let acceptor = TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let r = serve(acceptor, tcp).await;
                let _ = tx.send(r);
            });
        }
    });
    (addr, rx)
}

async fn serve(acceptor: TlsAcceptor, tcp: tokio::net::TcpStream) -> Result<String, String> {
    let mut s = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
    let mut buf = BytesMut::new();
    let mut codec = Codec::new(1 << 20);
    let hello = loop {
        if let Some(f) = codec.decode(&mut buf).map_err(|e| e.to_string())? {
            break f;
        }
        if s.read_buf(&mut buf).await.map_err(|e| e.to_string())? == 0 {
            return Err("eof before Hello".into());
        }
    };
    let Frame::Hello(h) = hello else {
        return Err(format!("expected Hello, got {}", hello.name()));
    };
    let mut out = BytesMut::new();
    Frame::Welcome(Welcome {
        version: PROTOCOL_VERSION,
        max_frame_size: 1 << 20,
        heartbeat_ms: 5000,
        server_name: "tls-test".into(),
        max_message_size: None,
    })
    .encode(&mut out)
    .map_err(|e| e.to_string())?;
    s.write_all(&out).await.map_err(|e| e.to_string())?;
    s.flush().await.map_err(|e| e.to_string())?;
    Ok(h.client_name)
}

fn dialer(tls: &TlsConfig) -> Dialer {
    Dialer::new(
        Arc::new(TlsConnector::new(tls).unwrap()),
        Hello::new(Role::Sender, "tls-client"),
    )
    .connect_timeout(Duration::from_secs(10))
}

#[tokio::test]
async fn handshake_over_tls_with_a_given_ca() {
    let pki = TestPki::generate().unwrap();
    let (addr, mut served) = tls_server(pki.server_config(false).unwrap()).await;
    let est = dialer(&pki.client_tls().unwrap())
        .connect(&addr)
        .await
        .unwrap();
    assert_eq!(est.welcome.server_name, "tls-test");
    assert_eq!(est.address, addr);
    assert_eq!(served.recv().await.unwrap(), Ok("tls-client".to_owned()));
}

#[tokio::test]
async fn server_name_comes_from_the_address_or_the_override() {
    let pki = TestPki::generate().unwrap();
    let (addr, _served) = tls_server(pki.server_config(false).unwrap()).await;
    let port = addr.rsplit_once(':').unwrap().1;
    // By host name: the certificate names `localhost`.
    let est = dialer(&pki.client_tls().unwrap())
        .connect(&format!("localhost:{port}"))
        .await;
    // `localhost` may resolve to ::1 first, where nothing listens; only a
    // TLS failure would be wrong here.
    if let Err(e) = &est {
        assert!(!matches!(e, ConnectError::Tls { .. }), "{e}");
    }
    // A name the certificate does not carry: refused, with the reason.
    let wrong = pki
        .client_tls()
        .unwrap()
        .server_name("elsewhere.test")
        .unwrap();
    let err = dialer(&wrong).connect(&addr).await.unwrap_err();
    assert!(matches!(err, ConnectError::Tls { .. }), "{err}");
    assert!(err.to_string().contains("not valid for name"), "{err}");
}

#[tokio::test]
async fn a_wrong_ca_is_refused_with_a_clear_error() {
    let pki = TestPki::generate().unwrap();
    let other = TestPki::generate().unwrap();
    let (addr, _served) = tls_server(pki.server_config(false).unwrap()).await;
    let err = dialer(&other.client_tls().unwrap())
        .connect(&addr)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ConnectError::Tls { .. }), "{text}");
    assert_eq!(
        text,
        format!("TLS handshake with {addr} failed: invalid peer certificate: UnknownIssuer")
    );
    assert!(!err.is_transient());
}

#[tokio::test]
async fn mutual_tls_accepts_a_client_certificate_and_refuses_none() {
    let pki = TestPki::generate().unwrap();
    let (addr, mut served) = tls_server(pki.server_config(true).unwrap()).await;

    let est = dialer(&pki.client_tls_with_cert().unwrap())
        .connect(&addr)
        .await
        .unwrap();
    assert_eq!(est.welcome.server_name, "tls-test");
    assert_eq!(served.recv().await.unwrap(), Ok("tls-client".to_owned()));

    let err = dialer(&pki.client_tls().unwrap())
        .connect(&addr)
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::Tls { .. }), "{err}");
    assert!(err.to_string().contains("CertificateRequired"), "{err}");
    let server_side = served.recv().await.unwrap().unwrap_err();
    assert!(server_side.contains("certificate"), "{server_side}");
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_is_refused() {
    let pki = TestPki::generate().unwrap();
    let other = TestPki::generate().unwrap();
    let (addr, _served) = tls_server(pki.server_config(true).unwrap()).await;
    let tls = pki
        .client_tls()
        .unwrap()
        .client_cert_pem(
            other.client_cert_pem.as_bytes(),
            other.client_key_pem.as_bytes(),
        )
        .unwrap();
    let err = dialer(&tls).connect(&addr).await.unwrap_err();
    assert!(matches!(err, ConnectError::Tls { .. }), "{err}");
}

#[test]
fn bad_pem_is_a_config_error_that_says_what_to_change() {
    let err = TlsConfig::with_ca_pem(b"hello, not a certificate").unwrap_err();
    assert!(matches!(err, TlsConfigError::NoCertificate { .. }), "{err}");
    assert!(
        err.to_string().contains("-----BEGIN CERTIFICATE-----"),
        "{err}"
    );

    let broken = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
    let err = TlsConfig::with_ca_pem(broken.as_bytes()).unwrap_err();
    assert!(matches!(err, TlsConfigError::Pem { .. }), "{err}");

    let pki = TestPki::generate().unwrap();
    // A key where the certificate should be, and a certificate as the key.
    let err = TlsConfig::with_ca_pem(pki.client_key_pem.as_bytes()).unwrap_err();
    assert!(matches!(err, TlsConfigError::NoCertificate { .. }), "{err}");
    let err = pki
        .client_tls()
        .unwrap()
        .client_cert_pem(
            pki.client_cert_pem.as_bytes(),
            pki.client_cert_pem.as_bytes(),
        )
        .unwrap_err();
    assert!(matches!(err, TlsConfigError::NoPrivateKey { .. }), "{err}");
    // A key that does not match its certificate.
    let tls = pki
        .client_tls()
        .unwrap()
        .client_cert_pem(
            pki.client_cert_pem.as_bytes(),
            pki.server_key_pem.as_bytes(),
        )
        .unwrap();
    let err = TlsConnector::new(&tls).unwrap_err();
    assert!(matches!(err, TlsConfigError::Rustls(_)), "{err}");
    // A file that is not there names its path.
    let err = TlsConfig::with_ca_pem_file("/nonexistent/ca.pem").unwrap_err();
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
}

#[test]
fn ca_files_and_debug_without_the_key() {
    let pki = TestPki::generate().unwrap();
    let dir = std::env::temp_dir().join(format!("mq-conn-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    let cert = dir.join("client.pem");
    let key = dir.join("client-key.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    std::fs::write(&cert, &pki.client_cert_pem).unwrap();
    std::fs::write(&key, &pki.client_key_pem).unwrap();
    let tls = TlsConfig::with_ca_pem_file(&ca)
        .unwrap()
        .client_cert_files(&cert, &key)
        .unwrap();
    let debug = format!("{tls:?}");
    assert!(!debug.contains("PRIVATE"), "{debug}");
    assert!(debug.contains("redacted"), "{debug}");
    assert!(TlsConnector::new(&tls).is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}
