//! The services' OpenAPI documents against the running embedded system:
//!
//! 1. each document is OpenAPI 3.1, self-contained, served at `/openapi.json`, and lists exactly
//!    the routes the service's router has (read from the `.route(...)` calls of its source)
//!    with exactly the methods it answers (probed: documented ones are routed, the others 405);
//! 2. real answers of the seed's scenarios (success and error, direct and through the web
//!    front's `/api`) validate against the schema the document gives their path, method,
//!    status and media type; every documented operation is seen succeeding at least once.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use reference_app::openapi::document;
use reference_app::services::web::owner_of;
use reference_app::topology::Service;
use reqwest::Method;
use serde_json::{Value, json};
use support::{App, order_body};

/// Methods probed on every documented path.
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "PATCH"];

fn doc(service: Service) -> Value {
    serde_json::to_value(document(service)).expect("the document serialises")
}

// ---------------------------------------------------------------------------------------
// The routes of the source.

fn source(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    // Leave out unit tests and comments (the doc examples have routes of their own).
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The index of the `)` closing the `(` at `open`, skipping string literals.
fn closing(text: &str, open: usize) -> usize {
    let bytes = text.as_bytes();
    let (mut depth, mut i, mut in_str) = (0usize, open, false);
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_str => i += 1,
            b'"' => in_str = !in_str,
            b'(' if !in_str => depth += 1,
            b')' if !in_str => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
        i += 1;
    }
    panic!("unbalanced parentheses after {}", &text[open..open + 40]);
}

/// `(METHOD, path)` of every `.route(path, get(..).post(..))` in `file`; a path given by a
/// constant is looked up in the same file.
fn routes_in(file: &str) -> BTreeSet<(String, String)> {
    let src = source(file);
    for unsupported in [".nest(", ".route_service(", ".nest_service("] {
        assert!(
            !src.contains(unsupported),
            "{file} uses {unsupported}: teach this test to read it"
        );
    }
    let mut routes = BTreeSet::new();
    let mut at = 0;
    while let Some(found) = src[at..].find(".route(") {
        let open = at + found + ".route".len();
        let call = &src[open + 1..closing(&src, open)];
        at = open + 1;
        let (first, rest) = call.split_once(',').expect("route(path, method_router)");
        let first = first.trim();
        let path = match first.strip_prefix('"') {
            Some(literal) => literal.trim_end_matches('"').to_owned(),
            None => {
                let decl = format!("const {first}: &str = \"");
                let start = src
                    .find(&decl)
                    .unwrap_or_else(|| panic!("{file}: no {decl}"))
                    + decl.len();
                src[start..start + src[start..].find('"').unwrap_or(0)].to_owned()
            }
        };
        // The method router: `get(..)`, then `.post(..)` and so on.
        let mut expr = rest.trim_start();
        loop {
            let paren = expr.find('(').expect("a method router call");
            let name = expr[..paren].trim();
            routes.insert((name.to_uppercase(), path.clone()));
            let end = closing(expr, paren);
            expr = expr[end + 1..].trim_start();
            match expr.strip_prefix('.') {
                Some(next) => expr = next,
                None => break,
            }
        }
    }
    routes
}

/// The routes `service`'s router has, from the source: its module's, `/health` from
/// `health_routes`, and the ones `serve_http` adds (Prometheus, OpenAPI).
fn source_routes(service: Service) -> BTreeSet<(String, String)> {
    let file = format!("services/{}.rs", service.name());
    let mut routes = routes_in(&file);
    if source(&file).contains("health_routes(") {
        routes.extend(routes_in("services/common.rs"));
    }
    routes.extend(routes_in("metrics.rs"));
    routes.extend(routes_in("openapi.rs"));
    routes
}

