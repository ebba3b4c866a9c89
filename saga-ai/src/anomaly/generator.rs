//! Seeded traces of the order saga (order -> fraud check -> inventory -> payment -> confirm ->
//! shipping), with failures, retries and compensations at realistic rates, and labelled
//! injected anomalies.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::kind::AnomalyKind;
use super::trace::{SagaTrace, TraceEvent, TraceStatus};
use crate::error::{AiError, Result};

/// Settings of [`generate_traces`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceGeneratorConfig {
    /// Seed: the same seed gives the same traces.
    pub seed: u64,
    /// Minutes simulated.
    pub minutes: u32,
    /// Mean sagas started per minute.
    pub sagas_per_minute: f64,
    /// Share of sagas given each single-saga anomaly (slow, stuck, retry loop, impossible
    /// sequence); 0 for normal traffic only.
    pub anomaly_rate: f64,
    /// Compensation storms (10 to 20 minutes each, the payment provider failing most charges).
    pub storms: u32,
    /// Start of the period.
    pub start: DateTime<Utc>,
}

impl Default for TraceGeneratorConfig {
    fn default() -> Self {
        Self {
            seed: 7,
            minutes: 480,
            sagas_per_minute: 15.0,
            anomaly_rate: 0.01,
            storms: 3,
            start: Utc
                .with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
                .single()
                .unwrap_or_default(),
        }
    }
}

/// A trace with its ground truth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelledTrace {
    /// The trace.
    pub trace: SagaTrace,
    /// The injected anomaly, `None` for a normal saga.
    pub label: Option<AnomalyKind>,
}

/// The generated period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneratedTraces {
    /// Traces in start order.
    pub traces: Vec<LabelledTrace>,
    /// Storm intervals `[start, end)`.
    pub storms: Vec<(DateTime<Utc>, DateTime<Utc>)>,
}

/// A step of the order saga.
struct Step {
    name: &'static str,
    command: &'static str,
    median_ms: f64,
    fail: f64,
    compensation: Option<(&'static str, f64)>,
}

const STEPS: [Step; 6] = [
    Step {
        name: "order",
        command: "PlaceOrder",
        median_ms: 20.0,
        fail: 0.0,
        compensation: Some(("CancelOrder", 15.0)),
    },
    Step {
        name: "fraud_check",
        command: "CheckFraud",
        median_ms: 120.0,
        fail: 0.02,
        compensation: None,
    },
    Step {
        name: "inventory",
        command: "ReserveInventory",
        median_ms: 60.0,
        fail: 0.04,
        compensation: Some(("ReleaseInventory", 40.0)),
    },
    Step {
        name: "payment",
        command: "ChargePayment",
        median_ms: 900.0,
        fail: 0.06,
        compensation: Some(("RefundPayment", 600.0)),
    },
    Step {
        name: "confirm",
        command: "ConfirmOrder",
        median_ms: 30.0,
        fail: 0.0,
        compensation: None,
    },
    Step {
        name: "shipping",
        command: "ScheduleShipping",
        median_ms: 1500.0,
        fail: 0.01,
        compensation: None,
    },
];
const PAYMENT: usize = 3;
/// Every step's deadline.
pub const DEADLINE_MS: f64 = 30_000.0;
const TRANSIENT: f64 = 0.03;
const GAP_MS: f64 = 5.0;

struct Builder<'r> {
    rng: &'r mut StdRng,
    events: Vec<TraceEvent>,
    clock: f64,
}

impl Builder<'_> {
    fn duration(&mut self, median: f64) -> f64 {
        // Log-normal around the median (sigma 0.3), with 3% ordinary hiccups of 1.5x to 3x.
        let z: f64 = (0..12).map(|_| self.rng.random::<f64>()).sum::<f64>() - 6.0;
        let mut d = median * (0.3 * z).exp();
        if self.rng.random_bool(0.03) {
            d *= self.rng.random_range(1.5..3.0);
        }
        d.min(DEADLINE_MS * 0.9)
    }

    fn push(&mut self, step: &str, command: &str, status: TraceStatus, duration_ms: f64) {
        self.events.push(TraceEvent {
            step: step.to_string(),
            event_type: command.to_string(),
            status,
            start_ms: self.clock,
            duration_ms,
        });
        self.clock += duration_ms + GAP_MS;
    }

    fn compensate(&mut self, done: &[usize]) {
        for &k in done.iter().rev() {
            if let Some((cmd, median)) = STEPS[k].compensation {
                let d = self.duration(median);
                self.push(STEPS[k].name, cmd, TraceStatus::Compensated, d);
            }
        }
    }
}

/// What to inject into one saga.
#[derive(Clone, Copy, PartialEq)]
enum Inject {
    None,
    Slow(usize),
    Stuck(usize),
    Retry(usize),
    Impossible(u8),
}

