//! Versioned events end to end: the registry's upcaster chain, its typed errors, and the
//! CloudEvents mapping of envelopes.

use chrono::{TimeZone, Utc};
use saga_core::cloudevents::{self, CAUSATION_ID, CORRELATION_ID, EVENT_VERSION, SAGA_HEADERS};
use saga_core::registry::EventRegistry;
use saga_core::{Envelope, Error, Event};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

/// `order.placed` today. v1 had `amount`; v2 renamed it `total_cents`; v3 added `currency`.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct OrderPlaced {
    order_id: String,
    customer_id: String,
    total_cents: i64,
    currency: String,
}

impl Event for OrderPlaced {
    const EVENT_TYPE: &'static str = "order.placed";
    const VERSION: u32 = 3;
}

#[derive(Debug, Serialize, Deserialize)]
struct PaymentProcessed {
    order_id: String,
}

impl Event for PaymentProcessed {
    const EVENT_TYPE: &'static str = "payment.processed";
    const VERSION: u32 = 1;
}

fn object(v: &mut Value) -> Result<&mut serde_json::Map<String, Value>, String> {
    v.as_object_mut()
        .ok_or_else(|| "payload is not an object".to_owned())
}

fn rename_amount(mut v: Value) -> Result<Value, String> {
    let obj = object(&mut v)?;
    let amount = obj.remove("amount").ok_or("`amount` is missing")?;
    obj.insert("total_cents".into(), amount);
    Ok(v)
}

fn add_currency(mut v: Value) -> Result<Value, String> {
    object(&mut v)?
        .entry("currency")
        .or_insert_with(|| json!("EUR"));
    Ok(v)
}

fn registry() -> EventRegistry {
    let mut registry = EventRegistry::new();
    registry
        .register::<OrderPlaced>()
        .register::<PaymentProcessed>()
        .register_upcaster("order.placed", 1, rename_amount)
        .register_upcaster("order.placed", 2, add_currency);
    registry
}

fn placed(version: u32, payload: Value) -> Envelope {
    Envelope::new("order.placed", "o-1", payload).with_version(version)
}

fn expected_order(currency: &str) -> OrderPlaced {
    OrderPlaced {
        order_id: "o-1".into(),
        customer_id: "c-7".into(),
        total_cents: 5000,
        currency: currency.into(),
    }
}

// ---- the upcaster chain ---------------------------------------------------------------

#[test]
fn v1_message_decodes_to_the_v3_struct() {
    let v1 = placed(
        1,
        json!({"order_id": "o-1", "customer_id": "c-7", "amount": 5000}),
    );
    let order: OrderPlaced = registry().decode(&v1).unwrap();
    assert_eq!(order, expected_order("EUR"));
}

#[test]
fn v2_message_decodes_to_the_v3_struct() {
    let v2 = placed(
        2,
        json!({"order_id": "o-1", "customer_id": "c-7", "total_cents": 5000}),
    );
    let order: OrderPlaced = registry().decode(&v2).unwrap();
    assert_eq!(order, expected_order("EUR"));
}

#[test]
fn v3_message_decodes_unchanged() {
    let v3 = Envelope::from_event("o-1", &expected_order("USD")).unwrap();
    let order: OrderPlaced = registry().decode(&v3).unwrap();
    assert_eq!(order, expected_order("USD"));
}

#[test]
fn upcast_returns_the_envelope_at_the_current_version() {
    let v1 = placed(1, json!({"order_id": "o-1", "amount": 10}));
    let up = registry().upcast(v1.clone()).unwrap();
    assert_eq!(up.version, 3);
    assert_eq!(up.event_id, v1.event_id);
    assert_eq!(
        up.payload,
        json!({"order_id": "o-1", "total_cents": 10, "currency": "EUR"})
    );
}

#[test]
fn decodes_an_old_message_read_from_a_cloudevent() {
    let v1 = placed(
        1,
        json!({"order_id": "o-1", "customer_id": "c-7", "amount": 5000}),
    );
    let bytes = cloudevents::to_cloudevent_json(&v1).unwrap();
    let received = cloudevents::from_cloudevent_json(&bytes).unwrap();
    let order: OrderPlaced = registry().decode(&received).unwrap();
    assert_eq!(order, expected_order("EUR"));
}

// ---- typed errors ---------------------------------------------------------------------

#[test]
fn unknown_event_type() {
    let env = Envelope::new("order.teleported", "o-1", json!({}));
    let err = registry().upcast(env).unwrap_err();
    assert!(
        matches!(&err, Error::UnknownEventType { event_type } if event_type == "order.teleported")
    );
    assert_eq!(err.to_string(), "unknown event type `order.teleported`");
}

