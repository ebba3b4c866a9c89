//! The forecasting contract: [`DemandForecaster`], its output [`Forecast`], and the input checks
//! every method shares.

use serde::{Deserialize, Serialize};

use super::dist;
use crate::error::{AiError, Result};

/// The coverage of the intervals [`DemandForecaster::forecast`] returns (95%).
pub const DEFAULT_LEVEL: f64 = 0.95;

/// A forecasting method: fitted on one series, then asked for the next `h` values.
///
/// ```
/// use saga_ai::forecast::{DemandForecaster, Method};
/// let history: Vec<f64> = (0..48).map(|t| 100.0 + t as f64).collect();
/// let mut model = Method::Theta.forecaster();
/// model.fit(&history, 12)?;
/// let f = model.forecast(6)?;
/// assert_eq!(f.mean.len(), 6);
/// assert!(f.mean[0] > 140.0 && f.lower[0] < f.mean[0] && f.mean[0] < f.upper[0]);
/// # Ok::<(), saga_ai::AiError>(())
/// ```
pub trait DemandForecaster: Send {
    /// The method's short name (`theta`, `ses`, `comb`, ...).
    fn name(&self) -> &'static str;

    /// Fits the method to `history` (oldest first) whose seasonal period is `period` (1 = none,
    /// 4 = quarterly, 7 = daily with a weekly cycle, 12 = monthly). Replaces any earlier fit.
    ///
    /// Errors: [`AiError::NotEnoughData`] for an empty or too short series,
    /// [`AiError::InvalidInput`] for a NaN or infinite value or a period of 0.
    fn fit(&mut self, history: &[f64], period: usize) -> Result<()>;

    /// The next `h` values with their 95% intervals. [`AiError::InvalidInput`] before `fit`.
    fn forecast(&self, h: usize) -> Result<Forecast>;
}

/// Point forecasts with their uncertainty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forecast {
    /// The expected value for each of the next steps.
    pub mean: Vec<f64>,
    /// The lower bound of the interval at `level`, per step.
    pub lower: Vec<f64>,
    /// The upper bound of the interval at `level`, per step.
    pub upper: Vec<f64>,
    /// The intervals' nominal coverage (0.95 = 95%).
    pub level: f64,
    /// The standard deviation of the error of each step's forecast.
    pub sd: Vec<f64>,
    /// The standard deviation of the error of the sum of the first `k + 1` steps (what lead-time
    /// demand needs: step errors are correlated, so this is not the sum of `sd`).
    pub cumulative_sd: Vec<f64>,
}

impl Forecast {
    /// A forecast from means and error standard deviations, with normal intervals at `level`.
    pub fn from_moments(
        mean: Vec<f64>,
        sd: Vec<f64>,
        cumulative_sd: Vec<f64>,
        level: f64,
    ) -> Result<Self> {
        if mean.len() != sd.len() || mean.len() != cumulative_sd.len() {
            return Err(AiError::InvalidInput(format!(
                "{} means, {} deviations, {} cumulative deviations",
                mean.len(),
                sd.len(),
                cumulative_sd.len()
            )));
        }
        let z = z_for_level(level)?;
        let lower = mean.iter().zip(&sd).map(|(m, s)| m - z * s).collect();
        let upper = mean.iter().zip(&sd).map(|(m, s)| m + z * s).collect();
        Ok(Self {
            mean,
            lower,
            upper,
            level,
            sd,
            cumulative_sd,
        })
    }

    /// The same forecast with intervals at another coverage `level` (between 0 and 1).
    pub fn with_level(self, level: f64) -> Result<Self> {
        Self::from_moments(self.mean, self.sd, self.cumulative_sd, level)
    }

