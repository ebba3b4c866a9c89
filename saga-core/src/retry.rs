//! Retry with exponential backoff and full jitter, and the decision retry-or-dead-letter.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::handler::HandlerError;

/// How delays between attempts grow.
///
/// The delay before retry `n` (the first retry is `n = 1`) is drawn uniformly from
/// `[0, min(max_delay, initial_delay * multiplier^(n-1))]` ("full jitter", which spreads
/// retries of many consumers apart), or is exactly that cap with jitter off.
///
/// ```
/// use std::time::Duration;
/// use saga_core::{RetryPolicy, HandlerError, RetryDecision};
/// let policy = RetryPolicy::default().with_max_attempts(3).without_jitter();
/// assert_eq!(policy.backoff_cap(1), Duration::from_millis(100));
/// assert_eq!(policy.backoff_cap(3), Duration::from_millis(400));
/// // attempt 3 of 3 failed transiently: no attempts left
/// let d = policy.decide(3, &HandlerError::transient("timeout"));
/// assert!(matches!(d, RetryDecision::DeadLetter { .. }));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Delay cap of the first retry.
    pub initial_delay: Duration,
    /// Growth factor per attempt (>= 1).
    pub multiplier: f64,
    /// Largest delay ever used.
    pub max_delay: Duration,
    /// Deliveries in all, the first one included; the message is dead-lettered after the last.
    pub max_attempts: u32,
    /// Full jitter on (default) or off.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    /// 100 ms doubling up to 30 s, 5 attempts, full jitter.
    fn default() -> Self {
        Self {
            initial_delay: Duration::from_millis(100),
            multiplier: 2.0,
            max_delay: Duration::from_secs(30),
            max_attempts: 5,
            jitter: true,
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryDecision {
    /// Deliver again after this delay.
    Retry {
        /// How long to wait.
        delay: Duration,
    },
    /// Give up: store a dead letter with this reason.
    DeadLetter {
        /// Why (permanent error, or attempts exhausted).
        reason: String,
    },
}

impl RetryPolicy {
    /// Sets the attempt limit (at least 1).
    #[must_use]
    pub fn with_max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Sets the first delay.
    #[must_use]
    pub fn with_initial_delay(mut self, d: Duration) -> Self {
        self.initial_delay = d;
        self
    }

    /// Sets the largest delay.
    #[must_use]
    pub fn with_max_delay(mut self, d: Duration) -> Self {
        self.max_delay = d;
        self
    }

    /// Turns jitter off (every retry waits exactly its cap).
    #[must_use]
    pub fn without_jitter(mut self) -> Self {
        self.jitter = false;
        self
    }

    /// The cap of the delay before retry number `retry` (1-based); saturates, never overflows.
    pub fn backoff_cap(&self, retry: u32) -> Duration {
        let exp = retry.saturating_sub(1).min(64) as i32;
        let factor = self.multiplier.max(1.0).powi(exp);
        let secs = self.initial_delay.as_secs_f64() * factor;
        let max = self.max_delay.as_secs_f64();
        if !secs.is_finite() || secs >= max {
            self.max_delay
        } else {
            Duration::from_secs_f64(secs)
        }
    }

    /// The delay before retry number `retry`, with jitter drawn from `unit` in `[0, 1)`.
    /// Pure: pass a random number for full jitter, or use [`RetryPolicy::delay`].
    pub fn delay_with(&self, retry: u32, unit: f64) -> Duration {
        let cap = self.backoff_cap(retry);
        if self.jitter {
            cap.mul_f64(unit.clamp(0.0, 1.0))
        } else {
            cap
        }
    }

    /// The delay before retry number `retry`, with fresh jitter.
    pub fn delay(&self, retry: u32) -> Duration {
        self.delay_with(retry, fastrand::f64())
    }

    /// Decides after attempt number `attempt` (1-based) failed with `error`.
    pub fn decide(&self, attempt: u32, error: &HandlerError) -> RetryDecision {
        self.decide_with(attempt, error, fastrand::f64())
    }

    /// [`RetryPolicy::decide`] with the jitter drawn from `unit` in `[0, 1)`: a pure function.
    pub fn decide_with(&self, attempt: u32, error: &HandlerError, unit: f64) -> RetryDecision {
        match error {
            HandlerError::Permanent(msg) => RetryDecision::DeadLetter {
                reason: format!("permanent error: {msg}"),
            },
            HandlerError::Transient(msg) if attempt >= self.max_attempts => {
                RetryDecision::DeadLetter {
                    reason: format!("gave up after {attempt} attempts; last error: {msg}"),
                }
            }
            HandlerError::Transient(_) => RetryDecision::Retry {
                delay: self.delay_with(attempt, unit),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn delay_never_exceeds_cap_or_max(retry in 0u32..200, unit in 0.0f64..1.0, init_ms in 0u64..10_000, max_ms in 0u64..100_000) {
            let p = RetryPolicy::default()
                .with_initial_delay(Duration::from_millis(init_ms))
                .with_max_delay(Duration::from_millis(max_ms));
            let d = p.delay_with(retry, unit);
            prop_assert!(d <= p.backoff_cap(retry));
            prop_assert!(d <= p.max_delay);
        }

        #[test]
        fn caps_grow_monotonically(retry in 1u32..100) {
            let p = RetryPolicy::default();
            prop_assert!(p.backoff_cap(retry) <= p.backoff_cap(retry + 1));
        }

        #[test]
        fn transient_retries_until_limit(limit in 1u32..20, attempt in 1u32..40) {
            let p = RetryPolicy::default().with_max_attempts(limit);
            let d = p.decide_with(attempt, &HandlerError::transient("x"), 0.5);
            prop_assert_eq!(matches!(d, RetryDecision::Retry { .. }), attempt < limit);
        }
    }

    #[test]
    fn permanent_dead_letters_at_once() {
        let d = RetryPolicy::default().decide(1, &HandlerError::permanent("bad total"));
        assert_eq!(
            d,
            RetryDecision::DeadLetter {
                reason: "permanent error: bad total".into()
            }
        );
    }
}
