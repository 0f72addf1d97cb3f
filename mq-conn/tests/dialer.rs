//! The handshake over in-memory pipes: welcome, leftover bytes, refusal,
//! timeout, rounds over several addresses, and the events emitted.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use mq_conn::{from_fn, BoxIo, ConnectError, ConnectionEvent, Dialer, Events};
use mq_protocol::{Codec, ErrorCode, Frame, Hello, Ping, Refuse, Role, Welcome, PROTOCOL_VERSION};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_util::codec::Decoder;

/// What the fake broker at an address does with a connection.
#[derive(Clone, Copy)]
enum Peer {
    /// No listener: connection refused.
    Down,
    /// Welcome, then a Ping in the same write.
    Welcome,
    /// Refuse with UNAUTHORIZED.
    Refuse,
    /// Reads the Hello and never answers.
    Silent,
    /// Answers with a frame that is not a Welcome.
    Garbage,
    /// Answers with bytes that are no frame at all (a huge length prefix).
    Malformed,
}

fn welcome() -> Welcome {
    Welcome {
        version: PROTOCOL_VERSION,
        max_frame_size: 1 << 20,
        heartbeat_ms: 0,
        server_name: "fake".into(),
        max_message_size: None,
    }
}

async fn broker(mut io: DuplexStream, peer: Peer, seen: Arc<Mutex<Vec<Hello>>>) {
    let mut buf = BytesMut::new();
    let mut codec = Codec::new(1 << 20);
    let hello = loop {
        if let Ok(Some(f)) = codec.decode(&mut buf) {
            break f;
        }
        if io.read_buf(&mut buf).await.unwrap_or(0) == 0 {
            return;
        }
    };
    if let Frame::Hello(h) = hello {
        seen.lock().unwrap().push(h);
    }
    let mut out = BytesMut::new();
    match peer {
        Peer::Down => return,
        Peer::Welcome => {
            Frame::Welcome(welcome()).encode(&mut out).unwrap();
            Frame::Ping(Ping { nonce: 9 }).encode(&mut out).unwrap();
        }
        Peer::Refuse => Frame::Refuse(Refuse {
            code: ErrorCode::UNAUTHORIZED,
            reason: "bad token".into(),
        })
        .encode(&mut out)
        .unwrap(),
        Peer::Silent => {
            std::future::pending::<()>().await;
        }
        Peer::Garbage => Frame::Ping(Ping { nonce: 1 }).encode(&mut out).unwrap(),
        Peer::Malformed => out.extend_from_slice(&[0xff; 16]),
    }
    let _ = io.write_all(&out).await;
    // Keep the pipe open until the client drops it.
    let _ = io.read_buf(&mut buf).await;
}

/// A dialer whose connector maps address `"a0"`, `"a1"`, ... to `peers`.
type Log<T> = Arc<Mutex<Vec<T>>>;

fn dialer(peers: Vec<Peer>) -> (Dialer, Log<Hello>, Log<String>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let tried = Arc::new(Mutex::new(Vec::new()));
    let (s, t) = (seen.clone(), tried.clone());
    let c = from_fn(move |addr: String| {
        t.lock().unwrap().push(addr.clone());
        let peer = addr[1..]
            .parse::<usize>()
            .ok()
            .and_then(|i| peers.get(i).copied());
        let seen = s.clone();
        async move {
            match peer {
                None | Some(Peer::Down) => Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionRefused,
                    "connection refused",
                )),
                Some(p) => {
                    let (a, b) = tokio::io::duplex(4096);
                    tokio::spawn(broker(b, p, seen));
                    Ok(Box::new(a) as BoxIo)
                }
            }
        }
    });
    let mut hello = Hello::new(Role::Sender, "dialer-test");
    hello.token = Some("secret".into());
    let d = Dialer::new(Arc::new(c), hello).connect_timeout(Duration::from_secs(2));
    (d, seen, tried)
}

fn addrs(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("a{i}")).collect()
}

