//! The recommender a shop calls: a model plus the purchase data it reads, with exclusion, cold
//! start and online updates done once for every model.

use serde::{Deserialize, Serialize};

use crate::error::{AiError, Result};
use crate::recommend::interactions::Interactions;
use crate::recommend::popularity::Popularity;
use crate::recommend::scorer::{ItemScorer, top_k};

/// Recommends items to customers and learns from confirmed orders. Swap models behind it.
pub trait Recommender {
    /// The `k` best items for `customer` with their scores, best first, never an item the
    /// customer already bought nor one in `exclude` (e.g. the basket). An unknown customer (or
    /// one with no history) gets the most popular items; unknown ids in `exclude` are ignored.
    /// `k = 0` or an empty customer id is [`AiError::InvalidInput`]. Fewer than `k` items come
    /// back when the catalogue is smaller.
    fn recommend(&self, customer: &str, k: usize, exclude: &[&str]) -> Result<Vec<(String, f64)>>;

    /// Learns from a confirmed order: the customer's history, popularity, co-purchase and
    /// transition counts update at once; models with a closed-form fit (EASE) wait for
    /// [`refit`](Recommender::refit). An empty id or an order without items is invalid input.
    fn observe_order(&mut self, customer: &str, items: &[&str]) -> Result<()>;

    /// Refits what is not updated online on all data seen so far.
    fn refit(&mut self) -> Result<()>;
}

/// A model of type `S` over the purchase data it was fitted on and keeps learning from.
/// Persist it with [`SavedModel`](crate::SavedModel).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecommenderService<S> {
    data: Interactions,
    model: S,
}

impl<S: ItemScorer> RecommenderService<S> {
    /// Wraps a model fitted on `data`.
    pub fn new(data: Interactions, model: S) -> Self {
        Self { data, model }
    }

    /// The purchase data.
    pub fn data(&self) -> &Interactions {
        &self.data
    }

    /// The model.
    pub fn model(&self) -> &S {
        &self.model
    }

    /// The ranked items (internal indices) for customer index `customer` (`None`: cold start),
    /// excluding `extra` item indices besides the customer's own.
    pub fn rank(&self, customer: Option<u32>, k: usize, extra: &[u32]) -> Vec<(u32, f64)> {
        rank(&self.data, &self.model, customer, k, extra)
    }
}

/// Ranks items of `data` for `customer` with `model`, falling back to popularity when the
/// customer is unknown or has no history; the customer's items and `extra` are excluded; ties go
/// to the more popular item.
pub fn rank<S: ItemScorer + ?Sized>(
    data: &Interactions,
    model: &S,
    customer: Option<u32>,
    k: usize,
    extra: &[u32],
) -> Vec<(u32, f64)> {
    let n = data.n_items();
    let history = customer.map_or(&[][..], |c| data.history(c));
    let mut scores = vec![0.0; n];
    if history.is_empty() {
        Popularity.score(data, history, &mut scores);
    } else {
        model.score(data, history, &mut scores);
    }
    let mut excluded = vec![false; n];
    for &i in history.iter().chain(extra) {
        if let Some(e) = excluded.get_mut(i as usize) {
            *e = true;
        }
    }
    top_k(&scores, data.popularity(), &excluded, k)
}

impl<S: ItemScorer> Recommender for RecommenderService<S> {
    fn recommend(&self, customer: &str, k: usize, exclude: &[&str]) -> Result<Vec<(String, f64)>> {
        if k == 0 {
            return Err(AiError::InvalidInput("k must be at least 1".into()));
        }
        if customer.is_empty() {
            return Err(AiError::InvalidInput("empty customer id".into()));
        }
        let extra: Vec<u32> = exclude
            .iter()
            .filter_map(|id| self.data.item_index(id))
            .collect();
        let ranked = self.rank(self.data.customer_index(customer), k, &extra);
        Ok(ranked
            .into_iter()
            .filter_map(|(i, s)| self.data.item_id(i).map(|id| (id.to_owned(), s)))
            .collect())
    }

    fn observe_order(&mut self, customer: &str, items: &[&str]) -> Result<()> {
        let order = self.data.observe_order(customer, items)?;
        self.model.observe(&self.data, &order);
        Ok(())
    }

    fn refit(&mut self) -> Result<()> {
        self.model.refit(&self.data)
    }
}
