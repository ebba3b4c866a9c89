#![doc = include_str!("../README.md")]

pub mod anomaly;
pub mod assistant;
#[cfg(feature = "cli")]
pub mod cli;
pub mod error;
pub mod forecast;
pub mod fraud;
pub mod healing;
mod math;
pub mod metrics;
pub mod model;
pub mod payment;
pub mod payment_method;
pub mod recommend;

pub use error::{AiError, Result};
pub use model::{ModelMeta, SavedModel};
