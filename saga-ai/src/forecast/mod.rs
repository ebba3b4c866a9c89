//! Demand forecasting and stock-out risk.
//!
//! | file | what |
//! |---|---|
//! | `forecaster.rs` | the [`DemandForecaster`] trait and its [`Forecast`] (means, intervals, deviations) |
//! | `method.rs` | the catalogue: [`Method`] builds any forecaster by name |
//! | `seasonality.rs` | 90% seasonality test and classical multiplicative decomposition |
//! | `adjusted.rs` | deseasonalise, forecast, reseasonalise (shared by the methods below) |
//! | `smoothing.rs` | simple, Holt and damped exponential smoothing |
//! | `theta.rs` | the Theta method |
//! | `naive.rs` | naive, seasonal naive, Naive2 |
//! | `intermittent.rs` | Croston and TSB for intermittent demand |
//! | `combination.rs` | merging several methods' forecasts |
//! | `accuracy.rs` | sMAPE and MASE |
//! | `m3.rs`, `backtest.rs` | the M3 data and the back-test protocol |
//! | `stockout.rs` | stock-out probability, date and reorder quantity from a forecast |
//! | `simulate.rs` | demand generators with known truth, and the stock-out evaluation |
//! | `dist.rs` | normal and count distributions |
//!
//! The method, the M3 results and the stock-out evaluation are described in `docs/ai/forecast.md`.

pub mod accuracy;
mod adjusted;
pub mod backtest;
mod combination;
pub mod dist;
mod forecaster;
mod intermittent;
pub mod m3;
mod method;
mod naive;
mod optimize;
mod seasonality;
pub mod simulate;
mod smoothing;
pub mod stockout;
mod theta;

pub use combination::{Aggregate, Combination};
pub use forecaster::{DEFAULT_LEVEL, DemandForecaster, Forecast};
pub use method::{ENSEMBLE_AGGREGATE, ENSEMBLE_MEMBERS, Method};
pub use seasonality::SeasonalIndices;