#[test]
fn newer_version_is_unsupported() {
    let err = registry()
        .decode::<OrderPlaced>(&placed(4, json!({})))
        .unwrap_err();
    assert!(matches!(
        err,
        Error::UnsupportedVersion {
            version: 4,
            latest: 3,
            ..
        }
    ));
}

#[test]
fn gap_in_the_chain_is_a_missing_upcaster() {
    let mut registry = EventRegistry::new();
    registry
        .register::<OrderPlaced>()
        .register_upcaster("order.placed", 2, add_currency);
    let err = registry.upcast(placed(1, json!({}))).unwrap_err();
    assert!(matches!(err, Error::MissingUpcaster { from: 1, .. }));
}

#[test]
fn version_zero_is_invalid() {
    let err = registry().upcast(placed(0, json!({}))).unwrap_err();
    assert!(matches!(err, Error::InvalidEnvelope { .. }));
}

#[test]
fn failing_upcaster_is_a_payload_mismatch() {
    let err = registry()
        .decode::<OrderPlaced>(&placed(1, json!({"order_id": "o-1"})))
        .unwrap_err();
    assert!(matches!(
        err,
        Error::PayloadMismatch { version: 1, reason, .. }
            if reason == "upcaster 1 -> 2 failed: `amount` is missing"
    ));
}

#[test]
fn payload_that_does_not_deserialize_is_a_payload_mismatch() {
    let env = placed(3, json!({"order_id": "o-1", "total_cents": "lots"}));
    let err = registry().decode::<OrderPlaced>(&env).unwrap_err();
    assert!(matches!(err, Error::PayloadMismatch { version: 3, .. }));
}

#[test]
fn decoding_another_type_is_a_payload_mismatch() {
    let env = Envelope::new("payment.processed", "o-1", json!({"order_id": "o-1"}));
    let err = registry().decode::<OrderPlaced>(&env).unwrap_err();
    assert!(matches!(
        err,
        Error::PayloadMismatch { event_type, reason, .. }
            if event_type == "payment.processed" && reason.contains("decoding `order.placed`")
    ));
}

// ---- CloudEvents ----------------------------------------------------------------------

fn realistic_envelope() -> Envelope {
    let placed = Envelope::from_event("o-1", &expected_order("EUR"))
        .unwrap()
        .with_source("/services/order")
        .with_header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .with_header("tracestate", "vendor=abc");
    Envelope::new(
        "payment.requested",
        "o-1",
        json!({"order_id": "o-1", "amount_cents": 5000, "currency": "EUR"}),
    )
    .caused_by(&placed)
    .with_source("/services/payment")
    .with_header("Idempotency-Key", "4f1c2d9e")
    .with_timestamp(Utc.timestamp_opt(1_714_564_800, 987_654_321).unwrap())
}

#[test]
fn realistic_envelope_round_trips_through_cloudevents_json() {
    let env = realistic_envelope();
    let bytes = cloudevents::to_cloudevent_json(&env).unwrap();
    assert_eq!(cloudevents::from_cloudevent_json(&bytes).unwrap(), env);
}

#[test]
fn realistic_envelope_document_is_plain_cloudevents() {
    let env = realistic_envelope();
    let doc = cloudevents::to_cloudevent(&env);
    assert_eq!(
        doc["traceparent"],
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    );
    assert_eq!(doc["tracestate"], "vendor=abc");
    assert_eq!(doc[SAGA_HEADERS], r#"{"Idempotency-Key":"4f1c2d9e"}"#);
    assert_eq!(doc["time"], "2024-05-01T12:00:00.987654321Z");
    assert_eq!(doc[CAUSATION_ID], env.causation_id.unwrap().to_string());
    assert_eq!(doc[EVENT_VERSION], 1);
}

/// The example event of the CloudEvents JSON format spec, with a UUID `id`.
const SPEC_EXAMPLE: &str = r#"{
    "specversion": "1.0",
    "type": "com.github.pull_request.opened",
    "source": "https://github.com/cloudevents/spec/pull",
    "subject": "123",
    "id": "0190c6a4-5d2e-7cc3-9a37-1d5c2b0f6e11",
    "time": "2018-04-05T17:31:00Z",
    "comexampleextension1": "value",
    "comexampleothervalue": 5,
    "datacontenttype": "application/json",
    "data": {"action": "opened"}
}"#;

#[test]
fn foreign_cloudevent_with_a_non_uuid_id_is_rejected() {
    let doc = SPEC_EXAMPLE.replace("0190c6a4-5d2e-7cc3-9a37-1d5c2b0f6e11", "A234-1234-1234");
    let err = cloudevents::from_cloudevent_json(doc.as_bytes()).unwrap_err();
    assert!(matches!(err, Error::InvalidEnvelope { reason } if reason.contains("not a UUID")));
}

