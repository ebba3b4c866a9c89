//! Each service's operations: path, method, parameters, body, and every status its handler
//! answers.

use utoipa::openapi::path::{HttpMethod, Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::{RequestBody, RequestBodyBuilder};
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, KnownFormat, Object, ObjectBuilder, Schema, SchemaFormat,
    Type,
};
use utoipa::openapi::{ContentBuilder, RefOr, Required};

use super::schemas::Schemas;
use super::{JSON, PATH};
use crate::ai::demand::{DemandForecast, MAX_HORIZON_DAYS};
use crate::ai::{Assessment, ModelInfo};
use crate::api::order::{CreateOrderRequest, OrderResponse, OrderStatus};
use crate::services::ai::{AnalysisResponse, PaymentSuccessRequest, PaymentSuccessResponse};
use crate::services::ai_insights::{AnomaliesResponse, MAX_LIMIT, RecommendationsResponse};
use crate::services::analytics::{
    EventStats, MAX_SERIES_MINUTES, MetricsResponse, RecentOrder, TimeseriesResponse,
};
use crate::services::assistant::{ChatRequest, ChatResponse};
use crate::services::common::Health;
use crate::services::inventory::{ProductResponse, ReservationResponse};
use crate::services::notification::NotificationResponse;
use crate::services::order::{
    DeadLetterResponse, DeadLetterStatusFilter, SagaLogResponse, WaitResponse,
};
use crate::services::order_stats::OrderStatsResponse;
use crate::services::payment::{GatewayStatus, LatencyRequest, OutageRequest, TransactionResponse};
use crate::services::shipping::ShipmentResponse;
use crate::services::web::AllHealth;
use crate::topology::Service;

/// `service`'s operations, `/health`, `/metrics/prometheus` and `/openapi.json` included.
pub(super) fn operations(service: Service, schemas: &mut Schemas) -> Vec<Op> {
    let mut ops = common_ops(service, schemas);
    ops.extend(match service {
        Service::Web => web_ops(schemas),
        Service::Order => order_ops(schemas),
        Service::Inventory => inventory_ops(schemas),
        Service::Payment => payment_ops(schemas),
        Service::Shipping => shipping_ops(schemas),
        Service::Notification => notification_ops(schemas),
        Service::Analytics => analytics_ops(schemas),
        Service::Ai => ai_ops(schemas),
    });
    ops
}

/// One operation of a service's API.
pub(super) struct Op {
    pub(super) method: HttpMethod,
    pub(super) path: &'static str,
    pub(super) id: &'static str,
    pub(super) summary: &'static str,
    pub(super) params: Vec<Parameter>,
    pub(super) body: Option<RequestBody>,
    pub(super) ok: (u16, Reply),
    /// The problem statuses the handler can answer.
    pub(super) errors: &'static [u16],
}

impl Op {
    fn get(path: &'static str, id: &'static str, summary: &'static str, ok: Reply) -> Self {
        Self {
            method: HttpMethod::Get,
            path,
            id,
            summary,
            params: Vec::new(),
            body: None,
            ok: (200, ok),
            errors: &[],
        }
    }

    fn params(mut self, params: impl IntoIterator<Item = Parameter>) -> Self {
        self.params.extend(params);
        self
    }

    fn errors(mut self, errors: &'static [u16]) -> Self {
        self.errors = errors;
        self
    }
}

/// A success answer's body: its media type and schema.
pub(super) struct Reply {
    pub(super) media: &'static str,
    pub(super) schema: RefOr<Schema>,
}

impl Reply {
    /// A JSON document of `schema`.
    fn json(schema: RefOr<Schema>) -> Self {
        Self {
            media: JSON,
            schema,
        }
    }

    /// Text of the media type `media`.
    fn text(media: &'static str) -> Self {
        Self {
            media,
            schema: ObjectBuilder::new().schema_type(Type::String).into(),
        }
    }
}

/// Reads that touch the database.
const READ: &[u16] = &[500, 503];
/// Reads of a resource by an id that must be a UUID.
const READ_BY_ID: &[u16] = &[400, 404, 500, 503];
/// Writes that take a JSON body.
const WRITE: &[u16] = &[400, 413, 415, 422, 500, 503];

