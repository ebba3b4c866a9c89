//! Recommendation models on a small generated dataset with a planted sequential pattern, plus
//! the service's contract: exclusion, cold start, online updates, typed errors, persistence.

use std::collections::BTreeMap;

use proptest::prelude::*;
use saga_ai::recommend::evaluate::{evaluate, leave_last_out};
use saga_ai::recommend::synthetic::{SyntheticConfig, generate};
use saga_ai::recommend::tune::{SequentialGrid, tune_sequential};
use saga_ai::recommend::{
    Ease, Interactions, ItemKnn, ItemScorer, Popularity, Recommender, RecommenderService,
    SequentialEase, SequentialParams,
};
use saga_ai::{AiError, ModelMeta, SavedModel};

fn params() -> SequentialParams {
    SequentialParams {
        lambda: 10.0,
        gap_window: 1,
        gap_decay: 1.0,
        recent: 1,
        recency_decay: 1.0,
        alpha: 0.8,
    }
}

fn small() -> Interactions {
    Interactions::from_histories([
        ("ann", vec!["tent", "stove", "mug"]),
        ("bob", vec!["tent", "stove", "mug", "lamp"]),
        ("cy", vec!["tent", "stove"]),
        ("dee", vec!["mug", "lamp"]),
    ])
    .unwrap()
}

fn service() -> RecommenderService<SequentialEase> {
    let data = small();
    let model = SequentialEase::fit(&data, params()).unwrap();
    RecommenderService::new(data, model)
}

struct Synthetic {
    valid: Interactions,
    test: Interactions,
    valid_targets: Vec<(String, String)>,
    test_targets: Vec<(String, String)>,
}

fn synthetic() -> Synthetic {
    let seqs = generate(&SyntheticConfig::default(), 42).unwrap();
    let split = leave_last_out(&seqs);
    Synthetic {
        valid: Interactions::from_histories(split.valid_train).unwrap(),
        test: Interactions::from_histories(split.test_train).unwrap(),
        valid_targets: split.valid_targets,
        test_targets: split.test_targets,
    }
}

#[test]
fn order_aware_model_finds_the_planted_sequence_far_better_than_popularity() {
    let s = synthetic();
    let pop = evaluate(&s.test, &Popularity, &s.test_targets, 10).unwrap();
    let seq = SequentialEase::fit(&s.test, params()).unwrap();
    let got = evaluate(&s.test, &seq, &s.test_targets, 10).unwrap();
    assert!(
        got.hit_rate > pop.hit_rate + 0.25 && got.ndcg > pop.ndcg + 0.2,
        "order-aware {got:?} vs popularity {pop:?}"
    );
}

#[test]
fn order_aware_model_beats_ease_and_item_knn_on_sequential_data() {
    let s = synthetic();
    let seq = SequentialEase::fit(&s.test, params()).unwrap();
    let seq = evaluate(&s.test, &seq, &s.test_targets, 10).unwrap();
    let ease = Ease::fit(&s.test, 10.0).unwrap();
    let ease = evaluate(&s.test, &ease, &s.test_targets, 10).unwrap();
    let knn = evaluate(&s.test, &ItemKnn::new(None), &s.test_targets, 10).unwrap();
    assert!(
        seq.ndcg > ease.ndcg && seq.ndcg > knn.ndcg,
        "{seq:?} {ease:?} {knn:?}"
    );
}

#[test]
fn tuning_on_validation_picks_a_transition_heavy_blend() {
    let s = synthetic();
    let grid = SequentialGrid {
        lambdas: vec![10.0],
        gap_windows: vec![1, 3],
        gap_decays: vec![0.5],
        recents: vec![1, 3],
        recency_decays: vec![0.5],
        alphas: vec![0.0, 0.5, 1.0],
    };
    let mut calls = 0;
    let tuned = tune_sequential(&s.valid, &s.valid_targets, 10, &grid, &mut |_, _| {
        calls += 1
    })
    .unwrap();
    assert_eq!(tuned.tried, 12);
    assert_eq!(calls, 4);
    assert!(tuned.params.alpha > 0.0, "{:?}", tuned.params);
    let pop = evaluate(&s.valid, &Popularity, &s.valid_targets, 10).unwrap();
    assert!(tuned.valid.ndcg > pop.ndcg + 0.2);
}

