//! A custom retry policy: short reply timeouts growing by 1.5x, many
//! attempts, no jitter, against a broker that loses 30 % of its replies after
//! storing. Prints how many attempts each message needed; every one is
//! stored once (the broker answers `Duplicate` to the retransmissions).
//!
//! ```text
//! cargo run --example custom_backoff
//! ```

use std::time::Duration;

use mq_client_sender::{Backoff, OutgoingMessage, Sender, SenderConfig};
use mq_mock_broker::{BrokerConfig, Faults, MockBroker, RoleFilter};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let broker = MockBroker::start(BrokerConfig {
        seed: Some(1),
        faults: Faults {
            drop_reply_after_store: 0.3,
            roles: RoleFilter::Sender,
            ..Faults::default()
        },
        ..BrokerConfig::default()
    })
    .await?;

    let config = SenderConfig::new(broker.addr().to_string())
        .retry(Backoff {
            initial: Duration::from_millis(20),
            multiplier: 1.5,
            max: Duration::from_millis(300),
            jitter: 0.0,
        })
        .max_attempts(12)
        .send_timeout(Some(Duration::from_secs(5)))
        .seed(Some(1));
    config.validate()?;
    let sender = Sender::connect(config).await?;
    for i in 0..10 {
        let r = sender
            .send(OutgoingMessage::new("payments", format!("payment {i}")))
            .await?;
        println!(
            "{}: {} attempt(s), {:?}{}",
            r.id,
            r.attempts,
            r.elapsed,
            if r.duplicate {
                " (answered Duplicate: an earlier copy was stored, its reply lost)"
            } else {
                ""
            }
        );
        assert_eq!(broker.landed_count(r.id), 1);
    }
    println!("broker: {:?}", broker.stats());
    sender.close(Duration::from_secs(1)).await;
    broker.shutdown().await;
    Ok(())
}
