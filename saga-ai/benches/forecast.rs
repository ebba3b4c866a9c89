//! Fit time per series of the forecasting methods (fit plus an 18-step forecast).
//!
//! Run with `cargo bench -p saga-ai --bench forecast`.
//!
//! * `fit/<method>/monthly126`: a 126-month seasonal series with trend and noise (the length of
//!   a long M3 monthly series), period 12.
//! * `fit/tsb/daily112`: 112 days of intermittent demand.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use saga_ai::forecast::Method;

fn monthly() -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(1);
    let cycle = [
        0.8, 0.85, 0.95, 1.0, 1.1, 1.25, 1.3, 1.2, 1.05, 0.95, 0.8, 0.75,
    ];
    (0..126)
        .map(|t| (200.0 + 2.0 * t as f64) * cycle[t % 12] * (1.0 + rng.random_range(-0.05..0.05)))
        .collect()
}

fn intermittent() -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(2);
    (0..112)
        .map(|_| {
            if rng.random::<f64>() < 0.2 {
                f64::from(rng.random_range(1u8..8))
            } else {
                0.0
            }
        })
        .collect()
}

fn fit(c: &mut Criterion) {
    let series = monthly();
    let mut group = c.benchmark_group("fit");
    for method in [
        Method::Ses,
        Method::Holt,
        Method::Damped,
        Method::Theta,
        Method::Ensemble,
    ] {
        group.bench_function(format!("{}/monthly126", method.name()), |b| {
            b.iter(|| {
                let mut model = method.forecaster();
                model.fit(black_box(&series), 12).ok();
                black_box(model.forecast(18).ok())
            })
        });
    }
    let days = intermittent();
    group.bench_function("tsb/daily112", |b| {
        b.iter(|| {
            let mut model = Method::Tsb.forecaster();
            model.fit(black_box(&days), 7).ok();
            black_box(model.forecast(28).ok())
        })
    });
    group.finish();
}

criterion_group!(benches, fit);
criterion_main!(benches);
