//! EASE (Steck 2019, "Embarrassingly Shallow Autoencoders for Sparse Data"): a linear item-item
//! model with a closed form.
//!
//! With the Gram matrix `G = XᵀX` of the binary customer x item matrix and `P = (G + λI)⁻¹`, the
//! weights are `B = I - P / diag(P)` (column `j` divided by `P[j][j]`), so `B[i][j] =
//! -P[i][j] / P[j][j]` off the diagonal and `B[j][j] = 0`. A customer's score of `j` is
//! `Σ_{i in history} B[i][j]`. Fitting inverts an items x items matrix (see
//! [`spd_inverse`]); it is refitted on demand, and items added since the
//! last fit score 0 until then.

use serde::{Deserialize, Serialize};

use crate::error::{AiError, Result};
use crate::recommend::interactions::Interactions;
use crate::recommend::linalg::spd_inverse;
use crate::recommend::scorer::{ItemScorer, distinct};

/// A fitted EASE model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "EaseRepr")]
pub struct Ease {
    lambda: f64,
    n_items: usize,
    /// `B`, row-major, `n_items²` (f32 halves the memory; scores need no more precision).
    weights: Vec<f32>,
}

#[derive(Deserialize)]
struct EaseRepr {
    lambda: f64,
    n_items: usize,
    weights: Vec<f32>,
}

impl TryFrom<EaseRepr> for Ease {
    type Error = AiError;

    fn try_from(r: EaseRepr) -> Result<Self> {
        check_lambda(r.lambda)
            .map_err(|e| AiError::IncompatibleModel(format!("saved EASE model: {e}")))?;
        if Some(r.weights.len()) != r.n_items.checked_mul(r.n_items) {
            return Err(AiError::IncompatibleModel(format!(
                "saved EASE model has {} weights for {} items",
                r.weights.len(),
                r.n_items
            )));
        }
        Ok(Self {
            lambda: r.lambda,
            n_items: r.n_items,
            weights: r.weights,
        })
    }
}

fn check_lambda(lambda: f64) -> Result<()> {
    if !(lambda.is_finite() && lambda > 0.0) {
        return Err(AiError::InvalidInput(format!(
            "EASE lambda must be a positive number, got {lambda}"
        )));
    }
    Ok(())
}

impl Ease {
    /// Fits on all of `data` with L2 weight `lambda` (positive and finite, else invalid input).
    /// No data gives a model that scores nothing.
    pub fn fit(data: &Interactions, lambda: f64) -> Result<Self> {
        check_lambda(lambda)?;
        let n = data.n_items();
        let mut g = data.gram();
        for i in 0..n {
            g[i * n + i] += lambda;
        }
        let p = spd_inverse(&g, n)?;
        let mut weights = vec![0.0f32; n * n];
        for i in 0..n {
            for j in 0..n {
                if i != j {
                    weights[i * n + j] = (-p[i * n + j] / p[j * n + j]) as f32;
                }
            }
        }
        Ok(Self {
            lambda,
            n_items: n,
            weights,
        })
    }

    /// The L2 weight it was fitted with.
    pub fn lambda(&self) -> f64 {
        self.lambda
    }

    /// How many items it was fitted on (later items score 0).
    pub fn n_items(&self) -> usize {
        self.n_items
    }

    /// The weight `B[i][j]`, if both are fitted items.
    pub fn weight(&self, i: u32, j: u32) -> Option<f32> {
        let (i, j) = (i as usize, j as usize);
        (i < self.n_items && j < self.n_items).then(|| self.weights[i * self.n_items + j])
    }
}

impl ItemScorer for Ease {
    fn kind(&self) -> &'static str {
        "recommend.ease"
    }

    fn score(&self, data: &Interactions, history: &[u32], scores: &mut [f64]) {
        let n = self.n_items;
        for i in distinct(history, data.n_items()) {
            let i = i as usize;
            if i >= n {
                continue;
            }
            for (s, &w) in scores.iter_mut().zip(&self.weights[i * n..(i + 1) * n]) {
                *s += f64::from(w);
            }
        }
    }

    fn refit(&mut self, data: &Interactions) -> Result<()> {
        *self = Self::fit(data, self.lambda)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> Interactions {
        Interactions::from_histories([
            ("a", vec!["x", "y"]),
            ("b", vec!["x", "y", "z"]),
            ("c", vec!["x", "y"]),
            ("d", vec!["z", "w"]),
        ])
        .unwrap()
    }

    #[test]
    fn co_bought_items_get_positive_weight() {
        let d = data();
        let e = Ease::fit(&d, 0.5).unwrap();
        let x = d.item_index("x").unwrap();
        let y = d.item_index("y").unwrap();
        let w = d.item_index("w").unwrap();
        assert!(e.weight(x, y).unwrap() > 0.0);
        assert_eq!(e.weight(x, x).unwrap(), 0.0);
        assert!(e.weight(x, y).unwrap() > e.weight(x, w).unwrap());
    }

    #[test]
    fn bad_lambda_is_invalid_input() {
        for l in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                Ease::fit(&data(), l),
                Err(AiError::InvalidInput(_))
            ));
        }
    }

    #[test]
    fn empty_data_fits_an_empty_model() {
        let e = Ease::fit(&Interactions::new(), 1.0).unwrap();
        assert_eq!(e.n_items(), 0);
    }

    #[test]
    fn inconsistent_saved_weights_are_rejected() {
        let json = r#"{"lambda":1.0,"n_items":2,"weights":[0.0]}"#;
        assert!(serde_json::from_str::<Ease>(json).is_err());
    }
}
