//! The chaos suite: the whole loop over real TCP with seeded faults and
//! disruptions, then the checks of `mq_e2e::Report::violations`.
//!
//! Every scenario prints its seed; set `MQ_CHAOS_SEED=<seed>` to replay one.
//! Scenarios run one at a time (`--test-threads` is irrelevant: each test
//! starts its own broker on an ephemeral port).
//!
//! With `MQ_TEST_STORAGE=jetstream` every scenario runs against the
//! JetStream gateway instead (`mq_e2e::Backend::JetStream`): each test
//! starts a NATS server (`MQ_TEST_NATS_NODES=3`: a 3-node cluster) and a
//! gateway on it, a frame proxy between the clients and the gateway applies
//! the same seeded faults, and a broker restart crashes the gateway and
//! starts a new one over the same NATS. Fewer messages there
//! ([`messages`]): every publish is an fsync in NATS. Every scenario holds
//! there, the TLS one too (the gateway on TLS only, the proxy speaking TLS
//! on both sides), so none is skipped.

use std::time::Duration;

use mq_e2e::{run, seed_from_env, test_backend, Backend, Disruption, Scenario};
use mq_mock_broker::{DirectionFaults, Faults, RoleFilter};

/// Messages per scenario: 4 000 on the in-process broker, 1 000 through
/// the JetStream gateway (the whole JetStream run stays within about three
/// minutes on two cores).
fn messages() -> u64 {
    match test_backend() {
        Backend::JetStream(_) => 1_000,
        _ => 4_000,
    }
}

fn lossy(p: f64) -> DirectionFaults {
    DirectionFaults {
        drop: p,
        duplicate: p,
        delay: p,
        max_delay: Duration::from_millis(20),
    }
}

async fn check(mut s: Scenario) {
    s.settle_timeout = Duration::from_secs(90);
    let s_messages = s.messages;
    println!(
        "scenario {} seed {} (replay with MQ_CHAOS_SEED={})",
        s.name, s.seed, s.seed
    );
    let report = match run(&s).await {
        Ok(r) => r,
        Err(e) => panic!("scenario {} (seed {}) could not run: {e}", s.name, s.seed),
    };
    println!("{}", report.summary());
    assert!(
        report.violations().is_empty(),
        "scenario {} broke a promise (replay with MQ_CHAOS_SEED={}):\n{}",
        s.name,
        s.seed,
        report.summary()
    );
    assert_eq!(report.sent, s_messages);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_dropped_duplicated_and_delayed_both_ways() {
    let n = messages();
    let mut s = Scenario::new("lossy-both-ways", seed_from_env(), n);
    s.faults = Faults {
        to_broker: lossy(0.02),
        from_broker: lossy(0.02),
        roles: RoleFilter::Both,
        ..Faults::default()
    };
    check(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_lost_after_landing() {
    let n = messages();
    let mut s = Scenario::new("replies-lost-after-landing", seed_from_env(), n);
    s.faults = Faults {
        drop_reply_after_store: 0.1,
        roles: RoleFilter::Sender,
        ..Faults::default()
    };
    check(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_cut_at_random() {
    let n = messages();
    let mut s = Scenario::new("connections-cut", seed_from_env(), n);
    s.faults = Faults {
        cut_probability: 0.002,
        roles: RoleFilter::Both,
        ..Faults::default()
    };
    check(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_crash_and_restart_keeping_its_store() {
    let n = messages();
    let mut s = Scenario::new("broker-restart", seed_from_env(), n);
    s.faults = Faults {
        from_broker: lossy(0.01),
        roles: RoleFilter::Both,
        ..Faults::default()
    };
    s.disruptions = vec![
        (n / 4, Disruption::BrokerRestart),
        (n * 3 / 4, Disruption::BrokerRestart),
    ];
    check(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_stopped_and_restarted() {
    let n = messages();
    let mut s = Scenario::new("receiver-restart", seed_from_env(), n);
    s.faults = Faults {
        to_broker: lossy(0.01),
        roles: RoleFilter::Receiver,
        ..Faults::default()
    };
    s.handler_error_rate = 0.02;
    s.disruptions = vec![
        (n / 3, Disruption::ReceiverRestart),
        (n * 2 / 3, Disruption::ReceiverRestart),
    ];
    check(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_restarted_with_a_new_producer_id() {
    let n = messages();
    let mut s = Scenario::new("sender-restart", seed_from_env(), n);
    s.faults = Faults {
        drop_reply_after_store: 0.05,
        roles: RoleFilter::Sender,
        ..Faults::default()
    };
    s.disruptions = vec![(n / 2, Disruption::SenderRestart)];
    check(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_unreachable_longer_than_the_attempts() {
    let n = messages();
    let mut s = Scenario::new("partition", seed_from_env(), n);
    s.max_attempts = 5;
    s.disruptions = vec![(n / 2, Disruption::Partition { messages: 300 })];
    let seed = s.seed;
    check(s.clone()).await;
    // The partition must actually have failed some sends, or the scenario
    // tested nothing.
    let report = run(&s).await.expect("rerun");
    assert!(
        report.failed > 0,
        "seed {seed}: no send failed during the partition"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_at_once() {
    let n = messages();
    let mut s = Scenario::new("everything", seed_from_env(), n);
    s.faults = Faults {
        to_broker: lossy(0.01),
        from_broker: lossy(0.01),
        drop_reply_after_store: 0.03,
        cut_probability: 0.0005,
        roles: RoleFilter::Both,
        ..Faults::default()
    };
    s.handler_error_rate = 0.01;
    s.disruptions = vec![
        (n / 5, Disruption::BrokerRestart),
        (n * 2 / 5, Disruption::ReceiverRestart),
        (n * 3 / 5, Disruption::SenderRestart),
        (n * 4 / 5, Disruption::BrokerRestart),
    ];
    check(s).await;
}

/// The same faults, restarts and cuts over TLS (issue 15): every
/// reconnect is a new TLS handshake against the restarted broker's TLS-only
/// listener; lost, duplicated and delayed frames ride inside the TLS
/// records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_at_once_over_tls() {
    let n = messages();
    let mut s = Scenario::new("everything-tls", seed_from_env(), n);
    s.tls = true;
    s.faults = Faults {
        to_broker: lossy(0.01),
        from_broker: lossy(0.01),
        drop_reply_after_store: 0.03,
        cut_probability: 0.0005,
        roles: RoleFilter::Both,
        ..Faults::default()
    };
    s.handler_error_rate = 0.01;
    s.disruptions = vec![
        (n / 4, Disruption::BrokerRestart),
        (n / 2, Disruption::ReceiverRestart),
        (n * 3 / 4, Disruption::SenderRestart),
    ];
    check(s).await;
}

/// Deliveries lost with a small prefetch: each lost `Deliver` must not cost
/// the subscription its credit for good (a stall with messages left "ready"
/// at the broker would show as lost messages here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_lost_with_a_small_prefetch() {
    let n = messages();
    let mut s = Scenario::new("deliveries-lost-small-prefetch", seed_from_env(), n);
    s.prefetch = 8;
    s.concurrency = 4;
    s.faults = Faults {
        from_broker: DirectionFaults {
            drop: 0.1,
            ..DirectionFaults::default()
        },
        roles: RoleFilter::Receiver,
        ..Faults::default()
    };
    check(s).await;
}
