//! Cosine item-kNN from co-purchases: an item scores by how similar it is to the items the
//! customer already bought.

use serde::{Deserialize, Serialize};

use crate::recommend::interactions::Interactions;
use crate::recommend::scorer::{ItemScorer, distinct};

/// Item-based nearest neighbours (Sarwar et al. 2001, Deshpande & Karypis 2004) with cosine
/// similarity on the binary customer x item matrix: `sim(i, j) = co(i, j) / sqrt(pop(i) pop(j))`.
/// The score of `j` sums `sim(i, j)` over the customer's distinct items `i`, each `i`
/// contributing only through its `neighbours` most similar items when set. Similarities are
/// computed from the live counts of [`Interactions`], so confirmed orders count at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemKnn {
    /// Keep only this many most similar items per history item (`None`: all of them).
    pub neighbours: Option<usize>,
}

impl ItemKnn {
    /// Item-kNN keeping `neighbours` neighbours per item (`None`: all).
    pub fn new(neighbours: Option<usize>) -> Self {
        Self { neighbours }
    }
}

impl ItemScorer for ItemKnn {
    fn kind(&self) -> &'static str {
        "recommend.item_knn"
    }

    fn score(&self, data: &Interactions, history: &[u32], scores: &mut [f64]) {
        let pop = data.popularity();
        let mut row: Vec<(u32, f64)> = Vec::new();
        for i in distinct(history, data.n_items()) {
            let Some(co) = data.co_counts(i) else {
                continue;
            };
            let pi = f64::from(pop[i as usize]);
            row.clear();
            row.extend(co.iter().map(|(&j, &c)| {
                let pj = f64::from(pop[j as usize]);
                (j, f64::from(c) / (pi * pj).sqrt())
            }));
            if let Some(k) = self.neighbours {
                if k == 0 {
                    continue;
                }
                if row.len() > k {
                    row.select_nth_unstable_by(k - 1, |a, b| {
                        b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
                    });
                    row.truncate(k);
                }
            }
            for &(j, s) in &row {
                if let Some(out) = scores.get_mut(j as usize) {
                    *out += s;
                }
            }
        }
    }
}