fn run_saga(rng: &mut StdRng, inject: Inject, payment_fail: f64) -> (Vec<TraceEvent>, bool) {
    let mut b = Builder {
        rng,
        events: Vec::new(),
        clock: 0.0,
    };
    let mut done: Vec<usize> = Vec::new();
    let order: Vec<usize> = if inject == Inject::Impossible(0) {
        vec![0, 1, 3, 2, 4, 5] // payment before reservation
    } else if inject == Inject::Impossible(1) {
        vec![0, 1, 5, 2, 3, 4] // shipping before reservation and payment
    } else {
        (0..STEPS.len()).collect()
    };
    for k in order {
        let step = &STEPS[k];
        if let Inject::Retry(at) = inject {
            if at == k {
                let n = b.rng.random_range(4..12);
                for _ in 0..n {
                    let d = b.duration(step.median_ms);
                    b.push(step.name, step.command, TraceStatus::Failed, d);
                }
            }
        } else if b.rng.random_bool(TRANSIENT) && step.fail > 0.0 {
            // An ordinary transient failure, retried once.
            let d = b.duration(step.median_ms);
            b.push(step.name, step.command, TraceStatus::Failed, d);
        }
        if inject == Inject::Stuck(k) {
            b.push(step.name, step.command, TraceStatus::TimedOut, DEADLINE_MS);
            b.compensate(&done);
            return (b.events, true);
        }
        let mut d = b.duration(step.median_ms);
        if inject == Inject::Slow(k) {
            d = (step.median_ms * b.rng.random_range(4.0..15.0)).min(DEADLINE_MS * 0.9);
        }
        let p_fail = if k == PAYMENT {
            payment_fail
        } else {
            step.fail
        };
        if b.rng.random_bool(p_fail) {
            b.push(step.name, step.command, TraceStatus::Failed, d);
            if inject == Inject::Impossible(2) {
                // Refund without a payment: compensate a step that never succeeded.
                let d = b.duration(600.0);
                b.push("payment", "RefundPayment", TraceStatus::Compensated, d);
            }
            b.compensate(&done);
            return (b.events, true);
        }
        b.push(step.name, step.command, TraceStatus::Completed, d);
        done.push(k);
    }
    if inject == Inject::Impossible(2) {
        // Refund of a payment on a saga that then ships: nothing failed.
        let d = b.duration(600.0);
        b.push("payment", "RefundPayment", TraceStatus::Compensated, d);
    } else if inject == Inject::Impossible(3) {
        // Cancelled, then confirmed again.
        let d = b.duration(15.0);
        b.push("order", "CancelOrder", TraceStatus::Compensated, d);
        let d = b.duration(30.0);
        b.push("confirm", "ConfirmOrder", TraceStatus::Completed, d);
    }
    (b.events, false)
}

/// Generates a period of order-saga traces.
pub fn generate_traces(config: &TraceGeneratorConfig) -> Result<GeneratedTraces> {
    if config.minutes == 0
        || !(config.sagas_per_minute > 0.0 && config.sagas_per_minute <= 10_000.0)
    {
        return Err(AiError::InvalidInput(
            "minutes must be >= 1 and sagas_per_minute in (0, 10000]".into(),
        ));
    }
    if !(0.0..=0.2).contains(&config.anomaly_rate) {
        return Err(AiError::InvalidInput(format!(
            "anomaly_rate must be in [0, 0.2], got {}",
            config.anomaly_rate
        )));
    }
    let mut rng = StdRng::seed_from_u64(config.seed);
    let total_ms = f64::from(config.minutes) * 60_000.0;
    let mut storms: Vec<(f64, f64)> = Vec::new();
    for _ in 0..config.storms {
        let len = rng.random_range(10.0..20.0) * 60_000.0;
        if total_ms <= len {
            break;
        }
        let start = rng.random_range(0.0..total_ms - len);
        storms.push((start, start + len));
    }
    storms.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = (f64::from(config.minutes) * config.sagas_per_minute).round() as usize;
    let mut starts: Vec<f64> = (0..n).map(|_| rng.random_range(0.0..total_ms)).collect();
    starts.sort_by(f64::total_cmp);
    let at = |ms: f64| config.start + TimeDelta::microseconds((ms * 1000.0) as i64);
    let mut traces = Vec::with_capacity(n);
    for (i, s) in starts.into_iter().enumerate() {
        let r = config.anomaly_rate;
        let u: f64 = rng.random();
        let inject = if u < r {
            Inject::Slow(rng.random_range(0..STEPS.len()))
        } else if u < 2.0 * r {
            Inject::Stuck(rng.random_range(1..STEPS.len()))
        } else if u < 3.0 * r {
            Inject::Retry(rng.random_range(1..STEPS.len()))
        } else if u < 4.0 * r {
            Inject::Impossible(rng.random_range(0..4))
        } else {
            Inject::None
        };
        // During a storm the payment provider fails most charges, ramping up over 2 minutes.
        let storm = storms.iter().find(|(a, b)| *a <= s && s < *b);
        let payment_fail = match storm {
            Some((a, _)) => STEPS[PAYMENT]
                .fail
                .max(0.75 * ((s - a) / 120_000.0).min(1.0)),
            None => STEPS[PAYMENT].fail,
        };
        let (events, compensated) = run_saga(&mut rng, inject, payment_fail);
        let label = match inject {
            Inject::Slow(_) => Some(AnomalyKind::SlowStep),
            Inject::Stuck(_) => Some(AnomalyKind::StuckStep),
            Inject::Retry(_) => Some(AnomalyKind::RetryLoop),
            Inject::Impossible(_) => Some(AnomalyKind::ImpossibleSequence),
            Inject::None if storm.is_some() && compensated => Some(AnomalyKind::CompensationStorm),
            Inject::None => None,
        };
        traces.push(LabelledTrace {
            trace: SagaTrace {
                id: format!("saga-{}-{i}", config.seed),
                started_at: at(s),
                events,
            },
            label,
        });
    }
    Ok(GeneratedTraces {
        traces,
        storms: storms.into_iter().map(|(a, b)| (at(a), at(b))).collect(),
    })
}
