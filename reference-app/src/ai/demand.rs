//! Demand forecasting of one product from the units the shop sold per day, with `saga-ai`'s
//! forecast module: the method `saga-ai` recommends for daily demand
//! (`forecast::simulate::method_for`: TSB when more than a third of the days sold nothing,
//! else its ensemble of damped smoothing and Theta), a weekly period, 95% intervals, and the
//! stock-out projection of `forecast::stockout` against the available stock.
//!
//! Only complete days are fitted (today is still selling); with fewer than
//! [`MIN_HISTORY_DAYS`] of them the answer says so and forecasts nothing.

use chrono::{DateTime, Days, NaiveDate, Utc};
use saga_ai::AiError;
use saga_ai::forecast::simulate::method_for;
use saga_ai::forecast::stockout::StockoutRisk;
use saga_ai::forecast::{DEFAULT_LEVEL, Forecast, stockout};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::engine::ModelInfo;
use super::error::AiAppError;

/// Fewest complete days of sales a forecast is fitted on.
pub const MIN_HISTORY_DAYS: usize = 7;
/// The most days of sales a forecast reads (the latest).
pub const MAX_HISTORY_DAYS: usize = 365;
/// Days forecast when the request does not say.
pub const DEFAULT_HORIZON_DAYS: u32 = 14;
/// The longest horizon, in days.
pub const MAX_HORIZON_DAYS: u32 = 90;
/// Replenishment lead time the reorder quantity covers, in days.
pub const LEAD_TIME_DAYS: usize = 7;
/// Cycle service level of the reorder quantity.
pub const SERVICE_LEVEL: f64 = 0.95;
/// The seasonal period of daily sales: a week.
const PERIOD: usize = 7;

/// Whether a forecast could be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ForecastStatus {
    /// Fitted on the product's history.
    Forecast,
    /// Too few complete days of sales: nothing is forecast.
    InsufficientHistory,
}

/// The sales a forecast was made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SalesHistory {
    /// The first day read (UTC).
    pub first_day: NaiveDate,
    /// Complete days read (up to yesterday).
    pub days: u32,
    /// Units sold (confirmed orders, not cancelled later) over those days.
    pub units_sold: i64,
    /// Days among them with at least one unit sold.
    pub days_with_sales: u32,
    /// Units sold so far today (not fitted: the day is not over).
    pub today_units_sold: i64,
}

/// The forecast of one day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DayForecast {
    /// The day (UTC).
    pub date: NaiveDate,
    /// Expected units sold (at least 0).
    pub mean: f64,
    /// Lower bound of the interval at `level` (at least 0).
    pub lower: f64,
    /// Upper bound of the interval at `level`.
    pub upper: f64,
}

/// Stock against the forecast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StockOutlook {
    /// Units that can be ordered now, as the AI service projects them from the inventory's
    /// events (none when the inventory has not told it the product's stock).
    #[schema(required = true)]
    pub available: Option<i64>,
    /// The first day by which stock has more likely than not run out, within the horizon
    /// (none: it lasts, or there is no forecast or no stock figure).
    #[schema(required = true)]
    pub stockout_date: Option<NaiveDate>,
    /// Probability that demand over the lead time exceeds the available stock.
    #[schema(required = true)]
    pub stockout_probability: Option<f64>,
    /// The replenishment lead time the reorder covers, in days.
    pub lead_time_days: u32,
    /// The cycle service level the reorder aims at.
    pub service_level: f64,
    /// Stock that covers lead-time demand at the service level.
    #[schema(required = true)]
    pub order_up_to: Option<f64>,
    /// Units to order now: the order-up-to level minus the available stock, rounded up, at
    /// least 0.
    #[schema(required = true)]
    pub reorder_quantity: Option<i64>,
}

