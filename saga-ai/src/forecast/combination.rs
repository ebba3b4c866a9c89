//! Forecast combination: several methods fitted to the same series, their forecasts averaged
//! step by step. Combining smooths out the errors of any one method's assumptions and is the
//! most reliable way past a single method on the M competitions.

use serde::{Deserialize, Serialize};

use super::forecaster::{DEFAULT_LEVEL, DemandForecaster, Forecast, not_fitted};
use super::method::Method;
use crate::error::{AiError, Result};

/// How member forecasts are merged at each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Aggregate {
    /// The arithmetic mean.
    Mean,
    /// The median (robust to one member going astray).
    Median,
}

impl Aggregate {
    /// Merges one step's member values.
    pub fn apply(self, values: &[f64]) -> f64 {
        match self {
            Self::Mean => values.iter().sum::<f64>() / values.len().max(1) as f64,
            Self::Median => {
                let mut v = values.to_vec();
                v.sort_by(f64::total_cmp);
                let n = v.len();
                match n {
                    0 => 0.0,
                    _ if n % 2 == 1 => v[n / 2],
                    _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
                }
            }
        }
    }
}

/// Several methods' forecasts merged step by step. Its error deviations are the members'
/// average (the usual conservative choice: errors of the members are strongly correlated).
pub struct Combination {
    name: &'static str,
    members: Vec<Box<dyn DemandForecaster>>,
    aggregate: Aggregate,
    fitted: bool,
}

impl Combination {
    /// A combination of `members` named `name`. An empty list is [`AiError::InvalidInput`].
    pub fn new(name: &'static str, members: &[Method], aggregate: Aggregate) -> Result<Self> {
        if members.is_empty() {
            return Err(AiError::InvalidInput(
                "a combination needs at least one member".into(),
            ));
        }
        Ok(Self::of(name, members, aggregate))
    }

    /// [`Combination::new`] for member lists known to be non-empty.
    pub(crate) fn of(name: &'static str, members: &[Method], aggregate: Aggregate) -> Self {
        Self {
            name,
            members: members.iter().map(|m| m.forecaster()).collect(),
            aggregate,
            fitted: false,
        }
    }
}

impl DemandForecaster for Combination {
    fn name(&self) -> &'static str {
        self.name
    }

    fn fit(&mut self, history: &[f64], period: usize) -> Result<()> {
        self.fitted = false;
        for m in &mut self.members {
            m.fit(history, period)?;
        }
        self.fitted = true;
        Ok(())
    }

    fn forecast(&self, h: usize) -> Result<Forecast> {
        if !self.fitted {
            return Err(not_fitted(self.name));
        }
        let forecasts = self
            .members
            .iter()
            .map(|m| m.forecast(h))
            .collect::<Result<Vec<_>>>()?;
        let merge = |pick: &dyn Fn(&Forecast) -> f64, agg: Aggregate| {
            let values: Vec<f64> = forecasts.iter().map(pick).collect();
            agg.apply(&values)
        };
        let mean = (0..h)
            .map(|j| merge(&|f| f.mean[j], self.aggregate))
            .collect();
        let sd = (0..h)
            .map(|j| merge(&|f| f.sd[j], Aggregate::Mean))
            .collect();
        let cumulative = (0..h)
            .map(|j| merge(&|f| f.cumulative_sd[j], Aggregate::Mean))
            .collect();
        Forecast::from_moments(mean, sd, cumulative, DEFAULT_LEVEL)
    }
}
