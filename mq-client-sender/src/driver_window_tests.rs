//! The window after round 2's permit accounting: hand-overs `forget` their
//! permits and the driver gives back a count per outcome, so every path
//! (future, callback, rejection, abandon at close) must add back exactly
//! what was taken.

use mq_protocol::{ErrorCode, ReplyStatus};

use super::*;
use crate::{OutgoingMessage, Receipt, SendError};

fn window(sender: &Sender) -> (usize, usize) {
    (
        sender.shared.count.available_permits(),
        sender.shared.bytes.available_permits(),
    )
}

#[tokio::test(start_paused = true)]
async fn every_outcome_gives_back_exactly_its_permits() {
    let cfg = config();
    let full = (cfg.max_in_flight, cfg.max_in_flight_bytes);
    let (sender, _net, mut peer) = start(cfg, welcome(0, 1 << 20)).await;
    assert_eq!(window(&sender), full);

    // Different sizes, so a byte count given back for the wrong message
    // shows up as a difference.
    let a = sender
        .enqueue(OutgoingMessage::new("t", vec![1u8; 10]))
        .await
        .unwrap();
    let b = sender
        .enqueue(OutgoingMessage::new("t", vec![2u8; 300]))
        .await
        .unwrap();
    let (cb_tx, mut cb_rx) = tokio::sync::mpsc::unbounded_channel();
    sender
        .send_with_callback(
            OutgoingMessage::new("t", vec![3u8; 77]),
            move |o: Result<Receipt, SendError>| {
                let _ = cb_tx.send(o.is_ok());
            },
        )
        .await
        .unwrap();
    let taken = window(&sender);
    assert_eq!(taken.0, full.0 - 3);
    assert!(taken.1 < full.1 - 387, "frame bytes are taken: {taken:?}");

    let ma = peer.recv_msg().await;
    let mb = peer.recv_msg().await;
    let mc = peer.recv_msg().await;
    peer.reply(&ma, stored()).await;
    let rejected = ReplyStatus::Rejected {
        code: ErrorCode::INVALID_TOPIC,
        reason: "no".into(),
    };
    peer.reply(&mb, rejected).await;
    peer.reply(&mc, stored()).await;
    let ra = a.await.expect("a confirmed");
    assert_eq!((ra.id, ra.attempts, ra.duplicate), (ma.id, 1, false));
    assert!(matches!(b.await, Err(SendError::Rejected { .. })));
    sender.flush().await.expect("flush");
    assert_eq!(cb_rx.recv().await, Some(true));
    assert_eq!(window(&sender), full, "everything given back");

    // Abandoned at close: given back too.
    let _d = sender
        .enqueue(OutgoingMessage::new("t", "dd"))
        .await
        .unwrap();
    let report = sender.close(std::time::Duration::ZERO).await;
    assert_eq!(report.unresolved.len(), 1);
    assert_eq!(window(&sender), full, "abandoned permits given back");
}
