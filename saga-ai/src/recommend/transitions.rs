//! Item-to-item transitions: how often item `j` follows item `i` within a few steps in
//! customers' histories (a first-order Markov chain generalised to a short gap window with
//! decaying weights), updated online as orders arrive.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::{AiError, Result};
use crate::recommend::interactions::Interactions;

/// Decayed counts of `i -> j` successions: `j` at `d` steps after `i` (`1 <= d <= window`) adds
/// `decay^(d-1)`. Self-successions are not counted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transitions {
    window: usize,
    decay: f64,
    rows: Vec<HashMap<u32, f64>>,
    row_sums: Vec<f64>,
}

impl Transitions {
    /// Empty counts for a gap `window` (at least 1) and `decay` in `(0, 1]`; else invalid input.
    pub fn new(window: usize, decay: f64) -> Result<Self> {
        if window == 0 {
            return Err(AiError::InvalidInput(
                "transition window must be at least 1".into(),
            ));
        }
        if !(decay > 0.0 && decay <= 1.0) {
            return Err(AiError::InvalidInput(format!(
                "transition decay must be in (0, 1], got {decay}"
            )));
        }
        Ok(Self {
            window,
            decay,
            rows: Vec::new(),
            row_sums: Vec::new(),
        })
    }

    /// Counts every history of `data`.
    pub fn fit(data: &Interactions, window: usize, decay: f64) -> Result<Self> {
        let mut t = Self::new(window, decay)?;
        for h in data.histories() {
            t.extend(h, 0);
        }
        Ok(t)
    }

    /// The gap window.
    pub fn window(&self) -> usize {
        self.window
    }

    /// The per-step decay.
    pub fn decay(&self) -> f64 {
        self.decay
    }

    /// Counts the successions ending at positions `from..` of `sequence` (call with the full
    /// history and the length it had before new items were appended).
    pub fn extend(&mut self, sequence: &[u32], from: usize) {
        for p in from.max(1)..sequence.len() {
            let to = sequence[p];
            let mut w = 1.0;
            for d in 1..=self.window.min(p) {
                let prev = sequence[p - d];
                if prev != to {
                    let prev = prev as usize;
                    if self.rows.len() <= prev {
                        self.rows.resize_with(prev + 1, HashMap::new);
                        self.row_sums.resize(prev + 1, 0.0);
                    }
                    *self.rows[prev].entry(to).or_insert(0.0) += w;
                    self.row_sums[prev] += w;
                }
                w *= self.decay;
            }
        }
    }

    /// Adds `weight x P(j | i)` (the row of `i` normalised to sum 1) to `scores[j]`.
    pub fn add_successors(&self, i: u32, weight: f64, scores: &mut [f64]) {
        let i = i as usize;
        let (Some(row), Some(&sum)) = (self.rows.get(i), self.row_sums.get(i)) else {
            return;
        };
        if sum <= 0.0 {
            return;
        }
        let f = weight / sum;
        for (&j, &c) in row {
            if let Some(s) = scores.get_mut(j as usize) {
                *s += f * c;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_decayed_successors() {
        let mut t = Transitions::new(2, 0.5).unwrap();
        t.extend(&[0, 1, 2], 0);
        let mut s = vec![0.0; 3];
        t.add_successors(0, 1.0, &mut s);
        // 0 -> 1 (weight 1), 0 -> 2 (weight 0.5): normalised 2/3 and 1/3.
        assert!((s[1] - 2.0 / 3.0).abs() < 1e-12);
        assert!((s[2] - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn extend_from_counts_only_new_positions() {
        let mut once = Transitions::new(3, 0.7).unwrap();
        once.extend(&[4, 1, 2, 3], 0);
        let mut twice = Transitions::new(3, 0.7).unwrap();
        twice.extend(&[4, 1], 0);
        twice.extend(&[4, 1, 2, 3], 2);
        assert_eq!(once, twice);
    }

    #[test]
    fn bad_settings_are_invalid_input() {
        assert!(Transitions::new(0, 0.5).is_err());
        assert!(Transitions::new(1, 0.0).is_err());
        assert!(Transitions::new(1, f64::NAN).is_err());
        assert!(Transitions::new(1, 1.5).is_err());
    }

    #[test]
    fn unknown_item_adds_nothing() {
        let t = Transitions::new(1, 1.0).unwrap();
        let mut s = vec![0.0; 2];
        t.add_successors(99, 1.0, &mut s);
        assert_eq!(s, vec![0.0; 2]);
    }
}
