//! TLS through mq-conn: heartbeats and reconnect over TLS (paused time, a
//! scripted broker behind a rustls acceptor on in-memory pipes, test
//! certificates from `mq_conn::testing`), and a wrong CA refused clearly.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use mq_client_receiver::{
    ConnectError, ConnectionEvent, Delivery, Events, HandlerError, Receiver, ReceiverConfig,
    CREDIT_FLUSH_DELAY,
};
use mq_conn::testing::TestPki;
use mq_conn::BoxIo;
use mq_protocol::{Backoff, Codec, Deliver, Frame, Headers, MessageId, SubscribeOk, Welcome};
use tokio::io::DuplexStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::codec::Framed;

type Peer = Framed<TlsStream<DuplexStream>, Codec>;
const WAIT: Duration = Duration::from_secs(60);

/// A connector whose connections end in a TLS server handed to the test.
fn tls_pipes(pki: &TestPki) -> (impl mq_conn::Connector, mpsc::UnboundedReceiver<Peer>) {
    tls_pipes_with(pki, false)
}

/// As [`tls_pipes`]; with `mutual` the server requires a client
/// certificate from the test CA.
fn tls_pipes_with(
    pki: &TestPki,
    mutual: bool,
) -> (impl mq_conn::Connector, mpsc::UnboundedReceiver<Peer>) {
    let acceptor = TlsAcceptor::from(pki.server_config(mutual).expect("server config"));
    let (tx, rx) = mpsc::unbounded_channel();
    let c = mq_conn::from_fn(move |_addr: String| {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let (acceptor, tx) = (acceptor.clone(), tx.clone());
        tokio::spawn(async move {
            if let Ok(tls) = acceptor.accept(server).await {
                let _ = tx.send(Framed::new(tls, Codec::default()));
            }
        });
        async move { Ok(Box::new(client) as BoxIo) }
    });
    (c, rx)
}

fn config() -> ReceiverConfig {
    ReceiverConfig::default()
        // The host is the TLS server name: the test certificate's.
        .addresses(vec!["localhost:7878".into()])
        .topic("t")
        .group("g")
        .reconnect(Backoff {
            initial: Duration::from_millis(100),
            multiplier: 2.0,
            max: Duration::from_secs(1),
            jitter: 0.0,
        })
        .seed(Some(3))
}

async fn next(peer: &mut Peer) -> Frame {
    match tokio::time::timeout(WAIT, peer.next()).await {
        Ok(Some(Ok(f))) => f,
        other => panic!("expected a frame, got {other:?}"),
    }
}

async fn accept(conns: &mut mpsc::UnboundedReceiver<Peer>, heartbeat_ms: u32) -> Peer {
    let mut peer = tokio::time::timeout(WAIT, conns.recv())
        .await
        .ok()
        .flatten()
        .expect("a TLS connection");
    assert!(matches!(next(&mut peer).await, Frame::Hello(_)));
    peer.send(Frame::Welcome(Welcome {
        version: 1,
        max_frame_size: 1 << 20,
        heartbeat_ms,
        server_name: "fake-tls".into(),
        max_message_size: None,
    }))
    .await
    .unwrap();
    let Frame::Subscribe(s) = next(&mut peer).await else {
        panic!("expected Subscribe")
    };
    peer.send(Frame::SubscribeOk(SubscribeOk { sub_id: s.sub_id }))
        .await
        .unwrap();
    peer
}

fn deliver(seq: u64, attempt: u32) -> Frame {
    Frame::Deliver(Deliver {
        sub_id: 1,
        id: MessageId::new(4, seq),
        delivery_attempt: attempt,
        topic: "t".into(),
        headers: Headers::new(),
        payload: "x".into(),
    })
}

/// The next Ack (Credit and Ping skipped).
async fn ack(peer: &mut Peer) -> MessageId {
    loop {
        match next(peer).await {
            Frame::Ack(a) => return a.id,
            Frame::Credit(_) | Frame::Ping(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn heartbeats_and_reconnect_over_tls() {
    let pki = TestPki::generate().unwrap();
    let (connector, mut conns) = tls_pipes(&pki);
    let events = Events::default();
    let mut seen = events.subscribe();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let (r, mut peer) = tokio::join!(
        Receiver::builder(config())
            .connector(connector)
            .tls(pki.client_tls().unwrap())
            .events(events)
            .connect(move |_d: Delivery| {
                c.fetch_add(1, Ordering::SeqCst);
                async { Ok::<(), HandlerError>(()) }
            }),
        accept(&mut conns, 1000)
    );
    let r = r.expect("connects over TLS");
    peer.send(deliver(1, 1)).await.unwrap();
    assert_eq!(ack(&mut peer).await, MessageId::new(4, 1));

    // Idle: the receiver pings one interval after its last write (the
    // credit, at most CREDIT_FLUSH_DELAY after the ack).
    let quiet_from = Instant::now();
    loop {
        match next(&mut peer).await {
            Frame::Ping(_) => break,
            Frame::Credit(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    let ping_after = quiet_from.elapsed();
    assert!(
        ping_after >= Duration::from_millis(1000)
            && ping_after <= Duration::from_millis(1000) + CREDIT_FLUSH_DELAY,
        "{ping_after:?}"
    );

    // The broker goes silent: after three intervals without a frame the
    // receiver gives the connection up and reconnects, over TLS again.
    let mut peer2 = accept(&mut conns, 1000).await;
    let waited = quiet_from.elapsed();
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    // The redelivery on the new connection is acked from dedup.
    peer2.send(deliver(1, 2)).await.unwrap();
    assert_eq!(ack(&mut peer2).await, MessageId::new(4, 1));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let s = r.stats();
    assert_eq!((s.reconnects, s.duplicates_suppressed), (1, 1));

    let mut got = Vec::new();
    while let Ok(e) = seen.try_recv() {
        got.push(e);
    }
    assert!(
        matches!(
            got.as_slice(),
            [
                ConnectionEvent::Connected { .. },
                ConnectionEvent::Lost { reason },
                ConnectionEvent::Connected { .. },
            ] if reason.contains("heartbeat")
        ),
        "{got:?}"
    );
    drop(peer);
    r.close(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_wrong_ca_is_refused_with_a_tls_error() {
    let pki = TestPki::generate().unwrap();
    let other = TestPki::generate().unwrap();
    let (connector, _conns) = tls_pipes(&pki);
    let err = Receiver::builder(config())
        .connector(connector)
        .tls(other.client_tls().unwrap())
        .connect_stream()
        .await
        .expect_err("an unknown CA");
    assert!(matches!(err, ConnectError::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains("localhost:7878"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn mutual_tls_needs_the_client_certificate() {
    let pki = TestPki::generate().unwrap();
    let (connector, _conns) = tls_pipes_with(&pki, true);
    let err = Receiver::builder(config())
        .connector(connector)
        .tls(pki.client_tls().unwrap())
        .connect_stream()
        .await
        .expect_err("no client certificate");
    assert!(matches!(err, ConnectError::Tls { .. }), "{err:?}");

    let (connector, mut conns) = tls_pipes_with(&pki, true);
    let (r, _peer) = tokio::join!(
        Receiver::builder(config())
            .connector(connector)
            .tls(pki.client_tls_with_cert().unwrap())
            .connect_stream(),
        accept(&mut conns, 0)
    );
    let (r, _deliveries) = r.expect("connects with the client certificate");
    r.close(Duration::from_secs(1)).await.unwrap();
}
