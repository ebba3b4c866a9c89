//! The M3 back-test: every method forecasts every series' official horizon from its training
//! part; combinations are chosen on a validation window (the last horizon of the training part,
//! re-forecast from what precedes it), never on the test values.

use std::collections::BTreeMap;

use super::accuracy::{mase, mase_scale, smape};
use super::combination::Aggregate;
use super::forecaster::Forecast;
use super::m3::{Frequency, Series};
use super::method::Method;
use crate::error::{AiError, Result};

/// Which part of each series is scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The last horizon of the training part, forecast from the values before it.
    Validation,
    /// The official test values, forecast from the whole training part.
    Test,
}

/// A forecast to score: one method or a merge of several.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Its name in tables (`theta`, `mean(ses+damped+theta)`).
    pub name: String,
    /// The methods merged (one for a plain method).
    pub members: Vec<Method>,
    /// How they are merged.
    pub aggregate: Aggregate,
}

impl Candidate {
    /// A single method.
    pub fn single(method: Method) -> Self {
        Self {
            name: method.name().to_string(),
            members: vec![method],
            aggregate: Aggregate::Mean,
        }
    }

    /// A merge of `members`.
    pub fn combination(members: &[Method], aggregate: Aggregate) -> Self {
        let names: Vec<&str> = members.iter().map(|m| m.name()).collect();
        let agg = match aggregate {
            Aggregate::Mean => "mean",
            Aggregate::Median => "median",
        };
        Self {
            name: format!("{agg}({})", names.join("+")),
            members: members.to_vec(),
            aggregate,
        }
    }

    /// Every merge of two or more of `methods`: means of all subsets, medians of those with
    /// three or more members.
    pub fn all_combinations(methods: &[Method]) -> Vec<Self> {
        let mut out = Vec::new();
        for mask in 1u32..(1 << methods.len()) {
            let members: Vec<Method> = methods
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, m)| *m)
                .collect();
            if members.len() >= 2 {
                out.push(Self::combination(&members, Aggregate::Mean));
            }
            if members.len() >= 3 {
                out.push(Self::combination(&members, Aggregate::Median));
            }
        }
        out
    }
}

/// Mean accuracy over a group of series.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Scores {
    /// Mean sMAPE (percent).
    pub smape: f64,
    /// Mean MASE.
    pub mase: f64,
    /// Series scored.
    pub series: usize,
    /// Series scored by MASE (those whose scale is not zero).
    pub mase_series: usize,
}

impl Scores {
    /// The series-weighted mean of several groups' scores (e.g. the overall figure of a
    /// per-frequency selection).
    pub fn pooled(groups: &[Scores]) -> Scores {
        let n: usize = groups.iter().map(|g| g.series).sum();
        let mn: usize = groups.iter().map(|g| g.mase_series).sum();
        Scores {
            smape: groups
                .iter()
                .map(|g| g.smape * g.series as f64)
                .sum::<f64>()
                / n.max(1) as f64,
            mase: groups
                .iter()
                .map(|g| g.mase * g.mase_series as f64)
                .sum::<f64>()
                / mn.max(1) as f64,
            series: n,
            mase_series: mn,
        }
    }
}

/// Coverage of 95% intervals on the test window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Coverage {
    /// Share of test values inside the model's own intervals.
    pub model: f64,
    /// The widening chosen on the validation window (at least 1; NaN for the pooled row).
    pub factor: f64,
    /// Share of test values inside the widened intervals.
    pub widened: f64,
}

/// `|actual - mean| / sd` per step (infinite where the deviation is 0 but the error is not);
/// empty without a forecast.
fn standardise(forecast: Option<&Forecast>, actual: &[f64]) -> Vec<f64> {
    let Some(f) = forecast else {
        return Vec::new();
    };
    actual
        .iter()
        .zip(f.mean.iter().zip(&f.sd))
        .map(|(y, (m, sd))| {
            let e = (y - m).abs();
            if e == 0.0 {
                0.0
            } else if *sd > 0.0 {
                e / sd
            } else {
                f64::INFINITY
            }
        })
        .collect()
}

