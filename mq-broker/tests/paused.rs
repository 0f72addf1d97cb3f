//! The real driver (connection tasks, timer task) under paused time over
//! in-memory streams: timing rules checked to the millisecond, no sockets,
//! no sleeps.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use mq_broker::{Broker, BrokerConfig};
use mq_protocol::{
    Backoff, Codec, ErrorCode, Frame, Headers, Hello, Message, MessageId, Nack, Role, Subscribe,
};
use tokio::io::DuplexStream;
use tokio::time::Instant;
use tokio_util::codec::Framed;

type Conn = Framed<DuplexStream, Codec>;

async fn start(config: BrokerConfig) -> Broker {
    let config = BrokerConfig {
        seed: Some(3),
        ..config
    };
    Broker::start_in_memory(config).await.expect("start")
}

fn config() -> BrokerConfig {
    BrokerConfig {
        redelivery: Backoff {
            initial: Duration::from_secs(1),
            multiplier: 2.0,
            max: Duration::from_secs(10),
            jitter: 0.0,
        },
        heartbeat: Duration::from_secs(3600),
        max_deliveries: 3,
        ..BrokerConfig::default()
    }
}

async fn next(c: &mut Conn) -> Frame {
    match c.next().await {
        Some(Ok(f)) => f,
        other => panic!("expected a frame, got {other:?}"),
    }
}

async fn connect(b: &Broker, role: Role) -> Conn {
    let mut c = Framed::new(b.connect_duplex(), Codec::default());
    c.send(Frame::Hello(Hello::new(role, "paused")))
        .await
        .expect("send");
    assert!(matches!(next(&mut c).await, Frame::Welcome(_)));
    c
}

async fn receiver(b: &Broker) -> Conn {
    let mut r = connect(b, Role::Receiver).await;
    let sub = Subscribe {
        sub_id: 1,
        credit: 100,
        topic: "t".into(),
        group: "g".into(),
    };
    r.send(Frame::Subscribe(sub)).await.expect("send");
    assert!(matches!(next(&mut r).await, Frame::SubscribeOk(_)));
    r
}

async fn publish(b: &Broker, id: MessageId) {
    let mut s = connect(b, Role::Sender).await;
    let m = Message {
        id,
        attempt: 1,
        topic: "t".into(),
        headers: Headers::new(),
        payload: "x".into(),
    };
    s.send(Frame::Message(m)).await.expect("send");
    assert!(matches!(next(&mut s).await, Frame::Reply(_)));
}

async fn deliver_attempt(r: &mut Conn) -> u32 {
    match next(r).await {
        Frame::Deliver(d) => d.delivery_attempt,
        other => panic!("expected Deliver, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn redeliveries_follow_the_schedule_then_dead_letter() {
    let b = start(config()).await;
    let mut r = receiver(&b).await;
    let id = MessageId::new(1, 1);
    publish(&b, id).await;
    assert_eq!(deliver_attempt(&mut r).await, 1);
    let t0 = Instant::now();
    assert_eq!(deliver_attempt(&mut r).await, 2);
    assert_eq!(t0.elapsed(), Duration::from_secs(1));
    assert_eq!(deliver_attempt(&mut r).await, 3);
    assert_eq!(t0.elapsed(), Duration::from_secs(3));
    b.wait_for(Duration::from_secs(60), |s| s.dead_lettered == 1)
        .await
        .expect("dead-lettered");
    assert_eq!(
        t0.elapsed(),
        Duration::from_secs(7),
        "third attempt waits 4 s"
    );
    assert!(!b.inspect().is_stored(id));
}

#[tokio::test(start_paused = true)]
async fn nack_delay_is_honoured() {
    let b = start(config()).await;
    let mut r = receiver(&b).await;
    let id = MessageId::new(1, 2);
    publish(&b, id).await;
    assert_eq!(deliver_attempt(&mut r).await, 1);
    let t0 = Instant::now();
    let nack = Nack {
        sub_id: 1,
        id,
        delay_ms: 2500,
    };
    r.send(Frame::Nack(nack)).await.expect("send");
    assert_eq!(deliver_attempt(&mut r).await, 2);
    assert_eq!(t0.elapsed(), Duration::from_millis(2500));
}

#[tokio::test(start_paused = true)]
async fn idle_broker_pings_and_drops_a_silent_peer() {
    let b = start(BrokerConfig {
        heartbeat: Duration::from_secs(5),
        ..config()
    })
    .await;
    let t0 = Instant::now();
    let mut c = connect(&b, Role::Sender).await;
    assert!(matches!(next(&mut c).await, Frame::Ping(_)));
    assert_eq!(t0.elapsed(), Duration::from_secs(5));
    loop {
        match next(&mut c).await {
            Frame::Ping(_) => {}
            Frame::Close(close) => {
                assert_eq!(close.code, ErrorCode::HEARTBEAT_TIMEOUT);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(t0.elapsed(), Duration::from_secs(15));
}

#[tokio::test(start_paused = true)]
async fn answering_pings_keeps_the_connection() {
    let b = start(BrokerConfig {
        heartbeat: Duration::from_secs(5),
        ..config()
    })
    .await;
    let mut c = connect(&b, Role::Sender).await;
    for _ in 0..10 {
        match next(&mut c).await {
            Frame::Ping(p) => c
                .send(Frame::Pong(mq_protocol::Pong { nonce: p.nonce }))
                .await
                .expect("send"),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(b.stats().connections_open, 1);
}

#[tokio::test(start_paused = true)]
async fn delayed_reply_arrives_within_max_delay() {
    let b = start(BrokerConfig {
        faults: mq_broker::Faults {
            from_broker: mq_broker::DirectionFaults {
                delay: 1.0,
                max_delay: Duration::from_millis(300),
                ..Default::default()
            },
            ..Default::default()
        },
        ..config()
    })
    .await;
    let mut s = connect(&b, Role::Sender).await;
    let t0 = Instant::now();
    let m = Message {
        id: MessageId::new(2, 1),
        attempt: 1,
        topic: "t".into(),
        headers: Headers::new(),
        payload: "x".into(),
    };
    s.send(Frame::Message(m)).await.expect("send");
    assert!(matches!(next(&mut s).await, Frame::Reply(_)));
    assert!(t0.elapsed() <= Duration::from_millis(300));
    assert_eq!(b.stats().frames_delayed_by_faults, 1);
    assert!(
        b.inspect().is_stored(MessageId::new(2, 1)),
        "landed before the delayed reply"
    );
}
