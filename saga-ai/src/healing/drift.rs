//! Flagging a saga step whose durations drift above their baseline.
//!
//! Per step, the detector keeps a baseline of earlier durations and a window of the latest.
//! The step is flagged when the window's median exceeds the baseline median by a ratio, by a
//! number of robust standard deviations (1.4826 × MAD) and by an absolute margin, so neither
//! a noisy step, nor a very steady one, nor a very fast one (a few milliseconds more are
//! nobody's concern) raises false flags. While a step is flagged its baseline is frozen (the
//! slow durations do not become the new normal), and the flag clears once the window's
//! median is back under the threshold.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::action::{ActionKind, HealingAction, PolicyName};

/// How sensitive the detector is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DriftConfig {
    /// Durations kept as the baseline.
    pub baseline: usize,
    /// Fewer baseline durations than this: no judgement yet.
    pub min_baseline: usize,
    /// The latest durations compared with the baseline.
    pub window: usize,
    /// The window's median must exceed the baseline median times this...
    pub ratio: f64,
    /// ...and the baseline median plus this many robust standard deviations...
    pub sigmas: f64,
    /// ...and the baseline median plus this many milliseconds (0: no margin).
    #[serde(default)]
    pub min_increase_ms: f64,
}

impl Default for DriftConfig {
    /// A baseline of 200 (judging from 30), a window of 20, 1.5 × and 3 σ, no absolute margin.
    fn default() -> Self {
        Self {
            baseline: 200,
            min_baseline: 30,
            window: 20,
            ratio: 1.5,
            sigmas: 3.0,
            min_increase_ms: 0.0,
        }
    }
}

/// A step's figures as the detector sees them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepDrift {
    /// The step.
    pub step: String,
    /// Median of the baseline, ms.
    pub baseline_median_ms: f64,
    /// Median of the latest window, ms.
    pub recent_median_ms: f64,
    /// Above this the step is flagged, ms.
    pub threshold_ms: f64,
    /// Whether it is flagged now.
    pub flagged: bool,
}

#[derive(Debug, Clone, Default)]
struct Step {
    baseline: VecDeque<f64>,
    recent: VecDeque<f64>,
    flagged: bool,
}

/// The detector over every step it is fed.
#[derive(Debug, Clone, Default)]
pub struct DriftDetector {
    config: DriftConfig,
    steps: HashMap<String, Step>,
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

impl DriftDetector {
    /// A detector with this configuration (a window or baseline of 0 counts as 1).
    pub fn new(mut config: DriftConfig) -> Self {
        config.window = config.window.max(1);
        config.baseline = config.baseline.max(1);
        config.min_baseline = config.min_baseline.clamp(1, config.baseline);
        Self {
            config,
            steps: HashMap::new(),
        }
    }

    /// Feeds one duration of `step` (negative or NaN durations are ignored); returns the
    /// record when the step is flagged or cleared by it.
    pub fn observe(
        &mut self,
        step: &str,
        duration_ms: f64,
        at: DateTime<Utc>,
    ) -> Option<HealingAction> {
        if !duration_ms.is_finite() || duration_ms < 0.0 {
            return None;
        }
        let config = self.config;
        let s = self.steps.entry(step.to_owned()).or_default();
        s.recent.push_back(duration_ms);
        if s.recent.len() > config.window
            && let Some(old) = s.recent.pop_front()
            && !s.flagged
        {
            s.baseline.push_back(old);
            if s.baseline.len() > config.baseline {
                s.baseline.pop_front();
            }
        }
        let figures = Self::figures(&config, step, s)?;
        let drifting = figures.recent_median_ms > figures.threshold_ms;
        if drifting == s.flagged {
            return None;
        }
        s.flagged = drifting;
        let (kind, observed, action) = if drifting {
            (
                ActionKind::FlagDrift,
                format!(
                    "median of the last {} durations {:.0} ms against a baseline of {:.0} ms (threshold {:.0} ms)",
                    config.window,
                    figures.recent_median_ms,
                    figures.baseline_median_ms,
                    figures.threshold_ms
                ),
                format!(
                    "flagged step `{step}` as drifting; its baseline is frozen until it recovers"
                ),
            )
        } else {
            (
                ActionKind::ClearDrift,
                format!(
                    "median of the last {} durations back to {:.0} ms (threshold {:.0} ms)",
                    config.window, figures.recent_median_ms, figures.threshold_ms
                ),
                format!("cleared the drift flag of step `{step}`"),
            )
        };
        Some(HealingAction::new(
            PolicyName::DurationDrift,
            kind,
            step,
            observed,
            action,
            at,
        ))
    }

