//! Seasonality as in the M3 benchmarks: a 90% autocorrelation test at the seasonal lag, and
//! classical multiplicative decomposition to take the season out before forecasting and put it
//! back afterwards.

use super::dist;

/// The multiplicative seasonal indices of a series (mean 1), by position in the cycle.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SeasonalIndices {
    /// `indices[i]`: the factor of the values at positions `i, i + period, ...` from the start.
    pub indices: Vec<f64>,
}

impl SeasonalIndices {
    /// Tests `history` for seasonality of `period` and, when it is seasonal, decomposes it.
    ///
    /// `None` when the period is 1, the series is shorter than two full cycles plus one, is
    /// constant, holds a value at or below zero (multiplicative indices need positive data),
    /// or fails the test: `|r_m| > 1.645 * sqrt((1 + 2 * sum_{k<m} r_k^2) / n)`.
    pub fn detect(history: &[f64], period: usize) -> Option<Self> {
        let n = history.len();
        if period <= 1 || n <= 2 * period || history.iter().any(|&v| v <= 0.0) {
            return None;
        }
        let r = autocorrelations(history, period)?;
        let below: f64 = r[..period - 1].iter().map(|v| v * v).sum();
        let limit = dist::normal_quantile(0.95) * ((1.0 + 2.0 * below) / n as f64).sqrt();
        if r[period - 1].abs() <= limit {
            return None;
        }
        Self::decompose(history, period)
    }

    /// Classical multiplicative decomposition: a centred moving average of one cycle as the
    /// trend, the mean ratio to it per position as the index, normalised to mean 1.
    pub fn decompose(history: &[f64], period: usize) -> Option<Self> {
        let n = history.len();
        if period <= 1 || n < 2 * period {
            return None;
        }
        // Centred moving average: for an even period a 2 x m average with half weights at the
        // ends, for an odd period a plain m average.
        let half = period / 2;
        let weights: Vec<f64> = if period % 2 == 0 {
            (0..=period)
                .map(|j| if j == 0 || j == period { 0.5 } else { 1.0 } / period as f64)
                .collect()
        } else {
            vec![1.0 / period as f64; period]
        };
        let mut sums = vec![0.0; period];
        let mut counts = vec![0usize; period];
        for t in half..n.saturating_sub(weights.len() - 1 - half) {
            let trend: f64 = weights
                .iter()
                .enumerate()
                .map(|(j, w)| w * history[t + j - half])
                .sum();
            if trend == 0.0 {
                return None;
            }
            sums[t % period] += history[t] / trend;
            counts[t % period] += 1;
        }
        if counts.contains(&0) {
            return None;
        }
        let raw: Vec<f64> = sums
            .iter()
            .zip(&counts)
            .map(|(s, &c)| s / c as f64)
            .collect();
        let mean = raw.iter().sum::<f64>() / period as f64;
        let indices: Vec<f64> = raw.iter().map(|v| v / mean).collect();
        indices
            .iter()
            .all(|v| v.is_finite() && *v > 1e-4)
            .then_some(Self { indices })
    }

    /// The cycle length.
    pub fn period(&self) -> usize {
        self.indices.len()
    }

    /// The index of the value at position `t` from the start of the fitted series.
    pub fn at(&self, t: usize) -> f64 {
        self.indices[t % self.indices.len()]
    }

    /// `history` divided by its indices.
    pub fn adjust(&self, history: &[f64]) -> Vec<f64> {
        history
            .iter()
            .enumerate()
            .map(|(t, v)| v / self.at(t))
            .collect()
    }

    /// The indices of the `h` steps after a series of length `n`.
    pub fn ahead(&self, n: usize, h: usize) -> Vec<f64> {
        (n..n + h).map(|t| self.at(t)).collect()
    }
}

/// Sample autocorrelations at lags `1..=max_lag` (as R's `acf`), `None` for a constant series.
pub(crate) fn autocorrelations(x: &[f64], max_lag: usize) -> Option<Vec<f64>> {
    let n = x.len();
    let mean = x.iter().sum::<f64>() / n as f64;
    let denom: f64 = x.iter().map(|v| (v - mean).powi(2)).sum();
    if denom <= 0.0 || !denom.is_finite() {
        return None;
    }
    Some(
        (1..=max_lag)
            .map(|k| {
                (0..n.saturating_sub(k))
                    .map(|t| (x[t] - mean) * (x[t + k] - mean))
                    .sum::<f64>()
                    / denom
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seasonal_series() -> Vec<f64> {
        let pattern = [0.8, 1.0, 1.3, 0.9];
        (0..40)
            .map(|t| (100.0 + t as f64) * pattern[t % 4])
            .collect()
    }

    #[test]
    fn finds_the_season_of_a_seasonal_series() {
        let s = SeasonalIndices::detect(&seasonal_series(), 4).unwrap();
        let expected = [0.8, 1.0, 1.3, 0.9];
        for (got, want) in s.indices.iter().zip(expected) {
            assert!((got - want).abs() < 0.02, "{:?}", s.indices);
        }
    }

    #[test]
    fn noise_is_not_seasonal() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let x: Vec<f64> = (0..60)
            .map(|_| 100.0 + rng.random_range(-5.0..5.0))
            .collect();
        assert!(SeasonalIndices::detect(&x, 4).is_none());
    }

    #[test]
    fn a_trend_alone_gets_flat_indices() {
        // The autocorrelation test flags strong trends too; their indices stay near 1.
        let x: Vec<f64> = (0..40).map(|t| 100.0 + 3.0 * t as f64).collect();
        if let Some(s) = SeasonalIndices::detect(&x, 4) {
            assert!(s.indices.iter().all(|v| (v - 1.0).abs() < 0.01), "{s:?}");
        }
    }

    #[test]
    fn short_constant_or_nonpositive_series_are_left_alone() {
        assert!(SeasonalIndices::detect(&[1.0; 8], 4).is_none());
        assert!(SeasonalIndices::detect(&[5.0; 40], 4).is_none());
        let mut x = seasonal_series();
        x[3] = 0.0;
        assert!(SeasonalIndices::detect(&x, 4).is_none());
    }
}
