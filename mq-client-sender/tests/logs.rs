//! What the sender logs when its connection is cut: one `warn` for the lost
//! connection and one `info` for the reconnect, each once per event, under
//! the target `mq_client_sender` (what the README's "Seeing the SDK's logs"
//! tells users to enable).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mq_client_sender::{OutgoingMessage, Sender, SenderConfig};
use mq_mock_broker::{BrokerConfig, MockBroker};
use tracing_subscriber::fmt::MakeWriter;

/// Collects formatted log lines.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Lines {
    type Writer = Lines;
    fn make_writer(&'a self) -> Lines {
        self.clone()
    }
}

impl Lines {
    fn matching(&self, level: &str, text: &str) -> usize {
        let bytes = self.0.lock().expect("lines").clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter(|l| l.contains(level) && l.contains(text))
            .count()
    }
}

// One thread: the sender's driver runs on it, so the thread-local
// subscriber sees its events.
#[tokio::test(flavor = "current_thread")]
async fn a_cut_connection_is_logged_once_as_lost_and_once_as_reconnected() {
    let lines = Lines::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("mq_client_sender=info")
        .with_writer(lines.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let seed = 19;
    eprintln!("seed = {seed}");
    let broker = MockBroker::start(BrokerConfig {
        seed: Some(seed),
        ..BrokerConfig::default()
    })
    .await
    .expect("broker");
    let sender = Sender::connect(SenderConfig::new(broker.addr().to_string()).seed(Some(seed)))
        .await
        .expect("connect");
    sender
        .send(OutgoingMessage::new("orders", "before"))
        .await
        .expect("first send");
    assert_eq!(lines.matching("INFO", "connected"), 1);

    broker.crash();
    // Confirmed only once the sender noticed the cut and reconnected.
    let receipt = tokio::time::timeout(
        Duration::from_secs(60),
        sender.send(OutgoingMessage::new("orders", "after")),
    )
    .await
    .expect("confirmed after the reconnect")
    .expect("second send");
    assert!(broker.inspect().is_stored(receipt.id));
    assert_eq!(sender.stats().reconnects, 1);

    assert_eq!(lines.matching("WARN", "connection lost; reconnecting"), 1);
    assert_eq!(lines.matching("INFO", "reconnected; re-sending"), 1);
    sender.close(Duration::from_secs(5)).await;
    broker.shutdown().await;
}

// The driver's trace events for a message sit in a `mq_send` span that
// carries its ID, so a subscriber can follow one message.
#[tokio::test(flavor = "current_thread")]
async fn driver_events_carry_the_message_id_in_a_span() {
    let lines = Lines::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("mq_client_sender=trace")
        .with_writer(lines.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let broker = MockBroker::start(BrokerConfig::default())
        .await
        .expect("broker");
    let sender = Sender::connect(SenderConfig::new(broker.addr().to_string()))
        .await
        .expect("connect");
    let pending = sender
        .enqueue(OutgoingMessage::new("orders", "traced"))
        .await
        .expect("accepted");
    let id = pending.id();
    pending.await.expect("confirmed");
    sender.close(Duration::from_secs(5)).await;
    let span = format!("mq_send{{id={id}}}");
    // `matching` looks for both substrings in one line.
    assert_eq!(lines.matching(&span, "confirmed"), 1);
    broker.shutdown().await;
}
