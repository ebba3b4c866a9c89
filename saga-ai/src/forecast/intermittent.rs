//! Intermittent demand: Croston's method and its TSB variant (Teunter, Syntetos and Babai
//! 2011), for series with many zero periods where smoothing the raw values is biased.
//!
//! Croston smooths the sizes of non-zero demands and the intervals between them, and forecasts
//! size / interval. TSB smooths the size and, every period, the probability that demand occurs,
//! so the forecast decays when demand stops (obsolescence). Both pick their smoothing constants
//! from a small grid by in-sample one-step squared error.

use super::forecaster::{DEFAULT_LEVEL, DemandForecaster, Forecast, check_series, not_fitted};
use crate::error::{AiError, Result};

const GRID: [f64; 6] = [0.02, 0.05, 0.1, 0.15, 0.2, 0.3];

/// Which intermittent method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Variant {
    /// Croston (1972).
    Croston,
    /// Teunter, Syntetos and Babai (2011).
    Tsb,
}

/// A fitted intermittent-demand model.
#[derive(Debug, Clone)]
pub(crate) struct Intermittent {
    variant: Variant,
    /// The flat forecast per period, once fitted.
    rate: Option<f64>,
    alpha: f64,
    sigma: f64,
}

impl Intermittent {
    pub(crate) fn new(variant: Variant) -> Self {
        Self {
            variant,
            rate: None,
            alpha: 0.1,
            sigma: 0.0,
        }
    }
}

/// Runs Croston with size/interval constant `a` (the interval uses the same constant): the
/// one-step forecasts before each period and the final forecast.
fn croston(y: &[f64], a: f64) -> (Vec<f64>, f64) {
    let first = y.iter().position(|&v| v > 0.0);
    let Some(first) = first else {
        return (vec![0.0; y.len()], 0.0);
    };
    let mut size = y[first];
    let mut interval = (first + 1) as f64;
    let mut since = 0.0;
    let mut fitted = Vec::with_capacity(y.len());
    for (t, &v) in y.iter().enumerate() {
        fitted.push(if t <= first {
            f64::NAN
        } else {
            size / interval
        });
        if t <= first {
            continue;
        }
        since += 1.0;
        if v > 0.0 {
            size += a * (v - size);
            interval += a * (since - interval);
            since = 0.0;
        }
    }
    (fitted, size / interval)
}

/// Runs TSB with size constant `a` and occurrence constant `b`.
fn tsb(y: &[f64], a: f64, b: f64) -> (Vec<f64>, f64) {
    let first = y.iter().position(|&v| v > 0.0);
    let Some(first) = first else {
        return (vec![0.0; y.len()], 0.0);
    };
    let mut size = y[first];
    let mut prob = 1.0 / (first + 1) as f64;
    let mut fitted = Vec::with_capacity(y.len());
    for (t, &v) in y.iter().enumerate() {
        fitted.push(if t <= first { f64::NAN } else { prob * size });
        if t <= first {
            continue;
        }
        let occurred = v > 0.0;
        prob += b * (f64::from(u8::from(occurred)) - prob);
        if occurred {
            size += a * (v - size);
        }
    }
    (fitted, prob * size)
}

/// Mean squared one-step error over the periods with a forecast.
fn mse(y: &[f64], fitted: &[f64]) -> f64 {
    let (sum, count) = y
        .iter()
        .zip(fitted)
        .filter(|(_, f)| f.is_finite())
        .fold((0.0, 0usize), |(s, c), (v, f)| (s + (v - f).powi(2), c + 1));
    if count == 0 { 0.0 } else { sum / count as f64 }
}

impl DemandForecaster for Intermittent {
    fn name(&self) -> &'static str {
        match self.variant {
            Variant::Croston => "croston",
            Variant::Tsb => "tsb",
        }
    }

    fn fit(&mut self, history: &[f64], period: usize) -> Result<()> {
        self.rate = None;
        check_series(history, period, 2)?;
        if let Some(i) = history.iter().position(|&v| v < 0.0) {
            return Err(AiError::InvalidInput(format!(
                "value {i} is negative: intermittent demand counts cannot be"
            )));
        }
        let mut best: Option<(f64, f64, f64)> = None; // (mse, rate, alpha)
        for &a in &GRID {
            let candidates: Vec<(Vec<f64>, f64)> = match self.variant {
                Variant::Croston => vec![croston(history, a)],
                Variant::Tsb => GRID.iter().map(|&b| tsb(history, a, b)).collect(),
            };
            for (fitted, rate) in candidates {
                let e = mse(history, &fitted);
                if best.is_none_or(|(m, _, _)| e < m) {
                    best = Some((e, rate, a));
                }
            }
        }
        let (e, rate, alpha) = best.unwrap_or((0.0, 0.0, 0.1));
        self.rate = Some(rate);
        self.alpha = alpha;
        self.sigma = e.sqrt();
        Ok(())
    }

    fn forecast(&self, h: usize) -> Result<Forecast> {
        let rate = self.rate.ok_or_else(|| not_fitted(self.name()))?;
        // Demand is taken as independent around a stationary rate, estimated by smoothing with
        // constant a: the estimate's variance is a / (2 - a) of a period's. The sum of k periods
        // then has variance sigma^2 (k + k^2 a / (2 - a)); a random-walk error model would
        // overstate it several times for long lead times.
        let estimate = self.alpha / (2.0 - self.alpha);
        let sd = vec![self.sigma * (1.0 + estimate).sqrt(); h];
        let cumulative = (1..=h)
            .map(|k| {
                let k = k as f64;
                self.sigma * (k + k * k * estimate).sqrt()
            })
            .collect();
        Forecast::from_moments(vec![rate; h], sd, cumulative, DEFAULT_LEVEL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn croston_forecasts_size_over_interval() {
        // Demand of 6 every third period: rate 2.
        let y: Vec<f64> = (0..60)
            .map(|t| if t % 3 == 2 { 6.0 } else { 0.0 })
            .collect();
        let (_, rate) = croston(&y, 0.1);
        assert!((rate - 2.0).abs() < 1e-6, "{rate}");
    }

    #[test]
    fn tsb_decays_after_demand_stops() {
        let mut y: Vec<f64> = (0..40)
            .map(|t| if t % 2 == 0 { 4.0 } else { 0.0 })
            .collect();
        y.extend([0.0; 30]);
        let (_, tsb_rate) = tsb(&y, 0.1, 0.1);
        let (_, croston_rate) = croston(&y, 0.1);
        assert!(
            tsb_rate < 0.2 && croston_rate > 1.5,
            "{tsb_rate} {croston_rate}"
        );
    }

    #[test]
    fn all_zeros_forecast_zero() {
        let mut m = Intermittent::new(Variant::Tsb);
        m.fit(&[0.0; 10], 1).unwrap();
        assert_eq!(m.forecast(3).unwrap().mean, vec![0.0; 3]);
    }
}