/// `GET /forecast/{product_id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DemandForecast {
    /// The product.
    pub product_id: String,
    /// Its name.
    pub product_name: String,
    /// Whether a forecast was made.
    pub status: ForecastStatus,
    /// `saga-ai`'s method that made it (`tsb`, `ensemble`); none without a forecast.
    #[schema(required = true)]
    pub method: Option<String>,
    /// What was done, or why nothing was, in a sentence.
    pub explanation: String,
    /// The sales read.
    pub history: SalesHistory,
    /// Days asked for.
    pub horizon_days: u32,
    /// Coverage of the intervals.
    pub level: f64,
    /// One entry per day from today, `horizon_days` of them (none without a forecast).
    pub daily: Vec<DayForecast>,
    /// The stock against it.
    pub stock: StockOutlook,
    /// When it was computed.
    pub generated_at: DateTime<Utc>,
}

/// What [`forecast_demand`] reads.
#[derive(Debug, Clone, PartialEq)]
pub struct DemandInput {
    /// The product.
    pub product_id: String,
    /// Its name.
    pub product_name: String,
    /// The first day the AI service observed (its history starts there).
    pub first_day: NaiveDate,
    /// Units sold per day, any order, days without sales absent (today's included).
    pub sales: Vec<(NaiveDate, i64)>,
    /// Available stock, if known.
    pub available: Option<i64>,
    /// Days to forecast (1 to [`MAX_HORIZON_DAYS`]).
    pub horizon: u32,
    /// Now.
    pub now: DateTime<Utc>,
}

/// The complete days from `first_day` (at most [`MAX_HISTORY_DAYS`], the latest) before
/// `today`, with the units of each, oldest first; and the units of `today`.
pub fn daily_series(
    first_day: NaiveDate,
    today: NaiveDate,
    sales: &[(NaiveDate, i64)],
) -> (NaiveDate, Vec<f64>, i64) {
    let days = usize::try_from((today - first_day).num_days().max(0)).unwrap_or(0);
    let skip = days.saturating_sub(MAX_HISTORY_DAYS);
    let start = first_day
        .checked_add_days(Days::new(skip as u64))
        .unwrap_or(today);
    let mut series = vec![0.0; days - skip];
    let mut today_units = 0;
    for &(day, units) in sales {
        if day == today {
            today_units += units;
        } else if day >= start && day < today {
            let i = usize::try_from((day - start).num_days()).unwrap_or(usize::MAX);
            if let Some(v) = series.get_mut(i) {
                *v += units as f64;
            }
        }
    }
    (start, series, today_units)
}

/// Forecasts `input`'s product: fits `saga-ai`'s recommended method on its complete days of
/// sales and projects its stock; answers [`ForecastStatus::InsufficientHistory`] with fewer
/// than [`MIN_HISTORY_DAYS`] of them. CPU work of about a millisecond: run it off the async
/// threads.
pub fn forecast_demand(input: &DemandInput) -> Result<DemandForecast, AiAppError> {
    fit_demand(input).map(|fit| fit.answer)
}

/// A [`DemandForecast`] with what it was made from: `saga-ai`'s forecast (at least
/// [`LEAD_TIME_DAYS`] steps; none when history is too short) and the stock-out risk (none
/// without a forecast or a stock figure). The assistant reads the totals over a horizon there.
#[derive(Debug, Clone)]
pub struct DemandFit {
    /// The answer of `GET /forecast/{product_id}`.
    pub answer: DemandForecast,
    /// The fitted forecast.
    pub forecast: Option<Forecast>,
    /// The stock-out assessment against the available stock.
    pub risk: Option<StockoutRisk>,
}

