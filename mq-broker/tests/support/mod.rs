//! The behaviour suites' storage choice and broker start, and the raw-frame
//! test client over real TCP ([`Peer`], from `tests/src/peer.rs`): speaks
//! `mq-protocol` directly, not through the SDK crates.
#![allow(dead_code)]

use std::time::Duration;

use mq_broker::{Broker, BrokerConfig};

// The raw-frame peer is shared with mq-e2e's JetStream suites.
#[path = "../../../tests/src/peer.rs"]
mod peer;
#[allow(unused_imports)] // each suite uses its own part
pub use peer::{msg, Peer};

/// Generous bound for anything that should happen "at once" on loopback.
pub const WAIT: Duration = Duration::from_secs(10);

/// The storage the behaviour suites run against: memory, or the journal
/// on disk when `MQ_TEST_STORAGE=disk` (CI runs the suites both ways).
pub fn test_storage() -> mq_broker::Storage {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    match std::env::var("MQ_TEST_STORAGE").as_deref() {
        Ok("disk") => {
            let dir = std::env::temp_dir().join(format!(
                "mq-broker-test-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            mq_broker::Storage::Disk(mq_broker::DiskStorage::new(dir))
        }
        Ok("memory") | Err(_) => mq_broker::Storage::Memory,
        Ok("jetstream") => panic!(
            "MQ_TEST_STORAGE=jetstream: this suite runs on the single-node broker only \
             (first_half, second_half and hostile run on the gateway too)"
        ),
        Ok(other) => panic!("MQ_TEST_STORAGE={other}: use memory, disk or jetstream"),
    }
}

/// True when the suites run on the disk journal (`MQ_TEST_STORAGE=disk`).
pub fn on_disk() -> bool {
    std::env::var("MQ_TEST_STORAGE").as_deref() == Ok("disk")
}

pub async fn broker(config: BrokerConfig) -> Broker {
    let config = BrokerConfig {
        seed: config.seed.or(Some(1)),
        storage: test_storage(),
        ..config
    };
    match Broker::start(config).await {
        Ok(b) => b,
        Err(e) => panic!("broker did not start: {e}"),
    }
}