    /// The figures of every step with enough data, sorted by step name.
    pub fn steps(&self) -> Vec<StepDrift> {
        let mut out: Vec<StepDrift> = self
            .steps
            .iter()
            .filter_map(|(name, s)| Self::figures(&self.config, name, s))
            .collect();
        out.sort_by(|a, b| a.step.cmp(&b.step));
        out
    }

    fn figures(config: &DriftConfig, step: &str, s: &Step) -> Option<StepDrift> {
        if s.baseline.len() < config.min_baseline || s.recent.len() < config.window {
            return None;
        }
        let mut base: Vec<f64> = s.baseline.iter().copied().collect();
        let base_median = median(&mut base);
        let mut deviations: Vec<f64> = base.iter().map(|v| (v - base_median).abs()).collect();
        let sigma = 1.4826 * median(&mut deviations);
        let mut recent: Vec<f64> = s.recent.iter().copied().collect();
        let recent_median = median(&mut recent);
        let threshold = (base_median * config.ratio)
            .max(base_median + config.sigmas * sigma)
            .max(base_median + config.min_increase_ms.max(0.0));
        Some(StepDrift {
            step: step.to_owned(),
            baseline_median_ms: base_median,
            recent_median_ms: recent_median,
            threshold_ms: threshold,
            flagged: s.flagged,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
    }

    /// A steady step around 100 ms (±10), then `slow` durations around `level`.
    fn feed(d: &mut DriftDetector, step: &str, n: usize, level: f64) -> Vec<HealingAction> {
        (0..n)
            .filter_map(|i| d.observe(step, level + (i % 21) as f64 - 10.0, at()))
            .collect()
    }

    #[test]
    fn a_step_that_slows_is_flagged_once_and_cleared_when_it_recovers() {
        let mut d = DriftDetector::new(DriftConfig::default());
        assert!(feed(&mut d, "payment", 100, 100.0).is_empty());
        let flagged = feed(&mut d, "payment", 40, 400.0);
        assert_eq!(flagged.len(), 1, "{flagged:?}");
        assert_eq!(flagged[0].kind, ActionKind::FlagDrift);
        assert_eq!(flagged[0].subject, "payment");
        // The baseline stayed at ~100 ms while flagged.
        let figures = &d.steps()[0];
        assert!(figures.baseline_median_ms < 120.0, "{figures:?}");
        let cleared = feed(&mut d, "payment", 40, 100.0);
        assert_eq!(cleared.len(), 1, "{cleared:?}");
        assert_eq!(cleared[0].kind, ActionKind::ClearDrift);
    }

    #[test]
    fn a_margin_keeps_small_absolute_changes_of_fast_steps_unflagged() {
        let margin = DriftConfig {
            min_increase_ms: 100.0,
            ..DriftConfig::default()
        };
        let mut d = DriftDetector::new(margin);
        // 20 ms to 60 ms: three times slower, but 40 ms more.
        assert!(feed(&mut d, "fraud", 100, 20.0).is_empty());
        assert!(feed(&mut d, "fraud", 40, 60.0).is_empty());
        assert!(d.steps()[0].threshold_ms >= d.steps()[0].baseline_median_ms + 100.0);
        // Without the margin the same change is a drift.
        let mut plain = DriftDetector::new(DriftConfig::default());
        feed(&mut plain, "fraud", 100, 20.0);
        assert_eq!(feed(&mut plain, "fraud", 40, 60.0).len(), 1);
        // 200 ms more is one with the margin too.
        assert_eq!(feed(&mut d, "fraud", 40, 300.0).len(), 1);
    }

    #[test]
    fn noise_and_other_steps_raise_nothing() {
        let mut d = DriftDetector::new(DriftConfig::default());
        assert!(feed(&mut d, "inventory", 500, 50.0).is_empty());
        // A small shift (10 %) is not a drift.
        assert!(feed(&mut d, "inventory", 100, 55.0).is_empty());
        // One very slow duration among normal ones moves no median.
        assert!(d.observe("inventory", 10_000.0, at()).is_none());
        assert!(d.observe("shipping", f64::NAN, at()).is_none());
        assert!(d.observe("shipping", -1.0, at()).is_none());
    }
}
