//! Reconnect rounds and connection events (mq-conn's rules in the
//! receiver's driver), paused time over pipes.

use std::collections::VecDeque;
use std::sync::Mutex;

use mq_conn::{ConnectionEvent, Events};
use tokio::time::Instant;

use super::*;

/// A connector that records each address dialled and, per dial, either
/// refuses at the transport (`false` in `plan`) or opens a pipe whose far
/// end goes to the test. An empty plan opens pipes.
struct Scripted {
    tx: mpsc::UnboundedSender<Peer>,
    plan: Mutex<VecDeque<bool>>,
    dialled: Mutex<Vec<(String, Instant)>>,
}

impl mq_conn::Connector for Scripted {
    fn connect(
        &self,
        address: &str,
    ) -> futures::future::BoxFuture<'static, std::io::Result<BoxIo>> {
        self.dialled
            .lock()
            .unwrap()
            .push((address.to_owned(), Instant::now()));
        let open = self.plan.lock().unwrap().pop_front().unwrap_or(true);
        if !open {
            return Box::pin(async {
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionRefused,
                    "scripted refusal",
                ))
            });
        }
        let (client, server) = tokio::io::duplex(64 * 1024);
        let _ = self.tx.send(Framed::new(server, Codec::default()));
        Box::pin(async move { Ok(Box::new(client) as BoxIo) })
    }
}

fn scripted(plan: &[bool]) -> (Arc<Scripted>, mpsc::UnboundedReceiver<Peer>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let s = Arc::new(Scripted {
        tx,
        plan: Mutex::new(plan.iter().copied().collect()),
        dialled: Mutex::new(Vec::new()),
    });
    (s, rx)
}

fn backoff() -> mq_protocol::Backoff {
    mq_protocol::Backoff {
        initial: Duration::from_millis(100),
        multiplier: 2.0,
        max: Duration::from_secs(1),
        jitter: 0.0,
    }
}

#[tokio::test(start_paused = true)]
async fn a_lost_connection_starts_a_round_over_every_address_at_once() {
    let (c, mut conns) = scripted(&[true, false, true]);
    let cfg = config(4, 1, AckMode::Auto)
        .addresses(vec!["a:1".into(), "b:1".into()])
        .reconnect(backoff());
    let (r, (peer, _)) = tokio::join!(
        ReceiverBuilder::new(cfg)
            .connector(c.clone())
            .connect(counting_ok(Default::default())),
        accept(&mut conns, 0)
    );
    let r = r.unwrap();
    let lost_at = Instant::now();
    drop(peer);
    // a refuses, b answers: no backoff inside a round.
    let (_peer2, _) = accept(&mut conns, 0).await;
    let dialled = c.dialled.lock().unwrap().clone();
    let names: Vec<&str> = dialled.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(names, ["a:1", "a:1", "b:1"]);
    assert!(
        dialled[1..].iter().all(|(_, t)| *t == lost_at),
        "{dialled:?}"
    );
    r.close(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn failed_rounds_back_off_and_say_so() {
    // First round ok; after the loss two rounds fail, the third connects.
    let (c, mut conns) = scripted(&[true, false, false, true]);
    let events = Events::default();
    let mut seen = events.subscribe();
    let cfg = config(4, 1, AckMode::Auto).reconnect(backoff());
    let (r, (peer, _)) = tokio::join!(
        ReceiverBuilder::new(cfg)
            .connector(c.clone())
            .events(events)
            .connect(counting_ok(Default::default())),
        accept(&mut conns, 0)
    );
    let r = r.unwrap();
    let lost_at = Instant::now();
    drop(peer);
    let (_peer2, _) = accept(&mut conns, 0).await;
    let at: Vec<Duration> = c
        .dialled
        .lock()
        .unwrap()
        .iter()
        .skip(1)
        .map(|(_, t)| *t - lost_at)
        .collect();
    // At once, then after 100 ms, then after 200 ms more.
    assert_eq!(
        at,
        [
            Duration::ZERO,
            Duration::from_millis(100),
            Duration::from_millis(300)
        ]
    );
    let mut got = Vec::new();
    while let Ok(e) = seen.try_recv() {
        got.push(e);
    }
    assert!(
        matches!(
            got.as_slice(),
            [
                ConnectionEvent::Connected { .. },
                ConnectionEvent::Lost { .. },
                ConnectionEvent::Reconnecting { attempt: 1, delay: d1 },
                ConnectionEvent::Reconnecting { attempt: 2, delay: d2 },
                ConnectionEvent::Connected { .. },
            ] if *d1 == Duration::from_millis(100) && *d2 == Duration::from_millis(200)
        ),
        "{got:?}"
    );
    r.close(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_refused_subscription_is_a_refused_connect_and_an_event() {
    let (c, mut conns) = scripted(&[]);
    let events = Events::default();
    let mut seen = events.subscribe();
    let broker = async {
        let mut peer = conns.recv().await.expect("a connection");
        assert!(matches!(next(&mut peer).await, Frame::Hello(_)));
        peer.send(Frame::Welcome(Welcome {
            version: 1,
            max_frame_size: 1 << 20,
            heartbeat_ms: 0,
            server_name: "fake".into(),
            max_message_size: None,
        }))
        .await
        .unwrap();
        let Frame::Subscribe(s) = next(&mut peer).await else {
            panic!("expected Subscribe")
        };
        peer.send(Frame::SubscribeError(mq_protocol::SubscribeError {
            sub_id: s.sub_id,
            code: mq_protocol::ErrorCode::LIMIT_REACHED,
            reason: "too many groups".into(),
        }))
        .await
        .unwrap();
        peer
    };
    let (r, _peer) = tokio::join!(
        ReceiverBuilder::new(config(4, 1, AckMode::Auto))
            .connector(c)
            .events(events)
            .connect(counting_ok(Default::default())),
        broker
    );
    match r {
        Err(crate::ConnectError::Refused { code, reason, .. }) => {
            assert_eq!(code, mq_protocol::ErrorCode::LIMIT_REACHED);
            assert_eq!(reason, "too many groups");
        }
        other => panic!("expected Refused, got {other:?}"),
    }
    assert!(matches!(
        seen.try_recv(),
        Ok(ConnectionEvent::Connected { .. })
    ));
    assert!(matches!(
        seen.try_recv(),
        Ok(ConnectionEvent::Refused { reason, .. }) if reason == "too many groups"
    ));
}
