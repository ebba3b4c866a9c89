//! Product recommendations from the purchases the AI service has seen, with `saga-ai`'s
//! order-aware recommender (EASE blended with recent-item transitions, the settings `saga-ai`
//! tuned on MovieLens) behind its `RecommenderService`: a customer's own purchases are never
//! recommended, and a customer it has not seen buy gets the most popular products.
//!
//! The model is fitted on all purchases at once ([`fit_recommender`], a fraction of a second
//! for a shop's catalogue) and measured leave-last-out when enough customers bought three
//! times or more.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use saga_ai::recommend::evaluate::{evaluate, leave_last_out};
use saga_ai::recommend::movielens::Sequence;
use saga_ai::recommend::{
    Interactions, ItemScorer, Popularity, Recommender, RecommenderService, SequentialEase,
    SequentialParams,
};
use serde::{Deserialize, Serialize};

use super::engine::ModelInfo;
use super::error::AiAppError;

/// Fewest customers with a held-out purchase for the leave-last-out measure.
pub const MIN_EVAL_CUSTOMERS: usize = 20;
/// The cut-off of the held-out measure.
const EVAL_K: usize = 10;

/// One order's products, as the recommender learns from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purchase {
    /// Who bought.
    pub customer: String,
    /// What, in the order's line order.
    pub products: Vec<String>,
    /// When the order was placed.
    pub at: DateTime<Utc>,
}

/// How recommendations were made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// From the customer's own purchases, with the fitted model.
    Personalized,
    /// The most popular products: the customer has bought nothing the service saw.
    Popularity,
}

/// A recommender fitted on the purchases seen so far.
#[derive(Debug, Clone)]
pub struct FittedRecommender {
    service: RecommenderService<SequentialEase>,
    info: ModelInfo,
}

/// Each customer's products, oldest first.
fn sequences(purchases: &[Purchase]) -> Vec<Sequence> {
    let mut sorted: Vec<&Purchase> = purchases.iter().collect();
    sorted.sort_by_key(|p| p.at);
    let mut by_customer: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for p in sorted {
        by_customer
            .entry(p.customer.as_str())
            .or_default()
            .extend(p.products.iter().cloned());
    }
    by_customer
        .into_iter()
        .filter(|(_, items)| !items.is_empty())
        .map(|(c, items)| (c.to_owned(), items))
        .collect()
}

fn training(e: saga_ai::AiError) -> AiAppError {
    AiAppError::Training {
        model: "recommendations",
        source: e,
    }
}

/// Leave-last-out hit rate and NDCG at 10 of the model and of popularity, or why not measured.
fn held_out(
    sequences: &[Sequence],
    params: SequentialParams,
) -> Result<(BTreeMap<String, f64>, String), AiAppError> {
    let split = leave_last_out(sequences);
    if split.test_targets.len() < MIN_EVAL_CUSTOMERS {
        return Ok((
            BTreeMap::new(),
            format!(
                "not measured: {} customer(s) with 3 or more purchases, {MIN_EVAL_CUSTOMERS} are \
                 needed to hold each one's last purchase out",
                split.test_targets.len()
            ),
        ));
    }
    let data = Interactions::from_histories(split.test_train.iter().map(|(c, i)| (c, i)))
        .map_err(training)?;
    let model = SequentialEase::fit(&data, params).map_err(training)?;
    let ours = evaluate(&data, &model, &split.test_targets, EVAL_K).map_err(training)?;
    let popular = evaluate(&data, &Popularity, &split.test_targets, EVAL_K).map_err(training)?;
    let metrics = BTreeMap::from([
        ("hit_rate_at_10".to_owned(), ours.hit_rate),
        ("ndcg_at_10".to_owned(), ours.ndcg),
        ("popularity_hit_rate_at_10".to_owned(), popular.hit_rate),
        ("popularity_ndcg_at_10".to_owned(), popular.ndcg),
    ]);
    Ok((
        metrics,
        format!(
            "leave-last-out on the shop's purchases: each of {} customers' last product held out, \
             the model fitted on the rest ranks every product the customer had not bought; \
             popularity_* is the most-popular baseline on the same split",
            split.test_targets.len()
        ),
    ))
}

