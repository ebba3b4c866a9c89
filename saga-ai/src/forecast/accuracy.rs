//! Forecast accuracy as the M competitions measure it.

use crate::error::{AiError, Result};

fn check(actual: &[f64], forecast: &[f64]) -> Result<()> {
    if actual.len() != forecast.len() || actual.is_empty() {
        return Err(AiError::InvalidInput(format!(
            "{} actual values against {} forecasts",
            actual.len(),
            forecast.len()
        )));
    }
    if actual.iter().chain(forecast).any(|v| !v.is_finite()) {
        return Err(AiError::InvalidInput(
            "actual values and forecasts must be finite".into(),
        ));
    }
    Ok(())
}

/// Symmetric MAPE in percent, M3 definition: the mean of `200 |y - f| / (|y| + |f|)`
/// (a step where both are zero counts as 0).
///
/// ```
/// use saga_ai::forecast::accuracy::smape;
/// assert_eq!(smape(&[100.0, 100.0], &[100.0, 50.0]).unwrap(), 100.0 / 3.0);
/// ```
pub fn smape(actual: &[f64], forecast: &[f64]) -> Result<f64> {
    check(actual, forecast)?;
    let sum: f64 = actual
        .iter()
        .zip(forecast)
        .map(|(y, f)| {
            let d = y.abs() + f.abs();
            if d == 0.0 {
                0.0
            } else {
                200.0 * (y - f).abs() / d
            }
        })
        .sum();
    Ok(sum / actual.len() as f64)
}

/// The in-sample mean absolute error of the seasonal naive forecast with period `period`
/// (the MASE denominator). [`AiError::NotEnoughData`] when the history has no full cycle to
/// compare, or is a pure repetition (the scale would be zero).
pub fn mase_scale(history: &[f64], period: usize) -> Result<f64> {
    let m = period.max(1);
    if history.len() <= m {
        return Err(AiError::NotEnoughData(format!(
            "MASE needs more than {m} values of history, got {}",
            history.len()
        )));
    }
    let diffs: Vec<f64> = history
        .windows(m + 1)
        .map(|w| (w[m] - w[0]).abs())
        .collect();
    let scale = diffs.iter().sum::<f64>() / diffs.len() as f64;
    if scale > 0.0 && scale.is_finite() {
        Ok(scale)
    } else {
        Err(AiError::NotEnoughData(
            "the history repeats exactly; MASE is undefined".into(),
        ))
    }
}

/// Mean absolute scaled error: the forecast's mean absolute error over `scale`
/// (see [`mase_scale`]).
pub fn mase(actual: &[f64], forecast: &[f64], scale: f64) -> Result<f64> {
    check(actual, forecast)?;
    if !(scale > 0.0 && scale.is_finite()) {
        return Err(AiError::InvalidInput(format!(
            "MASE scale must be positive, got {scale}"
        )));
    }
    let mae = actual
        .iter()
        .zip(forecast)
        .map(|(y, f)| (y - f).abs())
        .sum::<f64>()
        / actual.len() as f64;
    Ok(mae / scale)
}
