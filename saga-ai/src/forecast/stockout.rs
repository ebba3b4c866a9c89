//! Stock-out risk from a demand forecast: the probability that demand over the replenishment
//! lead time exceeds the stock on hand, the day stock most likely runs out, and how much to
//! order to cover the lead time at a service level.
//!
//! Lead-time demand is modelled as a count with the forecast's summed mean and the variance of
//! the summed forecast error ([`Forecast::cumulative_sd`]): negative binomial when that variance
//! exceeds the mean, Poisson otherwise.
//!
//! ```
//! use saga_ai::forecast::{DemandForecaster, Method, stockout};
//! let history = [5.0, 7.0, 6.0, 4.0, 6.0, 5.0, 8.0, 6.0, 5.0, 7.0, 6.0, 5.0, 6.0, 7.0];
//! let mut model = Method::Ses.forecaster();
//! model.fit(&history, 1)?;
//! let risk = stockout::assess(&model.forecast(30)?, 40.0, 7, 0.95)?;
//! assert!(risk.probability > 0.5); // about 42 units needed in 7 days, 40 on hand
//! assert_eq!(risk.stockout_day, Some(7));
//! assert!(risk.reorder_quantity > 2.0);
//! # Ok::<(), saga_ai::AiError>(())
//! ```

use serde::{Deserialize, Serialize};

use super::dist::CountDistribution;
use super::forecaster::Forecast;
use crate::error::{AiError, Result};

/// The stock-out risk of one item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StockoutRisk {
    /// P(demand over the lead time > stock on hand).
    pub probability: f64,
    /// The expected demand over the lead time.
    pub lead_time_demand: f64,
    /// The first day (1 = the next day) by which stock has more likely than not run out, within
    /// the forecast's horizon; `None` when it lasts the whole horizon.
    pub stockout_day: Option<usize>,
    /// The stock that covers lead-time demand with probability `service_level` (order-up-to
    /// level).
    pub order_up_to: f64,
    /// What to order now: the order-up-to level minus the stock on hand, at least zero.
    pub reorder_quantity: f64,
}

/// The distribution of the demand over the first `days` steps of `forecast`.
pub fn cumulative_demand(forecast: &Forecast, days: usize) -> Result<CountDistribution> {
    if days == 0 || days > forecast.horizon() {
        return Err(AiError::InvalidInput(format!(
            "{days} days asked from a forecast of {} steps",
            forecast.horizon()
        )));
    }
    let mean: f64 = forecast.mean[..days].iter().map(|m| m.max(0.0)).sum();
    let sd = forecast.cumulative_sd[days - 1];
    Ok(CountDistribution::matching(mean, sd * sd))
}

/// Assesses stock `on_hand` against `forecast` (daily demand, at least `lead_time` steps) for a
/// replenishment `lead_time` in days and a cycle `service_level` in (0, 1).
pub fn assess(
    forecast: &Forecast,
    on_hand: f64,
    lead_time: usize,
    service_level: f64,
) -> Result<StockoutRisk> {
    if !on_hand.is_finite() {
        return Err(AiError::InvalidInput(format!(
            "stock on hand must be a finite number, got {on_hand}"
        )));
    }
    if !(service_level > 0.0 && service_level < 1.0) {
        return Err(AiError::InvalidInput(format!(
            "service level must lie strictly between 0 and 1, got {service_level}"
        )));
    }
    let during_lead_time = cumulative_demand(forecast, lead_time)?;
    let probability = 1.0 - during_lead_time.cdf(on_hand.floor());
    let mut stockout_day = None;
    for day in 1..=forecast.horizon() {
        if 1.0 - cumulative_demand(forecast, day)?.cdf(on_hand.floor()) >= 0.5 {
            stockout_day = Some(day);
            break;
        }
    }
    let order_up_to = during_lead_time.quantile(service_level);
    Ok(StockoutRisk {
        probability: probability.clamp(0.0, 1.0),
        lead_time_demand: during_lead_time.mean(),
        stockout_day,
        order_up_to,
        reorder_quantity: (order_up_to - on_hand).max(0.0),
    })
}