/// [`forecast_demand`], keeping the fitted forecast and the stock-out risk.
pub fn fit_demand(input: &DemandInput) -> Result<DemandFit, AiAppError> {
    let today = input.now.date_naive();
    let (start, series, today_units) = daily_series(input.first_day, today, &input.sales);
    let history = SalesHistory {
        first_day: start,
        days: u32::try_from(series.len()).unwrap_or(u32::MAX),
        units_sold: series.iter().sum::<f64>() as i64,
        days_with_sales: u32::try_from(series.iter().filter(|&&v| v > 0.0).count())
            .unwrap_or(u32::MAX),
        today_units_sold: today_units,
    };
    let mut answer = DemandForecast {
        product_id: input.product_id.clone(),
        product_name: input.product_name.clone(),
        status: ForecastStatus::InsufficientHistory,
        method: None,
        explanation: String::new(),
        history,
        horizon_days: input.horizon,
        level: DEFAULT_LEVEL,
        daily: Vec::new(),
        stock: StockOutlook {
            available: input.available,
            stockout_date: None,
            stockout_probability: None,
            lead_time_days: LEAD_TIME_DAYS as u32,
            service_level: SERVICE_LEVEL,
            order_up_to: None,
            reorder_quantity: None,
        },
        generated_at: input.now,
    };
    let insufficient = |answer: &mut DemandForecast| {
        answer.explanation = format!(
            "only {} complete day(s) of sales since {} (at least {MIN_HISTORY_DAYS} are needed); \
             {} unit(s) sold in them and {} so far today: no forecast is made",
            answer.history.days,
            answer.history.first_day,
            answer.history.units_sold,
            answer.history.today_units_sold,
        );
    };
    if series.len() < MIN_HISTORY_DAYS {
        insufficient(&mut answer);
        return Ok(DemandFit {
            answer,
            forecast: None,
            risk: None,
        });
    }
    let method = method_for(&series);
    let mut model = method.forecaster();
    let steps = (input.horizon as usize).max(LEAD_TIME_DAYS);
    let fitted = model
        .fit(&series, PERIOD)
        .and_then(|()| model.forecast(steps));
    let forecast = match fitted {
        Ok(f) => f,
        Err(AiError::NotEnoughData(_)) => {
            insufficient(&mut answer);
            return Ok(DemandFit {
                answer,
                forecast: None,
                risk: None,
            });
        }
        Err(e) => return Err(AiAppError::Scoring(e)),
    };
    answer.status = ForecastStatus::Forecast;
    answer.method = Some(method.name().to_owned());
    answer.level = forecast.level;
    let day = |k: usize| today.checked_add_days(Days::new(k as u64)).unwrap_or(today);
    answer.daily = (0..input.horizon as usize)
        .map(|k| DayForecast {
            date: day(k),
            mean: forecast.mean[k].max(0.0),
            lower: forecast.lower[k].max(0.0),
            upper: forecast.upper[k].max(0.0),
        })
        .collect();
    let zeros = series.len() - answer.history.days_with_sales as usize;
    let why = if zeros * 3 > series.len() {
        format!(
            "intermittent demand: {zeros} of {} days sold nothing",
            series.len()
        )
    } else {
        "regular demand".to_owned()
    };
    answer.explanation = format!(
        "{} ({why}) fitted on {} complete days of confirmed sales from {} ({} units), weekly \
         period; {:.0}% intervals",
        method.name(),
        series.len(),
        start,
        answer.history.units_sold,
        forecast.level * 100.0,
    );
    let mut kept = None;
    match input.available {
        Some(available) => {
            let risk = stockout::assess(&forecast, available as f64, LEAD_TIME_DAYS, SERVICE_LEVEL)
                .map_err(AiAppError::Scoring)?;
            answer.stock.stockout_date = risk
                .stockout_day
                .filter(|&d| d <= input.horizon as usize)
                .map(|d| day(d - 1));
            answer.stock.stockout_probability = Some(risk.probability);
            answer.stock.order_up_to = Some(risk.order_up_to);
            answer.stock.reorder_quantity = Some(risk.reorder_quantity.ceil() as i64);
            kept = Some(risk);
        }
        None => answer
            .explanation
            .push_str("; the available stock is unknown, so no stock-out projection"),
    }
    Ok(DemandFit {
        answer,
        forecast: Some(forecast),
        risk: kept,
    })
}

/// Days held out by [`forecast_info`]'s measure.
const HELD_OUT_DAYS: usize = 7;

