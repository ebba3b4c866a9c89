//! The M3 benchmark recipe shared by the smoothing methods, Theta and Naive2: scale the series,
//! take out a multiplicative season when the test finds one, forecast the adjusted series with
//! a non-seasonal core, put the season back on the forecast and its errors.

use super::forecaster::{DemandForecaster, ErrorModel, Forecast, check_series, not_fitted};
use super::seasonality::SeasonalIndices;
use crate::error::Result;

/// A non-seasonal forecasting method with linear innovations errors.
pub(crate) trait Core: Send {
    /// The fewest values it fits on.
    fn min_len(&self) -> usize;
    /// Fits the (seasonally adjusted, scaled) series.
    fn fit(&mut self, z: &[f64]) -> Result<()>;
    /// The point forecasts of the next `h` steps.
    fn point(&self, h: usize) -> Vec<f64>;
    /// The one-step error's standard deviation.
    fn sigma(&self) -> f64;
    /// `psi[i]`, `i < h`: the weight of a shock `i` steps back in a forecast error (`psi[0] = 1`).
    fn psi(&self, h: usize) -> Vec<f64>;
}

/// A [`Core`] method run on the seasonally adjusted series.
pub(crate) struct Deseasonalised<C> {
    name: &'static str,
    core: C,
    seasonal: bool,
    fitted: Option<Fit>,
}

struct Fit {
    n: usize,
    scale: f64,
    season: Option<SeasonalIndices>,
}

impl<C: Core> Deseasonalised<C> {
    /// `core` on the seasonally adjusted series (when the test finds a season).
    pub(crate) fn new(name: &'static str, core: C) -> Self {
        Self {
            name,
            core,
            seasonal: true,
            fitted: None,
        }
    }

    /// `core` on the series as it is, whatever its period.
    pub(crate) fn plain(name: &'static str, core: C) -> Self {
        Self {
            seasonal: false,
            ..Self::new(name, core)
        }
    }
}

impl<C: Core> DemandForecaster for Deseasonalised<C> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn fit(&mut self, history: &[f64], period: usize) -> Result<()> {
        self.fitted = None;
        check_series(history, period, self.core.min_len())?;
        // Work on values of order one, so huge or tiny series do not overflow the squares.
        let top = history.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let scale = if top > 0.0 { top } else { 1.0 };
        let scaled: Vec<f64> = history.iter().map(|v| v / scale).collect();
        let season = if self.seasonal {
            SeasonalIndices::detect(&scaled, period)
        } else {
            None
        };
        let adjusted = match &season {
            Some(s) => s.adjust(&scaled),
            None => scaled,
        };
        self.core.fit(&adjusted)?;
        self.fitted = Some(Fit {
            n: history.len(),
            scale,
            season,
        });
        Ok(())
    }

    fn forecast(&self, h: usize) -> Result<Forecast> {
        let fit = self.fitted.as_ref().ok_or_else(|| not_fitted(self.name))?;
        let factors: Vec<f64> = match &fit.season {
            Some(s) => s.ahead(fit.n, h),
            None => vec![1.0; h],
        };
        let mean = self
            .core
            .point(h)
            .iter()
            .zip(&factors)
            .map(|(z, s)| z * s * fit.scale)
            .collect();
        ErrorModel {
            sigma: self.core.sigma() * fit.scale,
            psi: self.core.psi(h),
            scale: factors,
        }
        .forecast(mean)
    }
}
