//! The Theta method (Assimakopoulos and Nikolopoulos 2000) in the form Hyndman and Billah
//! (2003) showed it to be: simple exponential smoothing with a drift of half the slope of the
//! series' linear trend.

use super::adjusted::Core;
use super::smoothing::{ExpSmoothing, Trend};
use crate::error::Result;

/// Theta on a non-seasonal series: SES plus drift `b / 2`, `b` the least-squares slope.
#[derive(Debug, Clone)]
pub(crate) struct ThetaCore {
    ses: ExpSmoothing,
    drift: f64,
    n: usize,
}

impl ThetaCore {
    pub(crate) fn new() -> Self {
        Self {
            ses: ExpSmoothing::new(Trend::None),
            drift: 0.0,
            n: 0,
        }
    }
}

/// The least-squares slope of `y` against `0, 1, ..., n - 1`.
pub(crate) fn linear_slope(y: &[f64]) -> f64 {
    let n = y.len() as f64;
    let t_mean = (n - 1.0) / 2.0;
    let y_mean = y.iter().sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for (t, v) in y.iter().enumerate() {
        let dt = t as f64 - t_mean;
        num += dt * (v - y_mean);
        den += dt * dt;
    }
    if den > 0.0 { num / den } else { 0.0 }
}

impl Core for ThetaCore {
    fn min_len(&self) -> usize {
        3
    }

    fn fit(&mut self, z: &[f64]) -> Result<()> {
        self.ses.fit(z)?;
        self.drift = linear_slope(z) / 2.0;
        self.n = z.len();
        Ok(())
    }

    fn point(&self, h: usize) -> Vec<f64> {
        let alpha = self.ses.alpha().max(1e-10);
        // The drift of the theta-2 line seen through SES: b/2 * (h - 1 + (1 - (1-a)^n) / a).
        let offset = (1.0 - (1.0 - alpha).powi(self.n as i32)) / alpha;
        (0..h)
            .map(|j| self.ses.level() + self.drift * (j as f64 + offset))
            .collect()
    }

    fn sigma(&self) -> f64 {
        self.ses.sigma()
    }

    fn psi(&self, h: usize) -> Vec<f64> {
        self.ses.psi(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_a_line() {
        let y: Vec<f64> = (0..10).map(|t| 3.0 - 2.0 * t as f64).collect();
        assert!((linear_slope(&y) + 2.0).abs() < 1e-12);
    }

    #[test]
    fn theta_extrapolates_half_the_trend_beyond_ses() {
        let y: Vec<f64> = (0..40).map(|t| 10.0 + t as f64).collect();
        let mut m = ThetaCore::new();
        m.fit(&y).unwrap();
        let f = m.point(5);
        // SES tracks the line (alpha near 1, level near the last value); Theta adds slope / 2.
        assert!((f[1] - f[0] - 0.5).abs() < 1e-9, "{f:?}");
        assert!(f[0] > 49.0 && f[0] < 51.0, "{f:?}");
    }
}
