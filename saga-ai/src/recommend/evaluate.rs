//! Leave-last-out evaluation: each customer's last item (by time) is the test item, the one
//! before it the validation item; models rank every item the customer has not bought in the
//! training part.

use crate::error::Result;
use crate::recommend::interactions::Interactions;
use crate::recommend::metrics::{RankingAccumulator, RankingSummary};
use crate::recommend::movielens::Sequence;
use crate::recommend::scorer::ItemScorer;
use crate::recommend::service::rank;

/// The two folds of leave-last-out.
#[derive(Debug, Clone, Default)]
pub struct LeaveLastOut {
    /// Training histories for tuning: every customer's items but the last two.
    pub valid_train: Vec<Sequence>,
    /// Held-out validation items: `(customer, second-to-last item)`.
    pub valid_targets: Vec<(String, String)>,
    /// Training histories for the test: every customer's items but the last.
    pub test_train: Vec<Sequence>,
    /// Held-out test items: `(customer, last item)`.
    pub test_targets: Vec<(String, String)>,
    /// Customers with fewer than 3 items: all their items train, none is held out.
    pub too_short: usize,
}

/// Splits per-customer sequences (oldest first) leave-last-out.
pub fn leave_last_out(sequences: &[Sequence]) -> LeaveLastOut {
    let mut out = LeaveLastOut::default();
    for (customer, items) in sequences {
        let n = items.len();
        if n < 3 {
            out.too_short += 1;
            out.valid_train.push((customer.clone(), items.clone()));
            out.test_train.push((customer.clone(), items.clone()));
            continue;
        }
        out.valid_train
            .push((customer.clone(), items[..n - 2].to_vec()));
        out.valid_targets
            .push((customer.clone(), items[n - 2].clone()));
        out.test_train
            .push((customer.clone(), items[..n - 1].to_vec()));
        out.test_targets
            .push((customer.clone(), items[n - 1].clone()));
    }
    out
}

/// Hit rate and NDCG at `k` of `model` over `targets`, each customer ranked with the same
/// [`rank`] the service uses (own items excluded, popularity for cold start). A target item the
/// training data never saw cannot be recommended and counts as a miss.
pub fn evaluate<S: ItemScorer + ?Sized>(
    data: &Interactions,
    model: &S,
    targets: &[(String, String)],
    k: usize,
) -> Result<RankingSummary> {
    evaluate_with(data, targets, k, |c| rank(data, model, c, k, &[]))
}

/// Like [`evaluate`] with any ranking function of the customer index (used by tuning, which
/// ranks from cached scores).
pub fn evaluate_with(
    data: &Interactions,
    targets: &[(String, String)],
    k: usize,
    mut ranker: impl FnMut(Option<u32>) -> Vec<(u32, f64)>,
) -> Result<RankingSummary> {
    let mut acc = RankingAccumulator::new(k)?;
    for (customer, item) in targets {
        let ranked: Vec<u32> = ranker(data.customer_index(customer))
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        match data.item_index(item) {
            Some(target) => acc.add(&ranked, &target),
            None => acc.add(&ranked, &u32::MAX),
        }
    }
    acc.summary()
}
