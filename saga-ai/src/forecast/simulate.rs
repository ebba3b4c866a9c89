//! Demand with a known truth, and the stock-out evaluation built on it.
//!
//! Each scenario draws a daily demand process: Poisson or negative binomial around a level with
//! a trend and a weekly cycle, or intermittent (a demand on a day with some probability, of a
//! random size). The history is what a shop would have seen; the future days are drawn from
//! the same process; the stock on hand is set near the true lead-time demand so that stock-outs
//! happen about half the time. The process's own stock-out probability (estimated from many
//! future paths) is the oracle no forecaster can beat.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Gamma, Poisson};
use serde::{Deserialize, Serialize};

use super::method::Method;
use super::stockout;
use crate::error::{AiError, Result};
use crate::metrics::brier;

/// The kind of demand process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Process {
    /// Poisson counts around a trending, weekly-seasonal level.
    Poisson,
    /// Over-dispersed (gamma-Poisson) counts around the same kind of level.
    NegativeBinomial,
    /// Most days without demand; a demand of random size on the others.
    Intermittent,
}

/// One simulated item: its process, history and what happened next.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// The process.
    pub process: Process,
    /// Daily demand seen so far, oldest first.
    pub history: Vec<f64>,
    /// The daily demand that followed (`horizon` days).
    pub future: Vec<f64>,
    /// The expected demand of each future day.
    pub future_mean: Vec<f64>,
    /// Stock on hand now.
    pub on_hand: f64,
    /// Replenishment lead time in days.
    pub lead_time: usize,
    /// The true P(lead-time demand > stock on hand), from many paths of the process.
    pub true_probability: f64,
}

/// The daily demand process of one scenario.
struct Truth {
    process: Process,
    /// Mean demand per day (for intermittent: mean size).
    level: f64,
    trend: f64,
    weekly: [f64; 7],
    dispersion: f64,
    occurrence: f64,
}

impl Truth {
    fn mean(&self, day: usize) -> f64 {
        let base = (self.level * (1.0 + self.trend * day as f64)).max(0.05);
        match self.process {
            Process::Intermittent => self.occurrence * self.level,
            _ => base * self.weekly[day % 7],
        }
    }

    fn draw(&self, day: usize, rng: &mut StdRng) -> f64 {
        let poisson = |mean: f64, rng: &mut StdRng| {
            Poisson::new(mean.max(1e-9)).map_or(0.0, |p| p.sample(rng))
        };
        match self.process {
            Process::Poisson => poisson(self.mean(day), rng),
            Process::NegativeBinomial => {
                let mean = self.mean(day);
                let rate = Gamma::new(self.dispersion, mean / self.dispersion)
                    .map_or(mean, |g| g.sample(rng));
                poisson(rate, rng)
            }
            Process::Intermittent => {
                if rng.random::<f64>() < self.occurrence {
                    1.0 + poisson(self.level - 1.0, rng)
                } else {
                    0.0
                }
            }
        }
    }
}

/// Draws `count` scenarios with `history_days` of history, from `seed`; the true stock-out
/// probability of each comes from `oracle_paths` further paths of its process.
pub fn scenarios(
    count: usize,
    history_days: usize,
    oracle_paths: usize,
    seed: u64,
) -> Vec<Scenario> {
    const HORIZON: usize = 28;
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count)
        .map(|i| {
            let process = match i % 3 {
                0 => Process::Poisson,
                1 => Process::NegativeBinomial,
                _ => Process::Intermittent,
            };
            let amplitude = rng.random_range(0.0..0.4);
            let mut weekly = [1.0; 7];
            for (d, w) in weekly.iter_mut().enumerate() {
                *w = 1.0 + amplitude * (2.0 * std::f64::consts::PI * d as f64 / 7.0).sin();
            }
            let truth = Truth {
                process,
                level: rng.random_range(2.0..30.0),
                trend: rng.random_range(-0.004..0.006),
                weekly,
                dispersion: rng.random_range(1.0..5.0),
                occurrence: rng.random_range(0.08..0.4),
            };
            let history = (0..history_days).map(|d| truth.draw(d, &mut rng)).collect();
            let future_days = history_days..history_days + HORIZON;
            let future = future_days
                .clone()
                .map(|d| truth.draw(d, &mut rng))
                .collect();
            let future_mean: Vec<f64> = future_days.clone().map(|d| truth.mean(d)).collect();
            let lead_time = rng.random_range(7..=21);
            let expected: f64 = future_mean[..lead_time].iter().sum();
            let on_hand = (expected * rng.random_range(0.6..1.4)).round();
            let exceed = (0..oracle_paths)
                .filter(|_| {
                    let demand: f64 = future_days
                        .clone()
                        .take(lead_time)
                        .map(|d| truth.draw(d, &mut rng))
                        .sum();
                    demand > on_hand
                })
                .count();
            Scenario {
                process,
                history,
                future,
                future_mean,
                on_hand,
                lead_time,
                true_probability: exceed as f64 / oracle_paths.max(1) as f64,
            }
        })
        .collect()
}

/// The method used for an item's history: TSB when more than a third of the days had no
/// demand, else the ensemble.
pub fn method_for(history: &[f64]) -> Method {
    let zeros = history.iter().filter(|&&v| v == 0.0).count();
    if zeros * 3 > history.len() {
        Method::Tsb
    } else {
        Method::Ensemble
    }
}