#[test]
fn empty_grid_is_invalid_input() {
    let s = synthetic();
    let grid = SequentialGrid {
        alphas: vec![],
        ..SequentialGrid::default()
    };
    let r = tune_sequential(&s.valid, &s.valid_targets, 10, &grid, &mut |_, _| {});
    assert!(matches!(r, Err(AiError::InvalidInput(_))));
}

#[test]
fn never_recommends_bought_or_excluded_items() {
    let s = service();
    let recs = s.recommend("cy", 10, &["lamp"]).unwrap();
    let items: Vec<&str> = recs.iter().map(|(i, _)| i.as_str()).collect();
    assert_eq!(items, vec!["mug"]);
}

#[test]
fn next_item_after_the_latest_purchase_comes_first() {
    let s = service();
    assert_eq!(s.recommend("cy", 1, &[]).unwrap()[0].0, "mug");
}

#[test]
fn unknown_customer_gets_popular_items() {
    let s = service();
    let recs = s.recommend("stranger", 2, &[]).unwrap();
    let items: Vec<&str> = recs.iter().map(|(i, _)| i.as_str()).collect();
    // tent, stove and mug are each bought by 3 customers; ties go to the lower index.
    assert_eq!(items, vec!["tent", "stove"]);
    assert_eq!(recs[0].1, 3.0);
}

#[test]
fn unknown_excluded_ids_are_ignored() {
    let s = service();
    assert_eq!(s.recommend("stranger", 1, &["nope"]).unwrap()[0].0, "tent");
}

#[test]
fn k_zero_and_empty_ids_are_invalid_input() {
    let mut s = service();
    assert!(matches!(
        s.recommend("ann", 0, &[]),
        Err(AiError::InvalidInput(_))
    ));
    assert!(matches!(
        s.recommend("", 3, &[]),
        Err(AiError::InvalidInput(_))
    ));
    assert!(matches!(
        s.observe_order("ann", &[]),
        Err(AiError::InvalidInput(_))
    ));
    assert!(matches!(
        s.observe_order("", &["mug"]),
        Err(AiError::InvalidInput(_))
    ));
}

#[test]
fn huge_k_returns_every_unbought_item() {
    let s = service();
    assert_eq!(s.recommend("dee", usize::MAX, &[]).unwrap().len(), 2);
    assert_eq!(s.recommend("bob", 5, &[]).unwrap().len(), 0);
}

#[test]
fn empty_service_recommends_nothing() {
    let data = Interactions::new();
    let model = SequentialEase::fit(&data, params()).unwrap();
    let s = RecommenderService::new(data, model);
    assert!(s.recommend("anyone", 5, &[]).unwrap().is_empty());
}

#[test]
fn confirmed_orders_update_transitions_without_refit() {
    let mut s = service();
    for n in 0..5 {
        let c = format!("new{n}");
        s.observe_order(&c, &["lamp"]).unwrap();
        s.observe_order(&c, &["kettle"]).unwrap();
    }
    // kettle is new since the EASE fit: only the online transitions can rank it.
    s.observe_order("eve", &["lamp"]).unwrap();
    assert_eq!(s.recommend("eve", 1, &[]).unwrap()[0].0, "kettle");
}

#[test]
fn confirmed_orders_update_popularity_and_item_knn() {
    let data = small();
    let mut s = RecommenderService::new(data, ItemKnn::new(None));
    for n in 0..4 {
        s.observe_order(&format!("fan{n}"), &["kettle", "cup"])
            .unwrap();
    }
    assert_eq!(s.recommend("stranger", 1, &[]).unwrap()[0].0, "kettle");
    s.observe_order("gil", &["cup"]).unwrap();
    assert_eq!(s.recommend("gil", 1, &[]).unwrap()[0].0, "kettle");
}

