//! A circuit breaker for a flaky dependency: closed, open, half-open.

use std::collections::VecDeque;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::action::{ActionKind, HealingAction, PolicyName};

/// When the breaker opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CircuitConfig {
    /// The calls of this recent window count.
    pub window: Duration,
    /// Fewer calls than this in the window never open the breaker (too little evidence).
    pub min_calls: usize,
    /// The share of failed calls in the window (0 to 1) at or above which it opens.
    pub error_rate: f64,
    /// How long it stays open before letting probes through.
    pub open_for: Duration,
    /// Probe calls let through when half-open; all of them must succeed to close.
    pub probes: u32,
}

impl Default for CircuitConfig {
    /// A 30 s window, at least 10 calls, 50 % errors, open for 10 s, 3 probes.
    fn default() -> Self {
        Self {
            window: Duration::seconds(30),
            min_calls: 10,
            error_rate: 0.5,
            open_for: Duration::seconds(10),
            probes: 3,
        }
    }
}

/// Where the breaker is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CircuitState {
    /// Calls flow; outcomes are counted.
    Closed,
    /// Calls are refused until `until`.
    Open {
        /// When probes may go through.
        until: DateTime<Utc>,
    },
    /// Up to [`CircuitConfig::probes`] calls go through; their outcomes decide.
    HalfOpen {
        /// Probes let through so far.
        started: u32,
        /// Probes that succeeded so far.
        succeeded: u32,
    },
}

/// The answer to "may I call now?".
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Permit {
    /// Call, then [`CircuitBreaker::record`] the outcome.
    Allowed,
    /// Do not call; the breaker lets probes through from `retry_at` (or when the probes in
    /// flight have answered).
    Rejected {
        /// The earliest time worth asking again.
        retry_at: DateTime<Utc>,
    },
}

/// A circuit breaker over one dependency. Feed it every call's outcome; ask it before each
/// call. Pure: time is passed in, decisions and their records come out.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    name: String,
    config: CircuitConfig,
    state: CircuitState,
    /// Outcomes in the window while closed: (when, succeeded).
    calls: VecDeque<(DateTime<Utc>, bool)>,
}

impl CircuitBreaker {
    /// A closed breaker for the dependency `name`. An error rate outside 0..=1 is clamped;
    /// zero probes count as one.
    pub fn new(name: impl Into<String>, mut config: CircuitConfig) -> Self {
        config.error_rate = if config.error_rate.is_nan() {
            1.0
        } else {
            config.error_rate.clamp(0.0, 1.0)
        };
        config.probes = config.probes.max(1);
        config.min_calls = config.min_calls.max(1);
        Self {
            name: name.into(),
            config,
            state: CircuitState::Closed,
            calls: VecDeque::new(),
        }
    }

    /// Where it is now (an open breaker whose pause is over still reads open until the next
    /// [`permit`](Self::permit)).
    pub fn state(&self) -> CircuitState {
        self.state
    }

    /// The dependency's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The configuration.
    pub fn config(&self) -> &CircuitConfig {
        &self.config
    }

    /// May a call go through at `now`? Half-opens an open breaker whose pause is over (the
    /// record of that is returned).
    pub fn permit(&mut self, now: DateTime<Utc>) -> (Permit, Option<HealingAction>) {
        match self.state {
            CircuitState::Closed => (Permit::Allowed, None),
            CircuitState::Open { until } if now < until => {
                (Permit::Rejected { retry_at: until }, None)
            }
            CircuitState::Open { .. } => {
                self.state = CircuitState::HalfOpen {
                    started: 1,
                    succeeded: 0,
                };
                let action = self.action(
                    ActionKind::HalfOpenCircuit,
                    format!("the {} s pause is over", self.config.open_for.num_seconds()),
                    format!(
                        "half-opened: letting {} probe call(s) through",
                        self.config.probes
                    ),
                    now,
                );
                (Permit::Allowed, Some(action))
            }
            CircuitState::HalfOpen { started, succeeded } => {
                if started < self.config.probes {
                    self.state = CircuitState::HalfOpen {
                        started: started + 1,
                        succeeded,
                    };
                    (Permit::Allowed, None)
                } else {
                    // Every probe is out: wait for their answers.
                    (
                        Permit::Rejected {
                            retry_at: now + Duration::milliseconds(100),
                        },
                        None,
                    )
                }
            }
        }
    }

