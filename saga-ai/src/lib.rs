#![doc = include_str!("../README.md")]

pub mod error;
pub mod metrics;
pub mod model;
pub mod recommend;

pub use error::{AiError, Result};
pub use model::{ModelMeta, SavedModel};
