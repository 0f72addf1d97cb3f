//! The message-level limits, one rule for every way the broker stores a
//! message (the core and the JetStream gateway): a message breaking one is
//! answered with a permanent `Rejected`, and the connection lives
//! (PROTOCOL.md §2.3, §5.3).

use mq_protocol::{ErrorCode, Message, MAX_NAME_LEN, MAX_TOPIC_LEN};

/// Checks a `Subscribe`'s topic and group names (the same rule for the core
/// and the gateway): the `SubscribeError` code and reason if one is out of
/// the protocol's limits.
pub(crate) fn check_subscribe_names(topic: &str, group: &str) -> Result<(), (ErrorCode, String)> {
    if topic.is_empty() || topic.len() > MAX_TOPIC_LEN {
        let why = format!(
            "topic is {} bytes; it must be 1..={MAX_TOPIC_LEN}",
            topic.len()
        );
        return Err((ErrorCode::INVALID_TOPIC, why));
    }
    if group.len() > MAX_NAME_LEN {
        let why = format!("group is {} bytes; at most {MAX_NAME_LEN}", group.len());
        return Err((ErrorCode::INVALID_GROUP, why));
    }
    Ok(())
}

/// Bytes a message counts for against `max_message_size`: payload plus
/// header keys and values.
pub(crate) fn size_of(m: &Message) -> usize {
    m.payload.len() + m.headers.payload_bytes()
}

/// Checks topic, headers and size; the `Rejected` code and reason if one
/// is broken.
pub(crate) fn check_message(
    m: &Message,
    max_message_size: usize,
    max_frame_size: usize,
) -> Result<(), (ErrorCode, String)> {
    if m.topic.is_empty() || m.topic.len() > MAX_TOPIC_LEN {
        return Err((
            ErrorCode::INVALID_TOPIC,
            format!(
                "topic is {} bytes; it must be 1..={MAX_TOPIC_LEN}",
                m.topic.len()
            ),
        ));
    }
    if let Err(e) = m.headers.validate() {
        return Err((ErrorCode::INVALID_HEADERS, e.to_string()));
    }
    let size = size_of(m);
    if size > max_message_size {
        return Err((
            ErrorCode::MESSAGE_TOO_LARGE,
            format!("message of {size} bytes exceeds the limit of {max_message_size}"),
        ));
    }
    // A Deliver frame carries 4 more bytes (sub_id) than the Message.
    if m.frame_size() + 4 > max_frame_size {
        return Err((
            ErrorCode::MESSAGE_TOO_LARGE,
            format!("its Deliver frame would exceed the maximum frame size of {max_frame_size}"),
        ));
    }
    Ok(())
}
