//! The sender over TLS: an in-test TLS terminator (tokio-rustls, rcgen
//! certificates) in front of `mq-mock-broker`, real TCP.

use std::sync::Arc;
use std::time::Duration;

use mq_client_sender::{ConnectError, OutgoingMessage, Sender, SenderConfig};
use mq_conn::testing::TestPki;
use mq_mock_broker::{BrokerConfig, MockBroker, RestartMode};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// Accepts TLS on a fresh port and pipes each connection to `backend`.
async fn tls_front(config: Arc<rustls::ServerConfig>, backend: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let acceptor = TlsAcceptor::from(config);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let backend = backend.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut plain) = TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    addr
}

async fn setup(require_client_cert: bool) -> (TestPki, MockBroker, String) {
    setup_with(require_client_cert, BrokerConfig::default()).await
}

async fn setup_with(
    require_client_cert: bool,
    broker: BrokerConfig,
) -> (TestPki, MockBroker, String) {
    let pki = TestPki::generate().unwrap();
    let broker = MockBroker::start(broker).await.unwrap();
    let front = tls_front(
        pki.server_config(require_client_cert).unwrap(),
        broker.addr().to_string(),
    )
    .await;
    (pki, broker, front)
}

fn config(addr: &str) -> SenderConfig {
    SenderConfig::new(addr).connect_timeout(Duration::from_secs(5))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_confirmed_over_tls() {
    let (pki, broker, front) = setup(false).await;
    let sender = Sender::builder(config(&front))
        .tls(pki.client_tls().unwrap())
        .connect()
        .await
        .unwrap();
    for i in 0..50 {
        let r = sender
            .send(OutgoingMessage::new("t", format!("m{i}")))
            .await
            .unwrap();
        assert!(!r.duplicate);
    }
    assert!(sender
        .close(Duration::from_secs(5))
        .await
        .unresolved
        .is_empty());
    assert_eq!(broker.stats().messages_stored, 50);
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_with_a_client_certificate_works_and_without_is_refused() {
    let (pki, broker, front) = setup(true).await;
    let sender = Sender::builder(config(&front))
        .tls(pki.client_tls_with_cert().unwrap())
        .connect()
        .await
        .unwrap();
    sender.send(OutgoingMessage::new("t", "x")).await.unwrap();
    sender.close(Duration::from_secs(5)).await;

    let err = Sender::builder(config(&front))
        .tls(pki.client_tls().unwrap())
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::Tls { .. }), "{err}");
    assert!(err.to_string().contains("CertificateRequired"), "{err}");
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_is_a_clear_tls_error() {
    let (_pki, broker, front) = setup(false).await;
    let other = TestPki::generate().unwrap();
    let err = Sender::builder(config(&front))
        .tls(other.client_tls().unwrap())
        .connect()
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("TLS handshake with {front} failed: invalid peer certificate: UnknownIssuer")
    );
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_client_key_is_a_tls_config_error() {
    let pki = TestPki::generate().unwrap();
    // The server's key does not match the client certificate.
    let tls = pki
        .client_tls()
        .unwrap()
        .client_cert_pem(
            pki.client_cert_pem.as_bytes(),
            pki.server_key_pem.as_bytes(),
        )
        .unwrap();
    let err = Sender::builder(config("127.0.0.1:9"))
        .tls(tls)
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::TlsConfig(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_over_tls_after_a_broker_restart() {
    let (pki, broker, front) = setup(false).await;
    let cfg = config(&front).reconnect(mq_client_sender::Backoff {
        initial: Duration::from_millis(10),
        multiplier: 2.0,
        max: Duration::from_millis(100),
        jitter: 0.0,
    });
    let sender = Sender::builder(cfg)
        .tls(pki.client_tls().unwrap())
        .connect()
        .await
        .unwrap();
    let mut events = sender.events();
    sender
        .send(OutgoingMessage::new("t", "before"))
        .await
        .unwrap();
    broker.restart(RestartMode::KeepStore).await.unwrap();
    // The restart cut the TLS connection; the sender dials TLS again.
    let r = sender
        .send(OutgoingMessage::new("t", "after"))
        .await
        .unwrap();
    assert!(!r.duplicate);
    assert_eq!(sender.stats().reconnects, 1);
    let mut seen = Vec::new();
    while let Ok(e) = events.try_recv() {
        seen.push(e);
    }
    assert!(
        matches!(
            seen.first(),
            Some(mq_client_sender::ConnectionEvent::Lost { .. })
        ),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|e| matches!(e, mq_client_sender::ConnectionEvent::Connected { address } if *address == front)),
        "{seen:?}"
    );
    sender.close(Duration::from_secs(5)).await;
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_an_idle_tls_connection_alive() {
    let broker_cfg = BrokerConfig {
        heartbeat: Duration::from_millis(50),
        ..BrokerConfig::default()
    };
    let (pki, broker, front) = setup_with(false, broker_cfg).await;
    let sender = Sender::builder(config(&front).heartbeat(Some(Duration::from_millis(50))))
        .tls(pki.client_tls().unwrap())
        .connect()
        .await
        .unwrap();
    // Idle for 20 heartbeat intervals: both sides' pings and pongs cross
    // the TLS layer, or one side drops the other after 3 silent intervals.
    tokio::time::sleep(Duration::from_secs(1)).await;
    sender.send(OutgoingMessage::new("t", "x")).await.unwrap();
    assert_eq!(sender.stats().reconnects, 0);
    sender.close(Duration::from_secs(5)).await;
    broker.shutdown().await;
}
