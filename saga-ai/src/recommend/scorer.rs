//! The model side of a recommender: a function from a customer's history to a score per item,
//! and the top-k ranking every model shares.

use std::cmp::Ordering;

use crate::error::Result;
use crate::recommend::interactions::{Interactions, ObservedOrder};

/// Scores every item for a customer from the customer's history. Implemented by every model
/// ([`Popularity`](super::Popularity), [`ItemKnn`](super::ItemKnn), [`Ease`](super::Ease),
/// [`SequentialEase`](super::SequentialEase)); ranking, exclusion and cold start are done once,
/// by [`RecommenderService`](super::RecommenderService).
pub trait ItemScorer {
    /// The model's kind, as saved in [`ModelMeta::kind`](crate::ModelMeta).
    fn kind(&self) -> &'static str;

    /// Writes a score for every item of `data` into `scores` (one per item index, zeroed by the
    /// caller; higher is better) for a customer whose items are `history`, oldest first. Seen
    /// items may get any score: the caller excludes them. Indices out of range are ignored.
    fn score(&self, data: &Interactions, history: &[u32], scores: &mut [f64]);

    /// Learns from an order just recorded in `data` (online models); the default does nothing.
    fn observe(&mut self, data: &Interactions, order: &ObservedOrder) {
        let _ = (data, order);
    }

    /// Refits whatever is not updated online (EASE's weights) on all of `data`; the default does
    /// nothing.
    fn refit(&mut self, data: &Interactions) -> Result<()> {
        let _ = data;
        Ok(())
    }
}

/// The `k` best items by `scores`, skipping `excluded` ones (both indexed by item), best first.
/// Ties (and non-finite scores, ranked as 0) are broken by `tiebreak` (higher first, e.g.
/// popularity), then by the lower index, so results are deterministic.
pub fn top_k(scores: &[f64], tiebreak: &[u32], excluded: &[bool], k: usize) -> Vec<(u32, f64)> {
    let clean = |s: f64| if s.is_finite() { s } else { 0.0 };
    let tb = |i: usize| tiebreak.get(i).copied().unwrap_or(0);
    let mut cand: Vec<(u32, f64)> = scores
        .iter()
        .enumerate()
        .filter(|(i, _)| !excluded.get(*i).copied().unwrap_or(false))
        .map(|(i, &s)| (i as u32, clean(s)))
        .collect();
    let cmp = |a: &(u32, f64), b: &(u32, f64)| -> Ordering {
        b.1.total_cmp(&a.1)
            .then_with(|| tb(b.0 as usize).cmp(&tb(a.0 as usize)))
            .then_with(|| a.0.cmp(&b.0))
    };
    if k == 0 {
        return Vec::new();
    }
    if cand.len() > k {
        cand.select_nth_unstable_by(k - 1, cmp);
        cand.truncate(k);
    }
    cand.sort_unstable_by(cmp);
    cand
}

/// Distinct valid item indices of `history`, in first-seen order.
pub(crate) fn distinct(history: &[u32], n_items: usize) -> Vec<u32> {
    let mut seen = vec![false; n_items];
    let mut out = Vec::with_capacity(history.len());
    for &i in history {
        if let Some(s) = seen.get_mut(i as usize) {
            if !*s {
                *s = true;
                out.push(i);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_excludes_and_breaks_ties() {
        let scores = [1.0, 3.0, 3.0, f64::NAN, 2.0];
        let pop = [0, 1, 5, 0, 0];
        let excluded = [false, false, false, false, true];
        let top = top_k(&scores, &pop, &excluded, 3);
        assert_eq!(top, vec![(2, 3.0), (1, 3.0), (0, 1.0)]);
    }

    #[test]
    fn top_k_with_large_k_returns_all_candidates() {
        let top = top_k(&[0.5, 0.1], &[], &[], 100);
        assert_eq!(top.len(), 2);
    }

    #[test]
    fn top_k_zero_is_empty() {
        assert!(top_k(&[1.0], &[], &[], 0).is_empty());
    }
}
