//! The AI service (8007): fraud screening on the saga's critical path.

use crate::context::{Running, ServiceContext};
use crate::error::AppError;

/// Starts the AI service.
pub async fn start(_ctx: ServiceContext) -> Result<Running, AppError> {
    Err(AppError::Config("the AI service is being wired".into()))
}
