//! Exponential smoothing with additive errors: simple (level only), Holt (level and trend) and
//! damped trend, the ETS(A,N,N), ETS(A,A,N) and ETS(A,Ad,N) models of Hyndman et al.
//!
//! Smoothing parameters minimise the in-sample sum of squared one-step errors under the usual
//! bounds (`0 < beta <= alpha < 1`, `0.8 <= phi <= 0.98`). For fixed smoothing parameters the
//! errors are affine in the initial level and trend, so those come out exactly by least squares
//! instead of being searched for.

use super::adjusted::Core;
use super::optimize::minimize;
use crate::error::{AiError, Result};

/// Which trend the smoothing carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trend {
    /// Level only: simple exponential smoothing.
    None,
    /// Linear trend: Holt's method.
    Linear,
    /// Damped trend (Gardner and McKenzie).
    Damped,
}

/// Fitted exponential smoothing on a non-seasonal series.
#[derive(Debug, Clone)]
pub(crate) struct ExpSmoothing {
    trend: Trend,
    alpha: f64,
    beta: f64,
    phi: f64,
    level: f64,
    slope: f64,
    sigma: f64,
}

const ALPHA_MIN: f64 = 1e-4;
const ALPHA_MAX: f64 = 0.9999;

impl ExpSmoothing {
    pub(crate) fn new(trend: Trend) -> Self {
        Self {
            trend,
            alpha: 0.5,
            beta: 0.0,
            phi: 1.0,
            level: 0.0,
            slope: 0.0,
            sigma: 0.0,
        }
    }

    /// The fitted level smoothing parameter.
    pub(crate) fn alpha(&self) -> f64 {
        self.alpha
    }

    /// The final level.
    pub(crate) fn level(&self) -> f64 {
        self.level
    }

    /// (alpha, beta, phi) from the optimiser's unit-box coordinates.
    fn params(&self, p: &[f64]) -> (f64, f64, f64) {
        let alpha = p[0];
        match self.trend {
            Trend::None => (alpha, 0.0, 1.0),
            Trend::Linear => (alpha, alpha * p[1], 1.0),
            Trend::Damped => (alpha, alpha * p[1], p[2]),
        }
    }

    fn bounds(&self) -> (Vec<f64>, Vec<f64>) {
        match self.trend {
            Trend::None => (vec![ALPHA_MIN], vec![ALPHA_MAX]),
            Trend::Linear => (vec![ALPHA_MIN, 1e-4], vec![ALPHA_MAX, 1.0]),
            Trend::Damped => (vec![ALPHA_MIN, 1e-4, 0.8], vec![ALPHA_MAX, 1.0, 0.98]),
        }
    }
}

/// Runs the smoothing recursions from `(level, slope)`: the one-step errors and the final state.
fn filter(y: &[f64], alpha: f64, beta: f64, phi: f64, init: (f64, f64)) -> (Vec<f64>, f64, f64) {
    let (mut level, mut slope) = init;
    let mut errors = Vec::with_capacity(y.len());
    for &v in y {
        let e = v - (level + phi * slope);
        level = level + phi * slope + alpha * e;
        slope = phi * slope + beta * e;
        errors.push(e);
    }
    (errors, level, slope)
}

/// The initial state that minimises the squared one-step errors for fixed parameters, and
/// those errors' sum of squares.
fn best_start(y: &[f64], alpha: f64, beta: f64, phi: f64, with_trend: bool) -> ((f64, f64), f64) {
    let (base, _, _) = filter(y, alpha, beta, phi, (0.0, 0.0));
    let (from_level, _, _) = filter(y, alpha, beta, phi, (1.0, 0.0));
    let a: Vec<f64> = from_level.iter().zip(&base).map(|(u, b)| u - b).collect();
    let dot = |u: &[f64], v: &[f64]| u.iter().zip(v).map(|(x, y)| x * y).sum::<f64>();
    let start = if with_trend {
        let (from_slope, _, _) = filter(y, alpha, beta, phi, (0.0, 1.0));
        let c: Vec<f64> = from_slope.iter().zip(&base).map(|(u, b)| u - b).collect();
        // Normal equations of min |base + l a + s c|^2, with a hair of ridge for conditioning.
        let (aa, ac, cc) = (dot(&a, &a) + 1e-12, dot(&a, &c), dot(&c, &c) + 1e-12);
        let (ab, cb) = (dot(&a, &base), dot(&c, &base));
        let det = aa * cc - ac * ac;
        if det.abs() > 1e-12 * aa * cc {
            (-(cc * ab - ac * cb) / det, -(aa * cb - ac * ab) / det)
        } else {
            (-ab / aa, 0.0)
        }
    } else {
        let aa = dot(&a, &a);
        (if aa > 0.0 { -dot(&a, &base) / aa } else { 0.0 }, 0.0)
    };
    // The errors are affine in the start, so the fitted errors are base + l a (+ s c).
    let (errors, _, _) = filter(y, alpha, beta, phi, start);
    let sse = errors.iter().map(|e| e * e).sum();
    (start, sse)
}

