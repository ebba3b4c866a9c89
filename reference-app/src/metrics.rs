//! The Prometheus metrics of every service, served at `GET /metrics/prometheus`.
//!
//! `/metrics` stays the seed's business JSON (on analytics, 8006); the Prometheus text is at
//! `/metrics/prometheus` on every service. Every series carries a `service` label with the
//! service's name ([`Service::name`]), so one Prometheus job scrapes all eight services and
//! the replicas of one service add up.
//!
//! A service builds one [`AppMetrics`], records into it from its handlers, consumers and
//! relay, and mounts [`router`] and the [`track`] middleware:
//!
//! ```
//! use axum::{Router, middleware, routing::get};
//! use reference_app::metrics::{self, AppMetrics};
//! use reference_app::topology::Service;
//!
//! let m = AppMetrics::new(Service::Order);
//! let app: Router = Router::new()
//!     .route("/orders/{id}", get(|| async { "an order" }))
//!     .merge(metrics::router(m.clone()))
//!     .layer(middleware::from_fn_with_state(m.clone(), metrics::track));
//! m.order_placed();
//! assert!(m.render().contains("saga_app_orders_placed_total{service=\"order\"} 1"));
//! # let _ = app;
//! ```

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::topology::Service;

/// Prefix of every metric family name.
pub const PREFIX: &str = "saga_app";

/// Every exported metric family, exactly as its `# TYPE` line and its samples name it
/// (counters with their `_total`; a histogram's samples add `_bucket`, `_sum`, `_count`).
pub const METRIC_NAMES: &[&str] = &[
    "saga_app_http_requests_total",
    "saga_app_http_request_duration_seconds",
    "saga_app_sagas_started_total",
    "saga_app_sagas_finished_total",
    "saga_app_saga_duration_seconds",
    "saga_app_events_consumed_total",
    "saga_app_events_published_total",
    "saga_app_outbox_lag_seconds",
    "saga_app_dead_letters_pending",
    "saga_app_orders_placed_total",
    "saga_app_payments_total",
];

/// Where [`router`] serves the text.
pub const PATH: &str = "/metrics/prometheus";

/// The `Content-Type` of the text: the Prometheus text format 0.0.4, which every scraper reads.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// The `route` label of a request that matched no route (a 404 from the fallback), so that
/// unknown paths cannot create new series.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Upper bounds of the HTTP duration buckets, in seconds: 1 ms to 10 s.
const HTTP_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Upper bounds of the saga duration buckets, in seconds: 10 ms to 2 min (a saga that waits
/// out a step deadline, retries once and compensates takes over a minute).
const SAGA_BUCKETS: [f64; 14] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0,
];

