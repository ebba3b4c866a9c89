//! The layers every service's HTTP API gets: a body limit, problem documents for unknown
//! routes and wrong methods, and request tracing.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use crate::api::problem::Problem;

/// Largest request body accepted (an order of 100 lines is a few KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Adds the common layers and fallbacks to a service's routes.
pub fn finish(router: Router) -> Router {
    router
        .fallback(|uri: axum::http::Uri| async move {
            Problem::not_found("route", uri.path()).into_response()
        })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
                "this route does not accept that HTTP method",
            )
            .into_response()
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}
