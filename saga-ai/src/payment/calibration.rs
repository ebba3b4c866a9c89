//! Calibration maps: raw model probabilities to probabilities that match observed rates.

use serde::{Deserialize, Serialize};

use super::logistic::{LogisticRegression, sigmoid};
use crate::error::{AiError, Result};

const EPS: f64 = 1e-6;

fn logit(p: f64) -> f64 {
    let p = p.clamp(EPS, 1.0 - EPS);
    (p / (1.0 - p)).ln()
}

/// A fitted calibration map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Calibrator {
    /// No change.
    Identity,
    /// Platt scaling: `sigmoid(a * logit(p) + b)`.
    Platt {
        /// Slope on the raw log-odds.
        a: f64,
        /// Offset.
        b: f64,
    },
    /// Isotonic regression (pool adjacent violators), interpolated linearly between blocks.
    Isotonic {
        /// Raw probabilities at the block centres, increasing.
        x: Vec<f64>,
        /// Calibrated probabilities there, non-decreasing.
        y: Vec<f64>,
    },
}

fn check(raw: &[f64], labels: &[bool]) -> Result<()> {
    if raw.len() != labels.len() || raw.is_empty() {
        return Err(AiError::InvalidInput(format!(
            "{} probabilities and {} labels (need equal, non-zero counts)",
            raw.len(),
            labels.len()
        )));
    }
    if let Some(i) = raw.iter().position(|p| !(0.0..=1.0).contains(p)) {
        return Err(AiError::InvalidInput(format!(
            "probability {i} is outside [0, 1]"
        )));
    }
    Ok(())
}

impl Calibrator {
    /// Fits Platt scaling on raw probabilities and outcomes.
    pub fn fit_platt(raw: &[f64], labels: &[bool]) -> Result<Self> {
        check(raw, labels)?;
        let x: Vec<Vec<f64>> = raw.iter().map(|&p| vec![logit(p)]).collect();
        let m = LogisticRegression::fit(&x, labels, 1e-6)?;
        Ok(Calibrator::Platt {
            a: m.weights[0],
            b: m.bias,
        })
    }

    /// Fits isotonic regression on raw probabilities and outcomes.
    pub fn fit_isotonic(raw: &[f64], labels: &[bool]) -> Result<Self> {
        check(raw, labels)?;
        let mut idx: Vec<usize> = (0..raw.len()).collect();
        idx.sort_by(|&a, &b| raw[a].total_cmp(&raw[b]));
        // Blocks of (sum of x, sum of y, count), merged while decreasing.
        let mut blocks: Vec<(f64, f64, f64)> = Vec::new();
        for i in idx {
            blocks.push((raw[i], if labels[i] { 1.0 } else { 0.0 }, 1.0));
            while blocks.len() >= 2 {
                let (x2, y2, n2) = blocks[blocks.len() - 1];
                let (x1, y1, n1) = blocks[blocks.len() - 2];
                if y1 / n1 >= y2 / n2 {
                    blocks.pop();
                    let last = blocks.len() - 1;
                    blocks[last] = (x1 + x2, y1 + y2, n1 + n2);
                } else {
                    break;
                }
            }
        }
        let x = blocks.iter().map(|b| b.0 / b.2).collect();
        let y = blocks
            .iter()
            .map(|b| (b.1 / b.2).clamp(EPS, 1.0 - EPS))
            .collect();
        Ok(Calibrator::Isotonic { x, y })
    }

    /// The calibrated probability of raw probability `p`.
    pub fn apply(&self, p: f64) -> f64 {
        let p = if p.is_nan() { 0.5 } else { p.clamp(0.0, 1.0) };
        match self {
            Calibrator::Identity => p,
            Calibrator::Platt { a, b } => sigmoid(a * logit(p) + b),
            Calibrator::Isotonic { x, y } => {
                let (Some(&x0), Some(&xn)) = (x.first(), x.last()) else {
                    return p;
                };
                if p <= x0 {
                    return y[0];
                }
                if p >= xn {
                    return y[y.len() - 1];
                }
                let j = x.partition_point(|&v| v < p).clamp(1, x.len() - 1);
                let (xa, xb, ya, yb) = (x[j - 1], x[j], y[j - 1], y[j]);
                if xb > xa {
                    ya + (yb - ya) * (p - xa) / (xb - xa)
                } else {
                    yb
                }
            }
        }
    }

    /// Short name (`identity`, `platt`, `isotonic`).
    pub fn name(&self) -> &'static str {
        match self {
            Calibrator::Identity => "identity",
            Calibrator::Platt { .. } => "platt",
            Calibrator::Isotonic { .. } => "isotonic",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platt_fixes_an_overconfident_score() {
        // True probability sigmoid(z), raw score sigmoid(3 z): Platt should find a ~ 1/3.
        let mut raw = Vec::new();
        let mut labels = Vec::new();
        for i in 0..100 {
            let z = (i as f64 - 50.0) / 20.0;
            let ones = (sigmoid(z) * 100.0).round() as usize;
            for k in 0..100 {
                raw.push(sigmoid(3.0 * z));
                labels.push(k < ones);
            }
        }
        let Calibrator::Platt { a, .. } = Calibrator::fit_platt(&raw, &labels).unwrap() else {
            panic!("not platt")
        };
        assert!((a - 1.0 / 3.0).abs() < 0.03, "{a}");
    }

    #[test]
    fn isotonic_is_monotone_and_matches_block_rates() {
        let raw = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6];
        let labels = [false, true, false, false, true, true];
        let c = Calibrator::fit_isotonic(&raw, &labels).unwrap();
        let out: Vec<f64> = raw.iter().map(|&p| c.apply(p)).collect();
        assert!(out.windows(2).all(|w| w[0] <= w[1]), "{out:?}");
        assert!(c.apply(0.9) > 0.99 && c.apply(0.0) < 0.01);
        assert!(c.apply(f64::NAN).is_finite());
    }
}