    /// The same forecast with every error deviation multiplied by `factor` (at least 1 widens):
    /// how intervals calibrated on held-out errors are applied. A factor that is not a positive
    /// finite number is [`AiError::InvalidInput`].
    pub fn widened(self, factor: f64) -> Result<Self> {
        if !(factor > 0.0 && factor.is_finite()) {
            return Err(AiError::InvalidInput(format!(
                "widening factor must be positive, got {factor}"
            )));
        }
        let scale = |v: Vec<f64>| v.into_iter().map(|s| s * factor).collect();
        Self::from_moments(
            self.mean,
            scale(self.sd),
            scale(self.cumulative_sd),
            self.level,
        )
    }

    /// The number of steps forecast.
    pub fn horizon(&self) -> usize {
        self.mean.len()
    }
}

/// The standard normal quantile that gives a two-sided interval of coverage `level`.
fn z_for_level(level: f64) -> Result<f64> {
    if !(level > 0.0 && level < 1.0) {
        return Err(AiError::InvalidInput(format!(
            "interval level must lie strictly between 0 and 1, got {level}"
        )));
    }
    Ok(dist::normal_quantile(0.5 + level / 2.0))
}

/// Checks a series and a period before fitting: not empty, all finite, period at least 1.
pub(crate) fn check_series(history: &[f64], period: usize, min_len: usize) -> Result<()> {
    if period == 0 {
        return Err(AiError::InvalidInput(
            "the seasonal period must be at least 1".into(),
        ));
    }
    if let Some(i) = history.iter().position(|v| !v.is_finite()) {
        return Err(AiError::InvalidInput(format!(
            "value {i} of the series is not a finite number"
        )));
    }
    if history.len() < min_len.max(1) {
        return Err(AiError::NotEnoughData(format!(
            "the series has {} values, this method needs at least {}",
            history.len(),
            min_len.max(1)
        )));
    }
    Ok(())
}

/// The error returned by `forecast` before `fit`.
pub(crate) fn not_fitted(name: &str) -> AiError {
    AiError::InvalidInput(format!("{name}: forecast asked before fit"))
}

/// How a linear innovations model's future errors build up: the step-`j` error is
/// `scale[j] * sum_{k<=j} psi[j-k] * eps[k]` with `psi[0] = 1` and `eps` of deviation `sigma`.
/// From that follow the deviation of each step and of each running sum.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ErrorModel {
    /// The one-step error's standard deviation (on the adjusted scale).
    pub(crate) sigma: f64,
    /// `psi[i]`: the weight of a shock `i` steps back (`psi[0] = 1`), at least `h` long.
    pub(crate) psi: Vec<f64>,
    /// The multiplier of each step (seasonal index), `h` long; all ones without seasonality.
    pub(crate) scale: Vec<f64>,
}

impl ErrorModel {
    /// The standard deviations of each step and of each running sum.
    pub(crate) fn deviations(&self) -> (Vec<f64>, Vec<f64>) {
        let h = self.scale.len();
        let sd = (0..h)
            .map(|j| {
                let v: f64 = (0..=j).map(|k| self.psi[j - k].powi(2)).sum();
                self.sigma * self.scale[j] * v.sqrt()
            })
            .collect();
        // The sum of steps 0..=t: the shock at step k enters with weight
        // sum_{j=k..=t} scale[j] * psi[j-k].
        let mut cumulative = Vec::with_capacity(h);
        let mut weights = vec![0.0; h];
        for t in 0..h {
            for (k, w) in weights.iter_mut().enumerate().take(t + 1) {
                *w += self.scale[t] * self.psi[t - k];
            }
            let v: f64 = weights[..=t].iter().map(|w| w * w).sum();
            cumulative.push(self.sigma * v.sqrt());
        }
        (sd, cumulative)
    }

    /// A [`Forecast`] with these errors around `mean`, at the default level.
    pub(crate) fn forecast(&self, mean: Vec<f64>) -> Result<Forecast> {
        let (sd, cumulative) = self.deviations();
        Forecast::from_moments(mean, sd, cumulative, DEFAULT_LEVEL)
    }
}
