//! The popularity baseline: every customer gets the items bought by the most customers. Also the
//! cold-start fallback of every recommender.

use serde::{Deserialize, Serialize};

use crate::recommend::interactions::Interactions;
use crate::recommend::scorer::ItemScorer;

/// Scores an item by the number of distinct customers who bought it (updated online by
/// [`Interactions`], so nothing to fit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Popularity;

impl ItemScorer for Popularity {
    fn kind(&self) -> &'static str {
        "recommend.popularity"
    }

    fn score(&self, data: &Interactions, _history: &[u32], scores: &mut [f64]) {
        for (s, &p) in scores.iter_mut().zip(data.popularity()) {
            *s = f64::from(p);
        }
    }
}
