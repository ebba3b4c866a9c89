//! Recommendations from purchase histories: popularity, cosine item-kNN, EASE and an
//! order-aware blend of EASE with recent-item transitions, behind one [`Recommender`] trait,
//! with cold start, online updates from confirmed orders, and leave-last-out evaluation.
//!
//! Map:
//! - [`interactions`]: ids, histories, popularity and co-purchase counts (online).
//! - [`scorer`]: the [`ItemScorer`] trait every model implements, and top-k ranking.
//! - [`popularity`], [`item_knn`], [`ease`] (with [`linalg`]), [`transitions`], [`sequential`]:
//!   the models.
//! - [`service`]: [`Recommender`] and [`RecommenderService`] (exclusion, cold start, updates).
//! - [`metrics`], [`evaluate`], [`tune`]: hit rate and NDCG, leave-last-out, validation tuning.
//! - [`movielens`]: the MovieLens atomic-file loader; [`synthetic`]: a generator with a planted
//!   sequential pattern.
//!
//! ```
//! use saga_ai::recommend::{Interactions, Recommender, RecommenderService, SequentialEase, SequentialParams};
//! let data = Interactions::from_histories([
//!     ("ann", vec!["tent", "stove", "mug"]),
//!     ("bob", vec!["tent", "stove"]),
//! ]).unwrap();
//! let model = SequentialEase::fit(&data, SequentialParams { lambda: 1.0, ..Default::default() }).unwrap();
//! let mut service = RecommenderService::new(data, model);
//! assert_eq!(service.recommend("bob", 1, &[]).unwrap()[0].0, "mug");
//! service.observe_order("cy", &["tent"]).unwrap();
//! assert!(service.recommend("stranger", 2, &[]).unwrap().len() == 2); // cold start: popular items
//! ```

pub mod ease;
pub mod evaluate;
pub mod interactions;
pub mod item_knn;
pub mod linalg;
pub mod metrics;
pub mod movielens;
pub mod popularity;
pub mod scorer;
pub mod sequential;
pub mod service;
pub mod synthetic;
pub mod transitions;
pub mod tune;

pub use ease::Ease;
pub use interactions::{CoCounts, Interactions, ObservedOrder};
pub use item_knn::ItemKnn;
pub use popularity::Popularity;
pub use scorer::ItemScorer;
pub use sequential::{SequentialEase, SequentialParams};
pub use service::{Recommender, RecommenderService};
pub use transitions::Transitions;
