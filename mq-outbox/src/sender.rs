//! [`Dispatch`] for `mq_client_sender::Sender`, and [`connect_sender`],
//! which configures a sender for an outbox.

use mq_client_sender::{ConnectError, OutgoingMessage, SendError, Sender, SenderConfig};
use mq_protocol::Message;

use crate::dispatcher::Dispatch;
use crate::error::DispatchError;
use crate::outbox::Outbox;

/// Connects a sender set up to dispatch `outbox`'s rows:
///
/// * `producer_id` = [`Outbox::producer_id`], so each row's ID is
///   `(producer_id, seq)`, identical on every attempt and in every process;
/// * `send_timeout` capped at 80 % of the outbox lease, because the sender
///   keeps retransmitting a message whose `send` future was dropped: the cap
///   makes it give up before the lease expires and another dispatcher may
///   claim the row.
///
/// Use this sender only for outbox rows: its automatic sequences would
/// collide with the rows' explicit ones.
///
/// # Errors
///
/// The sender's [`ConnectError`] (invalid config, broker unreachable or refusing).
///
/// # Examples
///
/// ```no_run
/// # async fn f(outbox: mq_outbox::Outbox) -> Result<(), mq_client_sender::ConnectError> {
/// let sender = mq_outbox::connect_sender(
///     &outbox,
///     mq_client_sender::SenderConfig::new("127.0.0.1:7878"),
/// ).await?;
/// let handle = outbox.dispatcher(sender).spawn();
/// # Ok(()) }
/// ```
pub async fn connect_sender(
    outbox: &Outbox,
    mut config: SenderConfig,
) -> Result<Sender, ConnectError> {
    config.producer_id = Some(outbox.producer_id());
    let cap = outbox.config().lease.mul_f64(0.8);
    config.send_timeout = Some(config.send_timeout.map_or(cap, |t| t.min(cap)));
    Sender::connect(config).await
}

impl Dispatch for Sender {
    /// Sends the row with its explicit sequence and waits for the confirm.
    /// A sender whose producer id differs from the row's is refused
    /// (transient, logged): use [`connect_sender`].
    async fn dispatch(&self, m: Message) -> Result<(), DispatchError> {
        {
            if self.producer_id() != m.id.producer {
                tracing::error!(
                    sender = %format_args!("{:016x}", self.producer_id()),
                    outbox = %format_args!("{:016x}", m.id.producer),
                    "sender producer id differs from the outbox's; use mq_outbox::connect_sender"
                );
                return Err(DispatchError::Transient(format!(
                    "sender producer id {:016x} is not the outbox's {:016x}",
                    self.producer_id(),
                    m.id.producer
                )));
            }
            let msg = OutgoingMessage::new(String::from(&*m.topic), m.payload)
                .headers_from(m.headers)
                .sequence(m.id.seq);
            match self.send(msg).await {
                Ok(_receipt) => Ok(()),
                Err(e) => Err(map_error(e)),
            }
        }
    }
}

fn map_error(e: SendError) -> DispatchError {
    let text = e.to_string();
    match e {
        SendError::TooLarge { .. } | SendError::InvalidMessage { .. } => {
            DispatchError::Permanent(text)
        }
        SendError::Rejected { code, .. } if !code.is_retryable() => DispatchError::Permanent(text),
        _ => DispatchError::Transient(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mq_protocol::{ErrorCode, MessageId};

    #[test]
    fn permanent_rejections_fail_at_once() {
        let id = MessageId::new(1, 1);
        let permanent = SendError::Rejected {
            id,
            code: ErrorCode::MESSAGE_TOO_LARGE,
            reason: "big".into(),
            attempts: 1,
        };
        assert!(map_error(permanent).is_permanent());
        let transient = SendError::Rejected {
            id,
            code: ErrorCode::STORE_FULL,
            reason: "full".into(),
            attempts: 5,
        };
        assert!(!map_error(transient).is_permanent());
        assert!(!map_error(SendError::Timeout { id, attempts: 5 }).is_permanent());
    }
}
