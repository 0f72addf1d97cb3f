//! [`Handlers`] stepped by hand (a no-op waker, no runtime): the concurrency
//! limit, the waiting order, panics turned into errors.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::channel::oneshot;
use futures::future::BoxFuture;
use futures::task::noop_waker_ref;
use mq_protocol::{Deliver, Headers, MessageId};
use tokio::sync::mpsc;

use super::{Done, Handlers};
use crate::config::AckMode;
use crate::delivery::Delivery;
use crate::error::HandlerError;
use crate::handler::RecvCallback;
use crate::stats::Counters;

type Gates = Arc<Mutex<HashMap<u64, oneshot::Receiver<Result<(), HandlerError>>>>>;

/// Waits for the gate of its message's sequence; records the start order.
/// Sequence 100 panics in `on_message`, 200 in its future.
struct Gated {
    gates: Gates,
    started: Arc<Mutex<Vec<u64>>>,
}

impl RecvCallback for Gated {
    fn on_message(&self, d: Delivery) -> BoxFuture<'static, Result<(), HandlerError>> {
        let seq = d.id().seq;
        assert!(seq != 100, "boom in the call");
        self.started.lock().unwrap().push(seq);
        let gate = self.gates.lock().unwrap().remove(&seq);
        Box::pin(async move {
            assert!(seq != 200, "boom in the future");
            match gate {
                Some(g) => g.await.unwrap_or(Ok(())),
                None => Ok(()),
            }
        })
    }
}

struct Fixture {
    h: Handlers,
    gates: Gates,
    started: Arc<Mutex<Vec<u64>>>,
    tx: mpsc::UnboundedSender<crate::delivery::Event>,
    _rx: mpsc::UnboundedReceiver<crate::delivery::Event>,
}

fn fixture(limit: usize) -> Fixture {
    let gates = Gates::default();
    let started = Arc::new(Mutex::new(Vec::new()));
    let handler = Arc::new(Gated {
        gates: gates.clone(),
        started: started.clone(),
    });
    let (tx, rx) = mpsc::unbounded_channel();
    Fixture {
        h: Handlers::new(handler, limit, Arc::new(Counters::default())),
        gates,
        started,
        tx,
        _rx: rx,
    }
}

impl Fixture {
    /// Pushes `seq` with a gate; returns the gate's sender.
    fn push_gated(&mut self, seq: u64) -> oneshot::Sender<Result<(), HandlerError>> {
        let (s, r) = oneshot::channel();
        self.gates.lock().unwrap().insert(seq, r);
        self.push(seq);
        s
    }

    fn push(&mut self, seq: u64) {
        let d = Deliver {
            sub_id: 1,
            id: MessageId::new(1, seq),
            delivery_attempt: 1,
            topic: "t".into(),
            headers: Headers::default(),
            payload: bytes::Bytes::from_static(b"x"),
        };
        let delivery = Delivery::new(d, AckMode::Auto, seq * 10, self.tx.clone());
        self.h.push(delivery, seq * 10, tracing::Span::none());
    }

    fn poll(&mut self) -> Poll<Option<Done>> {
        self.h.poll_next(&mut Context::from_waker(noop_waker_ref()))
    }

    fn started(&self) -> Vec<u64> {
        self.started.lock().unwrap().clone()
    }
}

#[test]
fn at_most_limit_run_and_the_rest_start_in_arrival_order() {
    let mut f = fixture(2);
    let g1 = f.push_gated(1);
    let g2 = f.push_gated(2);
    let _g3 = f.push_gated(3);
    let _g4 = f.push_gated(4);
    assert_eq!(f.started(), vec![1, 2]);
    assert_eq!(f.h.running(), 2);
    assert!(f.poll().is_pending());

    g2.send(Ok(())).unwrap();
    let Poll::Ready(Some((id, token, r))) = f.poll() else {
        panic!("2 finished");
    };
    assert_eq!((id.seq, token), (2, 20));
    assert!(r.is_ok());
    // The freed slot went to the oldest waiting delivery.
    assert_eq!(f.started(), vec![1, 2, 3]);
    assert_eq!(f.h.running(), 2);

    g1.send(Err(HandlerError::new("no"))).unwrap();
    let Poll::Ready(Some((id, _, r))) = f.poll() else {
        panic!("1 finished");
    };
    assert_eq!(id.seq, 1);
    assert!(r.is_err());
    assert_eq!(f.started(), vec![1, 2, 3, 4]);
    assert!(!f.h.is_empty());

    f.h.abort_all();
    assert!(f.h.is_empty());
    assert!(matches!(f.poll(), Poll::Ready(None)));
}

#[test]
fn a_panic_in_the_call_or_its_future_is_an_error() {
    let mut f = fixture(4);
    f.push(100);
    f.push(200);
    f.push(3);
    let mut got = HashMap::new();
    while let Poll::Ready(Some((id, _, r))) = f.poll() {
        got.insert(id.seq, r);
    }
    assert_eq!(got.len(), 3);
    let e100 = got[&100].as_ref().unwrap_err().to_string();
    let e200 = got[&200].as_ref().unwrap_err().to_string();
    assert!(
        e100.contains("handler panicked: boom in the call"),
        "{e100}"
    );
    assert!(
        e200.contains("handler panicked: boom in the future"),
        "{e200}"
    );
    assert!(got[&3].is_ok());
    assert!(f.h.is_empty());
}

#[test]
fn empty_is_ready_none() {
    let mut f = fixture(1);
    assert!(f.h.is_empty());
    assert!(matches!(f.poll(), Poll::Ready(None)));
}

/// Counts wake-ups of the driver's waker.
#[derive(Default)]
struct Woken(std::sync::atomic::AtomicUsize);

impl futures::task::ArcWake for Woken {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn a_call_pending_on_its_first_poll_wakes_the_driver_when_it_can_go_on() {
    let mut f = fixture(2);
    // Finishes on its first poll: never leaves `fresh`.
    f.push(7);
    let Poll::Ready(Some((id, _, Ok(())))) = f.poll() else {
        panic!("7 finished on its first poll");
    };
    assert_eq!(id.seq, 7);

    let g = f.push_gated(8);
    let woken = Arc::new(Woken::default());
    let waker = futures::task::waker(woken.clone());
    let mut cx = Context::from_waker(&waker);
    assert!(f.h.poll_next(&mut cx).is_pending());
    // (`FuturesUnordered` may wake itself once to yield; count from here.)
    let before = woken.0.load(std::sync::atomic::Ordering::SeqCst);
    assert!(f.h.poll_next(&mut cx).is_pending());
    let before_send = woken.0.load(std::sync::atomic::Ordering::SeqCst);
    g.send(Ok(())).unwrap();
    // The wake-up reaches the driver's waker (through the node the call
    // moved to after its first poll).
    assert!(
        woken.0.load(std::sync::atomic::Ordering::SeqCst) > before_send,
        "{before}"
    );
    let Poll::Ready(Some((id, _, Ok(())))) = f.h.poll_next(&mut cx) else {
        panic!("8 finished once woken");
    };
    assert_eq!(id.seq, 8);
    assert!(f.h.is_empty());
}
