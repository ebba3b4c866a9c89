//! The services' OpenAPI 3.1 documents, served by every service at `GET /openapi.json`.
//!
//! Each document lists the routes the service's router answers, with their parameters, request
//! bodies and every status a handler can answer, so that a client or a schema-driven tester
//! (schemathesis) can hold the service to it. Besides its own routes every service answers
//! `GET /health`, `GET /metrics/prometheus` (Prometheus text) and `GET /openapi.json`.
//!
//! Error answers are RFC 9457 problem documents ([`Problem`], `application/problem+json`).
//! Unknown routes (404) and wrong methods (405) get one too; they belong to no operation, so
//! they are not listed under any.
//!
//! The web front documents its own routes (`/`, `/health`, `/api/health`) and, under `/api`,
//! every route its proxy passes on: the union of the other services' routes that
//! [`owner_of`] sends to them, each with the 502 the proxy
//! answers when the owner does not.
//!
//! Object schemas are closed (`additionalProperties: false`): an answer with a field the
//! document does not name breaks the document, as a missing one does.

mod operations;
mod schemas;

use axum::Router;
use axum::body::Bytes;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use utoipa::ToSchema;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{HttpMethod, Operation, OperationBuilder, PathItem};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Paths, Ref,
    ResponseBuilder,
};

use crate::api::problem::{PROBLEM_JSON, Problem};
use crate::services::web::owner_of;
use crate::topology::Service;
use operations::{Op, operations};
use schemas::Schemas;

/// Where every service serves its document.
pub const PATH: &str = "/openapi.json";

/// The media type of JSON bodies.
const JSON: &str = "application/json";

/// The OpenAPI document of `service`'s HTTP API.
pub fn document(service: Service) -> OpenApi {
    let mut schemas = Schemas::default();
    let ops = operations(service, &mut schemas);
    let mut paths = paths_of(ops);
    if service == Service::Web {
        for upstream in Service::ALL.into_iter().filter(|s| *s != Service::Web) {
            proxied(upstream, &mut paths, &mut schemas);
        }
    }
    let components = ComponentsBuilder::new()
        .schemas_from_iter(schemas.closed())
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title(format!("reference-app {service} service"))
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(description(service)))
                .build(),
        )
        .paths(paths)
        .components(Some(components))
        .build()
}

/// `GET /openapi.json`: `service`'s document.
pub fn router(service: Service) -> Router {
    let body = document(service).to_json().map(Bytes::from);
    if let Err(e) = &body {
        tracing::error!(%service, error = %e, "the OpenAPI document does not serialise");
    }
    let body = body.ok();
    Router::new().route(
        PATH,
        get(move || {
            let body = body.clone();
            async move {
                match body {
                    Some(text) => ([(header::CONTENT_TYPE, JSON)], text).into_response(),
                    None => Problem::internal().into_response(),
                }
            }
        }),
    )
}

fn description(service: Service) -> String {
    let what = match service {
        Service::Web => {
            "The web front: the dashboard, the health of every service, and under `/api` the \
             routes of the other services, passed on to the service that owns them \
             (`/api/orders/recent` to analytics, other `/api/orders...` to order)."
        }
        Service::Order => "Orders and the order saga.",
        Service::Inventory => "Products and stock reservations.",
        Service::Payment => "Charges and refunds through the simulated payment gateway.",
        Service::Shipping => "Shipments.",
        Service::Notification => "Simulated e-mails and text messages, one per customer event.",
        Service::Analytics => "Business figures and event statistics, built from the event log.",
        Service::Ai => {
            "Fraud screening and order analysis, payment-success prediction, demand forecasts, \
             product recommendations, saga anomalies and the models' metadata."
        }
    };
    format!(
        "{what} Errors are RFC 9457 problem documents (`application/problem+json`), unknown \
         routes (404) and wrong methods (405) included."
    )
}

// ---------------------------------------------------------------------------------------
// Building the document.

