//! Flush barriers: "every message accepted before this point has its
//! outcome", tracked in O(1) per message without scanning the table.
//!
//! Each accepted message gets the next index. `base` is the lowest index
//! that may still be unresolved; a waiter registered when `next` indices had
//! been handed out is satisfied once `base >= next`.

use std::collections::VecDeque;

/// Tracks resolution by acceptance index and the waiters of `flush`.
#[derive(Debug)]
pub(crate) struct FlushTracker<W> {
    base: u64,
    /// `done[i]` is true when index `base + i` is resolved.
    done: VecDeque<bool>,
    waiters: VecDeque<(u64, W)>,
}

impl<W> Default for FlushTracker<W> {
    fn default() -> Self {
        Self {
            base: 0,
            done: VecDeque::new(),
            waiters: VecDeque::new(),
        }
    }
}

impl<W> FlushTracker<W> {
    /// The index of the next accepted message.
    pub(crate) fn next_index(&mut self) -> u64 {
        self.done.push_back(false);
        self.base + self.done.len() as u64 - 1
    }

    /// Marks `index` resolved.
    pub(crate) fn resolve(&mut self, index: u64) {
        let Some(slot) = index
            .checked_sub(self.base)
            .and_then(|i| self.done.get_mut(i as usize))
        else {
            return;
        };
        *slot = true;
        while self.done.front() == Some(&true) {
            self.done.pop_front();
            self.base += 1;
        }
    }

    /// Registers a waiter for everything accepted so far.
    pub(crate) fn wait(&mut self, waiter: W) {
        let target = self.base + self.done.len() as u64;
        self.waiters.push_back((target, waiter));
    }

    /// Removes and returns the waiters whose messages are all resolved.
    pub(crate) fn ready(&mut self) -> Vec<W> {
        let mut out = Vec::new();
        while self.waiters.front().is_some_and(|(t, _)| *t <= self.base) {
            if let Some((_, w)) = self.waiters.pop_front() {
                out.push(w);
            }
        }
        out
    }

    /// Removes every waiter (the sender is shutting down).
    pub(crate) fn take_all(&mut self) -> Vec<W> {
        self.waiters.drain(..).map(|(_, w)| w).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiter_fires_only_after_everything_before_it() {
        let mut f = FlushTracker::default();
        let a = f.next_index();
        let b = f.next_index();
        f.wait("w1");
        let c = f.next_index();
        f.wait("w2");
        f.resolve(b);
        assert!(f.ready().is_empty());
        f.resolve(c);
        assert!(f.ready().is_empty());
        f.resolve(a);
        assert_eq!(f.ready(), vec!["w1", "w2"]);
        f.wait("w3");
        assert_eq!(f.ready(), vec!["w3"]);
    }
}
