//! A seeded generator of purchase sequences with a planted order: each item has a fixed
//! "next" item that customers often buy right after it, over a skewed (Zipf-like) popularity.
//! Popularity alone ranks the next item poorly; a model that reads the latest item finds it.

use rand::{Rng, SeedableRng, rngs::StdRng, seq::SliceRandom};

use crate::error::{AiError, Result};
use crate::recommend::movielens::Sequence;

/// The generator's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SyntheticConfig {
    /// Customers to generate.
    pub customers: usize,
    /// Items in the catalogue (at least 2).
    pub items: usize,
    /// Shortest history.
    pub min_len: usize,
    /// Longest history (at most `items`).
    pub max_len: usize,
    /// Probability that the next purchase is the planted successor of the previous one.
    pub follow: f64,
    /// Zipf exponent of the item popularity.
    pub zipf: f64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            customers: 300,
            items: 120,
            min_len: 6,
            max_len: 14,
            follow: 0.6,
            zipf: 1.0,
        }
    }
}

/// Generates `(customer, items oldest first)` sequences; customers are `c0, c1, …`, items
/// `i0, i1, …` (a customer never buys an item twice). Settings out of range are invalid input.
pub fn generate(config: &SyntheticConfig, seed: u64) -> Result<Vec<Sequence>> {
    let c = config;
    if c.items < 2 || c.min_len == 0 || c.min_len > c.max_len || c.max_len > c.items {
        return Err(AiError::InvalidInput(format!(
            "need 2 <= items, 1 <= min_len <= max_len <= items; got {c:?}"
        )));
    }
    if !(0.0..=1.0).contains(&c.follow) || !c.zipf.is_finite() || c.zipf < 0.0 {
        return Err(AiError::InvalidInput(format!(
            "follow must be in [0, 1] and zipf >= 0; got {c:?}"
        )));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut successor: Vec<usize> = (0..c.items).collect();
    successor.shuffle(&mut rng);
    let weights: Vec<f64> = (0..c.items)
        .map(|r| 1.0 / ((r + 1) as f64).powf(c.zipf))
        .collect();
    let total: f64 = weights.iter().sum();

    let mut out = Vec::with_capacity(c.customers);
    for u in 0..c.customers {
        let len = rng.random_range(c.min_len..=c.max_len);
        let mut seen = vec![false; c.items];
        let mut items: Vec<usize> = Vec::with_capacity(len);
        while items.len() < len {
            let follow = items
                .last()
                .map(|&p| successor[p])
                .filter(|&s| !seen[s] && rng.random_bool(c.follow));
            let next = match follow {
                Some(s) => s,
                None => loop {
                    let mut x = rng.random_range(0.0..total);
                    let mut pick = c.items - 1;
                    for (i, w) in weights.iter().enumerate() {
                        if x < *w {
                            pick = i;
                            break;
                        }
                        x -= w;
                    }
                    if !seen[pick] {
                        break pick;
                    }
                },
            };
            seen[next] = true;
            items.push(next);
        }
        out.push((
            format!("c{u}"),
            items.into_iter().map(|i| format!("i{i}")).collect(),
        ));
    }
    Ok(out)
}