/// `/health`, `/metrics/prometheus` and `/openapi.json`.
fn common_ops(service: Service, schemas: &mut Schemas) -> Vec<Op> {
    let health = if service == Service::Web {
        Op::get(
            "/health",
            "health",
            "The web front is up",
            Reply::json(web_health().into()),
        )
    } else {
        Op::get(
            "/health",
            "health",
            "Whether the service and its database answer",
            Reply::json(schemas.of::<Health>()),
        )
        .errors(&[503])
    };
    vec![
        health,
        Op::get(
            crate::metrics::PATH,
            "prometheus_metrics",
            "The service's metrics in the Prometheus text format 0.0.4",
            Reply::text("text/plain"),
        ),
        Op::get(
            PATH,
            "openapi",
            "This document",
            Reply::json(openapi_schema().into()),
        )
        .errors(&[500]),
    ]
}

fn web_ops(schemas: &mut Schemas) -> Vec<Op> {
    vec![
        Op::get("/", "dashboard", "The dashboard", Reply::text("text/html")),
        Op::get(
            "/app.js",
            "dashboard_script",
            "The dashboard's script",
            Reply::text("text/javascript"),
        ),
        Op::get(
            "/app.css",
            "dashboard_style",
            "The dashboard's style sheet",
            Reply::text("text/css"),
        ),
        Op::get(
            "/api/health",
            "all_health",
            "The health of every service, as the web front reaches them",
            Reply::json(schemas.of::<AllHealth>()),
        ),
    ]
}

fn order_ops(schemas: &mut Schemas) -> Vec<Op> {
    let order = schemas.of::<OrderResponse>();
    vec![
        Op {
            method: HttpMethod::Post,
            path: "/orders",
            id: "create_order",
            summary: "Place an order: starts its saga",
            params: vec![
                ParameterBuilder::new()
                    .name("Idempotency-Key")
                    .parameter_in(ParameterIn::Header)
                    .required(Required::False)
                    .description(Some(
                        "Makes the request safe to repeat: the same key with the same body \
                         answers the first order again; with another body, 422.",
                    ))
                    .schema(Some(
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .min_length(Some(1))
                            .max_length(Some(255))
                            .pattern(Some("^[!-~]([ -~]*[!-~])?$")),
                    ))
                    .build(),
            ],
            body: Some(json_body(schemas.of::<CreateOrderRequest>())),
            ok: (201, Reply::json(order.clone())),
            errors: WRITE,
        },
        Op::get(
            "/orders",
            "list_orders",
            "The latest orders, newest first",
            Reply::json(list(order.clone())),
        )
        .params([
            query(
                "status",
                schemas.of::<OrderStatus>(),
                "Only orders of this status",
            ),
            query(
                "customer_id",
                uuid_schema(),
                "Only this customer's orders (a UUID)",
            ),
            query(
                "id_prefix",
                string_schema(),
                "Only orders whose id starts so (hexadecimal, with or without the UUID's hyphens)",
            ),
            query(
                "limit",
                integer(0, Some(u32::MAX)),
                "At most this many (default 50; 0 counts as 1, above 500 as 500)",
            ),
        ])
        .errors(&[400, 422, 500, 503]),
        Op::get(
            "/orders/stats",
            "order_stats",
            "Counts and revenue of every order placed in a period",
            Reply::json(schemas.of::<OrderStatsResponse>()),
        )
        .params([
            required_query(
                "from",
                time_schema(),
                "Start of the period (RFC 3339, included)",
            ),
            required_query(
                "to",
                time_schema(),
                "End of the period (RFC 3339, excluded)",
            ),
        ])
        .errors(&[400, 422, 500, 503]),
        Op::get(
            "/orders/{id}",
            "get_order",
            "An order",
            Reply::json(order.clone()),
        )
        .params([id_param("id", "The order's id")])
        .errors(READ_BY_ID),
        Op::get(
            "/orders/{id}/saga-logs",
            "order_saga_log",
            "The order's saga log, oldest first",
            Reply::json(list(schemas.of::<SagaLogResponse>())),
        )
        .params([id_param("id", "The order's id")])
        .errors(READ_BY_ID),
        Op::get(
            "/orders/{id}/wait",
            "wait_order",
            "The order once its saga has ended, or when the time is up",
            Reply::json(schemas.of::<WaitResponse>()),
        )
        .params([
            id_param("id", "The order's id"),
            query(
                "timeout_ms",
                integer(0, None),
                "How long to wait, in milliseconds (default 10000; above 60000 counts as 60000)",
            ),
        ])
        .errors(READ_BY_ID),
        Op::get(
            "/orders/{id}/events",
            "order_events",
            "The order's saga log as server-sent events: event `log` (a SagaLogResponse) for \
             each line so far and each line appended later, then event `end` (a WaitResponse) \
             once the saga has ended or the stream's time is up; then the stream closes. \
             Comments keep an idle stream alive.",
            Reply::text("text/event-stream"),
        )
        .params([
            id_param("id", "The order's id"),
            query(
                "timeout_ms",
                integer(0, None),
                "How long the stream may last, in milliseconds (default and most: 300000)",
            ),
        ])
        .errors(READ_BY_ID),
        Op::get(
            "/dead-letters",
            "list_dead_letters",
            "Messages the consumers gave up on, oldest first, with why",
            Reply::json(list(schemas.of::<DeadLetterResponse>())),
        )
        .params([
            query(
                "status",
                schemas.of::<DeadLetterStatusFilter>(),
                "Only dead letters of this status (default `pending`; `all` for every one)",
            ),
            query(
                "limit",
                integer(0, Some(u32::MAX)),
                "At most this many (default 100; 0 counts as 1, above 1000 as 1000)",
            ),
        ])
        .errors(&[400, 500, 503]),
        Op::get(
            "/dead-letters/{id}",
            "get_dead_letter",
            "A dead letter",
            Reply::json(schemas.of::<DeadLetterResponse>()),
        )
        .params([id_param("id", "The dead letter's id")])
        .errors(READ_BY_ID),
        operator_op(
            "/dead-letters/{id}/replay",
            "replay_dead_letter",
            "Deliver a pending dead letter again, to its own subscription only; answers the \
             letter, now `replayed` (409 if it was not pending)",
            schemas,
        ),
        operator_op(
            "/dead-letters/{id}/discard",
            "discard_dead_letter",
            "Drop a pending dead letter, so that its key's later messages flow on; answers the \
             letter, now `discarded` (409 if it was not pending)",
            schemas,
        ),
    ]
}

