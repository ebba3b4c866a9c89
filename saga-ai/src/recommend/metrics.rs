//! Ranking metrics for top-k recommendation with one held-out item per customer: hit rate and
//! NDCG at k.
//!
//! With a single relevant item, the ideal DCG is 1, so NDCG@k is `1 / log2(rank + 2)` when the item
//! sits at 0-based `rank < k` and 0 otherwise; hit rate@k is 1 when it is in the top k.
//!
//! ```
//! use saga_ai::recommend::metrics::{hit_rate_at_k, ndcg_at_k};
//! let ranked = ["b", "a", "c"];
//! assert_eq!(hit_rate_at_k(&ranked, &"a", 2).unwrap(), 1.0);
//! assert!((ndcg_at_k(&ranked, &"a", 2).unwrap() - 1.0 / 3f64.log2()).abs() < 1e-12);
//! assert_eq!(ndcg_at_k(&ranked, &"c", 2).unwrap(), 0.0);
//! ```

use serde::{Deserialize, Serialize};

use crate::error::{AiError, Result};

fn check_k(k: usize) -> Result<()> {
    if k == 0 {
        return Err(AiError::InvalidInput("k must be at least 1".into()));
    }
    Ok(())
}

/// 0-based position of `target` among the first `k` of `ranked`, if it is there.
fn position<T: PartialEq>(ranked: &[T], target: &T, k: usize) -> Option<usize> {
    ranked.iter().take(k).position(|x| x == target)
}

/// 1 when `target` is among the first `k` entries of `ranked`, else 0. `k = 0` is an error.
pub fn hit_rate_at_k<T: PartialEq>(ranked: &[T], target: &T, k: usize) -> Result<f64> {
    check_k(k)?;
    Ok(if position(ranked, target, k).is_some() {
        1.0
    } else {
        0.0
    })
}

/// NDCG@k with one relevant item: `1 / log2(rank + 2)` when `target` is at 0-based `rank < k`,
/// else 0. `k = 0` is an error.
pub fn ndcg_at_k<T: PartialEq>(ranked: &[T], target: &T, k: usize) -> Result<f64> {
    check_k(k)?;
    Ok(position(ranked, target, k).map_or(0.0, |rank| 1.0 / ((rank + 2) as f64).log2()))
}

/// Mean hit rate and NDCG at k over the customers evaluated so far.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RankingSummary {
    /// The cut-off.
    pub k: usize,
    /// Customers evaluated.
    pub users: usize,
    /// Mean hit rate@k.
    pub hit_rate: f64,
    /// Mean NDCG@k.
    pub ndcg: f64,
}

/// Accumulates per-customer hit rate and NDCG into a [`RankingSummary`].
#[derive(Debug, Clone)]
pub struct RankingAccumulator {
    k: usize,
    users: usize,
    hits: f64,
    ndcg: f64,
}

impl RankingAccumulator {
    /// An empty accumulator for cut-off `k` (`k = 0` is an error).
    pub fn new(k: usize) -> Result<Self> {
        check_k(k)?;
        Ok(Self {
            k,
            users: 0,
            hits: 0.0,
            ndcg: 0.0,
        })
    }

    /// Adds one customer's ranked list and held-out item.
    pub fn add<T: PartialEq>(&mut self, ranked: &[T], target: &T) {
        self.users += 1;
        if let Some(rank) = position(ranked, target, self.k) {
            self.hits += 1.0;
            self.ndcg += 1.0 / ((rank + 2) as f64).log2();
        }
    }

    /// The means so far; an error when no customer was added.
    pub fn summary(&self) -> Result<RankingSummary> {
        if self.users == 0 {
            return Err(AiError::NotEnoughData("no customer was evaluated".into()));
        }
        let n = self.users as f64;
        Ok(RankingSummary {
            k: self.k,
            users: self.users,
            hit_rate: self.hits / n,
            ndcg: self.ndcg / n,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_place_scores_one() {
        assert_eq!(ndcg_at_k(&[3, 1], &3, 10).unwrap(), 1.0);
        assert_eq!(hit_rate_at_k(&[3, 1], &3, 10).unwrap(), 1.0);
    }

    #[test]
    fn item_past_the_cut_off_scores_zero() {
        assert_eq!(hit_rate_at_k(&[1, 2, 3], &3, 2).unwrap(), 0.0);
        assert_eq!(ndcg_at_k(&[1, 2, 3], &3, 2).unwrap(), 0.0);
    }

    #[test]
    fn k_zero_is_invalid_input() {
        assert!(matches!(
            hit_rate_at_k(&[1], &1, 0),
            Err(AiError::InvalidInput(_))
        ));
        assert!(matches!(
            ndcg_at_k(&[1], &1, 0),
            Err(AiError::InvalidInput(_))
        ));
        assert!(RankingAccumulator::new(0).is_err());
    }

    #[test]
    fn accumulator_averages() {
        let mut acc = RankingAccumulator::new(2).unwrap();
        acc.add(&[1, 2], &1);
        acc.add(&[1, 2], &2);
        acc.add(&[1, 2], &9);
        let s = acc.summary().unwrap();
        assert_eq!(s.users, 3);
        assert!((s.hit_rate - 2.0 / 3.0).abs() < 1e-12);
        let expected = (1.0 + 1.0 / 3f64.log2()) / 3.0;
        assert!((s.ndcg - expected).abs() < 1e-12);
    }

    #[test]
    fn empty_accumulator_is_not_enough_data() {
        let acc = RankingAccumulator::new(10).unwrap();
        assert!(matches!(acc.summary(), Err(AiError::NotEnoughData(_))));
    }
}
