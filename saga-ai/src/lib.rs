#![doc = include_str!("../README.md")]

pub mod anomaly;
pub mod error;
pub mod forecast;
pub mod fraud;
pub mod metrics;
pub mod model;
pub mod payment;
pub mod recommend;

pub use error::{AiError, Result};
pub use model::{ModelMeta, SavedModel};