#[test]
fn foreign_cloudevent_becomes_an_envelope() {
    let env = cloudevents::from_cloudevent_json(SPEC_EXAMPLE.as_bytes()).unwrap();
    let id = Uuid::parse_str("0190c6a4-5d2e-7cc3-9a37-1d5c2b0f6e11").unwrap();
    assert_eq!(env.event_id, id);
    assert_eq!(env.event_type, "com.github.pull_request.opened");
    assert_eq!(env.source, "https://github.com/cloudevents/spec/pull");
    assert_eq!(env.aggregate_id, "123");
    assert_eq!(
        env.timestamp,
        Utc.with_ymd_and_hms(2018, 4, 5, 17, 31, 0).unwrap()
    );
    assert_eq!(env.correlation_id, id);
    assert_eq!(env.causation_id, None);
    assert_eq!(env.version, 1);
    assert_eq!(env.headers["comexampleextension1"], "value");
    assert_eq!(env.headers["comexampleothervalue"], "5");
    assert_eq!(env.payload, json!({"action": "opened"}));
}

#[test]
fn foreign_cloudevent_with_our_extensions_keeps_them() {
    let doc = json!({
        "specversion": "1.0",
        "id": "0190c6a4-5d2e-7cc3-9a37-1d5c2b0f6e11",
        "source": "/legacy/orders",
        "type": "order.placed",
        "time": "2023-01-02T03:04:05.678+01:00",
        CORRELATION_ID: "0190c6a4-0000-7000-8000-000000000001",
        EVENT_VERSION: 1,
        "data": {"order_id": "o-1", "customer_id": "c-7", "amount": 5000}
    });
    let env = cloudevents::from_cloudevent(&doc).unwrap();
    assert_eq!(
        env.correlation_id.to_string(),
        "0190c6a4-0000-7000-8000-000000000001"
    );
    let order: OrderPlaced = registry().decode(&env).unwrap();
    assert_eq!(order, expected_order("EUR"));
}

proptest::proptest! {
    /// The envelope's own JSON form keeps every timestamp exactly, nanoseconds included.
    #[test]
    fn envelope_json_round_trips_timestamps(secs in 0i64..253_402_300_799, nanos in 0u32..1_000_000_000) {
        let at = chrono::DateTime::from_timestamp(secs, nanos).unwrap();
        let env = saga_core::Envelope::new("order.placed", "o-1", serde_json::json!({})).with_timestamp(at);
        let back = saga_core::Envelope::from_json(&env.to_json().unwrap()).unwrap();
        proptest::prop_assert_eq!(back, env);
    }
}

proptest::proptest! {
    /// The CI form of the `envelope_json` fuzz target: any bytes decode to an envelope or a
    /// typed error, and a decoded envelope survives encode + decode unchanged.
    #[test]
    fn envelope_json_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
        if let Ok(env) = saga_core::Envelope::from_json(&bytes) {
            let again = saga_core::Envelope::from_json(&env.to_json().unwrap()).unwrap();
            proptest::prop_assert_eq!(again, env);
        }
    }

    /// Near-valid documents: a real envelope with one field's JSON text replaced.
    #[test]
    fn envelope_json_with_a_mangled_field(field in 0usize..9, text in "\\PC{0,24}") {
        let fields = ["event_id", "event_type", "aggregate_id", "correlation_id", "causation_id", "timestamp", "version", "headers", "payload"];
        let mut doc = serde_json::to_value(saga_core::Envelope::new("order.placed", "o-1", serde_json::json!({"total": 1.25}))).unwrap();
        doc[fields[field]] = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        let bytes = serde_json::to_vec(&doc).unwrap();
        if let Ok(env) = saga_core::Envelope::from_json(&bytes) {
            let again = saga_core::Envelope::from_json(&env.to_json().unwrap()).unwrap();
            proptest::prop_assert_eq!(again, env);
        }
    }
}

/// Found by the `registry_upcast` fuzz target: an upcaster written the natural way
/// (`v["currency"] = ...`) panics on a payload that is not an object; the registry turns that
/// into a typed error instead of crashing the consumer.
#[test]
fn a_panicking_upcaster_is_a_payload_mismatch() {
    let mut registry = saga_core::EventRegistry::new();
    registry
        .register_type("order.placed", 2)
        .register_upcaster("order.placed", 1, |mut v| {
            v["currency"] = serde_json::json!("EUR");
            Ok(v)
        });
    let env = saga_core::Envelope::new("order.placed", "o-1", serde_json::json!(2)).with_version(1);
    let err = registry.upcast(env).unwrap_err();
    assert!(
        matches!(err, saga_core::Error::PayloadMismatch { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("panicked"), "{err}");
}