#[tokio::test(start_paused = true)]
async fn welcome_keeps_the_bytes_behind_it_and_sends_the_hello() {
    let (d, seen, _) = dialer(vec![Peer::Welcome]);
    let mut est = d.connect("a0").await.unwrap();
    assert_eq!(est.welcome, welcome());
    assert_eq!(est.address, "a0");
    let mut codec = Codec::new(1 << 20);
    // The Ping that arrived with the Welcome is in `leftover`, or still in the pipe.
    while est.leftover.is_empty() {
        est.io.read_buf(&mut est.leftover).await.unwrap();
    }
    let mut f = codec.decode(&mut est.leftover).unwrap();
    while f.is_none() {
        est.io.read_buf(&mut est.leftover).await.unwrap();
        f = codec.decode(&mut est.leftover).unwrap();
    }
    assert_eq!(f, Some(Frame::Ping(Ping { nonce: 9 })));
    let hello = seen.lock().unwrap()[0].clone();
    assert_eq!(hello.client_name, "dialer-test");
    assert_eq!(hello.token.as_deref(), Some("secret"));
    assert_eq!(hello.role, Role::Sender);
}

#[tokio::test(start_paused = true)]
async fn refusal_carries_code_reason_and_address_and_is_an_event() {
    let (d, _, _) = dialer(vec![Peer::Refuse]);
    let events = Events::new(8);
    let mut rx = events.subscribe();
    let d = d.events(events);
    let err = d.connect("a0").await.unwrap_err();
    match &err {
        ConnectError::Refused {
            address,
            code,
            reason,
        } => {
            assert_eq!(address, "a0");
            assert_eq!(*code, ErrorCode::UNAUTHORIZED);
            assert_eq!(reason, "bad token");
        }
        other => panic!("{other}"),
    }
    assert!(!err.is_transient());
    assert_eq!(
        rx.recv().await.unwrap(),
        ConnectionEvent::Refused {
            address: "a0".into(),
            code: ErrorCode::UNAUTHORIZED,
            reason: "bad token".into()
        }
    );
}

#[tokio::test(start_paused = true)]
async fn a_silent_peer_times_out_after_the_connect_timeout() {
    let (d, _, _) = dialer(vec![Peer::Silent]);
    let start = tokio::time::Instant::now();
    let err = d.connect("a0").await.unwrap_err();
    assert!(
        matches!(err, ConnectError::Timeout { ref address, timeout }
        if address == "a0" && timeout == Duration::from_secs(2)),
        "{err}"
    );
    assert_eq!(start.elapsed(), Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn a_frame_other_than_welcome_is_a_handshake_error() {
    let (d, _, _) = dialer(vec![Peer::Garbage]);
    let err = d.connect("a0").await.unwrap_err();
    assert!(
        matches!(err, ConnectError::Handshake { ref reason, .. } if reason.contains("expected Welcome, got Ping")),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_round_tries_each_address_in_order_until_one_answers() {
    let (d, _, tried) = dialer(vec![Peer::Down, Peer::Silent, Peer::Welcome, Peer::Welcome]);
    let events = Events::new(8);
    let mut rx = events.subscribe();
    let est = d.events(events).connect_round(&addrs(4)).await.unwrap();
    assert_eq!(est.address, "a2");
    assert_eq!(*tried.lock().unwrap(), ["a0", "a1", "a2"]);
    assert_eq!(
        rx.recv().await.unwrap(),
        ConnectionEvent::Connected {
            address: "a2".into()
        }
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_round_reports_unreachable_or_the_refusal() {
    let (d, _, tried) = dialer(vec![Peer::Down, Peer::Silent]);
    let err = d.connect_round(&addrs(2)).await.unwrap_err();
    match &err {
        ConnectError::Unreachable { addresses, last } => {
            assert_eq!(addresses, &addrs(2));
            assert_eq!(last.kind(), std::io::ErrorKind::TimedOut);
        }
        other => panic!("{other}"),
    }
    assert!(err.is_transient());
    assert_eq!(tried.lock().unwrap().len(), 2);

    // A refusal anywhere in the round is what the caller needs to see.
    let (d, _, _) = dialer(vec![Peer::Refuse, Peer::Down]);
    let err = d.connect_round(&addrs(2)).await.unwrap_err();
    assert!(matches!(err, ConnectError::Refused { .. }), "{err}");

    let (d, _, _) = dialer(vec![]);
    let err = d.connect_round(&[]).await.unwrap_err();
    assert!(matches!(err, ConnectError::Unreachable { .. }), "{err}");
}

#[tokio::test(start_paused = true)]
async fn malformed_bytes_are_a_handshake_error_not_a_panic() {
    let (d, _, _) = dialer(vec![Peer::Malformed]);
    let err = d.connect("a0").await.unwrap_err();
    assert!(
        matches!(err, ConnectError::Handshake { ref address, .. } if address == "a0"),
        "{err}"
    );
    assert!(!err.is_transient());
}