/// Mean absolute error over the last [`HELD_OUT_DAYS`] days of `series` of the method fitted
/// on the days before them, and of the seasonal naive forecast (the same weekday a week
/// earlier); `None` when the series is too short to hold a week out.
fn last_week_errors(series: &[f64]) -> Result<Option<(f64, f64)>, AiError> {
    if series.len() < MIN_HISTORY_DAYS + HELD_OUT_DAYS {
        return Ok(None);
    }
    let (train, test) = series.split_at(series.len() - HELD_OUT_DAYS);
    let mut model = method_for(train).forecaster();
    model.fit(train, PERIOD)?;
    let forecast = model.forecast(HELD_OUT_DAYS)?;
    let week_before = &train[train.len() - HELD_OUT_DAYS..];
    let mae = |pred: &mut dyn Iterator<Item = f64>| {
        test.iter()
            .zip(pred)
            .map(|(y, f)| (y - f).abs())
            .sum::<f64>()
            / HELD_OUT_DAYS as f64
    };
    Ok(Some((
        mae(&mut forecast.mean.iter().map(|m| m.max(0.0))),
        mae(&mut week_before.iter().copied()),
    )))
}

/// The demand forecaster's metadata for `GET /models`: it is fitted anew on every request, so
/// its held-out measure is taken now, on each product of `series` (complete days of sales,
/// oldest first) with at least two weeks of history: the last week held out, the method fitted
/// on the days before it, against the seasonal naive forecast.
pub fn forecast_info(series: &[Vec<f64>], now: DateTime<Utc>) -> Result<ModelInfo, AiAppError> {
    let mut measured = 0usize;
    let (mut ours, mut naive) = (0.0, 0.0);
    for s in series {
        if let Some((m, n)) = last_week_errors(s).map_err(AiAppError::Scoring)? {
            measured += 1;
            ours += m;
            naive += n;
        }
    }
    let days: usize = series.iter().map(Vec::len).sum();
    let (metrics, evaluation) = if measured == 0 {
        (
            BTreeMap::new(),
            format!(
                "not measured: no product has {} complete days of sales yet (a week to hold out \
                 and {MIN_HISTORY_DAYS} to fit on); the methods' accuracy on the M3 competition \
                 series and the stock-out evaluation are in docs/ai/forecast.md",
                MIN_HISTORY_DAYS + HELD_OUT_DAYS
            ),
        )
    } else {
        (
            BTreeMap::from([
                ("mae_last_week".to_owned(), ours / measured as f64),
                (
                    "seasonal_naive_mae_last_week".to_owned(),
                    naive / measured as f64,
                ),
                ("products_measured".to_owned(), measured as f64),
            ]),
            format!(
                "measured now on {measured} product(s): the last {HELD_OUT_DAYS} complete days \
                 held out, the method fitted on the days before; mean absolute error in units a \
                 day, averaged over products, against the seasonal naive forecast (the same \
                 weekday a week earlier)"
            ),
        )
    };
    Ok(ModelInfo {
        name: "demand_forecast".to_owned(),
        kind: "forecast.tsb_or_ensemble".to_owned(),
        format_version: None,
        // Fitted on each request: the time of this measure is the only training time.
        trained_at: (measured > 0).then_some(now),
        training_rows: days,
        training_data: format!(
            "units sold per product per day (confirmed orders not cancelled later), from the \
             order events the AI service saw: {} product(s), {days} product-day(s), the latest \
             {MAX_HISTORY_DAYS} days at most; fitted per product on each request (TSB when more \
             than a third of the days sold nothing, else the mean of damped smoothing and Theta)",
            series.len()
        ),
        metrics,
        evaluation,
        file: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-03-31T15:00:00Z")
            .unwrap()
            .to_utc()
    }

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn input(first_day: &str, sales: Vec<(NaiveDate, i64)>, available: Option<i64>) -> DemandInput {
        DemandInput {
            product_id: "p-1".into(),
            product_name: "Lamp".into(),
            first_day: day(first_day),
            sales,
            available,
            horizon: 14,
            now: now(),
        }
    }

    #[test]
    fn the_series_holds_complete_days_and_counts_today_apart() {
        let sales = vec![
            (day("2025-03-28"), 2),
            (day("2025-03-30"), 3),
            (day("2025-03-30"), 1),
            (day("2025-03-31"), 5),
            (day("2025-01-01"), 9),
        ];
        let (start, series, today) = daily_series(day("2025-03-27"), day("2025-03-31"), &sales);
        assert_eq!(start, day("2025-03-27"));
        assert_eq!(series, [0.0, 2.0, 0.0, 4.0]);
        assert_eq!(today, 5);
        let (start, series, _) = daily_series(day("2020-01-01"), day("2025-03-31"), &[]);
        assert_eq!(series.len(), MAX_HISTORY_DAYS);
        assert_eq!(start, day("2024-03-31"));
    }

    #[test]
    fn a_short_history_forecasts_nothing_and_says_so() {
        let f = forecast_demand(&input(
            "2025-03-29",
            vec![(day("2025-03-30"), 3), (day("2025-03-31"), 2)],
            Some(10),
        ))
        .unwrap();
        assert_eq!(f.status, ForecastStatus::InsufficientHistory);
        assert_eq!(f.method, None);
        assert!(f.daily.is_empty());
        assert_eq!((f.history.days, f.history.units_sold), (2, 3));
        assert_eq!(f.history.today_units_sold, 2);
        assert_eq!(f.stock.available, Some(10));
        assert_eq!(f.stock.reorder_quantity, None);
        assert!(f.explanation.contains("only 2 complete day(s)"), "{f:?}");
    }

    #[test]
    fn regular_sales_get_the_ensemble_and_a_stockout_date() {
        // Five a day for four weeks, 30 units left: out in about six days.
        let sales: Vec<(NaiveDate, i64)> = (0..28)
            .map(|k| (day("2025-03-03") + Days::new(k), 5 + (k % 3) as i64 - 1))
            .collect();
        let f = forecast_demand(&input("2025-03-03", sales, Some(30))).unwrap();
        assert_eq!(f.status, ForecastStatus::Forecast);
        assert_eq!(f.method.as_deref(), Some("ensemble"));
        assert_eq!(f.daily.len(), 14);
        assert_eq!(f.daily[0].date, day("2025-03-31"));
        for d in &f.daily {
            assert!(d.lower <= d.mean && d.mean <= d.upper, "{d:?}");
            assert!((3.0..7.0).contains(&d.mean), "{d:?}");
        }
        let out = f.stock.stockout_date.expect("runs out within the horizon");
        assert!(
            (day("2025-04-04")..=day("2025-04-08")).contains(&out),
            "{out}"
        );
        assert!(f.stock.stockout_probability.unwrap() > 0.5);
        // Seven days of about five units, at 95%: order well above 35 - 30.
        assert!(f.stock.reorder_quantity.unwrap() >= 5, "{:?}", f.stock);
    }

    #[test]
    fn intermittent_sales_get_tsb_and_unknown_stock_is_said() {
        let sales: Vec<(NaiveDate, i64)> = (0..21)
            .filter(|k| k % 5 == 0)
            .map(|k| (day("2025-03-10") + Days::new(k), 2))
            .collect();
        let f = forecast_demand(&input("2025-03-10", sales, None)).unwrap();
        assert_eq!(f.method.as_deref(), Some("tsb"));
        assert!(f.explanation.contains("intermittent"), "{}", f.explanation);
        assert!(f.explanation.contains("stock is unknown"));
        assert_eq!(f.stock.stockout_date, None);
        assert!(f.daily.iter().all(|d| d.mean > 0.0 && d.mean < 2.0));
    }

    #[test]
    fn the_forecaster_is_measured_on_a_held_out_week_when_there_is_one() {
        let weekly: Vec<f64> = (0..35)
            .map(|d| [2.0, 3.0, 4.0, 5.0, 6.0, 9.0, 12.0][d % 7])
            .collect();
        let info = forecast_info(&[weekly, vec![1.0; 10]], now()).unwrap();
        assert_eq!(info.metrics["products_measured"], 1.0);
        assert!(
            info.metrics["mae_last_week"] < 2.0,
            "a plain weekly pattern is learnt: {:?}",
            info.metrics
        );
        assert_eq!(info.training_rows, 45);
        assert_eq!(info.trained_at, Some(now()));
        let short = forecast_info(&[vec![1.0; 10]], now()).unwrap();
        assert!(short.metrics.is_empty() && short.evaluation.starts_with("not measured"));
        assert_eq!(short.trained_at, None);
    }
}