/// Fits the recommender on `purchases` (orders in any order) at `now`, and measures it on
/// held-out purchases when there are enough. CPU work: run it off the async threads.
pub fn fit_recommender(
    purchases: &[Purchase],
    now: DateTime<Utc>,
) -> Result<FittedRecommender, AiAppError> {
    let sequences = sequences(purchases);
    let params = SequentialParams::default();
    let data =
        Interactions::from_histories(sequences.iter().map(|(c, i)| (c, i))).map_err(training)?;
    let model = SequentialEase::fit(&data, params).map_err(training)?;
    let (metrics, evaluation) = held_out(&sequences, params)?;
    let info = ModelInfo {
        name: "recommendations".to_owned(),
        kind: model.kind().to_owned(),
        format_version: None,
        trained_at: Some(now),
        training_rows: data.n_interactions(),
        training_data: format!(
            "{} purchased product(s) by {} customer(s) of {} product(s): the lines of the \
             orders the AI service saw placed (failed and cancelled orders left out); settings \
             of saga-ai's tuning on MovieLens (lambda {}, {} recent items, transition weight {})",
            data.n_interactions(),
            data.n_customers(),
            data.n_items(),
            params.lambda,
            params.recent,
            params.alpha,
        ),
        metrics,
        evaluation,
        file: None,
    };
    Ok(FittedRecommender {
        service: RecommenderService::new(data, model),
        info,
    })
}

impl FittedRecommender {
    /// Up to `k` (at least 1) products for `customer` with their scores, best first, and how
    /// they were chosen: the customer's own products are never among them.
    pub fn recommend(
        &self,
        customer: &str,
        k: usize,
    ) -> Result<(Strategy, Vec<(String, f64)>), AiAppError> {
        let data = self.service.data();
        let known = data
            .customer_index(customer)
            .is_some_and(|c| !data.history(c).is_empty());
        let items = self
            .service
            .recommend(customer, k, &[])
            .map_err(|e| AiAppError::InvalidInput(e.to_string()))?;
        let strategy = if known {
            Strategy::Personalized
        } else {
            Strategy::Popularity
        };
        Ok((strategy, items))
    }

    /// The products `customer` bought, as the model knows them.
    pub fn purchased(&self, customer: &str) -> Vec<String> {
        let data = self.service.data();
        let mut items: Vec<String> = data
            .customer_index(customer)
            .map(|c| data.history(c))
            .unwrap_or_default()
            .iter()
            .filter_map(|&i| data.item_id(i).map(str::to_owned))
            .collect();
        items.sort();
        items.dedup();
        items
    }

    /// The model's metadata.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn purchase(customer: &str, products: &[&str], minute: i64) -> Purchase {
        Purchase {
            customer: customer.into(),
            products: products.iter().map(|p| (*p).to_owned()).collect(),
            at: DateTime::<Utc>::UNIX_EPOCH + TimeDelta::minutes(minute),
        }
    }

    #[test]
    fn customers_get_what_similar_customers_bought_and_strangers_what_is_popular() {
        let purchases = vec![
            purchase("ann", &["tent", "stove"], 0),
            purchase("ann", &["mug"], 5),
            purchase("bob", &["tent", "stove"], 1),
            purchase("cy", &["tent"], 2),
            purchase("dee", &["lamp"], 3),
        ];
        let r = fit_recommender(&purchases, Utc::now()).unwrap();
        let (strategy, items) = r.recommend("bob", 2).unwrap();
        assert_eq!(strategy, Strategy::Personalized);
        assert_eq!(items[0].0, "mug", "{items:?}");
        assert!(items.iter().all(|(p, _)| p != "tent" && p != "stove"));
        let (strategy, items) = r.recommend("stranger", 2).unwrap();
        assert_eq!(strategy, Strategy::Popularity);
        assert_eq!(items[0].0, "tent");
        assert_eq!(r.purchased("ann"), ["mug", "stove", "tent"]);
        assert_eq!(r.info().training_rows, 7);
        assert!(r.info().metrics.is_empty());
        assert!(r.info().evaluation.starts_with("not measured"));
        assert!(r.recommend("bob", 0).is_err());
    }

    #[test]
    fn no_purchases_recommend_nothing() {
        let r = fit_recommender(&[], Utc::now()).unwrap();
        assert_eq!(
            r.recommend("ann", 5).unwrap(),
            (Strategy::Popularity, vec![])
        );
    }

    #[test]
    fn enough_customers_are_measured_against_popularity() {
        // Two tastes, a-b-c-d or e-f-g-h, each customer buying all four of one, starting at
        // a different one: the held-out fourth is what the other three predict.
        let purchases: Vec<Purchase> = (0..40)
            .flat_map(|c: i64| {
                let name = format!("c{c}");
                let items: [&str; 4] = if c % 2 == 0 {
                    ["a", "b", "c", "d"]
                } else {
                    ["e", "f", "g", "h"]
                };
                let first = (c / 2 % 4) as usize;
                (0..4)
                    .map(|k| purchase(&name, &[items[(first + k) % 4]], c * 10 + k as i64))
                    .collect::<Vec<_>>()
            })
            .collect();
        let r = fit_recommender(&purchases, Utc::now()).unwrap();
        let m = &r.info().metrics;
        assert_eq!(m["hit_rate_at_10"], 1.0, "{m:?}");
        assert!(m["ndcg_at_10"] > 0.9, "{m:?}");
        assert!(m["ndcg_at_10"] > m["popularity_ndcg_at_10"], "{m:?}");
    }
}