/// `(METHOD, path)` of every operation of a document.
fn doc_routes(doc: &Value) -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("a path item").keys() {
            if METHODS.contains(&method.to_uppercase().as_str()) {
                routes.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    routes
}

/// The routes a document should list: the source's, with the web front's `/api/{*rest}`
/// proxy replaced by the upstream routes it passes on.
fn expected_routes(service: Service) -> BTreeSet<(String, String)> {
    let mut routes = source_routes(service);
    if service == Service::Web {
        let proxy = ("ANY".to_owned(), "/api/{*rest}".to_owned());
        assert!(routes.remove(&proxy), "the web front has no /api proxy");
        for upstream in Service::ALL.into_iter().filter(|s| *s != Service::Web) {
            for (method, path) in source_routes(upstream) {
                if owner_of(&path) == Some(upstream) {
                    routes.insert((method, format!("/api{path}")));
                }
            }
        }
    }
    routes
}

// ---------------------------------------------------------------------------------------
// Checking a document's shape.

/// Every `$ref` in `value`, with where it is.
fn refs(value: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref" {
                    out.push((at.to_owned(), v.as_str().unwrap_or_default().to_owned()));
                }
                refs(v, &format!("{at}/{k}"), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                refs(v, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn check_shape(service: Service, doc: &Value) {
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{service}: {}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let mut found = Vec::new();
    refs(doc, "#", &mut found);
    assert!(!found.is_empty(), "{service}: no schema is referenced");
    for (at, target) in found {
        let pointer = target.strip_prefix('#').unwrap_or_else(|| {
            panic!("{service}: {at}: {target} is not a reference into the document")
        });
        assert!(
            doc.pointer(pointer).is_some(),
            "{service}: {at}: {target} does not resolve"
        );
    }
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let placeholders: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        for (method, op) in item.as_object().unwrap() {
            let what = format!("{service}: {method} {path}");
            assert!(
                ids.insert(op["operationId"].as_str().unwrap_or_default().to_owned()),
                "{what}: operationId missing or repeated"
            );
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let in_path: BTreeSet<&str> = params
                .iter()
                .filter(|p| p["in"] == "path")
                .map(|p| {
                    assert_eq!(p["required"], true, "{what}: path parameters are required");
                    p["name"].as_str().unwrap_or_default()
                })
                .collect();
            assert_eq!(in_path, placeholders, "{what}: path parameters");
            let responses = op["responses"].as_object().expect("responses");
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{what}: no success answer"
            );
            for (status, response) in responses {
                assert!(
                    response["description"].is_string(),
                    "{what} {status}: no description"
                );
                let problem = response["content"]["application/problem+json"]["schema"]["$ref"]
                    == "#/components/schemas/Problem";
                // The Prometheus encoder's failure is plain text; every other error is a
                // problem document.
                let text_error = path.ends_with("/metrics/prometheus") && status == "500";
                assert_eq!(
                    problem,
                    !status.starts_with('2') && !text_error,
                    "{what} {status}: errors, and only they, are problem documents"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Talking to the system.

struct Answer {
    status: u16,
    media: String,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    /// The fallback's "route not found" problem.
    fn is_unknown_route(&self) -> bool {
        self.status == 404
            && self.json()["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("route "))
    }
}

async fn send(
    app: &App,
    service: Service,
    method: &str,
    path: &str,
    body: Option<(&str, String)>,
    headers: &[(&str, &str)],
) -> Answer {
    let url = format!("{}{path}", app.system.url(service));
    let method = Method::from_bytes(method.as_bytes()).expect("a method");
    // A body the service refuses unread may leave the connection unusable: send it on a
    // connection of its own.
    let too_large = body
        .as_ref()
        .is_some_and(|(_, b)| b.len() > reference_app::http::MAX_BODY_BYTES);
    let client = if too_large {
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("a client")
    } else {
        app.client.clone()
    };
    let mut request = client.request(method, &url);
    if let Some((content_type, body)) = body {
        request = request.header("content-type", content_type).body(body);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = response.status().as_u16();
    let media = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim().to_owned())
        .unwrap_or_default();
    let text = response.text().await.unwrap_or_default();
    Answer {
        status,
        media,
        text,
    }
}

/// `template` with its `{placeholders}` filled by `value`.
fn fill(template: &str, value: &str) -> String {
    template
        .split('/')
        .map(|s| {
            if s.starts_with('{') && s.ends_with('}') {
                value
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_are_openapi_3_1_and_list_exactly_the_routes_the_routers_answer() {
    let app = App::start(0.0).await;
    let unknown = uuid::Uuid::now_v7().to_string();
    for service in Service::ALL {
        let doc = doc(service);
        check_shape(service, &doc);

        // Served as it is built.
        let served = send(&app, service, "GET", "/openapi.json", None, &[]).await;
        assert_eq!(served.status, 200, "{service}: {}", served.text);
        assert_eq!(served.media, "application/json");
        assert_eq!(served.json(), doc, "{service}: the served document differs");

        // Exactly the routes of the source.
        let listed = doc_routes(&doc);
        let expected = expected_routes(service);
        assert_eq!(
            listed.difference(&expected).collect::<Vec<_>>(),
            Vec::<&(String, String)>::new(),
            "{service}: documented, but not a route of the source"
        );
        assert_eq!(
            expected.difference(&listed).collect::<Vec<_>>(),
            Vec::<&(String, String)>::new(),
            "{service}: a route of the source is not documented"
        );

        // And the router agrees: documented methods are routed, the others are 405.
        let paths: BTreeSet<&String> = listed.iter().map(|(_, p)| p).collect();
        for path in paths {
            let concrete = fill(path, &unknown);
            for method in METHODS {
                let body = (method != "GET").then(|| ("application/json", "{}".to_owned()));
                let answer = send(&app, service, method, &concrete, body, &[]).await;
                let what = format!("{service}: {method} {concrete}");
                if listed.contains(&(method.to_owned(), path.clone())) {
                    assert!(
                        !answer.is_unknown_route() && answer.status != 405,
                        "{what} is documented but answers {} {}",
                        answer.status,
                        answer.text
                    );
                } else {
                    assert_eq!(
                        answer.status, 405,
                        "{what} is not documented: {}",
                        answer.text
                    );
                }
            }
        }
        // The probe tells an unknown route when it sees one.
        let nowhere = send(&app, service, "GET", "/no/such/route", None, &[]).await;
        assert!(nowhere.is_unknown_route(), "{service}: {}", nowhere.text);
    }
    app.stop().await;
}

// ---------------------------------------------------------------------------------------
// Validating answers.

/// Validates answers against the documents and remembers which operations succeeded.
struct Checker {
    docs: BTreeMap<Service, Value>,
    /// `(service, METHOD, path template)` → statuses seen.
    seen: BTreeMap<(Service, String, String), BTreeSet<u16>>,
}

impl Checker {
    fn new() -> Self {
        Self {
            docs: Service::ALL.into_iter().map(|s| (s, doc(s))).collect(),
            seen: BTreeMap::new(),
        }
    }

    /// The schema documented for an answer, with the document's components beside it so that
    /// its references resolve.
    fn schema(
        &self,
        service: Service,
        method: &str,
        template: &str,
        status: u16,
        media: &str,
    ) -> Value {
        let doc = &self.docs[&service];
        let op = &doc["paths"][template][method.to_lowercase()];
        assert!(
            op.is_object(),
            "{service}: {method} {template} is not documented"
        );
        let response = &op["responses"][status.to_string()];
        assert!(
            response.is_object(),
            "{service}: {method} {template} answered {status}, which is not documented"
        );
        let schema = &response["content"][media]["schema"];
        assert!(
            schema.is_object(),
            "{service}: {method} {template} {status} answered {media}, which is not documented \
             (documented: {})",
            response["content"]
        );
        let mut schema = schema.clone();
        schema["components"] = doc["components"].clone();
        schema
    }

    fn validate(&self, schema: &Value, instance: &Value) -> Result<(), String> {
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(schema)
            .map_err(|e| format!("the schema does not compile: {e}"))?;
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// Checks one answer of `service` to `method` on `template` (filled in as `path`).
    fn check(&mut self, service: Service, method: &str, template: &str, answer: &Answer) {
        let what = format!("{service}: {method} {template} -> {}", answer.status);
        let schema = self.schema(service, method, template, answer.status, &answer.media);
        let instance = if answer.media.ends_with("json") {
            serde_json::from_str(&answer.text)
                .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {}", answer.text))
        } else {
            Value::String(answer.text.clone())
        };
        if let Err(e) = self.validate(&schema, &instance) {
            panic!(
                "{what}: the answer breaks its schema: {e}\nanswer: {}",
                answer.text
            );
        }
        self.seen
            .entry((service, method.to_owned(), template.to_owned()))
            .or_default()
            .insert(answer.status);
    }
}

/// A request of the scenarios: `method` on `template` filled as `path`.
struct Call<'a> {
    service: Service,
    method: &'a str,
    template: &'a str,
    path: String,
    body: Option<(&'a str, String)>,
    headers: Vec<(&'a str, &'a str)>,
    /// The status it must get.
    expect: u16,
}

impl<'a> Call<'a> {
    fn get(service: Service, template: &'a str, path: impl Into<String>, expect: u16) -> Self {
        Self {
            service,
            method: "GET",
            template,
            path: path.into(),
            body: None,
            headers: Vec::new(),
            expect,
        }
    }

    fn post(service: Service, template: &'a str, body: (&'a str, String), expect: u16) -> Self {
        Self {
            service,
            method: "POST",
            template,
            path: template.to_owned(),
            body: Some(body),
            headers: Vec::new(),
            expect,
        }
    }

    fn header(mut self, name: &'a str, value: &'a str) -> Self {
        self.headers.push((name, value));
        self
    }
}

/// Makes `call`, directly and through the web front when its proxy passes the path on;
/// checks both answers against the documents. Returns the direct answer's body.
async fn exchange(app: &App, checker: &mut Checker, call: Call<'_>) -> Value {
    let direct = send(
        app,
        call.service,
        call.method,
        &call.path,
        call.body.clone(),
        &call.headers,
    )
    .await;
    let what = format!("{}: {} {}", call.service, call.method, call.path);
    assert_eq!(direct.status, call.expect, "{what}: {}", direct.text);
    checker.check(call.service, call.method, call.template, &direct);
    let route = call.path.split('?').next().unwrap_or_default();
    if call.service != Service::Web && owner_of(route) == Some(call.service) {
        let proxied = send(
            app,
            Service::Web,
            call.method,
            &format!("/api{}", call.path),
            call.body,
            &call.headers,
        )
        .await;
        assert_eq!(
            proxied.status, call.expect,
            "web /api: {what}: {}",
            proxied.text
        );
        checker.check(
            Service::Web,
            call.method,
            &format!("/api{}", call.template),
            &proxied,
        );
    }
    direct.json()
}

fn json_body(value: &Value) -> (&'static str, String) {
    ("application/json", value.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_answers_validate_against_their_documented_schemas() {
    use Service::*;
    let app = App::start(0.0).await;
    let mut c = Checker::new();
    let products = app.products().await;
    let laptop = &products["Laptop Pro 14"];
    let product_id = laptop["id"].as_str().unwrap().to_owned();

    // Orders: one that goes through, one that fails for want of stock, one that is paid and
    // then refunded because the carrier cannot deliver.
    let good = order_body(laptop, 1, "94102");
    let mut ids = Vec::new();
    for (body, key) in [
        (good.clone(), Some("openapi-good")),
        (
            order_body(&products["Limited Edition Vinyl"], 6, "94102"),
            None,
        ),
        (order_body(&products["Wireless Mouse"], 1, "00000"), None),
    ] {
        let (status, placed) = app.place(&body, key).await;
        assert_eq!(status, 201, "{placed}");
        ids.push(placed["id"].as_str().unwrap().to_owned());
    }
    let mut ends = Vec::new();
    for id in &ids {
        ends.push(app.wait(id).await["order"]["status"].clone());
    }
    assert_eq!(
        ends,
        [json!("confirmed"), json!("failed"), json!("cancelled")]
    );
    let [good_id, failed_id, cancelled_id] = [&ids[0], &ids[1], &ids[2]];
    // The shipment of the good order is scheduled after the order is confirmed.
    app.eventually(Shipping, &format!("/shipments/{good_id}"), |_| true)
        .await;

    // The POST routes: a repeat of the good order, and what is refused.
    let o = "/orders";
    let key = "Idempotency-Key";
    let call = Call::post(Order, o, json_body(&good), 201).header(key, "openapi-good");
    exchange(&app, &mut c, call).await;
    let mut other = good.clone();
    other["items"][0]["quantity"] = json!(2);
    let call = Call::post(Order, o, json_body(&other), 422).header(key, "openapi-good");
    exchange(&app, &mut c, call).await;
    let long_key = "k".repeat(256);
    let call = Call::post(Order, o, json_body(&good), 400).header(key, &long_key);
    exchange(&app, &mut c, call).await;
    let mut no_such = good.clone();
    no_such["items"][0]["product_id"] = json!("no-such-product");
    exchange(&app, &mut c, Call::post(Order, o, json_body(&no_such), 422)).await;
    let check = "/fraud/check";
    exchange(&app, &mut c, Call::post(Ai, check, json_body(&good), 200)).await;
    let mut zero = good.clone();
    zero["items"][0]["quantity"] = json!(0);
    let mut unknown_field = good.clone();
    unknown_field["coupon"] = json!("FREE");
    for (svc, template) in [(Order, o), (Ai, check)] {
        for (body, expect) in [
            (("application/json", "{".to_owned()), 400),
            (("text/plain", good.to_string()), 415),
            (json_body(&json!({})), 422),
            (json_body(&zero), 422),
            (json_body(&unknown_field), 422),
            (("application/json", " ".repeat(70 * 1024)), 413),
        ] {
            exchange(&app, &mut c, Call::post(svc, template, body, expect)).await;
        }
    }

    // Every GET route of every service, for each order.
    let unknown = uuid::Uuid::now_v7().to_string();
    let customer = good["customer_id"].as_str().unwrap();
    for svc in Service::ALL {
        for template in ["/health", "/metrics/prometheus", "/openapi.json"] {
            exchange(&app, &mut c, Call::get(svc, template, template, 200)).await;
        }
    }
    exchange(&app, &mut c, Call::get(Web, "/", "/", 200)).await;
    exchange(
        &app,
        &mut c,
        Call::get(Web, "/api/health", "/api/health", 200),
    )
    .await;
    exchange(&app, &mut c, Call::get(Order, o, o, 200)).await;
    for query in [
        format!("?status=confirmed&customer_id={customer}&limit=5"),
        "?limit=0".to_owned(),
    ] {
        exchange(
            &app,
            &mut c,
            Call::get(Order, o, format!("{o}{query}"), 200),
        )
        .await;
    }
    for query in [
        "?limit=-1",
        "?status=shipped",
        "?customer_id=bob",
        "?bogus=1",
    ] {
        exchange(
            &app,
            &mut c,
            Call::get(Order, o, format!("{o}{query}"), 400),
        )
        .await;
    }
    let by_order: [(Service, &str); 9] = [
        (Order, "/orders/{id}"),
        (Order, "/orders/{id}/saga-logs"),
        (Order, "/orders/{id}/wait"),
        (Order, "/orders/{id}/events"),
        (Inventory, "/reservations/{order_id}"),
        (Payment, "/transactions/{order_id}"),
        (Shipping, "/shipments/{order_id}"),
        (Notification, "/notifications/{order_id}"),
        (Ai, "/analysis/{order_id}"),
    ];
    for (svc, template) in by_order {
        let found: Vec<&String> = match svc {
            // The failed order never reached payment, the cancelled one never shipped.
            Payment => vec![good_id, cancelled_id],
            Shipping => vec![good_id],
            _ => vec![good_id, failed_id, cancelled_id],
        };
        for id in found {
            exchange(
                &app,
                &mut c,
                Call::get(svc, template, fill(template, id), 200),
            )
            .await;
        }
        let missing = if svc == Notification { 200 } else { 404 };
        let path = fill(template, &unknown);
        exchange(&app, &mut c, Call::get(svc, template, path, missing)).await;
        let path = fill(template, "not-a-uuid");
        exchange(&app, &mut c, Call::get(svc, template, path, 400)).await;
    }
    let heal = "/self-healing/actions";
    for (query, expect) in [
        ("", 200),
        ("?policy=circuit-breaker&limit=5", 200),
        ("?policy=bogus", 400),
        ("?limit=0", 400),
    ] {
        let call = Call::get(Ai, heal, format!("{heal}{query}"), expect);
        exchange(&app, &mut c, call).await;
    }
    // The simulated gateway's outage switch and its circuit breaker.
    let gw = "/gateway";
    exchange(&app, &mut c, Call::get(Payment, gw, gw, 200)).await;
    let outage = "/gateway/outage";
    let short = json!({"error_rate": 0.0, "seconds": 1});
    exchange(
        &app,
        &mut c,
        Call::post(Payment, outage, json_body(&short), 200),
    )
    .await;
    let bad = json!({"error_rate": -1.0, "seconds": 1});
    exchange(
        &app,
        &mut c,
        Call::post(Payment, outage, json_body(&bad), 422),
    )
    .await;
    let end = Call {
        method: "DELETE",
        ..Call::get(Payment, outage, outage, 200)
    };
    exchange(&app, &mut c, end).await;
    // Its latency switch.
    let latency = "/gateway/latency";
    for (body, expect) in [
        (json!({"latency_ms": 1}), 200),
        (json!({"latency_ms": 60_001}), 422),
        (json!({"latency_ms": -1}), 422),
    ] {
        let call = Call {
            method: "PUT",
            ..Call::post(Payment, latency, json_body(&body), expect)
        };
        exchange(&app, &mut c, call).await;
    }
    // Counts over a period, and the id-prefix search.
    let stats = "/orders/stats";
    for (query, expect) in [
        ("?from=2020-01-01T00:00:00Z&to=2100-01-01T00:00:00Z", 200),
        ("?from=2100-01-01T00:00:00Z&to=2020-01-01T00:00:00Z", 422),
        ("?from=yesterday&to=2100-01-01T00:00:00Z", 400),
        ("", 400),
    ] {
        let call = Call::get(Order, stats, format!("{stats}{query}"), expect);
        exchange(&app, &mut c, call).await;
    }
    let list = "/orders";
    let prefix = &good_id[..13];
    for (query, expect) in [
        (format!("?id_prefix={prefix}"), 200),
        ("?id_prefix=zz%25".to_owned(), 422),
    ] {
        exchange(
            &app,
            &mut c,
            Call::get(Order, list, format!("{list}{query}"), expect),
        )
        .await;
    }
    let wait = "/orders/{id}/wait";
    let path = format!("{}?timeout_ms=10", fill(wait, good_id));
    exchange(&app, &mut c, Call::get(Order, wait, path, 200)).await;
    let path = format!("{}?timeout_ms=soon", fill(wait, good_id));
    exchange(&app, &mut c, Call::get(Order, wait, path, 400)).await;
    exchange(
        &app,
        &mut c,
        Call::get(Inventory, "/products", "/products", 200),
    )
    .await;
    let one = "/products/{id}";
    exchange(
        &app,
        &mut c,
        Call::get(Inventory, one, fill(one, &product_id), 200),
    )
    .await;
    exchange(
        &app,
        &mut c,
        Call::get(Inventory, one, fill(one, "no-such"), 404),
    )
    .await;
    for template in ["/metrics", "/events/stats", "/orders/recent"] {
        exchange(&app, &mut c, Call::get(Analytics, template, template, 200)).await;
    }
    let series = "/metrics/timeseries";
    for (query, expect) in [
        ("", 200),
        ("?minutes=5", 200),
        ("?minutes=0", 400),
        ("?minutes=x", 400),
    ] {
        let path = format!("{series}{query}");
        exchange(&app, &mut c, Call::get(Analytics, series, path, expect)).await;
    }
    for asset in ["/app.js", "/app.css"] {
        exchange(&app, &mut c, Call::get(Web, asset, asset, 200)).await;
    }
    let path = format!("{}?timeout_ms=bogus", fill("/orders/{id}/events", good_id));
    exchange(
        &app,
        &mut c,
        Call::get(Order, "/orders/{id}/events", path, 400),
    )
    .await;
    dead_letter_calls(&app, &mut c).await;

    // The AI service's model routes, with what they refuse.
    let predict = "/predict/payment-success";
    let ask =
        json!({"customer_id": customer, "amount": 42.5, "payment_method": {"type": "paypal"}});
    exchange(&app, &mut c, Call::post(Ai, predict, json_body(&ask), 200)).await;
    for (body, expect) in [
        (("application/json", "{".to_owned()), 400),
        (("text/plain", ask.to_string()), 415),
        (
            json_body(&json!({"customer_id": customer, "amount": 0})),
            422,
        ),
        (json_body(&json!({"amount": 5})), 422),
    ] {
        exchange(&app, &mut c, Call::post(Ai, predict, body, expect)).await;
    }
    let forecast = "/forecast/{product_id}";
    let laptop_forecast = fill(forecast, &product_id);
    for (path, expect) in [
        (laptop_forecast.clone(), 200),
        (format!("{laptop_forecast}?horizon=3"), 200),
        (fill(forecast, "no-such"), 404),
        (format!("{laptop_forecast}?horizon=0"), 400),
        (format!("{laptop_forecast}?horizon=1000"), 400),
    ] {
        exchange(&app, &mut c, Call::get(Ai, forecast, path, expect)).await;
    }
    let recommend = "/recommendations/{customer_id}";
    for (path, expect) in [
        (fill(recommend, customer), 200),
        (fill(recommend, &unknown), 200),
        (format!("{}?limit=3", fill(recommend, customer)), 200),
        (fill(recommend, "not-a-uuid"), 400),
        (format!("{}?limit=0", fill(recommend, customer)), 400),
    ] {
        exchange(&app, &mut c, Call::get(Ai, recommend, path, expect)).await;
    }
    for (path, expect) in [
        ("/anomalies", 200),
        ("/anomalies?limit=5", 200),
        ("/anomalies?limit=0", 400),
    ] {
        exchange(&app, &mut c, Call::get(Ai, "/anomalies", path, expect)).await;
    }
    exchange(&app, &mut c, Call::get(Ai, "/models", "/models", 200)).await;
    let chat = "/chat";
    let long = "x".repeat(2001);
    for (body, expect) in [
        (json_body(&json!({"message": "how many orders today"})), 200),
        (
            json_body(&json!({"message": "help", "conversation_id": "openapi-chat"})),
            200,
        ),
        (json_body(&json!({"message": "  "})), 422),
        (json_body(&json!({"message": long})), 422),
        (json_body(&json!({"message": "hi", "mood": "fine"})), 422),
        (json_body(&json!({"conversation_id": "c"})), 422),
        (("application/json", "{".to_owned()), 400),
        (("text/plain", "hello".to_owned()), 415),
    ] {
        exchange(&app, &mut c, Call::post(Ai, chat, body, expect)).await;
    }

    // Every documented operation was seen succeeding; every problem status of the
    // scenarios was validated.
    for (&svc, doc) in &c.docs {
        for (method, path) in doc_routes(doc) {
            let seen = c.seen.get(&(svc, method.clone(), path.clone()));
            assert!(
                seen.is_some_and(|s| s.iter().any(|st| (200..300).contains(st))),
                "{svc}: {method} {path} was never seen succeeding (seen: {seen:?})"
            );
        }
    }
    let statuses: BTreeSet<u16> = c.seen.values().flatten().copied().collect();
    for status in [200, 201, 400, 404, 413, 415, 422] {
        assert!(statuses.contains(&status), "no {status} was validated");
    }

    // A missing or wrong field breaks the schema: the check is not vacuous.
    let order = send(
        &app,
        Order,
        "GET",
        &fill("/orders/{id}", good_id),
        None,
        &[],
    )
    .await
    .json();
    let schema = c.schema(Order, "GET", "/orders/{id}", 200, "application/json");
    assert_eq!(c.validate(&schema, &order), Ok(()));
    type Damage = fn(&mut Value);
    let broken: [(&str, Damage); 6] = [
        ("a missing field", |o| {
            o.as_object_mut().unwrap().remove("status");
        }),
        ("an unknown field", |o| o["discount"] = json!(5)),
        ("money as text", |o| o["total_amount"] = json!("2599.98")),
        ("negative money", |o| o["total_amount"] = json!(-1.0)),
        ("an unknown status", |o| o["status"] = json!("shipped")),
        ("an id that is no UUID", |o| o["id"] = json!("order-1")),
    ];
    for (what, damage) in broken {
        let mut bad = order.clone();
        damage(&mut bad);
        assert!(c.validate(&schema, &bad).is_err(), "{what} passed: {bad}");
    }
    let mut bad_line = order.clone();
    bad_line["items"][0]
        .as_object_mut()
        .unwrap()
        .remove("quantity");
    assert!(
        c.validate(&schema, &bad_line).is_err(),
        "a line without quantity passed"
    );
    app.stop().await;
}

/// The operator routes, on dead letters made on purpose: replay and discard change the
/// letter, so each is called once directly and once through the web front on letters of its
/// own, then again on the same letters (409).
async fn dead_letter_calls(app: &App, c: &mut Checker) {
    use Service::{Order, Web};
    app.publish_poison(&["o-poison-1", "o-poison-2"]).await;
    let pending = |n: usize| {
        app.eventually(Order, "/dead-letters", move |v| {
            v.as_array().is_some_and(|a| a.len() == n)
        })
    };
    let letters = pending(2).await;
    let mut ids: Vec<String> = letters
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect();
    let list = "/dead-letters";
    for (query, expect) in [
        ("", 200),
        ("?status=all&limit=5", 200),
        ("?status=lost", 400),
        ("?limit=-1", 400),
    ] {
        exchange(
            app,
            c,
            Call::get(Order, list, format!("{list}{query}"), expect),
        )
        .await;
    }
    let one = "/dead-letters/{id}";
    let unknown = uuid::Uuid::now_v7().to_string();
    for (id, expect) in [(ids[0].as_str(), 200), (&unknown, 404), ("not-a-uuid", 400)] {
        exchange(app, c, Call::get(Order, one, fill(one, id), expect)).await;
    }
    let empty = || Some(("application/json", "{}".to_owned()));
    for template in ["/dead-letters/{id}/replay", "/dead-letters/{id}/discard"] {
        let api = format!("/api{template}");
        // Letters 0 and 1 are pending: one is handled directly, the other through the web.
        let first = send(app, Order, "POST", &fill(template, &ids[0]), empty(), &[]).await;
        assert_eq!(first.status, 200, "{template}: {}", first.text);
        c.check(Order, "POST", template, &first);
        let second = send(app, Web, "POST", &fill(&api, &ids[1]), empty(), &[]).await;
        assert_eq!(second.status, 200, "{api}: {}", second.text);
        c.check(Web, "POST", &api, &second);
        // Not pending any more.
        let again = send(app, Order, "POST", &fill(template, &ids[1]), empty(), &[]).await;
        assert_eq!(again.status, 409, "{template}: {}", again.text);
        c.check(Order, "POST", template, &again);
        let again = send(app, Web, "POST", &fill(&api, &ids[0]), empty(), &[]).await;
        assert_eq!(again.status, 409, "{api}: {}", again.text);
        c.check(Web, "POST", &api, &again);
        for (id, expect) in [(unknown.as_str(), 404), ("not-a-uuid", 400)] {
            let answer = send(app, Order, "POST", &fill(template, id), empty(), &[]).await;
            assert_eq!(answer.status, expect, "{template}: {}", answer.text);
            c.check(Order, "POST", template, &answer);
        }
        if template.ends_with("/replay") {
            // Both replayed letters fail again: two new pending letters to discard.
            let letters = pending(2).await;
            let fresh: Vec<String> = letters
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["id"].as_str().unwrap().to_owned())
                .collect();
            assert!(fresh.iter().all(|f| !ids.contains(f)), "{letters}");
            ids = fresh;
        }
    }
}
