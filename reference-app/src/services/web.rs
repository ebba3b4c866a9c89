//! The web front (8000): `GET /api/health` for all services, and `/api/...` routes that pass
//! requests on to the service owning them, as the seed's web UI did.
//!
//! | prefix                                  | service      |
//! |-----------------------------------------|--------------|
//! | `/api/orders...` (but `/orders/recent`), `/api/dead-letters...` | order |
//! | `/api/products...`, `/api/reservations` | inventory    |
//! | `/api/transactions`                     | payment      |
//! | `/api/shipments`                        | shipping     |
//! | `/api/notifications`                    | notification |
//! | `/api/metrics`, `/api/events`, `/api/orders/recent` | analytics |
//! | `/api/fraud`, `/api/analysis`, `/api/predict`, `/api/forecast`, `/api/recommendations`, `/api/anomalies`, `/api/models`, `/api/chat`, `/api/self-healing` | ai |

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use serde::Serialize;

use crate::api::problem::Problem;
use crate::cli::Upstreams;
use crate::topology::Service;

/// How long an upstream has to answer a request (the long polls of `/orders/{id}/wait` last
/// up to 60 s); an event stream may last longer, but no read of it may take this long (its
/// keep-alive comments come every 15 s).
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(65);

/// Where each service is.
#[derive(Debug, Clone)]
pub struct Web {
    upstreams: BTreeMap<Service, String>,
    client: reqwest::Client,
}

impl Web {
    /// A web front for these upstreams.
    pub fn new(upstreams: &Upstreams) -> Self {
        let map = [
            (Service::Order, &upstreams.order_url),
            (Service::Inventory, &upstreams.inventory_url),
            (Service::Payment, &upstreams.payment_url),
            (Service::Shipping, &upstreams.shipping_url),
            (Service::Notification, &upstreams.notification_url),
            (Service::Analytics, &upstreams.analytics_url),
            (Service::Ai, &upstreams.ai_url),
        ]
        .into_iter()
        .map(|(s, u)| (s, u.trim_end_matches('/').to_owned()))
        .collect();
        // No overall timeout on the client: an event stream lasts minutes. Each request gets
        // one (`proxy`) unless it asks for an event stream; a stalled read ends any.
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .read_timeout(UPSTREAM_TIMEOUT)
            .pool_idle_timeout(crate::http::CLIENT_IDLE_TIMEOUT)
            .build()
            .unwrap_or_default();
        Self {
            upstreams: map,
            client,
        }
    }
}

/// The service that owns a path (without the `/api` prefix).
pub fn owner_of(path: &str) -> Option<Service> {
    let trimmed = path.trim_start_matches('/');
    if trimmed == "orders/recent" {
        return Some(Service::Analytics);
    }
    let first = trimmed.split('/').next().unwrap_or("");
    Some(match first {
        "orders" | "dead-letters" => Service::Order,
        "products" | "reservations" => Service::Inventory,
        "transactions" => Service::Payment,
        "shipments" => Service::Shipping,
        "notifications" => Service::Notification,
        "metrics" | "events" => Service::Analytics,
        "fraud" | "analysis" | "predict" | "forecast" | "recommendations" | "anomalies"
        | "models" | "chat" | "self-healing" => Service::Ai,
        _ => return None,
    })
}

/// The web front's routes.
pub fn router(web: Web) -> Router {
    Router::new()
        .route("/", get(index))
        .route(
            "/app.js",
            get(|| async { asset("text/javascript", APP_JS) }),
        )
        .route("/app.css", get(|| async { asset("text/css", APP_CSS) }))
        .route(
            "/health",
            get(|| async { Json(serde_json::json!({"service": "web", "status": "healthy"})) }),
        )
        .route("/api/health", get(all_health))
        .route("/api/{*rest}", any(proxy))
        .with_state(web)
}

/// The dashboard (`reference-app/dashboard`): plain HTML, JavaScript and CSS, compiled into
/// the binary; it talks to the `/api` routes only.
const INDEX_HTML: &str = include_str!("../../dashboard/index.html");
const APP_JS: &str = include_str!("../../dashboard/app.js");
const APP_CSS: &str = include_str!("../../dashboard/app.css");

