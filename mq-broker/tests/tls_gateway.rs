//! TLS on the JetStream gateway: the same listener as the single node
//! (TLS only here, mutual TLS), on a one-node NATS JetStream server the
//! test starts (`tests/src/nats.rs` of mq-e2e, included by path).

#[path = "support/certs.rs"]
mod certs;
#[path = "../../tests/src/nats.rs"]
#[allow(dead_code)]
mod nats;
mod support;

use futures::{SinkExt, StreamExt};
use mq_broker::{BrokerConfig, Gateway, JetStreamConfig};
use mq_protocol::{Codec, Frame, Hello, MessageId, ReplyStatus, Role};
use tokio::io::AsyncReadExt;
use tokio_util::codec::Framed;

use support::{msg, WAIT};

#[tokio::test]
async fn the_gateway_serves_tls_only_with_mutual_tls() {
    let cluster = match nats::NatsCluster::start(1).await {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let pki = certs::pki();
    let config = BrokerConfig {
        tls: Some(pki.server_config(true).tls_only(true)),
        ..BrokerConfig::default()
    };
    let js = JetStreamConfig::new(cluster.urls()).replicas(1);
    let gw = Gateway::start(config, js).await.expect("gateway");
    let addr = gw.tls_addr().expect("a TLS listener");
    assert_eq!(gw.addr(), addr, "TLS only");

    // A client certificate from the CA: Hello, Welcome, a message Stored.
    let tls = certs::connect(&pki.client(Some(&pki.client)), addr)
        .await
        .expect("TLS handshake");
    let mut conn = Framed::new(tls, Codec::default());
    conn.send(Frame::Hello(Hello::new(Role::Sender, "gw-tls")))
        .await
        .expect("send");
    let f = tokio::time::timeout(WAIT, conn.next())
        .await
        .expect("answer");
    assert!(matches!(f, Some(Ok(Frame::Welcome(_)))), "{f:?}");
    conn.send(Frame::Message(msg(MessageId::new(5, 1), 1, "t", b"x")))
        .await
        .expect("send");
    match tokio::time::timeout(WAIT, conn.next())
        .await
        .expect("reply")
    {
        Some(Ok(Frame::Reply(r))) => assert_eq!(r.status, ReplyStatus::Stored),
        other => panic!("expected Reply, got {other:?}"),
    }

    // No client certificate: no Welcome.
    if let Ok(tls) = certs::connect(&pki.client(None), addr).await {
        let mut conn = Framed::new(tls, Codec::default());
        let _ = conn
            .send(Frame::Hello(Hello::new(Role::Sender, "anon")))
            .await;
        let f = tokio::time::timeout(WAIT, conn.next()).await.expect("end");
        assert!(!matches!(f, Some(Ok(_))), "refused at the TLS layer: {f:?}");
    }
    // Plaintext on the TLS port: closed.
    let mut plain = tokio::net::TcpStream::connect(addr).await.expect("tcp");
    tokio::io::AsyncWriteExt::write_all(&mut plain, b"not a TLS record")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(WAIT, plain.read_to_end(&mut buf))
        .await
        .expect("closed");

    // The refused client may see the alert a moment before the gateway
    // counts its failure: poll the counters with a deadline (the gateway
    // has no change notification).
    let deadline = tokio::time::Instant::now() + WAIT;
    let s = loop {
        let s = gw.stats();
        if s.tls_handshake_failures >= 2 || tokio::time::Instant::now() >= deadline {
            break s;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert_eq!(
        (s.tls_handshakes, s.tls_handshake_failures, s.stored),
        (1, 2, 1),
        "{s:?}"
    );
    gw.shutdown().await;
}