/// Scores of one way of predicting stock-outs over many scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct StockoutScores {
    /// Brier score of the stock-out probability against what happened (lower is better).
    pub brier: f64,
    /// Mean absolute error in days of the predicted stock-out day, over the scenarios where
    /// stock ran out within the horizon both in the prediction and in reality.
    pub day_mae: f64,
    /// Share of scenarios where the predicted and the real "runs out within the horizon" agree.
    pub day_agreement: f64,
    /// Share of scenarios where lead-time demand stayed within the order-up-to level (the
    /// achieved cycle service level; the target is the requested level).
    pub service_achieved: f64,
    /// Mean order-up-to level over the mean true lead-time demand (the stock it costs).
    pub stock_ratio: f64,
}

/// The stock-out evaluation: the forecaster (per [`method_for`]), the average-demand rule, a
/// Poisson on the recent average, and the oracle, over `scenarios`.
pub struct StockoutEvaluation {
    /// Forecast-based assessment.
    pub model: StockoutScores,
    /// Rule: out of stock if the recent average daily demand times the lead time exceeds
    /// stock (probability 0 or 1); orders up to that expected demand.
    pub average_rule: StockoutScores,
    /// Poisson lead-time demand at the last 28 days' average rate.
    pub recent_poisson: StockoutScores,
    /// Brier score of the process's true probability.
    pub oracle_brier: f64,
    /// Scenarios scored.
    pub scenarios: usize,
}

/// What one predictor said about one scenario.
struct Prediction {
    probability: f64,
    day: Option<usize>,
    order_up_to: f64,
}

fn actual_stockout_day(s: &Scenario) -> Option<usize> {
    let mut total = 0.0;
    for (d, v) in s.future.iter().enumerate() {
        total += v;
        if total > s.on_hand {
            return Some(d + 1);
        }
    }
    None
}

fn score(scenarios: &[Scenario], predictions: &[Prediction]) -> Result<StockoutScores> {
    let outcomes: Vec<bool> = scenarios
        .iter()
        .map(|s| s.future[..s.lead_time].iter().sum::<f64>() > s.on_hand)
        .collect();
    let probs: Vec<f64> = predictions.iter().map(|p| p.probability).collect();
    let brier = brier(&probs, &outcomes)?;
    let (mut day_err, mut both, mut agree, mut served) = (0.0, 0usize, 0usize, 0usize);
    let (mut stock, mut need) = (0.0, 0.0);
    for (s, p) in scenarios.iter().zip(predictions) {
        let actual = actual_stockout_day(s);
        if actual.is_some() == p.day.is_some() {
            agree += 1;
        }
        if let (Some(a), Some(d)) = (actual, p.day) {
            day_err += (a as f64 - d as f64).abs();
            both += 1;
        }
        let demand: f64 = s.future[..s.lead_time].iter().sum();
        if demand <= p.order_up_to {
            served += 1;
        }
        stock += p.order_up_to;
        need += s.future_mean[..s.lead_time].iter().sum::<f64>();
    }
    let n = scenarios.len().max(1) as f64;
    Ok(StockoutScores {
        brier,
        day_mae: if both > 0 {
            day_err / both as f64
        } else {
            f64::NAN
        },
        day_agreement: agree as f64 / n,
        service_achieved: served as f64 / n,
        stock_ratio: if need > 0.0 { stock / need } else { f64::NAN },
    })
}

/// Runs the evaluation at cycle service level `service_level`; `progress` is called per
/// scenario.
pub fn evaluate(
    scenarios: &[Scenario],
    service_level: f64,
    mut progress: impl FnMut(),
) -> Result<StockoutEvaluation> {
    if scenarios.is_empty() {
        return Err(AiError::NotEnoughData("no scenarios to evaluate".into()));
    }
    let (mut model, mut rule, mut recent) = (Vec::new(), Vec::new(), Vec::new());
    for s in scenarios {
        let horizon = s.future.len();
        let mut forecaster = method_for(&s.history).forecaster();
        forecaster.fit(&s.history, 7)?;
        let risk = stockout::assess(
            &forecaster.forecast(horizon)?,
            s.on_hand,
            s.lead_time,
            service_level,
        )?;
        model.push(Prediction {
            probability: risk.probability,
            day: risk.stockout_day,
            order_up_to: risk.order_up_to,
        });

        let recent_days = &s.history[s.history.len().saturating_sub(28)..];
        let rate = recent_days.iter().sum::<f64>() / recent_days.len().max(1) as f64;
        let expected = rate * s.lead_time as f64;
        let day = (rate > 0.0)
            .then(|| (s.on_hand / rate).floor() as usize + 1)
            .filter(|&d| d <= horizon);
        rule.push(Prediction {
            probability: if expected > s.on_hand { 1.0 } else { 0.0 },
            day,
            order_up_to: expected,
        });
        let poisson = super::dist::CountDistribution::matching(expected, expected);
        let poisson_day = (1..=horizon).find(|&d| {
            let c = super::dist::CountDistribution::matching(rate * d as f64, rate * d as f64);
            1.0 - c.cdf(s.on_hand.floor()) >= 0.5
        });
        recent.push(Prediction {
            probability: 1.0 - poisson.cdf(s.on_hand.floor()),
            day: poisson_day,
            order_up_to: poisson.quantile(service_level),
        });
        progress();
    }
    let outcomes: Vec<bool> = scenarios
        .iter()
        .map(|s| s.future[..s.lead_time].iter().sum::<f64>() > s.on_hand)
        .collect();
    let truth: Vec<f64> = scenarios.iter().map(|s| s.true_probability).collect();
    Ok(StockoutEvaluation {
        model: score(scenarios, &model)?,
        average_rule: score(scenarios, &rule)?,
        recent_poisson: score(scenarios, &recent)?,
        oracle_brier: brier(&truth, &outcomes)?,
        scenarios: scenarios.len(),
    })
}
