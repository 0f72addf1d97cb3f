//! The long soak: at least a million messages through the whole loop with
//! faults and disruptions. Ignored by default (minutes of run time):
//!
//! ```text
//! cargo test --release -p mq-e2e --test soak -- --ignored --nocapture
//! MQ_SOAK_MESSAGES=2000000 MQ_CHAOS_SEED=42 cargo test --release -p mq-e2e --test soak -- --ignored --nocapture
//! ```

use std::time::Duration;

use mq_e2e::{run, seed_from_env, Disruption, Scenario};
use mq_mock_broker::{DirectionFaults, Faults, RoleFilter};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes long; run with --ignored (see the README)"]
async fn soak_one_million_messages() {
    let messages: u64 = std::env::var("MQ_SOAK_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let mut s = Scenario::new("soak", seed_from_env(), messages);
    s.window = 1_000;
    s.prefetch = 512;
    s.concurrency = 64;
    s.progress = true;
    s.settle_timeout = Duration::from_secs(600);
    let flaky = DirectionFaults {
        drop: 0.001,
        duplicate: 0.001,
        delay: 0.001,
        max_delay: Duration::from_millis(20),
    };
    s.faults = Faults {
        to_broker: flaky,
        from_broker: flaky,
        drop_reply_after_store: 0.002,
        cut_probability: 0.000_01,
        roles: RoleFilter::Both,
        ..Faults::default()
    };
    s.handler_error_rate = 0.001;
    s.disruptions = [1, 3, 5, 7, 9]
        .iter()
        .map(|k| (messages * k / 10, Disruption::BrokerRestart))
        .chain(
            [2, 6]
                .iter()
                .map(|k| (messages * k / 10, Disruption::ReceiverRestart)),
        )
        .chain(
            [4, 8]
                .iter()
                .map(|k| (messages * k / 10, Disruption::SenderRestart)),
        )
        .collect();
    println!(
        "soak seed {} (replay with MQ_CHAOS_SEED={})",
        s.seed, s.seed
    );
    let report = run(&s).await.expect("soak could not run");
    println!("{}", report.summary());
    assert!(report.violations().is_empty(), "{}", report.summary());
}