/// One series' base forecasts for both windows.
struct SeriesForecasts {
    frequency: Frequency,
    validation_actual: Vec<f64>,
    validation_scale: Option<f64>,
    test_actual: Vec<f64>,
    test_scale: Option<f64>,
    /// Per method: (validation forecast, test forecast).
    by_method: BTreeMap<Method, (Vec<f64>, Vec<f64>)>,
    /// Per method: each step's absolute error over its forecast deviation, on the validation
    /// and the test window (empty where the method failed).
    standardised: BTreeMap<Method, (Vec<f64>, Vec<f64>)>,
}

/// The base forecasts of a set of methods on a set of series, ready to be scored alone or
/// merged.
pub struct Backtest {
    series: Vec<SeriesForecasts>,
    /// (method, series id, error) for each fit that failed and fell back to the naive forecast.
    pub failures: Vec<(Method, String, String)>,
}

/// Fits `method` on `history` and forecasts `h` steps.
fn forecast(method: Method, history: &[f64], period: usize, h: usize) -> Result<Forecast> {
    let mut model = method.forecaster();
    model.fit(history, period)?;
    let f = model.forecast(h)?;
    if f.mean.iter().all(|v| v.is_finite()) {
        Ok(f)
    } else {
        Err(AiError::Fit("non-finite forecast".into()))
    }
}

impl Backtest {
    /// Forecasts both windows of every series with every method; `progress` is called once per
    /// series. A method that fails on a series gets the naive forecast there and is listed in
    /// [`Backtest::failures`].
    pub fn run(series: &[Series], methods: &[Method], mut progress: impl FnMut()) -> Result<Self> {
        let mut out = Vec::with_capacity(series.len());
        let mut failures = Vec::new();
        for s in series {
            let h = s.horizon();
            let period = s.frequency.period();
            if s.train.len() <= h {
                return Err(AiError::NotEnoughData(format!(
                    "{}: {} training values leave no validation window of {h}",
                    s.id,
                    s.train.len()
                )));
            }
            let cut = s.train.len() - h;
            let (early, late) = s.train.split_at(cut);
            let naive = |x: &[f64]| vec![x.last().copied().unwrap_or(0.0); h];
            let mut by_method = BTreeMap::new();
            let mut standardised = BTreeMap::new();
            for &m in methods {
                let mut run = |x: &[f64]| match forecast(m, x, period, h) {
                    Ok(f) => Some(f),
                    Err(e) => {
                        failures.push((m, s.id.clone(), e.to_string()));
                        None
                    }
                };
                let validation = run(early);
                let test = run(&s.train);
                standardised.insert(
                    m,
                    (
                        standardise(validation.as_ref(), late),
                        standardise(test.as_ref(), &s.test),
                    ),
                );
                let validation = validation.map_or_else(|| naive(early), |f| f.mean);
                let test = test.map_or_else(|| naive(&s.train), |f| f.mean);
                by_method.insert(m, (validation, test));
            }
            out.push(SeriesForecasts {
                frequency: s.frequency,
                validation_actual: late.to_vec(),
                validation_scale: mase_scale(early, period).ok(),
                test_actual: s.test.clone(),
                test_scale: mase_scale(&s.train, period).ok(),
                by_method,
                standardised,
            });
            progress();
        }
        Ok(Self {
            series: out,
            failures,
        })
    }

    /// How `method`'s 95% intervals cover the test values, per frequency and over all (`None`
    /// key): as the model gives them, and widened by a factor per frequency chosen on the
    /// validation window (the factor that makes 95% of validation errors fall inside).
    pub fn coverage(&self, method: Method) -> BTreeMap<Option<Frequency>, Coverage> {
        let z = crate::forecast::dist::normal_quantile(0.975);
        let mut pooled: BTreeMap<Option<Frequency>, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
        for s in &self.series {
            if let Some((v, t)) = s.standardised.get(&method) {
                let e = pooled.entry(Some(s.frequency)).or_default();
                e.0.extend(v);
                e.1.extend(t);
            }
        }
        let share = |values: &[f64], bound: f64| {
            values.iter().filter(|&&v| v <= bound).count() as f64 / values.len().max(1) as f64
        };
        let mut out = BTreeMap::new();
        let (mut inside, mut inside_widened, mut total) = (0.0, 0.0, 0.0);
        for (key, (mut validation, test)) in pooled {
            validation.sort_by(f64::total_cmp);
            let at = ((validation.len() as f64 * 0.95).ceil() as usize).saturating_sub(1);
            let factor = validation.get(at).map_or(1.0, |q| (q / z).max(1.0));
            let c = Coverage {
                model: share(&test, z),
                factor,
                widened: share(&test, z * factor),
            };
            let n = test.len() as f64;
            inside += c.model * n;
            inside_widened += c.widened * n;
            total += n;
            out.insert(key, c);
        }
        out.insert(
            None,
            Coverage {
                model: inside / total.max(1.0),
                factor: f64::NAN,
                widened: inside_widened / total.max(1.0),
            },
        );
        out
    }