    /// Records the outcome of a call made at `now` (after an [`Permit::Allowed`]); returns the
    /// record of a state change it caused.
    pub fn record(&mut self, now: DateTime<Utc>, ok: bool) -> Option<HealingAction> {
        match self.state {
            CircuitState::Closed => {
                self.calls.push_back((now, ok));
                self.forget_before(now - self.config.window);
                let total = self.calls.len();
                let failed = self.calls.iter().filter(|(_, ok)| !ok).count();
                let rate = failed as f64 / total as f64;
                if total >= self.config.min_calls && rate >= self.config.error_rate {
                    let until = now + self.config.open_for;
                    self.state = CircuitState::Open { until };
                    self.calls.clear();
                    Some(self.action(
                        ActionKind::OpenCircuit,
                        format!(
                            "{failed} of the last {total} calls failed ({:.0} %, threshold {:.0} %) within {} s",
                            100.0 * rate,
                            100.0 * self.config.error_rate,
                            self.config.window.num_seconds()
                        ),
                        format!(
                            "opened the circuit for {} s: calls fail fast or wait instead of piling onto a failing dependency",
                            self.config.open_for.num_seconds()
                        ),
                        now,
                    ))
                } else {
                    None
                }
            }
            // A late answer of a call let through before the breaker opened changes nothing.
            CircuitState::Open { .. } => None,
            CircuitState::HalfOpen { started, succeeded } => {
                if !ok {
                    let until = now + self.config.open_for;
                    self.state = CircuitState::Open { until };
                    return Some(self.action(
                        ActionKind::OpenCircuit,
                        format!("a probe call failed ({succeeded} of {started} had succeeded)"),
                        format!(
                            "opened the circuit again for {} s",
                            self.config.open_for.num_seconds()
                        ),
                        now,
                    ));
                }
                let succeeded = succeeded + 1;
                if succeeded >= self.config.probes {
                    self.state = CircuitState::Closed;
                    self.calls.clear();
                    Some(self.action(
                        ActionKind::CloseCircuit,
                        format!("all {succeeded} probe calls succeeded"),
                        "closed the circuit: calls flow again",
                        now,
                    ))
                } else {
                    self.state = CircuitState::HalfOpen { started, succeeded };
                    None
                }
            }
        }
    }

    fn forget_before(&mut self, start: DateTime<Utc>) {
        while self.calls.front().is_some_and(|(t, _)| *t < start) {
            self.calls.pop_front();
        }
    }

