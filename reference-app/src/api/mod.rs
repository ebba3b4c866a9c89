//! The HTTP API's shared pieces: problem documents, money, JSON bodies, and the services'
//! request and response types with the seed's field names.

pub mod json;
pub mod money;
pub mod order;
pub mod problem;

pub use json::ApiJson;
pub use money::Money;
pub use problem::{FieldError, Problem};
