#![doc = include_str!("../README.md")]

pub mod error;
pub mod fraud;
pub mod metrics;
pub mod model;

pub use error::{AiError, Result};
pub use model::{ModelMeta, SavedModel};
