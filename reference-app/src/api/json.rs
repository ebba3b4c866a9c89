//! A JSON body extractor whose every rejection is a problem document.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use super::problem::Problem;

/// Like `axum::Json`, but a body that is not JSON, not of the route's shape, of the wrong
/// content type or too large is answered with a problem document that says which.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> ApiJson<T> {
    /// Decodes a request body exactly as the extractor does once the content type and the
    /// size are checked: 400 for bytes that are not JSON, 422 (naming the field) for JSON
    /// that is not of the route's shape. The fuzz target `order_request` and the property
    /// tests call this, so what they exercise is the routes' own decoding.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Problem> {
        match axum::Json::<T>::from_bytes(bytes) {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(problem_of(rejection)),
        }
    }
}

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(problem_of(rejection)),
        }
    }
}

fn problem_of(rejection: JsonRejection) -> Problem {
    use axum::http::StatusCode;
    match rejection {
        JsonRejection::JsonDataError(e) => {
            // serde's message names the field and what it expected.
            let mut p = Problem::malformed(e.body_text());
            p.status = StatusCode::UNPROCESSABLE_ENTITY.as_u16();
            p.kind = "/problems/validation".into();
            p.title = "Invalid request".into();
            p
        }
        JsonRejection::JsonSyntaxError(e) => Problem::malformed(e.body_text()),
        JsonRejection::MissingJsonContentType(_) => Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "media-type",
            "Unsupported media type",
            "send the body as JSON with `Content-Type: application/json`",
        ),
        // Past the body limit (`crate::http::finish`): the same problem as a declared length
        // past it.
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Problem::new(e.status(), "too-large", "Body too large", e.body_text())
        }
        JsonRejection::BytesRejection(e) => {
            Problem::new(e.status(), "body", "Unreadable body", e.body_text())
        }
        other => Problem::malformed(other.body_text()),
    }
}