fn paths_of(ops: Vec<Op>) -> Paths {
    let mut paths = Paths::new();
    for op in ops {
        let mut operation = OperationBuilder::new()
            .operation_id(Some(op.id))
            .summary(Some(op.summary))
            .parameters((!op.params.is_empty()).then_some(op.params))
            .request_body(op.body);
        let (status, reply) = op.ok;
        operation = operation.response(
            status.to_string(),
            ResponseBuilder::new().description(op.summary).content(
                reply.media,
                ContentBuilder::new().schema(Some(reply.schema)).build(),
            ),
        );
        // Every route has the body size and time limits (`crate::http::finish`); the admin
        // actions need the bearer token when the service has one.
        let mut errors: std::collections::BTreeSet<u16> = op.errors.iter().copied().collect();
        errors.extend([408, 413]);
        if ADMIN_OPERATIONS.contains(&op.id) {
            errors.insert(401);
        }
        for status in errors {
            let mut response = problem_response(status);
            if status == 401 {
                response = response.header(
                    "WWW-Authenticate",
                    HeaderBuilder::new()
                        .schema(ObjectBuilder::new().schema_type(Type::String))
                        .description(Some("`Bearer realm=\"saga-admin\"`"))
                        .build(),
                );
            }
            operation = operation.response(status.to_string(), response);
        }
        if op.path == crate::metrics::PATH {
            // The encoder's failure is plain text, not a problem document.
            operation = operation.response(
                "500",
                ResponseBuilder::new()
                    .description("The metrics could not be rendered")
                    .content(
                        "text/plain",
                        ContentBuilder::new()
                            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                            .build(),
                    ),
            );
        }
        add_operation(&mut paths, op.path, op.method, operation.build());
    }
    paths
}

/// The operations that need `Authorization: Bearer <token>` when the service was started with
/// `--admin-token` (`crate::http::admin_only`; the chat's confirmed actions).
pub const ADMIN_OPERATIONS: [&str; 5] = [
    "replay_dead_letter",
    "discard_dead_letter",
    "start_gateway_outage",
    "end_gateway_outage",
    "chat",
];

fn add_operation(paths: &mut Paths, path: &str, method: HttpMethod, operation: Operation) {
    match paths.paths.get_mut(path) {
        Some(item) => item.merge_operations(PathItem::new(method, operation)),
        None => {
            paths
                .paths
                .insert(path.to_owned(), PathItem::new(method, operation));
        }
    }
}

/// Adds `upstream`'s routes that the web front's proxy passes on, under `/api`.
fn proxied(upstream: Service, paths: &mut Paths, schemas: &mut Schemas) {
    let doc = document(upstream);
    if let Some(components) = doc.components {
        schemas.0.extend(components.schemas);
    }
    for (path, item) in doc.paths.paths {
        if owner_of(&path) != Some(upstream) {
            continue;
        }
        let api_path = format!("/api{path}");
        let operations = [
            (HttpMethod::Get, item.get),
            (HttpMethod::Post, item.post),
            (HttpMethod::Put, item.put),
            (HttpMethod::Delete, item.delete),
            (HttpMethod::Patch, item.patch),
        ];
        for (method, operation) in operations {
            let Some(mut operation) = operation else {
                continue;
            };
            operation.operation_id = operation
                .operation_id
                .map(|id| format!("api_{}_{id}", upstream.name()));
            let responses = &mut operation.responses.responses;
            responses.insert("502".into(), unreachable_response().into());
            add_operation(paths, &api_path, method, operation);
        }
    }
}

/// The proxy's 502, with the `Retry-After` it sends.
fn unreachable_response() -> ResponseBuilder {
    problem_response(502).header(
        "Retry-After",
        HeaderBuilder::new()
            .schema(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0)),
            )
            .description(Some("Seconds to wait before trying again"))
            .build(),
    )
}

fn problem_response(status: u16) -> ResponseBuilder {
    ResponseBuilder::new()
        .description(problem_description(status))
        .content(
            PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(Problem::name())))
                .build(),
        )
}

fn problem_description(status: u16) -> &'static str {
    match status {
        400 => {
            "Bad request: an id that is not a UUID, a bad query parameter or header, or a body \
             that is not JSON"
        }
        401 => {
            "An admin action without `Authorization: Bearer <token>` (the token the service \
             was started with: --admin-token or SAGA_ADMIN_TOKEN)"
        }
        404 => "No such resource",
        408 => "The request was not answered within the service's time limit (30 s by default)",
        409 => "The resource is not in a state that allows this (a dead letter not pending)",
        413 => "The body is larger than the service accepts (64 KiB by default)",
        415 => "The body is not sent as `application/json`",
        422 => "The body is JSON, but not of the route's shape or its values are not acceptable",
        500 => "A fault of the service; the details are in its log",
        502 => "The service that owns the route did not answer",
        503 => "The service cannot reach its storage; retry shortly",
        _ => "An error",
    }
}
