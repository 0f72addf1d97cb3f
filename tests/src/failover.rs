//! What the two failover-under-load tests share (`tests/failover.rs`, with
//! in-process gateways, and `mq-broker/tests/jetstream_failover.rs`, with
//! gateway processes, which includes this file by path): the clients'
//! quick reconnect backoff and a receiver that counts each handled ID.
//!
//! # Examples
//!
//! ```no_run
//! # async fn f() {
//! use std::sync::Arc;
//! use mq_e2e::failover::{receiver, Handled};
//!
//! let handled: Handled = Arc::default();
//! let (tx, _rx) = tokio::sync::watch::channel(0u64);
//! let r = receiver(&["127.0.0.1:7878".into()], "billing", handled.clone(), Arc::new(tx), 7).await;
//! # drop(r); }
//! ```
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mq_client_receiver::{Delivery, HandlerError, Receiver, ReceiverConfig};
use mq_protocol::{Backoff, MessageId};
use tokio::sync::watch;

/// Reconnect backoff for the clients: 20 ms doubling to 500 ms, so a
/// client finds a restarted gateway or node within the test's bounds.
pub fn quick() -> Backoff {
    Backoff {
        initial: Duration::from_millis(20),
        multiplier: 2.0,
        max: Duration::from_millis(500),
        jitter: 0.2,
    }
}

/// How many times each ID reached one group's handler.
pub type Handled = Arc<Mutex<HashMap<MessageId, u32>>>;

/// A receiver in `group` on topic `orders` over every address in `addrs`,
/// counting each handled ID in `handled` and bumping `bump` once per
/// handling; `seed` seeds its jitter.
pub async fn receiver(
    addrs: &[String],
    group: &str,
    handled: Handled,
    bump: Arc<watch::Sender<u64>>,
    seed: u64,
) -> Receiver {
    Receiver::connect(
        ReceiverConfig::default()
            .addresses(addrs.to_vec())
            .client_name(format!("failover-{group}"))
            .topic("orders")
            .group(group)
            .prefetch(128)
            .reconnect(quick())
            .seed(Some(seed)),
        move |d: Delivery| {
            let (h, tx) = (handled.clone(), bump.clone());
            async move {
                *h.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(d.id())
                    .or_insert(0) += 1;
                tx.send_modify(|n| *n += 1);
                Ok::<(), HandlerError>(())
            }
        },
    )
    .await
    .expect("receiver connects")
}
