//! The driver with a store that does I/O: its pending calls must not block
//! other deliveries, must hold their ID as in progress, and the `Ack` must
//! wait for the mark.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Instant;

use tokio::sync::Semaphore;

use super::*;
use crate::{DedupStore, StoreFuture};

/// A store whose calls for `slow_seq` wait for a permit of `gate`; other
/// IDs answer at once.
#[derive(Clone)]
struct SlowStore {
    seen: Arc<Mutex<HashSet<MessageId>>>,
    gate: Arc<Semaphore>,
    slow_seq: u64,
    slow_contains: bool,
}

impl SlowStore {
    fn new(slow_seq: u64, slow_contains: bool) -> Self {
        Self {
            seen: Default::default(),
            gate: Arc::new(Semaphore::new(0)),
            slow_seq,
            slow_contains,
        }
    }
    fn has(&self, id: MessageId) -> bool {
        self.seen.lock().unwrap().contains(&id)
    }
}

impl DedupStore for SlowStore {
    fn contains(&self, id: MessageId) -> StoreFuture<bool> {
        let seen = self.seen.clone();
        if !(self.slow_contains && id.seq == self.slow_seq) {
            return StoreFuture::ready(Ok(self.has(id)));
        }
        let gate = self.gate.clone();
        StoreFuture::new(async move {
            let _p = gate.acquire().await;
            let r = seen.lock().unwrap().contains(&id);
            Ok(r)
        })
    }

    fn insert(&self, _now: Instant, id: MessageId) -> StoreFuture<()> {
        let seen = self.seen.clone();
        if self.slow_contains || id.seq != self.slow_seq {
            seen.lock().unwrap().insert(id);
            return StoreFuture::ready(Ok(()));
        }
        let gate = self.gate.clone();
        StoreFuture::new(async move {
            let _p = gate.acquire().await;
            seen.lock().unwrap().insert(id);
            Ok(())
        })
    }
}

fn counting(calls: Arc<Mutex<Vec<u64>>>) -> impl RecvCallback {
    move |d: Delivery| {
        let calls = calls.clone();
        async move {
            calls.lock().unwrap().push(d.id().seq);
            Ok::<(), HandlerError>(())
        }
    }
}

async fn start_with(
    store: SlowStore,
    h: impl RecvCallback,
) -> (crate::Receiver, Peer, mpsc::UnboundedReceiver<Peer>) {
    let (c, mut conns) = pipe_connector();
    let (r, (peer, _)) = tokio::join!(
        ReceiverBuilder::new(config(8, 4, AckMode::Auto))
            .dedup_store(Arc::new(store))
            .connector(c)
            .connect(h),
        accept(&mut conns, 0)
    );
    (r.unwrap(), peer, conns)
}

#[tokio::test(start_paused = true)]
async fn a_pending_lookup_blocks_nothing_else_and_holds_its_id() {
    let store = SlowStore::new(1, true);
    let calls = Arc::new(Mutex::new(Vec::new()));
    let (r, mut peer, _conns) = start_with(store.clone(), counting(calls.clone())).await;
    peer.send(deliver(1, 1)).await.unwrap();
    // Message 2 is handled and acked while 1's lookup is still pending.
    peer.send(deliver(2, 1)).await.unwrap();
    let (f, _) = settlements(&mut peer, 1).await;
    assert!(matches!(&f[0], Frame::Ack(a) if a.id == MessageId::new(9, 2)));
    // A redelivery of 1 during its lookup is tied to it, not handled twice.
    peer.send(deliver(1, 2)).await.unwrap();
    assert_eq!(*calls.lock().unwrap(), vec![2]);
    store.gate.add_permits(1);
    let (f, mut granted) = settlements(&mut peer, 1).await;
    assert!(matches!(&f[0], Frame::Ack(a) if a.id == MessageId::new(9, 1)));
    if granted < 3 {
        credit(&mut peer, 3 - granted).await;
        granted = 3;
    }
    assert_eq!(granted, 3, "one credit per charged delivery");
    assert_eq!(*calls.lock().unwrap(), vec![2, 1]);
    r.close(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_ack_waits_for_the_mark_and_a_redelivery_waits_with_it() {
    let store = SlowStore::new(1, false);
    let calls = Arc::new(Mutex::new(Vec::new()));
    let (r, mut peer, _conns) = start_with(store.clone(), counting(calls.clone())).await;
    peer.send(deliver(1, 1)).await.unwrap();
    peer.send(deliver(2, 1)).await.unwrap();
    // 2 is marked at once and acked; 1's mark is pending: no Ack for it.
    let (f, _) = settlements(&mut peer, 1).await;
    assert!(matches!(&f[0], Frame::Ack(a) if a.id == MessageId::new(9, 2)));
    peer.send(deliver(1, 2)).await.unwrap();
    let quiet = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let f @ (Frame::Ack(_) | Frame::Nack(_)) = next(&mut peer).await {
                return f;
            }
        }
    })
    .await;
    assert!(quiet.is_err(), "settled before the mark: {quiet:?}");
    assert!(!store.has(MessageId::new(9, 1)));
    store.gate.add_permits(1);
    let (f, _) = settlements(&mut peer, 1).await;
    assert!(matches!(&f[0], Frame::Ack(a) if a.id == MessageId::new(9, 1)));
    assert!(store.has(MessageId::new(9, 1)));
    assert_eq!(*calls.lock().unwrap(), vec![1, 2]);
    let s = r.stats();
    assert_eq!((s.handled, s.acked), (2, 2));
    r.close(Duration::from_secs(1)).await.unwrap();
}