/// A `POST` on one dead letter (no body).
fn operator_op(
    path: &'static str,
    id: &'static str,
    summary: &'static str,
    schemas: &mut Schemas,
) -> Op {
    Op {
        method: HttpMethod::Post,
        path,
        id,
        summary,
        params: vec![id_param("id", "The dead letter's id")],
        body: None,
        ok: (200, Reply::json(schemas.of::<DeadLetterResponse>())),
        errors: &[400, 404, 409, 500, 503],
    }
}

fn inventory_ops(schemas: &mut Schemas) -> Vec<Op> {
    let product = schemas.of::<ProductResponse>();
    vec![
        Op::get(
            "/products",
            "list_products",
            "The catalog with its stock",
            Reply::json(list(product.clone())),
        )
        .errors(READ),
        Op::get(
            "/products/{id}",
            "get_product",
            "A product",
            Reply::json(product),
        )
        .params([path_param("id", "The product's id")])
        .errors(&[404, 500, 503]),
        Op::get(
            "/reservations/{order_id}",
            "get_reservation",
            "The stock reservation of an order",
            Reply::json(schemas.of::<ReservationResponse>()),
        )
        .params([id_param("order_id", "The order's id")])
        .errors(READ_BY_ID),
    ]
}

fn payment_ops(schemas: &mut Schemas) -> Vec<Op> {
    vec![
        Op::get(
            "/transactions/{order_id}",
            "get_transaction",
            "The charge of an order (and its refund)",
            Reply::json(schemas.of::<TransactionResponse>()),
        )
        .params([id_param("order_id", "The order's id")])
        .errors(READ_BY_ID),
        Op::get(
            "/gateway",
            "gateway_status",
            "The simulated gateway's outage, if any, and its circuit breaker's state",
            Reply::json(schemas.of::<GatewayStatus>()),
        ),
        Op {
            method: HttpMethod::Post,
            path: "/gateway/outage",
            id: "start_gateway_outage",
            summary: "Start a simulated gateway outage (a share of calls fail for a while)",
            params: Vec::new(),
            body: Some(json_body(schemas.of::<OutageRequest>())),
            ok: (200, Reply::json(schemas.of::<GatewayStatus>())),
            errors: &[400, 413, 415, 422],
        },
        Op {
            method: HttpMethod::Put,
            path: "/gateway/latency",
            id: "set_gateway_latency",
            summary: "Set how long the simulated gateway takes per charge or refund from now on",
            params: Vec::new(),
            body: Some(json_body(schemas.of::<LatencyRequest>())),
            ok: (200, Reply::json(schemas.of::<GatewayStatus>())),
            errors: &[400, 413, 415, 422],
        },
        Op {
            method: HttpMethod::Delete,
            path: "/gateway/outage",
            id: "end_gateway_outage",
            summary: "End the simulated gateway outage",
            params: Vec::new(),
            body: None,
            ok: (200, Reply::json(schemas.of::<GatewayStatus>())),
            errors: &[],
        },
    ]
}

