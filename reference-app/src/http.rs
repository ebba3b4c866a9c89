//! The layers every service's HTTP API gets: a body size limit and a time limit on every
//! route, problem documents for unknown routes and wrong methods; and the bearer token that
//! guards the admin actions ([`admin_only`]).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::problem::Problem;

/// Largest request body accepted by default (an order of 100 lines is a few KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// How long a request may take by default until its answer starts (the body of an event
/// stream may flow longer: only its start is timed).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the app's own HTTP clients (the web front's proxy, the assistant, the load
/// generator) keep an idle connection: well under the servers' header-read timeout, which
/// closes a connection idle that long, so that a client never reuses one the server is closing.
pub const CLIENT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The routes that hold a request on purpose (long polls), with the time they get: their own
/// longest wait plus a margin. `GET /orders/{id}/wait` waits at most 60 s.
pub const LONG_POLLS: [(&str, Duration); 1] = [("/orders/{id}/wait", Duration::from_secs(70))];

/// The size and time limits of every route of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Largest request body, in bytes: a larger one is answered 413 before it is read (by its
    /// `Content-Length`) or as soon as it passes the limit (a chunked one).
    pub max_body_bytes: usize,
    /// Longest time until the answer starts, reading the request body included: past it the
    /// request is answered 408. The [`LONG_POLLS`] get their own, longer time.
    pub request_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: MAX_BODY_BYTES,
            request_timeout: REQUEST_TIMEOUT,
        }
    }
}

impl HttpLimits {
    /// The time a request to `route` (its matched path) gets.
    pub fn timeout_of(&self, route: Option<&str>) -> Duration {
        LONG_POLLS
            .iter()
            .find(|(path, _)| Some(*path) == route)
            .map_or(self.request_timeout, |(_, t)| {
                (*t).max(self.request_timeout)
            })
    }
}

/// Adds the common layers and fallbacks to a service's routes.
pub fn finish(router: Router, limits: HttpLimits) -> Router {
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
        // The extractors' own limit (a `Json` body past it is a 413 problem document) ...
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        // ... and one on the body itself, for whatever reads it otherwise (the web front's
        // proxy), so that a chunked body without a length cannot pass it either ...
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            limits.max_body_bytes,
        ))
        // ... and, outermost, a declared length past it and the time limit.
        .layer(axum::middleware::from_fn_with_state(limits, enforce))
}

/// 413: the request body is larger than the service accepts.
pub fn too_large(limit: usize) -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too-large",
        "Body too large",
        format!("request bodies are limited to {limit} bytes"),
    )
}

async fn enforce(
    State(limits): State<HttpLimits>,
    matched: Option<MatchedPath>,
    req: Request,
    next: Next,
) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        return too_large(limits.max_body_bytes).into_response();
    }
    let budget = limits.timeout_of(matched.as_ref().map(MatchedPath::as_str));
    match tokio::time::timeout(budget, next.run(req)).await {
        Ok(response) => response,
        Err(_) => Problem::new(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            "Request timeout",
            format!(
                "the request was not answered within {} s (a body sent too slowly counts)",
                budget.as_secs_f64()
            ),
        )
        .into_response(),
    }
}

/// The bearer token of the admin actions (`--admin-token`, `SAGA_ADMIN_TOKEN`): replaying and
/// discarding dead letters (the order service's routes and the assistant's confirmed
/// actions) and the payment gateway's outage switch. Its `Debug` form never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(Arc<str>);

impl AdminToken {
    /// The token, or `None` for an empty or blank one (no token: admin actions are open, as
    /// on a developer's machine).
    pub fn new(token: &str) -> Option<Self> {
        let token = token.trim();
        (!token.is_empty()).then(|| Self(Arc::from(token)))
    }

    /// Whether `headers` carry `Authorization: Bearer <this token>`. Compared in a time that
    /// does not depend on where the first difference is.
    pub fn accepts(&self, headers: &HeaderMap) -> bool {
        let Some(given) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer)
        else {
            return false;
        };
        let (a, b) = (given.as_bytes(), self.0.as_bytes());
        let mut differ = u8::from(a.len() != b.len());
        for (i, x) in b.iter().enumerate() {
            differ |= x ^ a.get(i).copied().unwrap_or(!x);
        }
        differ == 0
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

/// The credentials of `Bearer <credentials>` (the scheme in any case).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|t| !t.is_empty())
}

/// 401: an admin action without the right bearer token.
pub fn unauthorized() -> Response {
    let mut response = Problem::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "Unauthorized",
        "this admin action needs `Authorization: Bearer <token>` with the token the service \
         was started with (--admin-token or SAGA_ADMIN_TOKEN)",
    )
    .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"saga-admin\""),
    );
    response
}

/// Guards every route of `router` with `token` (none: they stay open).
pub fn admin_only<S>(router: Router<S>, token: Option<&AdminToken>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    match token {
        None => router,
        Some(token) => router.route_layer(axum::middleware::from_fn_with_state(
            token.clone(),
            require_admin,
        )),
    }
}

async fn require_admin(State(token): State<AdminToken>, req: Request, next: Next) -> Response {
    if token.accepts(req.headers()) {
        next.run(req).await
    } else {
        unauthorized()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn only_the_exact_bearer_token_is_accepted() {
        let token = AdminToken::new(" s3cret ").unwrap();
        assert!(token.accepts(&auth("Bearer s3cret")));
        assert!(token.accepts(&auth("bearer   s3cret")));
        for wrong in [
            "Bearer s3cre",
            "Bearer s3cret2",
            "Bearer S3CRET",
            "Basic s3cret",
            "s3cret",
            "Bearer ",
        ] {
            assert!(!token.accepts(&auth(wrong)), "{wrong}");
        }
        assert!(!token.accepts(&HeaderMap::new()));
        assert_eq!(AdminToken::new("  "), None);
        assert_eq!(format!("{token:?}"), "AdminToken(<redacted>)");
    }

    #[test]
    fn long_polls_get_their_own_time() {
        let limits = HttpLimits {
            max_body_bytes: 10,
            request_timeout: Duration::from_secs(2),
        };
        assert_eq!(limits.timeout_of(Some("/orders")), Duration::from_secs(2));
        assert_eq!(limits.timeout_of(None), Duration::from_secs(2));
        assert_eq!(
            limits.timeout_of(Some("/orders/{id}/wait")),
            Duration::from_secs(70)
        );
    }
}
