//! Fraud scoring benches: latency of scoring one order (features from the store, then the
//! model, with and without reasons) and fit time of boosting.
//!
//! Run with: `cargo bench -p saga-ai --bench fraud`

use std::hint::black_box;

use criterion::{Criterion, criterion_main};
use saga_ai::fraud::{
    Estimator, FeatureSet, FeatureState, FraudModel, FraudScorer, Gbdt, GbdtParams, SimConfig,
    generate,
};

fn setup() -> (
    FeatureState,
    Vec<saga_ai::fraud::Transaction>,
    FraudModel,
    Vec<Vec<f64>>,
    Vec<bool>,
) {
    let data = generate(&SimConfig::small(1)).expect("generated data");
    let mut state = FeatureState::new(FeatureSet::Orders, data.config.start_date);
    let (mut x, mut y) = (Vec::new(), Vec::new());
    let split = data
        .transactions
        .iter()
        .position(|t| t.day() >= 30)
        .unwrap_or(data.transactions.len());
    for t in &data.transactions[..split] {
        if t.day() >= 7 {
            x.push(state.features(t).expect("features").values);
            y.push(t.fraud);
        }
        state.observe(t).expect("observe");
    }
    let params = GbdtParams {
        n_trees: 200,
        max_depth: 6,
        learning_rate: 0.05,
        ..GbdtParams::default()
    };
    let gbdt = Gbdt::fit(&x, &y, &params, |_, _| {}).expect("fit");
    let model = FraudModel::new(FeatureSet::Orders, Estimator::Gbdt(gbdt)).expect("model");
    (state, data.transactions[split..].to_vec(), model, x, y)
}

fn scoring(c: &mut Criterion) {
    let (state, upcoming, model, x, y) = setup();
    let mut i = 0;
    c.bench_function("fraud/score_order_200_trees_depth6_with_reasons", |b| {
        b.iter(|| {
            let tx = &upcoming[i % upcoming.len()];
            i += 1;
            let f = state.features(black_box(tx)).expect("features");
            black_box(model.score(&f).expect("score"))
        })
    });
    c.bench_function("fraud/probability_order_200_trees_depth6", |b| {
        b.iter(|| {
            let tx = &upcoming[i % upcoming.len()];
            i += 1;
            let f = state.features(black_box(tx)).expect("features");
            black_box(model.probability(&f).expect("score"))
        })
    });
    let mut group = c.benchmark_group("fraud/fit");
    group.sample_size(10);
    let rows = x.len();
    group.bench_function(format!("gbdt_100_trees_depth6_{rows}_rows"), |b| {
        let p = GbdtParams {
            n_trees: 100,
            max_depth: 6,
            ..GbdtParams::default()
        };
        b.iter(|| black_box(Gbdt::fit(&x, &y, &p, |_, _| {}).expect("fit")))
    });
    group.finish();
}

#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::scoring);
}
use group::benches;
criterion_main!(benches);
