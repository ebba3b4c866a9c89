//! The catalogue of methods, by name, each building a fresh [`DemandForecaster`].

use serde::{Deserialize, Serialize};

use super::adjusted::Deseasonalised;
use super::combination::{Aggregate, Combination};
use super::forecaster::DemandForecaster;
use super::intermittent::{Intermittent, Variant};
use super::naive::{RandomWalk, SeasonalNaive};
use super::smoothing::{ExpSmoothing, Trend};
use super::theta::ThetaCore;

/// A forecasting method. The seasonal ones (`Naive2`, the smoothing methods, `Theta` and the
/// combinations) test for seasonality at 90% and work on the seasonally adjusted series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// The last value, repeated.
    Naive,
    /// The value one cycle back.
    SeasonalNaive,
    /// Naive on the seasonally adjusted series (the M3 benchmark).
    Naive2,
    /// Simple exponential smoothing.
    Ses,
    /// Holt's linear trend.
    Holt,
    /// Damped trend exponential smoothing.
    Damped,
    /// The Theta method.
    Theta,
    /// Croston's method for intermittent demand.
    Croston,
    /// TSB for intermittent demand.
    Tsb,
    /// The M3 "Comb S-H-D" benchmark: the mean of SES, Holt and damped.
    Shd,
    /// Our combination: the members and merge chosen on M3 validation windows (see
    /// [`ENSEMBLE_MEMBERS`]).
    Ensemble,
}

/// The members of [`Method::Ensemble`].
pub const ENSEMBLE_MEMBERS: [Method; 2] = [Method::Damped, Method::Theta];
/// How [`Method::Ensemble`] merges its members.
pub const ENSEMBLE_AGGREGATE: Aggregate = Aggregate::Mean;

impl Method {
    /// Every method, in table order.
    pub const ALL: [Method; 11] = [
        Method::Naive,
        Method::SeasonalNaive,
        Method::Naive2,
        Method::Ses,
        Method::Holt,
        Method::Damped,
        Method::Theta,
        Method::Croston,
        Method::Tsb,
        Method::Shd,
        Method::Ensemble,
    ];

    /// The method's short name.
    pub fn name(self) -> &'static str {
        match self {
            Method::Naive => "naive",
            Method::SeasonalNaive => "snaive",
            Method::Naive2 => "naive2",
            Method::Ses => "ses",
            Method::Holt => "holt",
            Method::Damped => "damped",
            Method::Theta => "theta",
            Method::Croston => "croston",
            Method::Tsb => "tsb",
            Method::Shd => "comb-shd",
            Method::Ensemble => "ensemble",
        }
    }

    /// The method named `name` (as [`Method::name`] prints it).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// A fresh, unfitted forecaster of this method.
    pub fn forecaster(self) -> Box<dyn DemandForecaster> {
        // Both member lists below are non-empty constants.
        let combo = |name, members: &[Method], agg| -> Box<dyn DemandForecaster> {
            Box::new(Combination::of(name, members, agg))
        };
        match self {
            Method::Naive => Box::new(Deseasonalised::plain("naive", RandomWalk::default())),
            Method::SeasonalNaive => Box::new(SeasonalNaive::default()),
            Method::Naive2 => Box::new(Deseasonalised::new("naive2", RandomWalk::default())),
            Method::Ses => Box::new(Deseasonalised::new("ses", ExpSmoothing::new(Trend::None))),
            Method::Holt => Box::new(Deseasonalised::new(
                "holt",
                ExpSmoothing::new(Trend::Linear),
            )),
            Method::Damped => Box::new(Deseasonalised::new(
                "damped",
                ExpSmoothing::new(Trend::Damped),
            )),
            Method::Theta => Box::new(Deseasonalised::new("theta", ThetaCore::new())),
            Method::Croston => Box::new(Intermittent::new(Variant::Croston)),
            Method::Tsb => Box::new(Intermittent::new(Variant::Tsb)),
            Method::Shd => combo(
                "comb-shd",
                &[Method::Ses, Method::Holt, Method::Damped],
                Aggregate::Mean,
            ),
            Method::Ensemble => combo("ensemble", &ENSEMBLE_MEMBERS, ENSEMBLE_AGGREGATE),
        }
    }
}
