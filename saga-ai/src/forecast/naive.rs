//! The baselines: naive (last value), seasonal naive (the value one cycle back), and Naive2
//! (naive on the seasonally adjusted series, the M3 competition's benchmark).

use super::adjusted::Core;
use super::forecaster::{
    DEFAULT_LEVEL, DemandForecaster, ErrorModel, Forecast, check_series, not_fitted,
};
use crate::error::Result;

/// A random walk: the forecast is the last value.
#[derive(Debug, Clone, Default)]
pub(crate) struct RandomWalk {
    last: f64,
    sigma: f64,
}

impl Core for RandomWalk {
    fn min_len(&self) -> usize {
        1
    }

    fn fit(&mut self, z: &[f64]) -> Result<()> {
        self.last = z.last().copied().unwrap_or(0.0);
        self.sigma = rms_difference(z, 1);
        Ok(())
    }

    fn point(&self, h: usize) -> Vec<f64> {
        vec![self.last; h]
    }

    fn sigma(&self) -> f64 {
        self.sigma
    }

    fn psi(&self, h: usize) -> Vec<f64> {
        vec![1.0; h]
    }
}

/// The root mean square of the lag-`lag` differences (0 when there are none).
fn rms_difference(z: &[f64], lag: usize) -> f64 {
    let diffs: Vec<f64> = z.windows(lag + 1).map(|w| w[lag] - w[0]).collect();
    if diffs.is_empty() {
        0.0
    } else {
        (diffs.iter().map(|d| d * d).sum::<f64>() / diffs.len() as f64).sqrt()
    }
}

/// Seasonal naive: each step repeats the value one full cycle earlier.
#[derive(Debug, Clone, Default)]
pub(crate) struct SeasonalNaive {
    last_cycle: Vec<f64>,
    sigma: f64,
}

impl DemandForecaster for SeasonalNaive {
    fn name(&self) -> &'static str {
        "snaive"
    }

    fn fit(&mut self, history: &[f64], period: usize) -> Result<()> {
        self.last_cycle.clear();
        check_series(history, period, period)?;
        self.last_cycle = history[history.len() - period..].to_vec();
        self.sigma = rms_difference(history, period);
        Ok(())
    }

    fn forecast(&self, h: usize) -> Result<Forecast> {
        if self.last_cycle.is_empty() {
            return Err(not_fitted(self.name()));
        }
        let m = self.last_cycle.len();
        let mean = (0..h).map(|j| self.last_cycle[j % m]).collect();
        // The step-j error holds one shock per full cycle back: psi is 1 at multiples of m.
        let psi = (0..h).map(|i| if i % m == 0 { 1.0 } else { 0.0 }).collect();
        let model = ErrorModel {
            sigma: self.sigma,
            psi,
            scale: vec![1.0; h],
        };
        let (sd, cumulative) = model.deviations();
        Forecast::from_moments(mean, sd, cumulative, DEFAULT_LEVEL)
    }
}
