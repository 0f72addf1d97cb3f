//! The whole loop as a harness: a [`mq_mock_broker::MockBroker`] with faults,
//! a [`mq_client_sender::Sender`] and a [`mq_client_receiver::Receiver`] over
//! real TCP on loopback, a [`Scenario`] of messages and disruptions, and a
//! [`Report`] that checks the SDK's promises after the run.
//!
//! The chaos suite (`tests/chaos.rs`), the soak test (`tests/soak.rs`) and
//! the `loopback` example all run through [`run`], so there is one definition
//! of "nothing lost, nothing handled twice".
//!
//! # The checks ([`Report::violations`])
//!
//! * every accepted send has exactly one outcome (its `SendCallback` ran once);
//! * every confirmed message reached the handler exactly once, with its own
//!   payload (no loss, no second handling: the receiver's dedup store is kept
//!   across receiver restarts, and the run stays within its bounds);
//! * no message, confirmed or not, was handled twice;
//! * every failure is explained: a `Timeout` of a message sent while the
//!   broker was unreachable (a [`Disruption::Partition`]);
//! * nothing is left anywhere: the sender has nothing in flight, the broker
//!   has nothing stored and no dead letters, the receiver nothing unsettled.
//!
//! # Examples
//!
//! ```no_run
//! # async fn f() -> Result<(), mq_e2e::HarnessError> {
//! let scenario = mq_e2e::Scenario::new("smoke", 42, 1_000);
//! let report = mq_e2e::run(&scenario).await?;
//! assert!(report.violations().is_empty(), "{}", report.summary());
//! # Ok(()) }
//! ```

mod backend;
pub mod failover;
pub mod gateway;
pub mod nats;
pub mod peer;
mod proxy;
mod report;
mod run;
mod scenario;
mod tally;

/// Every Rust snippet of the repository's README, compiled (and the ones
/// without `no_run`, run) by `cargo test -p mq-e2e --doc`, so the README
/// cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeSnippets;

pub use report::Report;
pub use run::{run, settings_changed, HarnessError};
pub use scenario::{
    disk_storage, seed_from_env, test_backend, test_storage, Backend, Disruption, JetStreamBackend,
    Scenario,
};
