//! Exponential backoff with jitter, shared by every retransmission timer of
//! the protocol: the sender's message retries, the broker's redeliveries and
//! both clients' reconnects.

use std::time::Duration;

/// An exponential backoff schedule with proportional jitter.
///
/// The `n`-th retry (`n >= 1`) waits `base(n) = min(max, initial * multiplier^(n-1))`
/// reduced by a random fraction of at most `jitter`: the delay lies in
/// `[base(n) * (1 - jitter), base(n)]`. It never exceeds `max`. The random
/// source is passed in, so a seeded RNG makes the schedule repeatable.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use mq_protocol::Backoff;
///
/// let b = Backoff { initial: Duration::from_millis(100), multiplier: 2.0,
///                   max: Duration::from_secs(1), jitter: 0.0 };
/// let unit = 0.37; // any uniform sample in 0..1, e.g. rand::random::<f64>()
/// assert_eq!(b.delay_with(1, unit), Duration::from_millis(100));
/// assert_eq!(b.delay_with(3, unit), Duration::from_millis(400));
/// assert_eq!(b.delay_with(10, unit), Duration::from_secs(1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay before the first retry. Must be greater than zero.
    pub initial: Duration,
    /// Growth factor per retry. Must be at least 1.0 and finite.
    pub multiplier: f64,
    /// Upper bound of any delay. Must be at least `initial`.
    pub max: Duration,
    /// Fraction (0.0..=1.0) by which a delay may be randomly shortened.
    pub jitter: f64,
}

/// A [`Backoff`] whose fields cannot describe a schedule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BackoffError {
    /// `initial` is zero; set it to a positive duration such as 100 ms.
    #[error("backoff initial delay must be greater than zero")]
    ZeroInitial,
    /// `multiplier` is below 1.0 or not finite; use 2.0 for doubling.
    #[error("backoff multiplier must be a finite number >= 1.0, got {0}")]
    BadMultiplier(f64),
    /// `max` is below `initial`; raise `max` or lower `initial`.
    #[error("backoff max ({max:?}) must be at least initial ({initial:?})")]
    MaxBelowInitial {
        /// The initial delay.
        initial: Duration,
        /// The cap.
        max: Duration,
    },
    /// `jitter` is outside 0.0..=1.0.
    #[error("backoff jitter must be within 0.0..=1.0, got {0}")]
    BadJitter(f64),
}

impl Backoff {
    /// Checks the fields.
    ///
    /// # Errors
    ///
    /// A [`BackoffError`] naming the field to change.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut b = mq_protocol::Backoff::default();
    /// assert!(b.validate().is_ok());
    /// b.jitter = 2.0;
    /// assert!(b.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<(), BackoffError> {
        if self.initial.is_zero() {
            return Err(BackoffError::ZeroInitial);
        }
        if !self.multiplier.is_finite() || self.multiplier < 1.0 {
            return Err(BackoffError::BadMultiplier(self.multiplier));
        }
        if self.max < self.initial {
            return Err(BackoffError::MaxBelowInitial {
                initial: self.initial,
                max: self.max,
            });
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(BackoffError::BadJitter(self.jitter));
        }
        Ok(())
    }

    /// The delay before retry `n` without jitter (the upper bound of [`Backoff::delay_with`]).
    /// `n = 0` is treated as 1.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = mq_protocol::Backoff::default();
    /// assert_eq!(b.base_delay(2), b.initial * 2);
    /// ```
    pub fn base_delay(&self, n: u32) -> Duration {
        if n <= 1 {
            // Exactly `initial`, without the float round trip below: the
            // sender takes this for every message's first attempt.
            return self.initial.min(self.max);
        }
        let exp = n.saturating_sub(1).min(64) as i32;
        let secs = self.initial.as_secs_f64() * self.multiplier.powi(exp);
        let max = self.max.as_secs_f64();
        if !secs.is_finite() || secs >= max {
            self.max
        } else {
            Duration::from_secs_f64(secs)
        }
    }

    /// The delay before retry `n`, with jitter from `unit`: a uniform random
    /// sample in `0.0..1.0` drawn by the caller from any random source
    /// (`rand::random::<f64>()`, a seeded generator in a test). `unit` 0
    /// gives the full base delay, values toward 1 cut it by up to
    /// `jitter`. Values outside `0.0..=1.0` (or NaN) are clamped, so the
    /// result always lies in `base_delay(n) * (1 - jitter) ..= base_delay(n)`.
    ///
    /// No random-number type appears in this signature, so a `rand` major
    /// version of the caller's choosing works.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = mq_protocol::Backoff::default(); // 100 ms, x2, 20 % jitter
    /// assert_eq!(b.delay_with(1, 0.0), b.initial);
    /// assert_eq!(b.delay_with(1, 1.0), b.initial.mul_f64(0.8));
    /// let d = b.delay_with(3, 0.5); // 400 ms cut by 10 %
    /// assert_eq!(d, std::time::Duration::from_millis(360));
    /// ```
    pub fn delay_with(&self, n: u32, unit: f64) -> Duration {
        let base = self.base_delay(n);
        if self.jitter <= 0.0 {
            return base;
        }
        let unit = if unit.is_nan() {
            0.0
        } else {
            unit.clamp(0.0, 1.0)
        };
        let cut = unit * self.jitter;
        base.mul_f64((1.0 - cut).clamp(0.0, 1.0))
    }
}

