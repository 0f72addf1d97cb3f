//! Fault decisions: which frames a fault may touch, and what happens to one
//! frame, drawn from the broker's one seeded RNG.

use std::cmp::Ordering;
use std::time::Duration;

use mq_protocol::Frame;
use rand::Rng;
use tokio::time::Instant;

use crate::groups::ConnId;
use crate::DirectionFaults;

/// What a fault does to one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    Pass,
    Drop,
    Duplicate,
    Delay(Duration),
}

/// Data frames: the only ones faults touch (their loss is recovered by the
/// protocol's timers). Handshake, subscribe, credit, heartbeat and close
/// frames always pass.
pub(crate) fn is_data(frame: &Frame) -> bool {
    matches!(
        frame,
        Frame::Message(_) | Frame::Reply(_) | Frame::Deliver(_) | Frame::Ack(_) | Frame::Nack(_)
    )
}

/// True with probability `p` (values outside 0..=1 behave as clamped).
pub(crate) fn chance<R: Rng + ?Sized>(p: f64, rng: &mut R) -> bool {
    p > 0.0 && rng.gen::<f64>() < p
}

/// Draws the fate of one data frame.
pub(crate) fn decide<R: Rng + ?Sized>(d: &DirectionFaults, rng: &mut R) -> Fate {
    if chance(d.drop, rng) {
        Fate::Drop
    } else if chance(d.duplicate, rng) {
        Fate::Duplicate
    } else if chance(d.delay, rng) {
        let max = d.max_delay.min(crate::config::MAX_FAULT_DELAY).as_micros() as u64;
        Fate::Delay(Duration::from_micros(rng.gen_range(0..=max)))
    } else {
        Fate::Pass
    }
}

/// Which way a delayed frame was going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// From the peer; processed at the deadline.
    ToBroker,
    /// To the peer; written at the deadline.
    FromBroker,
}

/// A frame held back by a delay fault.
#[derive(Debug)]
pub(crate) struct Delayed {
    pub(crate) at: Instant,
    pub(crate) seq: u64,
    pub(crate) conn: ConnId,
    pub(crate) dir: Direction,
    pub(crate) frame: Frame,
}

impl PartialEq for Delayed {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Delayed {}
impl PartialOrd for Delayed {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Delayed {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    #[test]
    fn no_faults_always_pass_and_certain_drop_always_drops() {
        let seed = 11;
        eprintln!("seed {seed}");
        let mut rng = StdRng::seed_from_u64(seed);
        let none = DirectionFaults::default();
        let all = DirectionFaults {
            drop: 1.0,
            ..DirectionFaults::default()
        };
        for _ in 0..100 {
            assert_eq!(decide(&none, &mut rng), Fate::Pass);
            assert_eq!(decide(&all, &mut rng), Fate::Drop);
        }
    }

    #[test]
    fn delay_is_bounded() {
        let seed = 12;
        eprintln!("seed {seed}");
        let mut rng = StdRng::seed_from_u64(seed);
        let d = DirectionFaults {
            delay: 1.0,
            max_delay: Duration::from_millis(5),
            ..DirectionFaults::default()
        };
        for _ in 0..100 {
            match decide(&d, &mut rng) {
                Fate::Delay(x) => assert!(x <= Duration::from_millis(5)),
                other => panic!("expected a delay, got {other:?}"),
            }
        }
    }
}