async fn index() -> Html<&'static str> {
    Html(INDEX_HTML)
}

/// A file of the dashboard, as `media` in UTF-8; browsers check for a newer one each time.
fn asset(media: &str, text: &'static str) -> Response {
    let mut response = Response::new(Body::from(text));
    if let Ok(v) = HeaderValue::from_str(&format!("{media}; charset=utf-8")) {
        response.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `GET /api/health`: each service's health.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AllHealth {
    /// `healthy` if every service is.
    pub status: &'static str,
    /// Per service: `healthy` or what went wrong.
    pub services: BTreeMap<String, String>,
}

async fn all_health(State(web): State<Web>) -> Json<AllHealth> {
    let checks = web.upstreams.iter().map(|(svc, url)| {
        let client = web.client.clone();
        let url = format!("{url}/health");
        async move {
            let status = match client
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => "healthy".to_owned(),
                Ok(r) => format!("unhealthy ({})", r.status()),
                Err(e) if e.is_timeout() => "unreachable (timeout)".to_owned(),
                Err(_) => "unreachable".to_owned(),
            };
            (svc.name().to_owned(), status)
        }
    });
    let mut services: BTreeMap<String, String> = futures_util::future::join_all(checks)
        .await
        .into_iter()
        .collect();
    services.insert("web".into(), "healthy".into());
    let status = if services.values().all(|s| s == "healthy") {
        "healthy"
    } else {
        "degraded"
    };
    Json(AllHealth { status, services })
}

async fn proxy(State(web): State<Web>, request: Request) -> Response {
    let path = request
        .uri()
        .path()
        .strip_prefix("/api")
        .unwrap_or("")
        .to_owned();
    let Some(service) = owner_of(&path) else {
        return Problem::not_found("route", format!("/api{path}")).into_response();
    };
    let Some(base) = web.upstreams.get(&service) else {
        return Problem::not_found("route", format!("/api{path}")).into_response();
    };
    let query = request
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let url = format!("{base}{path}{query}");
    let method = request.method().clone();
    let headers = request.headers().clone();
    // The body is limited by the layer every route has (`crate::http::finish`): reading past
    // that limit fails here.
    let body = match axum::body::to_bytes(request.into_body(), usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            return Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                "Body too large",
                format!("the request body could not be read within this service's limit: {e}"),
            )
            .into_response();
        }
    };
    let event_stream = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    let mut upstream = web.client.request(method, &url).body(body);
    if !event_stream {
        upstream = upstream.timeout(UPSTREAM_TIMEOUT);
    }
    // The admin actions' bearer token goes on to the service that checks it.
    for name in [header::CONTENT_TYPE, header::ACCEPT, header::AUTHORIZATION] {
        if let Some(v) = headers.get(&name) {
            upstream = upstream.header(name, v);
        }
    }
    // The idempotency key, and the caller's W3C trace context.
    for name in ["idempotency-key", "traceparent", "tracestate"] {
        if let Some(v) = headers.get(name) {
            upstream = upstream.header(name, v);
        }
    }
    match upstream.send().await {
        Ok(r) => {
            let status = r.status();
            let passed: Vec<_> = [
                header::CONTENT_TYPE,
                header::ALLOW,
                header::RETRY_AFTER,
                header::CACHE_CONTROL,
                header::WWW_AUTHENTICATE,
            ]
            .into_iter()
            .filter_map(|name| r.headers().get(&name).cloned().map(|v| (name, v)))
            .collect();
            // Passed on as it arrives: an event stream is never held back.
            let mut response = Response::new(Body::from_stream(r.bytes_stream()));
            *response.status_mut() = status;
            for (name, value) in passed {
                response.headers_mut().insert(name, value);
            }
            response
        }
        Err(e) => {
            tracing::warn!(%url, error = %e, "web: upstream unreachable");
            let mut p = Problem::new(
                StatusCode::BAD_GATEWAY,
                "upstream",
                "Service unreachable",
                format!("the {service} service did not answer"),
            )
            .into_response();
            p.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            p
        }
    }
}
