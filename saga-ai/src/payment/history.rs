//! Customer history and rolling gateway health, the stateful half of the features.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, TimeDelta, Utc};

use super::attempt::{PaymentAttempt, PaymentFeatures, PaymentMethod};
use super::generator::GeneratedAttempt;
use crate::error::{AiError, Result};

/// Builds [`PaymentFeatures`] from the stream of attempts and outcomes: per customer the
/// successes and failures so far, per method the outcomes of the last `window` minutes.
///
/// Call [`features`](Self::features) before sending a charge and [`record`](Self::record) when
/// its outcome is known; training and scoring use this same code.
#[derive(Debug, Clone)]
pub struct PaymentHistory {
    window: TimeDelta,
    customers: HashMap<u64, (u32, u32)>,
    gateway: [VecDeque<(DateTime<Utc>, bool)>; 4],
}

impl PaymentHistory {
    /// A history whose gateway-health window is `window_minutes` long (1 to 1440).
    pub fn new(window_minutes: u32) -> Result<Self> {
        if !(1..=1440).contains(&window_minutes) {
            return Err(AiError::InvalidInput(format!(
                "gateway window must be 1 to 1440 minutes, got {window_minutes}"
            )));
        }
        Ok(Self {
            window: TimeDelta::minutes(i64::from(window_minutes)),
            customers: HashMap::new(),
            gateway: Default::default(),
        })
    }

    /// The features of `attempt` given everything recorded so far.
    pub fn features(&self, attempt: &PaymentAttempt) -> Result<PaymentFeatures> {
        let (past_successes, past_failures) = self
            .customers
            .get(&attempt.customer_id)
            .copied()
            .unwrap_or((0, 0));
        let since = attempt.at - self.window;
        let (mut gateway_attempts, mut gateway_failures) = (0u32, 0u32);
        for &(at, ok) in self.gateway[attempt.method.index()].iter().rev() {
            if at <= since {
                break;
            }
            if at <= attempt.at {
                gateway_attempts += 1;
                gateway_failures += u32::from(!ok);
            }
        }
        let features = PaymentFeatures {
            method: attempt.method,
            amount: attempt.amount,
            account_age_days: attempt.account_age_days,
            past_successes,
            past_failures,
            gateway_attempts,
            gateway_failures,
        };
        features.validate()?;
        Ok(features)
    }

    /// Records the outcome of `attempt`. Outcomes are expected in time order; older ones still
    /// count for the customer but may leave the gateway window early.
    pub fn record(&mut self, attempt: &PaymentAttempt, succeeded: bool) {
        let entry = self.customers.entry(attempt.customer_id).or_insert((0, 0));
        if succeeded {
            entry.0 = entry.0.saturating_add(1);
        } else {
            entry.1 = entry.1.saturating_add(1);
        }
        let queue = &mut self.gateway[attempt.method.index()];
        queue.push_back((attempt.at, succeeded));
        let newest = queue
            .back()
            .map_or(attempt.at, |&(at, _)| at.max(attempt.at));
        while queue
            .front()
            .is_some_and(|&(at, _)| at <= newest - self.window)
        {
            queue.pop_front();
        }
    }

    /// The recent (smoothed-free) error rate of `method` at `at`, or `None` with no attempts.
    pub fn gateway_error_rate(&self, method: PaymentMethod, at: DateTime<Utc>) -> Option<f64> {
        let since = at - self.window;
        let (n, f) = self.gateway[method.index()]
            .iter()
            .filter(|&&(t, _)| t > since && t <= at)
            .fold((0u32, 0u32), |(n, f), &(_, ok)| (n + 1, f + u32::from(!ok)));
        (n > 0).then(|| f64::from(f) / f64::from(n))
    }

    /// Replays generated attempts in order: features before each, then its outcome.
    /// Returns `(features, succeeded)` rows.
    pub fn replay(&mut self, data: &[GeneratedAttempt]) -> Result<Vec<(PaymentFeatures, bool)>> {
        let mut rows = Vec::with_capacity(data.len());
        for g in data {
            rows.push((self.features(&g.attempt)?, g.succeeded));
            self.record(&g.attempt, g.succeeded);
        }
        Ok(rows)
    }
}
