//! Recognising transport-level copies of a `Deliver` frame.
//!
//! On one connection the broker numbers each delivery of an ID with a
//! growing `delivery_attempt` and charges one credit for each. A second
//! frame with an attempt already seen on the same connection is therefore a
//! copy made below the protocol (a duplicating proxy, or the mock broker's
//! fault injection): it was not charged, so giving credit back for it would
//! let the broker exceed `prefetch`. This remembers the highest attempt of
//! the most recent IDs, bounded; an ID that fell out is treated as new
//! (at worst one extra credit, never a withheld one for a real delivery).

use std::collections::VecDeque;

use mq_protocol::MessageId;

use mq_protocol::hash::FastMap;

pub(super) struct Recent {
    max_attempt: FastMap<MessageId, u32>,
    order: VecDeque<MessageId>,
    cap: usize,
}

impl Recent {
    pub(super) fn new(cap: usize) -> Self {
        Self {
            max_attempt: FastMap::default(),
            order: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// Records a delivery; true if it repeats an attempt already seen.
    pub(super) fn is_copy(&mut self, id: MessageId, attempt: u32) -> bool {
        if let Some(a) = self.max_attempt.get_mut(&id) {
            if attempt <= *a {
                return true;
            }
            *a = attempt;
            return false;
        }
        if self.order.len() >= self.cap {
            if let Some(old) = self.order.pop_front() {
                self.max_attempt.remove(&old);
            }
        }
        self.order.push_back(id);
        self.max_attempt.insert(id, attempt);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_attempt_is_a_copy_a_higher_one_is_not() {
        let mut r = Recent::new(2);
        let a = MessageId::new(1, 1);
        assert!(!r.is_copy(a, 1));
        assert!(r.is_copy(a, 1));
        assert!(!r.is_copy(a, 2));
        assert!(r.is_copy(a, 2));
        assert!(r.is_copy(a, 1));
    }

    #[test]
    fn bounded_and_forgetting_only_means_new() {
        let mut r = Recent::new(2);
        for seq in 1..=3 {
            assert!(!r.is_copy(MessageId::new(1, seq), 1));
        }
        assert_eq!(r.order.len(), 2);
        // Seq 1 fell out: treated as new, never as a copy.
        assert!(!r.is_copy(MessageId::new(1, 1), 1));
    }
}
