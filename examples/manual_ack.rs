//! Manual acknowledgement (`SendAck`): consume a stream of deliveries, ack
//! the ones processed, nack one with a delay and see it come back.
//!
//! ```text
//! cargo run --example manual_ack
//! ```

use std::time::Duration;

use mq_client_receiver::{AckMode, Receiver, ReceiverConfig};
use mq_client_sender::{OutgoingMessage, Sender, SenderConfig};
use mq_mock_broker::{BrokerConfig, MockBroker};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let broker = MockBroker::start(BrokerConfig::default()).await?;
    let addr = broker.addr().to_string();

    let config = ReceiverConfig::default()
        .addresses(vec![addr.clone()])
        .topic("invoices")
        .group("printer")
        .ack_mode(AckMode::Manual)
        .prefetch(8)
        .max_concurrency(8);
    let (receiver, mut deliveries) = Receiver::connect_stream(config).await?;

    let sender = Sender::connect(SenderConfig::new(addr)).await?;
    for i in 1..=3 {
        sender
            .send(OutgoingMessage::new("invoices", format!("invoice {i}")))
            .await?;
    }

    let mut nacked_once = false;
    let mut acked = 0;
    while acked < 3 {
        let Some(d) = deliveries.recv().await else {
            break;
        };
        let text = String::from_utf8_lossy(d.payload()).into_owned();
        if text == "invoice 2" && !nacked_once {
            nacked_once = true;
            println!("{text}: printer jammed, nack with a 200 ms delay");
            d.nack(Some(Duration::from_millis(200))).await?;
        } else {
            println!("{text}: printed (delivery {}), ack", d.delivery_attempt());
            d.ack().await?;
            acked += 1;
        }
    }
    broker
        .wait_for(Duration::from_secs(5), |s| s.stored_messages == 0)
        .await?;
    println!("broker stats: {:?}", broker.stats());
    receiver.close(Duration::from_secs(1)).await?;
    sender.close(Duration::from_secs(1)).await;
    broker.shutdown().await;
    Ok(())
}
