//! Binary logistic regression fitted by Newton's method with an L2 penalty.

use serde::{Deserialize, Serialize};

use crate::error::{AiError, Result};

/// A fitted logistic regression: `P(y) = sigmoid(bias + weights . x)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogisticRegression {
    /// One weight per feature.
    pub weights: Vec<f64>,
    /// The intercept (not penalised).
    pub bias: f64,
}

pub(crate) use crate::math::sigmoid;

/// Solves `a x = b` for a symmetric positive definite `a` (Cholesky). `None` if not SPD.
fn solve_spd(a: &[Vec<f64>], b: &[f64]) -> Option<Vec<f64>> {
    let n = b.len();
    let mut l = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i][k] * l[j][k]).sum();
            if i == j {
                let d = a[i][i] - s;
                if d <= 0.0 || !d.is_finite() {
                    return None;
                }
                l[i][j] = d.sqrt();
            } else {
                l[i][j] = (a[i][j] - s) / l[j][j];
            }
        }
    }
    let mut y = vec![0.0; n];
    for i in 0..n {
        y[i] = (b[i] - (0..i).map(|k| l[i][k] * y[k]).sum::<f64>()) / l[i][i];
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        x[i] = (y[i] - (i + 1..n).map(|k| l[k][i] * x[k]).sum::<f64>()) / l[i][i];
    }
    Some(x)
}

impl LogisticRegression {
    /// Fits on rows `x` (all the same length, finite) and labels `y`, minimising the mean
    /// log-loss plus `l2 / 2 * |weights|^2`.
    // Index loops read best for the symmetric Hessian.
    #[allow(clippy::needless_range_loop)]
    pub fn fit(x: &[Vec<f64>], y: &[bool], l2: f64) -> Result<Self> {
        if x.len() != y.len() {
            return Err(AiError::InvalidInput(format!(
                "{} rows but {} labels",
                x.len(),
                y.len()
            )));
        }
        let pos = y.iter().filter(|&&v| v).count();
        if pos == 0 || pos == y.len() {
            return Err(AiError::NotEnoughData(format!(
                "need both outcomes, got {pos} of {}",
                y.len()
            )));
        }
        if !l2.is_finite() || l2 < 0.0 {
            return Err(AiError::InvalidInput(format!("l2 must be >= 0, got {l2}")));
        }
        let d = x[0].len();
        if let Some(i) = x
            .iter()
            .position(|r| r.len() != d || r.iter().any(|v| !v.is_finite()))
        {
            return Err(AiError::InvalidInput(format!(
                "row {i} has the wrong length or a non-finite value"
            )));
        }
        let n = x.len() as f64;
        // Parameters: [bias, w_1..w_d].
        let mut theta = vec![0.0; d + 1];
        let rate = pos as f64 / n;
        theta[0] = (rate / (1.0 - rate)).ln();
        let mut last_loss = f64::INFINITY;
        for _ in 0..50 {
            let mut grad = vec![0.0; d + 1];
            let mut hess = vec![vec![0.0; d + 1]; d + 1];
            let mut loss = 0.0;
            for (row, &label) in x.iter().zip(y) {
                let z = theta[0] + row.iter().zip(&theta[1..]).map(|(a, b)| a * b).sum::<f64>();
                let p = sigmoid(z);
                let t = if label { 1.0 } else { 0.0 };
                loss -= if label {
                    p.max(1e-300).ln()
                } else {
                    (1.0 - p).max(1e-300).ln()
                };
                let g = p - t;
                let w = (p * (1.0 - p)).max(1e-12);
                let full = std::iter::once(1.0).chain(row.iter().copied());
                let xs: Vec<f64> = full.collect();
                for i in 0..=d {
                    grad[i] += g * xs[i];
                    for j in 0..=i {
                        hess[i][j] += w * xs[i] * xs[j];
                    }
                }
            }
            for i in 0..=d {
                grad[i] /= n;
                for j in 0..=i {
                    hess[i][j] /= n;
                    hess[j][i] = hess[i][j];
                }
            }
            loss /= n;
            for i in 1..=d {
                grad[i] += l2 * theta[i];
                hess[i][i] += l2;
                loss += 0.5 * l2 * theta[i] * theta[i];
            }
            hess[0][0] += 1e-9;
            let step = solve_spd(&hess, &grad)
                .ok_or_else(|| AiError::Fit("Hessian is not positive definite".into()))?;
            for (t, s) in theta.iter_mut().zip(&step) {
                *t -= s;
            }
            if !theta.iter().all(|v| v.is_finite()) {
                return Err(AiError::Fit("Newton step diverged".into()));
            }
            if (last_loss - loss).abs() < 1e-10 {
                break;
            }
            last_loss = loss;
        }
        Ok(Self {
            bias: theta[0],
            weights: theta[1..].to_vec(),
        })
    }

    /// The log-odds for row `x` (which must have one value per weight).
    pub fn logit(&self, x: &[f64]) -> Result<f64> {
        if x.len() != self.weights.len() {
            return Err(AiError::InvalidInput(format!(
                "{} features, the model has {}",
                x.len(),
                self.weights.len()
            )));
        }
        Ok(self.bias + x.iter().zip(&self.weights).map(|(a, b)| a * b).sum::<f64>())
    }

    /// The probability for row `x`.
    pub fn predict(&self, x: &[f64]) -> Result<f64> {
        self.logit(x).map(sigmoid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_known_coefficients() {
        // y = 1 with probability sigmoid(0.5 + 2 x), on a grid of x with exact frequencies.
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..200 {
            let v = (i as f64 - 100.0) / 50.0;
            let p = sigmoid(0.5 + 2.0 * v);
            let ones = (p * 100.0).round() as usize;
            for k in 0..100 {
                x.push(vec![v]);
                y.push(k < ones);
            }
        }
        let m = LogisticRegression::fit(&x, &y, 0.0).unwrap();
        assert!((m.bias - 0.5).abs() < 0.05, "{m:?}");
        assert!((m.weights[0] - 2.0).abs() < 0.05, "{m:?}");
    }

    #[test]
    fn one_class_is_not_enough_data() {
        let r = LogisticRegression::fit(&[vec![1.0], vec![2.0]], &[true, true], 0.1);
        assert!(matches!(r, Err(AiError::NotEnoughData(_))));
    }

    #[test]
    fn separable_data_with_a_penalty_stays_finite() {
        let x = vec![vec![-1.0], vec![-2.0], vec![1.0], vec![2.0]];
        let y = [false, false, true, true];
        let m = LogisticRegression::fit(&x, &y, 0.01).unwrap();
        assert!(m.weights[0].is_finite() && m.weights[0] > 0.0);
    }
}
