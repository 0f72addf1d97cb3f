//! The disk storage through the library: what survives a restart, the
//! directory lock and the journal's space limit. Real files, real TCP.

mod support;

use std::path::PathBuf;

use mq_broker::{Broker, BrokerConfig, BrokerError, DiskStorage, RestartMode, Storage};
use mq_protocol::{ErrorCode, MessageId, ReplyStatus, Role};
use support::{Peer, WAIT};

fn dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("durable-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn config(d: DiskStorage) -> BrokerConfig {
    BrokerConfig {
        seed: Some(1),
        storage: Storage::Disk(d),
        ..BrokerConfig::default()
    }
}

async fn start(d: DiskStorage) -> Broker {
    Broker::start(BrokerConfig {
        max_frame_size: 1024,
        ..config(d)
    })
    .await
    .expect("broker starts")
}

const N: u64 = 50;

async fn publish_n(b: &Broker) {
    let mut s = Peer::connect(b.addr(), Role::Sender).await;
    for seq in 1..=N {
        let r = s
            .publish(MessageId::new(3, seq), 1, "orders", b"body")
            .await;
        assert_eq!(r.status, ReplyStatus::Stored);
    }
}

/// Every stored message survives a stop and start, retransmits are still
/// duplicates, and a group created afterwards gets each message once.
async fn check_after_restart(b: &Broker) {
    assert_eq!(b.stats().stored_messages, N);
    let mut s = Peer::connect(b.addr(), Role::Sender).await;
    for seq in [1, N / 2, N] {
        let r = s
            .publish(MessageId::new(3, seq), 2, "orders", b"other")
            .await;
        assert_eq!(r.status, ReplyStatus::Duplicate, "seq {seq}");
    }
    let mut r = Peer::connect(b.addr(), Role::Receiver).await;
    r.subscribe(1, 1000, "orders", "billing").await;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..N {
        let d = r.deliver().await;
        assert_eq!(&d.payload[..], b"body", "never overwritten by a retransmit");
        assert!(seen.insert(d.id.seq));
        r.ack(1, d.id).await;
    }
    b.wait_for(WAIT, |s| s.stored_messages == 0)
        .await
        .expect("all acked and deleted");
}

#[tokio::test]
async fn a_graceful_restart_keeps_messages_and_dedup() {
    let d = DiskStorage::new(dir("graceful"));
    let b = start(d.clone()).await;
    publish_n(&b).await;
    b.shutdown().await;
    drop(b);
    let b = start(d.clone()).await;
    check_after_restart(&b).await;
    b.shutdown().await;
    drop(b);
    // Acks were journaled too: nothing comes back.
    let b = start(d).await;
    assert_eq!(b.stats().stored_messages, 0);
}

#[tokio::test]
async fn a_crash_restart_recovers_from_the_journal() {
    let b = start(DiskStorage::new(dir("crash")).segment_size(4096)).await;
    publish_n(&b).await;
    b.restart(RestartMode::KeepStore).await.expect("restart");
    check_after_restart(&b).await;
    b.restart(RestartMode::LoseStore).await.expect("restart");
    assert_eq!(b.stats().stored_messages, 0);
    assert_eq!(
        b.inspect().dedup_producers,
        0,
        "a lost disk forgets dedup too"
    );
}

#[tokio::test]
async fn acked_state_survives_a_crash() {
    let b = start(DiskStorage::new(dir("acked"))).await;
    publish_n(&b).await;
    let mut r = Peer::connect(b.addr(), Role::Receiver).await;
    r.subscribe(1, 1000, "orders", "billing").await;
    for _ in 0..N / 2 {
        let d = r.deliver().await;
        r.ack(1, d.id).await;
    }
    b.wait_for(WAIT, |s| s.acks_received == N / 2 && s.journal_syncs > 0)
        .await
        .expect("acks in");
    // The acks are journaled in the next batch; one more message forces it.
    let mut s = Peer::connect(b.addr(), Role::Sender).await;
    s.publish(MessageId::new(4, 1), 1, "other", b"x").await;
    b.restart(RestartMode::KeepStore).await.expect("restart");
    let info = b.inspect();
    let g = &info.groups[0];
    assert_eq!((g.topic.as_str(), g.group.as_str()), ("orders", "billing"));
    assert_eq!(g.ready, (N - N / 2) as usize, "only the unacked come back");
}

#[tokio::test]
async fn a_second_broker_on_the_same_directory_is_refused() {
    let d = DiskStorage::new(dir("lock"));
    let b = start(d.clone()).await;
    match Broker::start(config(d.clone())).await {
        Err(BrokerError::Locked { dir }) => assert_eq!(dir, d.data_dir),
        other => panic!("expected Locked, got {other:?}"),
    }
    b.shutdown().await;
    drop(b);
    let again = start(d).await;
    again.shutdown().await;
}

#[tokio::test]
async fn the_journal_limit_answers_store_full_and_frees_up_after_acks() {
    // Segments of 4 KiB and a 12 KiB journal limit: about 100 messages of
    // 100 bytes fit before STORE_FULL.
    let d = DiskStorage::new(dir("full"))
        .segment_size(4096)
        .max_disk_bytes(3 * 4096);
    let b = Broker::start(BrokerConfig {
        max_frame_size: 1024,
        ..config(d)
    })
    .await
    .expect("start");
    let mut s = Peer::connect(b.addr(), Role::Sender).await;
    let mut stored = 0u64;
    let mut full = false;
    for seq in 1..=1000 {
        let r = s.publish(MessageId::new(5, seq), 1, "t", &[7u8; 100]).await;
        match r.status {
            ReplyStatus::Stored => stored += 1,
            ReplyStatus::Rejected { code, .. } => {
                assert_eq!(code, ErrorCode::STORE_FULL);
                full = true;
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(full && stored > 10, "stored {stored} before STORE_FULL");
    // A consumer takes everything; checkpoints then reclaim the journal.
    let mut r = Peer::connect(b.addr(), Role::Receiver).await;
    r.subscribe(1, 10_000, "t", "g").await;
    for _ in 0..stored {
        let d = r.deliver().await;
        r.ack(1, d.id).await;
    }
    b.wait_for(WAIT, |st| st.acks_received == stored)
        .await
        .expect("every ack in");
    // The acks make the journal hold far more than the (now empty) live
    // state: a checkpoint reclaims it, and new messages are accepted again.
    let st = b
        .wait_for(WAIT, |st| st.checkpoints >= 2 && st.journal_bytes < 4096)
        .await
        .expect("a checkpoint reclaimed the journal");
    assert_eq!(st.stored_messages, 0);
    let r = s.publish(MessageId::new(6, 1), 1, "t", &[7u8; 100]).await;
    assert_eq!(r.status, ReplyStatus::Stored);
    assert!(b.stats().journal_bytes <= 3 * 4096);
}
