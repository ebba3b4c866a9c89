//! The web front (8000): `GET /api/health` for all services, and `/api/...` routes that pass
//! requests on to the service owning them, as the seed's web UI did.
//!
//! | prefix                                  | service      |
//! |-----------------------------------------|--------------|
//! | `/api/orders...` (but `/orders/recent`) | order        |
//! | `/api/products...`, `/api/reservations` | inventory    |
//! | `/api/transactions`                     | payment      |
//! | `/api/shipments`                        | shipping     |
//! | `/api/notifications`                    | notification |
//! | `/api/metrics`, `/api/events`, `/api/orders/recent` | analytics |
//! | `/api/fraud`, `/api/analysis`, `/api/predict`, `/api/forecast`, `/api/recommendations`, `/api/anomalies`, `/api/models` | ai |

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

/// Largest request body passed on.
const MAX_BODY: usize = 1 << 20;

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
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(65))
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
        "orders" => Service::Order,
        "products" | "reservations" => Service::Inventory,
        "transactions" => Service::Payment,
        "shipments" => Service::Shipping,
        "notifications" => Service::Notification,
        "metrics" | "events" => Service::Analytics,
        "fraud" | "analysis" | "predict" | "forecast" | "recommendations" | "anomalies"
        | "models" => Service::Ai,
        _ => return None,
    })
}

/// The web front's routes.
pub fn router(web: Web) -> Router {
    Router::new()
        .route("/", get(index))
        .route(
            "/health",
            get(|| async { Json(serde_json::json!({"service": "web", "status": "healthy"})) }),
        )
        .route("/api/health", get(all_health))
        .route("/api/{*rest}", any(proxy))
        .with_state(web)
}

async fn index() -> Html<&'static str> {
    Html(include_str!("web_index.html"))
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
    let body = match axum::body::to_bytes(request.into_body(), MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                "Body too large",
                format!("request bodies are limited to {MAX_BODY} bytes"),
            )
            .into_response();
        }
    };
    let mut upstream = web.client.request(method, &url).body(body);
    for name in [header::CONTENT_TYPE, header::ACCEPT] {
        if let Some(v) = headers.get(&name) {
            upstream = upstream.header(name, v);
        }
    }
    if let Some(v) = headers.get("idempotency-key") {
        upstream = upstream.header("idempotency-key", v);
    }
    match upstream.send().await {
        Ok(r) => {
            let status = r.status();
            let passed: Vec<_> = [header::CONTENT_TYPE, header::ALLOW, header::RETRY_AFTER]
                .into_iter()
                .filter_map(|name| r.headers().get(&name).cloned().map(|v| (name, v)))
                .collect();
            let bytes = r.bytes().await.unwrap_or_default();
            let mut response = Response::new(Body::from(bytes));
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