/// The text could not be encoded.
#[derive(Debug, thiserror::Error)]
#[error("the metrics could not be encoded as Prometheus text")]
pub struct RenderError(#[from] std::fmt::Error);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpDurationLabels {
    method: &'static str,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConsumedLabels {
    subscription: String,
    event_type: String,
    outcome: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn http_histogram() -> Histogram {
    Histogram::new(HTTP_BUCKETS)
}

fn saga_histogram() -> Histogram {
    Histogram::new(SAGA_BUCKETS)
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: HistogramFamily<HttpDurationLabels>,
    sagas_started: Counter,
    sagas_finished: Family<OutcomeLabels, Counter>,
    saga_duration: HistogramFamily<OutcomeLabels>,
    events_consumed: Family<ConsumedLabels, Counter>,
    events_published: Counter,
    outbox_lag: Gauge<f64, std::sync::atomic::AtomicU64>,
    dead_letters_pending: Gauge,
    orders_placed: Counter,
    payments: Family<OutcomeLabels, Counter>,
}

/// The metrics of one service: cheap to clone (one `Arc`), shared by its handlers, consumers
/// and relay.
#[derive(Debug, Clone)]
pub struct AppMetrics {
    inner: Arc<Inner>,
}

impl AppMetrics {
    /// The metrics of `service`, all at zero; every series is labelled `service="<name>"`.
    pub fn new(service: Service) -> Self {
        let labels = [(Cow::Borrowed("service"), Cow::Borrowed(service.name()))];
        let mut registry = Registry::with_prefix_and_labels(PREFIX, labels.into_iter());

        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status",
            http_requests.clone(),
        );
        let http_duration: HistogramFamily<HttpDurationLabels> =
            Family::new_with_constructor(http_histogram);
        registry.register_with_unit(
            "http_request_duration",
            "Time from request to response head, by method and route template",
            Unit::Seconds,
            http_duration.clone(),
        );
        let sagas_started = Counter::default();
        registry.register(
            "sagas_started",
            "Order sagas started",
            sagas_started.clone(),
        );
        let sagas_finished = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "sagas_finished",
            "Order sagas that reached an end: completed, compensated or failed",
            sagas_finished.clone(),
        );
        let saga_duration: HistogramFamily<OutcomeLabels> =
            Family::new_with_constructor(saga_histogram);
        registry.register_with_unit(
            "saga_duration",
            "Time from a saga's start to its end, by outcome",
            Unit::Seconds,
            saga_duration.clone(),
        );
        let events_consumed = Family::<ConsumedLabels, Counter>::default();
        registry.register(
            "events_consumed",
            "Event deliveries handled, by subscription, event type and outcome \
             (acked, duplicate, retried, dead_lettered)",
            events_consumed.clone(),
        );
        let events_published = Counter::default();
        registry.register(
            "events_published",
            "Events the outbox relay handed to the broker",
            events_published.clone(),
        );
        let outbox_lag = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register_with_unit(
            "outbox_lag",
            "Age of the oldest unpublished outbox row (0 when the outbox is empty)",
            Unit::Seconds,
            outbox_lag.clone(),
        );
        let dead_letters_pending = Gauge::default();
        registry.register(
            "dead_letters_pending",
            "Dead letters waiting for an operator to replay or discard them",
            dead_letters_pending.clone(),
        );
        let orders_placed = Counter::default();
        registry.register(
            "orders_placed",
            "Orders accepted by POST /orders",
            orders_placed.clone(),
        );
        let payments = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "payments",
            "Charges and refunds through the payment gateway, by outcome",
            payments.clone(),
        );

        Self {
            inner: Arc::new(Inner {
                registry,
                http_requests,
                http_duration,
                sagas_started,
                sagas_finished,
                saga_duration,
                events_consumed,
                events_published,
                outbox_lag,
                dead_letters_pending,
                orders_placed,
                payments,
            }),
        }
    }

    /// One HTTP request answered with `status` after `seconds`. `route` should be the route
    /// template (`/orders/{id}`), not the path, so that the series stay few; a method outside
    /// the standard nine is counted as `OTHER`. A negative or non-finite duration is counted
    /// but not observed.
    pub fn http_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let method = method_label(method);
        self.inner
            .http_requests
            .get_or_create(&HttpLabels {
                method,
                route: route.to_owned(),
                status,
            })
            .inc();
        if let Some(seconds) = duration(seconds) {
            self.inner
                .http_duration
                .get_or_create(&HttpDurationLabels {
                    method,
                    route: route.to_owned(),
                })
                .observe(seconds);
        }
    }

    /// A saga started.
    pub fn saga_started(&self) {
        self.inner.sagas_started.inc();
    }

    /// A saga ended with `outcome` (`completed`, `compensated` or `failed`) after `seconds`.
    /// A negative or non-finite duration is counted but not observed.
    pub fn saga_finished(&self, outcome: &str, seconds: f64) {
        let labels = OutcomeLabels {
            outcome: outcome.to_owned(),
        };
        self.inner.sagas_finished.get_or_create(&labels).inc();
        if let Some(seconds) = duration(seconds) {
            self.inner
                .saga_duration
                .get_or_create(&labels)
                .observe(seconds);
        }
    }

    /// A delivery of an `event_type` event to `subscription` was handled with `outcome`
    /// (`acked`, `duplicate`, `retried` or `dead_lettered`).
    pub fn event_consumed(&self, subscription: &str, event_type: &str, outcome: &str) {
        self.inner
            .events_consumed
            .get_or_create(&ConsumedLabels {
                subscription: subscription.to_owned(),
                event_type: event_type.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// The relay published `count` events.
    pub fn event_published(&self, count: u64) {
        self.inner.events_published.inc_by(count);
    }

    /// The oldest unpublished outbox row is `seconds` old (0 when none). A negative value (clock
    /// skew) or NaN is recorded as 0.
    pub fn set_outbox_lag(&self, seconds: f64) {
        self.inner.outbox_lag.set(seconds.max(0.0));
    }

    /// `n` dead letters are pending.
    pub fn set_dead_letters_pending(&self, n: i64) {
        self.inner.dead_letters_pending.set(n);
    }

    /// An order was accepted.
    pub fn order_placed(&self) {
        self.inner.orders_placed.inc();
    }

    /// A charge or refund ended with `outcome` (for example `succeeded`, `declined`,
    /// `refunded`).
    pub fn payment(&self, outcome: &str) {
        self.inner
            .payments
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// The metrics in the Prometheus text format 0.0.4 ([`CONTENT_TYPE`]).
    pub fn try_render(&self) -> Result<String, RenderError> {
        let mut text = String::new();
        prometheus_text::encode(&mut text, &self.inner.registry)?;
        Ok(text)
    }

    /// The metrics in the Prometheus text format 0.0.4. The encoder fails only on metric kinds
    /// this registry does not hold (a histogram without buckets); should it fail, the text
    /// is a single comment line saying so, which a scraper reads as no samples.
    pub fn render(&self) -> String {
        self.try_render().unwrap_or_else(|err| format!("# {err}\n"))
    }
}

/// `GET /metrics/prometheus`: the service's metrics as Prometheus text.
pub fn router(metrics: AppMetrics) -> Router {
    Router::new()
        .route(PATH, get(serve_metrics))
        .with_state(metrics)
}

async fn serve_metrics(State(metrics): State<AppMetrics>) -> Response {
    match metrics.try_render() {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    }
}

/// Middleware recording every request with its route template (`/orders/{id}`), or
/// [`UNMATCHED_ROUTE`] when no route matched. Mount it with
/// `axum::middleware::from_fn_with_state(metrics, track)` through `Router::layer`, which runs
/// it inside routing so that the template is known. The duration runs to the response head
/// (for a server-sent event stream, to the start of the stream).
pub async fn track(
    State(metrics): State<AppMetrics>,
    matched: Option<MatchedPath>,
    req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = method_label(req.method().as_str());
    let response = next.run(req).await;
    let route = matched
        .as_ref()
        .map_or(UNMATCHED_ROUTE, |path| path.as_str());
    metrics.http_request(
        method,
        route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// The method's label: one of the standard nine, or `OTHER` (a client can send any token as
/// a method; each must not become a series).
fn method_label(method: &str) -> &'static str {
    const STANDARD: [&str; 9] = [
        "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE",
    ];
    STANDARD
        .into_iter()
        .find(|m| *m == method)
        .unwrap_or("OTHER")
}

/// A duration worth observing: finite and not negative.
fn duration(seconds: f64) -> Option<f64> {
    (seconds.is_finite() && seconds >= 0.0).then_some(seconds)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use axum::body::Body;
    use axum::http::Request;
    use axum::middleware::from_fn_with_state;
    use tower::ServiceExt;

    use super::*;

    /// Every recording method, once.
    fn record_one_of_each(m: &AppMetrics) {
        m.http_request("GET", "/orders/{id}", 200, 0.003);
        m.saga_started();
        m.saga_finished("compensated", 1.5);
        m.event_consumed("inventory.order-placed", "order.placed", "acked");
        m.event_published(3);
        m.set_outbox_lag(0.25);
        m.set_dead_letters_pending(2);
        m.order_placed();
        m.payment("declined");
    }

    /// The families named by the `# TYPE` lines of `text`.
    fn typed_families(text: &str) -> BTreeSet<&str> {
        text.lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect()
    }

    /// The sample lines of `text`.
    fn samples(text: &str) -> impl Iterator<Item = &str> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
    }

    #[test]
    fn the_text_names_exactly_the_listed_families_after_one_call_of_each() {
        let m = AppMetrics::new(Service::Payment);
        record_one_of_each(&m);
        let text = m.render();
        let listed: BTreeSet<&str> = METRIC_NAMES.iter().copied().collect();
        assert_eq!(typed_families(&text), listed, "{text}");
        for name in METRIC_NAMES {
            assert!(
                samples(&text).any(|l| l.starts_with(name)),
                "no sample of {name}:\n{text}"
            );
        }
    }

    #[test]
    fn each_method_moves_its_own_series() {
        let m = AppMetrics::new(Service::Order);
        record_one_of_each(&m);
        m.event_published(4);
        let text = m.render();
        for expected in [
            r#"saga_app_http_requests_total{service="order",method="GET",route="/orders/{id}",status="200"} 1"#,
            r#"saga_app_http_request_duration_seconds_bucket{service="order",method="GET",route="/orders/{id}",le="0.005"} 1"#,
            r#"saga_app_http_request_duration_seconds_bucket{service="order",method="GET",route="/orders/{id}",le="0.0025"} 0"#,
            r#"saga_app_sagas_started_total{service="order"} 1"#,
            r#"saga_app_sagas_finished_total{service="order",outcome="compensated"} 1"#,
            r#"saga_app_saga_duration_seconds_sum{service="order",outcome="compensated"} 1.5"#,
            r#"saga_app_saga_duration_seconds_bucket{service="order",outcome="compensated",le="2.5"} 1"#,
            r#"saga_app_events_consumed_total{service="order",subscription="inventory.order-placed",event_type="order.placed",outcome="acked"} 1"#,
            r#"saga_app_events_published_total{service="order"} 7"#,
            r#"saga_app_outbox_lag_seconds{service="order"} 0.25"#,
            r#"saga_app_dead_letters_pending{service="order"} 2"#,
            r#"saga_app_orders_placed_total{service="order"} 1"#,
            r#"saga_app_payments_total{service="order",outcome="declined"} 1"#,
        ] {
            assert!(
                text.lines().any(|l| l == expected),
                "missing `{expected}` in\n{text}"
            );
        }
    }

    #[test]
    fn every_sample_carries_the_service_label() {
        for service in Service::ALL {
            let m = AppMetrics::new(service);
            record_one_of_each(&m);
            let text = m.render();
            let label = format!("service=\"{}\"", service.name());
            let mut n = 0;
            for line in samples(&text) {
                assert!(line.contains(&label), "{line}");
                n += 1;
            }
            assert!(n > 30, "{n} samples only");
        }
    }

    #[test]
    fn bad_durations_and_lags_do_not_poison_the_sums() {
        let m = AppMetrics::new(Service::Order);
        m.http_request("GET", "/health", 200, f64::NAN);
        m.saga_finished("failed", -1.0);
        m.saga_finished("failed", f64::INFINITY);
        m.set_outbox_lag(-3.0);
        let text = m.render();
        assert!(text.contains(r#"saga_app_http_requests_total{service="order",method="GET",route="/health",status="200"} 1"#));
        assert!(!text.contains("saga_app_http_request_duration_seconds_count"));
        assert!(
            text.contains(r#"saga_app_sagas_finished_total{service="order",outcome="failed"} 2"#)
        );
        assert!(!text.contains("saga_app_saga_duration_seconds_count"));
        assert!(text.contains(r#"saga_app_outbox_lag_seconds{service="order"} 0"#));
        m.set_outbox_lag(f64::NAN);
        assert!(
            m.render()
                .contains(r#"saga_app_outbox_lag_seconds{service="order"} 0"#)
        );
    }

    #[test]
    fn label_values_are_escaped_and_odd_methods_collapse() {
        let m = AppMetrics::new(Service::Analytics);
        m.event_consumed("sub", "evil\"type\nx", "acked");
        m.http_request("BREW", "/coffee", 418, 0.0);
        let text = m.render();
        assert!(text.contains(r#"event_type="evil\"type\nx""#), "{text}");
        assert!(text.contains(r#"method="OTHER",route="/coffee",status="418""#));
        assert!(!text.contains("BREW"));
    }

    async fn get(app: Router, uri: &str) -> (StatusCode, String, String) {
        let res = app
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let ct = res
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, ct, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn the_route_serves_the_text() {
        let m = AppMetrics::new(Service::Shipping);
        m.order_placed();
        let (status, ct, body) = get(router(m.clone()), PATH).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ct, "text/plain; version=0.0.4; charset=utf-8");
        assert_eq!(body, m.render());
        assert!(body.contains(r#"saga_app_orders_placed_total{service="shipping"} 1"#));
        let (status, _, _) = get(router(m), "/metrics").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn the_middleware_records_route_templates_not_paths() {
        let m = AppMetrics::new(Service::Order);
        let app = Router::new()
            .route("/orders/{id}", get_route(|| async { "an order" }))
            .merge(router(m.clone()))
            .layer(from_fn_with_state(m.clone(), track));
        for uri in ["/orders/a-1", "/orders/b-2", "/nope/c-3"] {
            get(app.clone(), uri).await;
        }
        let (status, _, _) = get(app.clone(), PATH).await;
        assert_eq!(status, StatusCode::OK);
        let text = m.render();
        assert!(text.contains(r#"saga_app_http_requests_total{service="order",method="GET",route="/orders/{id}",status="200"} 2"#), "{text}");
        assert!(text.contains(r#"saga_app_http_requests_total{service="order",method="GET",route="unmatched",status="404"} 1"#), "{text}");
        assert!(text.contains(r#"saga_app_http_requests_total{service="order",method="GET",route="/metrics/prometheus",status="200"} 1"#), "{text}");
        assert!(text.contains(r#"saga_app_http_request_duration_seconds_count{service="order",method="GET",route="/orders/{id}"} 2"#), "{text}");
        for raw in ["a-1", "b-2", "c-3", "/nope"] {
            assert!(!text.contains(raw), "{raw} leaked into a label:\n{text}");
        }
    }

    use axum::routing::get as get_route;
}
