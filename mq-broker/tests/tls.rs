//! TLS on the broker's listener (issue 15): a raw tokio-rustls client
//! completes Hello/Welcome over TLS; mutual TLS refuses a client without a
//! certificate (or with a stranger's); a plaintext client on the TLS port,
//! and a client that stalls its TLS handshake, cost only their own
//! connection; TLS-only mode; bad certificate files are clear errors.

#[path = "support/certs.rs"]
mod certs;
mod support;

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use mq_broker::{Broker, BrokerConfig, ConfigError, RestartMode, TlsConfig};
use mq_protocol::{Codec, Frame, Hello, MessageId, ReplyStatus, Role};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::{Encoder, Framed};

use support::{msg, Peer, WAIT};

async fn tls_broker(tls: TlsConfig, config: BrokerConfig) -> Broker {
    let config = BrokerConfig {
        tls: Some(tls),
        seed: Some(1),
        storage: support::test_storage(),
        ..config
    };
    Broker::start(config).await.expect("TLS broker")
}

/// Sends Hello over `io` and returns the first frame back, or `None` if
/// the connection ended (or failed) first.
async fn hello<S>(io: S) -> (Framed<S, Codec>, Option<Frame>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut conn = Framed::new(io, Codec::default());
    let sent = conn
        .send(Frame::Hello(Hello::new(Role::Sender, "tls-test")))
        .await;
    if sent.is_err() {
        return (conn, None);
    }
    let f = tokio::time::timeout(WAIT, conn.next())
        .await
        .expect("an answer or the end within the wait bound");
    (conn, f.and_then(Result::ok))
}