fn shipping_ops(schemas: &mut Schemas) -> Vec<Op> {
    vec![
        Op::get(
            "/shipments/{order_id}",
            "get_shipment",
            "The shipment of an order",
            Reply::json(schemas.of::<ShipmentResponse>()),
        )
        .params([id_param("order_id", "The order's id")])
        .errors(READ_BY_ID),
    ]
}

fn notification_ops(schemas: &mut Schemas) -> Vec<Op> {
    vec![
        Op::get(
            "/notifications/{order_id}",
            "list_notifications",
            "The notifications sent about an order, oldest first (none for an unknown order)",
            Reply::json(list(schemas.of::<NotificationResponse>())),
        )
        .params([id_param("order_id", "The order's id")])
        .errors(&[400, 500, 503]),
    ]
}

fn analytics_ops(schemas: &mut Schemas) -> Vec<Op> {
    vec![
        Op::get(
            "/metrics",
            "business_metrics",
            "The business figures",
            Reply::json(schemas.of::<MetricsResponse>()),
        )
        .errors(READ),
        Op::get(
            "/metrics/timeseries",
            "business_timeseries",
            "The business minute by minute from the event log: orders placed, confirmed and \
             failed, completed sagas, revenue, success rate and p95 saga duration",
            Reply::json(schemas.of::<TimeseriesResponse>()),
        )
        .params([query(
            "minutes",
            integer(1, Some(MAX_SERIES_MINUTES)),
            "How many minutes, the current one last (default 60)",
        )])
        .errors(&[400, 500, 503]),
        Op::get(
            "/events/stats",
            "event_stats",
            "Events recorded, per type",
            Reply::json(schemas.of::<EventStats>()),
        )
        .errors(READ),
        Op::get(
            "/orders/recent",
            "recent_orders",
            "The ten latest orders as analytics knows them, newest first",
            Reply::json(list(schemas.of::<RecentOrder>())),
        )
        .errors(READ),
    ]
}

fn ai_ops(schemas: &mut Schemas) -> Vec<Op> {
    vec![
        Op {
            method: HttpMethod::Post,
            path: "/fraud/check",
            id: "fraud_check",
            summary: "Score an order body (as `POST /orders` takes it) without placing it",
            params: Vec::new(),
            body: Some(json_body(schemas.of::<CreateOrderRequest>())),
            ok: (200, Reply::json(schemas.of::<Assessment>())),
            errors: WRITE,
        },
        Op::get(
            "/analysis/{order_id}",
            "get_analysis",
            "The screening of an order: fraud score with its reasons, payment-success estimate",
            Reply::json(schemas.of::<AnalysisResponse>()),
        )
        .params([id_param("order_id", "The order's id")])
        .errors(READ_BY_ID),
        Op {
            method: HttpMethod::Post,
            path: "/predict/payment-success",
            id: "predict_payment_success",
            summary: "The probability that a charge succeeds, from the payment-success model and \
                      the customer's past orders",
            params: Vec::new(),
            body: Some(json_body(schemas.of::<PaymentSuccessRequest>())),
            ok: (200, Reply::json(schemas.of::<PaymentSuccessResponse>())),
            errors: WRITE,
        },
        Op::get(
            "/forecast/{product_id}",
            "forecast_demand",
            "A product's daily demand forecast with intervals, projected stock-out date and \
             reorder quantity",
            Reply::json(schemas.of::<DemandForecast>()),
        )
        .params([
            path_param(
                "product_id",
                "The product's id (404 when the AI service has not seen it)",
            ),
            query(
                "horizon",
                count_schema(MAX_HORIZON_DAYS),
                "Days to forecast, from today (default 14; outside 1 to 90 is answered 400)",
            ),
        ])
        .errors(&[400, 404, 500, 503]),
        Op::get(
            "/recommendations/{customer_id}",
            "recommend_products",
            "Products for a customer from the purchases seen, or the most popular for a customer \
             never seen buying",
            Reply::json(schemas.of::<RecommendationsResponse>()),
        )
        .params([
            id_param("customer_id", "The customer's id"),
            limit_param("At most this many products (default 10)"),
        ])
        .errors(&[400, 500, 503]),
        Op::get(
            "/anomalies",
            "saga_anomalies",
            "The latest order sagas the anomaly detector flags, with its reasons",
            Reply::json(schemas.of::<AnomaliesResponse>()),
        )
        .params([limit_param("At most this many sagas (default 20)")])
        .errors(&[400, 500, 503]),
        Op {
            method: HttpMethod::Post,
            path: "/chat",
            id: "chat",
            summary: "Ask the assistant about orders, stock, forecasts, recommendations, \
                      anomalies and dead letters; replays and discards wait for a \"yes\" in the \
                      same conversation",
            params: Vec::new(),
            body: Some(json_body(schemas.of::<ChatRequest>())),
            ok: (200, Reply::json(schemas.of::<ChatResponse>())),
            errors: WRITE,
        },
        Op::get(
            "/models",
            "list_models",
            "Every model of the AI service: kind, training time and data, held-out metrics",
            Reply::json(list(schemas.of::<ModelInfo>())),
        )
        .errors(READ),
        Op::get(
            "/self-healing/actions",
            "self_healing_actions",
            "The self-healing policies (which run) and their latest decisions: what each saw, \
             what it did, how it went",
            Reply::json(schemas.of::<crate::services::healing_log::ActionsResponse>()),
        )
        .params([
            limit_param("At most this many actions (default 50)"),
            query(
                "policy",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some([
                        "stuck-sagas",
                        "poison-messages",
                        "circuit-breaker",
                        "duration-drift",
                    ]))
                    .into(),
                "Only this policy's actions (anything else is answered 400)",
            ),
        ])
        .errors(&[400, 500, 503]),
    ]
}