impl Core for ExpSmoothing {
    fn min_len(&self) -> usize {
        match self.trend {
            Trend::None => 2,
            Trend::Linear | Trend::Damped => 4,
        }
    }

    fn fit(&mut self, y: &[f64]) -> Result<()> {
        let with_trend = self.trend != Trend::None;
        let (lower, upper) = self.bounds();
        let grid = match self.trend {
            Trend::None => 12,
            Trend::Linear => 6,
            Trend::Damped => 4,
        };
        let (p, sse) = minimize(
            |p| {
                let (a, b, f) = self.params(p);
                best_start(y, a, b, f, with_trend).1
            },
            &lower,
            &upper,
            grid,
        );
        if !sse.is_finite() {
            return Err(AiError::Fit(format!(
                "exponential smoothing found no finite fit on {} values",
                y.len()
            )));
        }
        let (alpha, beta, phi) = self.params(&p);
        let (start, _) = best_start(y, alpha, beta, phi, with_trend);
        let (errors, level, slope) = filter(y, alpha, beta, phi, start);
        let params = 1 + usize::from(with_trend) * 2 + usize::from(self.trend == Trend::Damped);
        let dof = y.len().saturating_sub(params).max(1);
        let sse: f64 = errors.iter().map(|e| e * e).sum();
        self.alpha = alpha;
        self.beta = beta;
        self.phi = phi;
        self.level = level;
        self.slope = slope;
        self.sigma = (sse / dof as f64).sqrt();
        Ok(())
    }

    fn point(&self, h: usize) -> Vec<f64> {
        let mut damp = 0.0;
        let mut power = 1.0;
        (0..h)
            .map(|_| {
                power *= self.phi;
                damp += power;
                self.level + damp * self.slope
            })
            .collect()
    }

    fn sigma(&self) -> f64 {
        self.sigma
    }

    fn psi(&self, h: usize) -> Vec<f64> {
        let mut psi = Vec::with_capacity(h);
        let mut damp = 0.0;
        let mut power = 1.0;
        for i in 0..h {
            if i == 0 {
                psi.push(1.0);
                continue;
            }
            power *= self.phi;
            damp += power;
            psi.push(self.alpha + self.beta * damp);
        }
        psi
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_initial_level_is_exact_for_a_flat_series() {
        let y = [5.0; 20];
        let mut m = ExpSmoothing::new(Trend::None);
        m.fit(&y).unwrap();
        assert!((m.point(1)[0] - 5.0).abs() < 1e-9);
        assert!(m.sigma() < 1e-9);
    }

    #[test]
    fn holt_follows_a_straight_line() {
        let y: Vec<f64> = (0..30).map(|t| 2.0 + 0.5 * t as f64).collect();
        let mut m = ExpSmoothing::new(Trend::Linear);
        m.fit(&y).unwrap();
        let f = m.point(3);
        for (i, v) in f.iter().enumerate() {
            assert!((v - (2.0 + 0.5 * (30 + i) as f64)).abs() < 1e-6, "{f:?}");
        }
    }

    #[test]
    fn damped_trend_flattens_out() {
        let y: Vec<f64> = (0..30).map(|t| 2.0 + 0.5 * t as f64).collect();
        let mut m = ExpSmoothing::new(Trend::Damped);
        m.fit(&y).unwrap();
        let f = m.point(40);
        let steps: Vec<f64> = f.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(steps[0] > 0.3 && steps[38] < steps[0] * 0.5, "{steps:?}");
    }
}