/// Reads until the peer closes (EOF or a reset); panics if it stays open.
async fn until_closed(mut tcp: TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(WAIT, tcp.read(&mut buf)).await {
            Err(_) => panic!("the broker kept the connection open; got {got:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return got,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn a_tls_client_completes_hello_welcome_and_publishes() {
    let pki = certs::pki();
    let b = tls_broker(pki.server_config(false), BrokerConfig::default()).await;
    let tls_addr = b.tls_addr().expect("a TLS listener");
    assert_ne!(tls_addr, b.addr(), "both listeners");

    let tls = certs::connect(&pki.client(None), tls_addr)
        .await
        .expect("TLS handshake");
    let (mut conn, f) = hello(tls).await;
    assert!(matches!(f, Some(Frame::Welcome(_))), "{f:?}");
    let id = MessageId::new(3, 1);
    conn.send(Frame::Message(msg(id, 1, "t", b"over tls")))
        .await
        .expect("send");
    match conn.next().await {
        Some(Ok(Frame::Reply(r))) => assert_eq!(r.status, ReplyStatus::Stored),
        other => panic!("expected Reply, got {other:?}"),
    }
    assert!(b.inspect().is_stored(id));
    let s = b.stats();
    assert_eq!((s.tls_handshakes, s.tls_handshake_failures), (1, 0));

    // The plaintext listener still serves.
    Peer::connect(b.addr(), Role::Receiver).await;
    b.shutdown().await;
}

#[tokio::test]
async fn mutual_tls_refuses_a_client_without_a_valid_certificate() {
    let pki = certs::pki();
    let b = tls_broker(pki.server_config(true), BrokerConfig::default()).await;
    let addr = b.tls_addr().expect("TLS");

    // No certificate: under TLS 1.3 the client may finish its side of the
    // handshake before the server's refusal arrives, but it never gets a
    // Welcome: the broker ends the connection at the TLS layer.
    if let Ok(tls) = certs::connect(&pki.client(None), addr).await {
        let (_, f) = hello(tls).await;
        assert!(f.is_none(), "refused at the TLS layer, got {f:?}");
    }
    b.wait_for(WAIT, |s| s.tls_handshake_failures == 1)
        .await
        .expect("the failure is counted");

    // A certificate from another CA: refused the same way.
    if let Ok(tls) = certs::connect(&pki.client(Some(&pki.stranger)), addr).await {
        let (_, f) = hello(tls).await;
        assert!(f.is_none(), "refused at the TLS layer, got {f:?}");
    }
    b.wait_for(WAIT, |s| s.tls_handshake_failures == 2)
        .await
        .expect("the failure is counted");
    assert_eq!(b.stats().connections_accepted, 0);

    // With the CA's client certificate: served.
    let tls = certs::connect(&pki.client(Some(&pki.client)), addr)
        .await
        .expect("TLS handshake with a client certificate");
    let (_, f) = hello(tls).await;
    assert!(matches!(f, Some(Frame::Welcome(_))), "{f:?}");
    assert_eq!(b.stats().tls_handshakes, 1);
}

#[tokio::test]
async fn a_plaintext_client_on_the_tls_port_is_closed_and_others_are_served() {
    let pki = certs::pki();
    let b = tls_broker(pki.server_config(false), BrokerConfig::default()).await;
    let addr = b.tls_addr().expect("TLS");

    let mut plain = TcpStream::connect(addr).await.expect("connect");
    let mut bytes = bytes::BytesMut::new();
    Codec::default()
        .encode(Frame::Hello(Hello::new(Role::Sender, "plain")), &mut bytes)
        .expect("encode");
    plain.write_all(&bytes).await.expect("write Hello");
    let got = until_closed(plain).await;
    // At most a TLS alert record (content type 21), never a frame.
    assert!(got.is_empty() || got[0] == 21, "{got:?}");
    let s = b
        .wait_for(WAIT, |s| s.tls_handshake_failures == 1)
        .await
        .expect("counted");
    assert_eq!(s.connections_accepted, 0);

    let tls = certs::connect(&pki.client(None), addr).await.expect("TLS");
    let (_, f) = hello(tls).await;
    assert!(matches!(f, Some(Frame::Welcome(_))), "{f:?}");
}

#[tokio::test]
async fn a_stalled_tls_handshake_does_not_hold_up_other_clients() {
    let pki = certs::pki();
    // A handshake timeout far longer than the test: the stalled peer is
    // still in its handshake while the other client is served.
    let config = BrokerConfig {
        handshake_timeout: Duration::from_secs(600),
        ..BrokerConfig::default()
    };
    let b = tls_broker(pki.server_config(false), config).await;
    let addr = b.tls_addr().expect("TLS");
    // The first 3 bytes of a TLS record header, then nothing.
    let mut stalled = TcpStream::connect(addr).await.expect("connect");
    stalled.write_all(&[22, 3, 1]).await.expect("write");

    let tls = certs::connect(&pki.client(None), addr).await.expect("TLS");
    let (_, f) = hello(tls).await;
    assert!(matches!(f, Some(Frame::Welcome(_))), "{f:?}");
    let s = b.stats();
    assert_eq!((s.tls_handshakes, s.tls_handshake_failures), (1, 0));
    drop(stalled);
}

#[tokio::test]
async fn a_tls_handshake_not_finished_in_time_is_closed_and_counted() {
    let pki = certs::pki();
    let config = BrokerConfig {
        handshake_timeout: Duration::from_millis(200),
        ..BrokerConfig::default()
    };
    let b = tls_broker(pki.server_config(false), config).await;
    let addr = b.tls_addr().expect("TLS");
    let mut stalled = TcpStream::connect(addr).await.expect("connect");
    stalled.write_all(&[22, 3, 1]).await.expect("write");
    until_closed(stalled).await;
    let s = b
        .wait_for(WAIT, |s| s.tls_handshake_failures == 1)
        .await
        .expect("counted");
    assert_eq!(s.tls_handshakes, 0);
}

#[tokio::test]
async fn tls_only_has_no_plaintext_listener_and_survives_a_restart() {
    let pki = certs::pki();
    // A port that was free a moment ago, as the (unused) plaintext address.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("probe");
    let unused = probe.local_addr().expect("addr");
    drop(probe);
    let config = BrokerConfig {
        listen: unused,
        ..BrokerConfig::default()
    };
    let b = tls_broker(pki.server_config(false).tls_only(true), config).await;
    let addr = b.tls_addr().expect("TLS");
    assert_eq!(b.addr(), addr, "addr() is the TLS listener's");
    assert!(
        TcpStream::connect(unused).await.is_err(),
        "nothing listens on the plaintext address"
    );
    let tls = certs::connect(&pki.client(None), addr).await.expect("TLS");
    let (_, f) = hello(tls).await;
    assert!(matches!(f, Some(Frame::Welcome(_))), "{f:?}");

    b.restart(RestartMode::KeepStore).await.expect("restart");
    assert_eq!(b.tls_addr(), Some(addr));
    let tls = certs::connect(&pki.client(None), addr).await.expect("TLS");
    let (_, f) = hello(tls).await;
    assert!(matches!(f, Some(Frame::Welcome(_))), "{f:?}");
}

#[test]
fn bad_files_are_errors_naming_the_file_and_the_fault() {
    let pki = certs::pki();
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("tls-bad-files");
    let files = pki.write(&dir);

    let missing = dir.join("missing.pem");
    let e = TlsConfig::from_pem_files(&missing, &files.key, None).unwrap_err();
    assert!(matches!(&e, ConfigError::Tls { file: Some(f), .. } if *f == missing));
    assert!(e.to_string().contains("missing.pem"), "{e}");
    assert!(e.to_string().contains("cannot read"), "{e}");

    // A key where the certificate belongs.
    let e = TlsConfig::from_pem_files(&files.key, &files.key, None).unwrap_err();
    assert!(e.to_string().contains("server.key"), "{e}");
    assert!(e.to_string().contains("no certificate"), "{e}");

    // A certificate where the key belongs.
    let e = TlsConfig::from_pem_files(&files.cert, &files.cert, None).unwrap_err();
    assert!(
        matches!(
            &e,
            ConfigError::Tls {
                what: "TLS private key",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("no private key"), "{e}");

    // The client's key with the server's certificate.
    let wrong_key = dir.join("client.key");
    std::fs::write(&wrong_key, &pki.client.key).expect("write");
    let e = TlsConfig::from_pem_files(&files.cert, &wrong_key, None).unwrap_err();
    assert!(e.to_string().contains("server.pem"), "{e}");
    assert!(e.to_string().contains("client.key"), "{e}");

    // A client CA file without a certificate.
    let e = TlsConfig::from_pem_files(&files.cert, &files.key, Some(&files.key)).unwrap_err();
    assert!(
        matches!(
            &e,
            ConfigError::Tls {
                what: "TLS client CA",
                ..
            }
        ),
        "{e}"
    );

    let ok = TlsConfig::from_pem_files(&files.cert, &files.key, Some(&files.ca)).expect("good");
    assert!(ok.requires_client_cert());
    let shown = format!("{ok:?}");
    assert!(!shown.contains("PRIVATE"), "{shown}");
}