/// An integer query parameter from 1 to `max`.
fn count_schema(max: u32) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(1))
        .maximum(Some(max))
        .into()
}

/// `limit`, from 1 to [`MAX_LIMIT`]; anything else is answered 400.
fn limit_param(description: &str) -> Parameter {
    query(
        "limit",
        count_schema(MAX_LIMIT),
        &format!("{description}; outside 1 to {MAX_LIMIT} is answered 400"),
    )
}

fn json_body(schema: RefOr<Schema>) -> RequestBody {
    RequestBodyBuilder::new()
        .required(Some(Required::True))
        .content(JSON, ContentBuilder::new().schema(Some(schema)).build())
        .build()
}

fn list(item: RefOr<Schema>) -> RefOr<Schema> {
    ArrayBuilder::new().items(item).into()
}

/// A whole number from `minimum` (to `maximum`, if any).
fn integer(minimum: u32, maximum: Option<u32>) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(minimum))
        .maximum(maximum)
        .into()
}

fn uuid_schema() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
        .into()
}

/// A path parameter: any non-empty text.
fn path_param(name: &str, description: &str) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(description))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1)),
        ))
        .build()
}

/// A path parameter that is a UUID; anything else is answered 400 (documented with the
/// operation).
fn id_param(name: &str, description: &str) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(format!(
            "{description}, a UUID (anything else is answered 400)"
        )))
        .schema(Some(uuid_schema()))
        .build()
}

fn query(name: &str, schema: RefOr<Schema>, description: &str) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

/// A required query parameter.
fn required_query(name: &str, schema: RefOr<Schema>, description: &str) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::True)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

/// A string.
fn string_schema() -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::String).into()
}

/// An RFC 3339 time.
fn time_schema() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
        .into()
}

/// The web front's `/health`: no database to report.
fn web_health() -> Object {
    let text = || ObjectBuilder::new().schema_type(Type::String);
    ObjectBuilder::new()
        .description(Some("`GET /health` of the web front"))
        .property("service", text().enum_values(Some(["web"])))
        .required("service")
        .property("status", text().enum_values(Some(["healthy"])))
        .required("status")
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .build()
}

/// An OpenAPI document, in outline.
fn openapi_schema() -> Object {
    ObjectBuilder::new()
        .description(Some("An OpenAPI 3.1 document"))
        .property("openapi", ObjectBuilder::new().schema_type(Type::String))
        .required("openapi")
        .property("info", ObjectBuilder::new().schema_type(Type::Object))
        .required("info")
        .property("paths", ObjectBuilder::new().schema_type(Type::Object))
        .required("paths")
        .build()
}