    fn action(
        &self,
        kind: ActionKind,
        observed: String,
        action: impl Into<String>,
        at: DateTime<Utc>,
    ) -> HealingAction {
        HealingAction::new(
            PolicyName::CircuitBreaker,
            kind,
            self.name.clone(),
            observed,
            action,
            at,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
    }

    fn ms(n: i64) -> Duration {
        Duration::milliseconds(n)
    }

    #[test]
    fn opens_on_errors_then_half_opens_and_closes_after_probes() {
        let mut b = CircuitBreaker::new("gw", CircuitConfig::default());
        // Nine failures: below min_calls, still closed.
        for i in 0..9 {
            assert_eq!(b.permit(t0() + ms(i)).0, Permit::Allowed);
            assert!(b.record(t0() + ms(i), false).is_none());
        }
        let opened = b.record(t0() + ms(9), false).expect("opens at the tenth");
        assert_eq!(opened.kind, ActionKind::OpenCircuit);
        assert!(
            opened.observed.contains("10 of the last 10"),
            "{}",
            opened.observed
        );
        let until = t0() + ms(9) + Duration::seconds(10);
        assert_eq!(b.state(), CircuitState::Open { until });
        assert_eq!(
            b.permit(until - ms(1)).0,
            Permit::Rejected { retry_at: until }
        );
        // The pause is over: three probes, then nothing until they answer.
        let (p, half) = b.permit(until);
        assert_eq!(p, Permit::Allowed);
        assert_eq!(
            half.expect("half-open record").kind,
            ActionKind::HalfOpenCircuit
        );
        assert_eq!(b.permit(until).0, Permit::Allowed);
        assert_eq!(b.permit(until).0, Permit::Allowed);
        assert!(matches!(b.permit(until).0, Permit::Rejected { .. }));
        assert!(b.record(until, true).is_none());
        assert!(b.record(until, true).is_none());
        let closed = b.record(until, true).expect("closes");
        assert_eq!(closed.kind, ActionKind::CloseCircuit);
        assert_eq!(b.state(), CircuitState::Closed);
    }

    #[test]
    fn a_failed_probe_opens_again() {
        let config = CircuitConfig {
            min_calls: 2,
            ..CircuitConfig::default()
        };
        let mut b = CircuitBreaker::new("gw", config);
        b.record(t0(), false);
        assert!(b.record(t0(), false).is_some());
        let later = t0() + Duration::seconds(10);
        assert!(b.permit(later).1.is_some());
        let again = b.record(later, false).expect("reopens");
        assert_eq!(again.kind, ActionKind::OpenCircuit);
        assert!(
            matches!(b.state(), CircuitState::Open { until } if until == later + Duration::seconds(10))
        );
    }

    #[test]
    fn old_failures_leave_the_window() {
        let config = CircuitConfig {
            min_calls: 4,
            ..CircuitConfig::default()
        };
        let mut b = CircuitBreaker::new("gw", config);
        for i in 0..3 {
            b.record(t0() + ms(i), false);
        }
        // 31 s later the three failures are out of the 30 s window: one failure and three
        // successes are 25 %.
        let later = t0() + Duration::seconds(31);
        assert!(b.record(later, false).is_none());
        for _ in 0..3 {
            assert!(b.record(later, true).is_none());
        }
        assert_eq!(b.state(), CircuitState::Closed);
    }

    proptest! {
        /// Whatever the outcomes: an open breaker allows nothing before its pause ends, it
        /// never lets more than `probes` calls through while half-open, and every state change
        /// leaves exactly one record.
        #[test]
        fn never_calls_while_open(outcomes in proptest::collection::vec((0i64..3_000, any::<bool>()), 1..300)) {
            let config = CircuitConfig { min_calls: 3, probes: 2, ..CircuitConfig::default() };
            let mut b = CircuitBreaker::new("gw", config);
            let mut now = t0();
            for (step, ok) in outcomes {
                now += ms(step);
                let before = b.state();
                let (permit, half) = b.permit(now);
                match before {
                    CircuitState::Open { until } if now < until => {
                        prop_assert_eq!(permit, Permit::Rejected { retry_at: until });
                    }
                    CircuitState::HalfOpen { started, .. } if started >= 2 => {
                        let rejected = matches!(permit, Permit::Rejected { .. });
                        prop_assert!(rejected);
                    }
                    _ => prop_assert_eq!(permit, Permit::Allowed),
                }
                let pause_over = matches!(before, CircuitState::Open { until } if now >= until);
                prop_assert_eq!(half.is_some(), pause_over);
                if permit == Permit::Allowed {
                    let mid = b.state();
                    let record = b.record(now, ok);
                    let changed = std::mem::discriminant(&mid) != std::mem::discriminant(&b.state());
                    prop_assert_eq!(record.is_some(), changed);
                }
            }
        }
    }
}