    /// The candidate's scores per frequency and over all series (`None` key), on `window`.
    /// A series whose MASE scale is zero counts in sMAPE only.
    pub fn score(
        &self,
        candidate: &Candidate,
        window: Window,
    ) -> Result<BTreeMap<Option<Frequency>, Scores>> {
        let mut sums: BTreeMap<Option<Frequency>, (f64, usize, f64, usize)> = BTreeMap::new();
        for s in &self.series {
            let forecasts = candidate
                .members
                .iter()
                .map(|m| {
                    s.by_method
                        .get(m)
                        .map(|(v, t)| if window == Window::Validation { v } else { t })
                        .ok_or_else(|| {
                            AiError::InvalidInput(format!(
                                "{} was not part of the back-test",
                                m.name()
                            ))
                        })
                })
                .collect::<Result<Vec<_>>>()?;
            let (actual, scale) = match window {
                Window::Validation => (&s.validation_actual, s.validation_scale),
                Window::Test => (&s.test_actual, s.test_scale),
            };
            let merged: Vec<f64> = (0..actual.len())
                .map(|j| {
                    let values: Vec<f64> = forecasts.iter().map(|f| f[j]).collect();
                    candidate.aggregate.apply(&values)
                })
                .collect();
            let sm = smape(actual, &merged)?;
            let ms = scale.map(|sc| mase(actual, &merged, sc)).transpose()?;
            for key in [Some(s.frequency), None] {
                let e = sums.entry(key).or_default();
                e.0 += sm;
                e.1 += 1;
                if let Some(v) = ms {
                    e.2 += v;
                    e.3 += 1;
                }
            }
        }
        Ok(sums
            .into_iter()
            .map(|(k, (s, n, m, mn))| {
                (
                    k,
                    Scores {
                        smape: s / n.max(1) as f64,
                        mase: m / mn.max(1) as f64,
                        series: n,
                        mase_series: mn,
                    },
                )
            })
            .collect())
    }
}

/// The candidate with the best validation score relative to `reference` (the sum of its sMAPE
/// and MASE each divided by the reference's), for each frequency: the selection that decides
/// what runs on the test window, made without looking at it.
pub fn select_per_frequency<'a>(
    backtest: &Backtest,
    candidates: &'a [Candidate],
    reference: &Candidate,
) -> Result<BTreeMap<Frequency, &'a Candidate>> {
    let reference = backtest.score(reference, Window::Validation)?;
    let mut best: BTreeMap<Frequency, (f64, &'a Candidate)> = BTreeMap::new();
    for c in candidates {
        for (key, s) in backtest.score(c, Window::Validation)? {
            let (Some(f), Some(r)) = (key, reference.get(&key)) else {
                continue;
            };
            let value = s.smape / r.smape.max(1e-12) + s.mase / r.mase.max(1e-12);
            if best.get(&f).is_none_or(|(v, _)| value < *v) {
                best.insert(f, (value, c));
            }
        }
    }
    Ok(best.into_iter().map(|(f, (_, c))| (f, c)).collect())
}

/// The scores of a per-frequency selection on `window`: each frequency scored with its own
/// candidate, and the pooled figure over all series under the `None` key.
pub fn score_selection(
    backtest: &Backtest,
    selection: &BTreeMap<Frequency, &Candidate>,
    window: Window,
) -> Result<BTreeMap<Option<Frequency>, Scores>> {
    let mut out = BTreeMap::new();
    for (f, c) in selection {
        if let Some(s) = backtest.score(c, window)?.get(&Some(*f)) {
            out.insert(Some(*f), *s);
        }
    }
    let all: Vec<Scores> = out.values().copied().collect();
    out.insert(None, Scores::pooled(&all));
    Ok(out)
}