impl Default for Backoff {
    /// 100 ms, doubling, capped at 10 s, up to 20 % jitter.
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            multiplier: 2.0,
            max: Duration::from_secs(10),
            jitter: 0.2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    #[test]
    fn doubles_then_caps() {
        let b = Backoff {
            initial: Duration::from_millis(10),
            multiplier: 2.0,
            max: Duration::from_millis(50),
            jitter: 0.0,
        };
        let got: Vec<_> = (1..=5).map(|n| b.base_delay(n).as_millis()).collect();
        assert_eq!(got, vec![10, 20, 40, 50, 50]);
        assert_eq!(b.base_delay(u32::MAX), Duration::from_millis(50));
    }

    #[test]
    fn same_seed_same_schedule() {
        let b = Backoff::default();
        let a: Vec<_> = {
            let mut r = StdRng::seed_from_u64(42);
            (1..10).map(|n| b.delay_with(n, r.gen())).collect()
        };
        let c: Vec<_> = {
            let mut r = StdRng::seed_from_u64(42);
            (1..10).map(|n| b.delay_with(n, r.gen())).collect()
        };
        assert_eq!(a, c);
    }

    #[test]
    fn validation_names_the_field() {
        let ok = Backoff::default();
        assert_eq!(
            Backoff {
                initial: Duration::ZERO,
                ..ok
            }
            .validate(),
            Err(BackoffError::ZeroInitial)
        );
        assert!(matches!(
            Backoff {
                multiplier: 0.5,
                ..ok
            }
            .validate(),
            Err(BackoffError::BadMultiplier(_))
        ));
        assert!(matches!(
            Backoff {
                max: Duration::from_millis(1),
                ..ok
            }
            .validate(),
            Err(BackoffError::MaxBelowInitial { .. })
        ));
    }

    #[test]
    fn unit_sample_sets_the_cut_and_is_clamped() {
        let b = Backoff {
            initial: Duration::from_millis(1000),
            multiplier: 2.0,
            max: Duration::from_secs(60),
            jitter: 0.5,
        };
        assert_eq!(b.delay_with(1, 0.0), Duration::from_millis(1000));
        assert_eq!(b.delay_with(1, 0.5), Duration::from_millis(750));
        assert_eq!(b.delay_with(1, 1.0), Duration::from_millis(500));
        assert_eq!(b.delay_with(2, 1.0), Duration::from_millis(1000));
        // Out-of-range samples stay within the jitter band.
        assert_eq!(b.delay_with(1, 7.0), Duration::from_millis(500));
        assert_eq!(b.delay_with(1, -3.0), Duration::from_millis(1000));
        assert_eq!(b.delay_with(1, f64::NAN), Duration::from_millis(1000));
        // No jitter: the sample does not matter.
        let flat = Backoff { jitter: 0.0, ..b };
        assert_eq!(flat.delay_with(1, 0.9), Duration::from_millis(1000));
    }

    proptest! {
        #[test]
        fn delay_within_jitter_bounds(seed: u64, n in 1u32..100, jitter in 0.0f64..=1.0,
                                      init_ms in 1u64..1000, mult in 1.0f64..4.0) {
            let b = Backoff { initial: Duration::from_millis(init_ms), multiplier: mult,
                              max: Duration::from_secs(30), jitter };
            let mut rng = StdRng::seed_from_u64(seed);
            let base = b.base_delay(n);
            let d = b.delay_with(n, rng.gen());
            prop_assert!(d <= base);
            prop_assert!(d <= b.max);
            prop_assert!(d >= base.mul_f64(1.0 - jitter) - Duration::from_nanos(1));
            prop_assert!(base >= b.base_delay(n.saturating_sub(1).max(1)));
        }
    }
}