#[test]
fn ease_learns_new_items_on_refit() {
    let data = small();
    let ease = Ease::fit(&data, 1.0).unwrap();
    let mut s = RecommenderService::new(data, ease);
    for n in 0..4 {
        s.observe_order(&format!("fan{n}"), &["tent", "kettle"])
            .unwrap();
    }
    s.observe_order("hal", &["tent"]).unwrap();
    let kettle = s.data().item_index("kettle").unwrap();
    let mut scores = vec![0.0; s.data().n_items()];
    let hal = s.data().customer_index("hal").unwrap();
    s.model()
        .score(s.data(), s.data().history(hal), &mut scores);
    assert_eq!(scores[kettle as usize], 0.0);
    s.refit().unwrap();
    assert_eq!(s.recommend("hal", 1, &[]).unwrap()[0].0, "kettle");
}

#[test]
fn saved_model_round_trips_with_metadata() {
    let s = service();
    let meta = ModelMeta {
        kind: s.model().kind().to_owned(),
        format_version: 1,
        trained_at: chrono::Utc::now(),
        training_rows: s.data().n_interactions(),
        features: vec!["purchase history".into()],
        metrics: BTreeMap::from([("hit_rate_at_10".to_owned(), 0.5)]),
        evaluation: "test".into(),
    };
    let path = std::env::temp_dir().join(format!("saga-ai-recommend-{}.json", std::process::id()));
    SavedModel {
        meta: meta.clone(),
        model: s.clone(),
    }
    .save(&path)
    .unwrap();
    let loaded: SavedModel<RecommenderService<SequentialEase>> =
        SavedModel::load(&path, "recommend.sequential_ease", 1).unwrap();
    let wrong = SavedModel::<RecommenderService<SequentialEase>>::load(&path, "recommend.ease", 1);
    std::fs::remove_file(&path).ok();
    assert_eq!(loaded.meta, meta);
    for c in ["ann", "cy", "dee", "stranger"] {
        assert_eq!(
            loaded.model.recommend(c, 3, &[]).unwrap(),
            s.recommend(c, 3, &[]).unwrap()
        );
    }
    assert!(matches!(wrong, Err(AiError::IncompatibleModel(_))));
}

#[test]
fn bad_params_are_invalid_input() {
    let bad = [
        SequentialParams {
            lambda: 0.0,
            ..params()
        },
        SequentialParams {
            alpha: 1.5,
            ..params()
        },
        SequentialParams {
            recent: 0,
            ..params()
        },
        SequentialParams {
            recency_decay: f64::NAN,
            ..params()
        },
    ];
    for p in bad {
        assert!(matches!(
            SequentialEase::fit(&small(), p),
            Err(AiError::InvalidInput(_))
        ));
    }
}

#[test]
fn generator_rejects_bad_settings() {
    let bad = SyntheticConfig {
        max_len: 1000,
        ..SyntheticConfig::default()
    };
    assert!(matches!(generate(&bad, 1), Err(AiError::InvalidInput(_))));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn any_orders_give_valid_recommendations(
        orders in prop::collection::vec(
            (0u8..6, prop::collection::vec(0u8..12, 1..5)), 0..25),
        customer in 0u8..8,
        k in 1usize..20,
    ) {
        let mut s = RecommenderService::new(
            Interactions::new(),
            SequentialEase::fit(&Interactions::new(), params()).unwrap(),
        );
        for (c, items) in &orders {
            let items: Vec<String> = items.iter().map(|i| format!("i{i}")).collect();
            let refs: Vec<&str> = items.iter().map(String::as_str).collect();
            s.observe_order(&format!("c{c}"), &refs).unwrap();
        }
        s.refit().unwrap();
        let c = format!("c{customer}");
        let recs = s.recommend(&c, k, &["i0"]).unwrap();
        prop_assert!(recs.len() <= k);
        let bought: Vec<&str> = s.data().customer_index(&c)
            .map(|ci| s.data().history(ci).iter()
                .filter_map(|&i| s.data().item_id(i)).collect())
            .unwrap_or_default();
        for (item, score) in &recs {
            prop_assert!(score.is_finite());
            prop_assert!(item != "i0");
            prop_assert!(!bought.contains(&item.as_str()));
        }
    }
}
